"""The artifact root that ``tofu tokenize --out ROOT`` writes.

``ROOT/codebooks/`` holds the codebook set, ``ROOT/last_tokenize_run.json`` the
last run's record, and ``ROOT/<name>/`` one artifact per graph or task, named
by the graph's (or task's) name. A name is therefore a single folder name that
cannot reach outside the root or onto the root's own entries.
"""
from __future__ import annotations

from pathlib import Path

from artifacts.errors import ArtifactError

CODEBOOKS_FOLDER = "codebooks"
LAST_RUN_FILE = "last_tokenize_run.json"
RESERVED_NAMES = (CODEBOOKS_FOLDER, LAST_RUN_FILE)


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
