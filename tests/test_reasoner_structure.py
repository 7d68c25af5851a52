"""The reasoner's structure: one relation encoder, batches scored by their relation runs, a sparse
relation graph, one in-place policy, and layers that forward passes and imports leave as they are."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from artifacts.checkpoint import load_checkpoint
from reasoning_stage.graph_data import GraphTensors, TokenTensor
from reasoning_stage.layers import (EdgePlan, MixtureOfMessageConv, RelationEncoder, edge_plan, inplace_allowed,
                                    relation_graph)
from reasoning_stage.config import ModelConfig, RelationLinks
from reasoning_stage.models import QueryBatch, TofuModel, graph_plans
from reasoning_stage.reasoning import load_model
from reasoning_stage.config import TrainConfig
from reasoning_stage.training import PreparedGraph, training_step

REPO = Path(__file__).resolve().parents[1]
CONFIG = ModelConfig(dim=16, entity_layers=3, relation_layers=2, modalities=("text",), codebook_sizes={"text": 20},
                     relation_text_codebook_size=20, messages=("distmult", "transe", "rotate"))


def _random_graph(seed: int, num_entities: int = 40, num_relations: int = 3, num_triples: int = 80) -> GraphTensors:
    """Random triples with their inverse edges, two text tokens per entity and per relation."""
    generator = torch.Generator().manual_seed(seed)
    h, t = torch.randint(0, num_entities, (2, num_triples), generator=generator)
    r = torch.randint(0, num_relations, (num_triples,), generator=generator)

    def tokens(owners: int) -> TokenTensor:
        return TokenTensor(torch.randint(0, 20, (owners, 2), generator=generator), torch.ones(owners, 2))

    return GraphTensors("random", num_entities, num_relations, torch.stack([torch.cat([h, t]), torch.cat([t, h])]),
                        torch.cat([r, r + num_relations]), entity_tokens={"text": tokens(num_entities)},
                        relation_tokens={"text": tokens(num_relations)})


def _model(seed: int = 0) -> TofuModel:
    torch.manual_seed(seed)
    return TofuModel(CONFIG).eval()


def _links(plan: EdgePlan) -> list[tuple[int, int, int]]:
    """``(type, source, target)`` of every edge of a plan, in the plan's order (by target)."""
    targets = torch.repeat_interleave(torch.arange(plan.num_nodes), plan.indptr.diff())
    pairs = plan.edge_pair
    return list(zip(plan.pair_type[pairs].tolist(), plan.pair_source[pairs].tolist(), targets.tolist()))


def _dense_relation_graph(edge_index, edge_type, num_ids, num_entities, reduction, link_strengths=(), pair_links=False):
    """The reference: dense ``[entities x relation ids]`` (and ``[entity pairs x relation ids]``)
    incidences, their products, and each link's cosine of the two relations' sets read off the dense
    columns."""
    heads = torch.zeros(num_entities, num_ids)
    tails = torch.zeros(num_entities, num_ids)
    heads[edge_index[0], edge_type] = 1.0
    tails[edge_index[1], edge_type] = 1.0
    kinds = [(heads, heads), (heads, tails), (tails, heads), (tails, tails)]
    if pair_links:
        pairs = torch.zeros(num_entities * num_entities, num_ids)
        pairs[edge_index[0] * num_entities + edge_index[1], edge_type] = 1.0
        kinds.append((pairs, pairs))
    bins = len(link_strengths) + 1
    index, types = [], []
    for kind, (a, b) in enumerate(kinds):
        shared = a.T @ b
        cosine = shared / torch.sqrt(a.sum(0)[:, None] * b.sum(0)[None, :]).clamp(min=1)
        for link in range(kind * bins, (kind + 1) * bins):
            low = link_strengths[link - kind * bins - 1] if link > kind * bins else -1.0
            high = link_strengths[link - kind * bins] if link < (kind + 1) * bins - 1 else 2.0
            src, dst = ((shared > 0) & (cosine >= low) & (cosine < high)).nonzero(as_tuple=True)
            index.append(torch.stack([src, dst]))
            types.append(torch.full_like(src, link))
    return edge_plan(torch.cat(index, 1), torch.cat(types), num_ids, len(kinds) * bins, reduction)


# ------------------------------------------------------------------ the relation graph

def test_relation_graph_links_relations_that_share_an_entity():
    # 0 -a-> 1 -b-> 2 and 0 -c-> 2 (relation ids a, b, c = 0, 1, 2).
    plan = relation_graph(torch.tensor([[0, 1, 0], [1, 2, 2]]), torch.tensor([0, 1, 2]), 3, 3, "segment")
    hh, ht, th, tt = 0, 1, 2, 3
    expected = {(hh, 0, 0), (hh, 0, 2), (hh, 2, 0), (hh, 2, 2), (hh, 1, 1),   # a and c share head 0
                (ht, 1, 0), (th, 0, 1),                                        # 1 is b's head and a's tail
                (tt, 0, 0), (tt, 1, 1), (tt, 1, 2), (tt, 2, 1), (tt, 2, 2)}    # b and c share tail 2
    assert sorted(_links(plan)) == sorted(expected)


def test_pair_links_mark_a_symmetric_relation_and_relations_on_the_same_pairs():
    # Relation 0 ("spouse") holds both ways between 0 and 1; relation 1 ("parent") runs round the
    # cycle 2 -> 3 -> 4 -> 2, never both ways; relation 2 ("child") from 3 to 2. Ids 3, 4, 5 are their
    # inverses (both directions, as graphs hold them).
    edges = torch.tensor([[0, 1, 2, 3, 4, 3], [1, 0, 3, 4, 2, 2]])
    relations = torch.tensor([0, 0, 1, 1, 1, 2])
    both = torch.cat([edges, edges.flip(0)], dim=1)
    ids = torch.cat([relations, relations + 3])
    pp = 4
    pairs = {(s, d) for t, s, d in _links(relation_graph(both, ids, 6, 5, "segment", pair_links=True)) if t == pp}
    assert (0, 3) in pairs and (3, 0) in pairs              # spouse is symmetric: on a pair with its inverse
    assert (1, 4) not in pairs and (2, 5) not in pairs      # parent and child are not
    assert {(1, 5), (5, 1), (2, 4), (4, 2)} <= pairs        # parent holds where child's inverse does
    assert not {(0, 1), (0, 2), (1, 2)} & pairs             # relations on no common pair stay apart
    # The four kinds alone link spouse to its inverse exactly as they link parent to its inverse.
    plain = _links(relation_graph(both, ids, 6, 5, "segment"))
    assert {t for t, s, d in plain if (s, d) == (0, 3)} == {t for t, s, d in plain if (s, d) == (1, 4)} == {0, 1, 2, 3}


@pytest.mark.parametrize("pair_links", [False, True])
@pytest.mark.parametrize("link_strengths", [(), (0.3,), (0.2, 0.5, 0.99)])
@pytest.mark.parametrize("reduction", ["segment", "spmm"])
def test_sparse_relation_graph_equals_the_dense_incidence_product(reduction, link_strengths, pair_links):
    """The same links with the same types in the same order (so the same float sums downstream) as
    the dense products, with and without links split by strength, with and without pair links."""
    generator = torch.Generator().manual_seed(0)
    for trial in range(25):
        num_entities = int(torch.randint(1, 50, (), generator=generator))
        num_ids = 2 * int(torch.randint(1, 6, (), generator=generator))
        num_edges = 0 if trial == 0 else int(torch.randint(1, 150, (), generator=generator))  # repeats, isolated nodes
        edge_index = torch.randint(0, num_entities, (2, num_edges), generator=generator)
        edge_type = torch.randint(0, num_ids, (num_edges,), generator=generator)
        sparse = relation_graph(edge_index, edge_type, num_ids, num_entities, reduction, link_strengths, pair_links)
        dense = _dense_relation_graph(edge_index, edge_type, num_ids, num_entities, reduction, link_strengths,
                                      pair_links)
        assert sparse.num_types == RelationLinks(link_strengths, pair_links).num_types
        for name in ("pair_source", "pair_type", "edge_pair", "indptr", "out_indptr", "out_target", "out_type"):
            assert torch.equal(getattr(sparse, name), getattr(dense, name)), (trial, name)
        if reduction == "spmm":
            assert torch.equal(sparse.matrix.to_dense(), dense.matrix.to_dense())
    assert len(_links(sparse)) > 0


def test_link_strength_is_the_cosine_of_the_entity_sets_and_needs_no_ids():
    # Relation 0 has heads {0, 1, 2, 3}, relation 1 heads {0, 1}, relation 2 head {3}; tails are all
    # distinct entities. hh cosines: 0-1 = 2 / sqrt(4 * 2) = 0.71, 0-2 = 1 / sqrt(4) = 0.5.
    heads = torch.tensor([0, 1, 2, 3, 0, 1, 3])
    relations = torch.tensor([0, 0, 0, 0, 1, 1, 2])
    edge_index = torch.stack([heads, torch.arange(10, 17)])
    plan = relation_graph(edge_index, relations, 3, 17, "segment", link_strengths=(0.6,))
    hh_weak, hh_strong = 0, 1
    hh = {(t, s, d) for t, s, d in _links(plan) if t in (hh_weak, hh_strong)}
    assert hh == {(hh_strong, 0, 0), (hh_strong, 1, 1), (hh_strong, 2, 2), (hh_strong, 0, 1), (hh_strong, 1, 0),
                  (hh_weak, 0, 2), (hh_weak, 2, 0)}
    # Renumbering entities and relations moves the links with them and keeps every type.
    entity_order, relation_order = torch.randperm(17, generator=torch.Generator().manual_seed(1)), torch.tensor([2, 0, 1])
    moved = relation_graph(entity_order[edge_index], relation_order[relations], 3, 17, "segment", link_strengths=(0.6,))
    assert sorted(_links(moved)) == sorted((t, int(relation_order[s]), int(relation_order[d])) for t, s, d in _links(plan))


def test_relation_layers_refuse_a_relation_graph_of_other_link_types():
    graph = _random_graph(2)
    split = TofuModel(ModelConfig(**{**CONFIG.to_json(), "link_strengths": [0.05, 0.3]})).eval()
    assert split.relation_layers[0].link_embedding.num_embeddings == 12
    queries = torch.tensor([[0, 1], [2, 4]])
    with torch.no_grad():
        scores = split(graph, queries)   # builds its own relation graph: 12 link types
        assert torch.equal(scores, split(graph, queries, **graph_plans(graph, RelationLinks((0.05, 0.3)))))
        with pytest.raises(ValueError, match=r"4 link types, these layers read 12: build it with link_strengths"):
            split(graph, queries, **graph_plans(graph))


@pytest.mark.parametrize("thresholds", [[0.3, 0.05], [0.0, 0.5], [0.5, 1.0], [0.2, 0.2], 0.3])
def test_link_strengths_must_be_ascending_cosines(thresholds):
    with pytest.raises(ValueError, match="link_strengths"):
        ModelConfig(link_strengths=thresholds)


def test_link_strengths_survive_the_checkpoint_config():
    config = ModelConfig(link_strengths=[0.05, 0.3], pair_links=True)
    assert ModelConfig.from_json(config.to_json()) == config and config.link_strengths == (0.05, 0.3)
    assert config.relation_links == RelationLinks((0.05, 0.3), True) and config.relation_links.num_types == 15


def test_pair_links_is_a_flag():
    with pytest.raises(ValueError, match="pair_links is true or false"):
        ModelConfig(pair_links="yes")


def test_relation_layers_with_pair_links_refuse_a_relation_graph_without_them():
    graph = _random_graph(2)
    paired = TofuModel(ModelConfig(**{**CONFIG.to_json(), "pair_links": True})).eval()
    assert paired.relation_layers[0].link_embedding.num_embeddings == 5
    queries = torch.tensor([[0, 1], [2, 4]])
    with torch.no_grad():
        scores = paired(graph, queries)   # builds its own relation graph: 5 link types
        assert torch.equal(scores, paired(graph, queries, **graph_plans(graph, RelationLinks(pairs=True))))
        with pytest.raises(ValueError, match=r"4 link types, these layers read 5: .*pair_links=True"):
            paired(graph, queries, **graph_plans(graph))


def test_relation_graph_memory_follows_the_edges_not_the_entities():
    """Five million entities and a thousand relation ids, a dense incidence of 20 GB, built within
    an address space of 1 GB more than the process already holds."""
    script = """
import resource, torch
from reasoning_stage.layers import relation_graph
torch.set_num_threads(1)  # thread stacks take address space too; the limit is for the incidence
with open("/proc/self/status") as status:
    held = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize"))
resource.setrlimit(resource.RLIMIT_AS, (held + 2**30, resource.RLIM_INFINITY))
edge_index = torch.arange(2000).view(2, 1000) * 2500
plan = relation_graph(edge_index, torch.arange(1000), 1000, 5_000_000)
print(plan.edge_pair.numel())
"""
    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc to read the address space held")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout) == 2000  # each relation id linked to itself, hh and tt


# ------------------------------------------------------------------ the relation encoder

def test_one_relation_encoder_serves_queries_and_embeddings():
    model = _model()
    graph = _random_graph(1)
    assert isinstance(model.relation_layers, RelationEncoder) and len(model.relation_layers) == 2
    inputs = []
    model.relation_layers.register_forward_hook(lambda module, args, output: inputs.append(args))
    with torch.no_grad():
        model(graph, torch.tensor([[0, 1], [2, 4]]))
        model.embed_entities(graph, task=1)
    assert len(inputs) == 2   # a query batch and an embedding both ask the one encoder
    (asked_by_queries, _, text), (asked_by_embedding, _, same_text) = inputs
    assert torch.equal(asked_by_embedding, torch.ones(6, 1, 16))
    assert asked_by_queries[1, 0].eq(1).all() and asked_by_queries[4, 1].eq(1).all()
    assert asked_by_queries.sum() == 2 * 16
    assert torch.equal(text, same_text) and text.shape == (6, 16)
    # The inverse ids carry their relation's text plus the inverse marker.
    with torch.no_grad():
        model.inverse_marker.fill_(0.5)
        moved = model.relation_text_vectors(graph)
    assert torch.allclose(moved[3:] - moved[:3], torch.full((3, 16), 0.5))
    # Without layers the encoder hands back its boundary.
    assert torch.equal(RelationEncoder(16, 0)(asked_by_embedding, None, text), asked_by_embedding + text.unsqueeze(1))


def test_checkpoint_keys_are_those_of_the_shipped_model(shipped):
    manifest, state, _ = load_checkpoint(shipped)
    model = TofuModel(ModelConfig.from_json(manifest["model"]))
    assert set(model.state_dict()) == set(state)
    assert {key for key in state if key.startswith("relation_layers.")} == {
        f"relation_layers.{i}.{name}" for i in range(model.config.relation_layers)
        for name in ("link_embedding.weight", "combine.weight", "combine.bias", "norm.weight", "norm.bias")}
    loaded = load_model(shipped, torch.device("cpu"))   # strict
    assert isinstance(loaded.model.relation_layers, RelationEncoder)


# ------------------------------------------------------------------ batches in runs

def test_query_batch_arranges_few_relations_into_runs():
    queries = torch.tensor([[0, 2], [1, 0], [2, 2], [3, 0], [4, 2], [5, 0]])
    batch, order = QueryBatch.in_runs(queries)
    assert torch.equal(batch.queries, queries[order]) and batch.runs == [(0, 3), (3, 6)]
    assert batch.queries[:, 1].tolist() == [0, 0, 0, 2, 2, 2] and batch.queries[:3, 0].tolist() == [1, 3, 5]
    kept, none = QueryBatch.in_runs(batch.queries)           # already in runs: kept as it is
    assert none is None and kept.runs == [(0, 3), (3, 6)] and torch.equal(kept.queries, batch.queries)
    distinct = torch.stack([torch.arange(6), torch.arange(6)], 1)
    single, none = QueryBatch.in_runs(distinct)              # one query per relation: no runs
    assert none is None and single.runs is None
    assert QueryBatch.in_runs(queries[:1])[0].runs is None


@pytest.mark.parametrize("autograd", [False, True], ids=["grouped-dense", "reach"])
def test_runs_score_like_one_batch_per_relation(autograd, monkeypatch):
    model = _model()
    graph = _random_graph(2)
    generator = torch.Generator().manual_seed(3)
    relations = torch.tensor([4, 0, 4, 2, 0, 4, 2, 0, 0, 4, 2, 4])
    queries = torch.stack([torch.randint(0, graph.num_entities, (12,), generator=generator), relations], 1)
    batch, order = QueryBatch.in_runs(queries)
    assert batch.runs == [(0, 4), (4, 7), (7, 12)]
    with torch.set_grad_enabled(autograd):
        by_runs = model(graph, batch, **graph_plans(graph))
        per_relation = torch.cat([model(graph, batch.queries[lo:hi]) for lo, hi in batch.runs])
        calls, scored = [], []
        forward, score_batch = TofuModel.forward, TofuModel.score_batch
        monkeypatch.setattr(TofuModel, "forward", lambda self, *a, **k: calls.append(a[1]) or forward(self, *a, **k))
        monkeypatch.setattr(TofuModel, "score_batch", lambda self, *a, **k: scored.append(a[1])
                            or score_batch(self, *a, **k))
        shuffled = model(graph, queries, **graph_plans(graph))
    assert torch.allclose(by_runs, per_relation, atol=1e-5)
    # A shuffled tensor is scored in one pass (no second call of forward), arranged into the same
    # runs, and answered in its own order.
    assert len(calls) == 1 and len(scored) == 1 and scored[0].runs == batch.runs
    assert torch.equal(shuffled, by_runs[torch.argsort(order)])


class _Known:
    """Known triples of a small graph: ``mask(heads, relations)`` as KnownTriples answers it."""

    def __init__(self, graph: GraphTensors):
        self.graph = graph

    def mask(self, heads: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
        source, target = self.graph.edge_index
        out = torch.zeros(len(heads), self.graph.num_entities, dtype=torch.bool)
        for row, (h, r) in enumerate(zip(heads.tolist(), relations.tolist())):
            out[row, target[(source == h) & (self.graph.edge_type == r)]] = True
        return out


def _prepared(graph: GraphTensors) -> PreparedGraph:
    triples = torch.stack([graph.edge_index[0], graph.edge_type, graph.edge_index[1]], 1)[:graph.num_edges // 2]
    return PreparedGraph("random", graph, triples, graph_plans(graph)["rel_graph"], _Known(graph), None,
                         triples[:, 1].numpy())


def test_training_step_passes_its_queries_in_runs(monkeypatch):
    """A batch of few relations reaches the model as runs; its loss and gradients are those of the
    same queries scored one by one."""
    model = _model().train()
    prepared = _prepared(_random_graph(4))
    batch = prepared.train_triples[prepared.train_triples[:, 1] < 2][:12]
    config = TrainConfig(loss="both", negatives=16)
    seen = []
    forward = TofuModel.forward
    monkeypatch.setattr(TofuModel, "forward", lambda self, graph, queries, **k: seen.append(queries)
                        or forward(self, graph, queries, **k))
    loss = training_step(model, prepared, batch, config, torch.Generator().manual_seed(0))
    grads = torch.autograd.grad(loss, list(model.parameters()), allow_unused=True)
    assert isinstance(seen[0], QueryBatch) and seen[0].runs is not None and len(seen[0].runs) <= 4
    for lo, hi in seen[0].runs:
        assert seen[0].queries[lo:hi, 1].unique().numel() == 1
    # The reference: the queries as drawn, one by one (no runs), with the same directions and negatives.
    monkeypatch.setattr(QueryBatch, "in_runs", classmethod(lambda cls, queries: (cls(queries, None), None)))
    reference = training_step(model, prepared, batch, config, torch.Generator().manual_seed(0))
    reference_grads = torch.autograd.grad(reference, list(model.parameters()), allow_unused=True)
    assert seen[-1].runs is None
    assert loss.item() == pytest.approx(reference.item(), rel=1e-5)
    for a, b in zip(grads, reference_grads):
        assert (a is None) == (b is None)
        if a is not None:
            assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)


# ------------------------------------------------------------------ in place, mutation, import

def test_one_in_place_policy():
    sources = {path.name: path.read_text() for path in (REPO / "reasoning_stage").glob("*.py")}
    deciding = {name: len(re.findall(r"is_grad_enabled\(", text)) for name, text in sources.items()}
    assert {name: count for name, count in deciding.items() if count} == {"layers.py": 1}
    with torch.no_grad():
        assert inplace_allowed()
    with torch.inference_mode():
        assert inplace_allowed()
    with torch.enable_grad():
        assert not inplace_allowed()
        layer = MixtureOfMessageConv(4)
        terms = layer.relation_terms(torch.randn(2, 1, 4), torch.ones(1, 1))
        with pytest.raises(ValueError, match="overwrite their input"):
            layer.message(torch.randn(3, 2, 4), torch.tensor([0]), torch.tensor([1]), terms, groups=[(0, 2)])


def _snapshot(model: torch.nn.Module) -> dict:
    """Every module's own attributes (tensors by value) and every parameter by value."""
    state = {}
    for name, module in model.named_modules():
        for key, value in vars(module).items():
            if key in ("_parameters", "_buffers", "_modules"):
                value = {k: (id(v), v.detach().clone() if v is not None else None) for k, v in value.items()} \
                    if key != "_modules" else {k: id(v) for k, v in value.items()}
            elif key.startswith("_") and key.endswith("hooks"):
                continue
            state[name, key] = value
    return state


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, tuple):
        return isinstance(b, tuple) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def test_forward_passes_leave_the_layers_as_they_are():
    model = _model()
    graph = _random_graph(5)
    queries = torch.tensor([[0, 1], [3, 1], [5, 1], [7, 4], [9, 4], [2, 0]])
    before = _snapshot(model)
    for context in (torch.no_grad, torch.inference_mode):
        with context():
            model(graph, queries)
            model(graph, queries[:1])
            model.embed_entities(graph, task=2)
    model.train()
    (model(graph, queries).sum() + model.embed_entities(graph, task=1).sum()).backward()
    model.eval().zero_grad(set_to_none=True)
    after = _snapshot(model)
    assert before.keys() == after.keys()
    changed = [key for key in before if not _same(before[key], after[key])]
    assert changed == [], changed


def test_importing_the_reasoner_compiles_nothing():
    script = """
import sys, torch, torch.utils.cpp_extension as cpp
def refuse(*args, **kwargs):
    raise AssertionError("compiled on import")
cpp.load = cpp.load_inline = torch.compile = torch.jit.script = torch.jit.trace = refuse
before = set(sys.modules)
import reasoning_stage.layers, reasoning_stage.models, reasoning_stage.training
print(sorted(m for m in set(sys.modules) - before if m.startswith(("torch._dynamo", "torch._inductor", "triton"))))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
