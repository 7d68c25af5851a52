"""Seconds per training step of the shipped recipe's settings, per graph and malloc setting (prints figures).

Each (allocator, graph) pair runs in a fresh process, because malloc settings are
process-wide: a model initialised with seed 0, the recipe's model and training
settings (``pipeline/defaults.py``: its message functions, loss, batches and edge
dropout), ``--warmup`` untimed steps, then ``--steps`` timed ones. It prints seconds per
step and the process's peak RSS; with several graphs, also the mean weighted as training
draws graphs (by their number of training triples).

Allocators: ``glibc`` (defaults), ``threshold`` (mmap and trim thresholds raised,
blocks over 32 MiB still mmap-ed: ``retain_freed_memory(any_size=False)``),
``heap`` (what the ``tofu`` commands use: ``retain_freed_memory()``, no mmap at all).

    python benchmarks/train_step_bench.py ROOT [--graphs fb237_v4,WN18RR_v3,nell_v3 | all]
        [--allocators glibc,threshold,heap] [--steps 15] [--warmup 3]
        [--messages distmult --messages distmult,transe,rotate] [--edge-dropout 0.5 --edge-dropout 0.7]
        [--pair-links off --pair-links on] [--device cuda]

``--messages``, ``--edge-dropout`` and ``--pair-links`` (each repeatable) time every combination in turn, alternating
them per graph so that a slow spell of the machine falls on all of them (default: the recipe's).
The same seeds draw the same batches and dropout shares for every combination.

ROOT holds token tables of the recipe's graphs (``tofu pretrain``'s WORK/artifacts).
"""
from __future__ import annotations

import argparse
import multiprocessing
import resource
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ALLOCATORS = ("glibc", "threshold", "heap")


def _time_steps(artifact: str, allocator: str, steps: int, warmup: int, messages: str | None,
                edge_dropout: float | None, pair_links: bool | None, device: str, queue) -> None:
    import numpy as np
    import torch

    from artifacts.token_tables import read_token_tables
    from pipeline.defaults import MODEL_DEFAULTS, TRAIN_DEFAULTS
    from reasoning_stage.allocator import retain_freed_memory
    from reasoning_stage.config import ModelConfig
    from reasoning_stage.models import TofuModel
    from reasoning_stage.config import TrainConfig
    from reasoning_stage.training import draw_batch, model_config_for, prepare, training_step

    if allocator != "glibc":
        retain_freed_memory(any_size=allocator == "heap")
    tables = read_token_tables(Path(artifact))
    torch.manual_seed(0)
    settings = dict(MODEL_DEFAULTS, **({"messages": tuple(messages.split(","))} if messages else {}),
                    **({} if pair_links is None else {"pair_links": pair_links}))
    on = torch.device(device)
    model = TofuModel(model_config_for(tables, ModelConfig(**settings))).to(on)
    config = TrainConfig(**dict(TRAIN_DEFAULTS, **({} if edge_dropout is None else {"edge_dropout": edge_dropout})))
    prepared = prepare(tables, config.train_split, on, model.config.relation_links)
    rng, generator = np.random.default_rng(0), torch.Generator().manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
    for number in range(warmup + steps):
        if number == warmup:
            start = time.perf_counter()
        picks = draw_batch(prepared.train_relations, config.batch_size, config.batch_relations, rng)
        loss = training_step(model, prepared, prepared.train_triples[picks], config, generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    if on.type == "cuda":
        torch.cuda.synchronize(on)
    queue.put({"seconds_per_step": (time.perf_counter() - start) / steps,
               "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
               "train_triples": len(prepared.train_triples)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path, help="folder of token-table artifacts (the recipe's WORK/artifacts)")
    parser.add_argument("--graphs", default="fb237_v4,WN18RR_v3,nell_v3", help="comma-separated, or 'all'")
    parser.add_argument("--allocators", default=",".join(ALLOCATORS))
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda or cuda:N")
    parser.add_argument("--messages", action="append", default=None,
                        help="comma-separated message functions (repeatable: each set is timed)")
    parser.add_argument("--edge-dropout", type=float, action="append", default=None,
                        help="largest share of other triples hidden per step (repeatable: each is timed)")
    parser.add_argument("--pair-links", choices=("off", "on"), action="append", default=None,
                        help="relation-graph pair links (repeatable: each is timed)")
    args = parser.parse_args()
    from artifacts.manifest import MANIFEST_NAME

    allocators = args.allocators.split(",")
    if set(allocators) - set(ALLOCATORS):
        sys.exit(f"--allocators: choose from {', '.join(ALLOCATORS)}")
    if args.graphs == "all":
        graphs = sorted(p.name for p in args.root.iterdir() if (p / MANIFEST_NAME).is_file()
                        and (p / "triples.parquet").is_file())
    else:
        graphs = args.graphs.split(",")
    missing = [g for g in graphs if not (args.root / g / MANIFEST_NAME).is_file()]
    if missing:
        sys.exit(f"{args.root}: no token tables for {', '.join(missing)}")

    import torch

    ctx = multiprocessing.get_context("spawn")
    variants = [(m, d, None if p is None else p == "on") for m in args.messages or [None]
                for d in args.edge_dropout or [None] for p in args.pair_links or [None]]
    label = {(m, d, p): f"{m or 'recipe messages'}, edge dropout {'recipe' if d is None else d}, pair links "
                        f"{'recipe' if p is None else ('on' if p else 'off')}" for m, d, p in variants}
    results: dict[tuple, dict] = {}
    for graph in graphs:
        for allocator in allocators:
            for variant in variants:
                queue = ctx.Queue()
                child = ctx.Process(target=_time_steps, args=(str(args.root / graph), allocator, args.steps,
                                                              args.warmup, *variant, args.device, queue))
                child.start()
                child.join()
                if child.exitcode != 0:
                    sys.exit(f"timing {graph} with {allocator} failed")
                results[graph, allocator, variant] = queue.get()
                print(f"{graph} {allocator} {label[variant]}: "
                      f"{results[graph, allocator, variant]['seconds_per_step']:.3f} s/step", flush=True)
    for variant in variants:
        print(f"\n{label[variant]}")
        header = (f"{'graph':<12}{'train triples':>14}"
                  + "".join(f"{a + ' s/step':>18}{'peak MB':>9}" for a in allocators))
        print(header)
        print("-" * len(header))
        for graph in graphs:
            row = f"{graph:<12}{results[graph, allocators[0], variant]['train_triples']:>14,}"
            for allocator in allocators:
                r = results[graph, allocator, variant]
                row += f"{r['seconds_per_step']:>18.3f}{r['peak_mb']:>9.0f}"
            print(row)
        if len(graphs) > 1:
            weights = {g: results[g, allocators[0], variant]["train_triples"] for g in graphs}
            total = sum(weights.values())
            row = f"{'drawn mean':<12}{total:>14,}"
            for allocator in allocators:
                mean = sum(weights[g] * results[g, allocator, variant]["seconds_per_step"] for g in graphs) / total
                row += f"{mean:>18.3f}{'':>9}"
            print(row)
    print(f"\n{args.steps} timed steps after {args.warmup} untimed, per fresh process; "
          f"torch {torch.__version__}, {multiprocessing.cpu_count()} CPU(s), device {args.device}. Weighted mean: graphs drawn by training "
          "triples, as `tofu train` draws them.")


if __name__ == "__main__":
    main()
