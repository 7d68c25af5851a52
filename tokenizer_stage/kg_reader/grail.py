"""The GraIL layout: ``train.txt valid.txt test.txt`` in a folder ``X`` and, when there is one, in its
inductive sibling ``X_ind``."""

from __future__ import annotations

from pathlib import Path

from tokenizer_stage.kg_reader.files import ReadContext, present, require
from tokenizer_stage.kg_reader.model import Split
from tokenizer_stage.kg_reader.triples import Loaded, read_triples


def load_grail(ctx: ReadContext, data_dir: Path) -> Loaded:
    """GraIL: train/valid/test.txt, and the inductive sets of the ``_ind`` sibling when there is one."""
    out = Loaded(aux_dirs=[data_dir])
    ind = data_dir.parent / f"{data_dir.name}_ind"
    full = not data_dir.name.endswith("_ind") and present(ind / "train.txt")
    out.sets["train"] = read_triples(ctx, require(data_dir / "train.txt"))
    out.splits["train"] = Split("train", "train")
    for key in ("valid", "test"):
        if present(data_dir / f"{key}.txt"):
            out.sets[key] = read_triples(ctx, data_dir / f"{key}.txt")
    if not full:
        for key in ("valid", "test"):
            if key in out.sets:
                out.splits[key] = Split("train", key)
        return out
    out.aux_dirs.append(ind)
    out.sets["ind_graph"] = read_triples(ctx, ind / "train.txt")
    for key in ("valid", "test"):
        if present(ind / f"{key}.txt"):
            out.sets[f"ind_{key}"] = read_triples(ctx, ind / f"{key}.txt")
    if "valid" in out.sets:
        out.splits["valid"] = Split("train", "valid")
    if "ind_test" in out.sets:
        out.splits["test"] = Split("ind_graph", "ind_test")
    if "ind_valid" in out.sets:
        out.splits["ind_valid"] = Split("ind_graph", "ind_valid")
    return out
