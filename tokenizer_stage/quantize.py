"""FAISS k-means codebooks: fitting them, and turning feature vectors into codes.

GPU FAISS is used when the installed faiss has GPU support and a GPU is
present; results are the same codes up to floating-point ties.
"""
from __future__ import annotations

from collections import Counter
from typing import Iterable

import numpy as np


def load_faiss():
    """The faiss module, imported on first use so that importing TOFU stays fast."""
    import faiss

    return faiss


def gpu_available() -> bool:
    faiss = load_faiss()
    return hasattr(faiss, "get_num_gpus") and faiss.get_num_gpus() > 0


def fit_codebook(vectors: np.ndarray, size: int, seed: int, iterations: int = 20) -> np.ndarray:
    """k-means centroids ``[size, dim]`` (float32) of ``vectors``.

    ``size`` shrinks to the number of distinct vectors when there are fewer,
    because k-means cannot place more centroids than points.
    """
    faiss = load_faiss()
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
        faiss = load_faiss()
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


# Pooled text vectors keep identity only at a fine grain: a product quantizer of M sub-codebooks of
# up to 256 codes each stores a 384-d vector in M bytes, and its decoded vector keeps name-level neighbours.
PRODUCT_CODE_BITS = 8


def fit_product_quantizer(vectors: np.ndarray, subquantizers: int, seed: int) -> np.ndarray:
    """``[subquantizers * codes, dim / subquantizers]`` float32 sub-centroids fitted with FAISS; ``codes``
    is 256, or the largest power of two the sample can fit (a tiny graph's few texts)."""
    faiss = load_faiss()
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    dim = vectors.shape[1]
    if dim % subquantizers:
        raise ValueError(f"a {dim}-d vector does not split into {subquantizers} equal parts")
    bits = min(PRODUCT_CODE_BITS, max(1, int(np.log2(max(len(vectors), 2)))))
    quantizer = faiss.ProductQuantizer(dim, subquantizers, bits)
    quantizer.cp.seed = seed
    quantizer.cp.min_points_per_centroid = 1   # a tiny sample gets fewer codes, not a warning per part
    quantizer.train(vectors)
    centroids = faiss.vector_to_array(quantizer.centroids).astype(np.float32)
    return centroids.reshape(subquantizers * (1 << bits), dim // subquantizers)


def product_codes(vectors: np.ndarray, centroids: np.ndarray, subquantizers: int) -> np.ndarray:
    """``[n, M]`` uint8 codes of ``vectors``: per sub-vector, the nearest frozen sub-centroid (FAISS)."""
    faiss = load_faiss()
    codes_per_part = centroids.shape[0] // subquantizers
    bits = int(codes_per_part).bit_length() - 1
    quantizer = faiss.ProductQuantizer(subquantizers * centroids.shape[1], subquantizers, bits)
    faiss.copy_array_to_vector(np.ascontiguousarray(centroids, dtype=np.float32).ravel(), quantizer.centroids)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if len(vectors) == 0:
        return np.zeros((0, subquantizers), np.uint8)
    packed = quantizer.compute_codes(vectors)
    if bits == 8:
        return packed
    # Fewer than 256 codes per part (a tiny fit sample): FAISS packs the bits; unpack them to one byte each.
    bits_of = np.unpackbits(packed, axis=1, bitorder="little")[:, :subquantizers * bits]
    weights = (1 << np.arange(bits)).astype(np.uint16)
    return (bits_of.reshape(len(vectors), subquantizers, bits) * weights).sum(-1).astype(np.uint8)
