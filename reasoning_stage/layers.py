"""Message-passing layers of the reasoner, laid out as message -> aggregate -> update.

Node states are batched per query: ``x`` is ``[num_nodes, B, dim]`` (B
queries answered in one pass), so gathers and reductions move whole
contiguous ``B * dim`` rows.

The hot path (see benchmarks/reason_bench.py): a message depends only on its
source and its relation, so it is computed once per distinct
(source, relation) pair -- 50-66% of the edges on the GraIL graphs -- and
then summed into each target. Two interchangeable reductions, chosen per
:class:`EdgePlan` (built once per graph):

- ``"spmm"``: one sparse ``[targets x pairs]`` CSR matrix product
  (MKL on CPU, cuSPARSE on CUDA). It never materialises the per-edge
  ``E x B x dim`` tensor and uses every core; measured 2-4x faster than the
  gather + ``segment_csr`` pair at B = 16-64 on a 2-core CPU
  (docs/BENCHMARKS.md). The default wherever torch supports it.
- ``"segment"``: gather per edge, then torch_scatter's ``segment_csr`` over
  target-sorted edges, chunked to bound memory. The portable path, and the
  reference the sparse product is tested against.

On the CPU, where the ``tofu_kernels`` package is built (``kernels/``, `make install`),
:meth:`MixtureOfMessageConv.aggregate` skips both: one C++ pass per target reads its sources' states,
multiplies them by the relation terms and sums them, with no ``[pairs x B x dim]`` tensor at all
(2.5-5x faster than gather, product and sparse sum on nell_v1 and fb237_v1), and under autograd its
backward runs the same pass over the edges sorted by source. Without the package, and on a GPU, the
reductions above run; tests hold the two equal, gradients included.
"""
from __future__ import annotations

import importlib.util
import math
import os
import warnings
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn
from torch_scatter import segment_csr

from reasoning_stage.config import MESSAGE_FUNCTIONS, RelationLinks

# Built ahead of time by `make install` (kernels/); nothing compiles on import. TOFU_FUSED_KERNEL=0 keeps
# the torch path where it is built (benchmarks time the two on the same code).
FUSED_KERNEL_SWITCH = "TOFU_FUSED_KERNEL"
try:
    from tofu_kernels import fused_propagate as _fused_propagate, relation_term_grads as _relation_term_grads
except ImportError:
    _fused_propagate = _relation_term_grads = None
if os.environ.get(FUSED_KERNEL_SWITCH) == "0":
    _fused_propagate = _relation_term_grads = None


def fused_kernel_state() -> str:
    """``"on"``, ``"off"`` (switched off by ``TOFU_FUSED_KERNEL=0``), ``"not built"``, or ``"stale"`` (a
    build of older sources, without a function this code calls: `make install` rebuilds it)."""
    if _fused_propagate is not None:
        return "on"
    if os.environ.get(FUSED_KERNEL_SWITCH) == "0":
        return "off"
    return "stale" if importlib.util.find_spec("tofu_kernels") is not None else "not built"

_CHUNK_ELEMENTS = 1 << 22  # floats of gathered messages per chunk (16 MB)


@dataclass
class EdgePlan:
    """Edges laid out for pair-shared messages and a CSR reduction into their targets.

    Attributes:
        pair_source, pair_type: ``[P]`` the distinct (source, relation) pairs.
        edge_pair: ``[E]`` pair id of each edge, edges sorted by target.
        indptr: ``[N + 1]`` CSR offsets of each target's edges in ``edge_pair``.
        reduction: ``"spmm"`` or ``"segment"`` (see the module docstring).
        matrix: for ``"spmm"``, the CSR ``[N, P]`` matrix summing pairs into targets.
        edge_source, edge_target, edge_type: ``[E]`` each edge's source, target and relation, in
            ``edge_pair``'s order (for the fused kernel, which reads the sources' states directly).
        out_indptr, out_target, out_type: the edges again, sorted by source: ``[N + 1]``
            offsets of each source's edges, then ``[E]`` targets and relations
            (for :func:`reach_step`, and the fused kernel's gradient of the states).
        type_counts: sparse ``[N, T]``: how many edges of each relation enter each node. A
            message term that depends on the relation alone (TransE's shift) sums into a node
            as ``type_counts @ term``, at node level instead of once per edge.
        num_types: ``T``, the number of edge types the plan was built for.
    """
    pair_source: torch.Tensor
    pair_type: torch.Tensor
    edge_pair: torch.Tensor
    indptr: torch.Tensor
    reduction: str = "segment"
    matrix: torch.Tensor | None = None  # CSR [N, P] of ones, for reduction "spmm"
    edge_source: torch.Tensor | None = None
    edge_target: torch.Tensor | None = None
    edge_type: torch.Tensor | None = None
    out_indptr: torch.Tensor | None = None
    out_target: torch.Tensor | None = None
    out_type: torch.Tensor | None = None
    type_counts: torch.Tensor | None = None
    num_types: int = 0

    @property
    def num_nodes(self) -> int:
        return self.indptr.numel() - 1

    def node_ranges(self, max_edges: int) -> list[tuple[int, int]]:
        """Consecutive target ranges holding at most ``max_edges`` edges each (at least one node)."""
        ranges, start, n = [], 0, self.num_nodes
        indptr = self.indptr.tolist()
        while start < n:
            stop = start + 1
            while stop < n and indptr[stop + 1] - indptr[start] <= max_edges:
                stop += 1
            ranges.append((start, stop))
            start = stop
        return ranges


REDUCTIONS = ("auto", "spmm", "segment")


def inplace_allowed() -> bool:
    """The reasoner's one in-place policy: a forward pass may overwrite its intermediate tensors, and
    take the inference-only paths built on that, exactly when autograd records nothing (under
    ``torch.no_grad()`` or ``torch.inference_mode()``); with autograd, backward needs those values."""
    return not torch.is_grad_enabled()


def default_reduction(device: torch.device) -> str:
    """``"spmm"`` where torch has a sparse CSR product for the device, else torch_scatter's ``"segment"``."""
    if device.type == "cuda" or (device.type == "cpu" and torch.backends.mkl.is_available()):
        return "spmm"
    return "segment"


def edge_plan(edge_index: torch.Tensor, edge_type: torch.Tensor, num_nodes: int, num_types: int,
              reduction: str = "auto") -> EdgePlan:
    """The :class:`EdgePlan` of a typed graph; ``reduction`` is one of :data:`REDUCTIONS`."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if reduction == "auto":
        reduction = default_reduction(edge_index.device)
    source, target = edge_index
    pairs, edge_pair = torch.unique(source * num_types + edge_type, return_inverse=True)
    order = torch.argsort(target, stable=True)
    indptr = torch.zeros(num_nodes + 1, dtype=torch.long, device=edge_index.device)
    indptr[1:] = torch.cumsum(torch.bincount(target, minlength=num_nodes), 0)
    plan = EdgePlan(pairs // num_types, pairs % num_types, edge_pair[order], indptr, reduction, num_types=num_types)
    plan.edge_source, plan.edge_target, plan.edge_type = source[order], target[order], edge_type[order]
    by_source = torch.argsort(source, stable=True)
    plan.out_indptr = torch.zeros_like(indptr)
    plan.out_indptr[1:] = torch.cumsum(torch.bincount(source, minlength=num_nodes), 0)
    plan.out_target, plan.out_type = target[by_source], edge_type[by_source]
    keys, counts = torch.unique(target * num_types + edge_type, return_counts=True)
    plan.type_counts = torch.sparse_coo_tensor(torch.stack([keys // num_types, keys % num_types]), counts.float(),
                                               (num_nodes, num_types), is_coalesced=True)
    if reduction == "spmm":
        # Repeated edges of a pair into one target stay separate entries: the product sums them.
        ones = torch.ones(plan.edge_pair.numel(), device=edge_index.device)
        # int32 indices are what MKL / cuSPARSE read: int64 ones are converted on every product.
        index_dtype = torch.int32 if plan.edge_pair.numel() < 2**31 - 1 else torch.long
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            plan.matrix = torch.sparse_csr_tensor(indptr.to(index_dtype), plan.edge_pair.to(index_dtype), ones,
                                                  size=(num_nodes, pairs.numel()), check_invariants=False)
    return plan


def propagate(plan: EdgePlan, pair_messages: torch.Tensor, boundary: torch.Tensor) -> torch.Tensor:
    """``boundary[v] + sum of the messages of v's incoming edges``."""
    if plan.reduction == "spmm" and pair_messages.dtype == torch.float32:
        if plan.edge_pair.numel() == 0:
            return boundary.clone()
        # addmm writes boundary + A @ messages in one pass; mm + add would zero-fill, copy and add.
        summed = torch.sparse.addmm(boundary.reshape(boundary.shape[0], -1), plan.matrix,
                                    pair_messages.reshape(pair_messages.shape[0], -1))
        return summed.view(boundary.shape)
    return _propagate_segments(plan, pair_messages, boundary)


def column_runs(groups: Sequence[tuple[int, int]], device: torch.device | None = None) -> torch.Tensor:
    """``[B]``: for each query column, the index of its run in ``groups`` (the column of the run's terms)."""
    return torch.repeat_interleave(torch.arange(len(groups), device=device),
                                   torch.tensor([hi - lo for lo, hi in groups], device=device))


def fused_propagate(plan: EdgePlan, x: torch.Tensor, terms: dict[str, torch.Tensor], boundary: torch.Tensor,
                    groups: Sequence[tuple[int, int]] | None = None) -> torch.Tensor | None:
    """``boundary`` plus the sum of the messages of :meth:`MixtureOfMessageConv.message` and of their
    relation-only ``shift``, in one fused CPU pass (with autograd, through :class:`_FusedAggregation`);
    ``None`` where it does not apply (no ``tofu_kernels``, not float32 CPU tensors): the caller then
    takes the torch path.
    ``terms`` as :meth:`MixtureOfMessageConv.relation_terms` gives them. The shift is summed per node
    and query run (``[V, G, dim]``, :func:`shift_sums`) and added per column inside the pass."""
    scale = terms["scale"]
    if (_fused_propagate is None or plan.edge_source is None or plan.out_indptr is None
            or any(t.device.type != "cpu" or t.dtype != torch.float32 for t in (x, boundary, scale))):
        return None
    if groups is not None:
        column_group = column_runs(groups)
    elif scale.shape[1] == 1:   # one column of terms for every query
        column_group = torch.zeros(x.shape[1], dtype=torch.long)
    else:
        column_group = torch.arange(x.shape[1])
    node_shift = shift_sums(plan, terms["shift"]) if "shift" in terms else None
    if inplace_allowed():
        return _fused_propagate(x.contiguous(), boundary.expand_as(x), plan.indptr, plan.edge_source,
                                plan.edge_type, column_group, scale, terms.get("swap_scale"), node_shift)
    return _FusedAggregation.apply(x, boundary.expand_as(x), scale, terms.get("swap_scale"), node_shift, plan,
                                   column_group)


class _FusedAggregation(torch.autograd.Function):
    """:func:`fused_propagate` under autograd. For an edge ``(u, t) -> v`` and column ``c`` the forward adds
    ``x[u, c] * s + swap(x[u, c]) * w`` to ``out[v, c]`` (``s, w``: the relation's terms for the column's
    run), so ``d x[u, c]`` sums ``d out[v, c] * s + swap(d out[v, c]) * swap(w)`` over ``u``'s out-edges:
    the same kernel over the edges sorted by source; the terms' gradients are edge sums
    (``relation_term_grads``)."""

    @staticmethod
    def forward(ctx, x, boundary, scale, swap_scale, node_shift, plan, column_group):
        x = x.contiguous()
        ctx.save_for_backward(x, scale, swap_scale, column_group)
        ctx.plan = plan
        return _fused_propagate(x, boundary, plan.indptr, plan.edge_source, plan.edge_type, column_group, scale,
                                swap_scale, node_shift)

    @staticmethod
    @torch.autograd.function.once_differentiable   # no second derivatives: training never asks for them
    def backward(ctx, d_out):
        x, scale, swap_scale, column_group = ctx.saved_tensors
        plan = ctx.plan
        d_out = d_out.contiguous()
        d_x = d_scale = d_swap = d_shift = None
        if ctx.needs_input_grad[0]:
            half = scale.shape[-1] // 2
            swapped = None if swap_scale is None else torch.cat([swap_scale[..., half:], swap_scale[..., :half]], -1)
            d_x = _fused_propagate(d_out, d_out.new_zeros(()).expand_as(d_out), plan.out_indptr, plan.out_target,
                                   plan.out_type, column_group, scale, swapped)
        if ctx.needs_input_grad[2] or (swap_scale is not None and ctx.needs_input_grad[3]):
            grads = _relation_term_grads(x, d_out, plan.edge_source, plan.edge_target, plan.edge_type, column_group,
                                         scale.shape[0], scale.shape[1], swap_scale is not None)
            d_scale = grads[0]
            d_swap = grads[1] if swap_scale is not None else None
        if ctx.needs_input_grad[4]:
            d_shift = d_out.new_zeros(d_out.shape[0], scale.shape[1], d_out.shape[2]).index_add_(1, column_group, d_out)
        return d_x, d_out if ctx.needs_input_grad[1] else None, d_scale, d_swap, d_shift, None, None


def _propagate_segments(plan: EdgePlan, pair_messages: torch.Tensor, boundary: torch.Tensor) -> torch.Tensor:
    """The torch_scatter path: gather per edge, ``segment_csr`` per target, chunked by target ranges."""
    row = pair_messages[0].numel() if len(pair_messages) else 1
    out = boundary.clone()
    for start, stop in plan.node_ranges(max(1, _CHUNK_ELEMENTS // max(row, 1))):
        lo, hi = int(plan.indptr[start]), int(plan.indptr[stop])
        if hi == lo:
            continue
        gathered = pair_messages.index_select(0, plan.edge_pair[lo:hi])
        out[start:stop] += segment_csr(gathered, plan.indptr[start:stop + 1] - lo, reduce="sum")
    return out


def shift_sums(plan: EdgePlan, shift: torch.Tensor, groups: Sequence[tuple[int, int]] | None = None) -> torch.Tensor:
    """``[V, B, dim]``: each node's sum of the ``shift`` ``[T, C, dim]`` of its incoming edges' relations
    (C = B columns, or one per run of ``groups``), one sparse product over ``plan.type_counts``."""
    types, columns, dim = shift.shape
    summed = torch.sparse.mm(plan.type_counts, shift.reshape(types, columns * dim)).view(-1, columns, dim)
    if groups is None:
        return summed
    return summed.index_select(1, column_runs(groups, shift.device))


@dataclass
class ReachStep:
    """One layer's growth of a sparse set of (node, query column) rows along out-edges.

    Attributes:
        edge_row, edge_type: ``[m]`` for each edge leaving a row of the old set: that row and
            the edge's relation.
        node, column: ``[n']`` the new set (old rows plus the edges' targets), sorted by
            ``node * B + column``.
        old_position: ``[n]`` where each old row sits in the new set.
        message_position: ``[m]`` the new-set row each edge's target is.
    """
    edge_row: torch.Tensor
    edge_type: torch.Tensor
    node: torch.Tensor
    column: torch.Tensor
    old_position: torch.Tensor
    message_position: torch.Tensor


# Rows (nodes x query columns) up to which :func:`reach_step` marks its union in a bool vector
# instead of sorting it: 16 MB of marks at most.
MARKED_ROWS_LIMIT = 1 << 24


def reach_step(plan: EdgePlan, node: torch.Tensor, column: torch.Tensor, num_columns: int,
               max_rows: int | None = None) -> ReachStep | None:
    """Rows ``(node[i], column[i])`` and every row one edge of ``plan`` away from them, per column;
    ``None`` when the new set would hold more than ``max_rows`` rows (the caller goes dense)."""
    counts = plan.out_indptr[node + 1] - plan.out_indptr[node]
    edge_row = torch.repeat_interleave(torch.arange(node.numel(), device=node.device), counts)
    # Edge ids: each row's first out-edge plus the message's offset inside the row's run.
    first = plan.out_indptr[node] - (torch.cumsum(counts, 0) - counts)
    edge = first.index_select(0, edge_row) + torch.arange(edge_row.numel(), device=node.device)
    keys = torch.cat([node * num_columns + column,
                      plan.out_target.index_select(0, edge) * num_columns + column.index_select(0, edge_row)])
    if plan.num_nodes * num_columns <= MARKED_ROWS_LIMIT:
        # The union as marks over all rows: it is counted before any sort, and when it is too large
        # (the step that hands over to the dense layers) nothing more is spent on it.
        marked = torch.zeros(plan.num_nodes * num_columns, dtype=torch.bool, device=node.device)
        marked[keys] = True
        if max_rows is not None and int(marked.sum()) > max_rows:
            return None
        unique = marked.nonzero().squeeze(1)
        position = torch.searchsorted(unique, keys)
    else:
        unique, position = torch.unique(keys, return_inverse=True)
        if max_rows is not None and unique.numel() > max_rows:
            return None
    return ReachStep(edge_row, plan.out_type.index_select(0, edge), unique // num_columns, unique % num_columns,
                     position[:node.numel()], position[node.numel():])


class MixtureOfMessageConv(nn.Module):
    r"""Conditional entity layer mixing several relational message functions.

    .. math::
        m_{u \to v} = \sum_k g_k(q, \tau)\, \phi_k(x_u, w_r), \qquad
        a_v = b_v + \sum_{(u, r, v)} m_{u \to v}, \qquad
        x_v' = x_v + \mathrm{ReLU}(\mathrm{LN}(W [x_v \,\|\, a_v]))

    with :math:`\phi_{distmult} = x \odot w`, :math:`\phi_{transe} = x + w`,
    :math:`\phi_{rotate}` = rotation of :math:`x` (as complex pairs) by
    phases from :math:`w`; :math:`w_r` are this layer's projections of the
    query-conditioned relation vectors, :math:`g` the gates computed by the
    model from the query (and task), :math:`b` the boundary condition.

    Args:
        dim: state size.
        messages: names from :data:`MESSAGE_FUNCTIONS` (one or more).

    Shapes:
        x, boundary ``[V, B, dim]``; relations ``[2R, B, dim]``; gates ``[B, len(messages)]``
        (or ``[2R, G, dim]`` and ``[G, len(messages)]`` with G query groups);
        plan: the graph's :class:`EdgePlan` -> ``[V, B, dim]``.
    """

    def __init__(self, dim: int, messages: Sequence[str] = ("distmult",)):
        super().__init__()
        unknown = set(messages) - set(MESSAGE_FUNCTIONS)
        if unknown or not messages:
            raise ValueError(f"message functions must be a non-empty subset of {MESSAGE_FUNCTIONS}, got {messages}")
        if "rotate" in messages and dim % 2:
            raise ValueError("rotate messages need an even dim")
        self.dim = dim
        self.messages = tuple(messages)
        self.relation_projection = nn.Linear(dim, dim)
        self.combine = nn.Linear(2 * dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.relation_projection.reset_parameters()
        self.combine.reset_parameters()
        self.norm.reset_parameters()

    def relation_terms(self, relations: torch.Tensor, gates: torch.Tensor) -> dict[str, torch.Tensor]:
        """The gated mixture folded into per-relation coefficients ``[2R, B, dim]``.

        Every message function is affine in the source state, so the mixture is
        ``m = x * scale_r + swap(x) * swap_scale_r + shift_r`` with
        ``swap(x) = [x_im ; x_re]``. Folding the gates into these small
        per-relation tables leaves one or two passes over the large
        ``[pairs, B, dim]`` tensors instead of several per function (the
        training step on fb237_v4 is memory-bound on those passes); the shift
        depends on the relation alone and is summed per node (:func:`shift_sums`).
        """
        w = self.relation_projection(relations)
        terms: dict[str, torch.Tensor] = {}
        for k, name in enumerate(self.messages):
            gate = gates[:, k].view(1, -1, 1) if len(self.messages) > 1 else None
            if name == "distmult":
                scale, shift, swap_scale = w, None, None
            elif name == "transe":
                scale, shift, swap_scale = torch.ones_like(w), w, None
            else:
                phase = math.pi * torch.tanh(w[..., : self.dim // 2])
                cos, sin = torch.cos(phase), torch.sin(phase)
                scale, shift, swap_scale = torch.cat([cos, cos], -1), None, torch.cat([-sin, sin], -1)
            for key, value in (("scale", scale), ("shift", shift), ("swap_scale", swap_scale)):
                if value is None:
                    continue
                value = value if gate is None else value * gate
                terms[key] = value if key not in terms else terms[key] + value
        return terms

    def message(self, x: torch.Tensor, source: torch.Tensor, edge_type: torch.Tensor,
                terms: dict[str, torch.Tensor], groups: Sequence[tuple[int, int]] | None = None) -> torch.Tensor:
        """Mixed messages ``[p, B, dim]`` of nodes ``source`` of ``x`` along relations ``edge_type``, less
        the terms that depend on the relation alone (``shift``: :meth:`aggregate` adds their sums).

        With ``groups``, the terms are ``[2R, G, dim]``, one column per group of queries
        ``x[:, lo:hi]`` that share them (queries of one relation): the per-pair gather of
        the terms is G wide instead of B, and each group's product broadcasts its column.
        """
        x_src = x.index_select(0, source)
        gathered = {key: value.index_select(0, edge_type) for key, value in terms.items() if key != "shift"}
        half = self.dim // 2
        swapped = None
        if "swap_scale" in terms:
            # Swap the halves on the small [V, B, dim] state before the gather, not after it.
            swapped = torch.cat([x[..., half:], x[..., :half]], dim=-1).index_select(0, source)
        if groups is None:
            # Terms ``[p, 1, dim]`` (one run of queries) broadcast over the run's columns.
            out = x_src * gathered["scale"]
            return out if swapped is None else out.addcmul_(swapped, gathered["swap_scale"])
        # The gathered states are overwritten in place: no second [p, B, dim] tensor is allocated and filled.
        if not inplace_allowed():
            raise ValueError("grouped messages overwrite their input: with autograd, use aggregate(), "
                             "which computes each run apart")
        for column, (lo, hi) in enumerate(groups):
            part = x_src[:, lo:hi].mul_(gathered["scale"][:, column:column + 1])
            if swapped is not None:
                part.addcmul_(swapped[:, lo:hi], gathered["swap_scale"][:, column:column + 1])
        return x_src

    def message_deltas(self, delta: torch.Tensor, edge_type: torch.Tensor, group: torch.Tensor,
                       terms: dict[str, torch.Tensor]) -> torch.Tensor:
        """How the messages ``[m, dim]`` along ``edge_type`` change when their sources' states change
        by ``delta`` ``[m, dim]``; ``terms`` are ``[2R, G, dim]`` and ``group`` picks each message's column.

        Every message function is affine in the source state, so the shift cancels.
        """
        index = edge_type * terms["scale"].shape[1] + group
        out = delta * terms["scale"].reshape(-1, self.dim).index_select(0, index)
        if "swap_scale" in terms:
            half = self.dim // 2
            swapped = torch.cat([delta[:, half:], delta[:, :half]], dim=-1)
            out.addcmul_(swapped, terms["swap_scale"].reshape(-1, self.dim).index_select(0, index))
        return out

    def aggregate(self, x: torch.Tensor, plan: EdgePlan, terms: dict[str, torch.Tensor],
                  boundary: torch.Tensor, groups: Sequence[tuple[int, int]] | None = None) -> torch.Tensor:
        """Boundary plus the sum of incoming messages (one message per (source, relation) pair).

        With ``groups`` and autograd (training), each run of queries is propagated apart with its
        own column of terms: the terms are gathered ``[p, 1, dim]`` per run, not ``[p, B, dim]``, and
        their gradients are sums over the run's columns rather than scatters of ``[p, B, dim]``."""
        fused = fused_propagate(plan, x, terms, boundary, groups)
        if fused is not None:
            return fused
        if "shift" in terms:
            boundary = boundary + shift_sums(plan, terms["shift"], groups)
        if groups is not None and not inplace_allowed():
            return torch.cat([propagate(plan, self.message(x[:, lo:hi], plan.pair_source, plan.pair_type,
                                                           {key: value[:, run:run + 1] for key, value in terms.items()}),
                                        boundary[:, lo:hi])
                              for run, (lo, hi) in enumerate(groups)], dim=1)
        return propagate(plan, self.message(x, plan.pair_source, plan.pair_type, terms, groups), boundary)

    def update(self, x: torch.Tensor, aggregated: torch.Tensor, skip_zero_rows: bool = False) -> torch.Tensor:
        """``x + ReLU(LN(W [x ; a]))``. With ``skip_zero_rows`` (inference only), rows whose ``x``
        and ``a`` are both zero -- most rows of a first layer started from one-hot boundaries --
        get the shared value ``ReLU(LN(bias))`` without the GEMM."""
        if skip_zero_rows and inplace_allowed():
            d = x.shape[-1]
            flat_x, flat_a = x.reshape(-1, d), aggregated.reshape(-1, d)
            # abs().amax() is the fast row reduction here: any(-1) over 64 floats takes 9x as long.
            rows = (flat_x.abs().amax(-1).ne(0) | flat_a.abs().amax(-1).ne(0)).nonzero().squeeze(1)
            if rows.numel() <= flat_x.shape[0] // 2:
                out = torch.relu(self.norm(self.combine.bias)).expand_as(flat_x).clone()
                if rows.numel():  # none at all in the reach path's generic columns
                    x_rows = flat_x.index_select(0, rows)
                    changed = torch.relu(self.norm(_linear_of_concat(self.combine, x_rows,
                                                                     flat_a.index_select(0, rows))))
                    out.index_copy_(0, rows, x_rows + changed)
                return out.view(x.shape)
        return _add_relu(x, self.norm(_linear_of_concat(self.combine, x, aggregated)))

    def forward(self, x: torch.Tensor, plan: EdgePlan, relations: torch.Tensor, gates: torch.Tensor,
                boundary: torch.Tensor, groups: Sequence[tuple[int, int]] | None = None,
                skip_zero_rows: bool = False) -> torch.Tensor:
        """``groups``: see :meth:`message`; ``relations`` ``[2R, G, dim]`` and ``gates`` ``[G, M]`` then.
        ``skip_zero_rows``: see :meth:`update`."""
        terms = self.relation_terms(relations, gates)
        return self.update(x, self.aggregate(x, plan, terms, boundary, groups), skip_zero_rows)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim}, messages={self.messages})"


class RelationGraphConv(nn.Module):
    r"""A layer over the relation graph (ULTRA): relations linked by shared entities.

    .. math::
        x_r' = x_r + \mathrm{ReLU}(\mathrm{LN}(W [x_r \,\|\, b_r + \sum_{(s, k, r)} x_s \odot e_k]))

    where :math:`k` is the link's type (head-head, head-tail, tail-head, tail-tail; each split
    by strength when the relation graph is built with ``link_strengths``) and :math:`e_k` a
    learned vector per type.

    Shapes:
        x, boundary ``[2R, B, dim]``; plan: the relation graph's :class:`EdgePlan` (types
        ``0..num_link_types - 1``).
    """

    def __init__(self, dim: int, num_link_types: int = 4):
        super().__init__()
        self.dim = dim
        self.num_link_types = num_link_types
        self.link_embedding = nn.Embedding(num_link_types, dim)
        self.combine = nn.Linear(2 * dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.link_embedding.weight, mean=1.0, std=0.1)
        self.combine.reset_parameters()
        self.norm.reset_parameters()

    def message(self, x_src: torch.Tensor, link_type: torch.Tensor) -> torch.Tensor:
        return x_src * self.link_embedding(link_type).unsqueeze(1)

    def aggregate(self, x: torch.Tensor, plan: EdgePlan, boundary: torch.Tensor) -> torch.Tensor:
        messages = self.message(x.index_select(0, plan.pair_source), plan.pair_type)
        return propagate(plan, messages, boundary)

    def update(self, x: torch.Tensor, aggregated: torch.Tensor) -> torch.Tensor:
        return _add_relu(x, self.norm(_linear_of_concat(self.combine, x, aggregated)))

    def forward(self, x: torch.Tensor, plan: EdgePlan, boundary: torch.Tensor) -> torch.Tensor:
        return self.update(x, self.aggregate(x, plan, boundary))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim}, num_link_types={self.num_link_types})"


class RelationEncoder(nn.ModuleList):
    """The relation model (ULTRA keeps one apart from the entity model): :class:`RelationGraphConv`
    layers over the relation graph, each fed the same boundary ``asked + text``.

    ``asked`` ``[2R, B, dim]`` says which relations each column asks about (one-hot at a query's
    relation; all ones when every relation is asked at once); ``text`` ``[2R, dim]`` holds the
    relations' own text features, or is ``None``. The encoder is the list of its layers, so its
    weights keep the keys of a plain list of layers (``relation_layers.<i>.*`` in the model).

    ``links`` are the link types of the relation graph it reads (:class:`RelationLinks`); a relation
    graph built with other link types is refused.

    Shapes: asked ``[2R, B, dim]``; rel_graph: the relation graph's :class:`EdgePlan` -> ``[2R, B, dim]``.
    """

    def __init__(self, dim: int, num_layers: int, links: RelationLinks = RelationLinks()):
        super().__init__(RelationGraphConv(dim, links.num_types) for _ in range(num_layers))
        self.links = links

    def forward(self, asked: torch.Tensor, rel_graph: EdgePlan, text: torch.Tensor | None = None) -> torch.Tensor:
        if len(self) and rel_graph.num_types != self[0].num_link_types:
            raise ValueError(f"the relation graph has {rel_graph.num_types} link types, these layers read "
                             f"{self[0].num_link_types}: build it with link_strengths={list(self.links.strengths)}"
                             f" and pair_links={self.links.pairs}")
        boundary = asked if text is None else asked + text.unsqueeze(1)
        x = boundary
        for layer in self:
            x = layer(x, rel_graph, boundary)
        return x


def _add_relu(x: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
    """``x + ReLU(hidden)``, into ``hidden`` where :func:`inplace_allowed` (ReLU's backward needs its output)."""
    return hidden.relu_().add_(x) if inplace_allowed() else x + torch.relu(hidden)


def _linear_of_concat(linear: nn.Linear, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``linear(cat([a, b], -1))`` without materialising the concatenation."""
    d = a.shape[-1]
    # The second product accumulates into the first inside the GEMM (beta = 1): no extra pass.
    out = torch.addmm(linear.bias, a.reshape(-1, d), linear.weight[:, :d].T)
    # In place: an out-of-place addmm would first copy ``out`` into a new tensor (addmm's
    # backward does not need its output, so autograd allows this).
    return out.addmm_(b.reshape(-1, d), linear.weight[:, d:].T).view(*a.shape[:-1], -1)


def relation_graph(edge_index: torch.Tensor, edge_type: torch.Tensor, num_relation_ids: int,
                   num_entities: int, reduction: str = "auto", link_strengths: Sequence[float] = (),
                   pair_links: bool = False) -> EdgePlan:
    """Edges between relation ids that share an entity, typed hh / ht / th / tt (and pp).

    ``hh = H^T H`` links two relations that share a head entity, and so on, with ``H`` and ``T``
    the binary sparse ``[entities x relation ids]`` incidence of heads and tails: memory follows the
    edges and the relation graph's links, never ``entities x relation ids``. With ``pair_links`` a
    fifth kind, ``pp = P^T P`` with ``P`` the incidence of ordered (head, tail) pairs, links two
    relations that hold on a same pair; with both directions of each relation in ``edge_index``, a
    relation linked so to its own inverse id is symmetric somewhere. Self-links are kept (as in
    ULTRA). With ``link_strengths`` (ascending cosine thresholds), each kind of link is split further
    by its strength, the cosine of the two relations' entity (or pair) sets in those roles (shared
    over the geometric mean of both counts): type ``kind * (S + 1) + bin`` with ``S`` thresholds. The
    cosine is id-free and does not grow with the graph, so a strength means the same in every graph.
    Links are ordered by type, then source, then target. Returns the relation graph's
    :class:`EdgePlan` with ``RelationLinks(link_strengths, pair_links).num_types`` types.
    """
    heads, tails = edge_index[0], edge_index[1]
    thresholds = torch.tensor(sorted(link_strengths), dtype=torch.float, device=edge_index.device)
    bins = thresholds.numel() + 1
    # Each kind: the owners the two relations share, read from each side, and how many owners there are.
    kinds = [(heads, heads, num_entities), (heads, tails, num_entities), (tails, heads, num_entities),
             (tails, tails, num_entities)]
    if pair_links:
        pairs = torch.unique(heads * num_entities + tails, return_inverse=True)[1]
        kinds.append((pairs, pairs, int(pairs.max()) + 1 if pairs.numel() else 0))
    index, types = [], []
    for kind, (a, b, num_owners) in enumerate(kinds):
        first = _incidence(edge_type, a, num_relation_ids, num_owners)
        second = _incidence(b, edge_type, num_owners, num_relation_ids)
        # Coalesced: each linked pair once, in row-major order (its value counts the shared owners).
        shared = torch.sparse.mm(first, second).coalesce()
        linked = shared.indices()
        link = torch.full_like(linked[0], kind * bins)
        if bins > 1:
            rows = torch.bincount(first.indices()[0], minlength=num_relation_ids).float()
            columns = torch.bincount(second.indices()[1], minlength=num_relation_ids).float()
            strength = shared.values() / torch.sqrt(rows[linked[0]] * columns[linked[1]])
            link += torch.bucketize(strength, thresholds, right=True)
        index.append(linked)
        types.append(link)
    index, types = torch.cat(index, dim=1), torch.cat(types)
    if bins > 1:
        order = torch.argsort((types * num_relation_ids + index[0]) * num_relation_ids + index[1])
        index, types = index[:, order], types[order]
    return edge_plan(index, types, num_relation_ids, len(kinds) * bins, reduction)


def _incidence(rows: torch.Tensor, columns: torch.Tensor, num_rows: int, num_columns: int) -> torch.Tensor:
    """Sparse COO ``[num_rows x num_columns]`` with a one wherever ``(rows[i], columns[i])`` occurs."""
    keys = torch.unique(rows * num_columns + columns)   # sorted: the coalesced order
    return torch.sparse_coo_tensor(torch.stack([keys // num_columns, keys % num_columns]),
                                   torch.ones(keys.numel(), device=keys.device), (num_rows, num_columns),
                                   is_coalesced=True, check_invariants=True)
