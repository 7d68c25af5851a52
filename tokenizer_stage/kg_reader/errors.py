"""The error and the warning every reader raises: KGFormatError (``FILE:LINE: reason``) and KGWarning."""

from __future__ import annotations

from pathlib import Path


class KGFormatError(ValueError):
    """Bad input. str(err) is 'FILE:LINE: message' (or 'FILE: message' when no line applies)."""

    def __init__(self, message: str, path: Path | str | None = None, line: int | None = None):
        self.reason = message
        self.path = None if path is None else str(path)
        self.line = line
        if self.path is None:
            text = message
        elif line is None:
            text = f"{self.path}: {message}"
        else:
            text = f"{self.path}:{line}: {message}"
        super().__init__(text)

    def __reduce__(self):  # keep path/line when pickled across processes
        return (type(self), (self.reason, self.path, self.line))


class KGWarning(UserWarning):
    """Non-fatal data problem (duplicates dropped, image missing, split leakage...)."""
