"""Message-passing layers of the reasoner, laid out as message -> aggregate -> update.

Node states are batched per query: ``x`` is ``[num_nodes, B, dim]`` (B
queries answered in one pass), so gathers and scatters move whole
contiguous ``B * dim`` rows. Edges are processed in chunks to bound the
per-edge message tensor's memory.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
from torch_scatter import scatter

MESSAGE_FUNCTIONS = ("distmult", "transe", "rotate")
_CHUNK_ELEMENTS = 1 << 22  # floats per message chunk (16 MB)


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
        x, boundary ``[V, B, dim]``; relations ``[2R, B, dim]``; gates ``[B, len(messages)]``;
        edge_index ``[2, E]``; edge_type ``[E]`` -> ``[V, B, dim]``.
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

    def relation_terms(self, relations: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-relation quantities every edge of that relation reuses: ``[2R, B, *]``."""
        w = self.relation_projection(relations)
        terms = {"w": w}
        if "rotate" in self.messages:
            phase = math.pi * torch.tanh(w[..., : self.dim // 2])
            terms["cos"], terms["sin"] = torch.cos(phase), torch.sin(phase)
        return terms

    def message(self, x_src: torch.Tensor, edge_type: torch.Tensor, terms: dict[str, torch.Tensor],
                gates: torch.Tensor) -> torch.Tensor:
        """Mixed messages of one edge chunk: ``[e, B, dim]``."""
        w = terms["w"][edge_type]
        out = None
        for k, name in enumerate(self.messages):
            if name == "distmult":
                m = x_src * w
            elif name == "transe":
                m = x_src + w
            else:
                half = self.dim // 2
                cos, sin = terms["cos"][edge_type], terms["sin"][edge_type]
                re, im = x_src[..., :half], x_src[..., half:]
                m = torch.cat([re * cos - im * sin, re * sin + im * cos], dim=-1)
            if len(self.messages) > 1:
                m = m * gates[:, k].view(1, -1, 1)
            out = m if out is None else out + m
        return out

    def aggregate(self, x: torch.Tensor, edge_index: torch.Tensor, edge_type: torch.Tensor,
                  terms: dict[str, torch.Tensor], gates: torch.Tensor, boundary: torch.Tensor) -> torch.Tensor:
        """Boundary plus the sum of incoming messages, built chunk by chunk."""
        out = boundary.clone()
        batch = x.shape[1]
        chunk = max(1, _CHUNK_ELEMENTS // max(1, batch * self.dim))
        source, target = edge_index
        for start in range(0, edge_type.numel(), chunk):
            stop = start + chunk
            messages = self.message(x[source[start:stop]], edge_type[start:stop], terms, gates)
            scatter(messages, target[start:stop], dim=0, out=out, dim_size=x.shape[0], reduce="sum")
        return out

    def update(self, x: torch.Tensor, aggregated: torch.Tensor) -> torch.Tensor:
        return x + torch.relu(self.norm(self.combine(torch.cat([x, aggregated], dim=-1))))

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, edge_type: torch.Tensor,
                relations: torch.Tensor, gates: torch.Tensor, boundary: torch.Tensor) -> torch.Tensor:
        terms = self.relation_terms(relations)
        return self.update(x, self.aggregate(x, edge_index, edge_type, terms, gates, boundary))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim}, messages={self.messages})"


class RelationGraphConv(nn.Module):
    r"""A layer over the relation graph (ULTRA): relations linked by shared entities.

    .. math::
        x_r' = x_r + \mathrm{ReLU}(\mathrm{LN}(W [x_r \,\|\, b_r + \sum_{(s, k, r)} x_s \odot e_k]))

    where :math:`k` is one of the four link types (head-head, head-tail,
    tail-head, tail-tail) and :math:`e_k` a learned vector per type.

    Shapes:
        x, boundary ``[2R, B, dim]``; edge_index ``[2, E_rel]``; edge_type ``[E_rel]`` in 0..3.
    """

    NUM_LINK_TYPES = 4

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.link_embedding = nn.Embedding(self.NUM_LINK_TYPES, dim)
        self.combine = nn.Linear(2 * dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.link_embedding.weight, mean=1.0, std=0.1)
        self.combine.reset_parameters()
        self.norm.reset_parameters()

    def message(self, x_src: torch.Tensor, link_type: torch.Tensor) -> torch.Tensor:
        return x_src * self.link_embedding(link_type).unsqueeze(1)

    def aggregate(self, messages: torch.Tensor, target: torch.Tensor, boundary: torch.Tensor) -> torch.Tensor:
        return boundary + scatter(messages, target, dim=0, dim_size=boundary.shape[0], reduce="sum")

    def update(self, x: torch.Tensor, aggregated: torch.Tensor) -> torch.Tensor:
        return x + torch.relu(self.norm(self.combine(torch.cat([x, aggregated], dim=-1))))

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, link_type: torch.Tensor,
                boundary: torch.Tensor) -> torch.Tensor:
        messages = self.message(x[edge_index[0]], link_type)
        return self.update(x, self.aggregate(messages, edge_index[1], boundary))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim})"


def relation_graph(edge_index: torch.Tensor, edge_type: torch.Tensor, num_relation_ids: int,
                   num_entities: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Edges between relation ids that share an entity, typed hh / ht / th / tt.

    Built from entity-relation incidence matrices: ``hh = H^T H`` links two
    relations that share a head entity, and so on. Self-links are kept (as in
    ULTRA). Returns ``(edge_index [2, E_rel], link_type [E_rel])``.
    """
    device = edge_index.device
    heads = torch.zeros(num_entities, num_relation_ids, dtype=torch.float32, device=device)
    tails = torch.zeros_like(heads)
    heads[edge_index[0], edge_type] = 1.0
    tails[edge_index[1], edge_type] = 1.0
    index, types = [], []
    for link, (a, b) in enumerate(((heads, heads), (heads, tails), (tails, heads), (tails, tails))):
        linked = (a.T @ b) > 0
        src, dst = linked.nonzero(as_tuple=True)
        index.append(torch.stack([src, dst]))
        types.append(torch.full_like(src, link))
    return torch.cat(index, dim=1), torch.cat(types)
