"""Paired zero-shot differences between checkpoints on tokenized test graphs (reported, never used to choose).

Two ``zero_shot_bench.py`` runs give each checkpoint's MRR with an interval of its own; their
difference is known far more tightly, because both rank the same queries. This ranks every
checkpoint on the same zero-shot queries (a GraIL ``_ind`` graph's valid + test, an InGram graph's
test, as ``zero_shot_bench.py`` does) and gives, per graph and pooled per group (each query counted
once), each checkpoint's MRR and its paired difference to the first with a 95% bootstrap interval
over distinct queries, beside the relation-frequency baseline (no training) on the same queries.
Test graphs never choose a model: validation_bench.py does.

    python benchmarks/zero_shot_pair_bench.py WORK --checkpoint A --checkpoint B [--groups grail,ingram]
        [--out DIR] [--seed 0]

WORK is a ``zero_shot_bench.py --work`` folder whose graphs are tokenized with the checkpoints'
codebooks. Writes ``zero_shot_pairs.csv`` and ``.md`` into --out.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

GROUPS = ("grail", "ingram")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("work", type=Path, help="a zero_shot_bench.py --work folder (its artifacts/ are read)")
    parser.add_argument("--checkpoint", type=Path, action="append", required=True,
                        help="repeat; the first is the baseline of the differences")
    parser.add_argument("--groups", default=",".join(GROUPS), help=f"comma-separated, of {', '.join(GROUPS)}")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "zero_shot_pairs")
    args = parser.parse_args()
    groups = args.groups.split(",")
    if set(groups) - set(GROUPS):
        parser.error(f"--groups: choose from {', '.join(GROUPS)}")

    import torch

    from artifacts.compatibility import require_codebook_id
    from artifacts.token_tables import read_token_tables
    from reasoning_stage.evaluation import evaluate_graph, frequency_baseline
    from reasoning_stage.reasoning import load_model
    from validation_bench import RELATION_FREQUENCY, pool, write_paired_table
    from zero_shot_bench import GROUP_GRAPHS, zero_shot_label, zero_shot_splits

    graphs = [(group, zero_shot_label(group, name)) for group in groups for name in GROUP_GRAPHS[group]]
    missing = [label for _, label in graphs if not (args.work / "artifacts" / label).is_dir()]
    if missing:
        sys.exit(f"{args.work / 'artifacts'}: no token tables for {', '.join(missing)} "
                 "(run zero_shot_bench.py --work on it first)")
    tables = {label: read_token_tables(args.work / "artifacts" / label) for _, label in graphs}
    device = torch.device("cpu")
    started = time.perf_counter()
    reciprocal: dict[str, list[np.ndarray]] = {}
    query_groups: dict[str, np.ndarray | None] = {}
    baseline = {label: (RELATION_FREQUENCY, 1.0 / frequency_baseline(tables[label], zero_shot_splits(group)).pessimistic)
                for group, label in graphs}
    for path in args.checkpoint:
        loaded = load_model(path, device)
        require_codebook_id(list(tables.values()), loaded.codebook_id)
        model = loaded.model.eval()
        for group, label in graphs:
            ranks = evaluate_graph(model, tables[label], zero_shot_splits(group), device)
            reciprocal.setdefault(label, []).append(1.0 / ranks.pessimistic)
            query_groups[label] = ranks.query_group
        print(f"scored {path} ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    for group in groups:
        pool(reciprocal, query_groups, [label for g, label in graphs if g == group], f"{group} (pooled)",
             baseline)
    write_paired_table(args.out, "zero_shot_pairs", [str(p) for p in args.checkpoint], reciprocal, query_groups,
                       time.perf_counter() - started, args.seed, baseline)


if __name__ == "__main__":
    main()
