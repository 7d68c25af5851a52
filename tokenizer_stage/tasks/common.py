"""Helpers every task reader uses: JSON files, seeded splits, one-to-one link pairs, KB text and the
KB graph of a linking task, merged source lists."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path
from typing import Any

from tokenizer_stage.kg_reader.derived_names import derive_name
from tokenizer_stage.kg_reader.errors import KGFormatError
from tokenizer_stage.kg_reader.files import ReadContext
from tokenizer_stage.kg_reader.model import KnowledgeGraph, Text


def read_json(ctx: ReadContext, path: Path) -> Any:
    """A JSON file read through ``ctx`` (UTF-8, BOM, source list); invalid JSON is an error at its line."""
    raw = "\n".join(ctx.read_lines(path))  # UTF-8 / BOM handling and source tracking
    try:
        return json.loads(raw)
    except json.JSONDecodeError as e:
        raise KGFormatError(f"invalid JSON: {e.msg}", path, e.lineno) from None


def seeded_split(n: int, test_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices (train, test), each in file order: shuffle with Random(seed), the first (1 - test_fraction) share is train."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    n_train = n - round(n * test_fraction)
    return sorted(order[:n_train]), sorted(order[n_train:])


def text_for(ident: str, name: str | None, desc: str | None) -> Text:
    """Text of a KB id by read_kg's rule: file text wins; a description alone keeps the derived name."""
    name = (name or "").strip() or None
    desc = (desc or "").strip() or None
    if name or desc:
        return Text(name or derive_name(ident), desc, "file")
    derived = derive_name(ident)
    return Text(derived, None, "derived") if derived else Text(None, None, "none")


def check_one_to_one(ctx: ReadContext, rows: list[tuple[str, str, int]], path: Path,
                     split: str) -> list[tuple[str, str, int]]:
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


def merge_sources(*groups: Any) -> list[Path]:
    """The sorted union of lists of source files."""
    out: set[Path] = set()
    for g in groups:
        out.update(g)
    return sorted(out)


def kb_graph(name: str, root: Path, layout: str, text: dict[str, Text], images: dict[str, list[Path]],
             ctx: ReadContext, graph: KnowledgeGraph | None) -> KnowledgeGraph:
    """A linking task's KB as a graph: its entities alone, or merged into ``graph``, whose triples connect them."""
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
        source_files=merge_sources(graph.source_files, ctx.sources),
        warnings=graph.warnings + ctx.warnings,
        declared_entities=set(graph.declared_entities) | ids,
    )
