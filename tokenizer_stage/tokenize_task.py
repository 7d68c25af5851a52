"""Stage one for alignment and linking tasks: the same encoders and frozen codebooks as for graphs.

An alignment task becomes two token-table folders plus its gold links; a
linking task becomes the knowledge base's token tables plus its mentions,
quantized exactly as entity texts are (``"mention: context"`` mirrors
``"name: description"``). See :mod:`artifacts.task_tables` for the layout.
"""
from __future__ import annotations

import time
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from artifacts import task_tables, token_tables
from artifacts.codebooks import CodebookSet
from artifacts.hashing import files_digest, object_sha256, relative_digest
from artifacts.root import artifact_folder
from tokenizer_stage.encoders import load_encoder
from tokenizer_stage.naming import source_of
from tokenizer_stage.text_identity import identity_columns
from tokenizer_stage.tasks import AlignmentTask, LinkingTask, Mention, read_task
from tokenizer_stage.config import TokenizerConfig
from tokenizer_stage.tokenize import (GraphSummary, ProgressFactory, encoder_fingerprint, existing_artifact, image_tokens,
                                      no_progress, text_tokens, tokenize_kg, unreadable_images_note)


def mention_text(mention: Mention) -> str:
    return f"{mention.text}: {mention.context}" if mention.context else mention.text


def task_fingerprint(task: AlignmentTask | LinkingTask, config: TokenizerConfig, codebooks: CodebookSet,
                     source_digest: list[dict]) -> str:
    encoders = {"text": encoder_fingerprint(config.text_encoder)} if config.use_text else {}
    if config.use_images:
        encoders["image"] = encoder_fingerprint(config.image_encoder)
    return object_sha256({"format": [task_tables.FORMAT_VERSION, token_tables.FORMAT_VERSION],
                          "sources": relative_digest(source_digest, task.root),
                          "encoders": encoders, "codebooks": codebooks.codebook_id,
                          "settings": config.token_settings(), "name": task.name, "layout": task.layout})


def tokenize_task(task_dir: Path, out_root: Path, codebooks_dir: Path, config: TokenizerConfig,
                  force: bool = False, progress: ProgressFactory = no_progress) -> GraphSummary:
    """Tokenize an alignment or linking task folder into ``out_root/<task name>/`` unless up to date."""
    started = time.perf_counter()
    task = read_task(task_dir)
    codebooks = CodebookSet.load(codebooks_dir)
    folder = artifact_folder(Path(out_root), task.name)
    digest = files_digest(task.source_files)
    fingerprint = task_fingerprint(task, config, codebooks, digest)
    kind = task_tables.ALIGNMENT_KIND if isinstance(task, AlignmentTask) else task_tables.LINKING_KIND
    source = source_of(task_dir)
    existing, redo_notes = existing_artifact(folder, source, fingerprint, force,
                                             lambda f: task_tables.read_task_manifest(f, kind))
    if existing is not None:
        counts = [token_tables.read_manifest_only(folder / sub)["counts"] for sub in task_tables.GRAPH_FOLDERS[kind]]
        # A linking task's mentions too, as a fresh run counts them (zeros for an alignment).
        counts.append(mention_summary_counts(existing["counts"]))
        # Token counts per modality, as the summary of a tokenized task gives them.
        return GraphSummary.skipped(task.name, folder, counts, time.perf_counter() - started,
                                    token_kinds=token_tables.MODALITIES)
    task_notes = list(task.warnings) + redo_notes
    for note in task_notes:
        warnings.warn(note, stacklevel=2)
    timer = [0.0]
    summaries: list[GraphSummary] = []
    body = {"task": {"name": task.name, "layout": task.layout, "root": str(source)},
            "fingerprint": fingerprint, "sources": digest, "codebook_id": codebooks.codebook_id,
            "settings": config.token_settings(), "warnings": task_notes,
            "lexicon": load_encoder(config.text_encoder).lexicon if config.use_text else None}

    if isinstance(task, AlignmentTask):
        def write_graphs(staging: Path) -> None:
            for sub, kg in zip(task_tables.GRAPH_FOLDERS[kind], task.graphs):
                summaries.append(tokenize_kg(kg, staging / sub, codebooks_dir, config, force=True,
                                             progress=progress))

        index = [{label: i for i, label in enumerate(kg.entities)} for kg in task.graphs]
        rows = [(split, index[0][a], index[1][b]) for split, pairs in sorted(task.links.items()) for a, b in pairs]
        columns = {"links": {"split": [r[0] for r in rows], "entity1": np.array([r[1] for r in rows], np.int32),
                             "entity2": np.array([r[2] for r in rows], np.int32)}}
        body["counts"] = {"links": {s: len(p) for s, p in task.links.items()},
                          "entities": [len(kg.entities) for kg in task.graphs]}
    else:
        def write_graphs(staging: Path) -> None:
            summaries.append(tokenize_kg(task.kb, staging / "kb", codebooks_dir, config, force=True,
                                         progress=progress))

        columns, counts, mention_notes = _mention_columns(task, codebooks, config, progress, timer)
        body["counts"] = counts
        for note in mention_notes:
            warnings.warn(note, stacklevel=2)
        task_notes += mention_notes   # body["warnings"] is this list
    task_tables.write_task(folder, kind, write_graphs, columns, body)
    mentions = mention_summary_counts(body["counts"])   # zeros for an alignment
    return GraphSummary(task.name, "tokenized", str(folder),
                        entities=sum(s.entities for s in summaries), relations=sum(s.relations for s in summaries),
                        triples=sum(s.triples for s in summaries),
                        tokens={m: sum(s.tokens.get(m, 0) for s in summaries) + mentions["tokens"].get(m, 0)
                                for m in token_tables.MODALITIES},
                        images_used=sum(s.images_used for s in summaries) + mentions["images_used"],
                        images_failed=sum(s.images_failed for s in summaries) + mentions["images_failed"],
                        seconds=time.perf_counter() - started,
                        forward_seconds=timer[0] + sum(s.forward_seconds for s in summaries),
                        # the sub-graphs' own notes too (a codebook lacking a modality, unreadable images)
                        warnings=task_notes + [n for s in summaries for n in s.warnings if n not in task_notes])


def mention_summary_counts(counts: dict[str, Any]) -> dict[str, Any]:
    """A linking task's mention tokens and images from its manifest ``counts`` (zeros for a task without
    mentions), in the shape of a token table's counts (no entities, relations or triples), for a task's
    summary."""
    return {"entities": 0, "relations": 0, "triple_sets": {}, "tokens": dict(counts.get("mention_tokens", {})),
            "images_used": int(counts.get("mention_images_used", 0)),
            "images_failed": int(counts.get("mention_images_failed", 0))}


def _mention_columns(task: LinkingTask, codebooks: CodebookSet, config: TokenizerConfig, progress: ProgressFactory,
                     timer: list[float]) -> tuple[dict, dict, list[str]]:
    """The mention tables, their manifest counts, and notes (unreadable mention images, named)."""
    kb_index = {label: i for i, label in enumerate(task.kb.entities)}
    mentions = [(split, m) for split in sorted(task.mentions) for m in task.mentions[split]]
    per_modality: dict[str, dict[int, list[tuple[int, int]]]] = {}
    lexical = {"mention_index": [], "field": [], "subword": [], "count": []}
    dense = {"mention_index": [], "field": [], "codes": []}
    if config.use_text and "text" in codebooks:
        full_vectors: dict[int, np.ndarray] = {}
        per_modality["text"] = text_tokens({i: mention_text(m) for i, (_, m) in enumerate(mentions)}, codebooks,
                                           config, progress, f"{task.name}: mentions", timer, full_vectors)
        # The mention string is matched as a name, its context as a description.
        lexical, dense = identity_columns(
            "mention_index", {i: m.text for i, (_, m) in enumerate(mentions) if m.text},
            {i: m.context for i, (_, m) in enumerate(mentions) if m.context}, full_vectors, codebooks,
            config.text_encoder, progress, f"{task.name}: mention", timer)
    images = {i: [m.image] for i, (_, m) in enumerate(mentions) if m.image is not None}
    failed: dict[int, int] = defaultdict(int)
    failed_paths: list[Path] = []
    used = np.zeros(len(mentions), dtype=np.int64)
    if config.use_images and images and "image" in codebooks:
        per_modality["image"] = image_tokens(images, codebooks, config, progress, f"{task.name}: mention images",
                                             timer, used, failed, failed_paths)
    notes = [unreadable_images_note(f"{task.name}: {len(failed_paths)} unreadable mention image(s)", failed_paths)] \
        if failed_paths else []
    token_rows: dict[str, list] = {"mention_index": [], "modality": [], "rank": [], "code": [], "count": []}
    for modality in token_tables.MODALITIES:
        for owner in sorted(per_modality.get(modality, {})):
            for rank, (code, count) in enumerate(per_modality[modality][owner]):
                for key, value in zip(token_rows, (owner, modality, rank, code, count)):
                    token_rows[key].append(value)
    columns = {
        "mentions": {"mention_index": np.arange(len(mentions), dtype=np.int32),
                     "mention_id": [m.mention_id for _, m in mentions], "split": [s for s, _ in mentions],
                     "text": [m.text for _, m in mentions], "context": [m.context for _, m in mentions],
                     "entity": np.array([kb_index[m.entity] if m.entity is not None else -1 for _, m in mentions],
                                        dtype=np.int32)},
        "mention_tokens": token_rows,
        "mention_lexical": lexical,
        "mention_dense": dense,
    }
    counts = {"mentions": {s: len(v) for s, v in task.mentions.items()},
              "mention_tokens": {m: sum(len(v) for v in per_modality.get(m, {}).values())
                                 for m in token_tables.MODALITIES},
              "mention_images_used": int(used.sum()), "mention_images_failed": int(sum(failed.values())),
              "kb_entities": len(task.kb.entities)}
    return columns, counts, notes
