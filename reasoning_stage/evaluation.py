"""Filtered ranking with explicit tie handling, and the metrics built on it.

For each test triple ``(h, r, t)`` two queries are ranked over all entities:
the tail query ``(h, r, ?)`` and the head query, asked as ``(t, r + R, ?)``.
Other known true answers are filtered out (excluded from the comparison).
Quantized tokens make equal scores likely, so both tie policies are kept:
``pessimistic = 1 + #{score >= true score}`` (the headline, as in ULTRA) and
``optimistic = 1 + #{score > true score}``; their gap detects ties. "Equal" allows
float32 rounding noise (:data:`TIE_RTOL`, :data:`TIE_ATOL`), so ranks do not depend on
the batch width.

Queries that ask the same ``(entity, relation)`` share one score vector, so
their ranks are not independent draws (nell_v1_ind asks one head query of
``agentbelongstoorganization`` 42 times). Intervals therefore resample
distinct queries, not ranks (:func:`bootstrap_interval`).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np
import torch

from reasoning_stage.config import eval_batch_size
from reasoning_stage.graph_data import GraphTensors, KnownTriples, graph_tensors, split_queries

# Resamples behind every 95% interval over distinct queries.
BOOTSTRAP_DRAWS = 2000


@dataclass
class Ranks:
    pessimistic: np.ndarray     # int64 [n]
    optimistic: np.ndarray      # int64 [n]
    direction: np.ndarray       # "head" | "tail" per rank
    relation: np.ndarray | None = None  # query relation id per rank (r, or r + R for head queries)
    query_group: np.ndarray | None = None  # id of the distinct query each rank answers (None: all distinct)

    def per_relation(self, num_relations: int, direction: str | None = None) -> dict[int, tuple[float, int]]:
        """``{relation: (pessimistic MRR, queries)}`` with head and tail queries of a relation together,
        or of one ``direction`` ("head" or "tail") only."""
        if self.relation is None:
            raise ValueError("these ranks carry no relation ids")
        keep = np.ones(len(self.pessimistic), bool) if direction is None else self.direction == direction
        base, ranks = self.relation[keep] % num_relations, self.pessimistic[keep]
        return {int(r): (float(np.mean(1.0 / ranks[base == r])), int((base == r).sum())) for r in np.unique(base)}

    def mrr_interval(self, draws: int = BOOTSTRAP_DRAWS, seed: int = 0) -> tuple[float, float]:
        """95% bootstrap interval of the (pessimistic) MRR, resampling distinct queries."""
        return bootstrap_interval(1.0 / self.pessimistic, self.query_group, draws, seed)

    def metrics(self) -> dict[str, float]:
        """Flat metric names like ``both.pessimistic.mrr``; headline keys ``mrr``, ``hits@k``."""
        out: dict[str, float] = {}
        for side in ("both", "head", "tail"):
            mask = np.ones(len(self.pessimistic), bool) if side == "both" else self.direction == side
            if not mask.any():
                continue
            for policy in ("pessimistic", "optimistic"):
                ranks = getattr(self, policy)[mask].astype(np.float64)
                out[f"{side}.{policy}.mrr"] = float(np.mean(1.0 / ranks))
                for k in (1, 3, 10):
                    out[f"{side}.{policy}.hits_at_{k}"] = float(np.mean(ranks <= k))
        out["mrr"] = out["both.pessimistic.mrr"]
        for k in (1, 3, 10):
            out[f"hits@{k}"] = out[f"both.pessimistic.hits_at_{k}"]
        out["tie_gap_mrr"] = out["both.optimistic.mrr"] - out["both.pessimistic.mrr"]
        out["queries"] = float(len(self.pessimistic))
        # Each distinct (entity, relation) query is scored once: the work a ranking pass does.
        out["distinct_queries"] = float(len(self.pessimistic) if self.query_group is None
                                        else len(np.unique(self.query_group)))
        return out


def bootstrap_interval(values: np.ndarray, groups: np.ndarray | None = None, draws: int = BOOTSTRAP_DRAWS,
                       seed: int = 0) -> tuple[float, float]:
    """95% bootstrap interval of ``mean(values)``, resampling whole ``groups`` (cluster bootstrap).

    A draw picks as many groups as there are, with replacement, and takes the mean of
    all their values (the ratio estimator: a group weighs by its size). ``groups=None``
    makes every value its own group: the plain bootstrap. Paired differences of two
    models on the same queries go in as ``values = other - first``.
    """
    values = np.asarray(values, dtype=np.float64)
    if not len(values):
        raise ValueError("no values to resample")
    if groups is None:
        sums, counts = values, np.ones(len(values))
    else:
        _, index = np.unique(groups, return_inverse=True)
        sums, counts = np.bincount(index, weights=values), np.bincount(index).astype(np.float64)
    rng = np.random.default_rng(seed)
    # A few draws at a time bound memory to ~10M indices (80 MB) however many groups; the stream of
    # draws, and so the interval, does not depend on the chunk size.
    chunk = max(1, min(100, 10_000_000 // len(sums)))
    means = []
    for done in range(0, draws, chunk):
        picked = rng.integers(0, len(sums), (min(chunk, draws - done), len(sums)))
        means.append(sums[picked].sum(1) / counts[picked].sum(1))
    means = np.concatenate(means)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


# Scores this close to the answer's count as ties. Float32 sums taken in another order (another
# batch width, another kernel) differ by a few units in the last place; a tie that quantized tokens or
# graph symmetry make exact must not be broken by that noise.
TIE_RTOL = 1e-6
TIE_ATOL = 1e-6


def rank_of_targets(scores: torch.Tensor, targets: torch.Tensor, filtered: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pessimistic and optimistic ranks of ``targets`` in ``scores`` [B, N], ignoring ``filtered`` [B, N];
    scores within ``TIE_ATOL + TIE_RTOL * |answer's score|`` of the answer's are ties."""
    rows = torch.arange(len(targets), device=scores.device)
    true = scores[rows, targets].unsqueeze(1)
    tolerance = TIE_ATOL + TIE_RTOL * true.abs()
    ignore = filtered.clone()
    ignore[rows, targets] = True  # the answer is not compared with itself
    higher_or_equal = ((scores >= true - tolerance) & ~ignore).sum(dim=1)
    higher = ((scores > true + tolerance) & ~ignore).sum(dim=1)
    return 1 + higher_or_equal, 1 + higher


def directed_queries(triples: torch.Tensor, num_relations: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Tail and head queries of ``triples`` as ``(queries [2n, 2], targets [2n], direction [2n])``."""
    h, r, t = triples[:, 0], triples[:, 1], triples[:, 2]
    queries = torch.cat([torch.stack([h, r], 1), torch.stack([t, r + num_relations], 1)])
    targets = torch.cat([t, h])
    direction = np.array(["tail"] * len(h) + ["head"] * len(h))
    return queries, targets, direction


def rank_triples(score_fn: Callable[[torch.Tensor], torch.Tensor], triples: torch.Tensor, known: KnownTriples,
                 batch_size: int, progress=None) -> Ranks:
    """Rank head and tail of every triple with ``score_fn(queries [B, 2]) -> [B, N]``.

    Scores depend on ``(entity, relation)`` only, so each distinct query is
    scored once and ranks every triple that asks it (GraIL ``_ind`` test sets
    repeat 14-48% of their directed queries). Distinct queries are batched by
    relation, so a batch shares the relation GNN's work.
    """
    queries, targets, direction = directed_queries(triples, known.num_relations)
    # One integer per (entity, relation): a flat unique, several times faster than a row-wise one.
    relation_ids = 2 * known.num_relations
    keys, inverse = torch.unique(queries[:, 0] * relation_ids + queries[:, 1], return_inverse=True)
    unique = torch.stack([keys // relation_ids, keys % relation_ids], 1)
    by_relation = torch.argsort(unique[:, 1], stable=True)
    unique = unique[by_relation]
    row = torch.empty_like(by_relation)
    row[by_relation] = torch.arange(len(by_relation))
    row = row[inverse]                                    # each query's row in `unique`
    askers = torch.argsort(row, stable=True)              # queries grouped by their row
    starts = range(0, len(unique), batch_size)
    first_asker = torch.searchsorted(row[askers], torch.tensor([*starts, len(unique)]))
    pessimistic = torch.empty(len(queries), dtype=torch.long)
    optimistic = torch.empty(len(queries), dtype=torch.long)
    bar = progress(total=len(queries), desc="ranking", unit="q") if progress else None
    for i, start in enumerate(starts):
        q = unique[start:start + batch_size]
        scores = score_fn(q)
        filtered = known.mask(q[:, 0], q[:, 1]).to(scores.device)
        who = askers[first_asker[i]:first_asker[i + 1]]
        local = (row[who] - start).to(scores.device)
        p, o = rank_of_targets(scores[local], targets[who].to(scores.device), filtered[local])
        pessimistic[who], optimistic[who] = p.cpu(), o.cpu()
        if bar:
            bar.update(len(who))
    if bar:
        bar.close()
    return Ranks(pessimistic.numpy(), optimistic.numpy(), direction, queries[:, 1].numpy(), row.numpy())


def ranked_queries(tables, splits, max_triples: int | None = None, seed: int = 0
                   ) -> tuple[GraphTensors, torch.Tensor, KnownTriples]:
    """The inference graph of ``splits``, their test triples in its node ids (a seeded sample of
    ``max_triples`` when there are more) and the known triples that filter the ranks."""
    graph = graph_tensors(tables, splits[0])
    triples = graph.to_local(torch.as_tensor(split_queries(tables, splits), dtype=torch.long))
    known = KnownTriples(tables, graph)
    if max_triples and len(triples) > max_triples:
        pick = torch.randperm(len(triples), generator=torch.Generator().manual_seed(seed))[:max_triples]
        triples = triples[pick]
    return graph, triples, known


def frequency_baseline(tables, splits, max_triples: int | None = None, seed: int = 0) -> Ranks:
    """Filtered ranks of a no-training baseline on the same queries as :func:`evaluate_graph`: a
    candidate scores by how often it answers the query's relation (in that direction) in the inference
    graph, ties broken by its degree there."""
    graph, triples, known = ranked_queries(tables, splits, max_triples, seed)
    answers = torch.zeros(2 * graph.num_relations, graph.num_entities, dtype=torch.float64)
    answers.index_put_((graph.edge_type.cpu(), graph.edge_index[1].cpu()),
                       torch.ones(graph.edge_index.shape[1], dtype=torch.float64), accumulate=True)
    degree = answers.sum(0)
    # Lexicographic (the answer count, then the degree), as the order's dense position: small integers,
    # which the ranking's relative tie tolerance cannot merge.
    _, order = torch.unique(answers * (degree.max() + 1) + degree, return_inverse=True)
    scores = order.float()
    return rank_triples(lambda q: scores[q[:, 1]], triples, known, batch_size=256)


def evaluate_graph(model, tables, splits, device: torch.device, batch_size: int | None = None,
                   max_triples: int | None = None, seed: int = 0, progress=None, task: int = 0,
                   drop_modalities: Sequence[str] = ()) -> Ranks:
    """Filtered ranks of a model on the queries of ``splits`` (over their shared inference graph).

    ``drop_modalities`` hides those token modalities from the model (entity and
    relation tokens), as if the graph had none: inference-time ablations. ``batch_size``:
    distinct queries scored together; by default :func:`eval_batch_size` of the graph.
    """
    from reasoning_stage.models import graph_plans

    graph, triples, known = ranked_queries(tables, splits, max_triples, seed)
    if drop_modalities:
        graph = replace(graph,
                        entity_tokens={m: t for m, t in graph.entity_tokens.items() if m not in drop_modalities},
                        relation_tokens={m: t for m, t in graph.relation_tokens.items() if m not in drop_modalities})
    graph = graph.to(device)
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        plans = graph_plans(graph, model.config.relation_links)
        features = model.entity_features(graph, task)
        ranks = rank_triples(lambda q: model(graph, q.to(device), task=task, features=features, **plans),
                             triples, known,
                             batch_size=batch_size or eval_batch_size(graph.num_entities,
                                                                      plans["rel_graph"].edge_pair.numel()),
                             progress=progress)
    model.train(was_training)
    return ranks
