"""TOFU's reasoner: tokens -> fused entity features -> query-conditioned message passing -> scores.

Nothing here depends on the ids of a particular graph: entities and
relations enter only through their tokens (codes of frozen, shared
codebooks) and their place in the graph. A task id (link prediction,
alignment, linking) conditions the modality gate and the message gates.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import nn
from torch_scatter import scatter_add

from reasoning_stage.config import LEADING_MESSAGE_SHARE, MODALITIES, ModelConfig, RelationLinks
from reasoning_stage.evidence import EVIDENCE_CHANNELS
from reasoning_stage.graph_data import GraphTensors, TokenTensor
from reasoning_stage.layers import (EdgePlan, MixtureOfMessageConv, RelationEncoder, column_runs, edge_plan,
                                    inplace_allowed, reach_step, relation_graph)
from reasoning_stage.routing import GatedMixtureOfExperts, Route, TaskRouter

def initial_evidence_weight(num_tasks: int) -> torch.Tensor:
    """Raw (pre-softplus) evidence weights before any fit: the model's score as it is (weight 1) and each
    identity channel at 10, the scale of the model's cosine, so an unfitted channel counts as much."""
    raw = torch.full((num_tasks, len(EVIDENCE_CHANNELS)), math.log(math.expm1(10.0)))
    raw[:, 0] = math.log(math.expm1(1.0))
    return raw


# Raw weight of a channel a checkpoint predates: softplus(-30) ~ 1e-13, so its scores stay as they were.
CHANNEL_OFF = -30.0


def with_current_evidence(state: dict[str, torch.Tensor], model: "TofuModel") -> dict[str, torch.Tensor]:
    """``state`` with an ``evidence_weight`` of today's channels: a checkpoint from before the identity
    channels gets the model's initial weights; one from before later channels gets them switched off."""
    state = dict(state)
    current = model.evidence_weight.detach()
    stored = state.get("evidence_weight")
    if stored is None:
        state["evidence_weight"] = current.clone()
    elif stored.shape[0] == current.shape[0] and stored.shape[1] < current.shape[1]:
        padding = stored.new_full((stored.shape[0], current.shape[1] - stored.shape[1]), CHANNEL_OFF)
        state["evidence_weight"] = torch.cat([stored, padding], 1)
    return state


def evidence_weights(model: "TofuModel") -> list[list[tuple[str, float]]]:
    """Per task, ``(channel, weight)`` of every evidence channel as the model weighs them (after softplus)."""
    weights = nn.functional.softplus(model.evidence_weight.detach()).cpu().tolist()
    return [list(zip(EVIDENCE_CHANNELS, row)) for row in weights]


def with_content_match(model: "TofuModel") -> "TofuModel":
    """``model`` with the content-match term added at zero, so its scores are unchanged until it trains.

    Raises:
        ValueError: for a structure-only model (no content features to match).
    """
    if model.config.content_match:
        return model
    if not model.config.modalities:
        raise ValueError("a structure-only model has no content features to match")
    grown = TofuModel(replace(model.config, content_match=True))
    missing, unexpected = grown.load_state_dict(model.state_dict(), strict=False)
    if unexpected or any(not key.startswith("content_relation.") for key in missing):
        raise RuntimeError(f"unexpected state when adding the content match: {unexpected + missing}")
    return grown.to(next(model.parameters()).device).train(model.training)


def relation_groups(relations: torch.Tensor, max_share: float = 0.5) -> list[tuple[int, int]] | None:
    """Runs ``[(lo, hi), ...]`` of equal consecutive query relations when there are at most
    ``max_share`` as many runs as queries (evaluation batches queries by relation), else ``None``.
    Relation vectors, gates and message terms depend on the query relation only, so the model
    then computes them once per run instead of once per query."""
    if relations.numel() < 2:
        return None
    values, counts = torch.unique_consecutive(relations, return_counts=True)
    if len(values) > max_share * relations.numel():
        return None
    bounds = [0, *torch.cumsum(counts, 0).tolist()]
    return list(zip(bounds[:-1], bounds[1:]))


@dataclass
class QueryBatch:
    """Queries ``[B, 2]`` (head, relation id) and the runs ``[(lo, hi), ...]`` of equal relations
    they stand in (see :func:`relation_groups`), or ``None`` where they are scored one by one."""
    queries: torch.Tensor
    runs: list[tuple[int, int]] | None

    @classmethod
    def as_given(cls, queries: torch.Tensor) -> "QueryBatch":
        """The queries in their order, with the runs they already stand in."""
        return cls(queries, relation_groups(queries[:, 1]))

    @classmethod
    def in_runs(cls, queries: torch.Tensor) -> tuple["QueryBatch", torch.Tensor | None]:
        """The queries ordered into runs of one relation when they hold few relations, and the
        order taken: indices into ``queries``, or ``None`` where they keep their own order."""
        batch = cls.as_given(queries)
        if batch.runs is not None or len(queries) < 2:
            return batch, None
        order = torch.argsort(queries[:, 1], stable=True)
        arranged = cls.as_given(queries[order])
        return (arranged, order) if arranged.runs is not None else (batch, None)


def graph_relation_graph(graph: GraphTensors, links: RelationLinks = RelationLinks()) -> EdgePlan:
    """The relation graph of ``graph`` (both directions of each relation) with the link types ``links``."""
    return relation_graph(graph.edge_index, graph.edge_type, 2 * graph.num_relations, graph.num_entities,
                          link_strengths=links.strengths, pair_links=links.pairs)


def graph_plans(graph: GraphTensors, links: RelationLinks = RelationLinks()) -> dict[str, EdgePlan]:
    """Per-graph layouts :meth:`TofuModel.forward` reuses across batches of queries; pass the
    model's ``config.relation_links`` (its relation layers refuse a relation graph of other link types)."""
    return {"rel_graph": graph_relation_graph(graph, links),
            "plan": edge_plan(graph.edge_index, graph.edge_type, graph.num_entities, 2 * graph.num_relations)}


class TokenPooling(nn.Module):
    """Tokens of one modality -> one vector per owner, weighing tokens by content and count.

    ``alpha_i = softmax_i(a . e_{c_i} + log n_i)`` over the owner's tokens;
    owners without tokens get a zero vector and ``present = False``.
    """

    def __init__(self, vocabulary: int, dim: int):
        super().__init__()
        self.embedding = nn.Embedding(vocabulary + 1, dim, padding_idx=0)  # 0 = no token
        self.attention = nn.Linear(dim, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.embedding.weight, std=0.1)
        with torch.no_grad():
            self.embedding.weight[0].zero_()
        self.attention.reset_parameters()

    def forward(self, tokens: TokenTensor) -> tuple[torch.Tensor, torch.Tensor]:
        present = tokens.codes >= 0
        emb = self.embedding(tokens.codes.clamp(min=-1) + 1)                  # [n, k, d]
        logits = self.attention(emb).squeeze(-1) + torch.log(tokens.weights.clamp(min=1e-6))
        logits = logits.masked_fill(~present, float("-inf"))
        has_any = present.any(dim=1)
        alpha = torch.softmax(logits.masked_fill(~has_any.unsqueeze(1), 0.0), dim=1) * present
        return (alpha.unsqueeze(-1) * emb).sum(dim=1), has_any


class HierarchicalFusion(nn.Module):
    """Per-modality pooled vectors -> one entity vector, weighed per entity and per task.

    A modality's weight for an entity is ``softmax_m(score(v_m) + route.modality_bias[m])``
    over the modalities the entity has: its content decides, the task's route tilts.
    """

    def __init__(self, modalities: tuple[str, ...], sizes: dict[str, int], dim: int):
        super().__init__()
        self.modalities = modalities
        self.dim = dim
        self.pool = nn.ModuleDict({m: TokenPooling(sizes[m], dim) for m in modalities})
        self.score = nn.Linear(dim, 1)
        self.out = nn.Linear(dim, dim)

    def forward(self, tokens: dict[str, TokenTensor], num_owners: int, route: Route) -> tuple[torch.Tensor, torch.Tensor]:
        """``(features [n, dim], modality weights [n, M])``; rows without any token are zero."""
        device = route.task_vector.device
        pooled, logits = [], []
        for i, modality in enumerate(self.modalities):
            if modality in tokens:
                vec, present = self.pool[modality](tokens[modality])
            else:  # the graph has no tokens of this modality: a missing modality, not an error
                vec = torch.zeros(num_owners, self.dim, device=device)
                present = torch.zeros(num_owners, dtype=torch.bool, device=device)
            pooled.append(vec)
            logit = self.score(vec).squeeze(-1) + route.modality_bias[i]
            logits.append(logit.masked_fill(~present, float("-inf")))
        logits = torch.stack(logits, dim=1)
        any_present = torch.isfinite(logits).any(dim=1, keepdim=True)
        weights = torch.softmax(logits.masked_fill(~any_present, 0.0), dim=1) * any_present
        weights = torch.nan_to_num(weights)
        fused = (weights.unsqueeze(-1) * torch.stack(pooled, dim=1)).sum(dim=1)
        return self.out(fused) * any_present, weights


@dataclass
class EntityFeatures:
    """Task-conditioned content features of a graph's entities (router -> fusion -> experts)."""
    values: torch.Tensor             # [n, dim]
    modality_weights: torch.Tensor   # [n, M]
    expert_weights: torch.Tensor     # [n, E]
    balance_loss: torch.Tensor       # scalar


class TofuModel(nn.Module):
    """Answers ``(head, relation, ?)`` for a batch of queries over one graph, scoring every entity.

    Args:
        config: sizes, message functions, modalities and token vocabularies.

    Shapes:
        queries ``[B, 2]`` (head id, relation id in 0..2R-1) -> scores ``[B, num_entities]``.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        missing = [m for m in config.modalities if m not in config.codebook_sizes]
        if missing:
            raise ValueError(f"no codebook size for modalities {missing}")
        self.config = config
        d = config.dim
        # The relation model; the attribute's name is its weights' key prefix in checkpoints.
        self.relation_layers = RelationEncoder(d, config.relation_layers, config.relation_links)
        self.entity_layers = nn.ModuleList(MixtureOfMessageConv(d, config.messages)
                                           for _ in range(config.entity_layers))
        self.task_embedding = nn.Embedding(config.num_tasks, d)
        self.message_gates = nn.Linear(2 * d, config.entity_layers * len(config.messages))
        self.reset_message_gates()
        if config.modalities:
            self.router = TaskRouter(config.num_tasks, d, len(config.modalities), config.num_experts)
            self.fusion = HierarchicalFusion(config.modalities, config.codebook_sizes, d)
            self.experts = GatedMixtureOfExperts(d, config.num_experts, config.expert_top_k)
            self.feature_gate = nn.Linear(d, d)
        else:
            self.router = self.fusion = self.experts = None
        if config.relation_text_codebook_size:
            self.relation_text = TokenPooling(config.relation_text_codebook_size, d)
            self.inverse_marker = nn.Parameter(torch.zeros(d))
        else:
            self.relation_text = None
        self.score = nn.Sequential(nn.Linear(2 * d, 2 * d), nn.ReLU(), nn.Linear(2 * d, 1))
        if config.content_match and config.modalities:
            # Zero at the start, so that adding it to a trained model leaves its scores as they were.
            self.content_relation = nn.Linear(d, d)
            nn.init.zeros_(self.content_relation.weight)
            nn.init.zeros_(self.content_relation.bias)
        else:
            self.content_relation = None
        # Entity embeddings for alignment and linking: graph-own message passing + content features.
        self.node_init = nn.Parameter(torch.zeros(d))
        self.embedding_head = nn.Sequential(nn.Linear(2 * d, d), nn.ReLU(), nn.Linear(d, d))
        self.match_log_scale = nn.Parameter(torch.tensor(math.log(10.0)))
        # Per task and modality: how much shared tokens count (softplus; starts at 1).
        self.overlap_weight = nn.Parameter(torch.full((config.num_tasks, len(MODALITIES)), math.log(math.e - 1)))
        # Per task: how much each identity channel counts against the model's own score (softplus).
        self.evidence_weight = nn.Parameter(initial_evidence_weight(config.num_tasks))

    def reset_message_gates(self) -> None:
        """Gate logits whose softmax gives the first listed function :data:`LEADING_MESSAGE_SHARE` of
        every layer's mixture (the rest share the remainder evenly) before the query moves them."""
        self.message_gates.reset_parameters()
        count = len(self.config.messages)
        if count == 1:
            return
        lead = math.log(LEADING_MESSAGE_SHARE * (count - 1) / (1 - LEADING_MESSAGE_SHARE))
        with torch.no_grad():
            self.message_gates.bias.zero_()
            self.message_gates.bias.view(self.config.entity_layers, count)[:, 0] = lead

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ---------------------------------------------------------------- pieces

    def relation_graph(self, graph: GraphTensors) -> EdgePlan:
        """The relation graph of ``graph`` with the link types this model's relation layers read."""
        return graph_relation_graph(graph, self.config.relation_links)

    def relation_vectors(self, graph: GraphTensors, query_relations: torch.Tensor,
                         rel_graph: EdgePlan) -> torch.Tensor:
        """Query-conditioned vectors of all 2R relations: ``[2R, B, dim]``.

        They depend on the query relation only, so they are computed once per
        distinct relation in the batch and shared by its queries.
        """
        unique, inverse = torch.unique(query_relations, return_inverse=True)
        return self._relation_vectors(graph, unique, rel_graph).index_select(1, inverse)

    def _relation_vectors(self, graph: GraphTensors, query_relations: torch.Tensor,
                          rel_graph: EdgePlan) -> torch.Tensor:
        batch = query_relations.numel()
        device = query_relations.device
        asked = torch.zeros(2 * graph.num_relations, batch, self.config.dim, device=device)
        asked[query_relations, torch.arange(batch, device=device)] = 1.0
        return self.relation_layers(asked, rel_graph, self.relation_text_vectors(graph))

    def relation_text_vectors(self, graph: GraphTensors) -> torch.Tensor | None:
        """Pooled text tokens of all 2R relation ids ``[2R, dim]`` (an inverse id: its relation's
        plus the inverse marker); ``None`` for a model or a graph without relation text."""
        if self.relation_text is None or "text" not in graph.relation_tokens:
            return None
        text, present = self.relation_text(graph.relation_tokens["text"])
        return torch.cat([text, text + self.inverse_marker * present.unsqueeze(-1)])

    def entity_features(self, graph: GraphTensors, task: int) -> EntityFeatures | None:
        """Router -> hierarchical fusion -> gated experts; ``None`` for a structure-only model."""
        if self.fusion is None:
            return None
        route = self.router(task)
        fused, modality_weights = self.fusion(graph.entity_tokens, graph.num_entities, route)
        refined = self.experts(fused, route.expert_bias)
        return EntityFeatures(refined.values, modality_weights, refined.weights, refined.balance_loss)

    def gates(self, query: torch.Tensor, task: int) -> torch.Tensor:
        """Message-function gates per layer: ``[layers, B, M]`` (softmax over functions)."""
        task_vec = self.task_embedding(torch.tensor(task, device=query.device)).expand_as(query)
        logits = self.message_gates(torch.cat([query, task_vec], dim=-1))
        logits = logits.view(query.shape[0], self.config.entity_layers, len(self.config.messages))
        return torch.softmax(logits, dim=-1).transpose(0, 1)

    # ---------------------------------------------------------------- forward

    def forward(self, graph: GraphTensors, queries: torch.Tensor | QueryBatch, task: int = 0,
                rel_graph: EdgePlan | None = None, features: EntityFeatures | None = None,
                plan: EdgePlan | None = None, reach: bool = True) -> torch.Tensor:
        """Scores ``[B, V]`` of every entity for each query, in the order of ``queries``.

        A :class:`QueryBatch` is scored by its runs as it stands. A tensor whose few relations are
        out of order (a shuffled batch) is scored arranged into runs. ``rel_graph``, ``features`` and
        ``plan`` are per-graph precomputations that callers scoring many batches pass in once.
        ``reach=False`` keeps batches whose relations come in runs off the (exact) reach path."""
        if isinstance(queries, QueryBatch):
            return self.score_batch(graph, queries, task, rel_graph, features, plan, reach)
        batch, order = QueryBatch.in_runs(queries)
        scores = self.score_batch(graph, batch, task, rel_graph, features, plan, reach)
        return scores if order is None else scores.index_select(0, torch.argsort(order))

    def score_batch(self, graph: GraphTensors, batch: QueryBatch, task: int = 0, rel_graph: EdgePlan | None = None,
                    features: EntityFeatures | None = None, plan: EdgePlan | None = None,
                    reach: bool = True) -> torch.Tensor:
        """Scores ``[B, V]`` of the batch's queries in its order; see :meth:`forward`."""
        queries, groups = batch.queries, batch.runs
        heads, relations = queries[:, 0], queries[:, 1]
        if rel_graph is None:
            rel_graph = self.relation_graph(graph)
        if plan is None:
            plan = edge_plan(graph.edge_index, graph.edge_type, graph.num_entities, 2 * graph.num_relations)
        batch_size = queries.shape[0]
        arange = torch.arange(batch_size, device=queries.device)
        use_reach = reach and groups is not None and plan.out_indptr is not None and len(self.entity_layers) > 0
        if groups is None:
            rel = self.relation_vectors(graph, relations, rel_graph)             # [2R, B, d]
            query = rel[relations, arange]                                       # [B, d]
            gate_query = query
        else:  # one column per run of queries of one relation: [2R, G, d]
            starts = torch.tensor([lo for lo, _ in groups], device=queries.device)
            rel = self.relation_vectors(graph, relations[starts], rel_graph)   # once per distinct relation
            gate_query = rel[relations[starts], torch.arange(len(groups), device=queries.device)]   # [G, d]
            counts = torch.tensor([hi - lo for lo, hi in groups], device=queries.device)
            query = gate_query.repeat_interleave(counts, dim=0)                  # [B, d]
        if self.fusion is not None and features is None:
            features = self.entity_features(graph, task)
        gates = self.gates(gate_query, task)
        if use_reach:
            scores = self._forward_by_reach(graph, plan, heads, query, gate_query, rel, gates, groups,
                                            features if self.fusion is not None else None)
        else:
            boundary = torch.zeros(graph.num_entities, batch_size, self.config.dim, device=queries.device)
            boundary[heads, arange] = query
            if self.fusion is not None:
                # Entity content enters every node's state, gated by what the query asks about.
                boundary = boundary + features.values.unsqueeze(1) * torch.sigmoid(self.feature_gate(query)).unsqueeze(0)
            scores = self.dense_layers(boundary, boundary, plan, rel, gates, groups, query, self.fusion is None)
        if self.content_relation is None:
            return scores
        return scores + self.content_scores(features, heads, query)

    def content_scores(self, features: EntityFeatures, heads: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """``[B, V]``: ``c <f_head * (W q + b), f_v>`` over unit-length content features: a DistMult of
        the head's content with each candidate's under the query relation."""
        unit = nn.functional.normalize(features.values, dim=-1)
        relation = self.CONTENT_SCALE * self.content_relation(query)
        return (unit.index_select(0, heads) * relation) @ unit.T

    # The term starts at zero and Adam moves each weight by about the learning rate per step: the
    # constant lets it reach the GNN scores' range (several units) within a short training stage.
    CONTENT_SCALE = 16.0

    def dense_layers(self, x: torch.Tensor, boundary: torch.Tensor, plan: EdgePlan, rel: torch.Tensor,
                     gates: torch.Tensor, groups: list[tuple[int, int]] | None, query: torch.Tensor,
                     zero_start: bool, first_depth: int = 0) -> torch.Tensor:
        """Entity layers ``first_depth..`` over the full ``[V, B, d]`` state, then the scores ``[B, V]``.
        ``zero_start``: the first layer's input is zero but at the heads (no entity features)."""
        for depth in range(first_depth, len(self.entity_layers)):
            x = self.entity_layers[depth](x, plan, rel, gates[depth], boundary, groups,
                                          skip_zero_rows=zero_start and depth == 0)
        return self.score_entities(x, query)

    # Share of the batch's [V, B] rows past which the reach path hands over to dense layers:
    # a sparse row costs several times a dense one (gathers, the sorted union).
    REACH_DENSE_SHARE = 0.3

    def _forward_by_reach(self, graph: GraphTensors, plan: EdgePlan, heads: torch.Tensor, query: torch.Tensor,
                          gate_query: torch.Tensor, rel: torch.Tensor, gates: torch.Tensor,
                          groups: list[tuple[int, int]], features: EntityFeatures | None) -> torch.Tensor:
        """Exact scores for batches of few relation runs (autograd-safe), cheap where neighbourhoods are small.

        After k layers, a node more than k hops from a query's head has the state it would
        have with no head at all: the *generic* state of the query's relation run, the same
        for every query of the run. So the layers run densely on one column per run
        (``[V, G, d]``) and, per query, only on the rows within reach, kept as deltas from
        the generic state and grown one hop per layer (:func:`reach_step`). On WN18RR_v1_ind
        six hops reach 9% of the graph on average. When the rows pass
        :attr:`REACH_DENSE_SHARE` of the batch, the state is expanded and the dense layers
        finish.
        """
        num_nodes, batch, d = graph.num_entities, heads.numel(), self.config.dim
        device = heads.device
        column_group = column_runs(groups, device)   # [B]
        if features is None:
            generic_boundary = torch.zeros(num_nodes, len(groups), d, device=device)
        else:
            generic_boundary = features.values.unsqueeze(1) * torch.sigmoid(self.feature_gate(gate_query)).unsqueeze(0)
        generic = generic_boundary
        # x_0 = boundary: it differs from the generic one by the query vector at the head.
        node, column, delta = heads, torch.arange(batch, device=device), query
        head_position = torch.arange(batch, device=device)
        rows = None
        max_rows = int(self.REACH_DENSE_SHARE * num_nodes * batch)
        for depth, (layer, layer_gates) in enumerate(zip(self.entity_layers, gates)):
            step = reach_step(plan, node, column, batch, max_rows=max_rows)
            if step is None:
                x = generic.index_select(1, column_group)
                x.view(-1, d).index_add_(0, node * batch + column, delta)
                boundary = generic_boundary.index_select(1, column_group)
                boundary[heads, torch.arange(batch, device=device)] += query
                return self.dense_layers(x, boundary, plan, rel, gates, groups, query, features is None, depth)
            terms = layer.relation_terms(rel, layer_gates)
            generic_aggregated = layer.aggregate(generic, plan, terms, generic_boundary)
            generic_next = layer.update(generic, generic_aggregated, skip_zero_rows=features is None and depth == 0)
            # Rows of the new set: their generic values, plus what reaches them from the old set.
            flat = step.node * len(groups) + column_group.index_select(0, step.column)
            messages = layer.message_deltas(delta.index_select(0, step.edge_row), step.edge_type,
                                            column_group.index_select(0, column.index_select(0, step.edge_row)), terms)
            aggregated = scatter_add(messages, step.message_position, dim=0,
                                     out=generic_aggregated.view(-1, d).index_select(0, flat))
            head_position = step.old_position.index_select(0, head_position)
            aggregated.index_add_(0, head_position, query)          # the boundary's difference
            previous = generic.view(-1, d).index_select(0, flat).index_add_(0, step.old_position, delta)
            rows = layer.update(previous, aggregated)
            delta = rows - generic_next.view(-1, d).index_select(0, flat)
            node, column, generic = step.node, step.column, generic_next
        scores = self.score_entities(generic, gate_query).index_select(0, column_group)      # [B, V]
        first, rest = self.score[0], self.score[1:]
        scores[column, node] = rest(first(torch.cat([rows, query.index_select(0, column)], -1))).squeeze(-1)
        return scores

    def score_entities(self, x: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """MLP over ``[x_v ; q]``; the query half of the first layer is computed once per query."""
        first, rest = self.score[0], self.score[1:]
        d = x.shape[-1]
        hidden = x @ first.weight[:, :d].T
        query_part = (query @ first.weight[:, d:].T + first.bias).unsqueeze(0)
        if not inplace_allowed():
            return rest(hidden + query_part).squeeze(-1).T                         # [B, V]
        last = rest[-1]  # add and ReLU in place: no second [V, B, 2d] tensor
        return torch.addmm(last.bias, hidden.add_(query_part).relu_().view(-1, 2 * d),
                           last.weight.T).view(x.shape[0], x.shape[1]).T

    # ------------------------------------------------- alignment and linking

    def embed_entities(self, graph: GraphTensors, task: int, features: EntityFeatures | None = None,
                       rel_graph: EdgePlan | None = None, plan: EdgePlan | None = None) -> torch.Tensor:
        """One task-conditioned vector per entity, ``[N, dim]``, from the graph's own message passing.

        No query: every relation id is asked at once in the relation graph, the
        query vector is the mean relation vector, and each node starts from its
        content features. A graph without edges (a linking knowledge base, a set
        of mentions) gets embeddings from content alone through the same path.
        """
        device = self.node_init.device
        if features is None:
            features = self.entity_features(graph, task)
        num_ids = 2 * graph.num_relations
        if num_ids and graph.num_edges:
            if rel_graph is None:
                rel_graph = self.relation_graph(graph)
            if plan is None:
                plan = edge_plan(graph.edge_index, graph.edge_type, graph.num_entities, num_ids)
            asked = torch.ones(num_ids, 1, self.config.dim, device=device)
            rel = self.relation_layers(asked, rel_graph, self.relation_text_vectors(graph))
            query = rel.mean(dim=0)                                                   # [1, d]
        else:
            rel, query = None, torch.zeros(1, self.config.dim, device=device)
        content = features.values if features is not None else torch.zeros(graph.num_entities, self.config.dim,
                                                                             device=device)
        x = (self.node_init + content * torch.sigmoid(self.feature_gate(query)) if features is not None
             else self.node_init.expand_as(content)).unsqueeze(1)                     # [N, 1, d]
        if rel is not None:
            boundary = x
            for layer, layer_gates in zip(self.entity_layers, self.gates(query, task)):
                x = layer(x, plan, rel, layer_gates, boundary)
        return self.embedding_head(torch.cat([x[:, 0], content], dim=-1))

    def channel_in_use(self, task: int, channel: str) -> bool:
        """Whether ``channel`` weighs anything for ``task`` (a switched-off one, CHANNEL_OFF, weighs about
        1e-13 and need not be computed)."""
        return dict(evidence_weights(self)[task])[channel] > 1e-6

    def combine_evidence(self, scores: torch.Tensor, channels: torch.Tensor, task: int) -> torch.Tensor:
        """``[A, B]`` model scores plus the identity channels ``[A, B, C]`` (names, descriptions, anchors;
        :data:`reasoning_stage.evidence.EVIDENCE_CHANNELS` after ``model``), weighed for ``task``."""
        weights = nn.functional.softplus(self.evidence_weight[task])
        return weights[0] * scores + channels @ weights[1:]

    def match_scores(self, z_a: torch.Tensor, z_b: torch.Tensor, bags_a: dict[str, torch.Tensor],
                     bags_b: dict[str, torch.Tensor], task: int) -> torch.Tensor:
        """``[A, B]`` scores of every pair: scaled cosine of embeddings plus weighted token overlap.

        ``bags_*`` are L2-normalised token-count vectors per modality (see
        :func:`reasoning_stage.matching.token_bags`); codes of the shared frozen
        codebooks mean the same thing in both, so their cosine is an id-free overlap.
        """
        scores = self.match_log_scale.exp() * (nn.functional.normalize(z_a, dim=-1)
                                               @ nn.functional.normalize(z_b, dim=-1).T)
        weights = nn.functional.softplus(self.overlap_weight[task])
        for i, modality in enumerate(MODALITIES):
            if modality in self.config.modalities and modality in bags_a and modality in bags_b:
                scores = scores + weights[i] * (bags_a[modality] @ bags_b[modality].T)
        return scores
