"""MRR apart for the queries that ask about an entity with no edge in the inference graph.

A graph may declare entities that no triple of its inference graph links (OpenKE's entity2id.txt lists
every entity of the dataset; `tofu tokenize` warns how many query triples ask about one). TOFU's
reasoner scores a candidate by the query's messages that reach it; no message reaches an answer with
no edge, which is left to its tokens (docs/BENCHMARKS.md has what the shipped model makes of them).
This splits a checkpoint's ranks (and the relation-frequency baseline's, on the same queries) by
whether the answer, or the given entity, has an edge, and gives the MRR the whole split would read if
every query with an edgeless answer ranked it first: how much of the gap to a published figure these
queries can explain.

    python benchmarks/edgeless_bench.py ARTIFACT... [--checkpoint CKPT] [--split test]

Each ARTIFACT is a token-table folder (`tofu tokenize`, with the checkpoint's codebooks).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def edgeless_masks(num_entities: int, edge_index: np.ndarray, triples: np.ndarray) -> dict[str, np.ndarray]:
    """Masks over the directed queries of ``triples`` ``[n, 3]`` (local ids), in the ranks' order (the tail
    query of every triple, then the head query of every triple): which ask for an answer with no edge in
    the graph ``edge_index`` ``[2, E]``, which give an entity with none, and which have edges at both ends."""
    degree = np.bincount(np.asarray(edge_index).reshape(-1), minlength=num_entities)
    given = np.concatenate([triples[:, 0], triples[:, 2]])
    answer = np.concatenate([triples[:, 2], triples[:, 0]])
    return {"every query": np.ones(len(given), bool),
            "answer with no edge": degree[answer] == 0,
            "given entity with no edge": degree[given] == 0,
            "edges at both ends": (degree[answer] > 0) & (degree[given] > 0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("artifacts", nargs="+", type=Path, help="token-table folders")
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: the shipped checkpoint")
    parser.add_argument("--split", default="test")
    args = parser.parse_args()

    import torch

    from artifacts.compatibility import require_codebook_id
    from artifacts.shipped import shipped_checkpoint
    from artifacts.token_tables import read_token_tables
    from reasoning_stage.evaluation import evaluate_graph, frequency_baseline, ranked_queries
    from reasoning_stage.reasoning import load_model

    device = torch.device("cpu")
    loaded = load_model(args.checkpoint or shipped_checkpoint(), device)
    print("| graph | queries | relation frequency, no training | model | if every edgeless answer ranked first |")
    print("|---|---|---|---|---|")
    for folder in args.artifacts:
        tables = read_token_tables(folder)
        require_codebook_id([tables], loaded.codebook_id)
        graph, triples, _ = ranked_queries(tables, [args.split])
        masks = edgeless_masks(graph.num_entities, graph.edge_index.numpy(), triples.numpy())
        started = time.perf_counter()
        model = 1.0 / evaluate_graph(loaded.model, tables, [args.split], device).pessimistic
        base = 1.0 / frequency_baseline(tables, [args.split]).pessimistic
        first = np.where(masks["answer with no edge"], 1.0, model).mean()
        for label, mask in masks.items():
            cells = [f"{tables.name} {args.split}: {label}", f"{mask.sum():,} ({mask.mean():.1%})",
                     *(f"{values[mask].mean():.3f}" if mask.any() else "–" for values in (base, model)),
                     f"{first:.3f}" if label == "every query" else ""]
            print("| " + " | ".join(cells) + " |")
        print(f"({tables.name}: {time.perf_counter() - started:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
