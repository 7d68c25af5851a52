"""The query masks of benchmarks/edgeless_bench.py: which directed queries ask about an entity with no edge."""
from __future__ import annotations

import numpy as np

from benchmarks.edgeless_bench import edgeless_masks


def test_masks_follow_the_ranks_order_and_the_graph_degrees():
    # Entities 0-1-2 are linked; 3 is declared but in no edge. Ranks come as the tail query of every
    # triple (answer: its tail), then the head query of every triple (answer: its head).
    edge_index = np.array([[0, 1, 1, 2], [1, 0, 2, 1]])
    triples = np.array([[0, 0, 3], [3, 0, 1], [0, 0, 2]])
    masks = edgeless_masks(4, edge_index, triples)
    assert masks["answer with no edge"].tolist() == [True, False, False, False, True, False]
    assert masks["given entity with no edge"].tolist() == [False, True, False, True, False, False]
    assert masks["edges at both ends"].tolist() == [False, False, True, False, False, True]
    assert masks["every query"].all() and len(masks["every query"]) == 6
