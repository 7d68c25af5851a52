"""The fused CPU kernel (``kernels/``, package ``tofu_kernels``) against the torch-operator path it
replaces: the same sums and gradients for every message function, with and without query runs, and the
same scores and training gradients from a whole model."""
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
def test_fused_gradients_equal_autograd_of_the_torch_path(messages, runs, monkeypatch):
    edge_index, edge_type, nodes, types = _graph(4)
    plan = edge_plan(edge_index, edge_type, nodes, types)
    torch.manual_seed(1)
    layer = MixtureOfMessageConv(8, messages)
    groups = 7 if runs is None else len(runs)
    inputs = [torch.randn(nodes, 7, 8, requires_grad=True), torch.randn(nodes, 7, 8, requires_grad=True),
              torch.randn(types, groups, 8, requires_grad=True),
              torch.softmax(torch.randn(groups, len(messages)), -1).requires_grad_()]
    weights = torch.randn(nodes, 7, 8)
    results = {}
    for kernel in (True, False):
        with monkeypatch.context() as patch:
            if not kernel:
                patch.setattr(layers, "_fused_propagate", None)
            x, boundary, relations, gates = inputs
            out = layer.aggregate(x, plan, layer.relation_terms(relations, gates), boundary, runs)
            (out * weights).sum().backward()
        results[kernel] = [out.detach()] + [None if t.grad is None else t.grad.clone() for t in inputs] + \
            [None if p.grad is None else p.grad.clone() for p in layer.parameters()]
        for t in [*inputs, *layer.parameters()]:
            t.grad = None
    for fused, reference in zip(results[True], results[False]):
        assert (fused is None) == (reference is None)
        if fused is not None:
            assert torch.allclose(fused, reference, atol=1e-4, rtol=1e-4), float((fused - reference).abs().max())


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
def test_scores_and_training_gradients_equal_without_the_kernel(modalities, monkeypatch):
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
    weights = torch.randn(len(queries), nodes, generator=generator)
    gradients = {}
    for kernel in (True, False):   # training: the kernel's gradients against autograd's of the torch path
        with monkeypatch.context() as patch:
            if not kernel:
                patch.setattr(layers, "_fused_propagate", None)
            model.zero_grad(set_to_none=True)
            with torch.enable_grad():
                (model.train()(graph, queries, **plans) * weights).sum().backward()
        gradients[kernel] = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    assert calls and gradients[True].keys() == gradients[False].keys() and len(gradients[True]) > 10
    for name, grad in gradients[True].items():
        assert torch.allclose(grad, gradients[False][name], atol=1e-4, rtol=1e-3), name
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
