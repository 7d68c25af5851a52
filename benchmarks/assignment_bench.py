"""Which global assignment to rank alignments with, chosen on held-out train links (prints figures; not a test).

For each alignment task artifact, its train links are split as `--fit-on-seeds` splits them (70%
anchors read as input, the other 30% held out) and the held-out part is halved into folds A and B.
The evidence weights are fitted on one fold and the other is ranked against its own counterparts
(the peers' protocol), once per assignment variant: none, Sinkhorn at several temperatures (in
standard deviations of the score matrix: `scaled_sinkhorn`, as `rank_matches` ranks) and iteration
counts, the Hungarian method (top 1 only), CSLS before Sinkhorn, and the product's assignment followed
by one round of assignment anchors at several confidences (the pairs each other's best after it with
a probability above the confidence join the anchors, and the fold is scored and assigned again:
`matching.assigned_scores`). Test links are never read.

    python benchmarks/assignment_bench.py runs/multitask/artifacts/DB15K-MKG-W runs/multitask/artifacts/zh_en
    python benchmarks/assignment_bench.py --anchor-share 0.3 runs/multitask/artifacts/DB15K-MKG-W

`--anchor-share 0.3` keeps fewer anchors than held-out pairs, as at test time (30% seed links).

The artifacts come from `python benchmarks/multitask_bench.py --tokenize-only`.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TEMPERATURES = (0.05, 0.1, 0.25, 0.5)
ITERATIONS = (10, 100)
ANCHOR_CONFIDENCES = (0.5, 0.8, 0.95)


def csls(scores, k: int = 10):
    """Cross-domain similarity local scaling: each score less the mean of its row's and its column's k best."""
    rows = scores.topk(min(k, scores.shape[1]), dim=1).values.mean(1, keepdim=True)
    columns = scores.topk(min(k, scores.shape[0]), dim=0).values.mean(0, keepdim=True)
    return 2 * scores - rows - columns


def hits_at_1(matrix, gold_column) -> float:
    """Hits@1 with the evaluation's ranks: ties (within its tolerance) count against the answer."""
    import torch

    from reasoning_stage.evaluation import rank_of_targets

    pessimistic, _ = rank_of_targets(matrix, gold_column, torch.zeros_like(matrix, dtype=torch.bool))
    return float((pessimistic == 1).float().mean())


def fold_hits(scores, gold_column) -> dict[str, float]:
    """Hits@1 of every variant on one fold's ``[n, n]`` score matrix against its own counterparts
    (``gold_column[i]``: the column of row i's answer). The variant ``rank_matches`` ranks with is
    marked "(product's first pass)"."""
    from reasoning_stage.assignment import hungarian_top1, scaled_sinkhorn
    from reasoning_stage.matching import ASSIGNMENT_ITERATIONS, ASSIGNMENT_TEMPERATURE

    def hits(matrix) -> float:
        return hits_at_1(matrix, gold_column)

    out = {"no assignment": hits(scores)}
    for temperature in TEMPERATURES:
        for iterations in ITERATIONS:
            product = (temperature, iterations) == (ASSIGNMENT_TEMPERATURE, ASSIGNMENT_ITERATIONS)
            mark = " (product's first pass)" if product else ""
            label = f"Sinkhorn T {temperature}, {iterations} it.{mark}"
            out[label] = hits(scaled_sinkhorn(scores, iterations, temperature))
    out["Hungarian (top 1)"] = float(np.mean(hungarian_top1(scores.numpy()) == gold_column.numpy()))
    out["CSLS, then Sinkhorn T 0.25, 10 it."] = hits(scaled_sinkhorn(csls(scores), 10, 0.25))
    return out


def task_folds(folder: Path, anchor_share: float) -> dict[str, dict[str, float]]:
    """Per fold (``"B"``: fitted on A, ranked B; ``"A"``: the reverse), each variant's Hits@1."""
    import torch

    from artifacts.shipped import shipped_checkpoint
    from artifacts.task_tables import read_alignment_artifact
    from reasoning_stage import matching, reasoning

    device = torch.device("cpu")
    artifact = read_alignment_artifact(folder)
    checkpoint = shipped_checkpoint()
    if checkpoint is None:
        sys.exit("no shipped checkpoint in artifacts/shipped")
    loaded = reasoning.load_model(checkpoint, device)
    shipped_state = {k: v.clone() for k, v in loaded.model.state_dict().items()}
    anchors, held = reasoning.held_out_seed_links(reasoning.task_pairs(artifact, "train"), anchor_share)
    # The held-out pairs keep file order, so the folds are its first and second half.
    folds = {"A": held[: len(held) // 2], "B": held[len(held) // 2:]}
    problem = reasoning.matching_problem(loaded, artifact, "train", device)
    results = {}
    for fit, ranked in (("A", "B"), ("B", "A")):
        loaded.model.load_state_dict(shipped_state)
        # As `reasoning.fit_evidence` fits (every anchor hop offered), then ranks (the hops it kept).
        evidence = matching.matching_evidence(problem.source, problem.target, anchors)
        matching.fit_evidence_weights(loaded.model, [(problem.source, problem.target, evidence, folds[fit],
                                                      problem.task)])
        far = loaded.model.channel_in_use(problem.task, "far_anchors")
        evidence = matching.matching_evidence(problem.source, problem.target, anchors, far)
        pairs = folds[ranked]
        scores = matching.score_matrix(loaded.model, problem.source, problem.target, pairs[:, 0], problem.task,
                                       evidence)
        counterparts = torch.as_tensor(np.unique(pairs[:, 1]))
        gold_column = torch.as_tensor(np.searchsorted(counterparts.numpy(), pairs[:, 1]))
        results[ranked] = fold_hits(scores[:, counterparts].cpu(), gold_column)
        for confidence in ANCHOR_CONFIDENCES:
            assigned = matching.assigned_scores(loaded.model, problem.source, problem.target, pairs[:, 0],
                                                counterparts, problem.task, evidence, confidence=confidence)
            product = confidence == matching.ASSIGNMENT_ANCHOR_CONFIDENCE
            label = f"then assignment anchors, probability > {confidence}{' (product)' if product else ''}"
            results[ranked][label] = hits_at_1(assigned[:, counterparts].cpu(), gold_column)
        print(f"{folder.name}: fold {ranked} ranked ({len(pairs)} pairs, weights fitted on fold {fit})", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("artifacts", type=Path, nargs="+", help="alignment task artifact folders")
    parser.add_argument("--anchor-share", type=float, default=None,
                        help="share of the train links read as anchors; the rest are halved into the folds "
                             "(default: reasoning.ANCHOR_SHARE, what --fit-on-seeds reads)")
    args = parser.parse_args()
    import torch

    from reasoning_stage.reasoning import ANCHOR_SHARE

    if args.anchor_share is None:
        args.anchor_share = ANCHOR_SHARE

    torch.set_num_threads(os.cpu_count() or 1)
    table = {folder.name: task_folds(folder, args.anchor_share) for folder in args.artifacts}
    variants = list(next(iter(next(iter(table.values())).values())))
    header = "| variant | " + " | ".join(f"{name} fold B / A" for name in table) + " | mean |"
    print("\n" + header + "\n" + "|---" * (len(table) + 2) + "|")
    for variant in variants:
        cells = [f"{folds['B'][variant]:.3f} / {folds['A'][variant]:.3f}" for folds in table.values()]
        mean = np.mean([folds[f][variant] for folds in table.values() for f in ("A", "B")])
        print(f"| {variant} | " + " | ".join(cells) + f" | {mean:.4f} |")
    print("\nHits@1 of each held-out fold ranked against its own counterparts; ties count against the answer; "
          "fold sizes above.")


if __name__ == "__main__":
    main()
