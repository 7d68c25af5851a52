"""The settings of the reasoner and of its training: plain dataclasses with their checks, no torch.

``tofu``'s command-line options take their defaults from here and from ``pipeline/defaults.py`` (the
recommended recipe's settings), so each default is written once and the CLI starts without torch.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

MESSAGE_FUNCTIONS = ("distmult", "transe", "rotate")
TASKS = ("link_prediction", "alignment", "linking")
MODALITIES = ("structure", "text", "image")
# Distinct queries scored together when ranking: by default as many as keep
# batch x (entities + relation-graph links) within EVAL_BATCH_ROWS, between EVAL_BATCH_MIN and
# EVAL_BATCH_MAX (`eval_batch_size`). Graphs with few entities and relations rank up to twice as fast
# in wider batches (a batch's fixed work does not shrink with the graph); on graphs with many
# relations the work per query dominates, and a wider batch only costs memory.
# `tofu reason --batch-size N` fixes the number instead.
EVAL_BATCH_MIN = 16
EVAL_BATCH_MAX = 128
EVAL_BATCH_ROWS = 131_072
# Optimiser steps of an evidence-weight fit (`tofu fit-evidence`, `--fit-on-seeds`): a few numbers
# per task, fitted in seconds.
EVIDENCE_FIT_STEPS = 300
# The gate share of the first listed message function in a fresh model: a mixture starts close to
# that one function (DistMult is listed first: the best single function on average in the message
# ablation, far ahead on nell_v1) and learns per query where the others help, rather than starting
# as an even blend.
LEADING_MESSAGE_SHARE = 0.8


@dataclass(frozen=True)
class RelationLinks:
    """The link types of a relation graph (:func:`reasoning_stage.layers.relation_graph`): ULTRA's four
    kinds (relations sharing a head, a head and a tail, a tail and a head, a tail), with ``pairs`` a
    fifth (relations sharing an ordered (head, tail) pair: a relation and its own inverse id then mark
    it symmetric), each kind split by the ascending cosine thresholds ``strengths``."""
    strengths: tuple[float, ...] = ()
    pairs: bool = False

    @property
    def num_types(self) -> int:
        return (4 + int(self.pairs)) * (len(self.strengths) + 1)


@dataclass
class ModelConfig:
    """Constructor arguments of :class:`TofuModel`; saved as JSON in every checkpoint."""
    dim: int = 64
    entity_layers: int = 6
    relation_layers: int = 6
    messages: tuple[str, ...] = MESSAGE_FUNCTIONS
    modalities: tuple[str, ...] = MODALITIES            # () = structure-only, ULTRA-shaped
    codebook_sizes: dict[str, int] = field(default_factory=dict)   # entity-token vocabulary per modality
    relation_text_codebook_size: int = 0
    num_tasks: int = len(TASKS)
    num_experts: int = 4
    expert_top_k: int = 2
    # A relation-conditioned match of the head's content features with each candidate's, added to
    # the GNN score: beyond the layers' reach a candidate's GNN score does not depend on the head.
    content_match: bool = False
    # Cosine thresholds that split each kind of relation-graph link by its strength (ascending);
    # () keeps ULTRA's four binary link types.
    link_strengths: tuple[float, ...] = ()
    # Relation-graph links between relations that hold on a same entity pair (see RelationLinks):
    # ULTRA's four kinds link a symmetric relation to its inverse just as they link any relation whose
    # heads are also its tails, and two relations on the same pairs as two on merely shared entities.
    pair_links: bool = False

    def __post_init__(self) -> None:
        # Checked here, so a recipe or a command line fails before any work, not inside a layer.
        for name, least in (("dim", 2), ("entity_layers", 0), ("relation_layers", 0), ("num_tasks", len(TASKS)),
                            ("num_experts", 1), ("expert_top_k", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{name} must be an integer of at least {least}, got {value!r}")
        if isinstance(self.messages, str) or isinstance(self.modalities, str):
            raise ValueError("messages and modalities are lists of names, e.g. ['distmult'], not one string")
        self.messages = tuple(self.messages)
        self.modalities = tuple(self.modalities)
        if not self.messages or set(self.messages) - set(MESSAGE_FUNCTIONS):
            raise ValueError(f"messages must be a non-empty subset of {MESSAGE_FUNCTIONS}, got {list(self.messages)}")
        unknown = set(self.modalities) - set(MODALITIES)
        if unknown:
            raise ValueError(f"unknown modalities {sorted(unknown)}; choose from {MODALITIES}")
        if isinstance(self.link_strengths, (str, int, float)):
            raise ValueError(f"link_strengths is a list of thresholds, e.g. [0.05, 0.3], got {self.link_strengths!r}")
        self.link_strengths = tuple(float(t) for t in self.link_strengths)
        if list(self.link_strengths) != sorted(set(self.link_strengths)) or any(not 0 < t < 1 for t in self.link_strengths):
            raise ValueError(f"link_strengths must be ascending distinct cosines in (0, 1), got {list(self.link_strengths)}")
        if not isinstance(self.pair_links, bool):
            raise ValueError(f"pair_links is true or false, got {self.pair_links!r}")
        if self.expert_top_k > self.num_experts:
            raise ValueError(f"expert_top_k ({self.expert_top_k}) cannot exceed num_experts ({self.num_experts})")

    @property
    def relation_links(self) -> RelationLinks:
        """The link types of the relation graph this model's relation layers read."""
        return RelationLinks(self.link_strengths, self.pair_links)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["messages"], data["modalities"] = list(self.messages), list(self.modalities)
        data["link_strengths"] = list(self.link_strengths)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ModelConfig":
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config keys {sorted(unknown)}")
        return cls(**data)


@dataclass
class TrainConfig:
    max_steps: int = 1000
    max_seconds: float | None = None  # wall-clock budget of this run (resumes get a fresh one)
    batch_size: int = 16
    loss: str = "adversarial"   # or "softmax", or "both" summed (see the module docstring)
    negatives: int = 256        # drawn per query by the "adversarial" loss
    # 0: a batch is drawn uniformly from the graph's triples. k > 0: from the triples of k relations
    # (drawn by frequency; more when they hold fewer than batch_size triples), so its queries come in
    # at most 2k runs and the model's reach path (exact, far cheaper on sparse graphs) computes them.
    batch_relations: int = 0
    # Each step also hides a share of the graph's other triples, drawn uniformly from [0, edge_dropout]:
    # the model then meets sparser graphs, with answers further away or out of reach, as unseen
    # graphs often are (the hidden triples stay known answers: they are not negatives).
    edge_dropout: float = 0.0
    # A link-prediction step draws its graph with probability proportional to the graph's training
    # triples to this power: 1 by size, 0 uniformly (each graph as often as validation weighs it).
    graph_sampling_power: float = 1.0
    # > 0: keep an exponential moving average of the weights with this decay and evaluate and save it
    # instead of the last step's weights (a late step's noise then weighs little in the shipped model).
    weight_average: float = 0.0
    learning_rate: float = 5e-4
    # "constant", or "cosine": decay to min_lr_ratio x the rate over the run (steps or time budget,
    # whichever runs out first), so a budgeted run ends on a settled model rather than a noisy one.
    lr_schedule: str = "constant"
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.0
    adversarial_temperature: float = 1.0
    balance_weight: float = 0.01          # weight of the experts' load-balance term
    eval_every: int = 200
    eval_triples: int = 100
    seed: int = 0
    train_split: str = "train"
    valid_split: str = "valid"
    # Share of steps per task when several are trained together (normalised over the tasks present).
    task_weights: dict[str, float] | None = None
    match_batch_size: int = 64


LR_SCHEDULES = ("constant", "cosine")
LOSSES = ("adversarial", "softmax", "both")


_INT_FIELDS = ("max_steps", "batch_size", "negatives", "batch_relations", "eval_every", "eval_triples", "seed",
               "match_batch_size")
_FLOAT_FIELDS = ("max_seconds", "edge_dropout", "graph_sampling_power", "weight_average", "learning_rate",
                 "min_lr_ratio", "weight_decay", "adversarial_temperature", "balance_weight")


def check_train_config(config: TrainConfig) -> None:
    """Reject wrong types, out-of-range values, an unknown schedule or loss before any work (a recipe
    checks before tokenizing; a run that could not take one step would write no checkpoint)."""
    for name in _INT_FIELDS:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an integer, got {value!r}")
    for name in _FLOAT_FIELDS:
        value = getattr(config, name)
        if (value is not None or name != "max_seconds") and (isinstance(value, bool)
                                                             or not isinstance(value, (int, float))
                                                             or not math.isfinite(value)):
            what = "the time budget (minutes)" if name == "max_seconds" else name
            raise ValueError(f"{what} must be a finite number, got {value / 60 if name == 'max_seconds' else value!r}")
    for name in ("max_steps", "batch_size", "negatives", "eval_every", "eval_triples", "match_batch_size"):
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be at least 1, got {getattr(config, name)}")
    if config.learning_rate < 0:   # 0 is allowed: it logs a checkpoint's validation without changing it
        raise ValueError(f"learning_rate cannot be negative, got {config.learning_rate}")
    if config.max_seconds is not None and config.max_seconds <= 0:
        raise ValueError(f"the time budget must be positive, got {config.max_seconds / 60:g} minutes")
    for name in ("weight_decay", "balance_weight"):
        if getattr(config, name) < 0:
            raise ValueError(f"{name} cannot be negative, got {getattr(config, name)}")
    if not 0.0 <= config.min_lr_ratio <= 1.0:
        raise ValueError(f"min_lr_ratio must be in [0, 1] (the final share of the learning rate), "
                         f"got {config.min_lr_ratio}")
    if config.adversarial_temperature <= 0:
        raise ValueError(f"adversarial_temperature must be positive, got {config.adversarial_temperature}")
    for name in ("train_split", "valid_split"):
        if not isinstance(getattr(config, name), str) or not getattr(config, name):
            raise ValueError(f"{name} must be a split name, got {getattr(config, name)!r}")
    if config.task_weights is not None:
        if not isinstance(config.task_weights, dict):
            raise ValueError(f"task_weights must be a table of task = weight, got {config.task_weights!r}")
        unknown = set(config.task_weights) - set(TASKS)
        if unknown:
            raise ValueError(f"task_weights: unknown tasks {sorted(unknown)}; choose from {', '.join(TASKS)}")
        for task, weight in config.task_weights.items():
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) \
                    or weight < 0:
                raise ValueError(f"task_weights: {task} must be a finite number of at least 0, got {weight!r}")
    if config.lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {config.lr_schedule!r}")
    if config.loss not in LOSSES:
        raise ValueError(f"unknown loss {config.loss!r}; choose from {', '.join(LOSSES)}")
    if config.batch_relations < 0:
        raise ValueError(f"batch_relations must be 0 (uniform batches) or a positive count, got {config.batch_relations}")
    if not 0.0 <= config.edge_dropout < 1.0:
        raise ValueError(f"edge_dropout must be in [0, 1), got {config.edge_dropout}")
    if config.graph_sampling_power < 0:
        raise ValueError(f"graph_sampling_power must be at least 0 (0: every graph alike, 1: by size), "
                         f"got {config.graph_sampling_power}")
    if not 0.0 <= config.weight_average < 1.0:
        raise ValueError(f"weight_average must be in [0, 1) (0: off), got {config.weight_average}")


def eval_batch_size(num_entities: int, relation_links: int) -> int:
    """Distinct queries per ranking batch on a graph of ``num_entities`` whose relation graph has
    ``relation_links`` links (see ``EVAL_BATCH_ROWS``)."""
    return max(EVAL_BATCH_MIN, min(EVAL_BATCH_MAX, EVAL_BATCH_ROWS // max(num_entities + relation_links, 1)))
