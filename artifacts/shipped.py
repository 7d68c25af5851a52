"""The pretrained model that ships inside the package: a checkpoint and the codebooks it reads.

Layout (``artifacts/shipped/``)::

    checkpoint/   a "tofu.checkpoint" folder (weights + manifest, no optimizer state)
    codebooks/    the "tofu.codebooks" set its training graphs were tokenized with

``tofu tokenize`` uses these codebooks when an artifact root has none yet (and
the encoders and sizes asked for are theirs), and ``tofu reason`` uses the
checkpoint when no ``--checkpoint`` is given, so a new graph is tokenized and
reasoned on zero-shot in two commands. ``tofu pretrain RECIPE --ship`` writes
both (recipes/pretrain.toml).
"""
from __future__ import annotations

import shutil
from pathlib import Path

from artifacts.atomic import staging_directory
from artifacts.checkpoint import load_checkpoint, save_checkpoint
from artifacts.errors import ArtifactError
from artifacts.manifest import MANIFEST_NAME
from artifacts.codebooks import CodebookSet, codebooks_exist
from artifacts.root import CODEBOOKS_FOLDER

SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"


def shipped_checkpoint(root: Path = SHIPPED_DIR) -> Path | None:
    folder = Path(root) / "checkpoint"
    return folder if (folder / MANIFEST_NAME).is_file() else None


def shipped_codebooks(root: Path = SHIPPED_DIR) -> Path | None:
    folder = Path(root) / CODEBOOKS_FOLDER
    return folder if codebooks_exist(folder) else None


def ship(checkpoint: Path, codebooks: Path, root: Path = SHIPPED_DIR) -> Path:
    """Copy a checkpoint (without optimizer state) and its codebooks into ``root``, atomically.

    Refuses a checkpoint that was not trained on tokens of these codebooks.
    """
    manifest, state, _ = load_checkpoint(checkpoint)
    books = CodebookSet.load(codebooks)
    # A shipped model must name its codebooks: `tofu tokenize` copies them so that new graphs get its tokens.
    if manifest["codebook_id"] != books.codebook_id:
        raise ArtifactError(f"{checkpoint} reads codebooks {manifest['codebook_id']}, "
                            f"but {codebooks} holds {books.codebook_id}; nothing was shipped")
    with staging_directory(Path(root)) as staging:
        save_checkpoint(staging / "checkpoint", state, manifest["model"], manifest["codebook_id"],
                        manifest["training"])
        shutil.copytree(codebooks, staging / CODEBOOKS_FOLDER)
    return Path(root)
