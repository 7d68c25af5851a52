"""The fused CPU kernel (``kernels/``, package ``tofu_kernels``) against the torch-operator path it
replaces at inference: the same sums for every message function, with and without query runs, and the
same scores from a whole model."""
from __future__ import annotations

import pytest
import torch

from reasoning_stage import layers
from reasoning_stage.config import ModelConfig
from reasoning_stage.layers import MixtureOfMessageConv, edge_plan
from reasoning_stage.models import QueryBatch, TofuModel, graph_plans

pytest.importorskip("tofu_kernels", reason="the fused kernel is not built (pip install --no-build-isolation ./kernels)")


def _graph(seed: int, nodes: int = 30, types: int = 6, edges: int = 120):
    generator = torch.Generator().manual_seed(seed)
    # Nodes 0-2 receive no edge: their sums are the boundary alone.
    source = torch.randint(0, nodes, (edges,), generator=generator)
    target = torch.randint(3, nodes, (edges,), generator=generator)
    edge_type = torch.randint(0, types, (edges,), generator=generator)
    edge_type[:4] = edge_type[4]   # repeated (source, type) pairs and repeated edges
    source[:4], target[:2] = source[4], target[4]
    return torch.stack([source, target]), edge_type, nodes, types


def _count_kernel_calls(monkeypatch) -> list[int]:
    calls = []
    kernel = layers._fused_propagate

    def counted(*args):
        calls.append(1)
        return kernel(*args)

    monkeypatch.setattr(layers, "_fused_propagate", counted)
    return calls


@pytest.mark.parametrize("messages", [("distmult",), ("distmult", "transe"), ("distmult", "transe", "rotate"),
                                      ("rotate",)])
@pytest.mark.parametrize("runs", [None, [(0, 3), (3, 4), (4, 7)]])
def test_fused_sums_equal_the_torch_path(messages, runs, monkeypatch):
    edge_index, edge_type, nodes, types = _graph(0)
    torch.manual_seed(1)
    layer = MixtureOfMessageConv(8, messages).eval()
    columns = 7
    groups = columns if runs is None else len(runs)
    x, boundary = torch.randn(nodes, columns, 8), torch.randn(nodes, columns, 8)
    relations, gates = torch.randn(types, groups, 8), torch.softmax(torch.randn(groups, len(messages)), -1)
    for reduction in ("spmm", "segment"):
        plan = edge_plan(edge_index, edge_type, nodes, types, reduction=reduction)
        with torch.inference_mode():
            terms = layer.relation_terms(relations, gates)
            calls = _count_kernel_calls(monkeypatch)
            fused = layer.aggregate(x, plan, terms, boundary, runs)
            assert len(calls) == 1
            monkeypatch.setattr(layers, "_fused_propagate", None)
            reference = layer.aggregate(x, plan, terms, boundary, runs)
        monkeypatch.undo()
        assert torch.allclose(fused, reference, atol=1e-5), (reduction, float((fused - reference).abs().max()))
        assert torch.equal(fused[:3], boundary[:3] if "transe" not in messages else reference[:3])


def test_one_column_of_terms_serves_every_query(monkeypatch):
    """Terms ``[T, 1, dim]`` (one run's, as training and entity embedding pass them) broadcast over x's columns."""
    edge_index, edge_type, nodes, types = _graph(1)
    torch.manual_seed(2)
    layer = MixtureOfMessageConv(8, ("distmult", "rotate")).eval()
    plan = edge_plan(edge_index, edge_type, nodes, types)
    x, boundary = torch.randn(nodes, 5, 8), torch.randn(nodes, 5, 8)
    with torch.inference_mode():
        terms = layer.relation_terms(torch.randn(types, 1, 8), torch.softmax(torch.randn(1, 2), -1))
        fused = layers.fused_propagate(plan, x, terms, boundary)
        monkeypatch.setattr(layers, "_fused_propagate", None)
        assert layers.fused_propagate(plan, x, terms, boundary) is None
        reference = layer.aggregate(x, plan, terms, boundary)
    assert fused is not None and torch.allclose(fused, reference, atol=1e-5)


@pytest.mark.parametrize("modalities", [(), ("text",)])
def test_the_kernel_stays_out_of_autograd_and_scores_equal_without_it(modalities, monkeypatch):
    from reasoning_stage.graph_data import GraphTensors, TokenTensor

    edge_index, edge_type, nodes, types = _graph(2)
    generator = torch.Generator().manual_seed(3)

    def tokens(owners: int) -> TokenTensor:
        return TokenTensor(torch.randint(0, 20, (owners, 2), generator=generator), torch.ones(owners, 2))

    graph = GraphTensors("random", nodes, types // 2, edge_index, edge_type,
                         entity_tokens={"text": tokens(nodes)}, relation_tokens={"text": tokens(types // 2)})
    torch.manual_seed(0)
    text = dict(codebook_sizes={"text": 20}, relation_text_codebook_size=20) if modalities else {}
    model = TofuModel(ModelConfig(dim=16, entity_layers=3, relation_layers=2, modalities=modalities,
                                  messages=("distmult", "transe", "rotate"), **text)).eval()
    plans = graph_plans(graph)
    queries = torch.tensor([[5, 0], [9, 0], [7, 1], [3, 2], [11, 4]])
    calls = _count_kernel_calls(monkeypatch)
    with torch.enable_grad():   # training: the torch path, which autograd records
        model.train()(graph, queries, **plans).sum().backward()
    assert not calls
    model.eval()
    with torch.inference_mode():
        for reach in (True, False):
            calls.clear()
            fused = model(graph, QueryBatch.in_runs(queries)[0], reach=reach, **plans)
            assert calls, reach
            with monkeypatch.context() as patch:
                patch.setattr(layers, "_fused_propagate", None)
                reference = model(graph, QueryBatch.in_runs(queries)[0], reach=reach, **plans)
            assert torch.allclose(fused, reference, atol=1e-4), float((fused - reference).abs().max())


def test_a_plan_that_does_not_fit_the_tensors_is_an_error_not_a_wild_read():
    from tofu_kernels import fused_propagate as kernel

    x, boundary, scale = torch.randn(3, 2, 4), torch.zeros(3, 2, 4), torch.randn(2, 1, 4)
    indptr, source, relation = torch.tensor([0, 1, 1, 2]), torch.tensor([1, 2]), torch.tensor([0, 1])
    group = torch.zeros(2, dtype=torch.long)
    assert kernel(x, boundary, indptr, source, relation, group, scale).shape == x.shape
    for bad, message in [((indptr, source, torch.tensor([0, 5]), group), "edge_type"),
                         ((indptr, torch.tensor([0, 9]), relation, group), "edge_source"),
                         ((indptr, source, relation, torch.tensor([0, 3])), "column_group"),
                         ((torch.tensor([0, 10**6, 10**6, 2]), source, relation, group), "indptr")]:
        with pytest.raises(RuntimeError, match=message):
            kernel(x, boundary, *bad, scale)


def test_the_switch_keeps_the_torch_path_where_the_kernel_is_built():
    import os
    import subprocess
    import sys

    probe = "from reasoning_stage import layers; print(layers.fused_kernel_state(), layers._fused_propagate is None)"
    states = {}
    for value in ("0", "1"):
        env = {**os.environ, layers.FUSED_KERNEL_SWITCH: value}
        states[value] = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                                       check=True).stdout.split()
    assert states == {"0": ["off", "True"], "1": ["on", "False"]}
