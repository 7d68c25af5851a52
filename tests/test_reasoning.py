"""Stage two: invariance, ranking with ties, filtering, checkpoints, learning, multimodal effect."""
from __future__ import annotations

import json
import math
import shutil
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch_scatter import scatter

from artifacts.checkpoint import load_checkpoint, save_checkpoint
from artifacts.token_tables import read_token_tables
from pipeline.cli import main
from pipeline.pretrain import read_recipe
from reasoning_stage.evaluation import (bootstrap_interval, directed_queries, evaluate_graph, frequency_baseline,
                                       rank_of_targets, rank_triples)
from reasoning_stage.graph_data import GraphTensors, KnownTriples, TokenTensor, graph_tensors
from reasoning_stage import layers
from reasoning_stage import training as training_module
from reasoning_stage.layers import MixtureOfMessageConv, edge_plan, reach_step
from reasoning_stage.config import LEADING_MESSAGE_SHARE, ModelConfig
from reasoning_stage.models import QueryBatch, TofuModel, graph_plans, relation_groups, with_content_match
from reasoning_stage.reasoning import PredictionInputError, load_model, read_prediction_queries
from reasoning_stage.config import TrainConfig
from reasoning_stage.training import (WeightAverage, draw_batch, graph_draw_probabilities, learning_rate_at,
                                      model_config_for, prepare, step_graph, train, training_step)
from tokenizer_stage.tokenize import tokenize_graph

SMALL = dict(dim=16, entity_layers=2, relation_layers=2)


@pytest.fixture(scope="module")
def example_tables(tmp_path_factory, example_graph, codebooks_dir, fast_config):
    out = tmp_path_factory.mktemp("tables")
    tokenize_graph(example_graph, out, codebooks_dir, fast_config)
    return read_token_tables(out / "example")


def _relabelled_copy(source: Path, target: Path, seed: int) -> tuple[dict, dict]:
    """The same graph with every entity and relation id renamed at random (texts and images kept)."""
    rng = np.random.default_rng(seed)
    lines = {n: (source / n).read_text().splitlines() for n in ("train.tsv", "valid.tsv", "test.tsv")}
    entities = sorted({x for ls in lines.values() for line in ls for x in (line.split("\t")[0], line.split("\t")[2])})
    relations = sorted({line.split("\t")[1] for ls in lines.values() for line in ls})
    e_map = {e: f"n{i:05d}" for e, i in zip(entities, rng.permutation(len(entities)))}
    r_map = {r: f"rel{i:03d}" for r, i in zip(relations, rng.permutation(len(relations)))}
    target.mkdir(parents=True)
    for name, ls in lines.items():
        (target / name).write_text("".join("\t".join((e_map[h], r_map[r], e_map[t])) + "\n"
                                           for h, r, t in (line.split("\t") for line in ls)))
    rows = (source / "entities.tsv").read_text().splitlines()
    (target / "entities.tsv").write_text(rows[0] + "\n" + "".join(
        "\t".join([e_map[r.split("\t")[0]]] + r.split("\t")[1:]) + "\n" for r in rows[1:]))
    rows = (source / "relations.tsv").read_text().splitlines()
    (target / "relations.tsv").write_text(rows[0] + "\n" + "".join(
        "\t".join([r_map[r.split("\t")[0]]] + r.split("\t")[1:]) + "\n" for r in rows[1:] if r.split("\t")[0] in r_map))
    shutil.copytree(source / "pictures", target / "pictures")
    (target / "images.tsv").write_text("".join(
        f"{e_map[line.split(chr(9))[0]]}\t{line.split(chr(9))[1]}\n"
        for line in (source / "images.tsv").read_text().splitlines() if line.split("\t")[0] in e_map))
    (target / "kg.toml").write_text('name = "relabelled"\n')
    return e_map, r_map


def _scores(model, tables, split, queries):
    graph = graph_tensors(tables, split)
    with torch.inference_mode():
        return model(graph, queries, **graph_plans(graph))


def test_relabelling_leaves_every_score_unchanged(example_graph, example_tables, codebooks_dir, fast_config, tmp_path):
    e_map, r_map = _relabelled_copy(example_graph, tmp_path / "relabelled", seed=1)
    tokenize_graph(tmp_path / "relabelled", tmp_path / "out", codebooks_dir, fast_config)
    other = read_token_tables(tmp_path / "out" / "relabelled")
    torch.manual_seed(0)
    model = TofuModel(model_config_for(example_tables, ModelConfig(**SMALL))).eval()
    labels = example_tables.tables["entities"]["label"].to_pylist()
    rel_labels = example_tables.tables["relations"]["label"].to_pylist()
    other_e = {label: i for i, label in enumerate(other.tables["entities"]["label"].to_pylist())}
    other_r = {label: i for i, label in enumerate(other.tables["relations"]["label"].to_pylist())}
    test = torch.as_tensor(example_tables.queries("test"))
    queries = torch.stack([test[:, 0], test[:, 1]], 1)
    mapped = torch.tensor([[other_e[e_map[labels[h]]], other_r[r_map[rel_labels[r]]]] for h, r in queries.tolist()])
    a = _scores(model, example_tables, "test", queries)
    b = _scores(model, other, "test", mapped)
    permutation = torch.tensor([other_e[e_map[label]] for label in labels])
    assert torch.allclose(a, b[:, permutation], atol=1e-4)
    # The inverse direction too (head queries use relation ids r + R).
    n_rel = example_tables.num_relations
    inverse = torch.stack([test[:, 2], test[:, 1] + n_rel], 1)
    mapped_inv = torch.tensor([[other_e[e_map[labels[t]]], other_r[r_map[rel_labels[r - n_rel]]] + n_rel]
                               for t, r in inverse.tolist()])
    assert torch.allclose(_scores(model, example_tables, "test", inverse),
                          _scores(model, other, "test", mapped_inv)[:, permutation], atol=1e-4)


def test_ranks_count_ties_against_the_answer():
    scores = torch.tensor([[0.5, 2.0, 2.0, 3.0, 1.0]])
    target = torch.tensor([1])
    nothing = torch.zeros(1, 5, dtype=torch.bool)
    pessimistic, optimistic = rank_of_targets(scores, target, nothing)
    assert pessimistic.item() == 3 and optimistic.item() == 2   # 3.0 above, 2.0 tied
    # Filtering the other true answer (entity 3) removes it from the comparison.
    filtered = torch.tensor([[False, False, False, True, False]])
    pessimistic, optimistic = rank_of_targets(scores, target, filtered)
    assert pessimistic.item() == 2 and optimistic.item() == 1
    # The answer itself is never filtered out of its own rank.
    pessimistic, _ = rank_of_targets(scores, target, torch.tensor([[False, True, False, False, False]]))
    assert pessimistic.item() == 3


class _TableModel(torch.nn.Module):
    """Stands in for the model in evaluate_graph: scores from a table written by hand, per query."""

    def __init__(self, rows: dict[tuple[int, int], list[float]], num_entities: int):
        super().__init__()
        self.rows, self.num_entities, self.asked = rows, num_entities, []
        self.config = ModelConfig()   # evaluate_graph builds the relation graph the config names

    def entity_features(self, graph, task):
        return None

    def forward(self, graph, queries, **kwargs):
        self.asked += [tuple(q) for q in queries.tolist()]
        return torch.tensor([self.rows.get(tuple(q), [0.0] * self.num_entities) for q in queries.tolist()])


def test_filtered_ranks_worked_out_by_hand(tmp_path, codebooks_dir, fast_config):
    """Entities a..e are ids 0..4 and relations r, s ids 0, 1 (sorted labels); head queries ask r + R = 2.
    The test triple (a, r, e): its tail query (a, r, ?) has the other answers b, c (train) and d (valid),
    all filtered; e ties with a unfiltered a. Its head query (e, r + 2, ?) has d (train: d r e) filtered;
    b scores above a and e ties with it."""
    graph = tmp_path / "hand"
    graph.mkdir()
    (graph / "train.tsv").write_text("a\tr\tb\na\tr\tc\nb\ts\td\nc\ts\te\nd\tr\te\n")
    (graph / "valid.tsv").write_text("a\tr\td\n")
    (graph / "test.tsv").write_text("a\tr\te\n")
    tokenize_graph(graph, tmp_path / "out", codebooks_dir, replace(fast_config, use_text=False, use_images=False))
    tables = read_token_tables(tmp_path / "out" / "hand")
    model = _TableModel({(0, 0): [5, 9, 9, 9, 5],      # (a, r, ?): answer e = 5
                         (4, 2): [3, 4, 1, 7, 3]},     # (e, r^-1, ?): answer a = 3
                        tables.num_entities)
    ranks = evaluate_graph(model, tables, ["test"], torch.device("cpu"))
    assert sorted(model.asked) == [(0, 0), (4, 2)]
    assert ranks.direction.tolist() == ["tail", "head"]
    assert ranks.pessimistic.tolist() == [2, 3] and ranks.optimistic.tolist() == [1, 2]
    metrics = ranks.metrics()
    assert metrics["mrr"] == pytest.approx((1 / 2 + 1 / 3) / 2)          # the pessimistic ranks are the headline
    assert metrics["tie_gap_mrr"] == pytest.approx((1 + 1 / 2) / 2 - (1 / 2 + 1 / 3) / 2)
    assert (metrics["hits@1"], metrics["hits@3"], metrics["hits@10"]) == (0.0, 1.0, 1.0)
    assert metrics["tail.pessimistic.mrr"] == pytest.approx(1 / 2) and metrics["head.optimistic.mrr"] == 0.5
    assert metrics["head.pessimistic.hits_at_1"] == 0.0 and metrics["queries"] == 2.0


def test_frequency_baseline_worked_out_by_hand(tmp_path, codebooks_dir, fast_config):
    """The no-training baseline of the MMKG rows. Test triple (a, r, e). Tail query (a, r, ?): r's tails
    are b twice (a known answer: filtered) and e once, so e is first. Head query (e, r^-1, ?): r's heads
    a, c, d once each (d r e is known: filtered); c's degree (2) beats a's (1), and b, with the highest
    degree (4) but never a head of r, stays below both: a is second."""
    graph = tmp_path / "freq"
    graph.mkdir()
    (graph / "train.tsv").write_text("a\tr\tb\nc\tr\tb\nd\tr\te\ne\ts\tb\nb\ts\td\nc\ts\te\n")
    (graph / "test.tsv").write_text("a\tr\te\n")
    tokenize_graph(graph, tmp_path / "out", codebooks_dir, replace(fast_config, use_text=False, use_images=False))
    ranks = frequency_baseline(read_token_tables(tmp_path / "out" / "freq"), ["test"])
    assert ranks.direction.tolist() == ["tail", "head"]
    assert ranks.pessimistic.tolist() == [1, 2] and ranks.optimistic.tolist() == [1, 2]


def test_ranks_do_not_depend_on_the_batch_width(example_tables):
    """Candidates an untrained structure-only model ties exactly (out of the head's reach, the same
    structure) come out a few float32 ulps apart depending on how many queries share a batch."""
    torch.manual_seed(0)
    model = TofuModel(model_config_for(example_tables, ModelConfig(modalities=(), messages=("distmult",), **SMALL)))
    runs = [evaluate_graph(model, example_tables, ["valid", "test"], torch.device("cpu"), batch_size=width)
            for width in (1, 2, 16, None)]   # None: the graph-size rule, 128 on this small graph
    for other in runs[1:]:
        assert (other.pessimistic == runs[0].pessimistic).all() and (other.optimistic == runs[0].optimistic).all()
    assert (runs[0].pessimistic > runs[0].optimistic).any()   # there are ties to break


def test_default_ranking_batch_narrows_as_graphs_grow_within_its_bounds():
    from reasoning_stage.config import EVAL_BATCH_MAX, EVAL_BATCH_ROWS, EVAL_BATCH_MIN, eval_batch_size

    sizes = [eval_batch_size(n, links) for n, links in ((1, 0), (225, 928), (922, 520), (2757, 832),
                                                        (1093, 11368), (10**6, 0))]
    assert sizes == sorted(sizes, reverse=True)
    assert sizes[0] == EVAL_BATCH_MAX and sizes[-1] == sizes[-2] == EVAL_BATCH_MIN
    assert EVAL_BATCH_MIN < sizes[3] < sizes[1] < EVAL_BATCH_MAX
    within = zip(sizes[1:4], ((225, 928), (922, 520), (2757, 832)))
    assert all(size * (n + links) <= EVAL_BATCH_ROWS for size, (n, links) in within)


def test_repeated_queries_are_scored_once_and_ranked_like_single_ones(example_tables):
    """rank_triples scores each distinct (entity, relation) once; every triple still gets its own rank."""
    known = KnownTriples(example_tables)
    test = torch.as_tensor(example_tables.queries("test"), dtype=torch.long)
    triples = torch.cat([test, test[:5], test[:3].flip(0)])          # repeated triples and shared queries
    torch.manual_seed(0)
    table = torch.randn(2 * known.num_relations, known.num_entities)
    table[:, :4] = 0.5                                                  # ties, counted against the answer
    calls = []

    def score_fn(q):
        calls.append(len(q))
        return table[q[:, 1]] + 0.01 * q[:, :1].float()                # depends on (entity, relation) only

    ranks = rank_triples(score_fn, triples, known, batch_size=4)
    queries, targets, _ = directed_queries(triples, known.num_relations)
    assert sum(calls) == len(torch.unique(queries, dim=0)) < len(queries)
    for i in range(len(queries)):
        q = queries[i:i + 1]
        p, o = rank_of_targets(score_fn(q), targets[i:i + 1], known.mask(q[:, 0], q[:, 1]))
        assert (ranks.pessimistic[i], ranks.optimistic[i]) == (p.item(), o.item())
    # Ranks of the same distinct query share a group id, and only they do (the bootstrap's clusters).
    same_query = (queries[:, None, :] == queries[None, :, :]).all(-1).numpy()
    groups = ranks.query_group
    assert (same_query == (groups[:, None] == groups[None, :])).all()


def test_bootstrap_interval_resamples_whole_queries():
    rng = np.random.default_rng(1)
    singles = rng.integers(0, 2, 60).astype(float)
    # Each value its own group: the plain bootstrap, draw for draw.
    assert bootstrap_interval(singles, np.arange(60) * 7, seed=3) == bootstrap_interval(singles, None, seed=3)
    low, high = bootstrap_interval(singles)
    assert low < singles.mean() < high
    assert bootstrap_interval(np.full(10, 0.25)) == (0.25, 0.25)
    # One query asked 40 times is one draw, not 40: its ranks move together, so the interval widens.
    values = np.concatenate([singles, np.ones(40)])
    groups = np.concatenate([np.arange(60), np.full(40, 60)])
    plain_low, plain_high = bootstrap_interval(values)
    low, high = bootstrap_interval(values, groups)
    assert (high - low) > 1.5 * (plain_high - plain_low)
    # A group weighs by its size (the ratio estimator): the interval still holds the mean of all values.
    assert low < values.mean() < high
    with pytest.raises(ValueError):
        bootstrap_interval(np.array([]))


def test_known_triples_mask_covers_both_directions(example_tables):
    known = KnownTriples(example_tables)
    h, r, t = example_tables.queries("test")[0]
    mask = known.mask(torch.tensor([h]), torch.tensor([r]))
    assert mask[0, t]
    inverse = known.mask(torch.tensor([t]), torch.tensor([r + example_tables.num_relations]))
    assert inverse[0, h]
    # Every train triple is known; the mask holds nothing else for that query.
    train = example_tables.queries("train")
    hr = train[0, :2]
    expected = {int(x[2]) for x in np.concatenate([example_tables.triple_set(s) for s in ("train", "valid", "test")])
                if x[0] == hr[0] and x[1] == hr[1]}
    got = set(known.mask(torch.tensor([hr[0]]), torch.tensor([hr[1]]))[0].nonzero().flatten().tolist())
    assert got == expected


def test_training_filter_knows_only_the_training_split(example_tables):
    """Held-out answers stay negatives while training: a filter holding them would never push the
    model away from them (a leak into fine-tuned figures)."""
    prepared = prepare(example_tables, "train", torch.device("cpu"))
    train = {tuple(x) for x in example_tables.queries("train").tolist()}
    held_out = [x for s in ("valid", "test") for x in example_tables.queries(s).tolist() if tuple(x) not in train]
    assert held_out
    # Test facts a training query shares (entity, relation) with: e.g. "who are citizens of <country>?"
    R = example_tables.num_relations
    for h, r, t in held_out:
        assert not prepared.known.mask(torch.tensor([h]), torch.tensor([r]))[0, t]
        assert not prepared.known.mask(torch.tensor([t]), torch.tensor([r + R]))[0, h]
    shared = [(h, r, t) for h, r, t in held_out if any(t == tt and r == rr for _, rr, tt in train)]
    assert shared   # the case that matters: the inverse query is a training query too
    for h, r, t in train:
        assert prepared.known.mask(torch.tensor([h]), torch.tensor([r]))[0, t]
    # Filtered ranking still filters everything known.
    h, r, t = held_out[0]
    assert KnownTriples(example_tables).mask(torch.tensor([h]), torch.tensor([r]))[0, t]


def test_the_known_triples_mask_is_every_set_s_triples_in_both_directions(example_tables):
    """Every (entity, relation id) row of the mask, against the triple sets read directly; a triple
    held by two sets (train repeated in test here) is masked like any other."""
    tables = replace(example_tables, tables=dict(example_tables.tables))
    sets = {name: example_tables.triple_set(name) for name in example_tables.manifest["counts"]["triple_sets"]}
    repeated = np.concatenate([sets["test"], sets["train"][:7]])
    original = example_tables.triple_set
    tables.triple_set = lambda name: repeated if name == "test" else original(name)
    known = KnownTriples(tables)
    R, N = tables.num_relations, tables.num_entities
    truth = torch.zeros(N, 2 * R, N, dtype=torch.bool)
    for h, r, t in np.concatenate([repeated if name == "test" else rows for name, rows in sets.items()]).tolist():
        truth[h, r, t] = truth[t, r + R, h] = True
    heads, relations = torch.arange(N).repeat_interleave(2 * R), torch.arange(2 * R).repeat(N)
    assert torch.equal(known.mask(heads, relations), truth.view(N * 2 * R, N))


def textbook_messages(layer: MixtureOfMessageConv, x_src, edge_type, relations, gates):
    """The layer's docstring formula, one message function at a time."""
    w = layer.relation_projection(relations).index_select(0, edge_type)
    half = layer.dim // 2
    out = 0
    for k, name in enumerate(layer.messages):
        if name == "distmult":
            m = x_src * w
        elif name == "transe":
            m = x_src + w
        else:
            phase = math.pi * torch.tanh(w[..., :half])
            re, im = x_src[..., :half], x_src[..., half:]
            m = torch.cat([re * phase.cos() - im * phase.sin(), re * phase.sin() + im * phase.cos()], -1)
        out = out + (m * gates[:, k].view(1, -1, 1) if len(layer.messages) > 1 else m)
    return out


@pytest.mark.parametrize("messages", [("distmult", "transe", "rotate"), ("distmult",), ("transe", "rotate")])
@pytest.mark.parametrize("reduction", ["spmm", "segment"])
def test_plan_aggregation_equals_plain_scatter(reduction, messages):
    """Both pair-shared reductions, with the gates folded into per-relation coefficients, give the
    sums of the textbook gather-multiply-scatter of every message function."""
    torch.manual_seed(0)
    edge_index = torch.tensor([[0, 0, 1, 2, 3, 3, 0], [1, 2, 2, 3, 0, 1, 1]])
    edge_type = torch.tensor([0, 1, 0, 2, 1, 1, 0])   # edge (0 -0-> 1) appears twice on purpose
    layer = MixtureOfMessageConv(8, messages)
    x = torch.randn(4, 3, 8)
    relations = torch.randn(3, 3, 8)
    gates = torch.softmax(torch.randn(3, len(messages)), dim=1)
    terms = layer.relation_terms(relations, gates)
    plan = edge_plan(edge_index, edge_type, 4, 3, reduction)
    assert plan.reduction == reduction
    got = layer.aggregate(x, plan, terms, torch.zeros_like(x))
    messages = textbook_messages(layer, x[edge_index[0]], edge_type, relations, gates)
    expected = scatter(messages, edge_index[1], dim=0, dim_size=4, reduce="sum")
    assert torch.allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("messages", [("distmult", "transe", "rotate"), ("distmult",)])
@pytest.mark.parametrize("reduction", ["spmm", "segment"])
def test_runs_propagated_apart_give_the_textbook_sums_and_gradients(reduction, messages):
    """With autograd, ``aggregate`` over runs of queries (one column of terms per run) gives the
    textbook messages of every query's own relation vectors, and the same gradients."""
    torch.manual_seed(1)
    edge_index = torch.tensor([[0, 0, 1, 2, 3, 3, 0, 4], [1, 2, 2, 3, 0, 1, 1, 0]])
    edge_type = torch.tensor([0, 1, 0, 2, 1, 1, 0, 2])
    layer = MixtureOfMessageConv(8, messages)
    runs = [(0, 3), (3, 4), (4, 6)]
    x = torch.randn(5, 6, 8, requires_grad=True)
    run_relations = torch.randn(3, len(runs), 8, requires_grad=True)
    run_gates = torch.softmax(torch.randn(len(runs), len(messages)), dim=1)
    column_run = torch.tensor([0, 0, 0, 1, 2, 2])
    plan = edge_plan(edge_index, edge_type, 5, 3, reduction)
    got = layer.aggregate(x, plan, layer.relation_terms(run_relations, run_gates), torch.zeros(5, 6, 8), runs)
    textbook = textbook_messages(layer, x[edge_index[0]], edge_type, run_relations.index_select(1, column_run),
                                 run_gates.index_select(0, column_run))
    expected = scatter(textbook, edge_index[1], dim=0, dim_size=5, reduce="sum")
    assert torch.allclose(got, expected, atol=1e-5)
    weights = torch.randn_like(got)
    grads = torch.autograd.grad((got * weights).sum(), [x, run_relations])
    reference = torch.autograd.grad((expected * weights).sum(), [x, run_relations])
    for a, b in zip(grads, reference):
        assert torch.allclose(a, b, atol=1e-5)


def test_relation_grouped_batches_score_like_single_queries(example_tables):
    torch.manual_seed(0)
    model = TofuModel(model_config_for(example_tables, ModelConfig(**SMALL))).eval()  # all messages + tokens
    graph = graph_tensors(example_tables, "test")
    heads = torch.randint(0, graph.num_entities, (9,))
    relations = torch.tensor([3, 3, 3, 0, 0, 2 * graph.num_relations - 1, 1, 1, 1])
    queries = torch.stack([heads, relations], 1)
    assert relation_groups(relations) == [(0, 3), (3, 5), (5, 6), (6, 9)]
    assert relation_groups(torch.arange(9)) is None  # mostly distinct relations: the per-query path
    with torch.no_grad():
        single = torch.cat([model(graph, q.unsqueeze(0)) for q in queries])
        grouped = model(graph, queries)
        shuffled = torch.randperm(9, generator=torch.Generator().manual_seed(1))
        ungrouped = model(graph, queries[shuffled])
    assert torch.allclose(grouped, single, atol=1e-5)
    assert torch.allclose(ungrouped, single[shuffled], atol=1e-5)
    assert not torch.allclose(grouped[0], grouped[3])


@pytest.mark.parametrize("overrides", [dict(), dict(modalities=(), messages=("distmult",))])
def test_inference_shortcuts_match_the_autograd_path(example_tables, overrides):
    """Without autograd the model groups queries by relation, overwrites gathered states in
    place and skips all-zero rows of the first layer's update; with autograd it does none of
    these. Both must give the same scores."""
    torch.manual_seed(0)
    model = TofuModel(model_config_for(example_tables, ModelConfig(**SMALL, **overrides))).eval()
    graph = graph_tensors(example_tables, "test")
    queries = torch.stack([torch.randint(0, graph.num_entities, (8,)), torch.tensor([1, 1, 1, 1, 0, 0, 4, 4])], 1)
    with torch.no_grad():
        fast = model(graph, queries)
    reference = model(graph, queries).detach()  # grad enabled: the plain path
    assert torch.allclose(fast, reference, atol=1e-5)
    layer = model.entity_layers[0]
    x = torch.zeros(graph.num_entities, 8, 16)
    aggregated = torch.zeros_like(x)
    x[0, :2], aggregated[1:3, 3] = torch.randn(2, 16), torch.randn(2, 16)
    with torch.no_grad():
        skipped = layer.update(x, aggregated, skip_zero_rows=True)
        full = layer.update(x, aggregated)
    assert torch.allclose(skipped, full, atol=1e-6)


def _ring(graph, num_relations: int = 3):
    """The example graph's entities on a ring (each node linked to the next by relation i % R),
    with inverse edges: every hop reaches two more nodes, so neighbourhoods stay small."""
    n = graph.num_entities
    source = torch.arange(n)
    target, relation = (source + 1) % n, source % num_relations
    return replace(graph, num_relations=num_relations, relation_tokens={},
                   edge_index=torch.stack([torch.cat([source, target]), torch.cat([target, source])]),
                   edge_type=torch.cat([relation, relation + num_relations]))


@pytest.mark.parametrize("marked", [True, False], ids=["marked-union", "sorted-union"])
def test_reach_step_grows_rows_one_hop_per_query(marked, monkeypatch):
    # Small graphs mark the union of rows in a bool vector, large ones sort it: the same step either way.
    monkeypatch.setattr(layers, "MARKED_ROWS_LIMIT", layers.MARKED_ROWS_LIMIT if marked else 0)
    # 0 -> 1 -> 2 -> 3 (relation 0), 3 -> 0 (relation 1); two query columns.
    plan = edge_plan(torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]]), torch.tensor([0, 0, 0, 1]), 4, 2)
    step = reach_step(plan, torch.tensor([0, 3]), torch.tensor([0, 1]), num_columns=2)
    assert list(zip(step.node.tolist(), step.column.tolist())) == [(0, 0), (0, 1), (1, 0), (3, 1)]
    assert step.edge_row.tolist() == [0, 1] and step.edge_type.tolist() == [0, 1]
    assert step.old_position.tolist() == [0, 3] and step.message_position.tolist() == [2, 1]
    # Capped: four rows are too many for three (the caller goes dense), not for four.
    assert reach_step(plan, torch.tensor([0, 3]), torch.tensor([0, 1]), num_columns=2, max_rows=3) is None
    capped = reach_step(plan, torch.tensor([0, 3]), torch.tensor([0, 1]), num_columns=2, max_rows=4)
    assert torch.equal(capped.node, step.node) and torch.equal(capped.message_position, step.message_position)


@pytest.mark.parametrize("overrides", [dict(), dict(modalities=(), messages=("distmult",)), dict(content_match=True)],
                         ids=["full", "structure-only", "content-match"])
@pytest.mark.parametrize("dense_share", [1.0, 0.05, 0.0], ids=["reach-only", "hand-over", "dense-at-once"])
def test_reach_path_matches_the_dense_layers(example_tables, overrides, dense_share, monkeypatch):
    """Batches of few relation runs are computed as generic states per run plus per-query rows
    within reach of the head; the scores, and under autograd their gradients (training batches
    drawn in relation runs take this path), must equal the dense layers', whether the rows stay
    sparse to the end, hand over to the dense layers midway, or do so at once."""
    torch.manual_seed(0)
    config = ModelConfig(**{**SMALL, "entity_layers": 4}, **overrides)
    model = TofuModel(model_config_for(example_tables, config)).eval()
    graph = _ring(graph_tensors(example_tables, "test"))
    heads = torch.randperm(graph.num_entities)[:8]
    heads[1], heads[4] = heads[0], heads[0]  # one head asked in two columns of a run and in another run
    queries = torch.stack([heads, torch.tensor([0, 0, 0, 4, 4, 4, 4, 2])], 1)
    handed_over = []  # the depth at which the dense layers took over, if they did
    original = TofuModel.dense_layers

    def spy(self, *args, **kwargs):
        handed_over.append(args[8] if len(args) > 8 else kwargs.get("first_depth", 0))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(TofuModel, "REACH_DENSE_SHARE", dense_share)
    monkeypatch.setattr(TofuModel, "dense_layers", spy)
    with torch.no_grad():
        fast = model(graph, queries)
    if dense_share == 1.0:
        assert handed_over == []
    elif dense_share == 0.0:
        assert handed_over == [0]
    else:  # 8 x (1 + 2k) rows after k hops against 5% of 8 x V: a hand-over after a hop or more
        assert graph.num_entities > 60 and len(handed_over) == 1 and 0 < handed_over[0] < config.entity_layers
    reference = model(graph, queries, reach=False)
    assert torch.allclose(fast, reference.detach(), atol=1e-5)
    handed_over.clear()
    # Gradients: the same weighted sum of scores through both paths.
    weights = torch.randn_like(fast)
    dense_grads = torch.autograd.grad((reference * weights).sum(), model.parameters(), allow_unused=True)
    by_reach = model(graph, queries)
    assert len(handed_over) == (0 if dense_share == 1.0 else 1)  # the reach path ran under autograd too
    reach_grads = torch.autograd.grad((by_reach * weights).sum(), model.parameters(), allow_unused=True)
    assert torch.allclose(by_reach, reference, atol=1e-5)
    compared = 0
    for name, (a, b) in zip([n for n, _ in model.named_parameters()], zip(dense_grads, reach_grads)):
        assert (a is None) == (b is None), name
        if a is not None:
            assert torch.allclose(a, b, atol=1e-4, rtol=1e-4), (name, (a - b).abs().max())
            compared += int(a.abs().sum() > 0)
    assert compared > 10  # the entity layers, scorer and relation layers all got gradients


def _twins_graph(pairs: int = 30) -> GraphTensors:
    """Entities 2k and 2k+1 are twins: they share their one text token, and sit half a ring
    apart (relation 0), far beyond two layers' reach of each other. Relation 1 has no edges."""
    n = 2 * pairs
    order = torch.cat([torch.arange(0, n, 2), torch.arange(1, n, 2)])
    source, target = order, order.roll(-1)
    return GraphTensors("twins", n, 2, torch.stack([torch.cat([source, target]), torch.cat([target, source])]),
                        torch.cat([torch.zeros(n, dtype=torch.long), torch.ones(n, dtype=torch.long)]),
                        entity_tokens={"text": TokenTensor((torch.arange(n) // 2).unsqueeze(1), torch.ones(n, 1))})


def _twin_mrr(content_match: bool) -> tuple[float, float]:
    """Test MRR of ``(e, twin, ?)`` on 10 held-out pairs after training on 20, and the largest
    score change that adding the (untrained) content match made at the start."""
    torch.manual_seed(0)
    graph = _twins_graph()
    config = ModelConfig(dim=16, entity_layers=2, relation_layers=1, messages=("distmult",), modalities=("text",),
                         codebook_sizes={"text": 30})
    model = TofuModel(config)
    first = torch.arange(60)
    queries = torch.stack([first, torch.ones(60, dtype=torch.long)], 1)
    answers = first ^ 1
    start_change = 0.0
    if content_match:
        with torch.no_grad():
            before = model(graph, queries)
        model = with_content_match(model)
        with torch.no_grad():
            start_change = float((model(graph, queries) - before).abs().max())
    train_rows, test_rows = first < 40, first >= 40
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        scores = model(graph, queries[train_rows])
        loss = torch.nn.functional.cross_entropy(scores, answers[train_rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        scores = model(graph, queries[test_rows])
    pessimistic, _ = rank_of_targets(scores, answers[test_rows], torch.zeros_like(scores, dtype=torch.bool))
    return float((1.0 / pessimistic.float()).mean()), start_change


def test_content_match_starts_at_zero_and_reaches_answers_beyond_the_layers():
    """Beyond the layers' reach a candidate's GNN score does not depend on the head; the content
    match lets the head's content pick it. Added to a model it changes no score at first."""
    with_match, start_change = _twin_mrr(True)
    without, _ = _twin_mrr(False)
    assert start_change == 0.0
    # 20 test queries, 150 steps: 0.80 here with the fused kernel's float sums, 0.8-0.9 with the torch path's.
    assert with_match > 0.7 and without < 0.3, (with_match, without)
    structure_only = TofuModel(ModelConfig(**SMALL, modalities=()))
    with pytest.raises(ValueError, match="structure-only"):
        with_content_match(structure_only)
    assert TofuModel(ModelConfig(**SMALL, modalities=(), content_match=True)).content_relation is None


def test_unseen_relations_and_task_gates(example_tables):
    torch.manual_seed(0)
    model = TofuModel(model_config_for(example_tables, ModelConfig(**SMALL))).eval()
    graph = graph_tensors(example_tables, "test")
    # A graph with relations the model never saw: add a new relation id made of existing edges.
    extra = graph.edge_index[:, :10]
    bigger = replace(graph, num_relations=graph.num_relations + 1,
                     edge_index=torch.cat([graph.edge_index, extra], 1),
                     edge_type=torch.cat([graph.edge_type, torch.full((10,), graph.num_relations)]))
    bigger = replace(bigger, edge_type=torch.where(bigger.edge_type >= graph.num_relations,
                                                   bigger.edge_type + 1, bigger.edge_type))
    bigger.relation_tokens = {}
    with torch.inference_mode():
        scores = model(bigger, torch.tensor([[0, graph.num_relations], [0, 0]]), **graph_plans(bigger))
    assert scores.shape == (2, graph.num_entities) and torch.isfinite(scores).all()
    # The new relation is read from its own edges: its query is not scored like an old relation's.
    assert not torch.allclose(scores[0], scores[1])
    query = torch.randn(4, 16)
    assert not torch.allclose(model.gates(query, task=0), model.gates(query, task=1))


def test_a_fresh_mixture_leads_with_its_first_message_function():
    query = torch.randn(256, 16)
    for messages in (("distmult", "transe"), ("distmult", "transe", "rotate"), ("rotate", "distmult")):
        torch.manual_seed(0)
        model = TofuModel(ModelConfig(**SMALL, messages=messages, modalities=()))
        others = (1 - LEADING_MESSAGE_SHARE) / (len(messages) - 1)
        # Where query and task say nothing, the first function has its share and the others split the rest.
        silent = torch.softmax(model.message_gates(torch.zeros(1, 2 * SMALL["dim"])).view(SMALL["entity_layers"], -1), -1)
        expected = torch.tensor([LEADING_MESSAGE_SHARE] + [others] * (len(messages) - 1))
        assert torch.allclose(silent, expected.expand_as(silent), atol=1e-6)
        # Real queries move the gates around that lead.
        gates = model.gates(query, task=0)
        assert gates.mean(dim=(0, 1)).argmax() == 0 and gates[:, :, 0].std() > 0.01
    alone = TofuModel(ModelConfig(**SMALL, messages=("transe",), modalities=()))
    assert torch.equal(alone.gates(query, task=0), torch.ones(SMALL["entity_layers"], 256, 1))


def test_training_beats_untrained_and_checkpoint_round_trip(example_tables, tmp_path):
    torch.manual_seed(0)
    model = TofuModel(model_config_for(example_tables, ModelConfig(dim=32, entity_layers=3, relation_layers=2)))
    before = evaluate_graph(model, example_tables, ["test"], torch.device("cpu")).metrics()["mrr"]
    history = train(model, [example_tables], TrainConfig(max_steps=120, eval_every=60, negatives=64),
                    tmp_path / "ckpt", torch.device("cpu"))
    after = evaluate_graph(model, example_tables, ["test"], torch.device("cpu")).metrics()["mrr"]
    assert after > before + 0.2, (before, after)
    assert [h["step"] for h in history] == [60, 120] and "valid_mrr/example" in history[0]
    manifest, state, optimizer = load_checkpoint(tmp_path / "ckpt", with_optimizer=True)
    assert manifest["codebook_id"] == example_tables.codebook_id and optimizer is not None
    reloaded = TofuModel(ModelConfig.from_json(manifest["model"]))
    reloaded.load_state_dict(state, strict=True)
    q = torch.as_tensor(example_tables.queries("test")[:, :2])
    assert torch.equal(_scores(model.eval(), example_tables, "test", q), _scores(reloaded.eval(), example_tables, "test", q))
    # Resuming continues from the saved step.
    train(reloaded, [example_tables], TrainConfig(max_steps=130, eval_every=10, negatives=16), tmp_path / "ckpt2",
          torch.device("cpu"), resume_from=tmp_path / "ckpt")
    manifest, _, optimizer = load_checkpoint(tmp_path / "ckpt2", with_optimizer=True)
    assert manifest["training"]["step"] == 130
    assert [h["step"] for h in manifest["training"]["history"]] == [60, 120, 130]   # the earlier log kept
    # Adam's moments went on from the checkpoint's: its step count is the run's, not the resumed part's.
    assert {float(s["step"]) for s in optimizer["state"].values()} == {130.0}


class _FixedScores(torch.nn.Module):
    """Stands in for the model: the same trainable score rows for every query."""

    def __init__(self, num_entities: int, batch: int):
        super().__init__()
        self.scores = torch.nn.Parameter(torch.randn(batch, num_entities))
        self.queries = None

    def entity_features(self, graph, task):
        return None

    def forward(self, graph, queries, **kwargs):
        self.queries = queries.queries if isinstance(queries, QueryBatch) else queries
        return self.scores


def test_softmax_loss_is_cross_entropy_over_entities_that_are_not_answers(example_tables, tmp_path):
    prepared = prepare(example_tables, "train", torch.device("cpu"))
    # Triples with several true answers in both directions (the step asks either), so the filter has work.
    triples = prepared.train_triples.tolist()
    tails = Counter((h, r) for h, r, t in triples)
    heads = Counter((t, r) for h, r, t in triples)
    # Distinct heads and tails: each query the model is asked names its triple.
    chosen, seen = [], set()
    for h, r, t in triples:
        if tails[h, r] > 1 and heads[t, r] > 1 and h not in seen and t not in seen and len(chosen) < 6:
            chosen.append([h, r, t])
            seen.update((h, t))
    batch = torch.tensor(chosen)
    assert len(batch) == 6
    fake = _FixedScores(prepared.train_graph.num_entities, len(batch))
    loss = training_step(fake, prepared, batch, TrainConfig(loss="softmax"), torch.Generator().manual_seed(0))
    loss.backward()
    # The step may put the queries into runs of one relation: read them in the order asked.
    heads, relations = fake.queries[:, 0], fake.queries[:, 1]
    num_rel = prepared.train_graph.num_relations
    tail_query = relations < num_rel
    asked_rows = [int(((batch[:, 0] == h) & (batch[:, 1] == r)).nonzero()) if r < num_rel else
                  int(((batch[:, 2] == h) & (batch[:, 1] == r - num_rel)).nonzero())
                  for h, r in zip(heads.tolist(), relations.tolist())]
    assert sorted(asked_rows) == list(range(6))
    targets = torch.where(tail_query, batch[asked_rows, 2], batch[asked_rows, 0])
    answers = prepared.known.mask(heads, relations)
    rows = torch.arange(len(batch))
    assert answers[rows, targets].all() and (answers.sum(1) > 1).all()
    others = answers.clone()
    others[rows, targets] = False
    scores = fake.scores.detach()
    expected = torch.stack([torch.logsumexp(scores[i][~others[i]], 0) - scores[i, targets[i]] for i in rows]).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    # Other true answers get no gradient; every non-answer is pushed down, the answer up.
    grad = fake.scores.grad
    assert (grad[others] == 0).all()
    assert (grad[~answers] > 0).all() and (grad[rows, targets] < 0).all()
    # And it trains the real model.
    torch.manual_seed(0)
    model = TofuModel(model_config_for(example_tables, ModelConfig(dim=32, entity_layers=3, relation_layers=2)))
    before = evaluate_graph(model, example_tables, ["test"], torch.device("cpu")).metrics()["mrr"]
    train(model, [example_tables], TrainConfig(max_steps=80, eval_every=80, loss="softmax"), tmp_path / "ckpt",
          torch.device("cpu"))
    after = evaluate_graph(model, example_tables, ["test"], torch.device("cpu")).metrics()["mrr"]
    assert after > before + 0.2, (before, after)
    with pytest.raises(ValueError, match="unknown loss"):
        train(model, [example_tables], TrainConfig(max_steps=1, loss="hinge"), tmp_path / "never", torch.device("cpu"))
    assert not (tmp_path / "never").exists()


def _small_train_args(tables, option: str) -> list[str]:
    """``tofu train`` of a small model on ``tables`` for 2 steps, ending in ``option`` (its value comes next)."""
    return ["train", str(tables.folder), "--max-steps", "2", "--eval-every", "2", "--dim", "16",
            "--layers", "2", "--relation-layers", "1", "--quiet", option]


def _check_train_option(tables, tmp_path: Path, option: str, key: str, good: str, expected, bad: str) -> None:
    """``option good`` reaches the run's manifest as ``key: expected``; ``option bad`` exits 2 and writes nothing."""
    runner = CliRunner()
    args = _small_train_args(tables, option)
    result = runner.invoke(main, args + [good, "--out", str(tmp_path / "cli")])
    assert result.exit_code == 0, result.output
    assert load_checkpoint(tmp_path / "cli")[0]["training"]["config"][key] == expected
    result = runner.invoke(main, args + [bad, "--out", str(tmp_path / "cli_bad")])
    assert result.exit_code == 2 and option in result.output
    assert not (tmp_path / "cli_bad").exists()


def test_train_out_in_folders_not_made_yet_writes_checkpoint_and_log(example_tables, tmp_path):
    # The log's first record comes at the first evaluation, before the checkpoint: it makes the folder.
    out = tmp_path / "new" / "run" / "checkpoint"
    result = CliRunner().invoke(main, _small_train_args(example_tables, "--out") + [str(out)])
    assert result.exit_code == 0, result.output
    assert load_checkpoint(out)[0]["training"]["step"] == 2
    assert [json.loads(line)["step"] for line in (out.parent / "checkpoint.log.jsonl").read_text().splitlines()] == [2]


def test_link_strengths_option_reaches_the_model_and_its_checkpoint(example_tables, tmp_path):
    args = _small_train_args(example_tables, "--link-strengths") + ["0.05,0.3", "--out", str(tmp_path / "split")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    loaded = load_model(tmp_path / "split", torch.device("cpu"))
    assert loaded.model.config.link_strengths == (0.05, 0.3)
    assert loaded.model.relation_layers[0].link_embedding.num_embeddings == 12
    prepared = prepare(example_tables, "train", torch.device("cpu"), loaded.model.config.relation_links)
    assert prepared.rel_graph.num_types == 12


def test_pair_links_option_reaches_the_model_and_its_checkpoint(example_tables, tmp_path):
    args = _small_train_args(example_tables, "--pair-links") + ["--out", str(tmp_path / "pairs")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    loaded = load_model(tmp_path / "pairs", torch.device("cpu"))
    assert loaded.model.config.pair_links and loaded.model.relation_layers[0].link_embedding.num_embeddings == 5
    prepared = prepare(example_tables, "train", torch.device("cpu"), loaded.model.config.relation_links)
    assert prepared.rel_graph.num_types == 5 and (prepared.rel_graph.pair_type == 4).any()


def test_edge_dropout_hides_a_drawn_share_of_triples_with_their_inverses(example_tables, tmp_path):
    """``edge_dropout=p``: a step's graph lacks the batch's triples and a share of the others drawn from
    [0, p], each triple with its inverse; the hidden ones stay known answers. 0 hides the batch alone."""
    prepared = prepare(example_tables, "train", torch.device("cpu"))
    full, triples = prepared.train_graph, prepared.train_triples
    num_rel = full.num_relations
    assert full.num_edges == 2 * len(triples)
    batch = triples[:8]
    generator = torch.Generator().manual_seed(0)
    assert step_graph(prepared, batch, 0.0, generator).num_edges == full.num_edges - 2 * len(batch)
    shares = []
    for _ in range(200):
        graph = step_graph(prepared, batch, 0.6, generator)
        edges = set(zip(graph.edge_index[0].tolist(), graph.edge_type.tolist(), graph.edge_index[1].tolist()))
        assert all((t, (r + num_rel) % (2 * num_rel), h) in edges for h, r, t in edges)
        assert not any((h, r, t) in edges for h, r, t in batch.tolist())
        shares.append(1 - (len(edges) + 2 * len(batch)) / full.num_edges)
    assert 0.25 < np.mean(shares) < 0.35 and min(shares) < 0.05 and max(shares) < 0.65, (np.mean(shares), max(shares))
    hidden = [tuple(x) for x in triples.tolist() if (x[0], x[1], x[2]) not in edges][:20]
    known = prepared.known.mask(torch.tensor([h for h, _, _ in hidden]), torch.tensor([r for _, r, _ in hidden]))
    assert all(known[i, t] for i, (_, _, t) in enumerate(hidden))
    # The command line passes it to the run's manifest and refuses a share of 1 or more.
    _check_train_option(example_tables, tmp_path, "--edge-dropout", "edge_dropout", "0.3", 0.3, "1")
    with pytest.raises(ValueError, match="edge_dropout"):
        train(TofuModel(model_config_for(example_tables, ModelConfig(**SMALL))), [example_tables],
              TrainConfig(max_steps=1, edge_dropout=-0.1), tmp_path / "never", torch.device("cpu"))
    assert not (tmp_path / "never").exists()


def test_graph_sampling_power_draws_graphs_by_a_power_of_their_size(example_tables, tmp_path, monkeypatch):
    """``graph_sampling_power=p``: a graph is drawn with probability proportional to its training triples
    to the power p (1: by size, 0: alike); a graph without training triples is never drawn."""
    sizes = np.array([100.0, 400.0, 0.0])
    assert np.allclose(graph_draw_probabilities(sizes, 1.0), [0.2, 0.8, 0.0])
    assert np.allclose(graph_draw_probabilities(sizes, 0.5), [1 / 3, 2 / 3, 0.0])
    assert np.allclose(graph_draw_probabilities(sizes, 0.0), [0.5, 0.5, 0.0])
    # The command line passes it to the run's manifest and refuses a negative power.
    _check_train_option(example_tables, tmp_path, "--graph-sampling-power", "graph_sampling_power", "0.5", 0.5, "-1")
    # train() draws its link-prediction graphs by these probabilities, computed with the configured power.
    powers, drawn = [], []
    monkeypatch.setattr(training_module, "graph_draw_probabilities",
                        lambda sizes, power: powers.append(power) or np.array([0.0, 1.0]))
    step = training_module.training_step
    monkeypatch.setattr(training_module, "training_step",
                        lambda model, choice, *rest: drawn.append(choice) or step(model, choice, *rest))
    model = TofuModel(model_config_for(example_tables, ModelConfig(**SMALL)))
    train(model, [example_tables, example_tables], TrainConfig(max_steps=6, eval_every=6, graph_sampling_power=0.25),
          tmp_path / "drawn", torch.device("cpu"))
    assert powers == [0.25] and len(drawn) == 6 and len({id(choice) for choice in drawn}) == 1


def _keep(decay: float, updates: int) -> float:
    """The share of the old average an update keeps (the warm-up rule of ``WeightAverage``)."""
    return min(decay, (1 + updates) / (10 + updates))


def test_weight_average_is_validated_saved_and_resumed(example_tables, tmp_path):
    """``weight_average=d``: the checkpoint holds a moving average of the weights (its validation MRR is the
    average's), the step's own weights ride with the optimizer state, and a resume trains on from those
    own weights while the average goes on from its saved value and update count."""
    layer = torch.nn.Linear(2, 1)
    torch.nn.init.zeros_(layer.weight)
    average = WeightAverage(layer, 0.5)
    expected = torch.zeros(1, 2)
    for n, value in enumerate((1.0, 2.0, 3.0), start=1):
        torch.nn.init.constant_(layer.weight, value)
        average.update(layer)
        expected = _keep(0.5, n) * expected + (1 - _keep(0.5, n)) * value
    assert torch.allclose(average.average["weight"], expected)
    with average.swapped_in(layer) as own:
        assert torch.allclose(layer.weight, expected) and torch.all(own["weight"] == 3.0)
    assert torch.all(layer.weight == 3.0)

    torch.manual_seed(0)
    model = TofuModel(model_config_for(example_tables, ModelConfig(**SMALL)))
    config = TrainConfig(max_steps=12, eval_every=12, loss="softmax", weight_average=0.9)
    history = train(model, [example_tables], config, tmp_path / "ckpt", torch.device("cpu"))
    manifest, saved, optimizer_state = load_checkpoint(tmp_path / "ckpt", with_optimizer=True)
    own = optimizer_state["own_weights"]
    assert optimizer_state["average_updates"] == 12
    assert all(torch.equal(own[k], v) for k, v in model.state_dict().items())  # the run ends on its own weights
    assert max(float((saved[k] - own[k]).abs().max()) for k in saved) > 1e-4
    scorer = TofuModel(model.config)
    scorer.load_state_dict(saved)
    assert history[-1]["valid_mrr/example"] == round(evaluate_graph(
        scorer, example_tables, ["valid"], torch.device("cpu"), max_triples=config.eval_triples).metrics()["mrr"], 4)
    # At a zero learning rate the own weights stay put, so three resumed steps move the average
    # exactly three warm-up-rule steps towards them.
    frozen = replace(config, max_steps=15, learning_rate=0.0, lr_schedule="constant")
    train(TofuModel(model.config), [example_tables], frozen, tmp_path / "ckpt2", torch.device("cpu"),
          resume_from=tmp_path / "ckpt")
    _, resumed, state2 = load_checkpoint(tmp_path / "ckpt2", with_optimizer=True)
    keep = math.prod(_keep(0.9, n) for n in (13, 14, 15))
    for name, value in saved.items():
        if value.is_floating_point():
            assert torch.allclose(resumed[name], own[name] + keep * (value - own[name]), atol=1e-6), name
    assert state2["average_updates"] == 15
    # The command line passes it to the run's manifest and refuses a decay of 1 or more.
    _check_train_option(example_tables, tmp_path, "--weight-average", "weight_average", "0.99", 0.99, "1")


def test_batches_drawn_from_few_relations(example_tables, tmp_path):
    """``batch_relations=k`` draws a batch from the triples of k relations (more when those hold
    too few), each relation as often as uniform batches see it; 0 keeps uniform batches."""
    triples = prepare(example_tables, "train", torch.device("cpu")).train_triples
    relations = triples[:, 1]
    counts = torch.bincount(relations)
    rng = np.random.default_rng(0)
    seen = Counter()
    for _ in range(300):
        picks = draw_batch(relations.numpy(), 16, 1, rng)
        assert len(picks) == 16 and len(set(picks.tolist())) == 16
        drawn = relations[picks].unique()
        if len(drawn) > 1:  # only when the first relation has fewer than 16 triples
            assert counts[drawn].sort(descending=True).values[:-1].sum() < 16
        seen.update(drawn.tolist())
    frequent = int(counts.argmax())
    assert counts[frequent] >= 16 and seen[frequent] > 300 * counts[frequent] / counts.sum() * 0.6
    two = [len(relations[draw_batch(relations.numpy(), 16, 2, rng)].unique()) for _ in range(50)]
    assert min(two) >= 2
    uniform = [len(relations[draw_batch(relations.numpy(), 16, 0, rng)].unique()) for _ in range(50)]
    assert np.mean(uniform) > np.mean(two)
    everything = draw_batch(relations.numpy()[:5], 16, 3, rng)  # fewer triples than a batch: all of them
    assert sorted(everything.tolist()) == list(range(5))
    with pytest.raises(ValueError, match="batch_relations"):
        train(TofuModel(model_config_for(example_tables, ModelConfig(**SMALL))), [example_tables],
              TrainConfig(max_steps=1, batch_relations=-1), tmp_path / "never", torch.device("cpu"))
    # A model trained on such batches learns like one trained on uniform batches.
    torch.manual_seed(0)
    model = TofuModel(model_config_for(example_tables, ModelConfig(dim=32, entity_layers=3, relation_layers=2)))
    before = evaluate_graph(model, example_tables, ["test"], torch.device("cpu")).metrics()["mrr"]
    train(model, [example_tables], TrainConfig(max_steps=80, eval_every=80, loss="softmax", batch_relations=1),
          tmp_path / "ckpt", torch.device("cpu"))
    after = evaluate_graph(model, example_tables, ["test"], torch.device("cpu")).metrics()["mrr"]
    # 80 steps on one small graph: seeds 0-3 gained 0.15-0.55 (fused kernel) and 0.37-0.69 (torch path).
    assert after > before + 0.1, (before, after)
    # The command line passes it through to the run (and its manifest), and refuses a negative count.
    _check_train_option(example_tables, tmp_path, "--batch-relations", "batch_relations", "2", 2, "-1")
    runner = CliRunner()
    args = _small_train_args(example_tables, "--batch-relations")
    # Left out, the loss, batch, edge dropout, message and schedule settings are the shipped recipe's.
    recipe = read_recipe(Path(__file__).resolve().parents[1] / "recipes" / "pretrain.toml")
    result = runner.invoke(main, args[:-1] + ["--out", str(tmp_path / "cli_defaults")])
    assert result.exit_code == 0, result.output
    manifest = load_checkpoint(tmp_path / "cli_defaults")[0]
    assert {k: manifest["training"]["config"][k] for k in ("loss", "batch_relations", "edge_dropout", "lr_schedule")} == \
        {k: recipe.train[k] for k in ("loss", "batch_relations", "edge_dropout", "lr_schedule")}
    assert manifest["model"]["messages"] == recipe.model["messages"]
    # --content-match grows a trained model by the (zero) term; a structure-only model is refused.
    result = runner.invoke(main, args + ["2", "--out", str(tmp_path / "cli_cm"), "--init", str(tmp_path / "cli"),
                                         "--content-match"])
    assert result.exit_code == 0, result.output
    manifest, state, _ = load_checkpoint(tmp_path / "cli_cm")
    assert manifest["model"]["content_match"] and "content_relation.weight" in state
    assert not load_checkpoint(tmp_path / "cli")[0]["model"]["content_match"]
    result = runner.invoke(main, args + ["2", "--out", str(tmp_path / "cli_cm_bad"), "--modalities", "",
                                         "--content-match"])
    assert result.exit_code == 2 and "--content-match" in result.output
    assert not (tmp_path / "cli_cm_bad").exists()


def test_cosine_schedule_follows_steps_or_time_budget(example_tables, tmp_path):
    cosine = TrainConfig(max_steps=100, learning_rate=1e-3, lr_schedule="cosine", min_lr_ratio=0.1)
    assert learning_rate_at(cosine, 0, 0.0) == pytest.approx(1e-3)
    assert learning_rate_at(cosine, 50, 0.0) == pytest.approx(0.55e-3)
    assert learning_rate_at(cosine, 100, 0.0) == pytest.approx(1e-4)
    # With a time budget, whichever of steps and time is further along sets the rate.
    timed = replace(cosine, max_seconds=60.0)
    assert learning_rate_at(timed, 10, 30.0) == pytest.approx(0.55e-3)
    assert learning_rate_at(timed, 50, 6.0) == pytest.approx(0.55e-3)
    assert learning_rate_at(timed, 1, 120.0) == pytest.approx(1e-4)
    assert learning_rate_at(replace(cosine, lr_schedule="constant"), 99, 1e9) == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="lr_schedule"):
        train(TofuModel(model_config_for(example_tables, ModelConfig(**SMALL))), [example_tables],
              replace(cosine, lr_schedule="linear"), tmp_path / "never", torch.device("cpu"))
    assert not (tmp_path / "never").exists()
    # The optimizer runs at the scheduled rate: the logged rates fall step by step.
    model = TofuModel(model_config_for(example_tables, ModelConfig(**SMALL)))
    run = replace(cosine, max_steps=20, eval_every=5, negatives=16, eval_triples=4)
    history = train(model, [example_tables], run, tmp_path / "ckpt", torch.device("cpu"))
    rates = [h["lr"] for h in history]
    assert rates == sorted(rates, reverse=True) and len(set(rates)) == 4
    assert rates == [pytest.approx(learning_rate_at(run, s, 0.0), rel=1e-2) for s in (4, 9, 14, 19)]


def test_checkpoint_refuses_other_codebooks_and_bad_predictions(example_tables, tmp_path):
    model = TofuModel(model_config_for(example_tables, ModelConfig(**SMALL)))
    save_checkpoint(tmp_path / "ckpt", model.state_dict(), model.config.to_json(), "another-codebook-set", {"step": 0})
    runner = CliRunner()
    result = runner.invoke(main, ["reason", "--checkpoint", str(tmp_path / "ckpt"), str(example_tables.folder),
                                  "--output", str(tmp_path / "res"), "--quiet"])
    assert result.exit_code == 1 and "another-codebook-set" in result.output and "re-tokenize" in result.output
    save_checkpoint(tmp_path / "ok", model.state_dict(), model.config.to_json(), example_tables.codebook_id, {"step": 0})
    result = runner.invoke(main, ["reason", "--checkpoint", str(tmp_path / "ok"), str(example_tables.folder),
                                  "--output", str(tmp_path / "res"), "--quiet", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "res" / "metrics.csv").read_text().startswith("graph,split,task,queries,mrr,mrr_low,mrr_high")
    # The MRR's interval resamples the distinct queries of the ranks that the command scored.
    record = json.loads((tmp_path / "res" / "metrics.json").read_text())["records"][0]
    ranks = evaluate_graph(model, example_tables, ["test"], torch.device("cpu"))
    assert len(np.unique(ranks.query_group)) < len(ranks.pessimistic)  # repeated queries: groups matter here
    assert (record["mrr_low"], record["mrr_high"]) == pytest.approx(ranks.mrr_interval())
    assert record["mrr_low"] < record["mrr"] < record["mrr_high"]
    assert f"{record['mrr_low']:.3f}-{record['mrr_high']:.3f}" in result.output
    bad = tmp_path / "q.tsv"
    bad.write_text("person:000\tcitizen_of\t?\nnobody\tcitizen_of\t?\n")
    result = runner.invoke(main, ["reason", "--checkpoint", str(tmp_path / "ok"), str(example_tables.folder),
                                  "--predict", str(bad), "--output", str(tmp_path / "res")])
    assert result.exit_code == 1 and "q.tsv:2" in result.output and "nobody" in result.output
    bad.write_text("person:000\tcitizen_of\t?\n?\tcity_in\tcountry:japan\n")
    result = runner.invoke(main, ["reason", "--checkpoint", str(tmp_path / "ok"), str(example_tables.folder),
                                  "--predict", str(bad), "--top-k", "3", "--output", str(tmp_path / "res")])
    assert result.exit_code == 0, result.output
    rows = (tmp_path / "res" / "predictions_example_test.tsv").read_text().splitlines()
    assert rows[0].split("\t") == ["query_head", "relation", "query_tail", "rank", "answer", "answer_name", "score",
                                   "known"]
    assert len(rows) == 1 + 2 * 3


def test_multimodal_tokens_change_predictions(example_tables):
    torch.manual_seed(0)
    full = TofuModel(model_config_for(example_tables, ModelConfig(**SMALL))).eval()
    structure_only = TofuModel(model_config_for(example_tables, ModelConfig(modalities=(), **SMALL))).eval()
    graph = graph_tensors(example_tables, "test")
    changed = replace(graph, entity_tokens=dict(graph.entity_tokens))
    text = changed.entity_tokens["text"]
    changed.entity_tokens["text"] = replace(text, codes=torch.where(text.codes >= 0, (text.codes + 7) % 64, text.codes))
    q = torch.as_tensor(example_tables.queries("test")[:, :2])
    with torch.inference_mode():
        plans = graph_plans(graph)
        assert not torch.allclose(full(graph, q, **plans), full(changed, q, **plans))
        assert torch.equal(structure_only(graph, q, **plans), structure_only(changed, q, **plans))


def test_reason_fine_tunes_before_evaluating(example_tables, tmp_path):
    model = TofuModel(model_config_for(example_tables, ModelConfig(**SMALL)))
    save_checkpoint(tmp_path / "ckpt", model.state_dict(), model.config.to_json(), example_tables.codebook_id,
                    {"step": 0})
    result = CliRunner().invoke(main, ["reason", "--checkpoint", str(tmp_path / "ckpt"), str(example_tables.folder),
                                       "--finetune-epochs", "1", "--output", str(tmp_path / "res"), "--quiet"])
    assert result.exit_code == 0, result.output
    tuned = load_checkpoint(tmp_path / "res" / "finetuned_example")[0]
    train_triples = len(example_tables.queries("train"))
    assert tuned["training"]["step"] == train_triples // 16
    assert tuned["training"]["graphs"] == ["example"]
    assert tuned["training"]["config"]["loss"] == "adversarial"   # a checkpoint that names no loss
    # The original checkpoint is untouched.
    assert load_checkpoint(tmp_path / "ckpt")[0]["training"] == {"step": 0}
    # A checkpoint trained with another loss is fine-tuned with that loss.
    save_checkpoint(tmp_path / "ckpt_sm", model.state_dict(), model.config.to_json(), example_tables.codebook_id,
                    {"step": 0, "config": {"loss": "softmax"}})
    result = CliRunner().invoke(main, ["reason", "--checkpoint", str(tmp_path / "ckpt_sm"), str(example_tables.folder),
                                       "--finetune-epochs", "1", "--output", str(tmp_path / "res_sm"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert load_checkpoint(tmp_path / "res_sm" / "finetuned_example")[0]["training"]["config"]["loss"] == "softmax"


def test_predict_uses_the_fine_tuned_model(example_tables, tmp_path):
    model = TofuModel(model_config_for(example_tables, ModelConfig(**SMALL)))
    save_checkpoint(tmp_path / "ckpt", model.state_dict(), model.config.to_json(), example_tables.codebook_id,
                    {"step": 0})
    queries = tmp_path / "q.tsv"
    queries.write_text("person:032\tcitizen_of\t?\n?\tcity_in\tcountry:japan\n")

    def predictions(checkpoint, out, *extra):
        result = CliRunner().invoke(main, ["reason", "--checkpoint", str(checkpoint), str(example_tables.folder),
                                           "--predict", str(queries), "--top-k", "5", "--output", str(out),
                                           "--quiet", *extra])
        assert result.exit_code == 0, result.output
        return (out / "predictions_example_test.tsv").read_text()

    zero_shot = predictions(tmp_path / "ckpt", tmp_path / "zs")
    tuned = predictions(tmp_path / "ckpt", tmp_path / "ft", "--finetune-epochs", "1")
    # The tuned model answers, and it is the checkpoint kept in OUTPUT.
    assert tuned != zero_shot
    assert tuned == predictions(tmp_path / "ft" / "finetuned_example", tmp_path / "again")


def test_reason_refuses_bad_split_and_predict_arguments_before_any_output(example_tables, tmp_path):
    model = TofuModel(model_config_for(example_tables, ModelConfig(**SMALL)))
    save_checkpoint(tmp_path / "ok", model.state_dict(), model.config.to_json(), example_tables.codebook_id, {"step": 0})
    good = tmp_path / "q.tsv"
    good.write_text("person:000\tcitizen_of\t?\n")
    bad_bytes = tmp_path / "bytes.tsv"
    bad_bytes.write_bytes("person:000\tcitizen_of\t?\n".encode() + b"person:0\xff1\tcitizen_of\t?\n")

    def reason(*args: str):
        return CliRunner().invoke(main, ["reason", str(example_tables.folder), "--checkpoint", str(tmp_path / "ok"),
                                         "--output", str(tmp_path / "res"), "--quiet", *args])

    for args, message in [
        (["--predict", str(bad_bytes)], "bytes.tsv:2: not valid UTF-8"),
        (["--predict", str(tmp_path)], "is a directory"),
        (["--predict", str(good), "--split", "valid,test"], "--predict and --query answer over one split's graph"),
        (["--predict", str(good), "--task", "align"], "--predict and --query answer link-prediction queries"),
        (["--split", "valid,valid"], "a split named twice"),
        (["--split", "valid,"], "an empty split name"),
        (["--checkpoint", str(tmp_path / "nope")], "nope: no such checkpoint folder"),
        (["--plot", str(tmp_path)], "is a folder; give a file name"),
        (["--plot", str(good / "p.png")], "q.tsv is a file, not a folder"),
        (["--checkpoint", str(tmp_path)], f"not a checkpoint folder, or one left incomplete by an interrupted "
                                          f"write (regenerate it); the checkpoint folder here is {tmp_path / 'ok'}"),
    ]:
        result = reason(*args)
        assert result.exit_code != 0 and message in result.output, (args, result.output)
        assert "Traceback" not in result.output and not (tmp_path / "res").exists()
    # Spaces around split names are not part of them.
    result = reason("--split", "valid, test")
    assert result.exit_code == 0, result.output
    assert {r["split"] for r in json.loads((tmp_path / "res" / "metrics.json").read_text())["records"]} == {"valid+test"}


def test_grail_pair_splits_rank_only_their_own_graph(tmp_path, codebooks_dir):
    """X and X_ind share one artifact; X_ind's queries are ranked over X_ind's entities alone."""
    from reasoning_stage.graph_data import candidate_entities
    from tokenizer_stage.config import TokenizerConfig

    x, ind = tmp_path / "toy" / "g", tmp_path / "toy" / "g_ind"
    for folder, prefix in ((x, "a"), (ind, "b")):
        folder.mkdir(parents=True)
        triples = [(f"{prefix}{i}", f"r{i % 2}", f"{prefix}{(i + 1) % 6}") for i in range(6)]
        (folder / "train.txt").write_text("".join("\t".join(t) + "\n" for t in triples[:4]))
        (folder / "valid.txt").write_text("\t".join(triples[4]) + "\n")
        (folder / "test.txt").write_text("\t".join(triples[5]) + "\n")
    # Make every queried entity appear in its own inference graph.
    (x / "train.txt").write_text((x / "train.txt").read_text() + "a5\tr0\ta4\n")
    (ind / "train.txt").write_text((ind / "train.txt").read_text() + "b5\tr0\tb4\n")
    tokenize_graph(x, tmp_path / "out", codebooks_dir, TokenizerConfig(use_text=False, use_images=False))
    tables = read_token_tables(tmp_path / "out" / "g")
    labels = tables.tables["entities"]["label"].to_pylist()
    assert sorted(labels[i] for i in candidate_entities(tables, "test")) == [f"b{i}" for i in range(6)]
    assert sorted(labels[i] for i in candidate_entities(tables, "train")) == [f"a{i}" for i in range(6)]
    model = TofuModel(model_config_for(tables, ModelConfig(modalities=(), **SMALL)))
    ranks = evaluate_graph(model, tables, ["ind_valid", "test"], torch.device("cpu"))
    assert len(ranks.pessimistic) == 4 and ranks.pessimistic.max() <= 6
    # The filter speaks X_ind's local ids: (b5, r1, ?) knows b0 (test), (b0, r1^-1, ?) knows b5, and
    # (b4, r0, ?) knows b5 (ind_valid); nothing of X enters.
    graph = graph_tensors(tables, "test")
    known = KnownTriples(tables, graph)
    local = {labels[g]: i for i, g in enumerate(graph.entity_ids.tolist())}
    mask = known.mask(torch.tensor([local["b5"], local["b0"], local["b4"]]), torch.tensor([1, 1 + 2, 0]))
    assert mask.shape == (3, 6)
    assert [row.nonzero().flatten().tolist() for row in mask] == [[local["b0"]], [local["b5"]], [local["b5"]]]
    # --predict answers over the --split's graph: an entity of the other graph is refused at its line.
    queries = tmp_path / "q.tsv"
    queries.write_text("b1\tr0\t?\na1\tr0\t?\n")
    with pytest.raises(PredictionInputError, match=r"q.tsv:2: entity 'a1' is not in the graph of split 'test' "
                                                   r"\(ind_graph\).*it is in that of split\(s\) train, valid"):
        read_prediction_queries(queries, tables, "test")
    queries.write_text("a1\tr0\t?\n?\tr1\ta2\n")
    assert len(read_prediction_queries(queries, tables, "train")) == 2


_HEAP_PROBE = """
import sys, torch
from reasoning_stage.allocator import retain_freed_memory
if not retain_freed_memory():
    print("not applied"); sys.exit(0)
block = torch.empty(24 << 20)   # 96 MiB: past the 32 MiB that glibc's mmap threshold can be raised to
address = block.data_ptr()
for line in open("/proc/self/maps"):
    span, *rest = line.split()
    if rest and rest[-1] == "[heap]":
        low, high = (int(x, 16) for x in span.split("-"))
        print("heap" if low <= address < high else "elsewhere")
        break
else:
    print("elsewhere")
"""


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc")
def test_retain_freed_memory_serves_big_tensors_from_the_heap():
    # A training step's autograd tensors reach ~90 MB; mmap-ed, each is zero-filled page by page anew
    # (fb237_v4: 2.31 s per step against 1.18 s from the heap). Run apart: the setting is process-wide.
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", _HEAP_PROBE], capture_output=True, text=True, cwd=repo, check=True)
    if out.stdout.strip() == "not applied":
        pytest.skip("no glibc mallopt here")
    assert out.stdout.strip() == "heap"


def test_train_command_refuses_bad_input_before_any_work(example_tables, tmp_path):
    """Each case exits non-zero with a message naming the problem, without a traceback, and writes nothing."""
    runner = CliRunner()
    base = _small_train_args(example_tables, "--seed")[:-1]
    assert runner.invoke(main, base + ["--out", str(tmp_path / "ok")]).exit_code == 0   # step 2
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("keep me")
    shutil.copytree(example_tables.folder, tmp_path / "tables_copy")
    cases = [
        (["--out", str(tmp_path / "tables_copy")], "not a checkpoint (a tofu.token_tables artifact)"),
        (["--out", str(a_file)], "is a file"),
        (["--out", str(a_file / "sub")], "is a file, not a folder"),
        (["--out", str(tmp_path / "precious")], "holds files and is not a checkpoint"),
        (["--out", str(tmp_path / "n1"), "--lr", "-0.001"], "learning_rate cannot be negative"),
        (["--out", str(tmp_path / "n2"), "--lr", "nan"], "learning_rate must be a finite number"),
        (["--out", str(tmp_path / "n3"), "--messages", "unknown"], "--messages: messages must be a non-empty subset"),
        (["--out", str(tmp_path / "n4"), "--modalities", "foo"], "--modalities: unknown modalities"),
        (["--out", str(tmp_path / "n5"), "--device", "foo"], "--device"),
        (["--out", str(tmp_path / "n6"), "--max-minutes", "0"], "--max-minutes"),
        (["--out", str(tmp_path / "n7"), "--task-weights", "alignment=1"], "no artifact here holds alignment"),
        (["--out", str(tmp_path / "n7"), "--task-weights", "lp=1,link_prediction=2"], "link_prediction is given twice"),
        (["--out", str(tmp_path / "n7"), "--task-weights", "lp=nan"], "a weight must be a finite number"),
        (["--out", str(tmp_path / "n7"), "--task-weights", "lp=inf"], "a weight must be a finite number"),
        (["--out", str(tmp_path / "n7"), "--task-weights", "lp=-1"], "a weight must be a finite number of at least 0"),
        (["--out", str(tmp_path / "n5"), "--device", "mps"], "TOFU runs on cpu or cuda"),
        (["--out", str(tmp_path / "n5"), "--init", str(a_file)], "a_file: is a file, not a checkpoint folder"),
        (["--out", str(tmp_path / "n8"), "--resume", str(tmp_path / "ok")], "already at step 2"),
        (["--out", str(tmp_path / "n9"), "--resume", str(tmp_path / "ok"), "--init", str(tmp_path / "ok")],
         "give one of them"),
        (["--out", str(tmp_path / "n10"), "--init", str(tmp_path / "ok"), "--dim", "32"],
         "--dim 32 (the checkpoint has 16)"),
        (["--out", str(tmp_path / "n11"), "--link-strengths", "0.3,0.05"], "--link-strengths: link_strengths must be ascending"),
        (["--out", str(tmp_path / "n11"), "--link-strengths", "0.3,x"], "--link-strengths"),
        (["--out", str(tmp_path / "n11"), "--init", str(tmp_path / "ok"), "--link-strengths", "0.3"],
         "--link-strengths 0.3 (the checkpoint has '')"),
        (["--out", str(tmp_path / "n11"), "--init", str(tmp_path / "ok"), "--pair-links"],
         "--pair-links (the checkpoint has False)"),
    ]
    for extra, expected in cases:
        args = base[:base.index("--dim")] + base[base.index("--dim") + 2:] if "--dim" in extra else base
        result = runner.invoke(main, args + extra)
        assert result.exit_code in (1, 2) and expected in result.output, (extra, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit), (extra, result.exception)
    assert a_file.read_text() == "x" and (tmp_path / "precious" / "notes.txt").read_text() == "keep me"
    assert not any((tmp_path / f"n{i}").exists() for i in range(1, 11))
    # --resume continues the checkpoint's own model up to --max-steps (no shape options needed).
    result = runner.invoke(main, ["train", str(example_tables.folder), "--max-steps", "4", "--eval-every", "2",
                                  "--quiet", "--out", str(tmp_path / "more"), "--resume", str(tmp_path / "ok")])
    assert result.exit_code == 0, result.output
    manifest = load_checkpoint(tmp_path / "more")[0]
    assert manifest["training"]["step"] == 4 and manifest["model"]["dim"] == 16
    # ... and the run's own command line, shape options included, resumes it too.
    result = runner.invoke(main, [a if a != "2" or i != base.index("--max-steps") + 1 else "6" for i, a in enumerate(base)]
                           + ["--modalities", "structure,text,image", "--out", str(tmp_path / "more"),
                              "--resume", str(tmp_path / "more")])
    assert result.exit_code == 0, result.output
    assert load_checkpoint(tmp_path / "more")[0]["training"]["step"] == 6
    assert (tmp_path / "tables_copy" / "manifest.json").is_file()
    # A resumed run appends to its log; a fresh run into the same folder starts the log anew.
    steps = [json.loads(line)["step"] for line in (tmp_path / "more.log.jsonl").read_text().splitlines()]
    assert steps == [4, 6]
    assert runner.invoke(main, base + ["--out", str(tmp_path / "more")]).exit_code == 0
    steps = [json.loads(line)["step"] for line in (tmp_path / "more.log.jsonl").read_text().splitlines()]
    assert steps == [2]


@pytest.mark.gpu
def test_cuda_scores_match_cpu_and_training_runs_on_cuda(example_tables, tmp_path):
    """The CUDA kernels (cuSPARSE products with int32 CSR indices, torch_scatter) agree with the CPU
    path, and their backward runs: a few training steps on the reach path and on dense layers."""
    import copy

    torch.manual_seed(0)
    model = TofuModel(model_config_for(example_tables, ModelConfig(**SMALL))).eval()
    queries = torch.as_tensor(example_tables.queries("test")[:, :2])
    on_cpu = _scores(model, example_tables, "test", queries)
    cuda = torch.device("cuda")
    graph = graph_tensors(example_tables, "test").to(cuda)
    on_gpu = copy.deepcopy(model).to(cuda)
    with torch.inference_mode():
        scores = on_gpu(graph, queries.to(cuda), **graph_plans(graph)).cpu()
    assert torch.allclose(on_cpu, scores, atol=1e-4, rtol=1e-4)
    for batch_relations, folder in ((1, "reach"), (0, "dense")):
        history = train(copy.deepcopy(model).train(), [example_tables],
                        TrainConfig(max_steps=4, eval_every=2, batch_relations=batch_relations, loss="both",
                                    edge_dropout=0.5, negatives=16), tmp_path / folder, cuda)
        assert [h["step"] for h in history] == [2, 4] and all(math.isfinite(h["loss"]) for h in history)


@pytest.mark.gpu
def test_faiss_gpu_assigns_codes_as_the_cpu_index_does():
    from tokenizer_stage import quantize

    if not quantize.gpu_available():
        pytest.skip("this faiss build has no GPU support (faiss-cpu)")
    faiss = quantize.load_faiss()
    rng = np.random.default_rng(0)
    centroids = quantize.fit_codebook(rng.normal(size=(2000, 16)).astype(np.float32), 32, seed=0)   # on the GPU
    assert centroids.shape == (32, 16) and np.isfinite(centroids).all()
    vectors = rng.normal(size=(500, 16)).astype(np.float32)
    cpu_index = faiss.IndexFlatL2(16)
    cpu_index.add(centroids)
    expected = cpu_index.search(vectors, 1)[1][:, 0]
    assert (quantize.CodeAssigner(centroids).assign(vectors) == expected).all()
