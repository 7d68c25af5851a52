"""Progress bars (tqdm on stderr), switched off with --quiet or when not wanted."""
from __future__ import annotations

from typing import Any


def make_progress(enabled: bool, position_offset: int = 0):
    """A factory with tqdm's signature, or one that returns silent bars."""
    if not enabled:
        from tokenizer_stage.tokenize import no_progress

        return no_progress
    from tqdm.auto import tqdm

    def factory(iterable: Any = None, **kwargs: Any):
        kwargs.setdefault("leave", False)
        kwargs.setdefault("dynamic_ncols", True)
        kwargs.setdefault("position", position_offset)
        return tqdm(iterable, **kwargs)

    return factory
