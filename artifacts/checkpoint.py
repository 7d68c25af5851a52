"""Reasoner checkpoints: weights in safetensors, everything else in JSON.

Folder layout::

    model.safetensors   the weights (no code runs on load)
    optimizer.pt        optional, for resuming; read with ``weights_only=True``
    manifest.json       kind "tofu.checkpoint": model config, training state,
                        the codebook id the model was trained with, code version

Loading is strict: missing or unexpected weight names are an error.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from artifacts.atomic import staging_directory
from artifacts.errors import ArtifactError, first_line
from artifacts.manifest import MANIFEST_NAME, read_manifest, write_manifest

KIND = "tofu.checkpoint"
FORMAT_VERSION = 1
SUPPORTED_VERSIONS = (1,)
WEIGHTS = "model.safetensors"
OPTIMIZER = "optimizer.pt"


def save_checkpoint(folder: Path, state_dict: dict[str, Any], model_config: dict[str, Any],
                    codebook_id: str, training: dict[str, Any],
                    optimizer_state: dict[str, Any] | None = None) -> None:
    import torch
    from safetensors.torch import save_file

    if not isinstance(codebook_id, str):   # a model must say which tokens it reads (readers refuse others)
        raise ValueError(f"a checkpoint needs the id of the codebooks it reads, got {codebook_id!r}")
    with staging_directory(Path(folder)) as staging:
        save_file({k: v.detach().cpu().contiguous() for k, v in state_dict.items()}, str(staging / WEIGHTS))
        files = [WEIGHTS]
        if optimizer_state is not None:
            torch.save(optimizer_state, staging / OPTIMIZER)
            files.append(OPTIMIZER)
        write_manifest(staging, KIND, FORMAT_VERSION,
                       {"model": model_config, "codebook_id": codebook_id, "training": training}, files)
        # safetensors creates its file 0600; give it the manifest's mode (0666 less the umask),
        # so a shipped or shared checkpoint is readable by its users. Reading the umask instead
        # would mean setting it, which races with other threads creating files.
        os.chmod(staging / WEIGHTS, stat.S_IMODE(os.stat(staging / MANIFEST_NAME).st_mode))


def load_checkpoint(folder: Path, with_optimizer: bool = False) -> tuple[dict[str, Any], dict[str, Any], dict | None]:
    """``(manifest, state_dict, optimizer_state or None)``; validated, no arbitrary unpickling.

    Any file that cannot be read or is refused raises :class:`ArtifactError` naming it.
    """
    folder = Path(folder)
    try:
        return _load_checkpoint(folder, with_optimizer)
    except OSError as err:   # e.g. a file this user may not read
        raise ArtifactError(f"{err.filename or folder}: unreadable: {err.strerror or err}") from err


def _load_checkpoint(folder: Path, with_optimizer: bool) -> tuple[dict[str, Any], dict[str, Any], dict | None]:
    from safetensors.torch import load_file

    manifest = read_manifest(folder, KIND, SUPPORTED_VERSIONS, required_files=(WEIGHTS,))
    missing = [key for key, kind in (("model", dict), ("codebook_id", str), ("training", dict))
               if not isinstance(manifest.get(key), kind)]
    if missing:   # the codebook id is what keeps a model off tokens it cannot read
        raise ArtifactError(f"{folder / MANIFEST_NAME}: damaged checkpoint manifest (no valid "
                            f"{', '.join(missing)}); regenerate the checkpoint")
    try:
        state = load_file(str(folder / WEIGHTS))
    except Exception as err:  # safetensors raises its own error types for bad headers
        raise ArtifactError(f"{folder / WEIGHTS}: unreadable weights: {first_line(str(err))}") from err
    optimizer = None
    if with_optimizer and (folder / OPTIMIZER).is_file():
        optimizer = _load_optimizer_state(folder / OPTIMIZER)
    return manifest, state, optimizer


def _load_optimizer_state(path: Path) -> dict[str, Any]:
    """The optimizer state, unpickled with ``weights_only``: tensors, numbers and plain containers only."""
    import pickle
    import warnings

    import torch

    try:
        with warnings.catch_warnings():   # torch warns of pickle protocols it did not write itself
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # torch's message advises weights_only=False, which would run the file's code: not for TOFU.
        ignored = ("Weights only load failed", "Please file an issue", "Check the documentation")
        reasons = [line.strip() for line in str(err).splitlines()
                   if line.strip() and not line.strip().startswith(ignored)]
        raise ArtifactError(f"{path}: refused, not unpickled: it is not plain tensor data"
                            + (f" ({reasons[0]})" if reasons else "") + "; regenerate the checkpoint, or start a "
                            "new run from its weights with --init") from None
    except (RuntimeError, EOFError, ValueError) as err:
        raise ArtifactError(f"{path}: unreadable optimizer state: {first_line(str(err))}") from None
    if not isinstance(state, dict):
        raise ArtifactError(f"{path}: not an optimizer state (a {type(state).__name__}, not a dict)")
    return state
