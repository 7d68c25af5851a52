"""FAISS k-means codebooks: fitting them, and turning feature vectors into codes.

GPU FAISS is used when the installed faiss has GPU support and a GPU is
present; results are the same codes up to floating-point ties.
"""
from __future__ import annotations

from collections import Counter
from typing import Iterable

import numpy as np


def _faiss():
    import faiss

    return faiss


def gpu_available() -> bool:
    faiss = _faiss()
    return hasattr(faiss, "get_num_gpus") and faiss.get_num_gpus() > 0


def fit_codebook(vectors: np.ndarray, size: int, seed: int, iterations: int = 20) -> np.ndarray:
    """k-means centroids ``[size, dim]`` (float32) of ``vectors``.

    ``size`` shrinks to the number of distinct vectors when there are fewer,
    because k-means cannot place more centroids than points.
    """
    faiss = _faiss()
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) == 0:
        raise ValueError("no vectors to fit a codebook on")
    distinct = len(np.unique(vectors, axis=0)) if len(vectors) <= 4 * size else len(vectors)
    size = max(1, min(size, distinct))
    if size == 1:
        return vectors.mean(axis=0, keepdims=True)
    kmeans = faiss.Kmeans(vectors.shape[1], size, niter=iterations, seed=seed, verbose=False,
                          gpu=gpu_available(), max_points_per_centroid=256, min_points_per_centroid=1)
    kmeans.train(vectors)
    return np.ascontiguousarray(kmeans.centroids, dtype=np.float32)


class CodeAssigner:
    """Nearest-centroid search against one frozen codebook."""

    def __init__(self, centroids: np.ndarray):
        faiss = _faiss()
        self.dim = int(centroids.shape[1])
        index = faiss.IndexFlatL2(self.dim)
        index.add(np.ascontiguousarray(centroids, dtype=np.float32))
        if gpu_available():  # pragma: no cover - exercised on GPU machines only
            index = faiss.index_cpu_to_all_gpus(index)
        self.index = index

    def assign(self, vectors: np.ndarray) -> np.ndarray:
        """Code (int64) of each row of ``vectors``."""
        if len(vectors) == 0:
            return np.zeros(0, dtype=np.int64)
        if vectors.shape[1] != self.dim:
            raise ValueError(f"vectors of dim {vectors.shape[1]} cannot use a codebook of dim {self.dim}")
        _, codes = self.index.search(np.ascontiguousarray(vectors, dtype=np.float32), 1)
        return codes[:, 0].astype(np.int64)


def top_codes(codes: Iterable[int], k: int) -> list[tuple[int, int]]:
    """The ``k`` most frequent codes with their counts; ties go to the smaller code."""
    counts = Counter(int(c) for c in codes)
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:k]


class FeatureSample:
    """A bounded, seeded sample of feature rows for fitting a codebook.

    Memory stays at ``capacity`` rows however many vectors pass through
    (reservoir sampling), so fitting does not grow with the number of graphs.
    """

    def __init__(self, capacity: int, seed: int):
        self.capacity = capacity
        self.rng = np.random.default_rng(seed)
        self.rows: np.ndarray | None = None
        self.seen = 0

    def add(self, vectors: np.ndarray) -> None:
        for row in vectors:
            self.seen += 1
            if self.seen <= self.capacity:
                self._grow(self.seen, len(row))
                self.rows[self.seen - 1] = row
            else:
                slot = self.rng.integers(0, self.seen)
                if slot < self.capacity:
                    self.rows[slot] = row

    def _grow(self, needed: int, dim: int) -> None:
        # Allocate as rows arrive (doubling), so a small sample costs small memory.
        if self.rows is None:
            self.rows = np.empty((min(self.capacity, 1024), dim), dtype=np.float32)
        elif needed > len(self.rows):
            bigger = np.empty((min(self.capacity, 2 * len(self.rows)), dim), dtype=np.float32)
            bigger[: len(self.rows)] = self.rows
            self.rows = bigger

    def vectors(self) -> np.ndarray:
        if self.rows is None:
            return np.zeros((0, 0), dtype=np.float32)
        return self.rows[: min(self.seen, self.capacity)]
