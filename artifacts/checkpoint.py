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
from artifacts.errors import ArtifactError
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
    """``(manifest, state_dict, optimizer_state or None)``; validated, no arbitrary unpickling."""
    import torch
    from safetensors.torch import load_file

    folder = Path(folder)
    manifest = read_manifest(folder, KIND, SUPPORTED_VERSIONS, required_files=(WEIGHTS,))
    missing = [key for key, kind in (("model", dict), ("codebook_id", str), ("training", dict))
               if not isinstance(manifest.get(key), kind)]
    if missing:   # the codebook id is what keeps a model off tokens it cannot read
        raise ArtifactError(f"{folder / MANIFEST_NAME}: damaged checkpoint manifest (no valid "
                            f"{', '.join(missing)}); regenerate the checkpoint")
    try:
        state = load_file(str(folder / WEIGHTS))
    except Exception as err:  # safetensors raises its own error types for bad headers
        raise ArtifactError(f"{folder / WEIGHTS}: unreadable weights: {err}") from err
    optimizer = None
    if with_optimizer and (folder / OPTIMIZER).is_file():
        optimizer = torch.load(folder / OPTIMIZER, map_location="cpu", weights_only=True)
    return manifest, state, optimizer
