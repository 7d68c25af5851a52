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
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from artifacts.token_tables import MODALITIES, TokenTables, read_token_tables


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

    @property
    def num_edges(self) -> int:
        return int(self.edge_type.numel())

    def to(self, device) -> "GraphTensors":
        return replace(self, edge_index=self.edge_index.to(device), edge_type=self.edge_type.to(device),
                       entity_tokens={m: t.to(device) for m, t in self.entity_tokens.items()},
                       relation_tokens={m: t.to(device) for m, t in self.relation_tokens.items()})

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


def graph_tensors(tables: TokenTables, split: str) -> GraphTensors:
    """The inference graph of ``split`` with all token tensors of the artifact."""
    n, r = tables.num_entities, tables.num_relations
    edge_index, edge_type = with_inverses(tables.inference_graph(split), r)
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


def split_queries(tables: TokenTables, splits: Iterable[str]) -> np.ndarray:
    """Query triples of one or more splits (e.g. GraIL's ``ind_valid`` and ``test`` together)."""
    splits = list(splits)
    graphs = {tables.splits[s]["graph"] for s in splits if s in tables.splits}
    if len(graphs) > 1:
        raise ValueError(f"{tables.folder}: splits {splits} use different inference graphs {sorted(graphs)}")
    return np.concatenate([tables.queries(s) for s in splits]).reshape(-1, 3)


class KnownTriples:
    """Every true triple of a graph (all triple sets), for filtered ranking and negative filtering."""

    def __init__(self, tables: TokenTables):
        self.num_entities = tables.num_entities
        self.num_relations = tables.num_relations
        sets = [tables.triple_set(name) for name in tables.manifest["counts"]["triple_sets"]]
        triples = np.unique(np.concatenate(sets).reshape(-1, 3), axis=0)
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
        end = torch.searchsorted(self.keys, query_keys, right=True)
        out = torch.zeros(len(query_keys), self.num_entities, dtype=torch.bool)
        for row, (a, b) in enumerate(zip(start.tolist(), end.tolist())):
            out[row, self.answers[a:b]] = True
        return out


def load_artifact(folder: Path | str) -> TokenTables:
    return read_token_tables(Path(folder))
