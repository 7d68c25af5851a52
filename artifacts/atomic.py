"""Atomic writes: a reader sees the old artifact or the new one, never half of one.

Files are written to a temporary name in the same folder and renamed into
place (rename is atomic within one filesystem). Artifact folders are built in
a hidden staging folder beside the target and swapped in once complete.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Iterator

STAGING_MARK = ".tmp-"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that the file is either absent, old, or complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}{STAGING_MARK}{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as err:   # the error names the file asked for, not the temporary one
        if err.filename is not None and str(err.filename) == str(tmp):
            err.filename, err.filename2 = str(path), None
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


def canonical_json(obj: Any) -> str:
    """Sorted, indented JSON: the same object always gives the same bytes."""
    return json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, canonical_json(obj).encode("utf-8"))


def atomic_write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rows of equal keys as CSV with a header (quoted where a value needs it)."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(path, buffer.getvalue().encode("utf-8"))


@contextlib.contextmanager
def staging_directory(target: Path) -> Iterator[Path]:
    """Yield an empty staging folder; on success it replaces ``target`` whole.

    On an exception the staging folder is removed and ``target`` is left as it
    was. Between the two renames of the swap a crash can leave no ``target``
    at all, which later runs treat as "not done yet" -- never as done.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}{STAGING_MARK}{uuid.uuid4().hex[:8]}")
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(target, old)
    os.replace(staging, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


LOCK_FILE = ".tofu.lock"


@contextlib.contextmanager
def exclusive_root(root: Path) -> Iterator[None]:
    """Hold the artifact folder ``root`` for one writing run.

    A second run into the same root would delete the first one's staging folders as stale and race
    its swaps. The lock is the OS's (``flock``): a run that is killed never leaves it held.
    """
    from artifacts.errors import RootBusyError

    try:
        import fcntl
    except ImportError:   # not POSIX: no lock
        yield
        return
    path = Path(root) / LOCK_FILE
    with open(path, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()
            raise RootBusyError(f"{root}: another tofu run{f' (process {holder})' if holder else ''} is writing "
                                "to this artifact root; wait for it to end, or use another --out") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)


def remove_stale_staging(root: Path) -> int:
    """Delete staging folders left by interrupted runs under ``root``; return how many."""
    removed = 0
    if not Path(root).is_dir():
        return 0
    for entry in Path(root).iterdir():
        if entry.name.startswith(".") and (STAGING_MARK in entry.name or ".old-" in entry.name):
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed += 1
    return removed
