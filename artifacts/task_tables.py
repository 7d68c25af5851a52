"""Task artifacts: entity alignment (two graphs + gold links) and entity linking (a KB + mentions).

One folder per task (``ROOT/<task>/``), built in a staging folder and
swapped in whole::

    alignment (kind "tofu.alignment_task")
        graph1/, graph2/          token tables of each graph (artifacts.token_tables)
        links.parquet             split, entity1 int32, entity2 int32  (ids of graph1 / graph2)
    linking (kind "tofu.linking_task")
        kb/                       token tables of the knowledge base (may hold no triples)
        mentions.parquet          mention_index int32, mention_id, split, text, context,
                                  entity int32 (KB entity id; -1 = unlabelled)
        mention_tokens.parquet    mention_index int32, modality, rank int8, code int32, count int32
        mention_lexical.parquet   mention_index int32, field, subword int32, count int32
                                  (the mention string is its name field, the context its description)
        mention_dense.parquet     mention_index int32, field (name | full), codes binary
    manifest.json                 written last; names the codebook id every part was made with

Mentions are quantized with the same frozen codebooks as the KB's entity
texts, so a mention's codes and an entity's codes are directly comparable.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute is a submodule: imported, not implied)
import pyarrow.parquet as pq

from artifacts.atomic import staging_directory
from artifacts.errors import ArtifactError
from artifacts.manifest import MANIFEST_NAME, peek_manifest, read_manifest, write_manifest
from artifacts.token_tables import (METADATA_KEY, TokenTables, dense_of, lexical_of, read_checked_table,
                                    read_manifest_only, read_token_tables)

ALIGNMENT_KIND = "tofu.alignment_task"
LINKING_KIND = "tofu.linking_task"
FORMAT_VERSION = 2
SUPPORTED_VERSIONS = (2,)
GRAPH_FOLDERS = {ALIGNMENT_KIND: ("graph1", "graph2"), LINKING_KIND: ("kb",)}

_str = pa.string()
SCHEMAS: dict[str, pa.Schema] = {
    "links": pa.schema([("split", _str), ("entity1", pa.int32()), ("entity2", pa.int32())]),
    "mentions": pa.schema([("mention_index", pa.int32()), ("mention_id", _str), ("split", _str), ("text", _str),
                           ("context", _str), ("entity", pa.int32())]),
    "mention_tokens": pa.schema([("mention_index", pa.int32()), ("modality", _str), ("rank", pa.int8()),
                                 ("code", pa.int32()), ("count", pa.int32())]),
    "mention_lexical": pa.schema([("mention_index", pa.int32()), ("field", _str), ("subword", pa.int32()),
                                  ("count", pa.int32())]),
    "mention_dense": pa.schema([("mention_index", pa.int32()), ("field", _str), ("codes", pa.binary())]),
}
TABLES = {ALIGNMENT_KIND: ("links",), LINKING_KIND: ("mentions", "mention_tokens", "mention_lexical", "mention_dense")}


def write_task(folder: Path, kind: str, write_graphs: Callable[[Path], None], columns: dict[str, dict[str, Any]],
               manifest_body: dict[str, Any]) -> dict[str, Any]:
    """Write a task folder atomically: ``write_graphs(staging)`` fills the graph folders, then the tables.

    The manifest lists the task's own tables; each graph folder carries its own manifest.
    """
    if kind not in TABLES:
        raise ValueError(f"unknown task kind {kind!r}")
    missing = set(TABLES[kind]) - set(columns)
    if missing:
        raise ValueError(f"missing tables: {sorted(missing)}")
    codebook_id = manifest_body.get("codebook_id")
    with staging_directory(Path(folder)) as staging:
        write_graphs(staging)
        for sub in GRAPH_FOLDERS[kind]:
            if not (staging / sub / MANIFEST_NAME).is_file():
                raise ValueError(f"write_graphs left no complete {sub}/ token tables")
        files = []
        for name in TABLES[kind]:
            table = pa.table(columns[name], schema=SCHEMAS[name])
            info = {"table": name, "format_version": FORMAT_VERSION, "task_kind": kind, "codebooks": codebook_id}
            table = table.replace_schema_metadata({METADATA_KEY: json.dumps(info, sort_keys=True).encode()})
            pq.write_table(table, staging / f"{name}.parquet", compression="zstd", write_statistics=False)
            files.append(f"{name}.parquet")
        return write_manifest(staging, kind, FORMAT_VERSION, manifest_body, files)


def task_kind(folder: Path) -> str | None:
    """The kind of a complete task folder, or ``None`` when ``folder`` is not a task artifact."""
    kind = (peek_manifest(folder) or {}).get("kind")
    return kind if kind in TABLES else None


class _TaskManifest:
    """What both task artifacts read from their manifest."""
    manifest: dict[str, Any]

    @property
    def name(self) -> str:
        return self.manifest["task"]["name"]

    @property
    def codebook_id(self) -> str | None:
        return self.manifest.get("codebook_id")


@dataclass
class AlignmentArtifact(_TaskManifest):
    folder: Path
    manifest: dict[str, Any]
    graphs: tuple[TokenTables, TokenTables]
    links: dict[str, np.ndarray]          # split -> [n, 2] (entity id in graph1, entity id in graph2)


@dataclass
class LinkingArtifact(_TaskManifest):
    folder: Path
    manifest: dict[str, Any]
    kb: TokenTables
    mentions: pa.Table
    mention_tokens: pa.Table
    mention_lexical: pa.Table
    mention_dense: pa.Table

    @property
    def lexicon(self) -> dict[str, Any] | None:
        return self.manifest.get("lexicon")

    def lexical(self, field: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(mention indices, subword ids, counts)`` of the mention strings (name) or contexts (description)."""
        return lexical_of(self.mention_lexical, "mention_index", field)

    def dense(self, field: str) -> tuple[np.ndarray, np.ndarray]:
        """``(mention indices, product codes [n, M])`` of the mention strings (name) or whole texts (full)."""
        return dense_of(self.mention_dense, "mention_index", field)

    def split(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """``(mention indices, gold KB entity ids (-1 = none))`` of one split."""
        part = self.mentions.filter(pa.compute.equal(self.mentions["split"], split))
        if part.num_rows == 0 and split not in self.manifest["counts"]["mentions"]:
            raise KeyError(f"{self.folder}: no mention split {split!r} "
                           f"(has {', '.join(sorted(self.manifest['counts']['mentions']))})")
        return (part["mention_index"].to_numpy().astype(np.int64), part["entity"].to_numpy().astype(np.int64))

    def tokens(self, modality: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(mention indices, codes, counts)`` of one modality."""
        part = self.mention_tokens.filter(pa.compute.equal(self.mention_tokens["modality"], modality))
        return (part["mention_index"].to_numpy().astype(np.int64), part["code"].to_numpy().astype(np.int64),
                part["count"].to_numpy().astype(np.int64))


def read_task_manifest(folder: Path, kind: str, verify_files: bool = True) -> dict[str, Any]:
    """A task's validated manifest, after its graph folders' (their files hashed too unless
    ``verify_files`` is false)."""
    folder = Path(folder)
    manifest = read_manifest(folder, kind, SUPPORTED_VERSIONS, verify_files=verify_files,
                             required_files=tuple(f"{name}.parquet" for name in TABLES[kind]))
    task = manifest.get("task")
    if not isinstance(task, dict) or not isinstance(task.get("name"), str) or not isinstance(
            manifest.get("counts"), dict) or not isinstance(manifest.get("codebook_id"), str):
        raise ArtifactError(f"{folder / 'manifest.json'}: damaged manifest (no task name, counts or codebook id); "
                            "regenerate the artifact")
    for sub in GRAPH_FOLDERS[kind]:
        made_with = read_manifest_only(folder / sub, verify_files=verify_files)["codebooks"]["id"]
        if made_with != manifest["codebook_id"]:
            raise ArtifactError(f"{folder / sub}: codebooks {made_with} differ from the task's {manifest['codebook_id']}")
    return manifest


def _read_table(folder: Path, name: str) -> pa.Table:
    return read_checked_table(folder / f"{name}.parquet", SCHEMAS[name], SUPPORTED_VERSIONS, FORMAT_VERSION)


def read_alignment_artifact(folder: Path) -> AlignmentArtifact:
    folder = Path(folder)
    manifest = read_task_manifest(folder, ALIGNMENT_KIND)
    graphs = tuple(read_token_tables(folder / sub, verify_files=False) for sub in GRAPH_FOLDERS[ALIGNMENT_KIND])
    table = _read_table(folder, "links")
    links = {}
    for split in sorted(set(table["split"].to_pylist())):
        part = table.filter(pa.compute.equal(table["split"], split))
        links[split] = np.stack([part["entity1"].to_numpy(), part["entity2"].to_numpy()], 1).astype(np.int64)
    return AlignmentArtifact(folder, manifest, graphs, links)


def read_linking_artifact(folder: Path) -> LinkingArtifact:
    folder = Path(folder)
    manifest = read_task_manifest(folder, LINKING_KIND)
    kb = read_token_tables(folder / "kb", verify_files=False)   # hashed just above
    return LinkingArtifact(folder, manifest, kb, *(_read_table(folder, name) for name in TABLES[LINKING_KIND]))
