"""Evidence that keeps identity, for alignment and linking: names, descriptions and seed links.

Each channel scores a chunk of source owners against every target owner, id-free:

- ``name_lexical`` / ``description_lexical``: cosine of subword-count vectors weighted by inverse
  document frequency computed over the **candidate side** at inference (a subword that names half
  the knowledge base says little; one that names three entities says a lot), name against name and
  description (a mention's context) against description;
- ``name_dense`` / ``full_dense``: cosine of the pooled text vectors decoded from the product codes,
  name against name and whole text against whole text;
- ``anchors`` (alignment only): the seed links are input. Each entity gets, per hop ``k``, the
  profile ``Â^k P`` of how it reaches the seed pairs (``Â`` the graph's symmetrically normalised
  adjacency, ``P`` one column per seed pair); a graph-1 and a graph-2 entity that reach the same seed
  pairs at the same distances get a high cosine, whatever their ids or names.

:meth:`reasoning_stage.models.TofuModel.combine_evidence` weighs them with the model's own
embedding score by task (``evidence_weight``, learnt by :func:`reasoning_stage.matching.fit_evidence_weights`).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

# Sparse CSR matrices are what the lexical channels need; torch's notices that they are in beta are not
# the user's business.
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly disabled")

EVIDENCE_CHANNELS = ("model", "name_lexical", "description_lexical", "name_dense", "full_dense", "anchors")
ANCHOR_HOPS = 3


@dataclass
class TextEvidence:
    """One side's text identity: lexical count matrices (sparse ``[n, V]``) and decoded vectors (``[n, d]``,
    L2-normalised; zero rows where a field is absent)."""
    lexical: dict[str, torch.Tensor] = field(default_factory=dict)
    dense: dict[str, torch.Tensor] = field(default_factory=dict)

    def to(self, device) -> "TextEvidence":
        return TextEvidence({k: v.to(device) for k, v in self.lexical.items()},
                            {k: v.to(device) for k, v in self.dense.items()})


def lexical_matrix(num_owners: int, vocabulary: int, owners: np.ndarray, subwords: np.ndarray,
                   counts: np.ndarray) -> torch.Tensor:
    """Sparse CSR ``[num_owners, vocabulary]`` subword counts."""
    index = torch.as_tensor(np.stack([owners, subwords]), dtype=torch.long)
    values = torch.as_tensor(counts, dtype=torch.float32)
    return torch.sparse_coo_tensor(index, values, (num_owners, vocabulary)).coalesce().to_sparse_csr()


def dense_matrix(num_owners: int, owners: np.ndarray, vectors: np.ndarray) -> torch.Tensor:
    result = torch.zeros(num_owners, vectors.shape[1] if len(vectors) else 1)
    if len(owners):
        result[torch.as_tensor(owners)] = F.normalize(torch.as_tensor(vectors, dtype=torch.float32), dim=1)
    return result


def inverse_document_frequency(matrix: torch.Tensor) -> torch.Tensor:
    """``[V]`` smoothed IDF of each subword over the owners (rows) of ``matrix``."""
    csr = matrix.to_sparse_csr()
    present = torch.zeros(csr.shape[1], device=csr.device)
    present.index_add_(0, csr.col_indices(), torch.ones_like(csr.values()))
    return torch.log((csr.shape[0] + 1) / (present + 1)) + 1


def weighted_rows(matrix: torch.Tensor, idf: torch.Tensor) -> torch.Tensor:
    """Rows of a sparse count matrix as L2-normalised TF-IDF vectors (sparse CSR)."""
    coo = matrix.to_sparse_coo().coalesce()
    rows, cols = coo.indices()
    values = coo.values() * idf[cols]
    norms = torch.zeros(coo.shape[0], device=values.device).index_add_(0, rows, values * values).sqrt()
    values = values / norms[rows].clamp(min=1e-12)
    return torch.sparse_coo_tensor(coo.indices(), values, coo.shape).coalesce().to_sparse_csr()


@dataclass
class MatchingEvidence:
    """Everything id-free a matching problem compares beyond the model's embeddings, prepared once."""
    lexical: dict[str, tuple[torch.Tensor, torch.Tensor]]   # field -> (source TF-IDF rows, target TF-IDF rows)
    dense: dict[str, tuple[torch.Tensor, torch.Tensor]]     # field -> (source vectors, target vectors)
    anchors: tuple[torch.Tensor, torch.Tensor] | None       # (source profiles, target profiles)
    indexes: dict = field(default_factory=dict)             # FAISS indexes of the target's dense vectors, built on use

    def channels(self, rows: torch.Tensor, num_targets: int, columns: torch.Tensor | None = None) -> torch.Tensor:
        """``[len(rows), targets, channels - 1]`` evidence of source owners ``rows`` against every target, or
        against the targets ``columns`` only (every channel but ``model``, in :data:`EVIDENCE_CHANNELS`
        order; zeros where a side lacks it)."""
        width = num_targets if columns is None else len(columns)
        out = torch.zeros(len(rows), width, len(EVIDENCE_CHANNELS) - 1, device=rows.device)

        def pick(target: torch.Tensor) -> torch.Tensor:
            return target if columns is None else target.index_select(0, columns)

        for i, name in enumerate(EVIDENCE_CHANNELS[1:]):
            kind, _, _ = name.rpartition("_")
            if name.endswith("_lexical") and kind in self.lexical:
                source, target = self.lexical[kind]
                scores = torch.sparse.mm(target, sparse_rows(source, rows).T)     # [targets, rows]: nnz-cheap
                out[:, :, i] = pick(scores).T
            elif name.endswith("_dense") and kind in self.dense:
                source, target = self.dense[kind]
                out[:, :, i] = source.index_select(0, rows) @ pick(target).T
            elif name == "anchors" and self.anchors is not None:
                source, target = self.anchors
                out[:, :, i] = source.index_select(0, rows) @ pick(target).T / ANCHOR_HOPS
        return out

    def candidates(self, rows: torch.Tensor, per_channel: int) -> torch.Tensor:
        """Sorted union of the ``per_channel`` best targets of ``rows`` by each dense channel (a FAISS
        inner-product index over the decoded vectors) and each lexical channel (its postings, through
        the sparse product): the short list a large knowledge base is re-ranked on."""
        import faiss

        found = []
        for kind, (source, target) in self.dense.items():
            index = self.indexes.get(kind)
            if index is None:
                index = self.indexes[kind] = faiss.IndexFlatIP(target.shape[1])
                index.add(np.ascontiguousarray(target.cpu().numpy(), dtype=np.float32))
            _, top = index.search(np.ascontiguousarray(source.index_select(0, rows).cpu().numpy()), per_channel)
            found.append(torch.as_tensor(top.ravel()))
        for source, target in self.lexical.values():
            scores = torch.sparse.mm(target, sparse_rows(source, rows).T)
            found.append(torch.topk(scores, min(per_channel, scores.shape[0]), dim=0).indices.ravel().cpu())
        pool = torch.cat(found) if found else torch.zeros(0, dtype=torch.long)
        return torch.unique(pool[pool >= 0]).to(rows.device)


def sparse_rows(matrix: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Dense ``[len(rows), V]`` copy of some rows of a sparse CSR matrix."""
    crow, col, val = matrix.crow_indices(), matrix.col_indices(), matrix.values()
    out = torch.zeros(len(rows), matrix.shape[1], device=val.device)
    for i, row in enumerate(rows.tolist()):
        start, end = int(crow[row]), int(crow[row + 1])
        out[i, col[start:end]] = val[start:end]
    return out


def lexical_pair(source: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both sides weighted by the IDF of the candidate side (``target``), computed here, at inference."""
    idf = inverse_document_frequency(target)
    return weighted_rows(source, idf), weighted_rows(target, idf)


def normalised_adjacency(edge_index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """Sparse ``D^-1/2 A D^-1/2`` of the undirected, unweighted graph of ``edge_index`` (relations ignored)."""
    if edge_index.numel() == 0:
        return torch.sparse_coo_tensor(torch.zeros(2, 0, dtype=torch.long), torch.zeros(0), (num_nodes, num_nodes))
    pairs = torch.cat([edge_index, edge_index.flip(0)], 1)
    pairs = pairs[:, pairs[0] != pairs[1]].unique(dim=1)
    degree = torch.zeros(num_nodes).index_add_(0, pairs[0].cpu(), torch.ones(pairs.shape[1]))
    scale = degree.clamp(min=1).rsqrt()
    values = scale[pairs[0].cpu()] * scale[pairs[1].cpu()]
    return torch.sparse_coo_tensor(pairs.cpu(), values, (num_nodes, num_nodes)).coalesce()


def anchor_profiles(adjacency: torch.Tensor, anchors: torch.Tensor, hops: int = ANCHOR_HOPS) -> torch.Tensor:
    """``[n, hops * A]``: per hop, each node's L2-normalised profile of reaching the ``A`` anchor nodes.

    Column ``j`` of every block stands for seed pair ``j`` on both sides, so profiles of the two
    graphs are comparable by cosine; an anchor reached by no one contributes nothing.
    """
    num_nodes = adjacency.shape[0]
    profile = torch.zeros(num_nodes, len(anchors))
    profile[anchors.cpu(), torch.arange(len(anchors))] = 1.0
    blocks = []
    for _ in range(hops):
        profile = torch.sparse.mm(adjacency, profile)
        blocks.append(F.normalize(profile, dim=1))
    return torch.cat(blocks, 1)


def anchor_evidence(source_edges: torch.Tensor, source_size: int, target_edges: torch.Tensor, target_size: int,
                    seeds: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Anchor profiles of both graphs of an alignment, joined through ``seeds`` ``[A, 2]``; None without seeds."""
    if len(seeds) == 0:
        return None
    seeds = torch.as_tensor(seeds, dtype=torch.long)
    return (anchor_profiles(normalised_adjacency(source_edges.cpu(), source_size), seeds[:, 0]).to(device),
            anchor_profiles(normalised_adjacency(target_edges.cpu(), target_size), seeds[:, 1]).to(device))
