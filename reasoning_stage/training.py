"""Pretraining and fine-tuning over tokenized graphs.

Each step draws one graph (with probability proportional to its number of
training triples, or a power of it: ``TrainConfig.graph_sampling_power``), a
batch of its training triples, and asks each as a tail or head query over the
graph *without* the batch's edges (so the answer is never read off the graph).
Loss (``TrainConfig.loss``): "adversarial", binary cross-entropy of the answer
against uniformly drawn negatives that are not known true answers, the
negatives weighted self-adversarially (Sun et al. 2019), as in ULTRA; or
"softmax", cross-entropy of the answer against every entity that is not a
known true answer (1-N scoring, as RED-GNN and AdaProp train): the forward
pass scores all entities anyway, so every one of them is a negative at no
extra cost; or "both", their sum.
"""
from __future__ import annotations

import math
import time
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from artifacts.checkpoint import load_checkpoint, save_checkpoint
from artifacts.compatibility import require_codebook_id
from artifacts.token_tables import TokenTables
from artifacts.version import CODE_VERSION
from reasoning_stage.evaluation import evaluate_graph
from reasoning_stage.graph_data import GraphTensors, KnownTriples, graph_tensors
from reasoning_stage.layers import EdgePlan
from reasoning_stage.config import LOSSES, TASKS, ModelConfig, RelationLinks, TrainConfig, check_train_config
from reasoning_stage.models import QueryBatch, TofuModel, graph_relation_graph, with_current_evidence


class TrainingInputError(ValueError):
    """A task artifact cannot be trained on (e.g. it has no training pairs)."""


@dataclass
class PreparedGraph:
    """Tensors of one graph that stay fixed during training (built once)."""
    name: str
    train_graph: GraphTensors
    train_triples: torch.Tensor
    rel_graph: EdgePlan
    known: KnownTriples
    tables: TokenTables
    train_relations: np.ndarray   # relation of each training triple, on the host (batch drawing)


class WeightAverage:
    """Exponential moving average of a model's weights, swapped in to evaluate and save.

    The decay warms up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so
    the average soon forgets the starting weights. Integer tensors are copied.
    """

    def __init__(self, model: torch.nn.Module, decay: float, average: dict[str, torch.Tensor] | None = None,
                 updates: int = 0) -> None:
        self.decay, self.updates = decay, updates
        own = model.state_dict()
        source = own if average is None else average
        self.average = {k: v.detach().clone().to(own[k].device) for k, v in source.items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        keep = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for name, value in model.state_dict().items():
            mean = self.average[name]
            if mean.is_floating_point():
                mean.lerp_(value.detach(), 1.0 - keep)
            else:
                mean.copy_(value)

    @contextmanager
    def swapped_in(self, model: torch.nn.Module) -> Iterator[dict[str, torch.Tensor]]:
        """Run the block with the averaged weights in ``model``; yields the step's own weights."""
        own = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.average)
        try:
            yield own
        finally:
            model.load_state_dict(own)


# The loss of the checkpoints whose manifest records none: they predate the choice of losses.
UNRECORDED_LOSS = "adversarial"


def fine_tune_config(manifest: dict[str, Any], **settings: Any) -> TrainConfig:
    """A fine-tuning run of a checkpoint: its own training loss (:data:`UNRECORDED_LOSS` where it
    records none or an unknown one)."""
    loss = ((manifest.get("training") or {}).get("config") or {}).get("loss", UNRECORDED_LOSS)
    return TrainConfig(**{"loss": loss if loss in LOSSES else UNRECORDED_LOSS, **settings})


def learning_rate_at(config: TrainConfig, step: int, elapsed_seconds: float) -> float:
    """The learning rate at ``step`` (counted over the whole run), ``elapsed_seconds`` into this run.

    Progress is the larger of ``step / max_steps`` (so a resumed run continues the
    curve) and the share of this run's time budget spent. The schedule is one that
    ``check_train_config`` accepted (``train`` checks before its first step).
    """
    if config.lr_schedule == "constant":
        return config.learning_rate
    progress = step / max(config.max_steps, 1)
    if config.max_seconds:
        progress = max(progress, elapsed_seconds / config.max_seconds)
    progress = min(max(progress, 0.0), 1.0)
    low = config.learning_rate * config.min_lr_ratio
    return low + (config.learning_rate - low) * 0.5 * (1.0 + math.cos(math.pi * progress))


def model_config_for(tables: TokenTables, base: ModelConfig) -> ModelConfig:
    """Fill token vocabularies from the artifact's codebooks; drop modalities they lack."""
    books = tables.manifest["codebooks"]["modalities"]
    sizes = {}
    for modality in ("structure", "text", "image"):
        if modality in books:
            # Structure codes: own 0..K-1 and neighbours' K..2K-1.
            sizes[modality] = books[modality]["size"] * (2 if modality == "structure" else 1)
    modalities = tuple(m for m in base.modalities if m in sizes)
    data = base.to_json()
    data.update(codebook_sizes={m: sizes[m] for m in modalities}, modalities=list(modalities),
                relation_text_codebook_size=sizes.get("text", 0) if "text" in modalities else 0)
    return ModelConfig.from_json(data)


@dataclass
class MatchingJob:
    """An alignment or linking task made ready for training: both sides and the gold pairs."""
    name: str
    task: int
    source: Any                 # reasoning_stage.matching.Side
    target: Any
    train_pairs: torch.Tensor   # [n, 2]
    valid_pairs: np.ndarray     # [m, 2] held out for the log's validation MRR
    symmetric: bool
    folder: Path
    codebook_id: str | None


# Share of a matching task's train pairs held out for validation when it has no `valid` split.
MATCHING_VALID_SHARE = 0.1


def matching_pairs(artifact: Any, holdout_seed: int = 0,
                   valid_share: float = MATCHING_VALID_SHARE) -> tuple[np.ndarray, np.ndarray]:
    """``(train pairs, validation pairs)``, each ``[n, 2]`` (source, gold target), of an alignment or
    linking artifact: validation is its ``valid`` split, else a seeded ``valid_share`` of train held out
    (never the test split).

    The held-out share depends on ``holdout_seed`` only, not on a run's training seed: runs that differ
    in their seed then hold out, and validate on, the same pairs, so their figures can be compared.
    """
    from artifacts.task_tables import AlignmentArtifact

    if isinstance(artifact, AlignmentArtifact):
        train_pairs = artifact.links.get("train", np.zeros((0, 2), np.int64))
        valid = artifact.links.get("valid")
    else:
        index, gold = artifact.split("train") if "train" in artifact.manifest["counts"]["mentions"] else \
            (np.zeros(0, np.int64), np.zeros(0, np.int64))
        keep = gold >= 0
        train_pairs = np.stack([index[keep], gold[keep]], 1)
        valid = None
        if "valid" in artifact.manifest["counts"]["mentions"]:
            v_index, v_gold = artifact.split("valid")
            valid = np.stack([v_index[v_gold >= 0], v_gold[v_gold >= 0]], 1)
    if len(train_pairs) == 0:
        raise TrainingInputError(f"{artifact.folder}: no training pairs (a 'train' split of links or labelled mentions)")
    if valid is None:
        if len(train_pairs) < 2:   # holding one out for validation would leave none to train on
            raise TrainingInputError(f"{artifact.folder}: one training pair and no 'valid' split; validation would "
                                     "take the only pair: add a 'valid' split or more training pairs")
        order = np.random.default_rng(holdout_seed).permutation(len(train_pairs))
        held = max(1, int(valid_share * len(train_pairs)))
        valid, train_pairs = train_pairs[order[:held]], train_pairs[order[held:]]
    return train_pairs, valid


def matching_job(artifact: Any, model: TofuModel, device: torch.device, holdout_seed: int = 0,
                 valid_share: float = MATCHING_VALID_SHARE) -> MatchingJob:
    """An alignment or linking artifact made ready for training: both sides, and the train and
    validation pairs of :func:`matching_pairs`."""
    from artifacts.task_tables import AlignmentArtifact
    from reasoning_stage import matching

    train_pairs, valid = matching_pairs(artifact, holdout_seed, valid_share)   # refuses before sides are built
    if isinstance(artifact, AlignmentArtifact):
        source, target = matching.alignment_sides(artifact, model, device)
        task, symmetric = matching.ALIGNMENT, True
    else:
        source, target = matching.linking_sides(artifact, model, device)
        task, symmetric = matching.LINKING, False
    return MatchingJob(artifact.name, task, source, target, torch.as_tensor(train_pairs, device=device), valid,
                       symmetric, artifact.folder, artifact.codebook_id)


def prepare(tables: TokenTables, split: str, device: torch.device, links: RelationLinks = RelationLinks()) -> PreparedGraph:
    """A training graph on ``device``; ``links``: the model's (``ModelConfig.relation_links``)."""
    graph = graph_tensors(tables, split)
    triples = graph.to_local(torch.as_tensor(tables.queries(split), dtype=torch.long)).to(device)
    # Training filters only what the training split knows: its graph and its queries.
    known = KnownTriples(tables, graph, sets=sorted({tables.splits[split]["graph"], tables.splits[split]["queries"]}))
    graph = graph.to(device)
    rel = graph_relation_graph(graph, links)
    return PreparedGraph(tables.name, graph, triples, rel, known, tables, triples[:, 1].cpu().numpy())


def draw_batch(relations: np.ndarray, batch_size: int, batch_relations: int, rng: np.random.Generator) -> torch.Tensor:
    """Row indices of one batch of the triples whose relations are ``relations`` ``[n]`` (see
    ``TrainConfig.batch_relations``), in the order drawn.

    A row's direction and negatives are drawn by its place in the batch, so the rows keep the
    order drawn here; :func:`training_step` puts the queries into runs of one relation once
    their directions (relation or inverse) are known."""
    size = min(batch_size, len(relations))
    if batch_relations <= 0:
        return torch.as_tensor(rng.choice(len(relations), size, replace=False))
    chosen: list[int] = []
    pool = np.zeros(len(relations), dtype=bool)
    # Relations in proportion to their triples, as uniform batches see them.
    while (len(chosen) < batch_relations or pool.sum() < size) and not pool.all():
        relation = int(relations[rng.choice(np.flatnonzero(~pool))])
        chosen.append(relation)
        pool |= relations == relation
    return torch.as_tensor(rng.choice(np.flatnonzero(pool), size, replace=False))


def graph_draw_probabilities(sizes: np.ndarray, power: float) -> np.ndarray:
    """Each graph's chance of being drawn for a link-prediction step: ``size ** power``, normalised;
    a graph without training triples is never drawn (``power = 0`` included)."""
    weights = np.power(sizes, power) * (sizes > 0)
    return weights / weights.sum()


def step_graph(prepared: PreparedGraph, batch: torch.Tensor, edge_dropout: float,
               generator: torch.Generator) -> GraphTensors:
    """The graph a link-prediction step sees: the training graph without the batch's triples and,
    with ``edge_dropout`` > 0, without a share of its other triples drawn from [0, edge_dropout]."""
    hidden = batch
    if edge_dropout > 0:
        share = torch.rand((), generator=generator).item() * edge_dropout
        dropped = torch.rand(len(prepared.train_triples), generator=generator) < share
        hidden = torch.cat([batch, prepared.train_triples[dropped.to(batch.device)]])
    return prepared.train_graph.without_edges(hidden)


def training_step(model: TofuModel, prepared: PreparedGraph, batch: torch.Tensor, config: TrainConfig,
                  generator: torch.Generator, task: int = 0) -> torch.Tensor:
    """Loss of one batch of triples ``[B, 3]``, each asked as a tail or a head query.

    Queries of few relations (``TrainConfig.batch_relations``) are put into runs of one relation
    and the loss is taken over them in that order, each with its own answer and negatives."""
    graph = step_graph(prepared, batch, config.edge_dropout, generator)
    num_rel = graph.num_relations
    flip = torch.rand(len(batch), generator=generator) < 0.5
    flip = flip.to(batch.device)
    heads = torch.where(flip, batch[:, 2], batch[:, 0])
    relations = torch.where(flip, batch[:, 1] + num_rel, batch[:, 1])
    targets = torch.where(flip, batch[:, 0], batch[:, 2])
    queries, order = QueryBatch.in_runs(torch.stack([heads, relations], dim=1))
    if order is not None:
        heads, relations, targets = heads[order], relations[order], targets[order]
    features = model.entity_features(graph, task)
    scores = model(graph, queries, task=task, rel_graph=prepared.rel_graph, features=features)
    true_mask = prepared.known.mask(heads, relations).to(batch.device)
    loss = scores.new_zeros(())
    if config.loss in ("softmax", "both"):
        # Other true answers of the query are not negatives: drop them from the partition.
        others = true_mask.clone()
        others[torch.arange(len(batch), device=batch.device), targets] = False
        loss = loss + F.cross_entropy(scores.masked_fill(others, float("-inf")), targets)
    if config.loss in ("adversarial", "both"):
        negatives = torch.randint(0, graph.num_entities, (len(batch), config.negatives), generator=generator)
        negatives = negatives.to(batch.device)
        if order is not None:  # each query keeps the negatives drawn for its row
            negatives = negatives[order]
        valid = ~true_mask.gather(1, negatives)
        positive = scores.gather(1, targets.unsqueeze(1)).squeeze(1)
        negative = scores.gather(1, negatives)
        with torch.no_grad():
            weights = torch.softmax((negative * config.adversarial_temperature).masked_fill(~valid, -1e9), dim=1)
            weights = weights * valid
        loss = loss + (-F.logsigmoid(positive) - (weights * F.logsigmoid(-negative)).sum(dim=1)).mean()
    if features is not None:
        loss = loss + config.balance_weight * features.balance_loss
    return loss


def evaluate_mrr(model: TofuModel, tables: TokenTables, split: str, max_triples: int | None,
                 device: torch.device, seed: int = 0) -> float:
    """Filtered MRR on (a seeded sample of) a split's queries."""
    return evaluate_graph(model, tables, [split], device, max_triples=max_triples, seed=seed).metrics()["mrr"]


def train(model: TofuModel, graphs: Sequence[TokenTables], config: TrainConfig, checkpoint: Path,
          device: torch.device, resume_from: Path | None = None, progress: Callable | None = None,
          log: Callable[[dict[str, Any]], None] | None = None, jobs: Sequence[MatchingJob] = (),
          init_from: Path | None = None) -> list[dict[str, Any]]:
    """Train ``model`` on link prediction over ``graphs`` and on the alignment / linking ``jobs``.

    Each step is one batch of one task: the task is drawn by ``config.task_weights``,
    then a graph by its number of training triples (link prediction) or a job
    uniformly. ``init_from`` starts from a checkpoint's weights (a fresh run);
    ``resume_from`` also restores the optimizer and the step. The checkpoint is
    saved at every evaluation and at the end. With ``config.weight_average`` the
    evaluations and the checkpoint's weights are the moving average; the step's
    own weights and the average's update count go with the optimizer state, so a
    resume continues both.
    """
    from reasoning_stage.matching import matching_loss, rank_matches

    check_train_config(config)
    if not graphs and not jobs:
        raise ValueError("nothing to train on: give token tables or alignment / linking tasks")
    codebook_id = graphs[0].codebook_id if graphs else jobs[0].codebook_id
    require_codebook_id(list(graphs) + list(jobs), codebook_id)
    for tables in graphs:
        if config.train_split not in tables.splits:
            raise TrainingInputError(f"{tables.folder}: no split {config.train_split!r} to train on (it has "
                                     f"{', '.join(sorted(tables.splits))})")
    # A graph without the default "valid" split is simply not validated; a split asked for by name
    # that no graph has is a mistake (it would silently validate nothing).
    if graphs and config.valid_split != TrainConfig.valid_split and not any(config.valid_split in t.splits for t in graphs):
        raise TrainingInputError(f"no graph has the validation split {config.valid_split!r} (they have "
                                 f"{', '.join(sorted({s for t in graphs for s in t.splits}))})")
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    step, history = 0, []
    if init_from is not None:
        manifest, state, _ = load_checkpoint(init_from)
        require_codebook_id(list(graphs) + list(jobs), manifest.get("codebook_id"))
        model.load_state_dict(with_current_evidence(state, model), strict=True)
    averaged: WeightAverage | None = None
    if resume_from is not None:
        manifest, state, opt_state = load_checkpoint(resume_from, with_optimizer=True)
        require_codebook_id(list(graphs) + list(jobs), manifest.get("codebook_id"))
        try:
            model.load_state_dict(with_current_evidence(state, model), strict=True)
        except RuntimeError as err:
            raise TrainingInputError(f"{resume_from}: its weights do not fit this model (build it from the "
                                     f"checkpoint's own settings): {str(err).splitlines()[0]}") from None
        if int(manifest["training"].get("step", 0)) >= config.max_steps:
            raise TrainingInputError(f"{resume_from}: already at step {manifest['training'].get('step')}, "
                                     f"not before max_steps {config.max_steps}: nothing to train")
        own_weights = (opt_state or {}).pop("own_weights", None)
        updates = int((opt_state or {}).pop("average_updates", 0))
        try:
            if own_weights is not None:  # the checkpoint holds an average: train on from the step's weights
                model.load_state_dict(own_weights, strict=True)
            if opt_state is not None:
                optimizer.load_state_dict(opt_state)
        except (RuntimeError, ValueError, KeyError, TypeError) as err:
            raise TrainingInputError(f"{resume_from}: its optimizer state does not fit this model: "
                                     f"{str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__}"
                                     "; start a new run from its weights with --init") from None
        if own_weights is not None and config.weight_average:
            averaged = WeightAverage(model, config.weight_average, state, updates)
        step = int(manifest["training"].get("step", 0))
        history = list(manifest["training"].get("history", []))
    if config.weight_average and averaged is None:
        averaged = WeightAverage(model, config.weight_average)
    prepared = [prepare(t, config.train_split, device, model.config.relation_links) for t in graphs]
    sizes = np.array([len(p.train_triples) for p in prepared], dtype=np.float64)
    if graphs and sizes.sum() == 0:
        raise ValueError("no training triples in the given graphs")
    graph_probabilities = graph_draw_probabilities(sizes, config.graph_sampling_power)
    kinds = (["link_prediction"] if prepared else []) + sorted({TASKS[j.task] for j in jobs})
    weights = np.array([(config.task_weights or {}).get(k, 1.0) for k in kinds], dtype=np.float64)
    if weights.sum() <= 0:
        raise TrainingInputError(f"task weights give every task present ({', '.join(kinds)}) a zero share")
    kind_probabilities = weights / weights.sum()
    bar = progress(total=config.max_steps, initial=step, desc="training", unit="step") if progress else None
    losses: list[float] = []
    started = time.perf_counter()

    def save(final: bool, own_weights: dict[str, torch.Tensor] | None) -> None:
        optimizer_state = optimizer.state_dict()
        if own_weights is not None:
            optimizer_state.update(own_weights=own_weights, average_updates=averaged.updates)
        save_checkpoint(checkpoint, model.state_dict(), model.config.to_json(), codebook_id, {
            "step": step, "history": history, "config": asdict(config), "final": final,
            "graphs": [p.name for p in prepared], "tasks": [{"name": j.name, "task": TASKS[j.task]} for j in jobs],
            "code_version": CODE_VERSION,
        }, optimizer_state)

    def validation_record(rate: float) -> dict[str, Any]:
        """Loss, time and validation MRR of the model as it stands (the average, when kept)."""
        record: dict[str, Any] = {"step": step, "loss": float(np.mean(losses[-config.eval_every:])),
                                  "seconds": round(time.perf_counter() - started, 1), "lr": float(f"{rate:.3g}")}
        for p in prepared:
            if config.valid_split in p.tables.splits and len(p.tables.queries(config.valid_split)):
                record[f"valid_mrr/{p.name}"] = round(evaluate_mrr(
                    model, p.tables, config.valid_split, config.eval_triples, device, config.seed), 4)
        for j in (j for j in jobs if len(j.valid_pairs)):
            ranks = rank_matches(model, j.source, j.target, j.valid_pairs[:config.eval_triples], j.task)
            record[f"valid_mrr/{TASKS[j.task]}:{j.name}"] = round(ranks.metrics()["mrr"], 4)
        return record

    def out_of_time() -> bool:
        return config.max_seconds is not None and time.perf_counter() - started >= config.max_seconds

    while step < config.max_steps and not out_of_time():
        model.train()
        kind = kinds[int(rng.choice(len(kinds), p=kind_probabilities))]
        if kind == "link_prediction":
            choice = prepared[int(rng.choice(len(prepared), p=graph_probabilities))]
            picks = draw_batch(choice.train_relations, config.batch_size, config.batch_relations, rng)
            loss = training_step(model, choice, choice.train_triples[picks], config, generator)
        else:
            job = [j for j in jobs if TASKS[j.task] == kind][int(rng.integers(sum(TASKS[j.task] == kind
                                                                                 for j in jobs)))]
            picks = torch.as_tensor(rng.choice(len(job.train_pairs), min(config.match_batch_size,
                                                                         len(job.train_pairs)), replace=False))
            loss = matching_loss(model, job.source, job.target, job.train_pairs[picks.to(job.train_pairs.device)],
                                 job.task, config.balance_weight, job.symmetric)
        optimizer.zero_grad()
        loss.backward()
        rate = learning_rate_at(config, step, time.perf_counter() - started)
        for group in optimizer.param_groups:
            group["lr"] = rate
        optimizer.step()
        if averaged is not None:
            averaged.update(model)
        step += 1
        losses.append(float(loss.detach()))
        if bar:
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
        last = step == config.max_steps or out_of_time()
        if step % config.eval_every == 0 or last:
            with averaged.swapped_in(model) if averaged is not None else nullcontext() as own_weights:
                record = validation_record(rate)
                history.append(record)
                if log:
                    log(record)
                save(final=last, own_weights=own_weights)
    if bar:
        bar.close()
    return history
