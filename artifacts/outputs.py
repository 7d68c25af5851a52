"""The files commands write beside their results: predictions tables and training logs.

``predictions_<artifact>_<split>.tsv`` (``tofu reason --predict``, ``--predict-top-k``): one row per
answer, a header row naming the columns, tab-separated, written whole or not at all.

Training logs are JSON lines, one record per evaluation (``step``, ``loss``, validation MRRs):
``CKPT.log.jsonl`` beside a ``tofu train`` checkpoint, ``WORK/train_log.jsonl`` for ``tofu pretrain``.
They are appended a line at a time, so a long run's log can be read while it trains.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Callable

from artifacts.atomic import atomic_write_bytes

RECIPE_LOG = "train_log.jsonl"


def predictions_path(output: Path, name: str, split: str) -> Path:
    """Where ``tofu reason`` writes the predictions of an artifact's split."""
    return Path(output) / f"predictions_{name}_{split}.tsv"


def write_predictions(rows: list[dict[str, Any]], path: Path) -> None:
    """``rows`` (dicts with the same keys, in column order) as a TSV with a header, atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), delimiter="\t", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(path, buffer.getvalue().encode("utf-8"))


def checkpoint_log_path(checkpoint: Path) -> Path:
    """The training log beside a ``tofu train`` checkpoint folder: ``CKPT.log.jsonl``."""
    return Path(str(checkpoint).rstrip("/") + ".log.jsonl")


def recipe_log_path(work: Path) -> Path:
    """The training log of ``tofu pretrain --work WORK``."""
    return Path(work) / RECIPE_LOG


def log_to_file(path: Path, fresh: bool = False) -> Callable[[dict[str, Any]], None]:
    """A JSON-lines logger. ``fresh``: the first record replaces an earlier run's log (a new run
    replaces its checkpoint, so its log starts again); otherwise records are appended (--resume).
    The log's folder is made with the first record, as the checkpoint's folder is when it is written."""
    mode = ["w" if fresh else "a"]

    def write(record: dict[str, Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, mode[0], encoding="utf-8") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")
        mode[0] = "a"
    return write
