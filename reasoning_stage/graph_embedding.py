"""A graph's own embedding model, fitted beside the foundation model when a graph is reasoned on
transductively (its test triples ask about entities that its training triples already hold).

TOFU's reasoner knows an entity only by its tokens and its place in the graph, so a few minutes of
fine-tuning cannot teach it the facts that single out one entity among thousands of look-alikes.
A shallow embedding of the graph's own ids learns exactly those, fast on a CPU: ComplEx (Trouillon et
al. 2016) scored against every entity at once (1-N) with a softmax loss and the N3 regulariser
(Lacroix et al. 2018), the well-tuned form of the model. :class:`WithGraphEmbedding` adds its scores to
the reasoner's, with a weight chosen on the graph's validation split (:func:`weight_on_validation`); the
reasoner keeps the entities and relations the embedding never saw.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

from reasoning_stage.graph_data import GraphTensors

# Weights the validation split chooses from: 0 keeps the reasoner alone when the embedding does not help;
# at 16 the reasoner mostly orders what the embedding ties (on MKG-W and MKG-Y, 8 and 16 validate below 2).
WEIGHT_GRID = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
# The weight of a graph without a validation split: both models are trained with a softmax over all
# entities, so adding their scores multiplies their answer distributions, each at its own confidence.
UNVALIDATED_WEIGHT = 1.0
# Validation triples the weight is chosen on (a seeded sample of larger splits): every distinct query's
# scores of both models are kept in memory while the weights rank them.
WEIGHT_CHOICE_TRIPLES = 1000


@dataclass
class GraphEmbeddingConfig:
    """How :func:`fit_graph_embedding` trains: a time budget and the settings of the ComplEx model."""
    minutes: float = 5.0
    max_epochs: int | None = None   # also stop after this many passes over the triples (None: the budget only)
    rank: int = 200              # complex dimensions (2 x rank real numbers per entity and relation)
    learning_rate: float = 0.1   # Adagrad's, as in Lacroix et al.
    # Lacroix et al.'s 0.05: on DB15K's carved train triples 0.380 against 0.340 for 0.1 after 5 minutes
    # (MKG-Y prefers 0.1 by 0.006).
    n3_weight: float = 0.05
    batch_size: int = 1000
    init_scale: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        if not (isinstance(self.minutes, (int, float)) and math.isfinite(self.minutes) and self.minutes > 0):
            raise ValueError(f"the embedding's time budget must be a positive number of minutes, got {self.minutes!r}")
        for name in ("rank", "batch_size", "max_epochs"):
            value = getattr(self, name)
            if value is None and name == "max_epochs":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("learning_rate", "n3_weight", "init_scale"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number of at least 0, got {value!r}")


class GraphEmbedding(nn.Module):
    """ComplEx over a graph's artifact ids: ``entity`` ``[num_entities, 2 * rank]`` and ``relation``
    ``[2R, 2 * rank]`` (real halves first, then imaginary; relation ``r + R`` is the inverse of ``r``,
    as in TOFU's queries). Shapes: heads ``[B]``, relations ``[B]`` -> scores ``[B, num_entities]``."""

    def __init__(self, num_entities: int, num_relation_ids: int, rank: int):
        super().__init__()
        self.rank = rank
        self.entity = nn.Parameter(torch.zeros(num_entities, 2 * rank))
        self.relation = nn.Parameter(torch.zeros(num_relation_ids, 2 * rank))

    @property
    def num_entities(self) -> int:
        return self.entity.shape[0]

    @property
    def num_relation_ids(self) -> int:
        return self.relation.shape[0]

    def reset_parameters(self, scale: float, generator: torch.Generator | None = None) -> None:
        with torch.no_grad():
            for weight in (self.entity, self.relation):
                weight.copy_(torch.randn(weight.shape, generator=generator) * scale)

    def query_vectors(self, heads: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
        """``h * r`` in complex arithmetic, as ``[B, 2 * rank]`` (real, imaginary)."""
        h_re, h_im = self.entity[heads].chunk(2, -1)
        r_re, r_im = self.relation[relations].chunk(2, -1)
        return torch.cat([h_re * r_re - h_im * r_im, h_re * r_im + h_im * r_re], -1)

    def forward(self, heads: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
        # Re(<h * r, conj(t)>) = the real dot product of (h * r) with t's (real, imaginary) halves.
        return self.query_vectors(heads, relations) @ self.entity.T

    def n3_penalty(self, heads: torch.Tensor, relations: torch.Tensor, tails: torch.Tensor) -> torch.Tensor:
        """Mean over the batch of the summed cubed moduli of its heads, relations and tails."""
        total = 0.0
        for table, ids in ((self.entity, heads), (self.relation, relations), (self.entity, tails)):
            real, imaginary = table[ids].chunk(2, -1)
            total = total + torch.sqrt(real ** 2 + imaginary ** 2 + 1e-12).pow(3).sum()
        return total / heads.numel()


def embedding_scores(embedding: GraphEmbedding, graph: GraphTensors, queries: torch.Tensor) -> torch.Tensor:
    """The embedding's ``[B, V]`` scores of ``queries`` ``[B, 2]`` (``graph``'s nodes) over ``graph``'s nodes."""
    ids = graph.artifact_ids().to(queries.device)
    return embedding(ids[queries[:, 0]], queries[:, 1]).index_select(1, ids)


def fit_graph_embedding(graph: GraphTensors, num_entities: int, config: GraphEmbeddingConfig,
                        device: torch.device | None = None, progress: Callable | None = None
                        ) -> tuple[GraphEmbedding, dict[str, float]]:
    """Train a :class:`GraphEmbedding` on the edges of ``graph`` (both directions) for ``config.minutes``
    (or ``config.max_epochs``, whichever ends first).

    ``num_entities`` is the artifact's entity count: the model is indexed by artifact ids, so it serves
    every split's graph. It trains on ``device`` (default: the CPU). Returns the model (frozen, in eval
    mode, on ``device``) and ``{"epochs", "steps", "seconds",
    "loss"}`` of the run.
    """
    device = torch.device("cpu") if device is None else device
    heads, tails = graph.artifact_ids()[graph.edge_index].to(device)
    relations = graph.edge_type.to(device)
    if heads.numel() == 0:
        raise ValueError(f"{graph.name}: the graph has no triples to fit an embedding to")
    generator = torch.Generator().manual_seed(config.seed)
    model = GraphEmbedding(num_entities, 2 * graph.num_relations, config.rank)
    model.reset_parameters(config.init_scale, generator)
    model = model.to(device)
    optimizer = torch.optim.Adagrad(model.parameters(), lr=config.learning_rate)
    budget = 60.0 * config.minutes
    bar = progress(total=round(budget), desc=f"embedding {graph.name}", unit="s") if progress else None
    start, epochs, steps, loss_value, shown = time.perf_counter(), 0, 0, float("nan"), 0
    while time.perf_counter() - start < budget and (config.max_epochs is None or epochs < config.max_epochs):
        order = torch.randperm(heads.numel(), generator=generator).to(device)
        epochs += 1
        for first in range(0, heads.numel(), config.batch_size):
            pick = order[first:first + config.batch_size]
            h, r, t = heads[pick], relations[pick], tails[pick]
            loss = nn.functional.cross_entropy(model(h, r), t)
            optimizer.zero_grad(set_to_none=True)
            (loss + config.n3_weight * model.n3_penalty(h, r, t)).backward()
            optimizer.step()
            steps, loss_value = steps + 1, float(loss.detach())
            elapsed = time.perf_counter() - start
            if bar and round(min(elapsed, budget)) > shown:
                bar.update(round(min(elapsed, budget)) - shown)
                shown = round(min(elapsed, budget))
            if elapsed >= budget:
                break
    if bar:
        bar.close()
    model.requires_grad_(False)
    return model.eval(), {"epochs": epochs, "steps": steps, "seconds": round(time.perf_counter() - start, 1),
                          "loss": round(loss_value, 4)}


class WithGraphEmbedding(nn.Module):
    """A reasoner whose link-prediction scores also count a graph's own embedding:
    ``scores = reasoner(graph, queries) + weight * embedding(head, relation)`` over ``graph``'s nodes.

    It answers as the reasoner does (same call, ``config`` and ``entity_features``), so evaluation and
    prediction take it in the reasoner's place. The embedding is indexed by artifact ids; ``graph``'s
    nodes map onto them through ``graph.entity_ids``. Both models sit on the queries' device.
    """

    def __init__(self, reasoner: nn.Module, embedding: GraphEmbedding, weight: float):
        super().__init__()
        self.reasoner = reasoner
        self.embedding = embedding
        self.weight = float(weight)

    @property
    def config(self):
        return self.reasoner.config

    def entity_features(self, graph: GraphTensors, task: int):
        return self.reasoner.entity_features(graph, task)

    def forward(self, graph: GraphTensors, queries, task: int = 0, **precomputed) -> torch.Tensor:
        scores = self.reasoner(graph, queries, task=task, **precomputed)
        if self.weight == 0.0:
            return scores
        plain = queries.queries if hasattr(queries, "queries") else queries
        return scores + self.weight * embedding_scores(self.embedding, graph, plain)


def weight_on_validation(reasoner: nn.Module, embedding: GraphEmbedding, tables, split: str,
                         device: torch.device, task: int = 0, max_triples: int = WEIGHT_CHOICE_TRIPLES,
                         grid: Sequence[float] = WEIGHT_GRID) -> tuple[float, dict[float, float]]:
    """The grid weight whose combined scores rank ``split`` best (filtered MRR; the smaller weight on
    a tie) and every weight's MRR. Each model scores each distinct query once; the weights then rank
    the same pairs of scores. ``split`` holds at most ``max_triples`` seeded triples."""
    from reasoning_stage.config import eval_batch_size
    from reasoning_stage.evaluation import rank_triples, ranked_queries
    from reasoning_stage.models import graph_plans

    graph, triples, known = ranked_queries(tables, [split], max_triples)
    graph = graph.to(device)
    pairs: list[tuple[torch.Tensor, torch.Tensor]] = []
    was_training = reasoner.training
    reasoner.eval()
    with torch.inference_mode():
        plans = graph_plans(graph, reasoner.config.relation_links)
        features = reasoner.entity_features(graph, task)

        def score_both(queries: torch.Tensor) -> torch.Tensor:
            queries = queries.to(device)
            pairs.append((reasoner(graph, queries, task=task, features=features, **plans),
                          embedding_scores(embedding, graph, queries)))
            return pairs[-1][0]

        batch_size = eval_batch_size(graph.num_entities, plans["rel_graph"].edge_pair.numel())
        mrr = {0.0: rank_triples(score_both, triples, known, batch_size).metrics()["mrr"]}
        for weight in (float(w) for w in grid if w):
            stored = iter(pairs)   # rank_triples asks for the batches in the same order every time

            def combined(_: torch.Tensor) -> torch.Tensor:
                own, other = next(stored)
                return own + weight * other

            mrr[weight] = rank_triples(combined, triples, known, batch_size).metrics()["mrr"]
    reasoner.train(was_training)
    best = max(mrr.values())
    return min(w for w, value in mrr.items() if value == best), mrr


def embedding_ranks(embedding: GraphEmbedding, tables, splits: Sequence[str], max_triples: int | None = None,
                    seed: int = 0):
    """Filtered ranks of the embedding alone on the queries :func:`~reasoning_stage.evaluation.evaluate_graph`
    ranks: the trained baseline beside the reasoner's figures."""
    from reasoning_stage.evaluation import rank_triples, ranked_queries

    graph, triples, known = ranked_queries(tables, list(splits), max_triples, seed)
    device = embedding.entity.device
    graph = graph.to(device)
    with torch.inference_mode():
        return rank_triples(lambda q: embedding_scores(embedding, graph, q.to(device)), triples, known,
                            batch_size=256)
