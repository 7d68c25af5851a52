"""Trained ablation of the message functions (prints figures; not a test).

Trains the full model (text, image and structure tokens) once per message
set -- DistMult, TransE, RotatE alone, and the gated mixture of all three --
and training loss (``--losses``: adversarial, softmax, both) with the same steps, schedule and seeds on the GraIL training graphs
fb237_v1, WN18RR_v1 and nell_v1, then evaluates each on the `_ind` graphs
with ULTRA's protocol (the `_ind` graph's valid and test queries, filtered,
head and tail, ties against the answer). Writes `message_ablation.csv` and
`message_ablation.md` (MRR, Hits@1, Hits@10 per graph and seed, and the
mean over seeds) into the work folder.

    python benchmarks/message_ablation_bench.py [--data PATH] [--work DIR] [--steps 300] [--seeds 0,1]
    python benchmarks/message_ablation_bench.py --work DIR --reuse   # tokenized graphs already in DIR
    python benchmarks/message_ablation_bench.py --work DIR --reuse --sets distmult --losses adversarial,softmax
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from reasoning_stage.config import TrainConfig  # noqa: E402  (after the path is set)

GRAPHS = ["fb237_v1", "WN18RR_v1", "nell_v1"]
MESSAGE_SETS = {"distmult": ("distmult",), "transe": ("transe",), "rotate": ("rotate",),
                "mixture": ("distmult", "transe", "rotate")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("TOFU_DATA", REPO.parent / "shared" / "data")))
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "message_ablation",
                        help="folder for artifacts, checkpoints and the tables")
    parser.add_argument("--reuse", action="store_true", help="reuse the tokenized graphs under --work/artifacts")
    parser.add_argument("--steps", type=int, default=300, help="training steps per model")
    parser.add_argument("--seeds", default="0,1", help="comma-separated training seeds")
    parser.add_argument("--sets", default=",".join(MESSAGE_SETS), help=f"message sets, from {list(MESSAGE_SETS)}")
    parser.add_argument("--negatives", type=int, default=TrainConfig.negatives, help="negatives per query of the adversarial loss")
    parser.add_argument("--losses", default="adversarial", help="comma-separated training losses (adversarial, softmax, both)")
    args = parser.parse_args()
    if not (args.data / "grail").is_dir():
        sys.exit(f"no GraIL data under {args.data}; pass --data or set TOFU_DATA")
    seeds = [int(s) for s in args.seeds.split(",")]
    sets = args.sets.split(",")
    losses = args.losses.split(",")
    unknown = set(sets) - set(MESSAGE_SETS)
    if unknown:
        sys.exit(f"unknown message sets {sorted(unknown)}; choose from {list(MESSAGE_SETS)}")

    import torch

    from artifacts.atomic import atomic_write_bytes, atomic_write_csv
    from artifacts.token_tables import read_token_tables
    from pipeline.orchestrate import tokenize_many
    from reasoning_stage.allocator import retain_freed_memory
    from reasoning_stage.evaluation import evaluate_graph
    from reasoning_stage.config import ModelConfig
    from reasoning_stage.models import TofuModel
    from reasoning_stage.config import LOSSES
    from reasoning_stage.training import model_config_for, train
    from tokenize_bench import write_kg_toml
    from tokenizer_stage.config import TokenizerConfig

    if set(losses) - set(LOSSES):
        sys.exit(f"unknown losses {sorted(set(losses) - set(LOSSES))}; choose from {list(LOSSES)}")
    retain_freed_memory()
    torch.set_num_threads(os.cpu_count() or 1)
    device = torch.device("cpu")
    missing = [g for g in GRAPHS if not (args.work / "artifacts" / g).is_dir()]
    if args.reuse and missing:
        sys.exit(f"--reuse: no tokenized {', '.join(missing)} under {args.work / 'artifacts'}")
    if not args.reuse:
        dirs = [write_kg_toml(args.work / "graphs" / g, args.data, g) for g in GRAPHS]
        tokenize_many(dirs, args.work / "artifacts", TokenizerConfig(), workers=1, progress=False)
    tables = [read_token_tables(args.work / "artifacts" / g) for g in GRAPHS]
    rows = []
    variants = [(name, loss) for name in sets for loss in losses]
    for name, loss in variants:
        for seed in seeds:
            torch.manual_seed(seed)
            model = TofuModel(model_config_for(tables[0], ModelConfig(messages=MESSAGE_SETS[name])))
            start = time.perf_counter()
            train(model, tables, TrainConfig(max_steps=args.steps, eval_every=args.steps, eval_triples=50, seed=seed,
                                             lr_schedule="cosine", loss=loss, negatives=args.negatives),
                  args.work / f"checkpoint_{name}_{loss}_{seed}", device)
            seconds = time.perf_counter() - start
            for graph, table in zip(GRAPHS, tables):
                metrics = evaluate_graph(model, table, ["ind_valid", "test"], device).metrics()
                rows.append({"messages": name, "loss": loss, "seed": seed, "graph": f"{graph}_ind",
                             "mrr": round(metrics["mrr"], 4), "hits@1": round(metrics["hits@1"], 4),
                             "hits@10": round(metrics["hits@10"], 4), "train_seconds": round(seconds, 1)})
                print(f"{name:<9} {loss:<11} seed {seed} {graph}_ind  MRR {metrics['mrr']:.3f}  "
                      f"H@1 {metrics['hits@1']:.3f}  H@10 {metrics['hits@10']:.3f}  "
                      f"({args.steps} steps in {seconds:.0f}s)", flush=True)
    atomic_write_csv(args.work / "message_ablation.csv", rows)
    lines = [f"Full model, {args.steps} training steps (cosine, {args.negatives} negatives) on {', '.join(GRAPHS)}; seeds {args.seeds}; "
             "MRR / Hits@1 / Hits@10 on the `_ind` graphs (valid + test), mean over seeds.", "",
             "| messages | loss | " + " | ".join(f"{g}_ind" for g in GRAPHS) + " | mean MRR |",
             "|---|---|" + "---|" * (len(GRAPHS) + 1)]
    for name, loss in variants:
        cells, mrrs = [], []
        for graph in GRAPHS:
            mine = [r for r in rows if r["messages"] == name and r["loss"] == loss and r["graph"] == f"{graph}_ind"]
            mean = {k: sum(r[k] for r in mine) / len(mine) for k in ("mrr", "hits@1", "hits@10")}
            spread = f" ({min(r['mrr'] for r in mine):.3f}-{max(r['mrr'] for r in mine):.3f})" if len(mine) > 1 else ""
            cells.append(f"{mean['mrr']:.3f}{spread} / {mean['hits@1']:.3f} / {mean['hits@10']:.3f}")
            mrrs.append(mean["mrr"])
        lines.append(f"| {name} | {loss} | " + " | ".join(cells) + f" | {sum(mrrs) / len(mrrs):.3f} |")
    table = "\n".join(lines) + "\n"
    atomic_write_bytes(args.work / "message_ablation.md", table.encode("utf-8"))
    print("\n" + table)


if __name__ == "__main__":
    main()
