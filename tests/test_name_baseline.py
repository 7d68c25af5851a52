"""The TF-IDF name baseline of benchmarks/multitask_bench.py: 3-grams, IDF, ties against the answer."""
from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (LinkingArtifact.split uses pa.compute)
import pytest

from benchmarks.name_baseline import char_ngrams, tfidf_assignment, tfidf_ranks, tfidf_scores


def test_char_ngrams_pad_and_lower_case():
    assert char_ngrams("Ab C") == {" ab": 1, "ab ": 1, "b c": 1, " c ": 1}
    assert char_ngrams(None) == {} and char_ngrams("") == {}


def test_exact_names_rank_first():
    targets = ["Paris", "London", "Berlin", "Rome"]
    sources = ["berlin", "paris", "rome", "londn"]
    pairs = np.array([[0, 2], [1, 0], [2, 3], [3, 1]])
    ranks = tfidf_ranks(sources, targets, pairs)
    assert ranks.pessimistic.tolist() == [1, 1, 1, 1]
    assert ranks.metrics()["hits@1"] == 1.0


def test_missing_names_tie_against_the_answer():
    targets = ["alpha", None, "gamma", ""]
    sources = [None, "alpha"]
    pairs = np.array([[0, 0], [1, 1]])
    ranks = tfidf_ranks(sources, targets, pairs)
    # A nameless source scores 0 against all 4 targets; a nameless answer scores 0 like 3 others.
    assert ranks.pessimistic.tolist() == [4, 4]
    assert ranks.optimistic.tolist() == [1, 2]


def test_idf_prefers_the_rare_gram():
    # The source shares three 3-grams with each of targets 0 and 1, but " aa", "aaa", "aa " are in three
    # candidates and " xq", "xqz", "qz " in one: IDF over the candidates makes target 1 the best.
    targets = ["common aaa", "common xqz", "other aaa", "third aaa"]
    scores = tfidf_scores(["xqz aaa"], targets)
    assert scores[0, 1] > scores[0, 0] > 0
    assert tfidf_ranks(["xqz aaa"], targets, np.array([[0, 1]])).pessimistic.tolist() == [1]
    assert tfidf_ranks(["xqz aaa"], targets, np.array([[0, 0]])).pessimistic.tolist() == [2]


def test_candidates_subset_and_chunks():
    rng = np.random.default_rng(0)
    words = ["".join(rng.choice(list("abcdefgh"), 6)) for _ in range(50)]
    sources = [w[:5] for w in words]                         # a prefix of the answer's name
    pairs = np.stack([np.arange(50), np.arange(50)], 1)
    full = tfidf_ranks(sources, words, pairs)
    assert (full.pessimistic == tfidf_ranks(sources, words, pairs, chunk=7).pessimistic).all()
    subset = np.arange(0, 50, 2)
    part = tfidf_ranks(sources, words, pairs[::2], candidates=subset)
    assert (part.pessimistic <= full.pessimistic[::2]).all()   # fewer candidates, never a worse rank
    assert part.pessimistic.max() <= len(subset)
    with pytest.raises(ValueError):
        tfidf_ranks(sources, words, pairs[1:2], candidates=subset)   # gold 1 is not a candidate


def test_assignment_resolves_a_shared_best_candidate():
    # Both sources are closest to "john smith"; one-to-one, "jon smith" must take "jon smyth".
    targets = ["john smith", "jon smyth", "mary jones"]
    sources = ["john smith", "jon smith", "mary jones"]
    pairs = np.array([[0, 0], [1, 1], [2, 2]])
    assert tfidf_ranks(sources, targets, pairs).pessimistic.tolist() == [1, 2, 1]
    ranks, hungarian = tfidf_assignment(sources, targets, pairs)
    assert ranks.pessimistic.tolist() == [1, 1, 1]
    assert hungarian == 1.0


def _names(names):
    return SimpleNamespace(tables={"entities": pa.table({"name": pa.array(names, pa.string())})})


def test_bench_rows_of_both_task_kinds(tmp_path):
    from artifacts.task_tables import AlignmentArtifact, LinkingArtifact
    from benchmarks.multitask_bench import ALL_TARGETS, BASELINE, TEST_TARGETS, name_baseline_rows

    alignment = AlignmentArtifact(tmp_path, {"task": {"name": "toy"}},
                                  (_names(["berlin", "paris", "rome"]), _names(["Rome", "Oslo", "Paris", "Berlin"])),
                                  {"test": np.array([[0, 3], [1, 2]])})
    rows = name_baseline_rows(alignment)
    assert [r[1] for r in rows] == [ALL_TARGETS["alignment"], TEST_TARGETS, TEST_TARGETS]
    assert rows[0][0] == rows[1][0] == BASELINE and rows[2][0].startswith(BASELINE + ", with assignment")
    assert all(r[2]["hits@1"] == 1.0 and r[2]["queries"] == 2 for r in rows)
    # Mention rows are out of order: texts are looked up by mention_index, not by row.
    mentions = pa.table({"mention_index": [1, 0, 2], "text": ["oslo", "rome", "nowhere"],
                         "split": ["test", "test", "test"], "entity": [1, 0, -1]})
    given = {"folder": tmp_path, "manifest": {"task": {"name": "toy"}, "counts": {"mentions": {"test": 3}}},
             "kb": _names(["Rome", "Oslo"]), "mentions": mentions}
    # The baseline reads names only; the token tables of the mentions stay empty.
    linking = LinkingArtifact(**{f.name: given.get(f.name) for f in dataclasses.fields(LinkingArtifact)})
    (label, protocol, metrics, _), = name_baseline_rows(linking)
    assert (label, protocol, metrics["queries"], metrics["hits@1"]) == (BASELINE, ALL_TARGETS["linking"], 2, 1.0)
