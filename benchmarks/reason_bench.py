"""Benchmark of stage two on GraIL (prints figures; not a test).

Tokenizes fb237_v1, WN18RR_v1 and nell_v1 (each with its `_ind` graph, entity
texts where they exist, ImageNet images for WN18RR), trains two models on
the three *training* graphs -- the full model and a structure-only
configuration of ULTRA's shape (6 layers x 64 dims, DistMult messages, no
tokens) -- and evaluates both, and the shipped checkpoint (the recipe's
configuration, trained at its full budget) when this installation has one, on
the `_ind` graphs with ULTRA's protocol:
the `_ind` graph's valid and test queries together (splits `ind_valid,test`),
filtered, head and tail, ties counted against the answer.

Its MRRs are of that joint artifact: structural tokens read relation shares over the union of
both graphs, so about a tenth of the `_ind` entities get other structure codes than when the
`_ind` folder is tokenized alone, as a new graph is and as `zero_shot_bench.py` does (shipped
checkpoint on fb237_v1_ind, 2026-12-07: 0.525 here, 0.523 there). The zero-shot figures are
`zero_shot_bench.py`'s; this bench's MRR only shows that a timed model ranks as it should.

Each evaluation runs in a fresh process; it prints two rates of the ranking
loop, the process's peak RSS and the MRR, beside ULTRA's figures measured on
this kind of machine (../shared/REFERENCE.md):

- per query: ranked queries (two per test triple, as ULTRA counts) per second;
- per distinct query: distinct (entity, relation) queries per second. TOFU
  scores each distinct query once and ranks every triple that asks it; ULTRA
  scores every query, so this is the like-for-like rate of work done.

ULTRA's code does not run here; its figures are the higher of two runs of
another day (REFERENCE.md), and speeds move by up to 2x between runs, so the
ratios are read as a floor only when they clear 2.0 with room.

    python benchmarks/reason_bench.py [--data PATH] [--steps 300] [--batch-size N] [--repeats 3]
    python benchmarks/reason_bench.py --work DIR --reuse    # re-evaluate the checkpoints in DIR (no data read)
    python benchmarks/reason_bench.py --work DIR --reuse --device cuda    # the same evaluations on a GPU
    python benchmarks/reason_bench.py --work DIR --reuse --no-fused-kernel   # the CPU's torch path, for A/B
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


GRAPHS = ["fb237_v1", "WN18RR_v1", "nell_v1"]
ULTRA = {  # queries/s (run A / run B), peak RSS MB, MRR: ULTRA's code + ultra_3g checkpoint on this machine kind
    "fb237_v1": ((148, 166), 457, 0.486),
    "WN18RR_v1": ((452, 240), 408, 0.593),
    "nell_v1": ((1222, 742), 381, 0.726),
}
CONFIGS = {
    "full": dict(),
    "structure-only (ULTRA shape)": dict(modalities=(), messages=("distmult",)),
}
SHIPPED = "shipped checkpoint"


def _evaluate(checkpoint: str, artifact: str, batch_size: int, repeats: int, tuned_allocator: bool, device: str,
              queue) -> None:
    import torch

    from artifacts.token_tables import read_token_tables
    from reasoning_stage.allocator import retain_freed_memory
    from reasoning_stage.reasoning import evaluate, load_model

    if tuned_allocator:
        retain_freed_memory()
    torch.set_num_threads(os.cpu_count() or 1)
    tables = read_token_tables(Path(artifact))
    on = torch.device(device)
    loaded = load_model(Path(checkpoint), on)
    times = []
    for _ in range(repeats):  # the first pass is counted like the others: no warm-up is hidden
        start = time.perf_counter()
        _, metrics = evaluate(loaded, tables, ["ind_valid", "test"], on, batch_size=batch_size)
        if on.type == "cuda":
            torch.cuda.synchronize(on)
        times.append(time.perf_counter() - start)
    peak_gpu_mb = torch.cuda.max_memory_allocated(on) / 2**20 if on.type == "cuda" else None
    queue.put({"queries": int(metrics["queries"]), "distinct": int(metrics["distinct_queries"]), "seconds": min(times),
               "all_seconds": times, "mrr": metrics["mrr"], "hits@10": metrics["hits@10"], "peak_mb": _peak_rss_mb(),
               "peak_gpu_mb": peak_gpu_mb})


def _peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM): unlike ru_maxrss it does not carry the parent's peak over exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _device_name(device: str) -> str:
    import torch

    on = torch.device(device)
    return torch.cuda.get_device_name(on) if on.type == "cuda" else "the CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("TOFU_DATA", REPO.parent / "shared" / "data")))
    parser.add_argument("--steps", type=int, default=300, help="training steps per model")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="queries per evaluation batch (default: by graph size, as `tofu reason`)")
    parser.add_argument("--work", type=Path, default=None, help="folder for artifacts and checkpoints (default: temp)")
    parser.add_argument("--reuse", action="store_true",
                        help="with --work: reuse its artifacts and checkpoints instead of tokenizing and training")
    parser.add_argument("--repeats", type=int, default=3,
                        help="evaluations per graph in its process; the best time is reported, all are printed")
    parser.add_argument("--device", default="cpu",
                        help="torch device of the evaluations (training stays on the CPU); ULTRA's figures are CPU ones")
    parser.add_argument("--default-allocator", action="store_true",
                        help="leave glibc malloc's defaults (no retain_freed_memory) to measure what it buys")
    parser.add_argument("--no-fused-kernel", action="store_true",
                        help="rank with the torch path even where the fused kernel (kernels/) is built")
    args = parser.parse_args()
    from reasoning_stage.layers import FUSED_KERNEL_SWITCH, fused_kernel_state

    if args.no_fused_kernel:   # read by the evaluating processes, which import reasoning_stage afresh
        os.environ[FUSED_KERNEL_SWITCH] = "0"

    if args.reuse and not args.work:
        sys.exit("--reuse needs --work: the folder of an earlier run")
    if not args.reuse and not (args.data / "grail").is_dir():
        sys.exit(f"no GraIL data under {args.data}; pass --data or set TOFU_DATA")

    import torch

    from artifacts.shipped import shipped_checkpoint
    from artifacts.token_tables import read_token_tables
    from pipeline.orchestrate import tokenize_many
    from reasoning_stage.config import ModelConfig
    from reasoning_stage.models import TofuModel
    from reasoning_stage.config import TrainConfig
    from reasoning_stage.training import model_config_for, train
    from tokenize_bench import write_kg_toml
    from tokenizer_stage.config import TokenizerConfig

    torch.set_num_threads(os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        start = time.perf_counter()
        if not args.reuse:
            dirs = [write_kg_toml(work / "graphs" / g, args.data, g) for g in GRAPHS]
            tokenize_many(dirs, work / "artifacts", TokenizerConfig(), workers=1, progress=False)
            print(f"tokenized {len(dirs)} graphs in {time.perf_counter() - start:.0f}s")
        tables = [read_token_tables(work / "artifacts" / g) for g in GRAPHS]
        ctx = multiprocessing.get_context("spawn")
        rows = []
        checkpoints = {}
        for number, (name, overrides) in enumerate(CONFIGS.items()):
            checkpoint = checkpoints[name] = work / f"checkpoint_{number}"
            torch.manual_seed(0)
            model = TofuModel(model_config_for(tables[0], ModelConfig(**overrides)))
            if not args.reuse:
                start = time.perf_counter()
                train(model, tables, TrainConfig(max_steps=args.steps, eval_every=args.steps, eval_triples=50),
                      checkpoint, torch.device("cpu"))
                print(f"{name}: {model.num_parameters():,} parameters, {args.steps} steps in "
                      f"{time.perf_counter() - start:.0f}s")
        shipped = shipped_checkpoint()
        if shipped is not None:  # what users get: the recipe's configuration and weights
            checkpoints[SHIPPED] = shipped
        for name, checkpoint in checkpoints.items():
            for graph in GRAPHS:
                queue = ctx.Queue()
                child = ctx.Process(target=_evaluate, args=(str(checkpoint), str(work / "artifacts" / graph),
                                                            args.batch_size, args.repeats,
                                                            not args.default_allocator, args.device, queue))
                child.start()
                child.join()
                if child.exitcode != 0:
                    sys.exit(f"evaluating {name} on {graph} failed")
                result = queue.get()
                rows.append((name, graph, result))
                print(f"{name} {graph}_ind: seconds per pass " + " ".join(f"{t:.2f}" for t in result["all_seconds"]),
                      flush=True)
        print()
        header = (f"{'config':<30}{'test graph':<15}{'queries':>8}{'distinct':>9}{'q/s':>7}{'dq/s':>7}"
                  f"{'ULTRA q/s':>11}{'ratio':>7}{'d-ratio':>8}{'peak MB':>9}{'ULTRA MB':>9}{'MRR':>7}{'H@10':>7}")
        print(header)
        print("-" * len(header))
        for name, graph, r in rows:
            qps, dqps = r["queries"] / r["seconds"], r["distinct"] / r["seconds"]
            ultra_qps, ultra_mb, _ = ULTRA[graph]
            print(f"{name:<30}{graph + '_ind':<15}{r['queries']:>8}{r['distinct']:>9}{qps:>7.0f}{dqps:>7.0f}"
                  f"{'/'.join(map(str, ultra_qps)):>11}{qps / max(ultra_qps):>7.2f}{dqps / max(ultra_qps):>8.2f}"
                  f"{r['peak_mb']:>9.0f}{ultra_mb:>9}{r['mrr']:>7.3f}{r['hits@10']:>7.3f}"
                  + (f"{r['peak_gpu_mb']:>9.0f} GPU MB" if r["peak_gpu_mb"] is not None else ""))
        kernel = "off (--no-fused-kernel)" if args.no_fused_kernel else fused_kernel_state()
        print(f"\nq/s from the fastest of {args.repeats} passes; "
              f"allocator: {'glibc defaults' if args.default_allocator else 'retain_freed_memory()'}; "
              f"fused kernel: {kernel}{'' if args.device == 'cpu' else ' (CPU only)'}")
        print("ratio = our queries/s over the higher of ULTRA's two runs; d-ratio = our distinct queries/s "
              "over the same (ULTRA scores every query): the like-for-like figure, target >= 2.0. "
              f"Machine: {os.cpu_count()} CPU(s), torch {torch.__version__}, evaluated on {_device_name(args.device)}. "
              "MRR after "
              f"{'the reused checkpoints' if args.reuse else f'{args.steps} training steps'} on this CPU, "
              f"the {SHIPPED}'s after its recipe (ULTRA's MRR: its 3-graph checkpoint).")


if __name__ == "__main__":
    main()
