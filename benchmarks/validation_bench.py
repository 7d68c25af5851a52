"""Compare checkpoints on the full validation splits that training watches (never a test split).

Training logs a validation MRR on ``eval_triples`` (100) queries of each split (a
seeded sample of link-prediction queries, the first held-out pairs of a matching
task), which is cheap but noisy: 100 alignment pairs give a standard error of
about 0.04 MRR. To choose between two checkpoints, this scores each of them on
the whole of every validation split, and gives the paired difference to the first
checkpoint with a bootstrap interval over the same queries (resampling distinct queries:
the ranks of queries that ask the same entity and relation move together):

- link prediction: the ``valid`` split of each token-table artifact (the GraIL
  training graphs' valid.txt, ranked over their train graph, filtered);
- alignment / linking: the pairs training holds out (the artifact's ``valid``
  split, else the share of train that ``tofu train`` holds out, the same whatever its
  ``--seed``), twice: by the embeddings alone (what training learns), and as shipped
  (``<task> as shipped``): with evidence weights fitted afresh, as ``tofu fit-evidence``
  fits them, on the other train pairs only, and the other train links as anchors
  (``held_out_ranks_as_shipped``; a checkpoint's own weights saw the held-out pairs).
  ``--embeddings-only`` skips the second, which costs about two minutes per task.

Beside them, a no-training baseline on the same queries and candidates: relation frequency
(``frequency_baseline``) for link prediction, the TF-IDF name cosine of ``name_baseline.py`` for
alignment and linking.

    python benchmarks/validation_bench.py ARTIFACT... --checkpoint A --checkpoint B [--seed 0] [--holdout-seed 0]
        [--max-triples N] [--embeddings-only] [--out DIR]

Writes ``validation.csv`` and ``validation.md`` into --out.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

RELATION_FREQUENCY = "relation frequency"
NAME_TFIDF = "TF-IDF names"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("artifacts", nargs="+", type=Path, help="token-table and task artifact folders or roots")
    parser.add_argument("--checkpoint", type=Path, action="append", required=True,
                        help="repeat; the first is the baseline of the differences")
    parser.add_argument("--seed", type=int, default=0, help="seed of the --max-triples sample and the bootstrap")
    parser.add_argument("--holdout-seed", type=int, default=0,
                        help="seed of the held-out matching pairs: 0 for every run since commit 497609e; an older "
                             "run held out with its own --seed")
    parser.add_argument("--max-triples", type=int, default=None, help="seeded sample per graph (default: all)")
    parser.add_argument("--embeddings-only", action="store_true",
                        help="score alignment and linking by the embeddings alone, not also as shipped")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "validation")
    args = parser.parse_args()

    import torch

    from benchmarks.name_baseline import matching_names, tfidf_ranks
    from reasoning_stage.evaluation import evaluate_graph, frequency_baseline
    from reasoning_stage.matching import rank_matches
    from reasoning_stage.config import TASKS
    from artifacts.root import artifact_folders
    from reasoning_stage.reasoning import held_out_ranks_as_shipped, load_model, read_artifacts
    from artifacts.compatibility import require_codebook_id
    from reasoning_stage.training import matching_job

    device = torch.device("cpu")
    tables, tasks = read_artifacts(artifact_folders(args.artifacts))
    tables = [t for t in tables if "valid" in t.splits and len(t.queries("valid"))]
    if not tables and not tasks:
        parser.error("no validation split among the artifacts")
    started = time.perf_counter()
    reciprocal: dict[str, list[np.ndarray]] = {}
    groups: dict[str, np.ndarray | None] = {}  # distinct-query id of each rank (the same for every checkpoint)
    baseline: dict[str, tuple[str, np.ndarray]] = {}   # split -> (baseline, its reciprocal ranks)
    for t in tables:
        ranks = frequency_baseline(t, ["valid"], max_triples=args.max_triples, seed=args.seed)
        baseline[f"link_prediction:{t.name}"] = (RELATION_FREQUENCY, 1.0 / ranks.pessimistic)
    for path in args.checkpoint:
        loaded = load_model(path, device)
        require_codebook_id(list(tables) + list(tasks), loaded.codebook_id)
        model = loaded.model.eval()
        for t in tables:
            ranks = evaluate_graph(model, t, ["valid"], device, max_triples=args.max_triples, seed=args.seed)
            reciprocal.setdefault(f"link_prediction:{t.name}", []).append(1.0 / ranks.pessimistic)
            groups[f"link_prediction:{t.name}"] = ranks.query_group
        for artifact in tasks:
            job = matching_job(artifact, model, device, args.holdout_seed)
            ranks = rank_matches(model, job.source, job.target, job.valid_pairs, job.task)
            split = f"{TASKS[job.task]}:{job.name}"
            reciprocal.setdefault(split, []).append(1.0 / ranks.pessimistic)
            groups[split] = None  # one pair per source entity
            if split not in baseline:   # the held-out pairs are the same for every checkpoint
                sources, targets = matching_names(artifact)
                baseline[split] = (NAME_TFIDF, 1.0 / tfidf_ranks(sources, targets, job.valid_pairs).pessimistic)
            if not args.embeddings_only:
                shipped_split = f"{TASKS[job.task]} as shipped:{job.name}"
                ranks = held_out_ranks_as_shipped(loaded, artifact, device, args.holdout_seed)
                reciprocal.setdefault(shipped_split, []).append(1.0 / ranks.pessimistic)
                groups[shipped_split] = None
                baseline[shipped_split] = baseline[split]
        print(f"scored {path} ({time.perf_counter() - started:.0f} s)", file=sys.stderr)

    lp = [k for k in reciprocal if k.startswith("link_prediction:")]
    if lp:  # every link-prediction query counts once, as in a pooled MRR
        pool(reciprocal, groups, lp, "link_prediction (all graphs pooled)", baseline)
    write_paired_table(args.out, "validation", [str(p) for p in args.checkpoint], reciprocal, groups,
                       time.perf_counter() - started, args.seed, baseline)


def pool(reciprocal: dict[str, list[np.ndarray]], groups: dict[str, np.ndarray | None], splits: list[str],
         name: str, baseline: dict[str, tuple[str, np.ndarray]]) -> None:
    """Add ``name``: the reciprocal ranks of ``splits`` together, each query counted once, their
    distinct-query ids kept apart per split; the baseline's too where every split has the same one."""
    reciprocal[name] = [np.concatenate([reciprocal[k][i] for k in splits]) for i in range(len(reciprocal[splits[0]]))]
    offsets = np.cumsum([0] + [int(groups[k].max()) + 1 for k in splits])
    groups[name] = np.concatenate([groups[k] + offset for k, offset in zip(splits, offsets)])
    labels = {baseline[k][0] for k in splits if k in baseline}
    if len(labels) == 1 and all(k in baseline for k in splits):
        baseline[name] = (labels.pop(), np.concatenate([baseline[k][1] for k in splits]))


def write_paired_table(out: Path, stem: str, names: list[str], reciprocal: dict[str, list[np.ndarray]],
                       groups: dict[str, np.ndarray | None], seconds: float, seed: int,
                       baseline: dict[str, tuple[str, np.ndarray]]) -> None:
    """Write and print ``stem``.csv / .md: per split, the no-training ``baseline``'s name and MRR on the
    same queries, each checkpoint's MRR and its paired difference to the first with a 95% bootstrap
    interval over distinct queries (``groups``; None: every query)."""
    from artifacts.atomic import atomic_write_bytes, atomic_write_csv
    from reasoning_stage.evaluation import bootstrap_interval

    rows = []
    for split, per_checkpoint in reciprocal.items():
        row = {"split": split, "queries": len(per_checkpoint[0])}
        label, base = baseline.get(split, ("", None))
        if base is not None and len(base) != len(per_checkpoint[0]):
            raise ValueError(f"{split}: the baseline ranked {len(base)} queries, the checkpoints {len(per_checkpoint[0])}")
        row["baseline"] = label
        row["baseline mrr"] = "" if base is None else round(float(base.mean()), 4)
        for i, values in enumerate(per_checkpoint):
            row[f"mrr[{i}]"] = round(float(values.mean()), 4)
            if i:
                low, high = bootstrap_interval(values - per_checkpoint[0], groups[split], seed=seed)
                row[f"diff[{i}]"] = round(float((values - per_checkpoint[0]).mean()), 4)
                row[f"diff[{i}] 95%"] = f"[{low:+.4f}, {high:+.4f}]"
        rows.append(row)

    atomic_write_csv(out / f"{stem}.csv", rows)
    header = list(rows[0])
    lines = ["\n".join(f"- [{i}] {n}" for i, n in enumerate(names)), "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(r.get(h, "")) for h in header) + " |" for r in rows]
    lines.append(f"\n{seconds:.0f} s on CPU")
    atomic_write_bytes(out / f"{stem}.md", ("\n".join(lines) + "\n").encode("utf-8"))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
