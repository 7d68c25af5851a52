"""``read_task``, ``read_alignment_task`` and ``read_linking_task``: a task folder (or task.toml) in any
layout, read by the module of its layout."""

from __future__ import annotations

from pathlib import Path

from tokenizer_stage.kg_reader.errors import KGFormatError
from tokenizer_stage.tasks.alignment_canonical import read_alignment_canonical
from tokenizer_stage.tasks.dbp15k import read_dbp15k
from tokenizer_stage.tasks.layout import DBP15K_FILES, RICHPEDIA_FILES, WIKIMEL_FILES, layout_of, locate_task
from tokenizer_stage.tasks.linking_canonical import read_linking_canonical
from tokenizer_stage.tasks.model import AlignmentTask, LinkingTask
from tokenizer_stage.tasks.richpedia import read_richpedia
from tokenizer_stage.tasks.task_toml import TASK_TOML, read_task_toml
from tokenizer_stage.tasks.wikimel import read_wikimel


def _not_a_task(folder: Path) -> KGFormatError:
    return KGFormatError(
        f"not a task folder: expected {TASK_TOML}, the DBP15K files ({' '.join(DBP15K_FILES)}), "
        f"WikiMEL ({' '.join(WIKIMEL_FILES)}) or Richpedia-MEL ({' '.join(RICHPEDIA_FILES)}); "
        "a plain graph folder is read with read_kg",
        folder,
    )


# Each layout's reader, called as reader(folder, task.toml or None, name).
READERS = {
    "alignment:canonical": read_alignment_canonical,
    "alignment:dbp15k": lambda folder, toml, name: read_dbp15k(folder, name),
    "linking:canonical": read_linking_canonical,
    "linking:wikimel": lambda folder, toml, name: read_wikimel(folder, name),
    "linking:richpedia": lambda folder, toml, name: read_richpedia(folder, name),
}


def read_task(path: Path | str, name: str | None = None) -> AlignmentTask | LinkingTask:
    """Read any task folder (or task.toml). Raises KGFormatError on bad input."""
    return _read_kind(path, name, None)


def _read_kind(path: Path | str, name: str | None, kind: str | None) -> AlignmentTask | LinkingTask:
    """The task at ``path`` read by its layout's reader; refused when it is not of ``kind`` (None: any)."""
    folder, toml = locate_task(path)
    layout = layout_of(folder, toml)
    if layout is None:
        raise _not_a_task(folder)
    if kind is not None and not layout.startswith(f"{kind}:"):
        raise _wrong_kind(folder, toml, layout, kind)
    return READERS[layout](folder, toml, name)


def _wrong_kind(folder: Path, toml: Path | None, layout: str, expected: str) -> KGFormatError:
    if toml is not None:
        cfg = read_task_toml(toml)
        return cfg.err(f"task kind is {layout.split(':')[0]!r}, expected {expected!r}", "kind", "task")
    return KGFormatError(f"this is a {layout} task folder, not {expected}", folder)


def read_alignment_task(path: Path | str, name: str | None = None) -> AlignmentTask:
    """Read an alignment task folder (canonical task.toml or DBP15K). Raises KGFormatError on bad input.

    DBP15K ships no split: ``ill_ent_ids`` is shuffled with ``random.Random(0)``,
    the first 30% of pairs are ``train`` (seed alignment) and the other 70% ``test``,
    the usual protocol (JAPE/EVA/MCLEA); each split keeps file order.
    """
    return _read_kind(path, name, "alignment")  # type: ignore[return-value]


def read_linking_task(path: Path | str, name: str | None = None) -> LinkingTask:
    """Read a linking task folder (canonical task.toml, WikiMEL or Richpedia-MEL). Raises KGFormatError on bad input.

    Mention ids: canonical = the file's first column; WikiMEL ``<sample id>:<i>``
    (i = position in the sample's mention list); Richpedia-MEL ``<sample id>:0``.
    WikiMEL's split "dev" (and Richpedia's dev.json) becomes "valid". In the JSON
    layouts a blank mention is dropped with a warning (Richpedia-MEL train.json has
    one); in task.toml folders it is an error.
    """
    return _read_kind(path, name, "linking")  # type: ignore[return-value]
