"""Read a knowledge-graph folder, in any supported layout, into one in-memory object.

Pure Python + stdlib. ``read_kg(path)`` returns a :class:`KnowledgeGraph` whose
triple sets hold string ids (openke integer ids are mapped back to names), plus the
split definitions, entity/relation text and entity image paths.

Layouts (``detect_layout``; ``layout = "..."`` in kg.toml overrides detection):

* ``canonical``: ``train.tsv valid.tsv test.tsv`` (+ optional ``graph.tsv``).
  Sets ``train``/``valid``/``test``/``graph`` (those present). Splits ``train``
  (train/train), ``valid`` and ``test`` (graph = ``graph`` if graph.tsv exists,
  else ``train``). train.tsv is required unless graph.tsv exists (then there is no
  ``train`` split). Missing valid/test -> that split is absent.
  One triples file holding every triple (``files.all`` in kg.toml, or the file
  given instead of a folder, which then names the graph) is the ``train`` split
  alone, with a note, unless kg.toml asks for a ``[split]`` (:class:`SplitRequest`):
  then it is cut into train/valid/test, every entity and relation of valid/test
  also in train.
* ``grail``: folder ``X`` with ``train.txt valid.txt test.txt`` and a sibling
  ``X_ind`` holding the same three files. Sets ``train valid test`` (from X) and
  ``ind_graph ind_valid ind_test`` (from X_ind). Splits ``train`` (train/train),
  ``valid`` (train/valid), ``test`` (ind_graph/ind_test), ``ind_valid``
  (ind_graph/ind_valid). A folder with those files but no ``_ind`` sibling (an
  ``X_ind`` folder given directly, too) is read as a plain graph, still reported
  as layout ``"grail"``: sets train/valid/test, splits train/valid/test all over
  ``train``.
* ``ingram``: ``train.txt msg.txt valid.txt test.txt``. Sets train/msg/valid/test.
  Splits ``train`` (train/train), ``valid`` (msg/valid), ``test`` (msg/test).
* ``openke``: ``entity2id.txt relation2id.txt train2id.txt valid2id.txt
  test2id.txt`` (first line = record count; triples are HEAD TAIL RELATION).
  Sets train/valid/test (names, not ints); splits train/valid/test all over
  ``train``. Every entity2id / relation2id entry is declared.

Triple files are tab-separated, or comma-separated (CSV quoting) when named
``.csv``. A first row of column names (head/relation/tail, subject/predicate/object,
h/r/t, source/relation/target, ...) is skipped with a note. A control character
(Unicode category Cc) in a label is an error at its line.

In every layout valid/test files are optional (missing -> split absent; a name
that is there but cannot be read, such as a dangling symlink, is an error) and the
folder may also hold ``entities.tsv relations.tsv entity2text.txt
relation2text.txt entity2wikidata.json images/ images.tsv``; for grail the
``_ind`` sibling is searched as well.

kg.toml (optional): top-level ``name``, ``layout``, a ``[split]`` table (``train
valid test`` shares and ``seed``, for ``files.all``) and a ``[files]`` table with
``train valid test graph`` or ``all`` (canonical only), ``source`` (read the graph from that
folder; its own kg.toml is NOT read, so redirects never chain), ``entity_text``,
``relation_text``, ``images`` (a path or a list of paths). Relative paths resolve
against kg.toml's folder; unknown keys and missing paths are errors.

Text precedence: files named in kg.toml come first (in list order), then files
found in the data folder. Per id, the name comes from the first file that gives a
non-empty one, the description likewise. Only canonical-format files
(``id/name/description`` header, e.g. entities.tsv) *declare* ids; kg-bert and
JSON text files only annotate ids that are already in the graph (text for other
ids is ignored). An entity whose file text has a description but no name gets
``derive_name(id)`` as its name (source stays "file").

Everything returned is an absolute, normalised path (``..`` collapsed, symlinks
not followed), so ``source_files`` can be hashed to key caches.
"""

from __future__ import annotations

import csv
import json
import os
import random
import re
import tomllib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import unquote

from artifacts.root import artifact_name_problem

__all__ = [
    "KGFormatError",
    "KGWarning",
    "Text",
    "Split",
    "SplitRequest",
    "KnowledgeGraph",
    "LAYOUTS",
    "TRIPLE_FILE_SUFFIXES",
    "is_triples_file",
    "detect_layout",
    "read_kg",
    "derive_name",
]

LAYOUTS = ("canonical", "grail", "ingram", "openke")
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png"})
TRIPLE_FILE_SUFFIXES = (".tsv", ".txt", ".csv")  # a file with one of these may be given as a whole graph

Triple = tuple[str, str, str]


class KGFormatError(ValueError):
    """Bad input. str(err) is 'FILE:LINE: message' (or 'FILE: message' when no line applies)."""

    def __init__(self, message: str, path: Path | str | None = None, line: int | None = None):
        self.reason = message
        self.path = None if path is None else str(path)
        self.line = line
        if self.path is None:
            text = message
        elif line is None:
            text = f"{self.path}: {message}"
        else:
            text = f"{self.path}:{line}: {message}"
        super().__init__(text)

    def __reduce__(self):  # keep path/line when pickled across processes
        return (type(self), (self.reason, self.path, self.line))


class KGWarning(UserWarning):
    """Non-fatal data problem (duplicates dropped, image missing, split leakage...)."""


@dataclass(frozen=True)
class Text:
    name: str | None
    description: str | None
    source: str  # "file" (from a text file), "derived" (made from the id), or "none"


@dataclass(frozen=True)
class Split:
    graph: str  # name of the triple set that is the inference graph for this split
    queries: str  # name of the triple set holding the query triples


@dataclass(frozen=True)
class SplitRequest:
    """How one triples file is cut into train / valid / test (kg.toml ``[split]``).

    The distinct triples are sorted (so row order never changes the split) and shuffled with
    ``random.Random(seed)``. Walking them in that order, a triple that brings an entity or relation
    not seen before goes to train, so every entity and relation of valid / test is in train (as
    PyKEEN's ``TriplesFactory.split`` with its coverage method); the others fill the rest of train,
    then valid (``round(n * valid)`` triples), then test. A share of 0 leaves that split out.
    """
    train: float = 0.8
    valid: float = 0.1
    test: float = 0.1
    seed: int = 0


@dataclass
class KnowledgeGraph:
    name: str
    root: Path
    layout: str
    triple_sets: dict[str, list[Triple]]
    splits: dict[str, Split]
    entities: list[str]
    relations: list[str]
    entity_text: dict[str, Text]
    relation_text: dict[str, Text]
    images: dict[str, list[Path]]
    source_files: list[Path]
    warnings: list[str]
    # Additions beyond the agreed interface (all defaulted, so they are optional):
    declared_entities: set[str] = field(default_factory=set)  # from entities.tsv / entity2id
    declared_relations: set[str] = field(default_factory=set)  # from relations.tsv / relation2id
    triple_files: dict[str, Path] = field(default_factory=dict)  # set name -> file it came from

    def _split(self, split: str) -> Split:
        try:
            return self.splits[split]
        except KeyError:
            raise KeyError(f"unknown split {split!r} for graph {self.name!r}; have {sorted(self.splits)}") from None

    def inference_graph(self, split: str) -> list[Triple]:
        """Observed triples for `split` (the stored list: do not mutate)."""
        return self.triple_sets[self._split(split).graph]

    def queries(self, split: str) -> list[Triple]:
        """Query triples to rank for `split` (the stored list: do not mutate)."""
        return self.triple_sets[self._split(split).queries]

    def graph_entities(self, split: str) -> set[str]:
        """Entities of the split's inference graph + declared entities."""
        ents = set(self.declared_entities)
        for h, _, t in self.inference_graph(split):
            ents.add(h)
            ents.add(t)
        return ents

    def graph_relations(self, split: str) -> set[str]:
        """Relations of the split's inference graph + declared relations."""
        return {r for _, r, _ in self.inference_graph(split)} | self.declared_relations


# --------------------------------------------------------------------------- names

_MID = re.compile(r"^/[mg]/[0-9A-Za-z_]+$")  # Freebase machine ids
_DOTTED_MID = re.compile(r"^[mg]\.[0-9A-Za-z_]+$")  # the same with '/' -> '.' (image folders)
_WIKIDATA_ID = re.compile(r"^[QPL]\d+$")  # items, properties, lexemes
_WORDNET_OFFSET = re.compile(r"^[nvasr]\d{8}$")  # ImageNet-style wnid
_WORDNET_LEMMA = re.compile(r"^(.+)\.[nvasr]\.\d+$")  # dog.n.01
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# Resource names may contain '/', so take everything after these path markers.
_URI_NAME = re.compile(r"/(?:resource|ontology|property|entity|wiki)/(.+)$")


def _clean_name(text: str) -> str | None:
    text = " ".join(text.replace("_", " ").split())
    if not any(ch.isalpha() for ch in text):
        return None  # ids without letters (offsets, numbers) carry no name
    return text


def derive_name(identifier: str) -> str | None:
    """Readable name from an id, or None when the id is opaque (MIDs, Q-ids, offsets)."""
    s = identifier.strip()
    if s.startswith("<") and s.endswith(">"):
        s = s[1:-1].strip()
    if not s or _MID.match(s) or _DOTTED_MID.match(s) or _WIKIDATA_ID.match(s) or _WORDNET_OFFSET.match(s):
        return None
    if _URI.match(s):
        if "#" in s:
            tail = s.rsplit("#", 1)[1]
        else:
            m = _URI_NAME.search(s.rstrip("/"))
            tail = m.group(1) if m else s.rstrip("/").rsplit("/", 1)[-1]
        tail = unquote(tail)
        if _WIKIDATA_ID.match(tail):
            return None
        return _clean_name(tail)
    if s.startswith("concept:"):  # NELL concept:type:name / concept:relation
        parts = s.split(":")[1:]
        if len(parts) >= 2:
            parts = parts[1:]  # drop the type segment
        return _clean_name(" ".join(parts))
    if s.startswith("concept_"):  # InGram NELL: type boundary unknown, keep it
        return _clean_name(s[len("concept_"):])
    if s.startswith("/"):  # Freebase relation path
        return _clean_name(s.replace("/", " "))
    m = _WORDNET_LEMMA.match(s)
    if m:
        return _clean_name(m.group(1))
    return _clean_name(s)


# --------------------------------------------------------------------------- helpers


def _abs(path: Path | str) -> Path:
    # abspath collapses '..' without resolving symlinks (stable ids for hashing)
    return Path(os.path.abspath(path))


def _present(path: Path) -> bool:
    """Whether an optional file is given. Anything at that name counts, so a dangling or looping
    symlink (or a folder) is read and refused by name instead of its split silently vanishing."""
    return os.path.lexists(path)


def is_triples_file(path: Path | str) -> bool:
    """Whether ``path`` is one file of triples given as a whole graph (instead of a folder or kg.toml)."""
    p = Path(path)
    return p.suffix.lower() in TRIPLE_FILE_SUFFIXES and p.is_file()


class _Ctx:
    """Collects warnings and every file read."""

    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.sources: set[Path] = set()

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        warnings.warn(message, KGWarning, stacklevel=3)

    def read_lines(self, path: Path) -> list[str]:
        """Lines split on '\\n' only (a stray '\\r' inside a field is no line break), trailing '\\r' stripped."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            if path.is_symlink():
                raise KGFormatError(f"symbolic link to a file that does not exist ({os.readlink(path)})",
                                    path) from None
            raise KGFormatError("file not found", path) from None
        except OSError as e:   # a loop of symbolic links, a folder, no permission
            raise KGFormatError(f"cannot read file: {e.strerror}", path) from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise KGFormatError(f"not valid UTF-8 (byte offset {e.start})", path, data.count(b"\n", 0, e.start) + 1) from None
        self.sources.add(_abs(path))
        if text.startswith("\ufeff"):
            text = text[1:]
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


@dataclass
class _TripleSet:
    triples: list[Triple]
    lines: list[int]  # 1-based line of each kept triple (first occurrence)
    path: Path


def _dedup(ctx: _Ctx, path: Path, rows: list[tuple[Triple, int]]) -> _TripleSet:
    seen: set[Triple] = set()
    triples: list[Triple] = []
    lines: list[int] = []
    for triple, line in rows:
        if triple in seen:
            continue
        seen.add(triple)
        triples.append(triple)
        lines.append(line)
    dropped = len(rows) - len(triples)
    if dropped:
        ctx.warn(f"{path}: dropped {dropped} duplicate triple(s); kept {len(triples)} distinct of {len(rows)} rows")
    return _TripleSet(triples, lines, path)


# Unicode category Cc is exactly U+0000-U+001F and U+007F-U+009F; TAB separates fields.
_CONTROL_CHARACTER = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
# Column names of a header row, per column (PyKEEN writes head/relation/tail, RDF tools
# subject/predicate/object, graph tools source/target).
_HEADER_NAMES = (
    frozenset({"head", "h", "subject", "subj", "s", "source", "src", "from", "head_id", "head_label"}),
    frozenset({"relation", "r", "rel", "predicate", "pred", "p", "relation_id", "relation_label"}),
    frozenset({"tail", "t", "object", "obj", "o", "target", "dst", "to", "tail_id", "tail_label"}),
)


def _control_character_error(raw: str, path: Path, line: int) -> None:
    found = _CONTROL_CHARACTER.search(raw)
    if found:
        raise KGFormatError(f"control character U+{ord(found.group()):04X} in a label (labels must not hold "
                            f"control characters): {raw[:120]!r}", path, line)


def _is_header(fields: list[str], path: Path, line: int) -> bool:
    """Whether a first row names the columns head, relation, tail; column names in another order
    are an error (the columns would be read as the wrong parts of each triple)."""
    columns = [next((k for k, names in enumerate(_HEADER_NAMES) if f.strip().lower() in names), None)
               for f in fields]
    if len(columns) != 3 or None in columns:
        return False
    if columns != [0, 1, 2]:
        raise KGFormatError(f"a header row naming the columns in another order than head, relation, tail: "
                            f"{fields!r}; put them in that order", path, line)
    return True


def _read_triples(ctx: _Ctx, path: Path) -> _TripleSet:
    """Rows ``head relation tail``: tab-separated, or comma-separated with CSV quoting for a .csv file.
    A first row of column names is skipped, with a note."""
    csv_file = path.suffix.lower() == ".csv"
    rows: list[tuple[Triple, int]] = []
    first = True
    for i, raw in enumerate(ctx.read_lines(path), 1):
        if not raw.strip():
            continue
        _control_character_error(raw, path, i)
        if csv_file:
            try:
                parts = next(csv.reader([raw], strict=True))
            except csv.Error as e:
                raise KGFormatError(f"malformed CSV row ({e}): {raw[:120]!r}", path, i) from None
        else:
            parts = raw.split("\t")
        if first:
            first = False
            if _is_header(parts, path, i):
                ctx.warn(f"{path}:{i}: header row {raw!r} skipped (column names, not a triple)")
                continue
        if len(parts) != 3 or any(not p.strip() for p in parts):
            raise KGFormatError(
                f"expected 3 non-empty {'comma' if csv_file else 'tab'}-separated fields (head, relation, tail), "
                f"got {len(parts)} field(s): {raw[:120]!r}",
                path,
                i,
            )
        rows.append(((parts[0], parts[1], parts[2]), i))
    # Ids are kept as written, everywhere: 'x ' would silently be another entity than 'x'.
    spaced = [line for (triple, line) in rows if any(f != f.strip() for f in triple)]
    if spaced:
        ctx.warn(f"{path}: {len(spaced)} row(s) have an id with leading or trailing spaces (first: line "
                 f"{spaced[0]}); ids are kept as written, so such an id names another entity or relation")
    return _dedup(ctx, path, rows)


def _openke_rows(ctx: _Ctx, path: Path) -> list[tuple[int, str]]:
    """(line, text) of the data rows after checking the record-count line."""
    lines = ctx.read_lines(path)
    if not lines or not lines[0].strip():
        raise KGFormatError("expected the record count on the first line", path, 1)
    try:
        count = int(lines[0].strip())
    except ValueError:
        raise KGFormatError(f"expected the record count on the first line, got {lines[0][:80]!r}", path, 1) from None
    rows = [(i, ln) for i, ln in enumerate(lines[1:], 2) if ln.strip()]
    if count != len(rows):
        raise KGFormatError(f"header says {count} records but the file has {len(rows)}", path, 1)
    return rows


def _parse_id(text: str, path: Path, line: int, what: str) -> int:
    if not text.isdigit():
        raise KGFormatError(f"{what} must be a non-negative integer, got {text!r}", path, line)
    return int(text)


def _read_openke_ids(ctx: _Ctx, path: Path, what: str) -> dict[int, str]:
    by_id: dict[int, str] = {}
    names: dict[str, int] = {}
    for i, raw in _openke_rows(ctx, path):
        _control_character_error(raw, path, i)
        parts = raw.strip().rsplit(None, 1)  # names have no spaces, but split on the LAST run to be safe
        if len(parts) != 2:
            raise KGFormatError(f"expected '<{what} name> <id>', got {raw[:120]!r}", path, i)
        name, num = parts[0], _parse_id(parts[1], path, i, f"{what} id")
        if num in by_id:
            raise KGFormatError(f"{what} id {num} is used twice", path, i)
        if name in names:
            raise KGFormatError(f"{what} {name!r} is listed twice", path, i)
        by_id[num] = name
        names[name] = num
    return by_id


def _read_openke_triples(ctx: _Ctx, path: Path, ents: dict[int, str], rels: dict[int, str]) -> _TripleSet:
    rows: list[tuple[Triple, int]] = []
    for i, raw in _openke_rows(ctx, path):
        parts = raw.split()
        if len(parts) != 3:
            raise KGFormatError(f"expected '<head id> <tail id> <relation id>', got {len(parts)} field(s): {raw[:120]!r}", path, i)
        h = _parse_id(parts[0], path, i, "head id")
        t = _parse_id(parts[1], path, i, "tail id")
        r = _parse_id(parts[2], path, i, "relation id")
        for num, table, what in ((h, ents, "entity"), (t, ents, "entity"), (r, rels, "relation")):
            if num not in table:
                raise KGFormatError(f"{what} id {num} is not in {what}2id.txt", path, i)
        rows.append(((ents[h], rels[r], ents[t]), i))  # file order is head tail relation
    return _dedup(ctx, path, rows)


# --------------------------------------------------------------------------- kg.toml


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

_TOP_KEYS = ("name", "layout", "files", "split")
_FILE_KEYS = ("train", "valid", "test", "graph", "all", "source", "entity_text", "relation_text", "images")
_TRIPLE_KEYS = ("train", "valid", "test", "graph", "all")
_SPLIT_KEYS = ("train", "valid", "test", "seed")
_LIST_KEYS = ("entity_text", "relation_text", "images")


@dataclass
class _Config:
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


def _toml_line(text: str, key: str, table: str | None = None) -> int | None:
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


def _parse_toml(path: Path) -> tuple[str, dict]:
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


def _load_config(toml_path: Path) -> _Config:
    toml_text, data = _parse_toml(toml_path)
    cfg = _Config(path=toml_path, text=toml_text)
    base = toml_path.parent

    def err(message: str, key: str, table: str | None = None) -> KGFormatError:
        return KGFormatError(message, toml_path, _toml_line(toml_text, key, table))

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
            p = _abs(base / Path(v).expanduser())
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


def _locate(path: Path | str, toml_name: str = "kg.toml", what: str = "graph") -> tuple[Path, Path | None]:
    """(folder, its ``toml_name`` or None) for a folder or a .toml path (graphs and task folders alike)."""
    p = _abs(Path(path).expanduser())
    if not p.exists():
        raise KGFormatError("path does not exist", p)
    if p.is_file():
        if p.suffix.lower() != ".toml":
            raise KGFormatError(f"expected a {what} folder or a {toml_name} file", p)
        return p.parent, p
    toml = p / toml_name
    return p, (toml if toml.is_file() else None)


def _detect_from_files(folder: Path) -> str:
    has = lambda name: _present(folder / name)  # noqa: E731
    if has("entity2id.txt") and has("relation2id.txt") and has("train2id.txt"):
        return "openke"
    if has("msg.txt") and has("train.txt"):
        return "ingram"
    if has("train.txt"):
        return "grail"
    if has("train.tsv") or has("graph.tsv"):
        return "canonical"
    lone = sorted(p.name for p in folder.iterdir() if is_triples_file(p)) if folder.is_dir() else []
    raise KGFormatError(
        "cannot detect the layout: expected train.tsv or graph.tsv (canonical), train.txt (grail), "
        "train.txt + msg.txt (ingram) or entity2id.txt + relation2id.txt + train2id.txt (openke)"
        + (f"; a file of all triples ({lone[0]}?) is read when given itself, or named as 'files.all' in kg.toml"
           if lone else ""),
        folder,
    )


def _resolve_layout(folder: Path, cfg: _Config) -> tuple[str, Path]:
    """(layout, data folder)."""
    data_dir = cfg.source or folder
    if cfg.layout:
        layout = cfg.layout
    elif cfg.triple_files and cfg.source is None:
        layout = "canonical"  # triple files named in kg.toml are canonical by definition
    else:
        layout = _detect_from_files(data_dir)
    if cfg.triple_files and layout != "canonical":
        key = next(iter(cfg.triple_files))
        raise KGFormatError(
            f"'files.{key}' only applies to the canonical layout (this graph is {layout!r})",
            cfg.path,
            _toml_line(cfg.text, key, "files"),
        )
    return layout, data_dir


def _graph_config(path: Path | str) -> tuple[Path, _Config]:
    """(folder, config) of a graph folder, its kg.toml, or one triples file given alone (read as
    ``files.all``, the graph named after the file)."""
    p = _abs(Path(path).expanduser())
    if is_triples_file(p):
        return p.parent, _Config(name=p.stem, triple_files={"all": p})
    folder, toml = _locate(p)
    return folder, (_load_config(toml) if toml else _Config())


def graph_name(path: Path | str) -> str:
    """The name ``read_kg`` gives the graph at ``path`` (kg.toml 'name', else the folder's; a triples
    file's name without its suffix), without reading its data."""
    folder, cfg = _graph_config(path)
    return cfg.name or folder.name


def detect_layout(path: Path) -> str:
    """Layout name of a graph folder (or kg.toml): kg.toml `layout`, else from the files present."""
    folder, cfg = _graph_config(path)
    return _resolve_layout(folder, cfg)[0]


# --------------------------------------------------------------------------- layouts


@dataclass
class _Loaded:
    sets: dict[str, _TripleSet] = field(default_factory=dict)
    splits: dict[str, Split] = field(default_factory=dict)
    declared_entities: set[str] = field(default_factory=set)
    declared_relations: set[str] = field(default_factory=set)
    aux_dirs: list[Path] = field(default_factory=list)  # folders searched for text/images
    id_files: dict[str, Path] = field(default_factory=dict)  # "entity" / "relation" -> a file listing the ids


def _require(path: Path) -> Path:
    if not _present(path):
        raise KGFormatError("missing required file", path)
    return path


def _load_canonical(ctx: _Ctx, data_dir: Path, overrides: dict[str, Path], split: SplitRequest | None) -> _Loaded:
    if "all" in overrides:
        return _load_one_file(ctx, data_dir, overrides["all"], split)
    out = _Loaded(aux_dirs=[data_dir])
    paths = {k: overrides.get(k, data_dir / f"{k}.tsv") for k in ("train", "graph", "valid", "test")}
    if not _present(paths["train"]) and not _present(paths["graph"]):
        raise KGFormatError("missing required file (train.tsv, or graph.tsv as the inference graph)", paths["train"])
    for key, p in paths.items():
        if _present(p):
            out.sets[key] = _read_triples(ctx, p)
    base = "graph" if "graph" in out.sets else "train"
    if "train" in out.sets:
        out.splits["train"] = Split("train", "train")
    for key in ("valid", "test"):
        if key in out.sets:
            out.splits[key] = Split(base, key)
    return out


def _load_one_file(ctx: _Ctx, data_dir: Path, path: Path, split: SplitRequest | None) -> _Loaded:
    """One file of every triple: the train split alone, or cut as ``split`` asks."""
    out = _Loaded(aux_dirs=[data_dir])
    whole = _read_triples(ctx, path)
    out.splits["train"] = Split("train", "train")
    if split is None:
        out.sets["train"] = whole
        ctx.warn(f"{path}: one triples file and no split asked for: its {len(whole.triples)} triples are the train "
                 "split, and nothing is held out to evaluate on; to split it, name it as files.all in a kg.toml "
                 "with a [split] table (README: 'The KG directory')")
        return out
    for key, part in _split_one_file(whole, split).items():
        out.sets[key] = part
        if key != "train":
            out.splits[key] = Split("train", key)
    return out


def _split_one_file(whole: _TripleSet, request: SplitRequest) -> dict[str, _TripleSet]:
    """``train`` and the ``valid`` / ``test`` parts with a share above 0, each in file order (see
    :class:`SplitRequest`)."""
    n = len(whole.triples)
    order = sorted(range(n), key=whole.triples.__getitem__)
    random.Random(request.seed).shuffle(order)
    held_out = {key: round(n * share) for key, share in (("valid", request.valid), ("test", request.test)) if share > 0}
    n_train = n - sum(held_out.values())
    cover, rest = [], []
    seen_entities: set[str] = set()
    seen_relations: set[str] = set()
    for i in order:
        h, r, t = whole.triples[i]
        if h in seen_entities and t in seen_entities and r in seen_relations:
            rest.append(i)
            continue
        cover.append(i)
        seen_entities.update((h, t))
        seen_relations.add(r)
    if len(cover) > n_train:
        raise KGFormatError(
            f"cannot split {n} triples {request.train:g} / {request.valid:g} / {request.test:g}: train must hold "
            f"every entity and relation, which takes {len(cover)} triples here, more than its {n_train}; "
            "ask for a larger train share in kg.toml [split]", whole.path)
    parts = {"train": cover + rest[:n_train - len(cover)]}
    start = n_train - len(cover)
    for key, size in held_out.items():
        parts[key] = rest[start:start + size]
        start += size
    return {key: _TripleSet([whole.triples[i] for i in sorted(chosen)], [whole.lines[i] for i in sorted(chosen)],
                            whole.path)
            for key, chosen in parts.items()}


def _load_grail(ctx: _Ctx, data_dir: Path) -> _Loaded:
    out = _Loaded(aux_dirs=[data_dir])
    ind = data_dir.parent / f"{data_dir.name}_ind"
    full = not data_dir.name.endswith("_ind") and _present(ind / "train.txt")
    out.sets["train"] = _read_triples(ctx, _require(data_dir / "train.txt"))
    out.splits["train"] = Split("train", "train")
    for key in ("valid", "test"):
        if _present(data_dir / f"{key}.txt"):
            out.sets[key] = _read_triples(ctx, data_dir / f"{key}.txt")
    if not full:
        for key in ("valid", "test"):
            if key in out.sets:
                out.splits[key] = Split("train", key)
        return out
    out.aux_dirs.append(ind)
    out.sets["ind_graph"] = _read_triples(ctx, ind / "train.txt")
    for key in ("valid", "test"):
        if _present(ind / f"{key}.txt"):
            out.sets[f"ind_{key}"] = _read_triples(ctx, ind / f"{key}.txt")
    if "valid" in out.sets:
        out.splits["valid"] = Split("train", "valid")
    if "ind_test" in out.sets:
        out.splits["test"] = Split("ind_graph", "ind_test")
    if "ind_valid" in out.sets:
        out.splits["ind_valid"] = Split("ind_graph", "ind_valid")
    return out


def _load_ingram(ctx: _Ctx, data_dir: Path) -> _Loaded:
    out = _Loaded(aux_dirs=[data_dir])
    out.sets["train"] = _read_triples(ctx, _require(data_dir / "train.txt"))
    out.sets["msg"] = _read_triples(ctx, _require(data_dir / "msg.txt"))
    out.splits["train"] = Split("train", "train")
    for key in ("valid", "test"):
        if _present(data_dir / f"{key}.txt"):
            out.sets[key] = _read_triples(ctx, data_dir / f"{key}.txt")
            out.splits[key] = Split("msg", key)
    return out


def _load_openke(ctx: _Ctx, data_dir: Path) -> _Loaded:
    out = _Loaded(aux_dirs=[data_dir])
    ents = _read_openke_ids(ctx, _require(data_dir / "entity2id.txt"), "entity")
    rels = _read_openke_ids(ctx, _require(data_dir / "relation2id.txt"), "relation")
    out.declared_entities = set(ents.values())
    out.declared_relations = set(rels.values())
    out.id_files = {"entity": data_dir / "entity2id.txt", "relation": data_dir / "relation2id.txt"}
    out.sets["train"] = _read_openke_triples(ctx, _require(data_dir / "train2id.txt"), ents, rels)
    out.splits["train"] = Split("train", "train")
    for key in ("valid", "test"):
        p = data_dir / f"{key}2id.txt"
        if _present(p):
            out.sets[key] = _read_openke_triples(ctx, p, ents, rels)
            out.splits[key] = Split("train", key)
    return out


# --------------------------------------------------------------------------- text

_CANONICAL_TEXT_NAMES = {"entities.tsv", "relations.tsv"}


@dataclass
class _TextRecords:
    path: Path
    declares: bool  # canonical files list the graph's ids; others only annotate
    rows: dict[str, tuple[str | None, str | None]]


def _none_if_blank(s: str | None) -> str | None:
    if s is None:
        return None
    s = s.strip()
    return s or None


def _read_text_file(ctx: _Ctx, path: Path, kind: str) -> _TextRecords:
    """Auto-detect canonical tsv / kg-bert id<TAB>text / entity2wikidata.json."""
    rows: dict[str, tuple[str | None, str | None]] = {}
    dups = 0
    if path.suffix.lower() == ".json":
        raw = "\n".join(ctx.read_lines(path))
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as e:
            raise KGFormatError(f"invalid JSON: {e.msg}", path, e.lineno) from None
        if not isinstance(data, dict):
            raise KGFormatError("expected a JSON object keyed by id", path)
        for key, value in data.items():
            if isinstance(value, str):
                rows[key] = (_none_if_blank(value), None)
            elif isinstance(value, dict):
                label, desc = value.get("label"), value.get("description")
                rows[key] = (
                    _none_if_blank(label) if isinstance(label, str) else None,
                    _none_if_blank(desc) if isinstance(desc, str) else None,
                )
            else:
                raise KGFormatError(f"value for {key!r} must be an object with 'label'/'description' or a string", path)
        return _TextRecords(path, False, rows)

    lines = ctx.read_lines(path)
    first = next(((i, ln) for i, ln in enumerate(lines, 1) if ln.strip()), None)
    head = [f.strip().lower() for f in first[1].split("\t")] if first else []
    is_canonical = len(head) >= 2 and head[0] == "id" and head[1] == "name"
    if path.name in _CANONICAL_TEXT_NAMES and first is not None and not is_canonical:
        raise KGFormatError("expected the header row 'id<TAB>name<TAB>description'", path, first[0])
    if is_canonical:
        if len(head) > 3 or (len(head) == 3 and head[2] != "description"):
            raise KGFormatError("expected the header row 'id<TAB>name<TAB>description'", path, first[0])
        for i, ln in enumerate(lines, 1):
            if i <= first[0] or not ln.strip():
                continue
            parts = ln.split("\t")
            if len(parts) > 3 or not parts[0].strip():
                raise KGFormatError(f"expected 'id[<TAB>name[<TAB>description]]' with a non-empty id, got {ln[:120]!r}", path, i)
            _control_character_error(parts[0], path, i)   # the id declares an entity or relation
            if parts[0] in rows:
                dups += 1
                continue
            rows[parts[0]] = (_none_if_blank(parts[1]) if len(parts) > 1 else None, _none_if_blank(parts[2]) if len(parts) > 2 else None)
    else:
        texts: list[tuple[str, str]] = []
        for i, ln in enumerate(lines, 1):
            if not ln.strip():
                continue
            key, sep, text = ln.partition("\t")
            if not sep or not key.strip():
                raise KGFormatError(f"expected 'id<TAB>text', got {ln[:120]!r}", path, i)
            texts.append((key, text))
        # WN18RR entity2text is 'lemma, gloss' keyed by numeric synset offsets.
        wordnet = kind == "entity" and bool(texts) and all(k.isdigit() for k, _ in texts)
        for key, text in texts:
            if key in rows:
                dups += 1
                continue
            if wordnet and ", " in text:
                name, desc = text.split(", ", 1)
                rows[key] = (_none_if_blank(name), _none_if_blank(desc))
            else:
                rows[key] = (_none_if_blank(text), None)
    if dups:
        ctx.warn(f"{path}: {dups} repeated id(s) ignored (first occurrence kept)")
    return _TextRecords(path, is_canonical, rows)


def _text_files(cfg_files: list[Path], aux_dirs: list[Path], names: tuple[str, ...]) -> list[Path]:
    found = list(cfg_files)
    for d in aux_dirs:
        for n in names:
            if _present(d / n):
                found.append(_abs(d / n))
    out: list[Path] = []
    for p in found:  # a file named twice is read once
        if p not in out:
            out.append(p)
    return out


def _build_text(ids: list[str], records: list[_TextRecords]) -> dict[str, Text]:
    result: dict[str, Text] = {}
    for ident in ids:
        name = desc = None
        hit = False
        for rec in records:
            row = rec.rows.get(ident)
            if row is None:
                continue
            hit = True
            name = name or row[0]
            desc = desc or row[1]
            if name and desc:
                break
        if hit and (name or desc):
            result[ident] = Text(name or derive_name(ident), desc, "file")
        else:
            derived = derive_name(ident)
            result[ident] = Text(derived, None, "derived") if derived else Text(None, None, "none")
    return result


# --------------------------------------------------------------------------- images


def _image_key(ident: str) -> str:
    return ident.replace("/", ".").lstrip(".")


def _collect_images(ctx: _Ctx, entities: set[str], aux_dirs: list[Path], mapping_files: list[Path]) -> dict[str, list[Path]]:
    found: dict[str, set[Path]] = {}
    by_key: dict[str, str] | None = None

    def match(name: str) -> str | None:
        nonlocal by_key
        if name in entities:
            return name
        if by_key is None:  # built lazily: most graphs have no image folder
            by_key = {_image_key(e): e for e in entities}
        return by_key.get(name)

    for d in aux_dirs:
        img_dir = d / "images"
        if not img_dir.is_dir():
            continue
        unknown = 0
        for sub in sorted(img_dir.iterdir()):
            if not sub.is_dir() or sub.name.startswith("."):
                continue
            files = [f for f in sub.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS and not f.name.startswith(".")]
            if not files:
                continue
            ent = match(sub.name)
            if ent is None:
                unknown += 1
                continue
            found.setdefault(ent, set()).update(_abs(f) for f in files)
        if unknown:
            ctx.warn(f"{img_dir}: ignored {unknown} image folder(s) whose name is not an entity of the graph")

    maps = list(mapping_files) + [_abs(d / "images.tsv") for d in aux_dirs if _present(d / "images.tsv")]
    seen_maps: set[Path] = set()
    for mp in maps:
        if mp in seen_maps:
            continue
        seen_maps.add(mp)
        missing: list[str] = []
        unknown = 0
        for i, ln in enumerate(ctx.read_lines(mp), 1):
            if not ln.strip():
                continue
            parts = ln.split("\t")
            if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
                raise KGFormatError(f"expected 'entity id<TAB>image path', got {ln[:120]!r}", mp, i)
            if parts[0] not in entities:
                unknown += 1
                continue
            img = _abs(mp.parent / parts[1])
            if not img.is_file():
                missing.append(f"line {i}: {parts[1]}")
                continue
            found.setdefault(parts[0], set()).add(img)
        if missing:
            shown = "; ".join(missing[:3]) + ("; ..." if len(missing) > 3 else "")
            ctx.warn(f"{mp}: skipped {len(missing)} image(s) whose file does not exist ({shown})")
        if unknown:
            ctx.warn(f"{mp}: ignored {unknown} row(s) for ids that are not entities of the graph")

    images = {e: sorted(paths) for e, paths in sorted(found.items())}
    for paths in images.values():
        ctx.sources.update(paths)
    return images


# --------------------------------------------------------------------------- validation


def _check_splits(ctx: _Ctx, loaded: _Loaded) -> None:
    for key in ("train", "graph", "msg", "ind_graph"):  # graph files, even when no split uses them
        ts = loaded.sets.get(key)
        if ts is not None and not ts.triples:
            raise KGFormatError(f"empty graph: no triples in {key!r}", ts.path)
    for split, sp in loaded.splits.items():
        graph = loaded.sets[sp.graph]
        if not graph.triples:
            raise KGFormatError(f"empty graph: no triples in the inference graph {sp.graph!r} of split {split!r}", graph.path)
    checked: set[tuple[str, str]] = set()
    for split, sp in loaded.splits.items():
        if sp.graph == sp.queries or (sp.graph, sp.queries) in checked:
            continue
        checked.add((sp.graph, sp.queries))
        graph, queries = loaded.sets[sp.graph], loaded.sets[sp.queries]
        ents = set(loaded.declared_entities)
        rels = set(loaded.declared_relations)
        for h, r, t in graph.triples:
            ents.add(h)
            ents.add(t)
            rels.add(r)
        for (h, r, t), line in zip(queries.triples, queries.lines):
            for role, value, known in (("head entity", h, ents), ("relation", r, rels), ("tail entity", t, ents)):
                if value not in known:
                    raise KGFormatError(
                        f"{role} {value!r} of split {split!r} is not in its inference graph {sp.graph!r} "
                        f"({graph.path.name}) nor declared",
                        queries.path,
                        line,
                    )
        overlap = set(queries.triples).intersection(graph.triples)
        if overlap:
            ctx.warn(
                f"{queries.path}: {len(overlap)} of {len(queries.triples)} distinct query triples of split {split!r} "
                f"also occur in its inference graph {sp.graph!r} ({graph.path.name})"
            )


# --------------------------------------------------------------------------- entry point


def read_kg(path: Path | str, name: str | None = None) -> KnowledgeGraph:
    """Read a graph folder, its kg.toml, or one triples file. Raises KGFormatError on bad input."""
    folder, cfg = _graph_config(path)
    ctx = _Ctx()
    if cfg.path is not None:
        ctx.sources.add(cfg.path)
    layout, data_dir = _resolve_layout(folder, cfg)

    if layout == "canonical":
        loaded = _load_canonical(ctx, data_dir, cfg.triple_files, cfg.split)
    elif layout == "grail":
        loaded = _load_grail(ctx, data_dir)
    elif layout == "ingram":
        loaded = _load_ingram(ctx, data_dir)
    else:
        loaded = _load_openke(ctx, data_dir)
    if cfg.source is not None and folder not in loaded.aux_dirs:
        loaded.aux_dirs.insert(0, folder)  # text/images placed next to a redirecting kg.toml

    ent_records = [
        _read_text_file(ctx, p, "entity")
        for p in _text_files(cfg.entity_text, loaded.aux_dirs, ("entities.tsv", "entity2text.txt", "entity2wikidata.json"))
    ]
    rel_records = [
        _read_text_file(ctx, p, "relation")
        for p in _text_files(cfg.relation_text, loaded.aux_dirs, ("relations.tsv", "relation2text.txt"))
    ]
    for rec in ent_records:
        if rec.declares:
            loaded.declared_entities.update(rec.rows)
    for rec in rel_records:
        if rec.declares:
            loaded.declared_relations.update(rec.rows)

    _check_splits(ctx, loaded)

    in_triples: set[str] = set()
    rel_in_triples: set[str] = set()
    for ts in loaded.sets.values():
        for h, r, t in ts.triples:
            in_triples.add(h)
            in_triples.add(t)
            rel_in_triples.add(r)
    # Declared but in no triple: kept (an isolated entity is still a candidate answer), but a typo
    # in an id would otherwise add a candidate silently.
    for what, plural, declared, used, records in (
            ("entity", "entities", loaded.declared_entities, in_triples, ent_records),
            ("relation", "relations", loaded.declared_relations, rel_in_triples, rel_records)):
        unused = sorted(declared - used)
        if unused:
            files = ", ".join(([str(loaded.id_files[what])] if what in loaded.id_files else [])
                              + [str(r.path) for r in records if r.declares])
            shown = ", ".join(repr(u) for u in unused[:3]) + (", ..." if len(unused) > 3 else "")
            ctx.warn(f"{files}: {len(unused)} {what} id(s) in no triple, kept as isolated {plural}: {shown}")
    ent_set = set(loaded.declared_entities) | in_triples
    rel_set = set(loaded.declared_relations) | rel_in_triples
    entities = sorted(ent_set)
    relations = sorted(rel_set)

    images = _collect_images(ctx, ent_set, loaded.aux_dirs, cfg.images)

    return KnowledgeGraph(
        name=name or cfg.name or folder.name,
        root=folder,
        layout=layout,
        triple_sets={k: ts.triples for k, ts in loaded.sets.items()},
        splits=dict(loaded.splits),
        entities=entities,
        relations=relations,
        entity_text=_build_text(entities, ent_records),
        relation_text=_build_text(relations, rel_records),
        images=images,
        source_files=sorted(ctx.sources),
        warnings=ctx.warnings,
        declared_entities=loaded.declared_entities,
        declared_relations=loaded.declared_relations,
        triple_files={k: ts.path for k, ts in loaded.sets.items()},
    )
