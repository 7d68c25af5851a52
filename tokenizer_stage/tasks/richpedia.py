"""The ``linking:richpedia`` layout: ``train.json test.json`` (+ ``dev.json``) samples; KB from
``qid2ne.json`` (+ ``qid2abs.json``)."""

from __future__ import annotations

from pathlib import Path

from tokenizer_stage.kg_reader.errors import KGFormatError
from tokenizer_stage.kg_reader.files import ReadContext
from tokenizer_stage.tasks.common import read_json
from tokenizer_stage.tasks.mel_json import json_task, mentions_of, read_json_kb, warn_blanks
from tokenizer_stage.tasks.model import LinkingTask, Mention


def read_richpedia(folder: Path, name: str | None) -> LinkingTask:
    """A Richpedia-MEL folder: train.json, test.json and, as 'valid', dev.json when present."""
    ctx, kb_ctx = ReadContext(), ReadContext()
    text = read_json_kb(kb_ctx, folder)
    kb_ids = set(text)
    mentions: dict[str, list[Mention]] = {}
    seen: dict[str, str] = {}
    files = [("train", folder / "train.json"), ("valid", folder / "dev.json"), ("test", folder / "test.json")]
    for split, p in files:
        if not p.is_file():
            continue
        samples = read_json(ctx, p)
        if not isinstance(samples, dict):
            raise KGFormatError("expected a JSON object {sample id: sample}", p)
        blanks: list[str] = []
        mentions[split] = mentions_of(ctx, p, list(samples), samples, kb_ids, seen, split, blanks)
        warn_blanks(ctx, p, blanks)
    return json_task(folder, name, "richpedia", ctx, kb_ctx, text, mentions, folder)
