"""Entity alignment and entity linking: ranking one set of owners against another.

Both tasks are the same computation on different inputs:

- **alignment**: the entities of graph 1 (each graph embedded by its own
  message passing) against every entity of graph 2;
- **linking**: mentions (an edgeless graph of their tokens) against every
  entity of the knowledge base.

Scores come from :meth:`TofuModel.match_scores` (task-conditioned embeddings
plus token overlap). Ranks count ties against the answer, as for link
prediction: ``rank = 1 + #{other candidates scoring >= the answer}``.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from artifacts.task_tables import AlignmentArtifact, LinkingArtifact
from artifacts.token_tables import MODALITIES
from reasoning_stage.evaluation import Ranks, rank_of_targets
from reasoning_stage.graph_data import GraphTensors, TokenTensor, token_owners, whole_graph
from reasoning_stage.layers import EdgePlan
from reasoning_stage.models import TASKS, TofuModel, graph_plans

ALIGNMENT, LINKING = TASKS.index("alignment"), TASKS.index("linking")


def token_bags(tokens: dict[str, TokenTensor], num_owners: int, sizes: dict[str, int]) -> dict[str, torch.Tensor]:
    """Per modality, each owner's token counts as an L2-normalised ``[n, vocabulary]`` vector."""
    bags = {}
    for modality, tensor in tokens.items():
        if modality not in sizes:
            continue
        bag = torch.zeros(num_owners, sizes[modality] + 1, device=tensor.codes.device)
        bag.scatter_add_(1, tensor.codes.clamp(min=-1) + 1, tensor.weights)
        bags[modality] = F.normalize(bag[:, 1:], dim=1)   # column 0 collected the padding
    return bags


@dataclass
class Side:
    """One side of a matching problem: owners with their graph, plans and token bags."""
    graph: GraphTensors
    bags: dict[str, torch.Tensor]
    plans: dict[str, EdgePlan]

    @property
    def size(self) -> int:
        return self.graph.num_entities


def make_side(graph: GraphTensors, model: TofuModel, device: torch.device) -> Side:
    graph = graph.to(device)
    plans = graph_plans(graph) if graph.num_edges else {}
    sizes = {m: s for m, s in model.config.codebook_sizes.items() if m in MODALITIES}
    return Side(graph, token_bags(graph.entity_tokens, graph.num_entities, sizes), plans)


def alignment_sides(artifact: AlignmentArtifact, model: TofuModel, device: torch.device) -> tuple[Side, Side]:
    return tuple(make_side(whole_graph(t), model, device) for t in artifact.graphs)  # type: ignore[return-value]


def linking_sides(artifact: LinkingArtifact, model: TofuModel, device: torch.device) -> tuple[Side, Side]:
    count = artifact.mentions.num_rows
    tokens = {m: artifact.tokens(m) for m in MODALITIES}
    mentions = token_owners(f"{artifact.name}:mentions", count, tokens, artifact.codebook_id)
    return make_side(mentions, model, device), make_side(whole_graph(artifact.kb), model, device)


def embed(model: TofuModel, side: Side, task: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(embeddings [n, d], experts' balance loss)`` of every owner of a side."""
    features = model.entity_features(side.graph, task)
    z = model.embed_entities(side.graph, task, features=features, **side.plans)
    balance = features.balance_loss if features is not None else z.new_tensor(0.0)
    return z, balance


def _rows(bags: dict[str, torch.Tensor], index: torch.Tensor) -> dict[str, torch.Tensor]:
    return {m: b.index_select(0, index) for m, b in bags.items()}


def rank_matches(model: TofuModel, source: Side, target: Side, pairs: np.ndarray, task: int,
                 route_task: int | None = None, batch_size: int = 512) -> Ranks:
    """Rank every ``target`` owner for each ``pairs[:, 0]`` source owner; ``pairs[:, 1]`` is the answer.

    ``route_task`` embeds with another task's route (``0`` = link prediction
    for everything: the "routing off" ablation); scores still use ``task``.
    """
    was_training = model.training
    model.eval()
    pairs = torch.as_tensor(pairs, dtype=torch.long)
    pessimistic = torch.zeros(len(pairs), dtype=torch.long)
    optimistic = torch.zeros(len(pairs), dtype=torch.long)
    embed_task = task if route_task is None else route_task
    with torch.inference_mode():
        z_source, _ = embed(model, source, embed_task)
        z_target, _ = embed(model, target, embed_task)
        nothing = torch.zeros(1, target.size, dtype=torch.bool, device=z_target.device)
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start:start + batch_size].to(z_source.device)
            scores = model.match_scores(z_source.index_select(0, chunk[:, 0]), z_target,
                                        _rows(source.bags, chunk[:, 0]), target.bags, task)
            p, o = rank_of_targets(scores, chunk[:, 1], nothing.expand(len(chunk), -1))
            pessimistic[start:start + len(chunk)], optimistic[start:start + len(chunk)] = p.cpu(), o.cpu()
    model.train(was_training)
    return Ranks(pessimistic.numpy(), optimistic.numpy(), np.full(len(pairs), "tail"))


def top_matches(model: TofuModel, source: Side, target: Side, rows: np.ndarray, task: int, k: int,
                batch_size: int = 512, route_task: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(indices [n, k], scores [n, k])`` of the best ``target`` owners for source owners ``rows``."""
    was_training = model.training
    model.eval()
    indices, values = [], []
    embed_task = task if route_task is None else route_task
    with torch.inference_mode():
        z_source, _ = embed(model, source, embed_task)
        z_target, _ = embed(model, target, embed_task)
        for start in range(0, len(rows), batch_size):
            index = torch.as_tensor(rows[start:start + batch_size], dtype=torch.long, device=z_source.device)
            scores = model.match_scores(z_source.index_select(0, index), z_target, _rows(source.bags, index),
                                        target.bags, task)
            top = torch.topk(scores, min(k, target.size), dim=1)
            indices.append(top.indices.cpu().numpy())
            values.append(top.values.cpu().numpy())
    model.train(was_training)
    if not indices:
        return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)
    return np.concatenate(indices), np.concatenate(values)


def matching_loss(model: TofuModel, source: Side, target: Side, pairs: torch.Tensor, task: int,
                  balance_weight: float = 0.01, symmetric: bool = True) -> torch.Tensor:
    """Cross-entropy of each gold pair against every candidate of the other side (InfoNCE).

    ``symmetric`` adds the reverse direction (alignment is symmetric; linking is not).
    """
    z_source, balance_s = embed(model, source, task)
    z_target, balance_t = embed(model, target, task)
    a, b = pairs[:, 0], pairs[:, 1]
    scores = model.match_scores(z_source.index_select(0, a), z_target, _rows(source.bags, a), target.bags, task)
    loss = F.cross_entropy(scores, b)
    if symmetric:
        reverse = model.match_scores(z_target.index_select(0, b), z_source, _rows(target.bags, b), source.bags, task)
        loss = 0.5 * (loss + F.cross_entropy(reverse, a))
    return loss + balance_weight * 0.5 * (balance_s + balance_t)


def relabelled(side: Side, permutation: torch.Tensor) -> Side:
    """The same owners numbered ``permutation[old] = new`` (for invariance tests)."""
    graph = side.graph
    inverse = torch.empty_like(permutation)
    inverse[permutation] = torch.arange(len(permutation), device=permutation.device)
    moved = replace(graph, edge_index=permutation[graph.edge_index],
                    entity_tokens={m: TokenTensor(t.codes[inverse], t.weights[inverse])
                                   for m, t in graph.entity_tokens.items()})
    plans = graph_plans(moved) if moved.num_edges else {}
    return Side(moved, {m: b[inverse] for m, b in side.bags.items()}, plans)
