"""Errors raised when an artifact cannot be read, and the one-line form of a library's message."""
from __future__ import annotations


class ArtifactError(RuntimeError):
    """An artifact is missing, damaged or of the wrong kind."""


class IncompleteArtifactError(ArtifactError):
    """The folder has no manifest: a write was interrupted or never finished."""


class UnsupportedFormatError(ArtifactError):
    """The artifact was written in a format version this code cannot read."""


class RootBusyError(ArtifactError):
    """Another run is writing to the same artifact root."""


class CodebookMismatchError(ArtifactError, ValueError):
    """Artifacts, codebooks, encoders or a model that do not go together: tokenized with other codebooks
    than a model reads, or codebooks fitted for other encoders or features than the ones asked for."""


def first_line(text: str) -> str:
    """The first non-blank line of an error message from a library (torch, transformers and
    safetensors add paragraphs of advice): TOFU's errors are one line naming the file."""
    return next((line.strip() for line in text.splitlines() if line.strip()), text)
