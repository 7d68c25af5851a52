"""kg.toml: a graph's name, layout, ``[files]`` and ``[split]``, read with errors at their line; and
``write_kg_toml``, which writes one pointing at a graph's files. The TOML helpers serve task.toml too."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from artifacts.root import artifact_name_problem
from tokenizer_stage.kg_reader.errors import KGFormatError
from tokenizer_stage.kg_reader.files import absolute_path
from tokenizer_stage.kg_reader.model import LAYOUTS, SplitRequest


def write_kg_toml(folder: Path, name: str, files: dict[str, Path | list[Path]]) -> Path:
    """Write ``folder/kg.toml`` naming the graph and pointing at its files (copies nothing).

    ``files`` maps kg.toml ``[files]`` keys (source, entity_text, ...) to a path
    or, for the text and image keys, a list of paths; written absolute so the
    folder can live anywhere.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    def absolute(path: Path) -> str:
        return json.dumps(Path(path).resolve().as_posix())

    lines = [f"name = {json.dumps(name)}", "[files]"]
    lines += [f"{key} = [{', '.join(absolute(p) for p in paths)}]" if isinstance(paths, list)
              else f"{key} = {absolute(paths)}" for key, paths in files.items()]
    (folder / "kg.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def kg_toml_text(folder: Path) -> str | None:
    """``folder/kg.toml`` as it stands, ``None`` when there is none (for :func:`restore_kg_toml`)."""
    path = Path(folder) / "kg.toml"
    return path.read_text(encoding="utf-8") if path.is_file() else None


def restore_kg_toml(folder: Path, text: str | None) -> None:
    """Put back a ``kg.toml`` read by :func:`kg_toml_text` before :func:`write_kg_toml` replaced it
    (``None``: remove the one written since)."""
    path = Path(folder) / "kg.toml"
    if text is None:
        path.unlink(missing_ok=True)
    else:
        path.write_text(text, encoding="utf-8")


_TOP_KEYS = ("name", "layout", "files", "split")
_FILE_KEYS = ("train", "valid", "test", "graph", "all", "source", "entity_text", "relation_text", "images")
_TRIPLE_KEYS = ("train", "valid", "test", "graph", "all")
_SPLIT_KEYS = ("train", "valid", "test", "seed")
_LIST_KEYS = ("entity_text", "relation_text", "images")


@dataclass
class GraphConfig:
    """A graph's kg.toml settings (none set without a kg.toml); paths are absolute."""
    path: Path | None = None
    text: str = ""
    name: str | None = None
    layout: str | None = None
    triple_files: dict[str, Path] = field(default_factory=dict)
    source: Path | None = None
    entity_text: list[Path] = field(default_factory=list)
    relation_text: list[Path] = field(default_factory=list)
    images: list[Path] = field(default_factory=list)
    split: SplitRequest | None = None


def toml_line(text: str, key: str, table: str | None = None) -> int | None:
    """Best-effort line of `key` (tomllib reports no positions for valid files)."""
    key_pat = rf"""["']?{re.escape(key)}["']?\s*="""
    in_table = re.compile(rf"^\s*{key_pat}")
    dotted = re.compile(rf"""^\s*["']?{re.escape(table)}["']?\s*\.\s*{key_pat}""") if table else None
    current: str | None = None
    for i, ln in enumerate(text.split("\n"), 1):
        s = ln.strip()
        if s.startswith("["):
            current = s.strip("[]").split("]")[0].strip().strip("\"'")
            if table is None and current == key:
                return i  # an unknown [table]
            continue
        if current == table and in_table.match(ln):
            return i
        if current is None and dotted is not None and dotted.match(ln):
            return i
    return None


def parse_toml(path: Path) -> tuple[str, dict]:
    """(text, data) of a kg.toml / task.toml; bad bytes and bad TOML are errors at their line."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise KGFormatError("not valid UTF-8", path, raw[:e.start].count(b"\n") + 1) from None
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"at line (\d+)", str(e))  # TOMLDecodeError has no lineno attribute before 3.14
        # "at end of document" names no line: the last one
        line = int(m.group(1)) if m else max(1, text.count("\n") + (not text.endswith("\n")))
        raise KGFormatError(f"invalid TOML: {e}", path, line) from None


def load_config(toml_path: Path) -> GraphConfig:
    """The settings of the kg.toml at ``toml_path``; bad keys, values and paths are errors at their line."""
    toml_text, data = parse_toml(toml_path)
    cfg = GraphConfig(path=toml_path, text=toml_text)
    base = toml_path.parent

    def err(message: str, key: str, table: str | None = None) -> KGFormatError:
        return KGFormatError(message, toml_path, toml_line(toml_text, key, table))

    for key in data:
        if key not in _TOP_KEYS:
            raise err(f"unknown key {key!r} (allowed: {', '.join(_TOP_KEYS)})", key)
    if "name" in data:
        if not isinstance(data["name"], str) or not data["name"].strip():
            raise err("'name' must be a non-empty string", "name")
        problem = artifact_name_problem(data["name"])
        if problem:   # the name is the artifact's folder name under the output root
            raise err(f"'name' {data['name']!r} {problem}", "name")
        cfg.name = data["name"]
    if "layout" in data:
        if data["layout"] not in LAYOUTS:
            raise err(f"unknown layout {data['layout']!r} (allowed: {', '.join(LAYOUTS)})", "layout")
        cfg.layout = data["layout"]
    files = data.get("files", {})
    if not isinstance(files, dict):
        raise err("'files' must be a table", "files")
    for key, value in files.items():
        if key not in _FILE_KEYS:
            raise err(f"unknown key 'files.{key}' (allowed: {', '.join(_FILE_KEYS)})", key, "files")
        values = value if isinstance(value, list) and key in _LIST_KEYS else [value]
        paths: list[Path] = []
        for v in values:
            if not isinstance(v, str) or not v:
                what = "a path string or a list of them" if key in _LIST_KEYS else "a path string"
                raise err(f"'files.{key}' must be {what}", key, "files")
            p = absolute_path(base / Path(v).expanduser())
            ok = p.is_dir() if key == "source" else p.is_file()
            if not ok:
                kind = "folder" if key == "source" else "file"
                raise err(f"'files.{key}': {kind} does not exist: {p}", key, "files")
            paths.append(p)
        if key == "source":
            cfg.source = paths[0]
        elif key in _TRIPLE_KEYS:
            cfg.triple_files[key] = paths[0]
        else:
            getattr(cfg, key).extend(paths)
    if "all" in cfg.triple_files and len(cfg.triple_files) > 1:
        other = next(key for key in cfg.triple_files if key != "all")
        raise err(f"'files.all' holds every triple: it cannot be combined with 'files.{other}'", other, "files")
    if "split" in data:
        if "all" not in cfg.triple_files:
            raise err("'split' cuts one triples file into train / valid / test: name that file as 'files.all'",
                      "split")
        cfg.split = _split_request(data["split"], err)
    return cfg


def _split_request(table: Any, err: Callable[..., KGFormatError]) -> SplitRequest:
    """kg.toml ``[split]``: with no share written, SplitRequest's defaults; else an unwritten train
    share is the rest and an unwritten valid / test share is 0, and the shares must sum to 1."""
    if not isinstance(table, dict):
        raise err("'split' must be a table", "split")
    for key, value in table.items():
        if key not in _SPLIT_KEYS:
            raise err(f"unknown key 'split.{key}' (allowed: {', '.join(_SPLIT_KEYS)})", key, "split")
        if key == "seed" and (isinstance(value, bool) or not isinstance(value, int)):
            raise err(f"'split.seed' must be an integer, got {value!r}", key, "split")
        if key != "seed" and (isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1):
            raise err(f"'split.{key}' must be a share from 0 to 1, got {value!r}", key, "split")
    shares = {key: float(table[key]) for key in ("train", "valid", "test") if key in table}
    if shares:
        valid, test = shares.get("valid", 0.0), shares.get("test", 0.0)
        shares = {"train": shares.get("train", 1 - valid - test), "valid": valid, "test": test}
        if abs(sum(shares.values()) - 1) > 1e-9 or shares["train"] <= 0:
            raise err(f"the shares of 'split' must sum to 1 with some left for train, got train "
                      f"{shares['train']:g}, valid {valid:g}, test {test:g}", "split")
    return SplitRequest(**shares, seed=table.get("seed", SplitRequest.seed))
