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

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from artifacts.task_tables import AlignmentArtifact, LinkingArtifact
from artifacts.codebooks import Codebook
from artifacts.token_tables import DENSE_FIELDS, LEXICAL_FIELDS, MODALITIES, LexiconMismatch, TokenTables
from reasoning_stage.assignment import scaled_sinkhorn
from reasoning_stage.evaluation import Ranks, rank_of_targets
from reasoning_stage.graph_data import GraphTensors, TokenTensor, token_owners, whole_graph
from reasoning_stage.layers import EdgePlan
from reasoning_stage.evidence import (MatchingEvidence, TextEvidence, anchor_block, anchor_evidence, coverage_pairs,
                                      dense_matrix, lexical_matrix, lexical_pair, named_years, prominence)
from reasoning_stage.config import EVIDENCE_FIT_STEPS, TASKS, RelationLinks
from reasoning_stage.models import TofuModel, graph_plans

ALIGNMENT, LINKING = TASKS.index("alignment"), TASKS.index("linking")
# Source entities scored against all candidates at once: bounds the [sources, candidates] blocks in memory.
MATCH_SCORE_BATCH = 512
# Sinkhorn temperature of the "with assignment" ranking, in standard deviations of the score matrix:
# chosen on DBP15K zh_en train links with 10 iterations (70% anchors, the other 30% ranked against each
# other; Hits@1 0.9822 at 0.25 against 0.9748 / 0.9778 / 0.9756 / 0.9630 at 0.05 / 0.1 / 0.5 / 1.0), never
# on test links.
ASSIGNMENT_TEMPERATURE = 0.25
# Sinkhorn iterations of that ranking: with 100, temperature 0.25 is best or tied-best on all four
# held-out folds of DBP15K zh_en and DB15K <-> MKG-W train links (benchmarks/assignment_bench.py: 70%
# anchors, the rest halved, weights fitted on one fold and the other ranked; Hits@1 0.997 / 0.994 and
# 0.624 / 0.505, against 0.996 / 0.990 and 0.604 / 0.485 with 10), never on test links.
ASSIGNMENT_ITERATIONS = 100
# An alignment's assignment adds, as seed pairs, the pairs that are each other's best after it with an
# assignment probability above this, rebuilds the anchor channels through them and ranks once more.
# Chosen on held-out train links (benchmarks/assignment_bench.py, 70% and 30% anchors): 0.95 is the one
# threshold tried that loses on no fold of DB15K <-> MKG-W or DBP15K zh_en; 0.5 and 0.8 lose on some.
ASSIGNMENT_ANCHOR_CONFIDENCE = 0.95


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
    """One side of a matching problem: owners with their graph, plans, token bags and text identity."""
    graph: GraphTensors
    bags: dict[str, torch.Tensor]
    plans: dict[str, EdgePlan]
    text: TextEvidence = field(default_factory=TextEvidence)
    lexicon: dict[str, Any] | None = None

    @property
    def size(self) -> int:
        return self.graph.num_entities


def make_side(graph: GraphTensors, model: TofuModel, device: torch.device, text: TextEvidence | None = None,
              lexicon: dict[str, Any] | None = None) -> Side:
    graph = graph.to(device)
    plans = graph_plans(graph, model.config.relation_links) if graph.num_edges else {}
    sizes = {m: s for m, s in model.config.codebook_sizes.items() if m in MODALITIES}
    return Side(graph, token_bags(graph.entity_tokens, graph.num_entities, sizes), plans,
                (text or TextEvidence()).to(device), lexicon)


def text_evidence(owners: Any, count: int, decoder: Codebook | None, lexicon: dict[str, Any] | None,
                  descriptions: list[str | None] | None = None) -> TextEvidence:
    """A side's lexical matrices, decoded vectors and the years its ``descriptions`` name, from anything
    with ``lexical(field)`` and ``dense(field)`` (token tables, a linking artifact's mentions)."""
    vocabulary = int((lexicon or {}).get("vocab_size", 0))
    lexical, dense = {}, {}
    for field_name in LEXICAL_FIELDS:
        rows = owners.lexical(field_name)
        if len(rows[0]):
            size = max(vocabulary, int(rows[1].max()) + 1)
            lexical[field_name] = lexical_matrix(count, size, *rows)
    for field_name in DENSE_FIELDS:
        ids, codes = owners.dense(field_name)
        if len(ids) and decoder is not None:
            dense[field_name] = dense_matrix(count, ids, decoder.decode(codes))
    return TextEvidence(lexical, dense, named_years(descriptions) if descriptions is not None else None)


def tables_side(tables: TokenTables, model: TofuModel, device: torch.device) -> Side:
    descriptions = tables.tables["entities"]["description"].to_pylist()
    return make_side(whole_graph(tables), model, device,
                     text_evidence(tables, tables.num_entities, tables.dense_decoder, tables.lexicon, descriptions),
                     tables.lexicon)


def alignment_sides(artifact: AlignmentArtifact, model: TofuModel, device: torch.device) -> tuple[Side, Side]:
    return tuple(tables_side(t, model, device) for t in artifact.graphs)  # type: ignore[return-value]


def linking_sides(artifact: LinkingArtifact, model: TofuModel, device: torch.device) -> tuple[Side, Side]:
    count = artifact.mentions.num_rows
    tokens = {m: artifact.tokens(m) for m in MODALITIES}
    mentions = token_owners(f"{artifact.name}:mentions", count, tokens, artifact.codebook_id)
    contexts = [None] * count
    for index, context in zip(artifact.mentions["mention_index"].to_pylist(), artifact.mentions["context"].to_pylist()):
        contexts[index] = context
    text = text_evidence(artifact, count, artifact.kb.dense_decoder, artifact.lexicon, contexts)
    return make_side(mentions, model, device, text, artifact.lexicon), tables_side(artifact.kb, model, device)


def matching_evidence(source: Side, target: Side, seeds: np.ndarray | None = None,
                      far_anchors: bool = True) -> MatchingEvidence:
    """The evidence of one matching problem: lexical TF-IDF with the IDF of ``target`` (the candidates),
    decoded vectors, and, for alignment, anchor profiles through the seed links ``seeds`` ``[A, 2]``
    (the further hops too unless ``far_anchors`` is False)."""
    if source.lexicon and target.lexicon and source.lexicon != target.lexicon:
        raise LexiconMismatch(f"{source.graph.name} and {target.graph.name} hold subword ids of different "
                              "tokenizers; tokenize both with the same text encoder")
    lexical = {f: lexical_pair(source.text.lexical[f], target.text.lexical[f])
               for f in LEXICAL_FIELDS if f in source.text.lexical and f in target.text.lexical}
    dense = {f: (source.text.dense[f], target.text.dense[f])
             for f in DENSE_FIELDS if f in source.text.dense and f in target.text.dense}
    anchors = far = None
    if seeds is not None and len(seeds):
        anchors, far = anchor_evidence(source.graph.edge_index, source.size, target.graph.edge_index,
                                       target.size, seeds, source.graph.edge_index.device, far_anchors)
    years = None
    if source.text.years is not None and target.text.years is not None:
        years = (source.text.years, target.text.years)
    described = target.text.lexical.get("description")
    return MatchingEvidence(lexical, dense, anchors, coverage_pairs(source.text.lexical, target.text.lexical), years,
                            None if described is None else prominence(described), far,
                            seeds=None if seeds is None else np.asarray(seeds, dtype=np.int64).reshape(-1, 2))


def embed(model: TofuModel, side: Side, task: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(embeddings [n, d], experts' balance loss)`` of every owner of a side."""
    features = model.entity_features(side.graph, task)
    z = model.embed_entities(side.graph, task, features=features, **side.plans)
    balance = features.balance_loss if features is not None else z.new_tensor(0.0)
    return z, balance


def _rows(bags: dict[str, torch.Tensor], index: torch.Tensor) -> dict[str, torch.Tensor]:
    return {m: b.index_select(0, index) for m, b in bags.items()}


def pair_scores(model: TofuModel, z_source: torch.Tensor, z_target: torch.Tensor, source: Side, target: Side,
                rows: torch.Tensor, task: int, evidence: MatchingEvidence | None,
                columns: torch.Tensor | None = None) -> torch.Tensor:
    """``[len(rows), target.size]`` scores of source owners ``rows`` against every target owner, or
    ``[len(rows), len(columns)]`` against the target owners ``columns``."""
    bags = target.bags if columns is None else _rows(target.bags, columns)
    z = z_target if columns is None else z_target.index_select(0, columns)
    scores = model.match_scores(z_source.index_select(0, rows), z, _rows(source.bags, rows), bags, task)
    if evidence is None:
        return scores
    return model.combine_evidence(scores, evidence.channels(rows, target.size, columns), task)


def score_matrix(model: TofuModel, source: Side, target: Side, rows: np.ndarray, task: int,
                 evidence: MatchingEvidence | None = None, route_task: int | None = None,
                 batch_size: int = MATCH_SCORE_BATCH) -> torch.Tensor:
    """``[len(rows), target.size]`` scores, chunk by chunk (``route_task``: see :func:`rank_matches`)."""
    was_training = model.training
    model.eval()
    embed_task = task if route_task is None else route_task
    chunks = []
    with torch.inference_mode():
        z_source, _ = embed(model, source, embed_task)
        z_target, _ = embed(model, target, embed_task)
        for start in range(0, len(rows), batch_size):
            index = torch.as_tensor(rows[start:start + batch_size], dtype=torch.long, device=z_source.device)
            chunks.append(pair_scores(model, z_source, z_target, source, target, index, task, evidence))
    model.train(was_training)
    return torch.cat(chunks) if chunks else torch.zeros(0, target.size)


def rank_matches(model: TofuModel, source: Side, target: Side, pairs: np.ndarray, task: int,
                 route_task: int | None = None, batch_size: int = MATCH_SCORE_BATCH, evidence: MatchingEvidence | None = None,
                 candidates: np.ndarray | None = None, assignment: bool = False) -> Ranks:
    """Rank every ``target`` owner for each ``pairs[:, 0]`` source owner; ``pairs[:, 1]`` is the answer.

    ``route_task`` embeds with another task's route (``0`` = link prediction
    for everything: the "routing off" ablation); scores still use ``task``.
    ``candidates`` limits the targets ranked (e.g. the test counterparts, as
    alignment papers rank); ``assignment`` ranks after a Sinkhorn normalisation
    of the whole score matrix, which favours a one-to-one matching.
    """
    pairs = torch.as_tensor(pairs, dtype=torch.long)
    excluded = torch.zeros(1, target.size, dtype=torch.bool)
    if candidates is not None:
        excluded[:] = True
        excluded[0, torch.as_tensor(candidates, dtype=torch.long)] = False
    if assignment:
        keep = (~excluded[0]).nonzero().squeeze(1)
        normalised = assigned_scores(model, source, target, pairs[:, 0].numpy(), keep, task, evidence, route_task,
                                     batch_size)
        p, o = rank_of_targets(normalised, pairs[:, 1].to(normalised.device),
                               excluded.to(normalised.device).expand(len(pairs), -1))
        return Ranks(p.cpu().numpy(), o.cpu().numpy(), np.full(len(pairs), "tail"))
    pessimistic = torch.zeros(len(pairs), dtype=torch.long)
    optimistic = torch.zeros(len(pairs), dtype=torch.long)
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        scores = score_matrix(model, source, target, chunk[:, 0].numpy(), task, evidence, route_task, batch_size)
        p, o = rank_of_targets(scores, chunk[:, 1].to(scores.device),
                               excluded.to(scores.device).expand(len(chunk), -1))
        pessimistic[start:start + len(chunk)], optimistic[start:start + len(chunk)] = p.cpu(), o.cpu()
    return Ranks(pessimistic.numpy(), optimistic.numpy(), np.full(len(pairs), "tail"))


def assigned_scores(model: TofuModel, source: Side, target: Side, rows: np.ndarray, columns: torch.Tensor, task: int,
                    evidence: MatchingEvidence | None = None, route_task: int | None = None, batch_size: int = MATCH_SCORE_BATCH,
                    confidence: float | None = ASSIGNMENT_ANCHOR_CONFIDENCE) -> torch.Tensor:
    """``[len(rows), target.size]`` log-assignment scores of source owners ``rows`` over the target owners
    ``columns`` (-inf elsewhere): :func:`scaled_sinkhorn` of the score matrix.

    With seed links in ``evidence`` (alignment) and a ``confidence``, the pairs that are each other's best
    after the assignment with a probability above it join the seeds (:func:`assignment_anchors`), and the
    scores are computed and assigned once more through the anchors they add. ``None``: one assignment.
    """
    columns = columns.to(torch.long)

    def assign(current: MatchingEvidence | None) -> torch.Tensor:
        scores = score_matrix(model, source, target, rows, task, current, route_task, batch_size)
        kept = columns.to(scores.device)
        out = torch.full_like(scores, float("-inf"))
        out[:, kept] = scaled_sinkhorn(scores[:, kept], ASSIGNMENT_ITERATIONS, ASSIGNMENT_TEMPERATURE)
        return out

    normalised = assign(evidence)
    if confidence is None or evidence is None or evidence.seeds is None or evidence.anchors is None:
        return normalised
    added = assignment_anchors(normalised, rows, evidence.seeds, confidence)
    if len(added) == 0:
        return normalised
    del normalised
    seeds = np.concatenate([evidence.seeds, added])
    return assign(with_seeds(evidence, source, target, seeds, torch.as_tensor(np.unique(rows)), columns))


def assignment_anchors(normalised: torch.Tensor, rows: np.ndarray, seeds: np.ndarray, confidence: float) -> np.ndarray:
    """``[k, 2]`` (source, target) pairs that are each other's best in log-assignment scores ``normalised``
    ``[len(rows), targets]`` with probability above ``confidence``; neither side already in ``seeds``."""
    best = normalised.argmax(1)
    probability = normalised.max(1).values.exp()
    mutual = normalised.argmax(0)[best] == torch.arange(len(rows), device=normalised.device)
    chosen = (mutual & (probability > confidence)).cpu().numpy()
    pairs = np.stack([np.asarray(rows)[chosen], best.cpu().numpy()[chosen]], 1).astype(np.int64)
    fresh = ~np.isin(pairs[:, 0], seeds[:, 0]) & ~np.isin(pairs[:, 1], seeds[:, 1])
    return pairs[fresh]


def with_seeds(evidence: MatchingEvidence, source: Side, target: Side, seeds: np.ndarray, rows: torch.Tensor,
               columns: torch.Tensor) -> MatchingEvidence:
    """``evidence`` with its anchor channels rebuilt through ``seeds`` for source owners ``rows`` against
    target owners ``columns`` (:func:`reasoning_stage.evidence.anchor_block`; names and descriptions kept).
    A block, not profiles: confident pairs can triple the seeds of a large alignment, and profiles grow
    with nodes x seeds."""
    block = anchor_block(source.graph.edge_index, source.size, target.graph.edge_index, target.size, seeds,
                         rows, columns, far=evidence.far_anchors is not None)
    return replace(evidence, anchors=None, far_anchors=None, anchor_block=block, seeds=seeds, indexes={})


def top_matches(model: TofuModel, source: Side, target: Side, rows: np.ndarray, task: int, k: int,
                batch_size: int = MATCH_SCORE_BATCH, route_task: int | None = None, evidence: MatchingEvidence | None = None,
                shortlist: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(indices [n, k], scores [n, k])`` of the best ``target`` owners for source owners ``rows``.

    ``shortlist`` (with ``evidence``): score only the union of each chunk's ``shortlist`` best targets
    by every dense and lexical channel (:meth:`MatchingEvidence.candidates`) instead of every target:
    how a knowledge base of 100k+ entities is served.
    """
    was_training = model.training
    model.eval()
    embed_task = task if route_task is None else route_task
    with torch.inference_mode():
        z_source, _ = embed(model, source, embed_task)
        z_target, _ = embed(model, target, embed_task)
        found = best_targets(model, z_source, z_target, source, target, rows, task, k, evidence, shortlist, batch_size)
    model.train(was_training)
    return found


def best_targets(model: TofuModel, z_source: torch.Tensor, z_target: torch.Tensor, source: Side, target: Side,
                 rows: np.ndarray, task: int, k: int, evidence: MatchingEvidence | None = None,
                 shortlist: int | None = None, batch_size: int = MATCH_SCORE_BATCH) -> tuple[np.ndarray, np.ndarray]:
    """:func:`top_matches` on embeddings already computed (e.g. a knowledge base made of several graphs)."""
    indices, values = [], []
    for start in range(0, len(rows), batch_size):
        index = torch.as_tensor(rows[start:start + batch_size], dtype=torch.long, device=z_source.device)
        columns = evidence.candidates(index, shortlist) if shortlist and evidence is not None else None
        if columns is not None and len(columns) < k:
            columns = None    # too short a list to fill k answers: score everything
        scores = pair_scores(model, z_source, z_target, source, target, index, task, evidence, columns)
        top = torch.topk(scores, min(k, scores.shape[1]), dim=1)
        chosen = top.indices if columns is None else columns[top.indices]
        indices.append(chosen.cpu().numpy())
        values.append(top.values.cpu().numpy())
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


def relabelled(side: Side, permutation: torch.Tensor, links: RelationLinks = RelationLinks()) -> Side:
    """The same owners numbered ``permutation[old] = new`` (for invariance tests); ``links``: the
    model's (``ModelConfig.relation_links``)."""
    graph = side.graph
    inverse = torch.empty_like(permutation)
    inverse[permutation] = torch.arange(len(permutation), device=permutation.device)
    moved = replace(graph, edge_index=permutation[graph.edge_index],
                    entity_tokens={m: TokenTensor(t.codes[inverse], t.weights[inverse])
                                   for m, t in graph.entity_tokens.items()})
    plans = graph_plans(moved, links) if moved.num_edges else {}
    text = TextEvidence({f: renumbered_rows(m, permutation) for f, m in side.text.lexical.items()},
                        {f: v[inverse] for f, v in side.text.dense.items()},
                        None if side.text.years is None else side.text.years[inverse])
    return Side(moved, {m: b[inverse] for m, b in side.bags.items()}, plans, text, side.lexicon)


def renumbered_rows(matrix: torch.Tensor, permutation: torch.Tensor) -> torch.Tensor:
    """A sparse CSR matrix with row ``old`` moved to ``permutation[old]``."""
    coo = matrix.to_sparse_coo().coalesce()
    index = coo.indices().clone()
    index[0] = permutation.to(index.device)[index[0]]
    return torch.sparse_coo_tensor(index, coo.values(), coo.shape).coalesce().to_sparse_csr()


def fit_evidence_weights(model: TofuModel, problems: list[tuple[Side, Side, MatchingEvidence, np.ndarray, int]],
                         steps: int = EVIDENCE_FIT_STEPS, learning_rate: float = 0.05, max_queries: int = 1024,
                         seed: int = 0) -> list[float]:
    """Learn ``model.evidence_weight`` (and nothing else) on training pairs; return each problem's final loss.

    ``problems``: ``(source, target, evidence, pairs [n, 2], task)``. The model's own scores and every
    channel are computed once for up to ``max_queries`` pairs per problem against all candidates, then
    the task's weights minimise the cross-entropy of the gold candidate: a few hundred numbers of work
    per step, so the fit takes seconds and leaves link prediction exactly as it was.
    """
    rng = np.random.default_rng(seed)
    prepared = []
    for source, target, evidence, pairs, task in problems:
        if len(pairs) > max_queries:
            pairs = pairs[np.sort(rng.choice(len(pairs), max_queries, replace=False))]
        base = score_matrix(model, source, target, pairs[:, 0], task).clone()   # out of inference mode
        rows = torch.as_tensor(pairs[:, 0], dtype=torch.long, device=base.device)
        channels = torch.cat([evidence.channels(rows[i:i + 256], target.size) for i in range(0, len(rows), 256)])
        prepared.append((base, channels, torch.as_tensor(pairs[:, 1], device=base.device), task))
    weight = model.evidence_weight
    with torch.no_grad():   # a switched-off channel (CHANNEL_OFF) has no gradient for Adam to follow: wake
        for task in {task for *_, task in prepared}:   # it, in the tasks fitted here only
            weight[task].clamp_(min=-5.0)
    optimizer = torch.optim.Adam([weight], lr=learning_rate)
    losses = [0.0] * len(prepared)
    for _ in range(steps):
        optimizer.zero_grad()
        total = weight.new_tensor(0.0)
        for i, (base, channels, gold, task) in enumerate(prepared):
            loss = F.cross_entropy(model.combine_evidence(base, channels, task), gold)
            losses[i] = float(loss.detach())
            total = total + loss
        total.backward()
        optimizer.step()
    return losses


def bootstrapped_evidence(model: TofuModel, source: Side, target: Side, task: int, seeds: np.ndarray,
                          rounds: int = 1) -> MatchingEvidence:
    """Anchor evidence through ``seeds`` plus pseudo-seeds: confident matches among the entities no seed
    link names (no split and no label is read).

    Each round scores every unlinked source entity against every unlinked target entity, keeps the pairs
    that are each other's best with a margin (best minus second-best target) above the median margin of
    those mutual pairs, and rebuilds the anchor profiles through the seed links plus these pseudo-seeds.
    """
    seeds = np.asarray(seeds, dtype=np.int64).reshape(-1, 2)
    far = model.channel_in_use(task, "far_anchors")
    evidence = matching_evidence(source, target, seeds, far)
    rows = np.setdiff1d(np.arange(source.size), seeds[:, 0])
    linked_targets = torch.as_tensor(np.unique(seeds[:, 1]), dtype=torch.long)
    if len(rows) == 0 or target.size - len(linked_targets) < 2:
        return evidence
    for _ in range(rounds):
        scores = score_matrix(model, source, target, rows, task, evidence)
        scores[:, linked_targets.to(scores.device)] = float("-inf")
        top = scores.topk(2, dim=1)
        best_target = top.indices[:, 0]
        mutual = scores.argmax(0)[best_target] == torch.arange(len(rows), device=scores.device)
        if not bool(mutual.any()):
            break
        margin = top.values[:, 0] - top.values[:, 1]
        keep = (mutual & (margin > margin[mutual].median())).cpu().numpy()
        pseudo = np.stack([rows[keep], best_target.cpu().numpy()[keep]], 1)
        del scores, evidence   # the new profiles are built without the old ones alive
        evidence = matching_evidence(source, target, np.concatenate([seeds, pseudo]), far)
    return evidence
