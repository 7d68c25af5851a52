"""Codebook sets: the frozen k-means centroids that make tokens mean the same in every graph.

Folder layout (``ROOT/codebooks/`` by default)::

    manifest.json      kind "tofu.codebooks": identity, per-modality encoder and fit facts
    <modality>.npy     float32 [K, D] centroids (read with allow_pickle=False)
    text_dense.npy     float32 [M * 256, 384 / M] sub-centroids of the product quantizer
                       that stores each name's and text's pooled vector in M bytes

A codebook is tied to the encoder whose vectors it quantizes: its manifest
entry holds that encoder's identity, and the tokenizer refuses to quantize
vectors of another encoder with it.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from artifacts.atomic import staging_directory
from artifacts.errors import ArtifactError
from artifacts.manifest import MANIFEST_NAME, read_manifest, write_manifest

KIND = "tofu.codebooks"
# The text's dense codes: a product quantizer of M sub-codebooks (fit "subquantizers") of up to 256
# codes each, stored as one [M * codes, sub_dim] array (fit kind "product_quantizer").
DENSE_TEXT = "text_dense"
PRODUCT_QUANTIZER = "product_quantizer"
FORMAT_VERSION = 1
SUPPORTED_VERSIONS = (1,)


@dataclass
class Codebook:
    modality: str
    centroids: np.ndarray            # [K, D] float32
    encoder: dict[str, Any]          # identity of what made the vectors
    fit: dict[str, Any] = field(default_factory=dict)  # how it was fitted (vectors, graphs, seed)

    @property
    def size(self) -> int:
        return int(self.centroids.shape[0])

    @property
    def dim(self) -> int:
        return int(self.centroids.shape[1])

    @property
    def is_product_quantizer(self) -> bool:
        return self.fit.get("kind") == PRODUCT_QUANTIZER

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """``[n, M]`` uint8 product codes -> ``[n, M * sub_dim]`` float32 vectors (sub-centroids side by side)."""
        subquantizers = int(self.fit["subquantizers"])
        parts = self.centroids.reshape(subquantizers, self.size // subquantizers, self.dim)
        codes = np.asarray(codes, dtype=np.int64).reshape(-1, subquantizers)
        return parts[np.arange(subquantizers), codes].reshape(len(codes), -1)


def _centroid_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)
    return buffer.getvalue()


@dataclass
class CodebookSet:
    codebooks: dict[str, Codebook]

    @property
    def codebook_id(self) -> str:
        """Content id: changes when any centroid or encoder identity changes."""
        digest = hashlib.sha256()
        for modality in sorted(self.codebooks):
            book = self.codebooks[modality]
            digest.update(modality.encode())
            digest.update(repr(sorted(book.encoder.items())).encode())
            digest.update(_centroid_bytes(book.centroids))
        return digest.hexdigest()[:16]

    def __contains__(self, modality: str) -> bool:
        return modality in self.codebooks

    def __getitem__(self, modality: str) -> Codebook:
        return self.codebooks[modality]

    def describe(self) -> dict[str, Any]:
        """What token tables record about the codebooks that made them."""
        return {
            "id": self.codebook_id,
            "modalities": {
                m: {"size": b.size, "dim": b.dim, "encoder": b.encoder}
                for m, b in sorted(self.codebooks.items())
            },
        }

    def save(self, folder: Path) -> None:
        with staging_directory(Path(folder)) as staging:
            names = []
            for modality, book in sorted(self.codebooks.items()):
                name = f"{modality}.npy"
                (staging / name).write_bytes(_centroid_bytes(book.centroids))
                names.append(name)
            body = {
                "identity": self.codebook_id,
                "modalities": {
                    m: {"file": f"{m}.npy", "size": b.size, "dim": b.dim,
                        "encoder": b.encoder, "fit": b.fit}
                    for m, b in sorted(self.codebooks.items())
                },
            }
            write_manifest(staging, KIND, FORMAT_VERSION, body, names)

    @classmethod
    def load(cls, folder: Path) -> "CodebookSet":
        folder = Path(folder)
        manifest = read_manifest(folder, KIND, SUPPORTED_VERSIONS)
        books = {}
        for modality, meta in manifest["modalities"].items():
            path = folder / meta["file"]
            try:
                centroids = np.load(path, allow_pickle=False)
            except (OSError, ValueError) as err:
                raise ArtifactError(f"{path}: unreadable codebook: {err}") from err
            if centroids.dtype != np.float32 or centroids.shape != (meta["size"], meta["dim"]):
                raise ArtifactError(f"{path}: expected float32 [{meta['size']}, {meta['dim']}], "
                                    f"found {centroids.dtype} {list(centroids.shape)}")
            books[modality] = Codebook(modality, centroids, meta["encoder"], meta.get("fit", {}))
        result = cls(books)
        if result.codebook_id != manifest["identity"]:
            raise ArtifactError(f"{folder}: codebook identity {result.codebook_id} differs from the "
                                f"manifest's {manifest['identity']}; the set is damaged")
        return result


def codebooks_exist(folder: Path) -> bool:
    return (Path(folder) / MANIFEST_NAME).is_file()
