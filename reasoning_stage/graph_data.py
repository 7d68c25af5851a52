"""Token tables -> tensors for the reasoner.

Id convention (documented in docs/ARCHITECTURE.md): a graph with ``R``
relations has ``2R`` relation ids; ``r`` is the forward relation and
``r + R`` its inverse. Every inference-graph triple ``(h, r, t)`` becomes two
edges, ``h -r-> t`` and ``t -(r+R)-> h``. A head query ``(?, r, t)`` is asked
as the tail query ``(t, r+R, ?)``, so the model only ever answers
``(head, relation, ?)``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterable, Sequence

import numpy as np
import torch

from artifacts.token_tables import MODALITIES, TokenTables


@dataclass
class TokenTensor:
    """Padded tokens of one modality: ``codes`` [n, k] (-1 = none) and ``weights`` [n, k] (counts)."""
    codes: torch.Tensor
    weights: torch.Tensor

    def to(self, device) -> "TokenTensor":
        return TokenTensor(self.codes.to(device), self.weights.to(device))


def pad_tokens(num_owners: int, owners: np.ndarray, codes: np.ndarray, counts: np.ndarray) -> TokenTensor:
    """Long-format token rows -> padded per-owner tensors (rows keep their rank order)."""
    width = int(np.bincount(owners, minlength=num_owners).max()) if len(owners) else 1
    out_codes = np.full((num_owners, max(width, 1)), -1, dtype=np.int64)
    out_weights = np.zeros((num_owners, max(width, 1)), dtype=np.float32)
    slot = np.zeros(num_owners, dtype=np.int64)
    for owner, code, count in zip(owners.tolist(), codes.tolist(), counts.tolist()):
        out_codes[owner, slot[owner]] = code
        out_weights[owner, slot[owner]] = count
        slot[owner] += 1
    return TokenTensor(torch.from_numpy(out_codes), torch.from_numpy(out_weights))


@dataclass
class GraphTensors:
    """One inference graph with its tokens, ready for message passing."""
    name: str
    num_entities: int
    num_relations: int                      # forward relations R (2R ids with inverses)
    edge_index: torch.Tensor                # [2, 2E] (source, target)
    edge_type: torch.Tensor                 # [2E] in 0..2R-1
    entity_tokens: dict[str, TokenTensor] = field(default_factory=dict)
    relation_tokens: dict[str, TokenTensor] = field(default_factory=dict)
    codebook_id: str | None = None
    entity_ids: torch.Tensor | None = None  # [num_entities] artifact id of each local node (None: identity)

    def artifact_ids(self) -> torch.Tensor:
        """``[num_entities]``: the artifact id of each node, on the graph's device."""
        if self.entity_ids is None:
            return torch.arange(self.num_entities, device=self.edge_index.device)
        return self.entity_ids

    def to_local(self, triples: torch.Tensor) -> torch.Tensor:
        """Artifact entity ids of ``[n, 3]`` triples -> this graph's node ids (relations unchanged)."""
        if self.entity_ids is None:
            return triples
        lookup = torch.full((int(self.entity_ids.max()) + 1 if len(self.entity_ids) else 1,), -1, dtype=torch.long)
        lookup[self.entity_ids.cpu()] = torch.arange(len(self.entity_ids))
        out = triples.clone()
        for column in (0, 2):
            ids = triples[:, column].cpu()
            inside = ids < len(lookup)
            mapped = torch.full_like(ids, -1)
            mapped[inside] = lookup[ids[inside]]
            if (mapped < 0).any():
                raise ValueError(f"{self.name}: entity id {int(ids[mapped < 0][0])} is not in this split's graph")
            out[:, column] = mapped.to(triples.device)
        return out

    @property
    def num_edges(self) -> int:
        return int(self.edge_type.numel())

    def to(self, device) -> "GraphTensors":
        return replace(self, edge_index=self.edge_index.to(device), edge_type=self.edge_type.to(device),
                       entity_tokens={m: t.to(device) for m, t in self.entity_tokens.items()},
                       relation_tokens={m: t.to(device) for m, t in self.relation_tokens.items()},
                       entity_ids=None if self.entity_ids is None else self.entity_ids.to(device))

    def without_edges(self, triples: torch.Tensor) -> "GraphTensors":
        """The graph minus ``triples`` [n, 3] and their inverses (the query edges while training)."""
        if len(triples) == 0:
            return self
        n, r2 = self.num_entities, 2 * self.num_relations
        keys = (self.edge_index[0] * r2 + self.edge_type) * n + self.edge_index[1]
        h, r, t = triples[:, 0], triples[:, 1], triples[:, 2]
        drop = torch.cat([(h * r2 + r) * n + t, (t * r2 + r + self.num_relations) * n + h])
        keep = ~torch.isin(keys, drop)
        return replace(self, edge_index=self.edge_index[:, keep], edge_type=self.edge_type[keep])


def with_inverses(triples: np.ndarray, num_relations: int) -> tuple[torch.Tensor, torch.Tensor]:
    triples = torch.as_tensor(triples, dtype=torch.long).reshape(-1, 3)
    h, r, t = triples[:, 0], triples[:, 1], triples[:, 2]
    edge_index = torch.stack([torch.cat([h, t]), torch.cat([t, h])])
    edge_type = torch.cat([r, r + num_relations])
    return edge_index, edge_type


def candidate_entities(tables: TokenTables, split: str) -> np.ndarray:
    """Artifact ids of the entities that belong to ``split``'s inference graph.

    An artifact can hold several graphs (GraIL: ``X`` and ``X_ind``, whose
    entities are disjoint but for a few shared labels). A split's candidates are the entities of its inference
    graph and of the queries of every split over that graph, plus entities
    declared but in no triple; entities seen only with another inference
    graph are not candidates (ULTRA ranks over the ``_ind`` graph alone).
    """
    graph_set = tables.splits[split]["graph"]
    mine = {graph_set} | {s["queries"] for s in tables.splits.values() if s["graph"] == graph_set}
    inside = np.zeros(tables.num_entities, dtype=bool)
    anywhere = np.zeros(tables.num_entities, dtype=bool)
    for name in tables.manifest["counts"]["triple_sets"]:
        triples = tables.triple_set(name)
        anywhere[triples[:, 0]] = anywhere[triples[:, 2]] = True
        if name in mine:
            inside[triples[:, 0]] = inside[triples[:, 2]] = True
    return np.flatnonzero(inside | ~anywhere)


def graph_tensors(tables: TokenTables, split: str) -> GraphTensors:
    """The inference graph of ``split`` over its candidate entities, with their token tensors.

    Nodes are numbered ``0..n-1`` in artifact-id order; ``entity_ids`` maps
    them back (see :meth:`GraphTensors.to_local`).
    """
    candidates = candidate_entities(tables, split)
    local = np.full(tables.num_entities, -1, dtype=np.int64)
    local[candidates] = np.arange(len(candidates))
    n, r = len(candidates), tables.num_relations
    triples = tables.inference_graph(split).copy()
    triples[:, 0], triples[:, 2] = local[triples[:, 0]], local[triples[:, 2]]
    edge_index, edge_type = with_inverses(triples, r)
    entity_tokens = {}
    for modality in MODALITIES:
        owners, codes, counts = tables.tokens("entity", modality)
        keep = local[owners] >= 0 if len(owners) else np.zeros(0, bool)
        if keep.any():
            entity_tokens[modality] = pad_tokens(n, local[owners[keep]], codes[keep], counts[keep])
    relation_tokens = {}
    owners, codes, counts = tables.tokens("relation", "text")
    if len(owners):
        relation_tokens["text"] = pad_tokens(r, owners, codes, counts)
    identity = len(candidates) == tables.num_entities
    return GraphTensors(tables.name, n, r, edge_index, edge_type, entity_tokens, relation_tokens,
                        tables.codebook_id, None if identity else torch.as_tensor(candidates))


def split_queries(tables: TokenTables, splits: Iterable[str]) -> np.ndarray:
    """Query triples of one or more splits (e.g. GraIL's ``ind_valid`` and ``test`` together)."""
    splits = list(splits)
    graphs = {tables.splits[s]["graph"] for s in splits if s in tables.splits}
    if len(graphs) > 1:
        raise ValueError(f"{tables.folder}: splits {splits} use different inference graphs {sorted(graphs)}")
    return np.concatenate([tables.queries(s) for s in splits]).reshape(-1, 3)


class KnownTriples:
    """The true triples of a graph, for filtered ranking and negative filtering.

    ``sets`` names the triple sets that count as known: all of them (default) for
    filtered ranking; for training, only the training split's own sets, so that
    held-out answers stay negatives (a training filter holding test answers would
    never push the model away from them). With ``graph`` given, ids are that
    graph's local node ids and triples with an entity outside it are left out.
    """

    def __init__(self, tables: TokenTables, graph: "GraphTensors | None" = None,
                 sets: Sequence[str] | None = None):
        self.num_relations = tables.num_relations
        names = list(tables.manifest["counts"]["triple_sets"]) if sets is None else list(sets)
        sets = [tables.triple_set(name) for name in names] or [np.zeros((0, 3), dtype=np.int64)]
        # A triple held by several sets stays repeated: its mask entry is set twice, at no cost to
        # anything (dropping repeats, a row-wise sort, took most of the set-up of a small graph's ranking).
        triples = np.concatenate(sets).reshape(-1, 3)
        self.num_entities = tables.num_entities
        if graph is not None and graph.entity_ids is not None:
            local = np.full(tables.num_entities, -1, dtype=np.int64)
            local[graph.entity_ids.cpu().numpy()] = np.arange(graph.num_entities)
            triples = np.stack([local[triples[:, 0]], triples[:, 1], local[triples[:, 2]]], axis=1)
            triples = triples[(triples[:, 0] >= 0) & (triples[:, 2] >= 0)]
            self.num_entities = graph.num_entities
        h, r, t = (torch.as_tensor(triples[:, i]) for i in range(3))
        # Tail answers of (h, r) and of the inverse query (t, r + R).
        heads = torch.cat([h, t])
        rels = torch.cat([r, r + self.num_relations])
        answers = torch.cat([t, h])
        key = heads * (2 * self.num_relations) + rels
        order = torch.argsort(key * self.num_entities + answers)
        self.keys = key[order]
        self.answers = answers[order]

    def mask(self, heads: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
        """[B, N] bool: True where (head, relation, entity) is a known triple."""
        query_keys = heads.cpu() * (2 * self.num_relations) + relations.cpu()
        start = torch.searchsorted(self.keys, query_keys)
        counts = torch.searchsorted(self.keys, query_keys, right=True) - start
        rows = torch.repeat_interleave(torch.arange(len(query_keys)), counts)
        # Answer positions: each row's run start, shifted by where the row's part of the output begins.
        first = start - (torch.cumsum(counts, 0) - counts)
        out = torch.zeros(len(query_keys), self.num_entities, dtype=torch.bool)
        out[rows, self.answers[first.index_select(0, rows) + torch.arange(len(rows))]] = True
        return out


def whole_graph(tables: TokenTables) -> GraphTensors:
    """Every entity of an artifact, with the union of all its triple sets as edges.

    Alignment and linking see a graph as a whole (no held-out queries): the
    structure each entity has anywhere in the graph is evidence.
    """
    names = tables.manifest["counts"]["triple_sets"]
    parts = [tables.triple_set(name) for name in names]
    triples = np.unique(np.concatenate(parts).reshape(-1, 3), axis=0) if parts else np.zeros((0, 3), np.int64)
    n, r = tables.num_entities, tables.num_relations
    edge_index, edge_type = with_inverses(triples, r)
    entity_tokens = {}
    for modality in MODALITIES:
        owners, codes, counts = tables.tokens("entity", modality)
        if len(owners):
            entity_tokens[modality] = pad_tokens(n, owners, codes, counts)
    relation_tokens = {}
    owners, codes, counts = tables.tokens("relation", "text")
    if len(owners):
        relation_tokens["text"] = pad_tokens(r, owners, codes, counts)
    return GraphTensors(tables.name, n, r, edge_index, edge_type, entity_tokens, relation_tokens,
                        tables.codebook_id)


def token_owners(name: str, count: int, tokens: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
                 codebook_id: str | None) -> GraphTensors:
    """Owners of tokens without any graph (e.g. mentions) as an edgeless graph, so they take the
    same embedding path as entities."""
    entity_tokens = {m: pad_tokens(count, *rows) for m, rows in tokens.items() if len(rows[0])}
    empty = torch.zeros((2, 0), dtype=torch.long)
    return GraphTensors(name, count, 0, empty, torch.zeros(0, dtype=torch.long), entity_tokens, {}, codebook_id)
