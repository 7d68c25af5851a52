"""Structural tokens: codes of an entity's local structure that use no entity or relation id.

Each entity gets a small vector of id-free statistics of its neighbourhood in
the inference graph (degrees, relation diversity, neighbour degrees, how
common its relations are). A k-means structural codebook quantizes these
vectors, so a code means the same shape of neighbourhood in any graph.

An entity's structural tokens are its own code (``0..K-1``, always rank 0)
plus the most frequent codes of its neighbours, shifted to ``K..2K-1``: one
step of Weisfeiler-Lehman-style refinement, still free of ids.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

FEATURES_VERSION = 1
FEATURE_NAMES = (
    "log_out_degree", "log_in_degree", "log_out_relations", "log_in_relations",
    "log_neighbours", "mean_log_neighbour_degree", "max_log_neighbour_degree",
    "mean_log_relation_share", "self_loop_share",
)


def structural_features(num_entities: int, triples: np.ndarray) -> np.ndarray:
    """``[num_entities, len(FEATURE_NAMES)]`` float32 features from ``[n, 3]`` (h, r, t) ids."""
    heads, rels, tails = (triples[:, i].astype(np.int64) for i in range(3))
    n = num_entities
    out_deg = np.bincount(heads, minlength=n).astype(np.float64)
    in_deg = np.bincount(tails, minlength=n).astype(np.float64)
    degree = out_deg + in_deg

    def distinct_count(owner: np.ndarray, other: np.ndarray) -> np.ndarray:
        if len(owner) == 0:
            return np.zeros(n)
        pairs = np.unique(np.stack([owner, other], axis=1), axis=0)
        return np.bincount(pairs[:, 0], minlength=n).astype(np.float64)

    out_rels = distinct_count(heads, rels)
    in_rels = distinct_count(tails, rels)
    neighbours = distinct_count(np.concatenate([heads, tails]), np.concatenate([tails, heads]))

    # Each edge seen from both ends: neighbour degree statistics.
    src = np.concatenate([heads, tails])
    dst = np.concatenate([tails, heads])
    log_nbr_deg = np.log1p(degree[dst])
    sum_nbr = np.bincount(src, weights=log_nbr_deg, minlength=n)
    max_nbr = np.zeros(n)
    np.maximum.at(max_nbr, src, log_nbr_deg)
    edges_per_node = np.maximum(np.bincount(src, minlength=n), 1)
    mean_nbr = sum_nbr / edges_per_node

    # How common each incident relation is in this graph (a share, so graph size cancels out).
    rel_share = np.bincount(rels).astype(np.float64) / max(len(rels), 1)
    log_share = np.log(np.maximum(rel_share[np.concatenate([rels, rels])], 1e-12)) if len(rels) else np.zeros(0)
    mean_share = np.bincount(src, weights=log_share, minlength=n) / edges_per_node
    self_loops = np.bincount(heads[heads == tails], minlength=n) / np.maximum(degree, 1)

    features = np.stack([
        np.log1p(out_deg), np.log1p(in_deg), np.log1p(out_rels), np.log1p(in_rels),
        np.log1p(neighbours), mean_nbr, max_nbr, mean_share / 4.0, self_loops,
    ], axis=1)
    return features.astype(np.float32)


def structure_tokens(own_codes: np.ndarray, triples: np.ndarray, codebook_size: int,
                     k: int) -> dict[int, list[tuple[int, int]]]:
    """Per entity: ``[(own_code, 1), (K + neighbour_code, count), ...]``, at most ``k`` tokens."""
    counts: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    heads, tails = triples[:, 0], triples[:, 2]
    for a, b in ((heads, tails), (tails, heads)):
        for src, dst in zip(a.tolist(), b.tolist()):
            counts[src][codebook_size + int(own_codes[dst])] += 1
    tokens: dict[int, list[tuple[int, int]]] = {}
    for entity in range(len(own_codes)):
        neighbour = sorted(counts.get(entity, {}).items(), key=lambda item: (-item[1], item[0]))
        tokens[entity] = [(int(own_codes[entity]), 1)] + neighbour[: k - 1]
    return tokens
