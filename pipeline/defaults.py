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
    "messages": ("distmult",),
}
# Seconds a Dask run waits for its scheduler to answer, and for a worker while the cluster has none,
# before it fails (`tofu tokenize --scheduler-timeout`).
SCHEDULER_TIMEOUT: float = 60.0
# Optimiser steps of `tofu fit-evidence` (the evidence weights: a few numbers per task, fitted in seconds).
EVIDENCE_FIT_STEPS: int = 300
