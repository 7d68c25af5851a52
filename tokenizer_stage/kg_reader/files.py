"""Reading input files: absolute paths, optional and required files, UTF-8 lines, and the warnings
and files of one read (:class:`ReadContext`). Shared by the graph and the task readers."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from tokenizer_stage.kg_reader.errors import KGFormatError, KGWarning


def absolute_path(path: Path | str) -> Path:
    """``path`` made absolute with '..' collapsed and symlinks not resolved: stable ids for hashing."""
    return Path(os.path.abspath(path))


def present(path: Path) -> bool:
    """Whether an optional file is given. Anything at that name counts, so a dangling or looping
    symlink (or a folder) is read and refused by name instead of its split silently vanishing."""
    return os.path.lexists(path)


def require(path: Path) -> Path:
    """``path`` of a file a layout cannot do without; nothing there is 'missing required file'."""
    if not present(path):
        raise KGFormatError("missing required file", path)
    return path


class ReadContext:
    """Collects the warnings and every file read of one graph or task (each reader module adds to it)."""

    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.sources: set[Path] = set()

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        warnings.warn(message, KGWarning, stacklevel=3)

    def read_lines(self, path: Path) -> list[str]:
        """Lines split on '\\n' only (a stray '\\r' inside a field is no line break), trailing '\\r' stripped."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            if path.is_symlink():
                raise KGFormatError(f"symbolic link to a file that does not exist ({os.readlink(path)})",
                                    path) from None
            raise KGFormatError("file not found", path) from None
        except OSError as e:   # a loop of symbolic links, a folder, no permission
            raise KGFormatError(f"cannot read file: {e.strerror}", path) from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise KGFormatError(f"not valid UTF-8 (byte offset {e.start})", path, data.count(b"\n", 0, e.start) + 1) from None
        self.sources.add(absolute_path(path))
        if text.startswith("\ufeff"):
            text = text[1:]
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]
