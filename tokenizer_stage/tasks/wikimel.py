"""The ``linking:wikimel`` layout: ``Wikidata-MEL.json`` samples, split by ``splits.json``; KB from
``qid2ne.json`` (+ ``qid2abs.json``)."""

from __future__ import annotations

from pathlib import Path

from tokenizer_stage.kg_reader.errors import KGFormatError
from tokenizer_stage.kg_reader.files import ReadContext
from tokenizer_stage.tasks.common import read_json
from tokenizer_stage.tasks.mel_json import json_task, mentions_of, read_json_kb, warn_blanks
from tokenizer_stage.tasks.model import SPLIT_KEYS, LinkingTask, Mention


def read_wikimel(folder: Path, name: str | None) -> LinkingTask:
    """A WikiMEL folder: Wikidata-MEL.json samples split by splits.json ('dev' becomes 'valid')."""
    ctx, kb_ctx = ReadContext(), ReadContext()
    text = read_json_kb(kb_ctx, folder)
    data_path, splits_path = folder / "Wikidata-MEL.json", folder / "splits.json"
    samples = read_json(ctx, data_path)
    if not isinstance(samples, dict):
        raise KGFormatError("expected a JSON object {sample id: sample}", data_path)
    splits = read_json(ctx, splits_path)
    if not isinstance(splits, dict) or not all(isinstance(v, list) for v in splits.values()):
        raise KGFormatError("expected a JSON object {split: [sample ids]}", splits_path)
    kb_ids = set(text)
    mentions: dict[str, list[Mention]] = {}
    seen: dict[str, str] = {}
    used: set[str] = set()
    blanks: list[str] = []
    for raw_split, ids in splits.items():
        split = "valid" if raw_split == "dev" else raw_split
        if split in mentions:
            raise KGFormatError(f"split {raw_split!r} maps to {split!r}, which is already defined", splits_path)
        keys = [str(k) for k in ids]
        present = [k for k in keys if k in samples]
        if len(present) != len(keys):
            # splits.json (MEL-GHMFC) lists ids that MELBench's file has no sample for
            ctx.warn(f"{splits_path}: split {raw_split!r}: dropped {len(keys) - len(present)} of {len(keys)} sample id(s) "
                     f"with no sample in {data_path.name}")
        mentions[split] = mentions_of(ctx, data_path, present, samples, kb_ids, seen, split, blanks)
        used.update(present)
    warn_blanks(ctx, data_path, blanks)
    order = {s: i for i, s in enumerate(SPLIT_KEYS)}  # train/valid/test first, whatever splits.json's order
    mentions = dict(sorted(mentions.items(), key=lambda kv: order.get(kv[0], len(order))))
    unused = len(samples) - len(used)
    if unused:
        ctx.warn(f"{data_path}: {unused} sample(s) are in no split of {splits_path.name}; ignored")
    return json_task(folder, name, "wikimel", ctx, kb_ctx, text, mentions, splits_path)
