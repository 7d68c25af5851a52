"""Read an entity-alignment or entity-linking task folder into one in-memory object.

Pure Python + stdlib, built on :mod:`tokenizer_stage.kg_reader` (graphs are
:class:`KnowledgeGraph` objects, bad input raises :class:`KGFormatError` whose
text is ``FILE:LINE: reason``, or ``FILE: reason`` where no line applies).

Layouts (``detect_task_layout``):

* ``alignment:canonical``: a folder with ``task.toml``::

      [task]
      kind = "alignment"
      name = "my-task"             # optional, default: the folder name
      graph1 = "kg1"               # any folder (or kg.toml) read_kg reads
      graph2 = "kg2"
      [links]
      train = "train_links.tsv"    # and/or valid, test: graph-1 entity <TAB> graph-2 entity
      test = "test_links.tsv"
      # or: all = "links.tsv", test_fraction = 0.7, seed = 0 (seeded split, see below)
      missing = "error"            # or "skip": drop pairs whose entity is not in its graph

  Paths are relative to task.toml (absolute paths allowed).
* ``alignment:dbp15k``: the MCLEA/EVA DBP15K folder (``ent_ids_1 ent_ids_2
  triples_1 triples_2 ill_ent_ids``, plus ``../translated_ent_name/dbp_<folder>.json``
  when present). Both graphs are built in memory; gold pairs are split 30% train /
  70% test by a seeded shuffle (seed 0), the usual protocol.
* ``linking:canonical``: a folder with ``task.toml``::

      [task]
      kind = "linking"
      name = "my-kb"
      [kb]
      entities = "kb.tsv"           # id <TAB> name [<TAB> description]
      images = "images/mapping.tsv" # optional: entity id <TAB> image path (relative to this file)
      graph = "kg"                  # optional: a graph (read_kg) whose triples connect KB entities
      [mentions]
      train = "train.tsv"           # and/or valid, test:
      test = "test.tsv"             # mention id <TAB> mention <TAB> context <TAB> entity id [<TAB> image]

* ``linking:wikimel``: ``Wikidata-MEL.json splits.json qid2ne.json`` (+ ``qid2abs.json``).
* ``linking:richpedia``: ``train.json test.json qid2ne.json`` (+ ``qid2abs.json``,
  optional ``dev.json``).

Link pairs and mentions keep their file order within a split. Link labels are
matched to graph entities exactly, else after removing surrounding ``<`` ``>``
on either side (DB15K writes ``<http://dbpedia.org/resource/X>``, link files
often ``http://dbpedia.org/resource/X``); the graph's own label is stored.

JSON files have no useful line numbers, so their errors read
``FILE: sample KEY: reason``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from artifacts.root import artifact_name_problem
from tokenizer_stage.kg_reader import (
    KGFormatError,
    KnowledgeGraph,
    Split,
    Text,
    _abs,
    _collect_images,
    _Ctx,
    _parse_toml,
    _toml_line,
    _locate as _locate_folder,
    derive_name,
    graph_name,
    is_triples_file,
    read_kg,
)

__all__ = [
    "TASK_LAYOUTS",
    "AlignmentTask",
    "Mention",
    "LinkingTask",
    "detect_task_layout",
    "read_task",
    "read_alignment_task",
    "read_linking_task",
]

TASK_LAYOUTS = (
    "alignment:canonical",
    "alignment:dbp15k",
    "linking:canonical",
    "linking:wikimel",
    "linking:richpedia",
)
TASK_TOML = "task.toml"
DBP15K_TEST_FRACTION = 0.7
DBP15K_SEED = 0

_DBP15K_FILES = ("ent_ids_1", "ent_ids_2", "triples_1", "triples_2", "ill_ent_ids")
_WIKIMEL_FILES = ("Wikidata-MEL.json", "splits.json", "qid2ne.json")
_RICHPEDIA_FILES = ("train.json", "test.json", "qid2ne.json")
_SPLIT_KEYS = ("train", "valid", "test")


@dataclass
class AlignmentTask:
    name: str
    root: Path
    layout: str  # "canonical" | "dbp15k"
    graphs: tuple[KnowledgeGraph, KnowledgeGraph]
    # split -> (label in graphs[0].entities, label in graphs[1].entities)
    links: dict[str, list[tuple[str, str]]]
    source_files: list[Path]  # every file read (graph files included), for fingerprints
    warnings: list[str]  # graph warnings first, then the task's own


@dataclass(frozen=True)
class Mention:
    mention_id: str
    text: str  # surface form, non-empty, surrounding whitespace removed
    context: str  # sentence around it ("" if none)
    entity: str | None  # gold KB entity label (None = unlabelled, prediction only)
    image: Path | None = None


@dataclass
class LinkingTask:
    name: str
    root: Path
    layout: str  # "canonical" | "wikimel" | "richpedia"
    kb: KnowledgeGraph  # may have no triples (triple_sets={}, splits={})
    mentions: dict[str, list[Mention]]  # split -> mentions
    source_files: list[Path]
    warnings: list[str]


# --------------------------------------------------------------------------- task.toml


@dataclass
class _Toml:
    path: Path
    text: str
    data: dict[str, Any]

    def err(self, message: str, key: str, table: str | None = None) -> KGFormatError:
        return KGFormatError(message, self.path, _toml_line(self.text, key, table))

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
                raise KGFormatError(f"missing required key '{tname}.{key}'", self.path, _toml_line(self.text, tname))
            return None
        value = table[key]
        if not isinstance(value, str) or not value.strip():
            raise self.err(f"'{tname}.{key}' must be a non-empty string", key, tname)
        return value

    def path_value(self, table: dict[str, Any], tname: str, key: str, required: bool = False, folder_ok: bool = False) -> Path | None:
        value = self.string(table, tname, key, required)
        if value is None:
            return None
        p = _abs(self.path.parent / Path(value).expanduser())
        ok = p.exists() if folder_ok else p.is_file()
        if not ok:
            raise self.err(f"'{tname}.{key}': {'path' if folder_ok else 'file'} does not exist: {p}", key, tname)
        return p


def _graph_path(cfg: _Toml, table: dict[str, Any], tname: str, key: str, required: bool = False) -> Path | None:
    """A path a task.toml names as a graph; a task folder there is refused at its line (it would
    otherwise fail later as a graph with odd files)."""
    path = cfg.path_value(table, tname, key, required, folder_ok=True)
    if path is not None and detect_task_layout(path) is not None:
        raise cfg.err(f"'{tname}.{key}': {path} is a task folder, not a graph", key, tname)
    return path


def _read_toml(path: Path) -> _Toml:
    return _Toml(path, *_parse_toml(path))


def _task_kind(cfg: _Toml) -> str:
    task = cfg.data.get("task")
    if not isinstance(task, dict):
        raise KGFormatError("missing required table [task] (with kind = \"alignment\" or \"linking\")", cfg.path)
    kind = task.get("kind")
    if kind is None:
        raise KGFormatError("missing required key 'task.kind'", cfg.path, _toml_line(cfg.text, "task"))
    if kind not in ("alignment", "linking"):
        raise cfg.err(f"unknown task kind {kind!r} (allowed: alignment, linking)", "kind", "task")
    return kind


def _check_top(cfg: _Toml, allowed: tuple[str, ...]) -> None:
    for key in cfg.data:
        if key not in allowed:
            raise cfg.err(f"unknown key {key!r} (allowed: {', '.join(allowed)})", key)


def _task_name(cfg: _Toml, task: dict[str, Any], name: str | None, folder: Path) -> str:
    given = cfg.string(task, "task", "name")
    problem = artifact_name_problem(given) if given else None
    if problem:   # the name is the artifact's folder name under the output root
        raise cfg.err(f"'task.name' {given!r} {problem}", "name", "task")
    return name or given or folder.name


# --------------------------------------------------------------------------- detection


def _locate(path: Path | str) -> tuple[Path, Path | None]:
    """(task folder, task.toml or None) for a folder or a task.toml path."""
    return _locate_folder(path, TASK_TOML, "task")


def _detect(folder: Path, toml: Path | None) -> str | None:
    if toml is not None:
        cfg = _read_toml(toml)
        if toml.name != TASK_TOML and "task" not in cfg.data:
            return None  # some other TOML, e.g. a kg.toml given to a caller that accepts graphs and tasks
        return f"{_task_kind(cfg)}:canonical"
    has = lambda name: (folder / name).is_file()  # noqa: E731
    if all(has(f) for f in _DBP15K_FILES):
        return "alignment:dbp15k"
    if all(has(f) for f in _WIKIMEL_FILES):
        return "linking:wikimel"
    if all(has(f) for f in _RICHPEDIA_FILES):
        return "linking:richpedia"
    return None


def detect_task_layout(path: Path | str) -> str | None:
    """Task layout (one of TASK_LAYOUTS) of a folder or task.toml; None for a folder that is no task (e.g. a plain KG)
    or a file of triples (a whole graph)."""
    if is_triples_file(path):
        return None
    return _detect(*_locate(path))


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


def task_name(path: Path | str) -> str:
    """The name ``read_task`` gives the task at ``path`` (task.toml 'task.name', else the folder's),
    without reading its data."""
    folder, toml = _locate(path)
    if toml is not None:
        cfg = _read_toml(toml)
        task = cfg.data.get("task")
        if isinstance(task, dict):
            return _task_name(cfg, task, None, folder)
    return folder.name


def _not_a_task(folder: Path) -> KGFormatError:
    return KGFormatError(
        f"not a task folder: expected {TASK_TOML}, the DBP15K files ({' '.join(_DBP15K_FILES)}), "
        f"WikiMEL ({' '.join(_WIKIMEL_FILES)}) or Richpedia-MEL ({' '.join(_RICHPEDIA_FILES)}); "
        "a plain graph folder is read with read_kg",
        folder,
    )


def read_task(path: Path | str, name: str | None = None) -> AlignmentTask | LinkingTask:
    """Read any task folder (or task.toml). Raises KGFormatError on bad input."""
    folder, toml = _locate(path)
    layout = _detect(folder, toml)
    if layout is None:
        raise _not_a_task(folder)
    if layout.startswith("alignment:"):
        return read_alignment_task(path, name)
    return read_linking_task(path, name)


def _wrong_kind(folder: Path, toml: Path | None, layout: str, expected: str) -> KGFormatError:
    if toml is not None:
        cfg = _read_toml(toml)
        return cfg.err(f"task kind is {layout.split(':')[0]!r}, expected {expected!r}", "kind", "task")
    return KGFormatError(f"this is a {layout} task folder, not {expected}", folder)


# --------------------------------------------------------------------------- shared helpers


def _read_json(ctx: _Ctx, path: Path) -> Any:
    raw = "\n".join(ctx.read_lines(path))  # UTF-8 / BOM handling and source tracking
    try:
        return json.loads(raw)
    except json.JSONDecodeError as e:
        raise KGFormatError(f"invalid JSON: {e.msg}", path, e.lineno) from None


def _seeded_split(n: int, test_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices (train, test), each in file order: shuffle with Random(seed), the first (1 - test_fraction) share is train."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    n_train = n - round(n * test_fraction)
    return sorted(order[:n_train]), sorted(order[n_train:])


def _strip_brackets(label: str) -> str:
    return label[1:-1] if len(label) >= 2 and label[0] == "<" and label[-1] == ">" else label


class _Matcher:
    """Finds a graph entity for a link label: exact, else with surrounding <> removed on either side."""

    def __init__(self, entities: list[str]) -> None:
        self.exact = set(entities)
        self.loose: dict[str, str] = {}
        for e in entities:
            self.loose.setdefault(_strip_brackets(e), e)

    def find(self, label: str) -> str | None:
        if label in self.exact:
            return label
        return self.loose.get(_strip_brackets(label))


def _text_for(ident: str, name: str | None, desc: str | None) -> Text:
    # same rule as read_kg: file text wins; a description alone keeps the derived name
    name = (name or "").strip() or None
    desc = (desc or "").strip() or None
    if name or desc:
        return Text(name or derive_name(ident), desc, "file")
    derived = derive_name(ident)
    return Text(derived, None, "derived") if derived else Text(None, None, "none")


def _check_one_to_one(ctx: _Ctx, rows: list[tuple[str, str, int]], path: Path, split: str) -> list[tuple[str, str, int]]:
    """Drop repeated identical pairs (warning); an entity linked to two partners is an error."""
    partner: tuple[dict[str, tuple[str, int]], dict[str, tuple[str, int]]] = ({}, {})
    kept: list[tuple[str, str, int]] = []
    repeats = 0
    for e1, e2, line in rows:
        if partner[0].get(e1, (None,))[0] == e2:
            repeats += 1
            continue
        for side, ent, other in ((0, e1, e2), (1, e2, e1)):
            if ent in partner[side]:
                prev, prev_line = partner[side][ent]
                raise KGFormatError(
                    f"graph-{side + 1} entity {ent!r} is linked twice in split {split!r} "
                    f"(to {other!r} here and to {prev!r} at line {prev_line})",
                    path,
                    line,
                )
        partner[0][e1] = (e2, line)
        partner[1][e2] = (e1, line)
        kept.append((e1, e2, line))
    if repeats:
        ctx.warn(f"{path}: dropped {repeats} repeated link pair(s) in split {split!r}")
    return kept


def _merge_sources(*groups: Any) -> list[Path]:
    out: set[Path] = set()
    for g in groups:
        out.update(g)
    return sorted(out)


# --------------------------------------------------------------------------- alignment


def read_alignment_task(path: Path | str, name: str | None = None) -> AlignmentTask:
    """Read an alignment task folder (canonical task.toml or DBP15K). Raises KGFormatError on bad input.

    DBP15K ships no split: ``ill_ent_ids`` is shuffled with ``random.Random(0)``,
    the first 30% of pairs are ``train`` (seed alignment) and the other 70% ``test``,
    the usual protocol (JAPE/EVA/MCLEA); each split keeps file order.
    """
    folder, toml = _locate(path)
    layout = _detect(folder, toml)
    if layout is None:
        raise _not_a_task(folder)
    if layout == "alignment:canonical":
        return _read_alignment_canonical(folder, toml, name)  # type: ignore[arg-type]
    if layout == "alignment:dbp15k":
        return _read_dbp15k(folder, name)
    raise _wrong_kind(folder, toml, layout, "alignment")


_ALIGN_LINK_KEYS = ("train", "valid", "test", "all", "test_fraction", "seed", "missing")


def _read_alignment_canonical(folder: Path, toml: Path, name: str | None) -> AlignmentTask:
    ctx = _Ctx()
    cfg = _read_toml(toml)
    ctx.sources.add(toml)
    _check_top(cfg, ("task", "links"))
    task = cfg.table("task", ("kind", "name", "graph1", "graph2"))  # kind was checked by _detect
    task_name = _task_name(cfg, task, name, folder)
    links_cfg = cfg.table("links", _ALIGN_LINK_KEYS)

    graph_paths = [_graph_path(cfg, task, "task", key, required=True) for key in ("graph1", "graph2")]
    missing = links_cfg.get("missing", "error")
    if missing not in ("error", "skip"):
        raise cfg.err(f"'links.missing' must be \"error\" or \"skip\", got {missing!r}", "missing", "links")
    split_files = {k: cfg.path_value(links_cfg, "links", k) for k in _SPLIT_KEYS if k in links_cfg}
    all_file = cfg.path_value(links_cfg, "links", "all")
    if all_file is not None and split_files:
        key = next(iter(split_files))
        raise cfg.err(f"'links.all' and 'links.{key}' exclude each other (all is split into train/test)", key, "links")
    if all_file is None and not split_files:
        raise KGFormatError("[links] needs 'train'/'valid'/'test' files or 'all'", toml, _toml_line(cfg.text, "links"))
    test_fraction, seed = DBP15K_TEST_FRACTION, DBP15K_SEED
    for key in ("test_fraction", "seed"):
        if key in links_cfg and all_file is None:
            raise cfg.err(f"'links.{key}' only applies with 'links.all'", key, "links")
    if "test_fraction" in links_cfg:
        test_fraction = links_cfg["test_fraction"]
        if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) or not 0 < test_fraction < 1:
            raise cfg.err(f"'links.test_fraction' must be a number between 0 and 1 (exclusive), got {test_fraction!r}",
                          "test_fraction", "links")
    if "seed" in links_cfg:
        seed = links_cfg["seed"]
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise cfg.err(f"'links.seed' must be an integer, got {seed!r}", "seed", "links")

    graphs = (read_kg(graph_paths[0]), read_kg(graph_paths[1]))  # type: ignore[arg-type]
    matchers = (_Matcher(graphs[0].entities), _Matcher(graphs[1].entities))

    links: dict[str, list[tuple[str, str]]] = {}
    if all_file is not None:
        rows = _check_one_to_one(ctx, _read_link_file(ctx, all_file, graphs, matchers, missing), all_file, "all")
        train_idx, test_idx = _seeded_split(len(rows), test_fraction, seed)
        links["train"] = [rows[i][:2] for i in train_idx]
        links["test"] = [rows[i][:2] for i in test_idx]
        origin = {"train": all_file, "test": all_file}
    else:
        for split, p in split_files.items():
            rows = _check_one_to_one(ctx, _read_link_file(ctx, p, graphs, matchers, missing), p, split)  # type: ignore[arg-type]
            links[split] = [r[:2] for r in rows]
        origin = dict(split_files)  # type: ignore[arg-type]

    if not any(links.values()):
        where = all_file if all_file is not None else toml
        raise KGFormatError("no links: every link file is empty" + (" or all pairs were skipped" if missing == "skip" else ""), where)
    for split, pairs in links.items():
        if not pairs:
            ctx.warn(f"{origin[split]}: split {split!r} has no links")
    _warn_cross_split(ctx, links)

    return AlignmentTask(
        name=task_name,
        root=folder,
        layout="canonical",
        graphs=graphs,
        links=links,
        source_files=_merge_sources(ctx.sources, graphs[0].source_files, graphs[1].source_files),
        warnings=graphs[0].warnings + graphs[1].warnings + ctx.warnings,
    )


def _read_link_file(
    ctx: _Ctx, path: Path, graphs: tuple[KnowledgeGraph, KnowledgeGraph], matchers: tuple[_Matcher, _Matcher], missing: str
) -> list[tuple[str, str, int]]:
    rows: list[tuple[str, str, int]] = []
    skipped = [0, 0]
    for i, raw in enumerate(ctx.read_lines(path), 1):
        if not raw.strip():
            continue
        parts = raw.split("\t")
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            raise KGFormatError(
                f"expected 2 non-empty tab-separated fields (entity of graph 1, entity of graph 2), "
                f"got {len(parts)} field(s): {raw[:120]!r}",
                path,
                i,
            )
        found: list[str] = []
        for side in (0, 1):
            ent = matchers[side].find(parts[side])
            if ent is None:
                if missing == "error":
                    raise KGFormatError(
                        f"entity {parts[side]!r} is not in graph {side + 1} ({graphs[side].name!r}, {graphs[side].root})",
                        path,
                        i,
                    )
                skipped[side] += 1
                break
            found.append(ent)
        if len(found) == 2:
            rows.append((found[0], found[1], i))
    if any(skipped):
        ctx.warn(
            f"{path}: skipped {sum(skipped)} pair(s) whose entity is missing "
            f"({skipped[0]} not in graph 1 {graphs[0].name!r}, {skipped[1]} more not in graph 2 {graphs[1].name!r}); "
            f"kept {len(rows)}"
        )
    return rows


def _warn_cross_split(ctx: _Ctx, links: dict[str, list[tuple[str, str]]]) -> None:
    names = list(links)
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            shared = set(links[names[a]]).intersection(links[names[b]])
            if shared:
                ctx.warn(f"{len(shared)} link pair(s) occur in both split {names[a]!r} and split {names[b]!r}")


# ----- DBP15K


def _read_dbp_ids(ctx: _Ctx, path: Path) -> dict[str, str]:
    by_id: dict[str, str] = {}
    seen: dict[str, int] = {}
    for i, raw in enumerate(ctx.read_lines(path), 1):
        if not raw.strip():
            continue
        parts = raw.split("\t")
        if len(parts) != 2 or not parts[0].isdigit() or not parts[1].strip():
            raise KGFormatError(f"expected 'integer id<TAB>URI', got {raw[:120]!r}", path, i)
        num, uri = parts
        if num in by_id:
            raise KGFormatError(f"entity id {num} is listed twice", path, i)
        if uri in seen:
            raise KGFormatError(f"URI {uri!r} is listed twice (also at line {seen[uri]})", path, i)
        by_id[num] = uri
        seen[uri] = i
    if not by_id:
        raise KGFormatError("no entities", path)
    return by_id


def _read_dbp_names(ctx: _Ctx, path: Path) -> dict[str, str]:
    """id -> translated name from EVA/MCLEA's JSON list of [id, [tokens]]."""
    data = _read_json(ctx, path)
    if not isinstance(data, list):
        raise KGFormatError("expected a JSON list of [id, [tokens]]", path)
    names: dict[str, str] = {}
    for k, item in enumerate(data):
        if (not isinstance(item, list) or len(item) != 2 or isinstance(item[0], bool) or not isinstance(item[0], (int, str))
                or not isinstance(item[1], list) or not all(isinstance(t, str) for t in item[1])):
            raise KGFormatError(f"entry {k}: expected [id, [tokens]], got {json.dumps(item, ensure_ascii=False)[:120]}", path)
        text = " ".join(t for t in item[1] if t.strip())
        if text:
            names[str(item[0])] = text
    return names


def _dbp_graph(name: str, folder: Path, ids_path: Path, triples_path: Path,
               names_path: Path | None, names: dict[str, str]) -> tuple[KnowledgeGraph, dict[str, str]]:
    ctx = _Ctx()
    ids = _read_dbp_ids(ctx, ids_path)
    triples: list[tuple[str, str, str]] = []
    seen: set[tuple[str, str, str]] = set()
    rows = 0
    for i, raw in enumerate(ctx.read_lines(triples_path), 1):
        if not raw.strip():
            continue
        parts = raw.split("\t")
        if len(parts) != 3:
            raise KGFormatError(f"expected 'head id<TAB>relation id<TAB>tail id', got {len(parts)} field(s): {raw[:120]!r}",
                                triples_path, i)
        h, t = ids.get(parts[0]), ids.get(parts[2])
        if h is None or t is None:
            bad = parts[0] if h is None else parts[2]
            raise KGFormatError(f"entity id {bad!r} is not in {ids_path.name}", triples_path, i)
        if not parts[1].isdigit():
            raise KGFormatError(f"relation id must be a non-negative integer, got {parts[1]!r}", triples_path, i)
        rows += 1
        triple = (h, f"r{parts[1]}", t)
        if triple not in seen:
            seen.add(triple)
            triples.append(triple)
    if not triples:
        raise KGFormatError("empty graph: no triples", triples_path)
    if rows != len(triples):
        ctx.warn(f"{triples_path}: dropped {rows - len(triples)} duplicate triple(s); kept {len(triples)} distinct of {rows} rows")
    if names_path is not None:
        ctx.sources.add(names_path)
    entity_text = {uri: (Text(names[num], None, "file") if num in names else _text_for(uri, None, None))
                   for num, uri in ids.items()}
    relations = sorted({r for _, r, _ in triples}, key=lambda r: int(r[1:]))
    kg = KnowledgeGraph(
        name=name,
        root=folder,
        layout="dbp15k",
        triple_sets={"train": triples},
        splits={"train": Split("train", "train")},
        entities=sorted(ids.values()),
        relations=relations,
        entity_text=dict(sorted(entity_text.items())),
        relation_text={r: Text(None, None, "none") for r in relations},  # only ids ship: "r12" is no name
        images={},
        source_files=sorted(ctx.sources),
        warnings=ctx.warnings,
        declared_entities=set(ids.values()),
        declared_relations=set(),
        triple_files={"train": triples_path},
    )
    return kg, ids


def _read_dbp15k(folder: Path, name: str | None) -> AlignmentTask:
    ctx = _Ctx()
    task_name = name or folder.name
    pair = folder.name.split("_")
    sides = pair if len(pair) == 2 and all(pair) else ["1", "2"]  # zh_en -> graphs "<name>-zh", "<name>-en"
    candidate = _abs(folder.parent / "translated_ent_name" / f"dbp_{folder.name}.json")
    names_path: Path | None = None
    names: dict[str, str] = {}
    if candidate.is_file():
        names_path = candidate
        names = _read_dbp_names(ctx, names_path)
    else:
        ctx.warn(f"{folder}: no translated names (../translated_ent_name/dbp_{folder.name}.json); names come from the URIs")
    g1, ids1 = _dbp_graph(f"{task_name}-{sides[0]}", folder, folder / "ent_ids_1", folder / "triples_1", names_path, names)
    g2, ids2 = _dbp_graph(f"{task_name}-{sides[1]}", folder, folder / "ent_ids_2", folder / "triples_2", names_path, names)

    ill = folder / "ill_ent_ids"
    rows: list[tuple[str, str, int]] = []
    for i, raw in enumerate(ctx.read_lines(ill), 1):
        if not raw.strip():
            continue
        parts = raw.split("\t")
        if len(parts) != 2:
            raise KGFormatError(f"expected 'id in graph 1<TAB>id in graph 2', got {len(parts)} field(s): {raw[:120]!r}", ill, i)
        a, b = ids1.get(parts[0]), ids2.get(parts[1])
        if a is None:
            raise KGFormatError(f"entity id {parts[0]!r} is not in graph 1 (ent_ids_1)", ill, i)
        if b is None:
            raise KGFormatError(f"entity id {parts[1]!r} is not in graph 2 (ent_ids_2)", ill, i)
        rows.append((a, b, i))
    rows = _check_one_to_one(ctx, rows, ill, "all")
    if not rows:
        raise KGFormatError("no links", ill)
    train_idx, test_idx = _seeded_split(len(rows), DBP15K_TEST_FRACTION, DBP15K_SEED)
    return AlignmentTask(
        name=task_name,
        root=folder,
        layout="dbp15k",
        graphs=(g1, g2),
        links={"train": [rows[i][:2] for i in train_idx], "test": [rows[i][:2] for i in test_idx]},
        source_files=_merge_sources(ctx.sources, g1.source_files, g2.source_files),
        warnings=g1.warnings + g2.warnings + ctx.warnings,
    )


# --------------------------------------------------------------------------- linking


def read_linking_task(path: Path | str, name: str | None = None) -> LinkingTask:
    """Read a linking task folder (canonical task.toml, WikiMEL or Richpedia-MEL). Raises KGFormatError on bad input.

    Mention ids: canonical = the file's first column; WikiMEL ``<sample id>:<i>``
    (i = position in the sample's mention list); Richpedia-MEL ``<sample id>:0``.
    WikiMEL's split "dev" (and Richpedia's dev.json) becomes "valid". In the JSON
    layouts a blank mention is dropped with a warning (Richpedia-MEL train.json has
    one); in task.toml folders it is an error.
    """
    folder, toml = _locate(path)
    layout = _detect(folder, toml)
    if layout is None:
        raise _not_a_task(folder)
    if layout == "linking:canonical":
        return _read_linking_canonical(folder, toml, name)  # type: ignore[arg-type]
    if layout == "linking:wikimel":
        return _read_wikimel(folder, name)
    if layout == "linking:richpedia":
        return _read_richpedia(folder, name)
    raise _wrong_kind(folder, toml, layout, "linking")


def _kb_graph(name: str, root: Path, layout: str, text: dict[str, Text], images: dict[str, list[Path]],
              ctx: _Ctx, graph: KnowledgeGraph | None) -> KnowledgeGraph:
    ids = set(text)
    if graph is None:
        return KnowledgeGraph(
            name=name, root=root, layout=layout, triple_sets={}, splits={}, entities=sorted(ids), relations=[],
            entity_text=dict(sorted(text.items())), relation_text={}, images=images, source_files=sorted(ctx.sources),
            warnings=list(ctx.warnings), declared_entities=ids,
        )
    # The graph's own entities stay (context nodes); KB names/descriptions override its text.
    entity_text = dict(graph.entity_text)
    entity_text.update(text)
    merged_images = {e: list(p) for e, p in graph.images.items()}
    for e, paths in images.items():
        merged_images[e] = sorted(set(merged_images.get(e, [])) | set(paths))
    return dataclasses.replace(
        graph,
        name=name,
        entities=sorted(set(graph.entities) | ids),
        entity_text=dict(sorted(entity_text.items())),
        images=dict(sorted(merged_images.items())),
        source_files=_merge_sources(graph.source_files, ctx.sources),
        warnings=graph.warnings + ctx.warnings,
        declared_entities=set(graph.declared_entities) | ids,
    )


def _read_kb_tsv(ctx: _Ctx, path: Path) -> dict[str, Text]:
    text: dict[str, Text] = {}
    first_line: dict[str, int] = {}
    for i, raw in enumerate(ctx.read_lines(path), 1):
        if not raw.strip():
            continue
        parts = raw.split("\t")
        if i == 1 and [p.strip().lower() for p in parts] in (["id", "name"], ["id", "name", "description"]):
            continue  # tolerate the entities.tsv header people copy over
        if len(parts) not in (2, 3) or not parts[0].strip():
            raise KGFormatError(f"expected 'id<TAB>name<TAB>description' with a non-empty id, got {len(parts)} field(s): "
                                f"{raw[:120]!r}", path, i)
        ident = parts[0]
        if ident in text:
            raise KGFormatError(f"duplicate KB id {ident!r} (first at line {first_line[ident]})", path, i)
        first_line[ident] = i
        text[ident] = _text_for(ident, parts[1], parts[2] if len(parts) == 3 else None)
    if not text:
        raise KGFormatError("no KB entities", path)
    return text


def _read_linking_canonical(folder: Path, toml: Path, name: str | None) -> LinkingTask:
    ctx = _Ctx()
    cfg = _read_toml(toml)
    ctx.sources.add(toml)
    _check_top(cfg, ("task", "kb", "mentions"))
    task = cfg.table("task", ("kind", "name"))  # kind was checked by _detect
    task_name = _task_name(cfg, task, name, folder)
    kb_cfg = cfg.table("kb", ("entities", "images", "graph"))
    ment_cfg = cfg.table("mentions", _SPLIT_KEYS)
    kb_path = cfg.path_value(kb_cfg, "kb", "entities", required=True)
    img_path = cfg.path_value(kb_cfg, "kb", "images")
    graph_path = _graph_path(cfg, kb_cfg, "kb", "graph")
    split_files = {k: cfg.path_value(ment_cfg, "mentions", k) for k in _SPLIT_KEYS if k in ment_cfg}
    if not split_files:
        raise KGFormatError("[mentions] needs at least one of 'train', 'valid', 'test'", toml,
                            _toml_line(cfg.text, "mentions"))

    kb_ctx = _Ctx()  # the KB's own files and warnings, kept on the KB object
    text = _read_kb_tsv(kb_ctx, kb_path)  # type: ignore[arg-type]
    images = _collect_images(kb_ctx, set(text), [], [img_path]) if img_path is not None else {}
    graph = read_kg(graph_path) if graph_path is not None else None
    kb = _kb_graph(task_name, folder, "canonical", text, images, kb_ctx, graph)

    mentions: dict[str, list[Mention]] = {}
    first_seen: dict[str, str] = {}
    for split, p in split_files.items():
        mentions[split] = _read_mention_tsv(ctx, p, set(text), first_seen)  # type: ignore[arg-type]
        if not mentions[split]:
            ctx.warn(f"{p}: split {split!r} has no mentions")
    if not any(mentions.values()):
        raise KGFormatError("no mentions: every mention file is empty", toml)
    return LinkingTask(
        name=task_name,
        root=folder,
        layout="canonical",
        kb=kb,
        mentions=mentions,
        source_files=_merge_sources(ctx.sources, kb.source_files),
        warnings=kb.warnings + ctx.warnings,
    )


def _read_mention_tsv(ctx: _Ctx, path: Path, kb_ids: set[str], first_seen: dict[str, str]) -> list[Mention]:
    out: list[Mention] = []
    missing_images: list[str] = []
    for i, raw in enumerate(ctx.read_lines(path), 1):
        if not raw.strip():
            continue
        parts = raw.split("\t")
        if len(parts) not in (4, 5):
            raise KGFormatError(
                f"expected 'mention id<TAB>mention<TAB>context<TAB>entity id[<TAB>image]', got {len(parts)} field(s): "
                f"{raw[:120]!r}",
                path,
                i,
            )
        mid, text, context, entity = parts[0].strip(), parts[1].strip(), parts[2], parts[3].strip()
        if not mid:
            raise KGFormatError("empty mention id", path, i)
        if mid in first_seen:
            raise KGFormatError(f"duplicate mention id {mid!r} (first at {first_seen[mid]})", path, i)
        first_seen[mid] = f"{path}:{i}"
        if not text:
            raise KGFormatError(f"mention {mid!r}: empty mention text", path, i)
        if entity and entity not in kb_ids:
            raise KGFormatError(f"mention {mid!r}: gold entity {entity!r} is not in the KB", path, i)
        image: Path | None = None
        if len(parts) == 5 and parts[4].strip():
            image = _abs(path.parent / parts[4].strip())
            if image.is_file():
                ctx.sources.add(image)
            else:
                missing_images.append(f"line {i}: {parts[4].strip()}")
                image = None
        out.append(Mention(mid, text, context, entity or None, image))
    if missing_images:
        shown = "; ".join(missing_images[:3]) + ("; ..." if len(missing_images) > 3 else "")
        ctx.warn(f"{path}: {len(missing_images)} mention image(s) do not exist, set to None ({shown})")
    return out


# ----- JSON layouts (WikiMEL, Richpedia-MEL)


def _sample_error(path: Path, key: str, reason: str) -> KGFormatError:
    return KGFormatError(f"sample {key}: {reason}", path)


def _read_json_kb(ctx: _Ctx, folder: Path) -> dict[str, Text]:
    """KB = the ids of qid2ne.json, descriptions from qid2abs.json when present."""
    ne_path = folder / "qid2ne.json"
    names = _read_json(ctx, ne_path)
    if not isinstance(names, dict):
        raise KGFormatError("expected a JSON object {entity id: name}", ne_path)
    descs: dict[str, Any] = {}
    abs_path = folder / "qid2abs.json"
    if abs_path.is_file():
        descs = _read_json(ctx, abs_path)
        if not isinstance(descs, dict):
            raise KGFormatError("expected a JSON object {entity id: description}", abs_path)
    for p, table in ((ne_path, names), (abs_path, descs)):
        for key, value in table.items():
            if not isinstance(value, str):
                raise KGFormatError(f"entry {key}: expected a string, got {type(value).__name__}", p)
    if not names:
        raise KGFormatError("no KB entities", ne_path)
    extra = len(set(descs) - set(names))
    if extra:
        ctx.warn(f"{abs_path}: ignored {extra} description(s) for ids not in qid2ne.json")
    return {q: _text_for(q, n, descs.get(q)) for q, n in names.items()}


def _sample_mentions(path: Path, key: str, sample: Any, kb_ids: set[str]) -> tuple[str, list[tuple[int, str, str | None]]]:
    """(sentence, [(index, mention, gold)]) of one sample; mentions/answer may be parallel lists or single strings."""
    if not isinstance(sample, dict):
        raise _sample_error(path, key, "expected an object with 'sentence', 'mentions', 'answer'")
    if "mentions" not in sample:
        raise _sample_error(path, key, "missing 'mentions'")
    sentence = sample.get("sentence") or ""
    if not isinstance(sentence, str):
        raise _sample_error(path, key, "'sentence' must be a string")
    ments, answers = sample["mentions"], sample.get("answer")
    if isinstance(ments, str):
        ments = [ments]
        answers = [answers]
    if not isinstance(ments, list) or not all(isinstance(m, str) for m in ments):
        raise _sample_error(path, key, "'mentions' must be a string or a list of strings")
    if answers is None:
        answers = [None] * len(ments)  # unlabelled sample
    if not isinstance(answers, list) or len(answers) != len(ments):
        raise _sample_error(path, key, f"'answer' must list one entity per mention ({len(ments)} mention(s))")
    out: list[tuple[int, str, str | None]] = []
    for i, (m, a) in enumerate(zip(ments, answers)):
        if a is not None and not isinstance(a, str):
            raise _sample_error(path, key, f"answer {i} must be an entity id string, got {a!r}")
        gold = a.strip() if a else None
        if gold and gold not in kb_ids:
            raise _sample_error(path, key, f"gold entity {gold!r} of mention {i} ({m!r}) is not in the KB (qid2ne.json)")
        out.append((i, m.strip(), gold or None))
    return sentence, out


def _mentions_of(ctx: _Ctx, path: Path, keys: list[str], samples: dict[str, Any], kb_ids: set[str],
                 seen: dict[str, str], split: str, blanks: list[str]) -> list[Mention]:
    out: list[Mention] = []
    unlabelled: list[str] = []
    for key in keys:
        sentence, items = _sample_mentions(path, key, samples[key], kb_ids)
        for i, text, gold in items:
            mid = f"{key}:{i}"
            if mid in seen:
                raise _sample_error(path, key, f"mention id {mid!r} occurs in split {seen[mid]!r} and again in {split!r}")
            seen[mid] = split
            if not text:
                blanks.append(mid)  # real data has these (Richpedia-MEL Q79179): drop, do not fail the whole task
                continue
            out.append(Mention(mid, text, sentence, gold))
            if gold is None:
                unlabelled.append(mid)
    if unlabelled:   # kept for predictions; a missing answer would otherwise drop a query silently
        shown = ", ".join(unlabelled[:5]) + (", ..." if len(unlabelled) > 5 else "")
        ctx.warn(f"{path}: {len(unlabelled)} mention(s) of split {split!r} have no answer: predicted, not scored "
                 f"or trained on ({shown})")
    return out


def _warn_blanks(ctx: _Ctx, path: Path, blanks: list[str]) -> None:
    if blanks:
        shown = ", ".join(blanks[:5]) + (", ..." if len(blanks) > 5 else "")
        ctx.warn(f"{path}: dropped {len(blanks)} mention(s) with empty text ({shown})")


def _json_task(folder: Path, name: str | None, layout: str, ctx: _Ctx, kb_ctx: _Ctx, text: dict[str, Text],
               mentions: dict[str, list[Mention]], where: Path) -> LinkingTask:
    if not any(mentions.values()):
        raise KGFormatError("no mentions", where)
    task_name = name or folder.name
    kb = _kb_graph(task_name, folder, layout, text, {}, kb_ctx, None)
    return LinkingTask(
        name=task_name,
        root=folder,
        layout=layout,
        kb=kb,
        mentions=mentions,
        source_files=_merge_sources(ctx.sources, kb.source_files),
        warnings=kb.warnings + ctx.warnings,
    )


def _read_wikimel(folder: Path, name: str | None) -> LinkingTask:
    ctx, kb_ctx = _Ctx(), _Ctx()
    text = _read_json_kb(kb_ctx, folder)
    data_path, splits_path = folder / "Wikidata-MEL.json", folder / "splits.json"
    samples = _read_json(ctx, data_path)
    if not isinstance(samples, dict):
        raise KGFormatError("expected a JSON object {sample id: sample}", data_path)
    splits = _read_json(ctx, splits_path)
    if not isinstance(splits, dict) or not all(isinstance(v, list) for v in splits.values()):
        raise KGFormatError("expected a JSON object {split: [sample ids]}", splits_path)
    kb_ids = set(text)
    mentions: dict[str, list[Mention]] = {}
    seen: dict[str, str] = {}
    used: set[str] = set()
    blanks: list[str] = []
    for raw_split, ids in splits.items():
        split = "valid" if raw_split == "dev" else raw_split
        if split in mentions:
            raise KGFormatError(f"split {raw_split!r} maps to {split!r}, which is already defined", splits_path)
        keys = [str(k) for k in ids]
        present = [k for k in keys if k in samples]
        if len(present) != len(keys):
            # splits.json (MEL-GHMFC) lists ids that MELBench's file has no sample for
            ctx.warn(f"{splits_path}: split {raw_split!r}: dropped {len(keys) - len(present)} of {len(keys)} sample id(s) "
                     f"with no sample in {data_path.name}")
        mentions[split] = _mentions_of(ctx, data_path, present, samples, kb_ids, seen, split, blanks)
        used.update(present)
    _warn_blanks(ctx, data_path, blanks)
    order = {s: i for i, s in enumerate(_SPLIT_KEYS)}  # train/valid/test first, whatever splits.json's order
    mentions = dict(sorted(mentions.items(), key=lambda kv: order.get(kv[0], len(order))))
    unused = len(samples) - len(used)
    if unused:
        ctx.warn(f"{data_path}: {unused} sample(s) are in no split of {splits_path.name}; ignored")
    return _json_task(folder, name, "wikimel", ctx, kb_ctx, text, mentions, splits_path)


def _read_richpedia(folder: Path, name: str | None) -> LinkingTask:
    ctx, kb_ctx = _Ctx(), _Ctx()
    text = _read_json_kb(kb_ctx, folder)
    kb_ids = set(text)
    mentions: dict[str, list[Mention]] = {}
    seen: dict[str, str] = {}
    files = [("train", folder / "train.json"), ("valid", folder / "dev.json"), ("test", folder / "test.json")]
    for split, p in files:
        if not p.is_file():
            continue
        samples = _read_json(ctx, p)
        if not isinstance(samples, dict):
            raise KGFormatError("expected a JSON object {sample id: sample}", p)
        blanks: list[str] = []
        mentions[split] = _mentions_of(ctx, p, list(samples), samples, kb_ids, seen, split, blanks)
        _warn_blanks(ctx, p, blanks)
    return _json_task(folder, name, "richpedia", ctx, kb_ctx, text, mentions, folder)
