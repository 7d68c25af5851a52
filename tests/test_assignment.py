"""Global one-to-one assignment: Sinkhorn normalisation and the Hungarian top-1."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from reasoning_stage.assignment import hungarian_top1, sinkhorn

# Rows 0 and 1 both prefer column 0 (greedy argmax collides); the one-to-one assignment with the
# largest total score is the permutation 0->1, 1->0, 2->2 (0.8 + 0.85 + 0.3 against 0.9 + 0.2 + 0.2).
CONFLICT = np.array([[0.90, 0.80, 0.10],
                     [0.85, 0.10, 0.20],
                     [0.10, 0.20, 0.30]], dtype=np.float32)
TRUE = np.array([1, 0, 2])


def test_greedy_collides_but_assignment_recovers_the_permutation():
    assert CONFLICT.argmax(1).tolist() == [0, 0, 2]          # the case the assignment exists for
    assert hungarian_top1(CONFLICT).tolist() == TRUE.tolist()
    log_p = sinkhorn(torch.from_numpy(CONFLICT))
    assert log_p.shape == CONFLICT.shape
    assert log_p.argmax(1).tolist() == TRUE.tolist()


def test_sinkhorn_marginals_and_no_overflow():
    scores = torch.randn(6, 6) * 50                         # exp(score / 0.05) would overflow float32
    assert torch.isfinite(sinkhorn(scores)).all()
    generator = torch.Generator().manual_seed(0)
    # Converges to a doubly stochastic matrix (slowly at small temperatures, hence 0.5 here).
    p = sinkhorn(torch.rand(6, 6, generator=generator), iterations=50, temperature=0.5).exp()
    torch.testing.assert_close(p.sum(0), torch.ones(6), atol=1e-4, rtol=0)
    torch.testing.assert_close(p.sum(1), torch.ones(6), atol=1e-4, rtol=0)
    # Wide: every row placed once, every column at most once (the dustbin row takes the rest).
    wide = sinkhorn(torch.rand(3, 7, generator=generator), iterations=50, temperature=0.5).exp()
    torch.testing.assert_close(wide.sum(1), torch.ones(3), atol=1e-4, rtol=0)
    assert (wide.sum(0) <= 1 + 1e-4).all() and wide.sum() > 3 - 1e-3


@pytest.mark.parametrize("shape", [(4, 9), (9, 4)])
def test_rectangular(shape):
    rng = np.random.default_rng(0)
    a, b = shape
    n = min(a, b)
    # A hidden one-to-one match of n rows to n columns scores high; everything else is noise.
    scores = rng.uniform(0, 0.5, shape).astype(np.float32)
    rows, cols = rng.permutation(a)[:n], rng.permutation(b)[:n]
    scores[rows, cols] = 1.0
    matched = hungarian_top1(scores)
    assert matched.shape == (a,)
    assert (matched[rows] == cols).all()
    if a > b:
        unmatched = np.setdiff1d(np.arange(a), rows)
        assert (matched[unmatched] == -1).all()
    else:
        assert len(set(matched.tolist())) == a and (matched >= 0).all()
    log_p = sinkhorn(torch.from_numpy(scores))
    assert log_p.shape == shape
    assert (log_p.argmax(1).numpy()[rows] == cols).all()


def test_rectangular_conflict_is_resolved():
    # Two rows, three columns: both rows like column 0 best, row 1 only slightly less than row 0.
    scores = np.array([[0.9, 0.1, 0.85], [0.88, 0.2, 0.1]], dtype=np.float32)
    assert scores.argmax(1).tolist() == [0, 0]
    assert hungarian_top1(scores).tolist() == [2, 0]
    assert sinkhorn(torch.from_numpy(scores), iterations=50).argmax(1).tolist() == [2, 0]


def test_sinkhorn_is_equivariant_to_consistent_permutations():
    rng = np.random.default_rng(1)
    scores = torch.from_numpy(rng.normal(size=(6, 8)).astype(np.float32))
    row_perm, col_perm = torch.from_numpy(rng.permutation(6)), torch.from_numpy(rng.permutation(8))
    direct = sinkhorn(scores)[row_perm][:, col_perm]
    permuted = sinkhorn(scores[row_perm][:, col_perm])
    torch.testing.assert_close(permuted, direct, atol=1e-4, rtol=1e-5)
    assert not torch.allclose(sinkhorn(scores), permuted)   # the permutation did move entries


def test_hungarian_maximises_not_minimises():
    scores = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert hungarian_top1(scores).tolist() == [0, 1]
    assert hungarian_top1(-scores).tolist() == [1, 0]


def test_empty_and_bad_shapes():
    assert hungarian_top1(np.zeros((0, 3))).tolist() == []
    assert sinkhorn(torch.zeros(0, 3)).shape == (0, 3)
    with pytest.raises(ValueError):
        sinkhorn(torch.zeros(3))
    with pytest.raises(ValueError):
        hungarian_top1(np.zeros(3))
