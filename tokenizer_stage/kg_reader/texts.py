"""Entity and relation text files: canonical ``id/name/description`` TSV (entities.tsv, relations.tsv),
kg-bert ``id<TAB>text`` (entity2text.txt, relation2text.txt) and entity2wikidata.json; the text of each id."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tokenizer_stage.kg_reader.derived_names import derive_name
from tokenizer_stage.kg_reader.errors import KGFormatError
from tokenizer_stage.kg_reader.files import ReadContext, absolute_path, present
from tokenizer_stage.kg_reader.model import Text
from tokenizer_stage.kg_reader.triples import check_control_characters

_CANONICAL_TEXT_NAMES = {"entities.tsv", "relations.tsv"}


@dataclass
class TextRecords:
    """The ``id -> (name, description)`` rows of one text file."""
    path: Path
    declares: bool  # canonical files list the graph's ids; others only annotate
    rows: dict[str, tuple[str | None, str | None]]


def _none_if_blank(s: str | None) -> str | None:
    if s is None:
        return None
    s = s.strip()
    return s or None


def read_text_file(ctx: ReadContext, path: Path, kind: str) -> TextRecords:
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
        return TextRecords(path, False, rows)

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
            check_control_characters(parts[0], path, i)   # the id declares an entity or relation
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
    return TextRecords(path, is_canonical, rows)


def text_files(cfg_files: list[Path], aux_dirs: list[Path], names: tuple[str, ...]) -> list[Path]:
    """Text files in precedence order: kg.toml's, then those named ``names`` in each folder; each once."""
    found = list(cfg_files)
    for d in aux_dirs:
        for n in names:
            if present(d / n):
                found.append(absolute_path(d / n))
    out: list[Path] = []
    for p in found:  # a file named twice is read once
        if p not in out:
            out.append(p)
    return out


def build_text(ids: list[str], records: list[TextRecords]) -> dict[str, Text]:
    """Text of each id: name and description from the first records giving them, else derived from the id."""
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
