"""Token tables: the contract between the tokenizer stage and the reasoning stage.

One folder per graph (``ROOT/<graph>/``)::

    entities.parquet         entity_id int32, label, name, description, text_source,
                             images_used int16, images_failed int16
    relations.parquet        relation_id int32, label, name, description, text_source
    triples.parquet          triple_set (e.g. train, valid, ind_graph), head, relation, tail (int32)
    entity_tokens.parquet    entity_id int32, modality, rank int8, code int32, count int32
    relation_tokens.parquet  relation_id int32, modality, rank int8, code int32, count int32
    manifest.json            written last (kind "tofu.token_tables")

Ids are positions in the sorted label lists, so row order of the sources never
changes them. ``manifest.json`` maps each split to the triple set that is its
inference graph and the one that holds its queries. Every Parquet file carries
a ``tofu`` key in its schema metadata (table, format version, graph, codebook
id) so that a lone file still says what it is.

Token codes live in the code space of their modality's codebook; structure
codes ``0..K-1`` are an entity's own structural code and ``K..2K-1`` its
neighbours' codes (see ``tokenizer_stage.structure``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from artifacts.atomic import staging_directory
from artifacts.errors import ArtifactError, UnsupportedFormatError
from artifacts.manifest import read_manifest, write_manifest

KIND = "tofu.token_tables"
FORMAT_VERSION = 1
SUPPORTED_VERSIONS = (1,)
METADATA_KEY = b"tofu"

MODALITIES = ("structure", "text", "image")

_str = pa.string()
SCHEMAS: dict[str, pa.Schema] = {
    "entities": pa.schema([
        ("entity_id", pa.int32()), ("label", _str), ("name", _str), ("description", _str),
        ("text_source", _str), ("images_used", pa.int16()), ("images_failed", pa.int16()),
    ]),
    "relations": pa.schema([
        ("relation_id", pa.int32()), ("label", _str), ("name", _str), ("description", _str),
        ("text_source", _str),
    ]),
    "triples": pa.schema([
        ("triple_set", _str), ("head", pa.int32()), ("relation", pa.int32()), ("tail", pa.int32()),
    ]),
    "entity_tokens": pa.schema([
        ("entity_id", pa.int32()), ("modality", _str), ("rank", pa.int8()),
        ("code", pa.int32()), ("count", pa.int32()),
    ]),
    "relation_tokens": pa.schema([
        ("relation_id", pa.int32()), ("modality", _str), ("rank", pa.int8()),
        ("code", pa.int32()), ("count", pa.int32()),
    ]),
}
TABLE_FILES = {name: f"{name}.parquet" for name in SCHEMAS}


def _table_metadata(table: str, graph: str, codebook_id: str | None) -> dict[bytes, bytes]:
    info = {"table": table, "format_version": FORMAT_VERSION, "graph": graph,
            "codebooks": codebook_id}
    return {METADATA_KEY: json.dumps(info, sort_keys=True).encode()}


def write_token_tables(folder: Path, graph: str, columns: dict[str, dict[str, Any]],
                       manifest_body: dict[str, Any]) -> dict[str, Any]:
    """Write all tables of one graph atomically, then its manifest; return the manifest.

    ``columns`` maps each table name of :data:`SCHEMAS` to its columns
    (lists or numpy arrays). The folder appears only once complete.
    """
    missing = set(SCHEMAS) - set(columns)
    if missing:
        raise ValueError(f"missing tables: {sorted(missing)}")
    codebook_id = (manifest_body.get("codebooks") or {}).get("id")
    with staging_directory(Path(folder)) as staging:
        for name, schema in SCHEMAS.items():
            table = pa.table(columns[name], schema=schema)
            table = table.replace_schema_metadata(_table_metadata(name, graph, codebook_id))
            # Fixed writer options keep the bytes deterministic for the same content.
            pq.write_table(table, staging / TABLE_FILES[name], compression="zstd",
                           write_statistics=False)
        return write_manifest(staging, KIND, FORMAT_VERSION, manifest_body,
                              list(TABLE_FILES.values()))


@dataclass
class TokenTables:
    """A tokenized graph as read back from disk (validated)."""
    folder: Path
    manifest: dict[str, Any]
    tables: dict[str, pa.Table]

    @property
    def name(self) -> str:
        return self.manifest["graph"]["name"]

    @property
    def codebook_id(self) -> str | None:
        return (self.manifest.get("codebooks") or {}).get("id")

    @property
    def splits(self) -> dict[str, dict[str, str]]:
        return self.manifest["splits"]

    @property
    def num_entities(self) -> int:
        return self.tables["entities"].num_rows

    @property
    def num_relations(self) -> int:
        return self.tables["relations"].num_rows

    def triple_set(self, name: str) -> np.ndarray:
        """``[n, 3]`` int64 array of (head, relation, tail) ids of one triple set."""
        table = self.tables["triples"]
        mask = pa.compute.equal(table["triple_set"], name)
        part = table.filter(mask)
        if part.num_rows == 0 and name not in self.manifest["counts"]["triple_sets"]:
            raise KeyError(f"{self.folder}: no triple set {name!r}")
        return np.stack([part[c].to_numpy().astype(np.int64)
                         for c in ("head", "relation", "tail")], axis=1).reshape(-1, 3)

    def inference_graph(self, split: str) -> np.ndarray:
        return self.triple_set(self._split(split)["graph"])

    def queries(self, split: str) -> np.ndarray:
        return self.triple_set(self._split(split)["queries"])

    def _split(self, split: str) -> dict[str, str]:
        if split not in self.splits:
            raise KeyError(f"{self.folder}: no split {split!r} (has {', '.join(sorted(self.splits))})")
        return self.splits[split]

    def tokens(self, owner: str, modality: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(owner_ids, codes, counts)`` of one modality; ``owner`` is 'entity' or 'relation'."""
        table = self.tables[f"{owner}_tokens"]
        part = table.filter(pa.compute.equal(table["modality"], modality))
        return (part[f"{owner}_id"].to_numpy().astype(np.int64),
                part["code"].to_numpy().astype(np.int64),
                part["count"].to_numpy().astype(np.int64))


def read_token_tables(folder: Path, verify_files: bool = True) -> TokenTables:
    """Load and validate a graph's token tables; refuse unknown versions or damaged files."""
    folder = Path(folder)
    manifest = read_manifest_only(folder, verify_files=verify_files)
    tables = {name: read_checked_table(folder / TABLE_FILES[name], schema, SUPPORTED_VERSIONS, FORMAT_VERSION)
              for name, schema in SCHEMAS.items()}
    return TokenTables(folder, manifest, tables)


def read_checked_table(path: Path, schema: pa.Schema, supported_versions: tuple[int, ...],
                       format_version: int) -> pa.Table:
    """One Parquet table of an artifact; refuses unreadable files, unknown versions and other schemas."""
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as err:
        raise ArtifactError(f"{path}: unreadable Parquet: {err}") from err
    meta = json.loads((table.schema.metadata or {}).get(METADATA_KEY, b"{}"))
    if meta.get("format_version") not in supported_versions:
        raise UnsupportedFormatError(
            f"{path}: table format version {meta.get('format_version')!r} is not readable "
            f"(reads {supported_versions})")
    table = table.replace_schema_metadata(None)
    if not table.schema.equals(schema):
        raise ArtifactError(f"{path}: schema differs from format {format_version}: {table.schema}")
    return table


def is_complete(folder: Path) -> bool:
    return (Path(folder) / "manifest.json").is_file()


def read_manifest_only(folder: Path, verify_files: bool = False) -> dict[str, Any]:
    """The validated manifest of a complete artifact, without reading the tables (for skip checks)."""
    manifest = read_manifest(Path(folder), KIND, SUPPORTED_VERSIONS, verify_files=verify_files,
                             required_files=tuple(TABLE_FILES.values()))
    _check_body(manifest, Path(folder) / "manifest.json")
    return manifest


def _check_body(manifest: dict[str, Any], path: Path) -> None:
    """The keys readers rely on, with their types: a damaged manifest is refused here, by name,
    instead of failing later as a KeyError deep in a reader."""
    def table(value: Any) -> dict:   # a JSON object, or an empty one for anything else
        return value if isinstance(value, dict) else {}

    graph, splits = manifest.get("graph"), manifest.get("splits")
    sets = table(manifest.get("counts")).get("triple_sets")
    problem = None
    if not isinstance(table(graph).get("name"), str):
        problem = "no graph name"
    elif not isinstance(table(manifest.get("codebooks")).get("id"), str):
        problem = "no codebook id"
    elif not isinstance(sets, dict):
        problem = "no triple-set counts"
    elif not isinstance(splits, dict):
        problem = "no splits"
    else:
        for name, split in splits.items():
            named = [table(split).get(key) for key in ("graph", "queries")]
            if not all(isinstance(n, str) and n in sets for n in named):
                problem = f"split {name!r} names no triple set of this artifact"
                break
    if problem:
        raise ArtifactError(f"{path}: damaged manifest ({problem}); regenerate the artifact")
