"""The artifact root that ``tofu tokenize --out ROOT`` writes.

``ROOT/codebooks/`` holds the codebook set, ``ROOT/last_tokenize_run.json`` the
last run's record, and ``ROOT/<name>/`` one artifact per graph or task, named
by the graph's (or task's) name. A name is therefore a single folder name that
cannot reach outside the root or onto the root's own entries.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Callable, Sequence

from artifacts.errors import ArtifactError
from artifacts.manifest import MANIFEST_NAME, peek_manifest, recorded_source
from artifacts.task_tables import ALIGNMENT_KIND, LINKING_KIND
from artifacts.token_tables import KIND as TOKEN_TABLES_KIND

CODEBOOKS_FOLDER = "codebooks"
LAST_RUN_FILE = "last_tokenize_run.json"
RESERVED_NAMES = (CODEBOOKS_FOLDER, LAST_RUN_FILE)
ARTIFACT_KINDS = (TOKEN_TABLES_KIND, ALIGNMENT_KIND, LINKING_KIND)


def codebook_folder(out_root: Path | str, codebooks: Path | str | None = None) -> Path:
    """The codebook set a tokenize run into ``out_root`` reads: ``codebooks`` when given, else the root's own."""
    return Path(codebooks) if codebooks else Path(out_root) / CODEBOOKS_FOLDER


def artifact_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name an artifact folder in a root, or None when it can."""
    if not name or not name.strip():
        return "is empty"
    if name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        return "is not a plain folder name (not '.' or '..', and no '/' or '\\')"
    if name.startswith("."):
        return "starts with '.' (hidden names are kept for staging folders)"
    if name.lower() in RESERVED_NAMES:   # case-insensitive file systems too
        return f"is the root's own {name.lower()!r} entry"
    return None


def artifact_name_error(name: str) -> str | None:
    """The message for a graph or task whose name cannot name its artifact folder, or None."""
    problem = artifact_name_problem(name)
    return None if problem is None else (f"its name {name!r} (the artifact's folder under the output root) "
                                         f"{problem}; rename it (kg.toml 'name', task.toml 'task.name', or the "
                                         "folder)")


def artifact_folder(root: Path, name: str) -> Path:
    """``root/name`` for a graph's or task's artifact; refuses a name that would land elsewhere."""
    error = artifact_name_error(name)
    if error:
        raise ArtifactError(f"{root}: a graph or task: {error}")
    return Path(root) / name


def list_artifacts(root: Path) -> list[tuple[Path, dict[str, Any]]]:
    """``(folder, manifest)`` of each complete graph or task artifact directly under ``root``, by name.

    An artifact is a visible folder whose manifest names one of :data:`ARTIFACT_KINDS`; hidden folders
    are staging folders of a write in progress or interrupted, never artifacts.
    """
    found = []
    for manifest_path in sorted(Path(root).glob(f"*/{MANIFEST_NAME}")):
        folder = manifest_path.parent
        if folder.name.startswith(".") or not folder.is_dir():
            continue
        body = peek_manifest(folder) or {}
        if body.get("kind") in ARTIFACT_KINDS:
            found.append((folder, body))
    return found


def remove_root_without_artifacts(root: Path) -> bool:
    """Delete ``root`` with what a run writes beside its artifacts (codebooks, the last run's record, the
    lock, staging folders) when it holds no artifact; return whether it did. For a root a failed run
    made: nothing of it is left behind."""
    if not Path(root).is_dir() or list_artifacts(root):
        return False
    shutil.rmtree(root, ignore_errors=True)
    return not Path(root).exists()


def artifact_folders(paths: Sequence[Path]) -> list[Path]:
    """The artifacts that command-line paths name: each an artifact folder itself, or a root whose
    artifacts (:func:`list_artifacts`) are all taken."""
    found = []
    for path in map(Path, paths):
        if (path / MANIFEST_NAME).is_file():
            found.append(path)
            continue
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such folder")
        inner = [folder for folder, _ in list_artifacts(path)] if path.is_dir() else []
        if not inner:
            raise FileNotFoundError(f"{path}: neither a token-table folder nor a root holding them "
                                    "(run tofu tokenize first)")
        found.extend(inner)
    return found


def stale_artifacts(out_root: Path, name_of: Callable[[Path], str]) -> list[tuple[Path, str]]:
    """Artifacts under ``out_root`` that ``tofu train / reason ROOT`` would still read although no
    graph folder makes them any more, each with the reason: the folder is gone, it now writes an
    artifact of another name (renamed in its kg.toml / task.toml), or another artifact was made
    from the same folder reached by another path (a symlink).

    ``name_of(source)``: the artifact name a source folder is tokenized as now (stage one's naming
    rule); a folder it cannot name (ValueError, OSError: a broken kg.toml) is left to the tokenize run,
    which reports it with file and line.
    """
    stale = []
    first_from: dict[str, Path] = {}
    for folder, body in list_artifacts(out_root):
        source = recorded_source(folder, body)
        if source is None:
            continue
        if not source.exists():
            stale.append((folder, f"was made from {source}, which no longer exists"))
            continue
        try:
            name = name_of(source)
        except (ValueError, OSError):
            continue
        real = os.path.realpath(source)
        if name != folder.name:
            stale.append((folder, f"was made from {source}, which is now tokenized as {name!r}"))
        elif real in first_from:
            stale.append((folder, f"was made from {source}, the same folder as {first_from[real]} "
                                  "(so both read the same graph)"))
        else:
            first_from[real] = folder
    return stale
