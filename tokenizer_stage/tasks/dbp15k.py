"""The ``alignment:dbp15k`` layout: the MCLEA/EVA DBP15K folder (``ent_ids_1 ent_ids_2 triples_1 triples_2
ill_ent_ids``, translated names from ``../translated_ent_name/dbp_<folder>.json`` when present)."""

from __future__ import annotations

import json
from pathlib import Path

from tokenizer_stage.kg_reader.errors import KGFormatError
from tokenizer_stage.kg_reader.files import ReadContext, absolute_path
from tokenizer_stage.kg_reader.model import KnowledgeGraph, Split, Text
from tokenizer_stage.tasks.common import check_one_to_one, merge_sources, read_json, seeded_split, text_for
from tokenizer_stage.tasks.model import AlignmentTask

DBP15K_TEST_FRACTION = 0.7
DBP15K_SEED = 0


def _read_dbp_ids(ctx: ReadContext, path: Path) -> dict[str, str]:
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


def _read_dbp_names(ctx: ReadContext, path: Path) -> dict[str, str]:
    """id -> translated name from EVA/MCLEA's JSON list of [id, [tokens]]."""
    data = read_json(ctx, path)
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
    ctx = ReadContext()
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
    entity_text = {uri: (Text(names[num], None, "file") if num in names else text_for(uri, None, None))
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


def read_dbp15k(folder: Path, name: str | None) -> AlignmentTask:
    """A DBP15K folder: both graphs built in memory, gold pairs split 30% train / 70% test (seed 0)."""
    ctx = ReadContext()
    task_name = name or folder.name
    pair = folder.name.split("_")
    sides = pair if len(pair) == 2 and all(pair) else ["1", "2"]  # zh_en -> graphs "<name>-zh", "<name>-en"
    candidate = absolute_path(folder.parent / "translated_ent_name" / f"dbp_{folder.name}.json")
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
    rows = check_one_to_one(ctx, rows, ill, "all")
    if not rows:
        raise KGFormatError("no links", ill)
    train_idx, test_idx = seeded_split(len(rows), DBP15K_TEST_FRACTION, DBP15K_SEED)
    return AlignmentTask(
        name=task_name,
        root=folder,
        layout="dbp15k",
        graphs=(g1, g2),
        links={"train": [rows[i][:2] for i in train_idx], "test": [rows[i][:2] for i in test_idx]},
        source_files=merge_sources(ctx.sources, g1.source_files, g2.source_files),
        warnings=g1.warnings + g2.warnings + ctx.warnings,
    )
