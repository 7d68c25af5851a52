"""Every on-disk format of TOFU: manifests, token tables, codebooks, checkpoints.

Artifacts are folders with a ``manifest.json`` written last; a folder without
one is incomplete and is never read. Each manifest names its ``kind`` and
``format_version``; readers refuse kinds and versions they do not know.
"""
from artifacts.errors import (
    ArtifactError,
    IncompleteArtifactError,
    UnsupportedFormatError,
)
from artifacts.version import CODE_VERSION

__all__ = [
    "ArtifactError",
    "IncompleteArtifactError",
    "UnsupportedFormatError",
    "CODE_VERSION",
]
