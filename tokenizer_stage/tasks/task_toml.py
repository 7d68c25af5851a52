"""task.toml: its tables and values, checked with errors at their line; the task's kind and name."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from artifacts.root import artifact_name_problem
from tokenizer_stage.kg_reader.errors import KGFormatError
from tokenizer_stage.kg_reader.files import absolute_path
from tokenizer_stage.kg_reader.kg_toml import parse_toml, toml_line

TASK_TOML = "task.toml"


@dataclass
class TaskToml:
    """A parsed task.toml with checked access to its tables and values (errors at the key's line)."""
    path: Path
    text: str
    data: dict[str, Any]

    def err(self, message: str, key: str, table: str | None = None) -> KGFormatError:
        return KGFormatError(message, self.path, toml_line(self.text, key, table))

    def table(self, name: str, allowed: tuple[str, ...], required: bool = True) -> dict[str, Any]:
        if name not in self.data:
            if required:
                raise KGFormatError(f"missing required table [{name}]", self.path)
            return {}
        value = self.data[name]
        if not isinstance(value, dict):
            raise self.err(f"'{name}' must be a table", name)
        for key in value:
            if key not in allowed:
                raise self.err(f"unknown key '{name}.{key}' (allowed: {', '.join(allowed)})", key, name)
        return value

    def string(self, table: dict[str, Any], tname: str, key: str, required: bool = False) -> str | None:
        if key not in table:
            if required:
                # point at the table header: the key itself is absent
                raise KGFormatError(f"missing required key '{tname}.{key}'", self.path, toml_line(self.text, tname))
            return None
        value = table[key]
        if not isinstance(value, str) or not value.strip():
            raise self.err(f"'{tname}.{key}' must be a non-empty string", key, tname)
        return value

    def path_value(self, table: dict[str, Any], tname: str, key: str, required: bool = False, folder_ok: bool = False) -> Path | None:
        value = self.string(table, tname, key, required)
        if value is None:
            return None
        p = absolute_path(self.path.parent / Path(value).expanduser())
        ok = p.exists() if folder_ok else p.is_file()
        if not ok:
            raise self.err(f"'{tname}.{key}': {'path' if folder_ok else 'file'} does not exist: {p}", key, tname)
        return p


def read_task_toml(path: Path) -> TaskToml:
    """The parsed task.toml at ``path`` (bad bytes and bad TOML are errors at their line)."""
    return TaskToml(path, *parse_toml(path))


def task_kind(cfg: TaskToml) -> str:
    """``task.kind`` of a task.toml, 'alignment' or 'linking'; missing or another is an error."""
    task = cfg.data.get("task")
    if not isinstance(task, dict):
        raise KGFormatError("missing required table [task] (with kind = \"alignment\" or \"linking\")", cfg.path)
    kind = task.get("kind")
    if kind is None:
        raise KGFormatError("missing required key 'task.kind'", cfg.path, toml_line(cfg.text, "task"))
    if kind not in ("alignment", "linking"):
        raise cfg.err(f"unknown task kind {kind!r} (allowed: alignment, linking)", "kind", "task")
    return kind


def check_top_keys(cfg: TaskToml, allowed: tuple[str, ...]) -> None:
    """Refuse a top-level key of the task.toml that is not in ``allowed``."""
    for key in cfg.data:
        if key not in allowed:
            raise cfg.err(f"unknown key {key!r} (allowed: {', '.join(allowed)})", key)


def resolve_task_name(cfg: TaskToml, task: dict[str, Any], name: str | None, folder: Path) -> str:
    """The task's name: ``name`` when given, else the checked 'task.name', else the folder's."""
    given = cfg.string(task, "task", "name")
    problem = artifact_name_problem(given) if given else None
    if problem:   # the name is the artifact's folder name under the output root
        raise cfg.err(f"'task.name' {given!r} {problem}", "name", "task")
    return name or given or folder.name
