"""Whether things made apart can be used together: the one place codebook compatibility is decided.

A codebook set's content id (:attr:`artifacts.codebooks.CodebookSet.codebook_id`) ties every artifact
and checkpoint to the codebooks its tokens index. On disk it is a graph manifest's ``codebooks.id``, a
task manifest's and a checkpoint manifest's ``codebook_id`` and a Parquet table's ``codebooks``
metadata key; :func:`artifacts.manifest.recorded_codebook_id` reads a manifest's. Every mismatch raises
:class:`artifacts.errors.CodebookMismatchError`.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from artifacts.errors import CodebookMismatchError
from artifacts.manifest import recorded_codebook_id
from artifacts.root import list_artifacts

if TYPE_CHECKING:
    from artifacts.codebooks import CodebookSet


def require_codebook_id(artifacts: Iterable[Any], codebook_id: str | None) -> None:
    """Refuse token tables or task artifacts (anything with ``folder`` and ``codebook_id``) made with
    other codebooks than ``codebook_id``; ``None`` accepts any."""
    if codebook_id is None:
        return
    for artifact in artifacts:
        if artifact.codebook_id != codebook_id:
            raise CodebookMismatchError(
                f"{artifact.folder}: tokenized with codebooks {artifact.codebook_id}, but the model reads codebooks "
                f"{codebook_id}; re-tokenize it with those codebooks (tofu tokenize GRAPH --out NEW_ROOT "
                f"--codebooks {codebooks_path_hint(codebook_id)})")


def codebooks_path_hint(codebook_id: str) -> str:
    """The shipped codebook set's path when its id is ``codebook_id``, else a placeholder."""
    from artifacts.codebooks import CodebookSet
    from artifacts.shipped import shipped_codebooks

    shipped = shipped_codebooks()
    try:
        if shipped is not None and CodebookSet.load(shipped).codebook_id == codebook_id:
            return str(shipped)
    except Exception:  # a damaged installation: the hint is not worth another error
        pass
    return "PATH"


def structure_codebook_problem(codebooks: Any, features_version: int) -> str | None:
    """Why the set's structure codebook cannot quantize structural features of ``features_version``."""
    if "structure" not in codebooks:
        return "the codebook set has no structure codebook"
    fitted = codebooks["structure"].encoder.get("version")
    if fitted != features_version:
        return (f"the structure codebook was fitted on structural features v{fitted}, this TOFU computes "
                f"v{features_version}; refit the codebooks (--refit-codebooks)")
    return None


def encoder_codebook_problem(codebooks: Any, modality: str, source: str, weights: str) -> str | None:
    """Why the set's ``modality`` codebook cannot quantize vectors of the encoder ``source`` whose weights
    digest is ``weights`` (None when it can or the set has no such codebook)."""
    if modality not in codebooks:
        return None
    made_by = codebooks[modality].encoder
    if made_by.get("weights") == weights:
        return None
    return (f"the {modality} codebook was fitted on vectors of encoder {made_by.get('name')!r} "
            f"(weights {made_by.get('weights')}), but the {modality} encoder asked for is {source!r} "
            f"(weights {weights}); use the matching encoder, another codebook set (--codebooks), or refit "
            "(--refit-codebooks)")


def other_codebook_artifacts(out_root: Path, codebook_id: str) -> list[Path]:
    """Artifacts under ``out_root`` made with codebooks other than ``codebook_id`` (the root's)."""
    return [folder for folder, body in list_artifacts(out_root) if recorded_codebook_id(body) != codebook_id]


def frozen_size_conflict(codebooks: CodebookSet, asked: dict[str, int]) -> tuple[str, int, int] | None:
    """``(modality, size asked, size fitted with)`` of the first codebook of the set fitted for another
    size than ``asked`` gives it, or None. A fit on fewer distinct vectors than asked makes a smaller
    codebook: the size asked then counts."""
    for modality, size in asked.items():
        if modality in codebooks:
            then = codebooks[modality].fit.get("requested_size", codebooks[modality].size)
            if size not in (then, codebooks[modality].size):
                return modality, size, then
    return None
