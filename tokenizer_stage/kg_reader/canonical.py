"""The canonical layout: ``train.tsv valid.tsv test.tsv`` (+ ``graph.tsv``) or the files kg.toml names,
or one file of every triple, kept as the train split or cut as kg.toml ``[split]`` asks."""

from __future__ import annotations

import random
from pathlib import Path

from tokenizer_stage.kg_reader.errors import KGFormatError
from tokenizer_stage.kg_reader.files import ReadContext, present
from tokenizer_stage.kg_reader.model import Split, SplitRequest
from tokenizer_stage.kg_reader.triples import Loaded, TripleSet, read_triples


def load_canonical(ctx: ReadContext, data_dir: Path, overrides: dict[str, Path], split: SplitRequest | None) -> Loaded:
    """The canonical layout: ``{train,graph,valid,test}.tsv``, the files kg.toml names, or one file of all."""
    if "all" in overrides:
        return _load_one_file(ctx, data_dir, overrides["all"], split)
    out = Loaded(aux_dirs=[data_dir])
    paths = {k: overrides.get(k, data_dir / f"{k}.tsv") for k in ("train", "graph", "valid", "test")}
    if not present(paths["train"]) and not present(paths["graph"]):
        raise KGFormatError("missing required file (train.tsv, or graph.tsv as the inference graph)", paths["train"])
    for key, p in paths.items():
        if present(p):
            out.sets[key] = read_triples(ctx, p)
    base = "graph" if "graph" in out.sets else "train"
    if "train" in out.sets:
        out.splits["train"] = Split("train", "train")
    for key in ("valid", "test"):
        if key in out.sets:
            out.splits[key] = Split(base, key)
    return out


def _load_one_file(ctx: ReadContext, data_dir: Path, path: Path, split: SplitRequest | None) -> Loaded:
    """One file of every triple: the train split alone, or cut as ``split`` asks."""
    out = Loaded(aux_dirs=[data_dir])
    whole = read_triples(ctx, path)
    out.splits["train"] = Split("train", "train")
    if split is None:
        out.sets["train"] = whole
        ctx.warn(f"{path}: one triples file and no split asked for: its {len(whole.triples)} triples are the train "
                 "split, and nothing is held out to evaluate on; to split it, name it as files.all in a kg.toml "
                 "with a [split] table (README: 'The KG directory')")
        return out
    for key, part in _split_one_file(whole, split).items():
        out.sets[key] = part
        if key != "train":
            out.splits[key] = Split("train", key)
    return out


def _split_one_file(whole: TripleSet, request: SplitRequest) -> dict[str, TripleSet]:
    """``train`` and the ``valid`` / ``test`` parts with a share above 0, each in file order (see
    :class:`SplitRequest`)."""
    n = len(whole.triples)
    order = sorted(range(n), key=whole.triples.__getitem__)
    random.Random(request.seed).shuffle(order)
    held_out = {key: round(n * share) for key, share in (("valid", request.valid), ("test", request.test)) if share > 0}
    n_train = n - sum(held_out.values())
    cover, rest = [], []
    seen_entities: set[str] = set()
    seen_relations: set[str] = set()
    for i in order:
        h, r, t = whole.triples[i]
        if h in seen_entities and t in seen_entities and r in seen_relations:
            rest.append(i)
            continue
        cover.append(i)
        seen_entities.update((h, t))
        seen_relations.add(r)
    if len(cover) > n_train:
        raise KGFormatError(
            f"cannot split {n} triples {request.train:g} / {request.valid:g} / {request.test:g}: train must hold "
            f"every entity and relation, which takes {len(cover)} triples here, more than its {n_train}; "
            "ask for a larger train share in kg.toml [split]", whole.path)
    parts = {"train": cover + rest[:n_train - len(cover)]}
    start = n_train - len(cover)
    for key, size in held_out.items():
        parts[key] = rest[start:start + size]
        start += size
    return {key: TripleSet([whole.triples[i] for i in sorted(chosen)], [whole.lines[i] for i in sorted(chosen)],
                           whole.path)
            for key, chosen in parts.items()}
