"""What an artifact is named and made from: the name ``read_kg`` or ``read_task`` gives the graph or task,
and the folder (or stand-alone file) given."""

from __future__ import annotations

import os
from pathlib import Path

from tokenizer_stage.kg_reader import graph_name
from tokenizer_stage.tasks.layout import detect_task_layout, task_name
from tokenizer_stage.tasks.task_toml import TASK_TOML


def artifact_name(path: Path | str) -> str:
    """The name tokenizing ``path`` (a graph or task folder, or its .toml) writes its artifact under:
    ``ROOT/<name>/``."""
    return task_name(path) if detect_task_layout(Path(path)) is not None else graph_name(path)


def source_of(path: Path | str) -> Path:
    """What an artifact records as made from: the folder, or a stand-alone .toml file or one triples file
    given instead of one (several of which can share a folder); a folder's own kg.toml / task.toml is the
    folder."""
    p = Path(os.path.abspath(Path(path).expanduser()))
    return p.parent if p.is_file() and p.name in ("kg.toml", TASK_TOML) else p
