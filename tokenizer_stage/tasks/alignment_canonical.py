"""The ``alignment:canonical`` layout: a task.toml naming two graphs and link files of ``graph-1 entity
<TAB> graph-2 entity`` (train / valid / test, or one ``all`` file split with a seed)."""

from __future__ import annotations

from pathlib import Path

from tokenizer_stage.kg_reader.errors import KGFormatError
from tokenizer_stage.kg_reader.files import ReadContext
from tokenizer_stage.kg_reader.kg_toml import toml_line
from tokenizer_stage.kg_reader.model import KnowledgeGraph
from tokenizer_stage.kg_reader.read import read_kg
from tokenizer_stage.tasks.common import check_one_to_one, merge_sources, seeded_split
from tokenizer_stage.tasks.dbp15k import DBP15K_SEED, DBP15K_TEST_FRACTION
from tokenizer_stage.tasks.layout import graph_path_value
from tokenizer_stage.tasks.model import SPLIT_KEYS, AlignmentTask
from tokenizer_stage.tasks.task_toml import check_top_keys, read_task_toml, resolve_task_name

_ALIGN_LINK_KEYS = ("train", "valid", "test", "all", "test_fraction", "seed", "missing")


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


def read_alignment_canonical(folder: Path, toml: Path, name: str | None) -> AlignmentTask:
    """An alignment task folder with a task.toml (links matched to the entities of its graphs)."""
    ctx = ReadContext()
    cfg = read_task_toml(toml)
    ctx.sources.add(toml)
    check_top_keys(cfg, ("task", "links"))
    task = cfg.table("task", ("kind", "name", "graph1", "graph2"))  # kind was checked by layout_of
    task_name = resolve_task_name(cfg, task, name, folder)
    links_cfg = cfg.table("links", _ALIGN_LINK_KEYS)

    graph_paths = [graph_path_value(cfg, task, "task", key, required=True) for key in ("graph1", "graph2")]
    missing = links_cfg.get("missing", "error")
    if missing not in ("error", "skip"):
        raise cfg.err(f"'links.missing' must be \"error\" or \"skip\", got {missing!r}", "missing", "links")
    split_files = {k: cfg.path_value(links_cfg, "links", k) for k in SPLIT_KEYS if k in links_cfg}
    all_file = cfg.path_value(links_cfg, "links", "all")
    if all_file is not None and split_files:
        key = next(iter(split_files))
        raise cfg.err(f"'links.all' and 'links.{key}' exclude each other (all is split into train/test)", key, "links")
    if all_file is None and not split_files:
        raise KGFormatError("[links] needs 'train'/'valid'/'test' files or 'all'", toml, toml_line(cfg.text, "links"))
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
        rows = check_one_to_one(ctx, _read_link_file(ctx, all_file, graphs, matchers, missing), all_file, "all")
        train_idx, test_idx = seeded_split(len(rows), test_fraction, seed)
        links["train"] = [rows[i][:2] for i in train_idx]
        links["test"] = [rows[i][:2] for i in test_idx]
        origin = {"train": all_file, "test": all_file}
    else:
        for split, p in split_files.items():
            rows = check_one_to_one(ctx, _read_link_file(ctx, p, graphs, matchers, missing), p, split)  # type: ignore[arg-type]
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
        source_files=merge_sources(ctx.sources, graphs[0].source_files, graphs[1].source_files),
        warnings=graphs[0].warnings + graphs[1].warnings + ctx.warnings,
    )


def _read_link_file(
    ctx: ReadContext, path: Path, graphs: tuple[KnowledgeGraph, KnowledgeGraph], matchers: tuple[_Matcher, _Matcher],
    missing: str
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


def _warn_cross_split(ctx: ReadContext, links: dict[str, list[tuple[str, str]]]) -> None:
    names = list(links)
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            shared = set(links[names[a]]).intersection(links[names[b]])
            if shared:
                ctx.warn(f"{len(shared)} link pair(s) occur in both split {names[a]!r} and split {names[b]!r}")
