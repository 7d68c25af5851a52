"""Text tokens that keep identity: lexical subword ids and fine-grained dense codes.

The k-means text codes of :mod:`tokenizer_stage.tokenize` say what kind of thing
an entity is; these say which one, so that a mention or an entity of another
graph can be matched by name:

- **lexical tokens**: every subword id of a name and of a description, from the
  text encoder's own tokenizer, with counts. The vocabulary is fixed by the
  encoder, so an id means the same string in every graph;
- **dense codes**: the pooled vector of the name alone and of the whole text
  ("name: description"), each stored as M bytes of a frozen FAISS product
  quantizer (the codebook set's ``text_dense`` entry) and decoded in stage two.

Mentions get the same tokens: the mention string is their name, the context
their description.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Callable

import numpy as np

from artifacts.codebooks import DENSE_TEXT, CodebookSet
from artifacts.token_tables import DENSE_FIELDS, LEXICAL_FIELDS
from tokenizer_stage.config import EncoderSpec
from tokenizer_stage.encoders import load_encoder, pool_states
from tokenizer_stage.quantize import product_codes


ProgressFactory = Callable[..., Any]


def lexical_rows(owner_key: str, fields: dict[str, dict[int, str]], spec: EncoderSpec) -> dict[str, list]:
    """Columns ``owner_key, field, subword, count`` for every owner's name and description."""
    encoder = load_encoder(spec)
    columns: dict[str, list] = {owner_key: [], "field": [], "subword": [], "count": []}
    for field in LEXICAL_FIELDS:
        texts = fields.get(field, {})
        owners = sorted(texts)
        for start in range(0, len(owners), 1024):
            chunk = owners[start:start + 1024]
            for owner, ids in zip(chunk, encoder.subword_ids([texts[o] for o in chunk])):
                for subword, count in sorted(Counter(ids).items()):
                    for key, value in zip(columns, (owner, field, subword, count)):
                        columns[key].append(value)
    return columns


def pooled_vectors(texts: dict[int, str], spec: EncoderSpec, progress: ProgressFactory, desc: str,
                   timer: list[float]) -> dict[int, np.ndarray]:
    """Owner -> the pooled vector of its text (one forward pass per batch, shortest texts first)."""
    import time

    if not texts:
        return {}
    encoder = load_encoder(spec)
    order = sorted(texts, key=lambda owner: (len(texts[owner]), owner))
    bar = progress(total=len(order), desc=desc, unit="text")
    result = {}
    for start in range(0, len(order), spec.batch_size):
        chunk = order[start:start + spec.batch_size]
        began = time.perf_counter()
        states = encoder.encode([texts[o] for o in chunk])
        timer[0] += time.perf_counter() - began
        # A text of no subwords (only specials or spaces) has no vector: no dense code rather than a fake one.
        result.update((owner, pool_states(s)) for owner, s in zip(chunk, states) if len(s))
        bar.update(len(chunk))
    bar.close()
    return result


def dense_rows(owner_key: str, vectors: dict[str, dict[int, np.ndarray]], codebooks: CodebookSet) -> dict[str, list]:
    """Columns ``owner_key, field, codes`` (M bytes) of each field's pooled vectors; empty without a
    ``text_dense`` codebook."""
    columns: dict[str, list] = {owner_key: [], "field": [], "codes": []}
    if DENSE_TEXT not in codebooks:
        return columns
    book = codebooks[DENSE_TEXT]
    for field in DENSE_FIELDS:
        owners = sorted(vectors.get(field, {}))
        if not owners:
            continue
        codes = product_codes(np.stack([vectors[field][o] for o in owners]), book.centroids,
                              int(book.fit["subquantizers"]))
        columns[owner_key].extend(owners)
        columns["field"].extend([field] * len(owners))
        columns["codes"].extend(row.tobytes() for row in codes)
    return columns


def identity_columns(owner_key: str, names: dict[int, str], descriptions: dict[int, str],
                     full_vectors: dict[int, np.ndarray], codebooks: CodebookSet, spec: EncoderSpec,
                     progress: ProgressFactory, desc: str, timer: list[float]) -> tuple[dict, dict]:
    """``(lexical columns, dense columns)`` of a set of owners (entities or mentions).

    ``full_vectors`` are the pooled vectors of the whole texts, already computed
    for the k-means text codes; only the names need a forward pass of their own.
    """
    lexical = lexical_rows(owner_key, {"name": names, "description": descriptions}, spec)
    name_vectors = pooled_vectors(names, spec, progress, f"{desc} names", timer) if DENSE_TEXT in codebooks else {}
    dense = dense_rows(owner_key, {"name": name_vectors, "full": full_vectors}, codebooks)
    return lexical, dense
