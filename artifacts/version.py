"""The code version recorded in every artifact."""
from __future__ import annotations

from importlib import metadata

DISTRIBUTION = "tofu-mmkg"


def _code_version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # running from a source tree that was not installed
        return "0+unknown"


CODE_VERSION: str = _code_version()
