"""Where a task is and which layout it is in: task.toml's kind, else the DBP15K, WikiMEL or
Richpedia-MEL files present; the task's name without reading its data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tokenizer_stage.kg_reader.layout import locate
from tokenizer_stage.kg_reader.triples import is_triples_file
from tokenizer_stage.tasks.task_toml import TASK_TOML, TaskToml, read_task_toml, resolve_task_name, task_kind

DBP15K_FILES = ("ent_ids_1", "ent_ids_2", "triples_1", "triples_2", "ill_ent_ids")
WIKIMEL_FILES = ("Wikidata-MEL.json", "splits.json", "qid2ne.json")
RICHPEDIA_FILES = ("train.json", "test.json", "qid2ne.json")


def locate_task(path: Path | str) -> tuple[Path, Path | None]:
    """(task folder, task.toml or None) for a folder or a task.toml path."""
    return locate(path, TASK_TOML, "task")


def layout_of(folder: Path, toml: Path | None) -> str | None:
    """Task layout of a located folder (see ``detect_task_layout``), or None."""
    if toml is not None:
        cfg = read_task_toml(toml)
        if toml.name != TASK_TOML and "task" not in cfg.data:
            return None  # some other TOML, e.g. a kg.toml given to a caller that accepts graphs and tasks
        return f"{task_kind(cfg)}:canonical"
    has = lambda name: (folder / name).is_file()  # noqa: E731
    if all(has(f) for f in DBP15K_FILES):
        return "alignment:dbp15k"
    if all(has(f) for f in WIKIMEL_FILES):
        return "linking:wikimel"
    if all(has(f) for f in RICHPEDIA_FILES):
        return "linking:richpedia"
    return None


def detect_task_layout(path: Path | str) -> str | None:
    """Task layout (one of TASK_LAYOUTS) of a folder or task.toml; None for a folder that is no task (e.g. a plain KG)
    or a file of triples (a whole graph)."""
    if is_triples_file(path):
        return None
    return layout_of(*locate_task(path))


def task_name(path: Path | str) -> str:
    """The name ``read_task`` gives the task at ``path`` (task.toml 'task.name', else the folder's),
    without reading its data."""
    folder, toml = locate_task(path)
    if toml is not None:
        cfg = read_task_toml(toml)
        task = cfg.data.get("task")
        if isinstance(task, dict):
            return resolve_task_name(cfg, task, None, folder)
    return folder.name


def graph_path_value(cfg: TaskToml, table: dict[str, Any], tname: str, key: str,
                     required: bool = False) -> Path | None:
    """A path a task.toml names as a graph; a task folder there is refused at its line (it would
    otherwise fail later as a graph with odd files)."""
    path = cfg.path_value(table, tname, key, required, folder_ok=True)
    if path is not None and detect_task_layout(path) is not None:
        raise cfg.err(f"'{tname}.{key}': {path} is a task folder, not a graph", key, tname)
    return path
