"""``manifest.json``: the self-description every artifact folder ends with.

Common keys: ``kind`` (what the folder is), ``format_version`` (how its files
are laid out), ``code_version`` (the TOFU release that wrote it),
``files`` (name -> bytes and sha256 of each data file) and ``manifest_sha256``
(the hash of every other key, so that an edited manifest is told from the one
written). The manifest is the last thing written: its presence marks the folder
complete.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from artifacts.atomic import atomic_write_json
from artifacts.errors import ArtifactError, IncompleteArtifactError, UnsupportedFormatError
from artifacts.hashing import file_sha256, object_sha256
from artifacts.version import CODE_VERSION

MANIFEST_NAME = "manifest.json"
DIGEST_KEY = "manifest_sha256"


def with_digest(manifest: dict[str, Any]) -> dict[str, Any]:
    """``manifest`` with its ``manifest_sha256``: the hash of every other key, as written."""
    body = {key: value for key, value in manifest.items() if key != DIGEST_KEY}
    return {**body, DIGEST_KEY: object_sha256(body)}


_EDITED = f"the manifest was edited after it was written (its content differs from its {DIGEST_KEY})"


def _was_edited(manifest: dict[str, Any]) -> bool:
    """Whether ``manifest``'s recorded digest no longer matches its content."""
    return with_digest(manifest)[DIGEST_KEY] != manifest.get(DIGEST_KEY)


def write_manifest(folder: Path, kind: str, format_version: int, body: dict[str, Any],
                   data_files: list[str]) -> dict[str, Any]:
    """Write the manifest of ``folder`` after its ``data_files`` are in place."""
    files = {}
    for name in sorted(data_files):
        path = Path(folder) / name
        files[name] = {"bytes": path.stat().st_size, "sha256": file_sha256(path)}
    manifest = with_digest({
        **body,
        "kind": kind,
        "format_version": format_version,
        "code_version": CODE_VERSION,
        "files": files,
    })
    atomic_write_json(Path(folder) / MANIFEST_NAME, manifest)
    return manifest


def peek_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest of ``folder`` unvalidated (what kind of artifact is here, what made it), or ``None``
    when there is none or it cannot be read: for checks that must not fail on a foreign folder."""
    try:
        manifest = json.loads((Path(folder) / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return manifest if isinstance(manifest, dict) else None


def recorded_source(folder: Path, body: dict[str, Any] | None = None) -> Path | None:
    """The graph or task folder an artifact says it was made from (``graph.root`` / ``task.root``);
    ``body``: its manifest when already peeked."""
    body = (peek_manifest(folder) or {}) if body is None else body
    section = body.get("graph") if isinstance(body.get("graph"), dict) else body.get("task")
    root = section.get("root") if isinstance(section, dict) else None
    return Path(root) if isinstance(root, str) else None


def recorded_codebook_id(body: dict[str, Any]) -> str | None:
    """The codebook set an artifact's manifest says it was made with (a task's ``codebook_id``, a
    graph's ``codebooks.id``)."""
    books = body.get("codebooks") if isinstance(body.get("codebooks"), dict) else {}
    return body.get("codebook_id") or books.get("id")


def record_source(folder: Path, root: Path) -> None:
    """Point an up-to-date artifact at the folder it is now made from (the folder moved). Only the
    manifest is rewritten, atomically; the data files and their hashes stay as they are."""
    path = Path(folder) / MANIFEST_NAME
    manifest = json.loads(path.read_text(encoding="utf-8"))
    section = manifest["graph"] if isinstance(manifest.get("graph"), dict) else manifest["task"]
    if section.get("root") != str(root):
        section["root"] = str(root)
        atomic_write_json(path, with_digest(manifest))


def check_manifest_digests(folder: Path) -> None:
    """Raise ArtifactError unless the manifest of ``folder``, and those of the artifacts nested in it
    (a task's graphs), are as written: the check that lets an up-to-date artifact be skipped covers
    the manifest itself as well as its files (an edited ``splits`` changes every result)."""
    for path in [Path(folder) / MANIFEST_NAME, *sorted(Path(folder).glob(f"*/{MANIFEST_NAME}"))]:
        manifest = peek_manifest(path.parent)
        if manifest is None:
            raise ArtifactError(f"{path}: unreadable manifest")
        if DIGEST_KEY not in manifest:
            raise ArtifactError(f"{path}: the manifest records no {DIGEST_KEY} (an older TOFU wrote it), so "
                                "an edited manifest cannot be told from the one written")
        if _was_edited(manifest):
            raise ArtifactError(f"{path}: {_EDITED}; the artifact is damaged")


def read_manifest(folder: Path, kind: str, supported_versions: tuple[int, ...],
                  verify_files: bool = True, required_files: tuple[str, ...] = ()) -> dict[str, Any]:
    """Read and validate ``folder/manifest.json``; raise a named error on any problem.

    ``required_files``: data files the kind always has; a manifest that does not list one cannot
    vouch for it (and its hash check would be skipped).
    """
    folder = Path(folder)
    path = folder / MANIFEST_NAME
    what = {"tofu.checkpoint": "checkpoint folder", "tofu.codebooks": "codebook set"}.get(kind, "artifact folder")
    if not folder.is_dir():
        raise ArtifactError(f"{folder}: {'is a file, not a' if folder.exists() else 'no such'} {what}")
    if not path.is_file():
        inner = [p.parent.name for p in sorted(folder.glob(f"*/{MANIFEST_NAME}"))
                 if (peek_manifest(p.parent) or {}).get("kind") == kind]
        raise IncompleteArtifactError(
            f"{folder}: no {MANIFEST_NAME}: not a {what}, or one left incomplete by an interrupted write "
            "(regenerate it)" + (f"; the {what} here is {folder / inner[0]}" if inner else ""))
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ArtifactError(f"{path}: unreadable manifest: {err}") from err
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{path}: manifest is not a JSON object")
    found_kind = manifest.get("kind")
    if found_kind != kind:
        raise ArtifactError(f"{path}: expected an artifact of kind {kind!r}, found {found_kind!r}")
    version = manifest.get("format_version")
    if type(version) is not int or version not in supported_versions:   # not bool: True == 1
        raise UnsupportedFormatError(
            f"{path}: format version {version!r} of {kind!r} is not readable by TOFU {CODE_VERSION} "
            f"(it reads versions {', '.join(map(str, supported_versions))}); "
            f"the artifact was written by TOFU {manifest.get('code_version', '?')}: "
            "regenerate it or use a matching TOFU release")
    # Older manifests record no digest and are read as they are; a recorded one must still hold.
    if DIGEST_KEY in manifest and _was_edited(manifest):
        raise ArtifactError(f"{path}: {_EDITED}; the {what.split()[0]} is damaged: regenerate it")
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(isinstance(meta, dict) for meta in files.values()):
        raise ArtifactError(f"{path}: manifest has no 'files' table")
    unlisted = [name for name in required_files if name not in files]
    if unlisted:
        raise ArtifactError(f"{path}: the manifest does not list {', '.join(unlisted)}; the artifact is damaged "
                            "(regenerate it)")
    for name, meta in files.items():
        data = folder / name
        if not data.is_file():
            raise ArtifactError(f"{data}: listed in the manifest but missing")
        if data.stat().st_size != meta.get("bytes"):
            raise ArtifactError(f"{data}: size {data.stat().st_size} differs from the manifest's "
                                f"{meta.get('bytes')}; the artifact is damaged")
        if verify_files and file_sha256(data) != meta.get("sha256"):
            raise ArtifactError(f"{data}: content hash differs from the manifest; the artifact is damaged")
    return manifest
