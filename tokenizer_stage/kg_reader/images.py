"""Entity images: ``images/<entity>/`` folders and ``images.tsv`` files of ``entity id<TAB>image path``."""

from __future__ import annotations

from pathlib import Path

from tokenizer_stage.kg_reader.errors import KGFormatError
from tokenizer_stage.kg_reader.files import ReadContext, absolute_path, present

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png"})


def _image_key(ident: str) -> str:
    return ident.replace("/", ".").lstrip(".")


def collect_images(ctx: ReadContext, entities: set[str], aux_dirs: list[Path],
                   mapping_files: list[Path]) -> dict[str, list[Path]]:
    """Image files per entity from ``images/<entity>/`` folders and mapping files; missing files and
    unknown ids are noted, not errors."""
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
            found.setdefault(ent, set()).update(absolute_path(f) for f in files)
        if unknown:
            ctx.warn(f"{img_dir}: ignored {unknown} image folder(s) whose name is not an entity of the graph")

    maps = list(mapping_files) + [absolute_path(d / "images.tsv") for d in aux_dirs if present(d / "images.tsv")]
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
            img = absolute_path(mp.parent / parts[1])
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
