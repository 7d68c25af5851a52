"""Where a graph is and which layout it is in: a folder, its kg.toml, or one triples file given alone;
the layout from kg.toml ``layout``, else from the files present."""

from __future__ import annotations

from pathlib import Path

from tokenizer_stage.kg_reader.errors import KGFormatError
from tokenizer_stage.kg_reader.files import absolute_path, present
from tokenizer_stage.kg_reader.kg_toml import GraphConfig, load_config, toml_line
from tokenizer_stage.kg_reader.triples import is_triples_file


def locate(path: Path | str, toml_name: str = "kg.toml", what: str = "graph") -> tuple[Path, Path | None]:
    """(folder, its ``toml_name`` or None) for a folder or a .toml path (graphs and task folders alike)."""
    p = absolute_path(Path(path).expanduser())
    if not p.exists():
        raise KGFormatError("path does not exist", p)
    if p.is_file():
        if p.suffix.lower() != ".toml":
            raise KGFormatError(f"expected a {what} folder or a {toml_name} file", p)
        return p.parent, p
    toml = p / toml_name
    return p, (toml if toml.is_file() else None)


def _detect_from_files(folder: Path) -> str:
    has = lambda name: present(folder / name)  # noqa: E731
    if has("entity2id.txt") and has("relation2id.txt") and has("train2id.txt"):
        return "openke"
    if has("msg.txt") and has("train.txt"):
        return "ingram"
    if has("train.txt"):
        return "grail"
    if has("train.tsv") or has("graph.tsv"):
        return "canonical"
    lone = sorted(p.name for p in folder.iterdir() if is_triples_file(p)) if folder.is_dir() else []
    raise KGFormatError(
        "cannot detect the layout: expected train.tsv or graph.tsv (canonical), train.txt (grail), "
        "train.txt + msg.txt (ingram) or entity2id.txt + relation2id.txt + train2id.txt (openke)"
        + (f"; a file of all triples ({lone[0]}?) is read when given itself, or named as 'files.all' in kg.toml"
           if lone else ""),
        folder,
    )


def resolve_layout(folder: Path, cfg: GraphConfig) -> tuple[str, Path]:
    """(layout, data folder)."""
    data_dir = cfg.source or folder
    if cfg.layout:
        layout = cfg.layout
    elif cfg.triple_files and cfg.source is None:
        layout = "canonical"  # triple files named in kg.toml are canonical by definition
    else:
        layout = _detect_from_files(data_dir)
    if cfg.triple_files and layout != "canonical":
        key = next(iter(cfg.triple_files))
        raise KGFormatError(
            f"'files.{key}' only applies to the canonical layout (this graph is {layout!r})",
            cfg.path,
            toml_line(cfg.text, key, "files"),
        )
    return layout, data_dir


def graph_config(path: Path | str) -> tuple[Path, GraphConfig]:
    """(folder, config) of a graph folder, its kg.toml, or one triples file given alone (read as
    ``files.all``, the graph named after the file)."""
    p = absolute_path(Path(path).expanduser())
    if is_triples_file(p):
        return p.parent, GraphConfig(name=p.stem, triple_files={"all": p})
    folder, toml = locate(p)
    return folder, (load_config(toml) if toml else GraphConfig())


def graph_name(path: Path | str) -> str:
    """The name ``read_kg`` gives the graph at ``path`` (kg.toml 'name', else the folder's; a triples
    file's name without its suffix), without reading its data."""
    folder, cfg = graph_config(path)
    return cfg.name or folder.name


def detect_layout(path: Path) -> str:
    """Layout name of a graph folder (or kg.toml): kg.toml `layout`, else from the files present."""
    folder, cfg = graph_config(path)
    return resolve_layout(folder, cfg)[0]
