"""``metrics.json`` and ``metrics.csv``: what ``tofu reason`` measured, one shape for every task.

``metrics.json`` is ``{"kind": "tofu.metrics", "format_version": 1, "checkpoint": PATH, "task": TASK,
"records": [RECORD, ...]}`` with ``TASK`` the task evaluated (``reasoning_stage.config.TASKS``). Each
record is one evaluated graph (or task artifact) and split: ``graph``, ``split``, ``task``,
``queries``, ``mrr``, ``mrr_low``, ``mrr_high`` (the MRR's 95% interval over distinct queries),
``hits@1``, ``hits@3``, ``hits@10``, ``tie_gap_mrr``, ``seconds``; link prediction adds ``details``
(every metric computed) and ``per_relation``; alignment and linking add ``routing``, ``candidates``,
``assignment``, ``bootstrap`` and ``fit_on_seeds``. ``metrics.csv`` holds the same records, one row each, without the nested fields.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from artifacts.atomic import atomic_write_csv, atomic_write_json
from artifacts.errors import ArtifactError, UnsupportedFormatError

METRICS_KIND = "tofu.metrics"
METRICS_FORMAT_VERSION = 1
METRICS_JSON = "metrics.json"
METRICS_CSV = "metrics.csv"
RECORD_FIELDS = ("graph", "split", "task", "queries", "mrr", "mrr_low", "mrr_high", "hits@1", "hits@3", "hits@10",
                 "tie_gap_mrr", "seconds")
NESTED_FIELDS = ("details", "per_relation")


def write_metrics(folder: Path, checkpoint: Path | str, task: str, records: list[dict[str, Any]]) -> tuple[Path, Path]:
    """Write ``folder/metrics.json`` and ``folder/metrics.csv`` (each atomically); returns both paths."""
    for record in records:
        missing = [f for f in RECORD_FIELDS if f not in record]
        if missing or record["task"] != task:
            raise ValueError(f"a {task} metrics record lacks {missing} or names task {record.get('task')!r}")
    json_path, csv_path = Path(folder) / METRICS_JSON, Path(folder) / METRICS_CSV
    atomic_write_json(json_path, {"kind": METRICS_KIND, "format_version": METRICS_FORMAT_VERSION,
                                  "checkpoint": str(checkpoint), "task": task, "records": records})
    atomic_write_csv(csv_path, [{k: v for k, v in r.items() if k not in NESTED_FIELDS} for r in records])
    return json_path, csv_path


def read_metrics(folder: Path) -> dict[str, Any]:
    """The body of ``folder/metrics.json``, refused when it is not a metrics file this code reads."""
    path = Path(folder) / METRICS_JSON
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ArtifactError(f"{path}: not readable as metrics ({err})") from err
    if not isinstance(body, dict) or body.get("kind") != METRICS_KIND:
        raise ArtifactError(f"{path}: not a TOFU metrics file (kind {METRICS_KIND!r} expected)")
    if body.get("format_version") != METRICS_FORMAT_VERSION:
        raise UnsupportedFormatError(f"{path}: metrics format {body.get('format_version')}, this TOFU reads "
                                     f"{METRICS_FORMAT_VERSION}")
    return body
