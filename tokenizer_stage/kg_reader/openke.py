"""The OpenKE layout: ``entity2id.txt relation2id.txt train2id.txt valid2id.txt test2id.txt``, each
with its record count on the first line; triples are HEAD TAIL RELATION ids, mapped back to names."""

from __future__ import annotations

from pathlib import Path

from tokenizer_stage.kg_reader.errors import KGFormatError
from tokenizer_stage.kg_reader.files import ReadContext, present, require
from tokenizer_stage.kg_reader.model import Split, Triple
from tokenizer_stage.kg_reader.triples import Loaded, TripleSet, check_control_characters, dedup_triples


def _openke_rows(ctx: ReadContext, path: Path) -> list[tuple[int, str]]:
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


def _read_openke_ids(ctx: ReadContext, path: Path, what: str) -> dict[int, str]:
    by_id: dict[int, str] = {}
    names: dict[str, int] = {}
    for i, raw in _openke_rows(ctx, path):
        check_control_characters(raw, path, i)
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


def _read_openke_triples(ctx: ReadContext, path: Path, ents: dict[int, str], rels: dict[int, str]) -> TripleSet:
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
    return dedup_triples(ctx, path, rows)


def load_openke(ctx: ReadContext, data_dir: Path) -> Loaded:
    """OpenKE: ids from entity2id.txt / relation2id.txt, triples from ``{train,valid,test}2id.txt``."""
    out = Loaded(aux_dirs=[data_dir])
    ents = _read_openke_ids(ctx, require(data_dir / "entity2id.txt"), "entity")
    rels = _read_openke_ids(ctx, require(data_dir / "relation2id.txt"), "relation")
    out.declared_entities = set(ents.values())
    out.declared_relations = set(rels.values())
    out.id_files = {"entity": data_dir / "entity2id.txt", "relation": data_dir / "relation2id.txt"}
    out.sets["train"] = _read_openke_triples(ctx, require(data_dir / "train2id.txt"), ents, rels)
    out.splits["train"] = Split("train", "train")
    for key in ("valid", "test"):
        p = data_dir / f"{key}2id.txt"
        if present(p):
            out.sets[key] = _read_openke_triples(ctx, p, ents, rels)
            out.splits[key] = Split("train", key)
    return out
