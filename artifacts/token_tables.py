"""Token tables: the contract between the tokenizer stage and the reasoning stage.

One folder per graph (``ROOT/<graph>/``)::

    entities.parquet         entity_id int32, label, name, description, text_source,
                             images_used int16, images_failed int16
    relations.parquet        relation_id int32, label, name, description, text_source
    triples.parquet          triple_set (e.g. train, valid, ind_graph), head, relation, tail (int32)
    entity_tokens.parquet    entity_id int32, modality, rank int8, code int32, count int32
    relation_tokens.parquet  relation_id int32, modality, rank int8, code int32, count int32
    entity_lexical.parquet   entity_id int32, field (name | description), subword int32, count int32
    entity_dense.parquet     entity_id int32, field (name | full), codes binary (M product-code bytes)
    text_dense.npy           the product quantizer's sub-centroids that decode them (a copy of the
                             codebook set's entry; present when the table has rows)
    manifest.json            written last (kind "tofu.token_tables")

Ids are positions in the sorted label lists, so row order of the sources never
changes them. ``manifest.json`` maps each split to the triple set that is its
inference graph and the one that holds its queries. Every Parquet file carries
a ``tofu`` key in its schema metadata (table, format version, graph, codebook
id) so that a lone file still says what it is.

Token codes live in the code space of their modality's codebook; structure
codes ``0..K-1`` are an entity's own structural code and ``K..2K-1`` its
neighbours' codes (see ``tokenizer_stage.structure``).

Lexical tokens are subword ids of the text encoder's tokenizer, whose identity
the manifest records under ``lexicon``: ids of two lexicons are never compared
(:func:`check_lexicon`). Dense codes decode with the copy of the
codebook set's ``text_dense`` product quantizer kept beside them (:attr:`TokenTables.dense_decoder`),
so that an artifact is read without its codebook folder.
Format 1 (no lexical or dense tables) is not read: the next ``tofu tokenize``
makes such an artifact again.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from artifacts.atomic import staging_directory
from artifacts.codebooks import DENSE_TEXT, PRODUCT_QUANTIZER, Codebook
from artifacts.errors import ArtifactError, UnsupportedFormatError
from artifacts.manifest import MANIFEST_NAME, read_manifest, write_manifest

KIND = "tofu.token_tables"
FORMAT_VERSION = 2
SUPPORTED_VERSIONS = (2,)
METADATA_KEY = b"tofu"

MODALITIES = ("structure", "text", "image")
LEXICAL_FIELDS = ("name", "description")   # a mention's string is its name, its context its description
DENSE_FIELDS = ("name", "full")            # full: "name: description" (a mention's "mention: context")

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
    "entity_lexical": pa.schema([
        ("entity_id", pa.int32()), ("field", _str), ("subword", pa.int32()), ("count", pa.int32()),
    ]),
    "entity_dense": pa.schema([("entity_id", pa.int32()), ("field", _str), ("codes", pa.binary())]),
}
TABLE_FILES = {name: f"{name}.parquet" for name in SCHEMAS}
DENSE_DECODER_FILE = "text_dense.npy"


def _table_metadata(table: str, graph: str, codebook_id: str | None) -> dict[bytes, bytes]:
    info = {"table": table, "format_version": FORMAT_VERSION, "graph": graph,
            "codebooks": codebook_id}
    return {METADATA_KEY: json.dumps(info, sort_keys=True).encode()}


def write_token_tables(folder: Path, graph: str, columns: dict[str, dict[str, Any]],
                       manifest_body: dict[str, Any], dense_decoder: Codebook | None = None) -> dict[str, Any]:
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
        files = list(TABLE_FILES.values())
        if dense_decoder is not None and len(columns["entity_dense"]["entity_id"]):
            write_decoder(staging, dense_decoder)
            manifest_body = {**manifest_body, "dense": decoder_entry(dense_decoder)}
            files.append(DENSE_DECODER_FILE)
        return write_manifest(staging, KIND, FORMAT_VERSION, manifest_body, files)


def decoder_entry(decoder: Codebook) -> dict[str, Any]:
    return {"file": DENSE_DECODER_FILE, "subquantizers": int(decoder.fit["subquantizers"]),
            "size": decoder.size, "dim": decoder.dim}


def write_decoder(folder: Path, decoder: Codebook) -> None:
    np.save(Path(folder) / DENSE_DECODER_FILE, np.ascontiguousarray(decoder.centroids, np.float32),
            allow_pickle=False)


def read_decoder(folder: Path, entry: dict[str, Any] | None) -> Codebook | None:
    """The product quantizer an artifact's dense codes decode with, or None when it has no dense codes."""
    if not entry:
        return None
    path = Path(folder) / DENSE_DECODER_FILE
    try:
        centroids = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ArtifactError(f"{path}: unreadable dense-code decoder: {err}") from err
    if centroids.dtype != np.float32 or centroids.shape != (entry.get("size"), entry.get("dim")):
        raise ArtifactError(f"{path}: expected float32 [{entry.get('size')}, {entry.get('dim')}], "
                            f"found {centroids.dtype} {list(centroids.shape)}")
    return Codebook(DENSE_TEXT, centroids, {}, {"kind": PRODUCT_QUANTIZER, "subquantizers": entry["subquantizers"]})


@dataclass
class TokenTables:
    """A tokenized graph as read back from disk (validated)."""
    folder: Path
    manifest: dict[str, Any]
    tables: dict[str, pa.Table]
    # Triple sets already filtered out of the triples table: ranking asks for them once per batch.
    _triple_sets: dict[str, np.ndarray] = field(default_factory=dict, init=False, repr=False, compare=False)

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
        """``[n, 3]`` int64 array of (head, relation, tail) ids of one triple set (a copy: the caller may
        change it)."""
        if name not in self._triple_sets:
            table = self.tables["triples"]
            part = table.filter(pa.compute.equal(table["triple_set"], name))
            if part.num_rows == 0 and name not in self.manifest["counts"]["triple_sets"]:
                raise KeyError(f"{self.folder}: no triple set {name!r}")
            self._triple_sets[name] = np.stack([part[c].to_numpy().astype(np.int64)
                                                for c in ("head", "relation", "tail")], axis=1).reshape(-1, 3)
        return self._triple_sets[name].copy()

    def inference_graph(self, split: str) -> np.ndarray:
        return self.triple_set(self._split(split)["graph"])

    def queries(self, split: str) -> np.ndarray:
        return self.triple_set(self._split(split)["queries"])

    def _split(self, split: str) -> dict[str, str]:
        if split not in self.splits:
            raise KeyError(f"{self.folder}: no split {split!r} (has {', '.join(sorted(self.splits))})")
        return self.splits[split]

    @property
    def lexicon(self) -> dict[str, Any] | None:
        return self.manifest.get("lexicon")

    def lexical(self, field: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(entity ids, subword ids, counts)`` of one text field (name or description)."""
        return lexical_of(self.tables["entity_lexical"], "entity_id", field)

    def dense(self, field: str) -> tuple[np.ndarray, np.ndarray]:
        """``(entity ids, product codes [n, M] uint8)`` of one dense field (name or full)."""
        return dense_of(self.tables["entity_dense"], "entity_id", field)

    @property
    def dense_decoder(self) -> Codebook | None:
        return read_decoder(self.folder, self.manifest.get("dense"))

    def tokens(self, owner: str, modality: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(owner_ids, codes, counts)`` of one modality; ``owner`` is 'entity' or 'relation'."""
        table = self.tables[f"{owner}_tokens"]
        part = table.filter(pa.compute.equal(table["modality"], modality))
        return (part[f"{owner}_id"].to_numpy().astype(np.int64),
                part["code"].to_numpy().astype(np.int64),
                part["count"].to_numpy().astype(np.int64))


def lexical_of(table: pa.Table, owner_key: str, field: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    part = table.filter(pa.compute.equal(table["field"], field))
    return (part[owner_key].to_numpy().astype(np.int64), part["subword"].to_numpy().astype(np.int64),
            part["count"].to_numpy().astype(np.int64))


def dense_of(table: pa.Table, owner_key: str, field: str) -> tuple[np.ndarray, np.ndarray]:
    part = table.filter(pa.compute.equal(table["field"], field))
    owners = part[owner_key].to_numpy().astype(np.int64)
    blob = b"".join(part["codes"].to_pylist())
    width = len(blob) // max(len(owners), 1)
    return owners, np.frombuffer(blob, dtype=np.uint8).reshape(len(owners), width)


class LexiconMismatch(ArtifactError):
    """Two artifacts (or an artifact and a checkpoint) hold subword ids of different tokenizers."""


def check_lexicon(lexicon: dict[str, Any] | None, expected: dict[str, Any] | None, artifact: Path,
                  expected_from: str) -> None:
    """Refuse an artifact whose subword ids come from another tokenizer than ``expected``'s.

    A side without lexical tokens (no text) has nothing to compare and passes.
    """
    if lexicon and expected and lexicon != expected:
        raise LexiconMismatch(
            f"{artifact}: lexical tokens from tokenizer {lexicon.get('tokenizer')} (vocabulary "
            f"{lexicon.get('vocab_size')}, {lexicon.get('vocab')}), but {expected_from} reads "
            f"{expected.get('tokenizer')} (vocabulary {expected.get('vocab_size')}, {expected.get('vocab')}); "
            "tokenize it with the same text encoder")


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
    return (Path(folder) / MANIFEST_NAME).is_file()


def read_manifest_only(folder: Path, verify_files: bool = False) -> dict[str, Any]:
    """The validated manifest of a complete artifact, without reading the tables (for skip checks)."""
    manifest = read_manifest(Path(folder), KIND, SUPPORTED_VERSIONS, verify_files=verify_files,
                             required_files=tuple(TABLE_FILES.values()))
    _check_body(manifest, Path(folder) / MANIFEST_NAME)
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
