"""Entity linking against a knowledge base of 100k+ entities: exhaustive scoring against a FAISS short list.

The knowledge base is WikiMEL's (18,880 entities) joined with every other tokenized graph given as
distractors (e.g. Richpedia-MEL's KB and the DBP15K, DB15K and MKG-W graphs: about 100k entities in
all), each graph embedded by its own message passing. WikiMEL test mentions rank the whole base

- exhaustively (every entity scored), and
- through a short list: the union of the ``--shortlist`` best entities of each dense channel (a FAISS
  inner-product index over the decoded name and text vectors) and each lexical channel (subword
  postings), re-ranked by the full score (``matching.best_targets(..., shortlist=...)``).

Prints Hits@1 / Hits@10 and milliseconds per mention of both, and writes ``linking_scale.md``.

    python benchmarks/linking_scale_bench.py ARTIFACT_ROOT [--checkpoint CKPT] [--mentions 2000]
        [--shortlist 100] [--distractors RichpediaMEL,zh_en,DB15K-MKG-W]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


@dataclass
class JoinedSide:
    """Several graphs' entities as one candidate side (what ``pair_scores`` and the evidence read)."""
    bags: dict
    size: int
    text: object
    lexicon: dict | None
    graph: object


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path, help="artifact root holding WikiMEL and the distractor artifacts")
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: the shipped checkpoint")
    parser.add_argument("--mentions", type=int, default=2000, help="WikiMEL test mentions ranked (first N)")
    parser.add_argument("--shortlist", type=int, default=100, help="best targets per channel kept")
    parser.add_argument("--distractors", default="RichpediaMEL,zh_en,DB15K-MKG-W")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "linking_scale")
    args = parser.parse_args()

    import numpy as np
    import torch

    from artifacts.shipped import shipped_checkpoint
    from artifacts.task_tables import AlignmentArtifact
    from reasoning_stage import matching
    from reasoning_stage.evidence import TextEvidence
    from reasoning_stage.reasoning import load_model, matching_problem, read_artifacts, task_pairs

    torch.set_num_threads(os.cpu_count() or 1)
    device = torch.device("cpu")
    loaded = load_model(args.checkpoint or shipped_checkpoint(), device)
    names = ["WikiMEL", *[n for n in args.distractors.split(",") if n]]
    _, artifacts = read_artifacts([args.root / n for n in names])
    by_name = {a.name: a for a in artifacts}
    wikimel = by_name["WikiMEL"]
    problem = matching_problem(loaded, wikimel, "test", device)
    model, task = loaded.model, problem.task
    started = time.perf_counter()
    with torch.inference_mode():
        z_source, _ = matching.embed(model, problem.source, task)
        sides, labels = [problem.target], wikimel.kb.tables["entities"]["label"].to_pylist()
        for name in names[1:]:
            artifact = by_name[name]
            tables = artifact.graphs if isinstance(artifact, AlignmentArtifact) else (artifact.kb,)
            sides += [matching.tables_side(t, model, device) for t in tables]
            labels += [label for t in tables for label in t.tables["entities"]["label"].to_pylist()]
        z_target = torch.cat([matching.embed(model, side, task)[0] for side in sides])
    bags = {m: torch.cat([s.bags[m] for s in sides]) for m in problem.target.bags if all(m in s.bags for s in sides)}
    # A graph without some field (MKG-W's entities have no names) contributes empty rows for it.
    vocabulary = {f: m.shape[1] for f, m in problem.target.text.lexical.items()}
    width = {f: v.shape[1] for f, v in problem.target.text.dense.items()}
    text = TextEvidence(
        {f: torch.cat([s.text.lexical[f].to_sparse_coo() if f in s.text.lexical
                       else torch.sparse_coo_tensor(torch.zeros(2, 0, dtype=torch.long), torch.zeros(0), (s.size, v))
                       for s in sides]).coalesce().to_sparse_csr() for f, v in vocabulary.items()},
        {f: torch.cat([s.text.dense[f] if f in s.text.dense else torch.zeros(s.size, d) for s in sides])
         for f, d in width.items()},
        torch.cat([s.text.years if s.text.years is not None
                   else torch.tensor([[float("nan"), float("nan"), 0.0]]).expand(s.size, 3) for s in sides]))
    joined = JoinedSide(bags, int(z_target.shape[0]), text, problem.target.lexicon, problem.target.graph)
    evidence = matching.matching_evidence(problem.source, joined)
    print(f"knowledge base: {joined.size:,} entities ({', '.join(names)}); prepared in "
          f"{time.perf_counter() - started:.0f} s", flush=True)

    pairs = task_pairs(wikimel, "test")[:args.mentions]
    lines = ["| candidates scored | mentions | Hits@1 | Hits@10 | ms per mention |", "|---|---|---|---|---|"]
    for label, shortlist, batch in (("every entity", None, 64), (f"short list ({args.shortlist} per channel)",
                                                                  args.shortlist, 64)):
        start = time.perf_counter()
        with torch.inference_mode():
            top, _ = matching.best_targets(model, z_source, z_target, problem.source, joined, pairs[:, 0], task, 10,
                                           evidence, shortlist, batch_size=batch)
        milliseconds = 1000 * (time.perf_counter() - start) / len(pairs)
        # Right when the label is the gold one: Richpedia-MEL's KB repeats some WikiMEL entities under the
        # same Wikidata id. Other graphs' copies of a real-world entity (DBpedia URIs) count as wrong.
        label_of = np.array(labels, dtype=object)
        right = label_of[top] == label_of[pairs[:, 1]][:, None]
        hits1, hits10 = float(np.mean(right[:, 0])), float(np.mean(right.any(1)))
        lines.append(f"| {label} | {len(pairs):,} | {hits1:.4f} | {hits10:.4f} | {milliseconds:.1f} |")
        print(lines[-1], flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    text_out = (f"WikiMEL test mentions against a {joined.size:,}-entity knowledge base ({', '.join(names)}); "
                f"checkpoint {args.checkpoint or shipped_checkpoint()}; {os.cpu_count()} CPUs.\n\n"
                + "\n".join(lines) + "\n")
    (args.out / "linking_scale.md").write_text(text_out, encoding="utf-8")
    print(text_out)


if __name__ == "__main__":
    main()
