"""The paired tables of benchmarks/validation_bench.py: pooling, and the no-training baseline beside each split."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from benchmarks.validation_bench import NAME_TFIDF, RELATION_FREQUENCY, pool, write_paired_table


def _splits():
    reciprocal = {"a": [np.array([1.0, 0.5]), np.array([1.0, 1.0])],
                  "b": [np.array([0.25, 0.25, 1.0]), np.array([0.5, 0.25, 1.0])]}
    groups = {"a": np.array([0, 1]), "b": np.array([0, 0, 1])}
    return reciprocal, groups


def test_pool_keeps_queries_apart_and_pools_a_shared_baseline():
    reciprocal, groups = _splits()
    baseline = {"a": (RELATION_FREQUENCY, np.array([0.5, 0.5])), "b": (RELATION_FREQUENCY, np.array([0.1, 0.2, 0.3]))}
    pool(reciprocal, groups, ["a", "b"], "both", baseline)
    assert reciprocal["both"][1].tolist() == [1.0, 1.0, 0.5, 0.25, 1.0]
    # b's queries 0 and 1 are not a's: distinct-query ids are offset past a's.
    assert groups["both"].tolist() == [0, 1, 2, 2, 3]
    label, pooled = baseline["both"]
    assert label == RELATION_FREQUENCY and pooled.tolist() == [0.5, 0.5, 0.1, 0.2, 0.3]


@pytest.mark.parametrize("baseline", [
    {"a": (RELATION_FREQUENCY, np.array([0.5, 0.5])), "b": (NAME_TFIDF, np.array([0.1, 0.2, 0.3]))},
    {"a": (RELATION_FREQUENCY, np.array([0.5, 0.5]))},
])
def test_pool_gives_no_baseline_unless_every_split_has_the_same_one(baseline):
    reciprocal, groups = _splits()
    pool(reciprocal, groups, ["a", "b"], "both", baseline)
    assert "both" in reciprocal and "both" not in baseline


def test_table_puts_the_baseline_beside_the_paired_difference(tmp_path):
    reciprocal, groups = _splits()
    baseline = {"a": (NAME_TFIDF, np.array([0.5, 0.0]))}
    write_paired_table(tmp_path, "validation", ["first", "second"], reciprocal, groups, 1.0, 0, baseline)
    with open(tmp_path / "validation.csv", newline="") as f:
        rows = {r["split"]: r for r in csv.DictReader(f)}
    assert (rows["a"]["baseline"], float(rows["a"]["baseline mrr"])) == (NAME_TFIDF, 0.25)
    assert (float(rows["a"]["mrr[0]"]), float(rows["a"]["mrr[1]"]), float(rows["a"]["diff[1]"])) == (0.75, 1.0, 0.25)
    assert rows["b"]["baseline"] == rows["b"]["baseline mrr"] == ""
    assert "| a | 2 | TF-IDF names | 0.25 | 0.75 | 1.0 | 0.25 |" in (tmp_path / "validation.md").read_text()


def test_table_refuses_a_baseline_on_other_queries(tmp_path):
    reciprocal, groups = _splits()
    with pytest.raises(ValueError, match="the baseline ranked 3 queries, the checkpoints 2"):
        write_paired_table(tmp_path, "validation", ["first", "second"], reciprocal, groups, 1.0, 0,
                           {"a": (RELATION_FREQUENCY, np.array([1.0, 1.0, 1.0]))})
    assert not list(tmp_path.iterdir())
