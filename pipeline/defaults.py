"""The recommended training settings: the shipped recipe's (recipes/pretrain.toml).

``tofu train``'s options default to them, and a recipe that leaves one of these
keys out gets them, so the two ways in train alike. The library's dataclasses
(``TrainConfig``, ``ModelConfig``) keep their plain defaults (constant rate,
uniform batches, no edge dropout, every message function): fine-tuning and the
benchmarks build on those.
"""
from __future__ import annotations

from typing import Any

# [train] keys of a recipe and the TrainConfig fields they set.
TRAIN_DEFAULTS: dict[str, Any] = {
    "loss": "softmax",
    "batch_relations": 2,
    "edge_dropout": 0.5,
    "lr_schedule": "cosine",
}
# [model] keys of a recipe and the ModelConfig fields they set.
MODEL_DEFAULTS: dict[str, Any] = {
    "messages": ("distmult", "rotate"),
}
# Seconds a Dask run waits for its scheduler to answer, and for a worker while the cluster has none,
# before it fails (`tofu tokenize --scheduler-timeout`).
SCHEDULER_TIMEOUT: float = 60.0


def train_default(name: str) -> Any:
    """What ``tofu train`` and a recipe take for the TrainConfig field ``name`` when not given: the
    recommended setting above, else the dataclass's own default."""
    from reasoning_stage.config import TrainConfig

    return TRAIN_DEFAULTS[name] if name in TRAIN_DEFAULTS else TrainConfig.__dataclass_fields__[name].default


def model_default(name: str) -> Any:
    """The same for the ModelConfig field ``name``."""
    from reasoning_stage.config import ModelConfig

    return MODEL_DEFAULTS[name] if name in MODEL_DEFAULTS else ModelConfig.__dataclass_fields__[name].default
