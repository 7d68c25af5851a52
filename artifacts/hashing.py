"""Content hashes used for artifact identities and incremental re-runs."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Iterable

from artifacts.atomic import canonical_json

_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def object_sha256(obj: Any) -> str:
    """Hash of a JSON-able object, independent of key order."""
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()


def files_digest(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """``[{path, bytes, sha256}]`` for each file, in the order given."""
    return [
        {"path": str(p), "bytes": Path(p).stat().st_size, "sha256": file_sha256(Path(p))}
        for p in paths
    ]


def relative_digest(source_digest: list[dict[str, Any]], root: Path) -> list[dict[str, Any]]:
    """``source_digest`` with each path named by where it lies: inside ``root``, its path relative to
    it; elsewhere (a kg.toml pointing into a data folder, GraIL's ``X_ind`` sibling), its folder and
    file name. A fingerprint of it survives moving the folder, or the data, yet changes when a file
    moves to another folder (an image's folder names the entity it shows)."""
    base = os.path.abspath(root)
    inside, outside = [], []
    for d in source_digest:
        path = os.path.abspath(d["path"])
        entry = {k: v for k, v in d.items() if k != "path"}
        if os.path.commonpath([path, base]) == base:
            inside.append(entry | {"name": os.path.relpath(path, base)})
        else:
            outside.append(entry | {"name": "/".join(Path(path).parts[-2:])})
    # Inside files first: moving the folder must not reorder the list (the files keep their order
    # within each group, so two outside files of one folder and file name still count apart).
    return inside + outside

