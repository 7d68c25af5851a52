"""A no-training name baseline: character 3-gram TF-IDF cosine between source and candidate names.

The floor a matching model has to clear on the same test set and candidates: each name is
lower-cased and padded with a space at both ends (" ab c " -> " ab", "ab ", "b c", " c "),
3-gram counts are weighted by the inverse document frequency over the candidate side, rows are
L2-normalised, and each source ranks the candidates by cosine. A missing or empty name is a zero
vector: it scores 0 against everything, and ties count against the answer, as in the model rows.
"""
from __future__ import annotations

from collections import Counter
from typing import Sequence

import numpy as np
import scipy.sparse as sp
import torch

from reasoning_stage.assignment import SINKHORN_ITERATIONS, SINKHORN_TEMPERATURE
from reasoning_stage.evaluation import Ranks, rank_of_targets


def char_ngrams(name: str | None, n: int = 3) -> Counter:
    text = f" {name.lower()} " if name else ""
    return Counter(text[i:i + n] for i in range(len(text) - n + 1))


def _counts(names: Sequence[str | None], vocabulary: dict[str, int], grow: bool) -> sp.csr_matrix:
    rows, cols, values = [], [], []
    for row, name in enumerate(names):
        for gram, count in char_ngrams(name).items():
            col = vocabulary.setdefault(gram, len(vocabulary)) if grow else vocabulary.get(gram)
            if col is not None:     # a gram no candidate has adds nothing to any cosine
                rows.append(row), cols.append(col), values.append(count)
    return sp.csr_matrix((np.asarray(values, np.float32), (rows, cols)), shape=(len(names), len(vocabulary)))


def _normalised(matrix: sp.csr_matrix) -> sp.csr_matrix:
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(1)).ravel())
    return sp.diags(np.where(norms > 0, 1 / np.maximum(norms, 1e-12), 0).astype(np.float32)) @ matrix


def tfidf_vectors(source_names: Sequence[str | None],
                  target_names: Sequence[str | None]) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """L2-normalised TF-IDF rows of both sides, IDF (smoothed, as ``log((1 + N) / (1 + df)) + 1``) over the targets."""
    vocabulary: dict[str, int] = {}
    target = _counts(target_names, vocabulary, grow=True)
    source = _counts(source_names, vocabulary, grow=False)
    df = np.bincount(target.indices, minlength=len(vocabulary))
    idf = sp.diags((np.log((1 + len(target_names)) / (1 + df)) + 1).astype(np.float32))
    return _normalised(sp.csr_matrix(source @ idf)), _normalised(sp.csr_matrix(target @ idf))


def tfidf_scores(source_names: Sequence[str | None], target_names: Sequence[str | None]) -> np.ndarray:
    """Dense cosine matrix ``[len(source), len(target)]`` (for a global assignment over it)."""
    source, target = tfidf_vectors(source_names, target_names)
    return np.asarray((source @ target.T).todense(), dtype=np.float32)


def matching_names(artifact) -> tuple[list[str | None], list[str | None]]:
    """The names the baseline compares for an alignment or linking artifact, indexed as its pairs are:
    graph-1 against graph-2 entity names (alignment), mention texts by ``mention_index`` against the
    KB's entity names (linking)."""
    from reasoning_stage.reasoning import artifact_task

    if artifact_task(artifact) == "alignment":
        return (artifact.graphs[0].tables["entities"]["name"].to_pylist(),
                artifact.graphs[1].tables["entities"]["name"].to_pylist())
    index = artifact.mentions["mention_index"].to_numpy()
    texts = np.full(int(index.max()) + 1 if len(index) else 0, None, dtype=object)
    texts[index] = artifact.mentions["text"].to_pylist()       # pairs hold mention indices, not rows
    return texts.tolist(), artifact.kb.tables["entities"]["name"].to_pylist()


def tfidf_ranks(source_names: list[str], target_names: list[str], pairs: np.ndarray,
                candidates: np.ndarray | None = None, chunk: int = 1024) -> Ranks:
    """Rank of ``pairs[:, 1]`` among the candidates for each ``pairs[:, 0]`` by TF-IDF cosine.

    ``candidates`` (target indices, each gold target among them) restricts the ranking to a subset,
    e.g. the test counterparts as the alignment peers rank; None ranks every target. IDF is over the
    ranked candidates. rank = 1 + #{other candidates scoring >= the answer}.
    """
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    candidates = np.arange(len(target_names)) if candidates is None else np.asarray(candidates, np.int64)
    position = np.full(len(target_names), -1, np.int64)
    position[candidates] = np.arange(len(candidates))
    gold = position[pairs[:, 1]]
    if (gold < 0).any():
        raise ValueError(f"{int((gold < 0).sum())} gold target(s) are not among the candidates")
    sources = sorted(set(pairs[:, 0].tolist()))
    row_of = {s: i for i, s in enumerate(sources)}
    source, target = tfidf_vectors([source_names[s] for s in sources], [target_names[c] for c in candidates])
    target_t = sp.csr_matrix(target.T)
    rows = np.array([row_of[s] for s in pairs[:, 0].tolist()], np.int64)
    pessimistic, optimistic = np.zeros(len(pairs), np.int64), np.zeros(len(pairs), np.int64)
    for start in range(0, len(pairs), chunk):
        part = slice(start, start + chunk)
        scores = torch.from_numpy(np.asarray((source[rows[part]] @ target_t).todense(), dtype=np.float32))
        nothing = torch.zeros(scores.shape, dtype=torch.bool)
        p, o = rank_of_targets(scores, torch.from_numpy(gold[part]), nothing)
        pessimistic[part], optimistic[part] = p.numpy(), o.numpy()
    return Ranks(pessimistic, optimistic, np.full(len(pairs), "tail"))


def tfidf_assignment(source_names: list[str], target_names: list[str], pairs: np.ndarray,
                     iterations: int = SINKHORN_ITERATIONS, temperature: float = SINKHORN_TEMPERATURE,
                     hungarian: bool = True) -> tuple[Ranks, float | None]:
    """The TF-IDF cosine of the test sources against the test counterparts only, assigned globally:
    ``(ranks by Sinkhorn log-assignment scores, Hungarian H@1 or None)``. One-to-one pairs only."""
    from reasoning_stage.assignment import hungarian_top1, sinkhorn

    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    sources, row = np.unique(pairs[:, 0], return_inverse=True)
    targets, col = np.unique(pairs[:, 1], return_inverse=True)
    scores = tfidf_scores([source_names[s] for s in sources], [target_names[t] for t in targets])
    log_p = sinkhorn(torch.from_numpy(scores), iterations, temperature)
    p, o = rank_of_targets(log_p[torch.from_numpy(row)], torch.from_numpy(col),
                           torch.zeros(len(pairs), len(targets), dtype=torch.bool))
    hits = float(np.mean(hungarian_top1(scores)[row] == col)) if hungarian else None
    return Ranks(p.numpy(), o.numpy(), np.full(len(pairs), "tail")), hits
