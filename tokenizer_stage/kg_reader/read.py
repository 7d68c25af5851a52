"""``read_kg``: one graph, in any layout, with its texts and images, its splits checked."""

from __future__ import annotations

from pathlib import Path

from tokenizer_stage.kg_reader.canonical import load_canonical
from tokenizer_stage.kg_reader.errors import KGFormatError
from tokenizer_stage.kg_reader.files import ReadContext
from tokenizer_stage.kg_reader.grail import load_grail
from tokenizer_stage.kg_reader.images import collect_images
from tokenizer_stage.kg_reader.ingram import load_ingram
from tokenizer_stage.kg_reader.layout import graph_config, resolve_layout
from tokenizer_stage.kg_reader.model import KnowledgeGraph
from tokenizer_stage.kg_reader.openke import load_openke
from tokenizer_stage.kg_reader.texts import build_text, read_text_file, text_files
from tokenizer_stage.kg_reader.triples import Loaded


def _check_splits(ctx: ReadContext, loaded: Loaded) -> None:
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
        in_graph_ents = {e for h, _, t in graph.triples for e in (h, t)}
        in_graph_rels = {r for _, r, _ in graph.triples}
        ents = in_graph_ents | set(loaded.declared_entities)
        rels = in_graph_rels | set(loaded.declared_relations)
        unlinked_rows: list[int] = []   # lines of query triples asking about a part with no edge in the graph
        unlinked: dict[str, int] = {}   # that part -> its first line
        for (h, r, t), line in zip(queries.triples, queries.lines):
            for role, value, known in (("head entity", h, ents), ("relation", r, rels), ("tail entity", t, ents)):
                if value not in known:
                    raise KGFormatError(
                        f"{role} {value!r} of split {split!r} is not in its inference graph {sp.graph!r} "
                        f"({graph.path.name}) nor declared",
                        queries.path,
                        line,
                    )
            parts = [v for v, linked in ((h, in_graph_ents), (r, in_graph_rels), (t, in_graph_ents)) if v not in linked]
            if parts:
                unlinked_rows.append(line)
                for value in parts:
                    unlinked.setdefault(value, line)
        if unlinked_rows:
            # Declared entities and relations are kept (their text and images give them tokens), but no
            # message reaches one with no edge in the inference graph.
            value, line = next(iter(unlinked.items()))
            ctx.warn(
                f"{queries.path}: {len(unlinked_rows)} of {len(queries.triples)} query triples of split {split!r} ask "
                f"about an entity or relation declared but in no triple of its inference graph {sp.graph!r} "
                f"({graph.path.name}): {len(unlinked)} distinct, e.g. {value!r} at line {line}; no message reaches "
                "them there, so the model ranks such answers last"
            )
        overlap = set(queries.triples).intersection(graph.triples)
        if overlap:
            ctx.warn(
                f"{queries.path}: {len(overlap)} of {len(queries.triples)} distinct query triples of split {split!r} "
                f"also occur in its inference graph {sp.graph!r} ({graph.path.name})"
            )


def read_kg(path: Path | str, name: str | None = None) -> KnowledgeGraph:
    """Read a graph folder, its kg.toml, or one triples file. Raises KGFormatError on bad input."""
    folder, cfg = graph_config(path)
    ctx = ReadContext()
    if cfg.path is not None:
        ctx.sources.add(cfg.path)
    layout, data_dir = resolve_layout(folder, cfg)

    if layout == "canonical":
        loaded = load_canonical(ctx, data_dir, cfg.triple_files, cfg.split)
    elif layout == "grail":
        loaded = load_grail(ctx, data_dir)
    elif layout == "ingram":
        loaded = load_ingram(ctx, data_dir)
    else:
        loaded = load_openke(ctx, data_dir)
    if cfg.source is not None and folder not in loaded.aux_dirs:
        loaded.aux_dirs.insert(0, folder)  # text/images placed next to a redirecting kg.toml

    ent_records = [
        read_text_file(ctx, p, "entity")
        for p in text_files(cfg.entity_text, loaded.aux_dirs, ("entities.tsv", "entity2text.txt", "entity2wikidata.json"))
    ]
    rel_records = [
        read_text_file(ctx, p, "relation")
        for p in text_files(cfg.relation_text, loaded.aux_dirs, ("relations.tsv", "relation2text.txt"))
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

    images = collect_images(ctx, ent_set, loaded.aux_dirs, cfg.images)

    return KnowledgeGraph(
        name=name or cfg.name or folder.name,
        root=folder,
        layout=layout,
        triple_sets={k: ts.triples for k, ts in loaded.sets.items()},
        splits=dict(loaded.splits),
        entities=entities,
        relations=relations,
        entity_text=build_text(entities, ent_records),
        relation_text=build_text(relations, rel_records),
        images=images,
        source_files=sorted(ctx.sources),
        warnings=ctx.warnings,
        declared_entities=loaded.declared_entities,
        declared_relations=loaded.declared_relations,
        triple_files={k: ts.path for k, ts in loaded.sets.items()},
    )
