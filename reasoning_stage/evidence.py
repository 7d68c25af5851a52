"""Evidence that keeps identity, for alignment and linking: names, descriptions and seed links.

Each channel scores a chunk of source owners against every target owner, id-free:

- ``name_lexical`` / ``description_lexical``: cosine of subword-count vectors weighted by inverse
  document frequency computed over the **candidate side** at inference (a subword that names half
  the knowledge base says little; one that names three entities says a lot), name against name and
  description (a mention's context) against description;
- ``name_dense`` / ``full_dense``: cosine of the pooled text vectors decoded from the product codes,
  name against name and whole text against whole text;
- ``name_coverage``: the share of the source name's IDF mass (candidate-side IDF, each subword once) that
  the target's name holds: a mention is often part of a name ("Dempsey" for "Clint Dempsey"), which a
  cosine punishes for the name's other subwords;
- ``name_in_description``: the share of the target name's IDF mass that the source's description (a
  mention's context) holds: a sentence often spells out the full name a mention abbreviates;
- ``time_fit``: +1 when every year the source's description (a mention's context) names lies within
  the span of years the target's description names, -1 when one lies outside, 0 when either names
  none. A single year opens the span (a birth or a founding: the entity may still be there); a
  caption dated 2013 does not show a man who died in 1983;
- ``prominence``: how much the target's description says (log of its subword count, 1 for the longest
  among the candidates): with nothing else to go on, a mention more often means the entity a knowledge
  base knows most about;
- ``anchors`` (alignment only): the seed links are input. Each entity gets, per hop ``k``, the
  profile ``Â^k P`` of how it reaches the seed pairs (``Â`` the graph's symmetrically normalised
  adjacency, ``P`` one column per seed pair); a graph-1 and a graph-2 entity that reach the same seed
  pairs at the same distances get a high cosine, whatever their ids or names;
- ``far_anchors`` (alignment only): the same for hops 4 and 5, which reach the entities that few seed
  pairs are near (a sparse seed set, a graph with no names to lean on).

:meth:`reasoning_stage.models.TofuModel.combine_evidence` weighs them with the model's own
embedding score by task (``evidence_weight``, learnt by :func:`reasoning_stage.matching.fit_evidence_weights`).
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

# Sparse CSR matrices are what the lexical channels need; torch's notices that they are in beta are not
# the user's business.
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly disabled")

EVIDENCE_CHANNELS = ("model", "name_lexical", "description_lexical", "name_dense", "full_dense", "anchors",
                     "name_coverage", "name_in_description", "time_fit", "prominence", "far_anchors")
ANCHOR_HOPS = 3
FAR_ANCHOR_HOPS = 2   # hops ANCHOR_HOPS + 1 .. ANCHOR_HOPS + FAR_ANCHOR_HOPS


YEAR = re.compile(r"\b(1[0-9]{3}|20[0-9]{2})\b")


@dataclass
class TextEvidence:
    """One side's text identity: lexical count matrices (sparse ``[n, V]``), decoded vectors (``[n, d]``,
    L2-normalised; zero rows where a field is absent) and the years its descriptions name (``[n, 3]``:
    first, last, how many distinct; NaN, NaN, 0 where none)."""
    lexical: dict[str, torch.Tensor] = field(default_factory=dict)
    dense: dict[str, torch.Tensor] = field(default_factory=dict)
    years: torch.Tensor | None = None

    def to(self, device) -> "TextEvidence":
        return TextEvidence({k: v.to(device) for k, v in self.lexical.items()},
                            {k: v.to(device) for k, v in self.dense.items()},
                            None if self.years is None else self.years.to(device))


def named_years(texts: list[str | None]) -> torch.Tensor | None:
    """``[n, 3]`` first year, last year and distinct-year count of each text (years 1000-2099); None when
    no text names one."""
    out = torch.full((len(texts), 3), float("nan"))
    out[:, 2] = 0
    for row, text in enumerate(texts):
        years = {int(y) for y in YEAR.findall(text or "")}
        if years:
            out[row] = torch.tensor([min(years), max(years), len(years)], dtype=torch.float32)
    return out if bool((out[:, 2] > 0).any()) else None


def time_fit(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``[len(source), len(target)]`` of +1 / -1 / 0 (see the module's ``time_fit``): the source's years
    against the target's span, ``[first, last]``, or ``[first, inf)`` when it names one year."""
    start = target[:, 0]
    end = torch.where(target[:, 2] > 1, target[:, 1], torch.full_like(target[:, 1], float("inf")))
    inside = (source[:, :1] >= start) & (source[:, 1:2] <= end)
    known = (source[:, 2:] > 0) & (target[:, 2] > 0)
    return torch.where(known, inside.float() * 2 - 1, torch.zeros_like(inside, dtype=torch.float32))


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
    coverage: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)  # channel -> (source, target)
    years: tuple[torch.Tensor, torch.Tensor] | None = None  # (source years, target years), as TextEvidence.years
    prominence: torch.Tensor | None = None                   # [targets] in [0, 1]
    far_anchors: tuple[torch.Tensor, torch.Tensor] | None = None  # profiles of the further hops
    indexes: dict = field(default_factory=dict)             # FAISS indexes of the target's dense vectors, built on use
    seeds: np.ndarray | None = None                          # [A, 2] the seed pairs the anchor profiles go through
    anchor_block: "AnchorBlock | None" = None                # anchor channels of some pairs only, in place of profiles

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
            elif name == "prominence" and self.prominence is not None:
                out[:, :, i] = pick(self.prominence).unsqueeze(0)
            elif name == "time_fit" and self.years is not None:
                source, target = self.years
                out[:, :, i] = time_fit(source.index_select(0, rows), pick(target))
            elif name in self.coverage:
                source, target = self.coverage[name]
                out[:, :, i] = pick(torch.sparse.mm(target, sparse_rows(source, rows).T)).T
            elif name == "anchors" and self.anchors is not None:
                source, target = self.anchors
                out[:, :, i] = source.index_select(0, rows) @ pick(target).T / ANCHOR_HOPS
            elif name == "far_anchors" and self.far_anchors is not None:
                source, target = self.far_anchors
                out[:, :, i] = source.index_select(0, rows) @ pick(target).T / FAR_ANCHOR_HOPS
            elif name in ("anchors", "far_anchors") and self.anchor_block is not None:
                block = self.anchor_block.near if name == "anchors" else self.anchor_block.far
                if block is not None:
                    out[:, :, i] = self.anchor_block.lookup(block, rows, num_targets, columns)
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


@dataclass
class AnchorBlock:
    """The ``anchors`` and ``far_anchors`` channels of the source owners ``rows`` against the target owners
    ``columns`` only (``[len(rows), len(columns)]`` each; ``far`` None where not built): what ranking a known
    set of sources among known candidates needs, in memory that does not grow with the seed count."""
    rows: torch.Tensor
    columns: torch.Tensor
    near: torch.Tensor
    far: torch.Tensor | None

    def lookup(self, block: torch.Tensor, rows: torch.Tensor, num_targets: int,
               columns: torch.Tensor | None = None) -> torch.Tensor:
        """``[len(rows), num_targets or len(columns)]`` of ``block``; zero for targets outside the block.

        Raises:
            ValueError: for a source owner the block was not built for.
        """
        row_slot = torch.full((int(max(self.rows.max(), rows.max())) + 1,), -1, dtype=torch.long, device=block.device)
        row_slot[self.rows] = torch.arange(len(self.rows), device=block.device)
        found = row_slot[rows]
        if bool((found < 0).any()):
            raise ValueError(f"the anchor block holds no scores of source owner {int(rows[found < 0][0])}")
        column_slot = torch.full((num_targets,), -1, dtype=torch.long, device=block.device)
        column_slot[self.columns] = torch.arange(len(self.columns), device=block.device)
        wanted = column_slot if columns is None else column_slot[columns]
        out = torch.zeros(len(rows), len(wanted), device=block.device)
        inside = wanted >= 0
        out[:, inside] = block.index_select(0, found)[:, wanted[inside]]
        return out


def anchor_block(source_edges: torch.Tensor, source_size: int, target_edges: torch.Tensor, target_size: int,
                 seeds: np.ndarray, rows: torch.Tensor, columns: torch.Tensor, far: bool = True,
                 chunk: int = 1024) -> AnchorBlock:
    """The anchor channels through ``seeds`` of source owners ``rows`` against target owners ``columns``,
    equal to those of :func:`anchor_evidence`'s profiles, computed ``chunk`` seed pairs at a time: each
    hop's cosine is accumulated as dot products and squared norms, so memory holds
    ``hops x len(rows) x len(columns)`` numbers, never ``nodes x hops x seeds``."""
    seeds_t = torch.as_tensor(np.asarray(seeds), dtype=torch.long).reshape(-1, 2)
    hops = ANCHOR_HOPS + (FAR_ANCHOR_HOPS if far else 0)
    rows, columns = rows.cpu(), columns.cpu()
    source_adjacency = normalised_adjacency(source_edges.cpu(), source_size)
    target_adjacency = normalised_adjacency(target_edges.cpu(), target_size)
    dots = torch.zeros(hops, len(rows), len(columns))
    source_norms, target_norms = torch.zeros(hops, len(rows)), torch.zeros(hops, len(columns))
    for start in range(0, len(seeds_t), chunk):
        part = seeds_t[start:start + chunk]
        source_profile = torch.zeros(source_size, len(part))
        source_profile[part[:, 0], torch.arange(len(part))] = 1.0
        target_profile = torch.zeros(target_size, len(part))
        target_profile[part[:, 1], torch.arange(len(part))] = 1.0
        for hop in range(hops):
            source_profile = torch.sparse.mm(source_adjacency, source_profile)
            target_profile = torch.sparse.mm(target_adjacency, target_profile)
            a, b = source_profile.index_select(0, rows), target_profile.index_select(0, columns)
            dots[hop].addmm_(a, b.T)
            source_norms[hop] += (a * a).sum(1)
            target_norms[hop] += (b * b).sum(1)
    source_norms, target_norms = source_norms.sqrt().clamp(min=1e-12), target_norms.sqrt().clamp(min=1e-12)
    for hop in range(hops):   # in place: the cosines take the dot products' memory
        dots[hop].div_(source_norms[hop][:, None]).div_(target_norms[hop][None, :])
    device = source_edges.device
    near = (dots[:ANCHOR_HOPS].sum(0) / ANCHOR_HOPS).to(device)
    far_block = (dots[ANCHOR_HOPS:].sum(0) / FAR_ANCHOR_HOPS).to(device) if far else None
    return AnchorBlock(rows.to(device), columns.to(device), near, far_block)


def presence(matrix: torch.Tensor) -> torch.Tensor:
    """A sparse count matrix with every stored count set to 1 (sparse CSR)."""
    coo = matrix.to_sparse_coo().coalesce()
    return torch.sparse_coo_tensor(coo.indices(), torch.ones_like(coo.values()), coo.shape).coalesce().to_sparse_csr()


def idf_shares(matrix: torch.Tensor, idf: torch.Tensor) -> torch.Tensor:
    """Rows of a sparse count matrix as each present subword's share of the row's IDF mass (rows sum to 1)."""
    coo = matrix.to_sparse_coo().coalesce()
    rows, cols = coo.indices()
    values = idf[cols]
    totals = torch.zeros(coo.shape[0], device=values.device).index_add_(0, rows, values)
    values = values / totals[rows].clamp(min=1e-12)
    return torch.sparse_coo_tensor(coo.indices(), values, coo.shape).coalesce().to_sparse_csr()


def coverage_pairs(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]
                   ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The coverage channels a pair of sides supports (``name_coverage`` needs both names,
    ``name_in_description`` the source's description and the target's names); IDF over the target's names."""
    if "name" not in target:
        return {}
    idf = inverse_document_frequency(target["name"])
    pairs = {}
    if "name" in source:
        pairs["name_coverage"] = (idf_shares(source["name"], idf), presence(target["name"]))
    if "description" in source:
        pairs["name_in_description"] = (presence(source["description"]), idf_shares(target["name"], idf))
    return pairs


def prominence(descriptions: torch.Tensor) -> torch.Tensor:
    """``[n]`` log(1 + subword count) of each row of a sparse description count matrix, scaled to [0, 1]."""
    csr = descriptions.to_sparse_csr()
    totals = torch.zeros(csr.shape[0], device=csr.values().device)
    totals.index_add_(0, torch.repeat_interleave(torch.arange(csr.shape[0], device=totals.device),
                                                 csr.crow_indices().diff()), csr.values())
    scores = torch.log1p(totals)
    return scores / scores.max().clamp(min=1e-12)


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
    num_nodes, width = adjacency.shape[0], len(anchors)
    profile = torch.zeros(num_nodes, width)
    profile[anchors.cpu(), torch.arange(width)] = 1.0
    out = torch.empty(num_nodes, hops * width)   # filled block by block: no second copy at the peak
    for hop in range(hops):
        profile = torch.sparse.mm(adjacency, profile)
        out[:, hop * width:(hop + 1) * width] = F.normalize(profile, dim=1)
    return out


def anchor_evidence(source_edges: torch.Tensor, source_size: int, target_edges: torch.Tensor, target_size: int,
                    seeds: np.ndarray, device: torch.device, far: bool = True
                    ) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor] | None] | None:
    """``(near, far)`` anchor profiles of both graphs of an alignment, joined through ``seeds`` ``[A, 2]``:
    hops 1..ANCHOR_HOPS, then the FAR_ANCHOR_HOPS after them (None with ``far=False``: they cost
    two-thirds more memory, which a large alignment that does not weigh them need not pay); None
    without seeds."""
    if len(seeds) == 0:
        return None
    seeds = torch.as_tensor(seeds, dtype=torch.long)
    width = ANCHOR_HOPS * len(seeds)
    hops = ANCHOR_HOPS + (FAR_ANCHOR_HOPS if far else 0)
    source = anchor_profiles(normalised_adjacency(source_edges.cpu(), source_size), seeds[:, 0], hops)
    target = anchor_profiles(normalised_adjacency(target_edges.cpu(), target_size), seeds[:, 1], hops)
    near = (source[:, :width].to(device), target[:, :width].to(device))
    return near, ((source[:, width:].to(device), target[:, width:].to(device)) if far else None)
