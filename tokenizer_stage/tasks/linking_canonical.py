"""The ``linking:canonical`` layout: a task.toml naming a KB file (``id <TAB> name [<TAB> description]``),
optional image mapping and graph, and mention files (``mention id <TAB> mention <TAB> context <TAB> entity id
[<TAB> image]``)."""

from __future__ import annotations

from pathlib import Path

from tokenizer_stage.kg_reader.errors import KGFormatError
from tokenizer_stage.kg_reader.files import ReadContext, absolute_path
from tokenizer_stage.kg_reader.images import collect_images
from tokenizer_stage.kg_reader.kg_toml import toml_line
from tokenizer_stage.kg_reader.model import Text
from tokenizer_stage.kg_reader.read import read_kg
from tokenizer_stage.tasks.common import kb_graph, merge_sources, text_for
from tokenizer_stage.tasks.layout import graph_path_value
from tokenizer_stage.tasks.model import SPLIT_KEYS, LinkingTask, Mention
from tokenizer_stage.tasks.task_toml import check_top_keys, read_task_toml, resolve_task_name


def _read_kb_tsv(ctx: ReadContext, path: Path) -> dict[str, Text]:
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
        text[ident] = text_for(ident, parts[1], parts[2] if len(parts) == 3 else None)
    if not text:
        raise KGFormatError("no KB entities", path)
    return text


def read_linking_canonical(folder: Path, toml: Path, name: str | None) -> LinkingTask:
    """A linking task folder with a task.toml: the KB, its images and graph, the mention files."""
    ctx = ReadContext()
    cfg = read_task_toml(toml)
    ctx.sources.add(toml)
    check_top_keys(cfg, ("task", "kb", "mentions"))
    task = cfg.table("task", ("kind", "name"))  # kind was checked by layout_of
    task_name = resolve_task_name(cfg, task, name, folder)
    kb_cfg = cfg.table("kb", ("entities", "images", "graph"))
    ment_cfg = cfg.table("mentions", SPLIT_KEYS)
    kb_path = cfg.path_value(kb_cfg, "kb", "entities", required=True)
    img_path = cfg.path_value(kb_cfg, "kb", "images")
    graph_path = graph_path_value(cfg, kb_cfg, "kb", "graph")
    split_files = {k: cfg.path_value(ment_cfg, "mentions", k) for k in SPLIT_KEYS if k in ment_cfg}
    if not split_files:
        raise KGFormatError("[mentions] needs at least one of 'train', 'valid', 'test'", toml,
                            toml_line(cfg.text, "mentions"))

    kb_ctx = ReadContext()  # the KB's own files and warnings, kept on the KB object
    text = _read_kb_tsv(kb_ctx, kb_path)  # type: ignore[arg-type]
    images = collect_images(kb_ctx, set(text), [], [img_path]) if img_path is not None else {}
    graph = read_kg(graph_path) if graph_path is not None else None
    kb = kb_graph(task_name, folder, "canonical", text, images, kb_ctx, graph)

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
        source_files=merge_sources(ctx.sources, kb.source_files),
        warnings=kb.warnings + ctx.warnings,
    )


def _read_mention_tsv(ctx: ReadContext, path: Path, kb_ids: set[str], first_seen: dict[str, str]) -> list[Mention]:
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
            image = absolute_path(path.parent / parts[4].strip())
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
