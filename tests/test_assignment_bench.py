"""benchmarks/assignment_bench.py: the Hits@1 of each assignment variant on a fold's score matrix."""
from __future__ import annotations

import torch

from benchmarks.assignment_bench import fold_hits

# Rows 0 and 1 both prefer column 0; row 1's answer is column 1, which only a one-to-one matching
# gives it (row 0 holds column 0 more strongly). Row 2 is unambiguous.
CONFLICT = torch.tensor([[0.9, 0.1, 0.0],
                         [0.8, 0.7, 0.0],
                         [0.0, 0.1, 0.9]])
GOLD = torch.tensor([0, 1, 2])


def test_assignment_resolves_a_conflict_that_ranking_alone_does_not():
    hits = fold_hits(CONFLICT, GOLD)
    assert abs(hits["no assignment"] - 2 / 3) < 1e-6
    assert hits["Hungarian (top 1)"] == 1.0
    product = [label for label in hits if label.endswith("(product's first pass)")]
    assert len(product) == 1 and hits[product[0]] == 1.0


def test_ties_count_against_the_answer():
    tied = torch.tensor([[0.5, 0.5], [0.0, 1.0]])
    assert fold_hits(tied, torch.tensor([0, 1]))["no assignment"] == 0.5
