"""Triple files: rows ``head relation tail``, tab-separated or comma-separated (CSV quoting) when named
``.csv``; a first row of column names is skipped with a note, a control character is an error at its line,
repeated rows are dropped with a note."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

from tokenizer_stage.kg_reader.errors import KGFormatError
from tokenizer_stage.kg_reader.files import ReadContext
from tokenizer_stage.kg_reader.model import Split, Triple

TRIPLE_FILE_SUFFIXES = (".tsv", ".txt", ".csv")  # a file with one of these may be given as a whole graph


def is_triples_file(path: Path | str) -> bool:
    """Whether ``path`` is one file of triples given as a whole graph (instead of a folder or kg.toml)."""
    p = Path(path)
    return p.suffix.lower() in TRIPLE_FILE_SUFFIXES and p.is_file()


@dataclass
class TripleSet:
    """The distinct triples of one file, each with its line (for FILE:LINE errors)."""
    triples: list[Triple]
    lines: list[int]  # 1-based line of each kept triple (first occurrence)
    path: Path


@dataclass
class Loaded:
    """What a layout's loader returns, for ``read_kg`` to add texts and images to."""
    sets: dict[str, TripleSet] = field(default_factory=dict)
    splits: dict[str, Split] = field(default_factory=dict)
    declared_entities: set[str] = field(default_factory=set)
    declared_relations: set[str] = field(default_factory=set)
    aux_dirs: list[Path] = field(default_factory=list)  # folders searched for text/images
    id_files: dict[str, Path] = field(default_factory=dict)  # "entity" / "relation" -> a file listing the ids


def dedup_triples(ctx: ReadContext, path: Path, rows: list[tuple[Triple, int]]) -> TripleSet:
    """``rows`` without repeats (first occurrence kept), with a note when some were dropped."""
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
    return TripleSet(triples, lines, path)


# Unicode category Cc is exactly U+0000-U+001F and U+007F-U+009F; TAB separates fields.
_CONTROL_CHARACTER = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
# Column names of a header row, per column (PyKEEN writes head/relation/tail, RDF tools
# subject/predicate/object, graph tools source/target).
_HEADER_NAMES = (
    frozenset({"head", "h", "subject", "subj", "s", "source", "src", "from", "head_id", "head_label"}),
    frozenset({"relation", "r", "rel", "predicate", "pred", "p", "relation_id", "relation_label"}),
    frozenset({"tail", "t", "object", "obj", "o", "target", "dst", "to", "tail_id", "tail_label"}),
)


def check_control_characters(raw: str, path: Path, line: int) -> None:
    """Raise at ``path:line`` when ``raw`` holds a control character (ids must not)."""
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


def read_triples(ctx: ReadContext, path: Path) -> TripleSet:
    """Rows ``head relation tail``: tab-separated, or comma-separated with CSV quoting for a .csv file.
    A first row of column names is skipped, with a note."""
    csv_file = path.suffix.lower() == ".csv"
    rows: list[tuple[Triple, int]] = []
    first = True
    for i, raw in enumerate(ctx.read_lines(path), 1):
        if not raw.strip():
            continue
        check_control_characters(raw, path, i)
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
    return dedup_triples(ctx, path, rows)
