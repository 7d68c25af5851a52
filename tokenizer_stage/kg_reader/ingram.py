"""The InGram layout: ``train.txt msg.txt valid.txt test.txt``; valid and test are queried over msg."""

from __future__ import annotations

from pathlib import Path

from tokenizer_stage.kg_reader.files import ReadContext, present, require
from tokenizer_stage.kg_reader.model import Split
from tokenizer_stage.kg_reader.triples import Loaded, read_triples


def load_ingram(ctx: ReadContext, data_dir: Path) -> Loaded:
    """InGram: train.txt and msg.txt (+ valid.txt, test.txt), valid and test queried over msg."""
    out = Loaded(aux_dirs=[data_dir])
    out.sets["train"] = read_triples(ctx, require(data_dir / "train.txt"))
    out.sets["msg"] = read_triples(ctx, require(data_dir / "msg.txt"))
    out.splits["train"] = Split("train", "train")
    for key in ("valid", "test"):
        if present(data_dir / f"{key}.txt"):
            out.sets[key] = read_triples(ctx, data_dir / f"{key}.txt")
            out.splits[key] = Split("msg", key)
    return out
