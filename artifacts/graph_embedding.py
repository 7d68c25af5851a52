"""A graph's own embedding (``tofu reason --embedding-minutes``): weights in safetensors, the rest in JSON.

Folder layout::

    embedding.safetensors   "entity" [entities, 2 x rank] and "relation" [2R, 2 x rank]
    manifest.json           kind "tofu.graph_embedding": the graph's name and the manifest digest of
                            the token tables it was fitted on, the weight its scores count with, the
                            settings and the run

An embedding belongs to the exact token tables it was fitted on: its rows are their entity and relation
ids, so a reader refuses it for any other artifact, re-tokenized versions of the same graph included.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from artifacts.atomic import staging_directory
from artifacts.errors import ArtifactError
from artifacts.manifest import DIGEST_KEY, read_manifest, write_manifest

KIND = "tofu.graph_embedding"
FORMAT_VERSION = 1
SUPPORTED_VERSIONS = (1,)
WEIGHTS = "embedding.safetensors"
TENSORS = ("entity", "relation")


def tables_identity(tables: Any) -> dict[str, str]:
    """What an embedding records of the token tables it is fitted on, and what a reader compares."""
    return {"name": tables.name, DIGEST_KEY: tables.manifest[DIGEST_KEY]}


def save_graph_embedding(folder: Path, tensors: dict[str, Any], tables: Any, weight: float,
                         settings: dict[str, Any], run: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    if set(tensors) != set(TENSORS):
        raise ValueError(f"a graph embedding holds the tensors {TENSORS}, got {sorted(tensors)}")
    with staging_directory(Path(folder)) as staging:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(staging / WEIGHTS))
        write_manifest(staging, KIND, FORMAT_VERSION,
                       {"graph": tables_identity(tables), "weight": float(weight), "settings": settings,
                        "run": run}, [WEIGHTS])


def load_graph_embedding(folder: Path, tables: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(manifest, tensors)`` of the embedding in ``folder``, checked against ``tables``.

    Raises :class:`ArtifactError` for a damaged folder, or one fitted on other token tables (its
    entity rows would be other entities)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    manifest = read_manifest(folder, KIND, SUPPORTED_VERSIONS, required_files=(WEIGHTS,))
    fitted_on, here = manifest.get("graph"), tables_identity(tables)
    if fitted_on != here:
        name = fitted_on.get("name") if isinstance(fitted_on, dict) else None
        raise ArtifactError(f"{folder}: fitted on the token tables of {name!r}, not on {tables.folder} "
                            f"({here['name']!r}" + (", tokenized again since" if name == here["name"] else "")
                            + "); fit it again with --embedding-minutes")
    try:
        tensors = load_file(str(folder / WEIGHTS))
    except Exception as err:   # safetensors raises its own error types for bad headers
        raise ArtifactError(f"{folder / WEIGHTS}: unreadable weights: {err}") from err
    if set(tensors) != set(TENSORS) or tensors["entity"].shape[0] != tables.num_entities \
            or tensors["relation"].shape[0] != 2 * tables.num_relations \
            or tensors["entity"].shape[1] != tensors["relation"].shape[1]:
        raise ArtifactError(f"{folder / WEIGHTS}: not an embedding of {tables.num_entities} entities and "
                            f"{2 * tables.num_relations} relation ids; the artifact is damaged")
    weight = manifest.get("weight")
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
        raise ArtifactError(f"{folder}: damaged manifest (weight {weight!r})")
    return manifest, tensors
