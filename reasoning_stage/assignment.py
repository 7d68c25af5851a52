"""Global one-to-one assignment over an alignment score matrix.

Ranking each source on its own lets two sources take the same best target; alignment is one-to-one,
so a global assignment over all test sources at once resolves such conflicts (the strongest
alignment peers end with Sinkhorn or the Hungarian method).
"""
from __future__ import annotations

import numpy as np
import torch


# Plain Sinkhorn's defaults (the name baseline's global assignment); the model's assignment over its own
# scores uses matching.ASSIGNMENT_ITERATIONS / ASSIGNMENT_TEMPERATURE on standardised scores.
SINKHORN_ITERATIONS = 10
SINKHORN_TEMPERATURE = 0.05


def sinkhorn(scores: torch.Tensor, iterations: int = SINKHORN_ITERATIONS,
             temperature: float = SINKHORN_TEMPERATURE) -> torch.Tensor:
    """Log-domain Sinkhorn normalisation of ``scores`` [A, B] (A may differ from B).

    Alternately normalises rows and columns to mass 1, so a target claimed strongly by one source
    loses weight for the others. A non-square matrix is padded to square with constant "dustbin"
    rows or columns that absorb the unmatched mass (uniform marginals would force mass onto every
    column of the larger side). Returns log-assignment scores [A, B]; rank a row by them. Log
    domain because ``exp(score / temperature)`` overflows at small temperatures.
    """
    if scores.dim() != 2:
        raise ValueError(f"sinkhorn needs a 2-d score matrix, got shape {tuple(scores.shape)}")
    rows, cols = scores.shape
    log_p = scores.float() / temperature
    if rows == 0 or cols == 0:
        return log_p
    n = max(rows, cols)
    if rows != cols:   # the dustbins' constant does not matter: a row or column normalisation removes it
        log_p = torch.nn.functional.pad(log_p, (0, n - cols, 0, n - rows), value=float(log_p.min()))
    for _ in range(iterations):
        log_p = log_p - torch.logsumexp(log_p, dim=1, keepdim=True)
        log_p = log_p - torch.logsumexp(log_p, dim=0, keepdim=True)
    return log_p[:rows, :cols]


def scaled_sinkhorn(scores: torch.Tensor, iterations: int, temperature: float) -> torch.Tensor:
    """:func:`sinkhorn` of ``scores`` in units of their own spread (standardised first), so one
    temperature serves any score scale."""
    return sinkhorn((scores - scores.mean()) / scores.std().clamp(min=1e-6), iterations, temperature)


def hungarian_top1(scores: np.ndarray) -> np.ndarray:
    """For each row of ``scores`` [A, B], the column of the one-to-one assignment maximising the total
    score (scipy ``linear_sum_assignment``); -1 for rows left unmatched when A > B. Exact, but only a
    top-1 (no ranking), and cubic in the size: for test sets of up to some ten thousand pairs."""
    from scipy.optimize import linear_sum_assignment

    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"hungarian_top1 needs a 2-d score matrix, got shape {scores.shape}")
    matched = np.full(scores.shape[0], -1, dtype=np.int64)
    if scores.size:
        row, col = linear_sum_assignment(scores, maximize=True)
        matched[row] = col
    return matched
