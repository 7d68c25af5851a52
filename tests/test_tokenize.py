"""Stage one on small generated graphs with the real shipped encoders."""
from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from artifacts.codebooks import CodebookSet
from artifacts.token_tables import read_token_tables
from artifacts.version import CODE_VERSION
from tokenizer_stage.config import EncoderSpec
from tokenizer_stage.kg_reader import KGWarning
from tokenizer_stage.config import TokenizerConfig
from tokenizer_stage.tokenize import CodebookMismatchError, tokenize_graph


def _tokens(folder: Path):
    return read_token_tables(folder).tables["entity_tokens"]


def test_tables_hold_every_modality_with_fine_grained_tokens(example_graph, codebooks_dir, fast_config, tmp_path):
    summary = tokenize_graph(example_graph, tmp_path, codebooks_dir, fast_config)
    assert summary.status == "tokenized"
    tables = read_token_tables(tmp_path / "example")
    n = tables.num_entities
    assert n == 40 + 6 * 5 + 5  # people + countries and their cities + colours
    for modality in ("structure", "text", "image"):
        owners, codes, counts = tables.tokens("entity", modality)
        assert set(owners.tolist()) == set(range(n)), modality
        assert (counts >= 1).all()
        per_entity = np.bincount(owners, minlength=n)
        assert per_entity.max() <= fast_config.tokens_per_entity
    # Token-level quantization: a multi-word text yields several distinct codes.
    owners, codes, _ = tables.tokens("entity", "text")
    assert max(len(set(codes[owners == e])) for e in range(n)) >= 4
    # An image is 49 patches: its top codes' counts add up to at most 49 per image.
    owners, codes, counts = tables.tokens("entity", "image")
    assert np.bincount(owners, weights=counts).max() <= 49
    # Ranks are by count, most frequent first.
    for e in range(5):
        c = counts[owners == e]
        assert (np.diff(c) <= 0).all()
    # Relations get text tokens from their names.
    rel_owners, _, _ = tables.tokens("relation", "text")
    assert set(rel_owners.tolist()) == set(range(tables.num_relations))
    # Splits point at triple sets; ids are dense and in range.
    assert tables.splits["test"] == {"graph": "train", "queries": "test"}
    test = tables.queries("test")
    assert len(test) == 12 and test.max() < n
    manifest = tables.manifest
    assert manifest["codebooks"]["id"] == CodebookSet.load(codebooks_dir).codebook_id
    assert manifest["encoders"]["text"]["name"] == "all-MiniLM-L6-v2"
    assert manifest["encoders"]["image"]["name"] == "efficientnet-lite0-imagenet"
    assert manifest["code_version"] == CODE_VERSION


def test_same_input_gives_same_tokens(example_graph, codebooks_dir, fast_config, tmp_path):
    tokenize_graph(example_graph, tmp_path / "a", codebooks_dir, fast_config)
    tokenize_graph(example_graph, tmp_path / "b", codebooks_dir, fast_config)
    for table in ("entity_tokens", "relation_tokens", "triples", "entities"):
        a = pq.read_table(tmp_path / "a" / "example" / f"{table}.parquet")
        b = pq.read_table(tmp_path / "b" / "example" / f"{table}.parquet")
        assert a.equals(b), table


def test_rerun_skips_and_changed_source_is_redone(example_graph, codebooks_dir, fast_config, tmp_path):
    graph = tmp_path / "g"
    shutil.copytree(example_graph, graph)
    first = tokenize_graph(graph, tmp_path / "out", codebooks_dir, fast_config)
    assert first.status == "tokenized"
    again = tokenize_graph(graph, tmp_path / "out", codebooks_dir, fast_config)
    assert again.status == "skipped"
    assert again.entities == first.entities
    # A changed triple file is redone ...
    with open(graph / "train.tsv", "a") as handle:
        handle.write("person:000\tfriend_of\tperson:001\n")
    assert tokenize_graph(graph, tmp_path / "out", codebooks_dir, fast_config).status == "tokenized"
    # ... and so is a changed image, even with the same name.
    image = next((graph / "pictures").rglob("*.png"))
    from PIL import Image

    Image.new("RGB", (20, 20), (1, 2, 3)).save(image)
    assert tokenize_graph(graph, tmp_path / "out", codebooks_dir, fast_config).status == "tokenized"
    assert tokenize_graph(graph, tmp_path / "out", codebooks_dir, fast_config).status == "skipped"
    assert tokenize_graph(graph, tmp_path / "out", codebooks_dir, fast_config, force=True).status == "tokenized"
    # Other token settings, or another codebook set, redo it too.
    fewer = replace(fast_config, tokens_per_entity=3)
    assert tokenize_graph(graph, tmp_path / "out", codebooks_dir, fewer).status == "tokenized"
    owners, _, _ = read_token_tables(tmp_path / "out" / "example").tokens("entity", "text")
    assert np.bincount(owners).max() == 3
    books = CodebookSet.load(codebooks_dir)
    other = CodebookSet({m: replace(books[m], centroids=books[m].centroids[::-1].copy()) for m in books.codebooks})
    other.save(tmp_path / "other_books")
    assert tokenize_graph(graph, tmp_path / "out", tmp_path / "other_books", fewer).status == "tokenized"
    assert read_token_tables(tmp_path / "out" / "example").codebook_id == other.codebook_id != books.codebook_id
    assert tokenize_graph(graph, tmp_path / "out", tmp_path / "other_books", fewer).status == "skipped"
    # An image moved to another entity's path (the same file name, at the same place in the sorted
    # sources) is redone: a path names the entity an image shows.
    (graph / "pictures" / "person_001").rename(graph / "pictures" / "person_001_gone")
    with pytest.warns(KGWarning, match="person_001/0.png"):   # images.tsv lists it
        assert tokenize_graph(graph, tmp_path / "out", codebooks_dir, fast_config).status == "tokenized"
    (graph / "pictures" / "person_000").rename(graph / "pictures" / "person_001")
    with pytest.warns(KGWarning, match="person_000/0.png"):
        assert tokenize_graph(graph, tmp_path / "out", codebooks_dir, fast_config).status == "tokenized"
    used = read_token_tables(tmp_path / "out" / "example").tables["entities"].to_pydict()
    images_used = dict(zip(used["label"], used["images_used"]))
    assert (images_used["person:000"], images_used["person:001"]) == (0, 1)
    # Moving the whole graph folder changes no input: skipped, and the artifact now names its new place.
    moved = tmp_path / "moved" / "g"
    moved.parent.mkdir()
    graph.rename(moved)
    with pytest.warns(KGWarning, match="person_000/0.png"):
        assert tokenize_graph(moved, tmp_path / "out", codebooks_dir, fast_config).status == "skipped"
    manifest = json.loads((tmp_path / "out" / "example" / "manifest.json").read_text())
    assert manifest["graph"]["root"] == str(moved)
    assert read_token_tables(tmp_path / "out" / "example").name == "example"   # still valid
    # Moved and then edited: redone (its old folder is gone, so this is no clash with another graph).
    with open(moved / "train.tsv", "a") as handle:
        handle.write("person:002\tfriend_of\tperson:003\n")
    with pytest.warns(KGWarning, match="person_000/0.png"):
        assert tokenize_graph(moved, tmp_path / "out", codebooks_dir, fast_config).status == "tokenized"


def test_new_graph_uses_frozen_codebooks(second_graph, codebooks_dir, fast_config, tmp_path):
    before = {p.name: p.read_bytes() for p in codebooks_dir.iterdir()}
    tokenize_graph(second_graph, tmp_path, codebooks_dir, fast_config)
    after = {p.name: p.read_bytes() for p in codebooks_dir.iterdir()}
    assert before == after
    tables = read_token_tables(tmp_path / "second")
    assert tables.codebook_id == CodebookSet.load(codebooks_dir).codebook_id
    # Codes stay inside the frozen codebooks' ranges.
    books = CodebookSet.load(codebooks_dir)
    for modality in ("text", "image"):
        _, codes, _ = tables.tokens("entity", modality)
        assert codes.max() < books[modality].size
    _, codes, _ = tables.tokens("entity", "structure")
    assert codes.max() < 2 * books["structure"].size


def test_codebooks_refuse_another_encoder(example_graph, codebooks_dir, fast_config, tiny_text_model, tmp_path):
    other = TokenizerConfig(text_encoder=EncoderSpec("text", str(tiny_text_model)),
                            image_encoder=fast_config.image_encoder, use_images=False)
    with pytest.raises(CodebookMismatchError, match="text codebook was fitted on vectors of encoder"):
        tokenize_graph(example_graph, tmp_path, codebooks_dir, other)
    assert not (tmp_path / "example").exists()


def test_transformers_models_by_local_path(example_graph, tiny_text_model, tiny_vision_model, tmp_path):
    from tokenizer_stage.tokenize import fit_codebooks

    config = TokenizerConfig(text_encoder=EncoderSpec("text", str(tiny_text_model)),
                             image_encoder=EncoderSpec("image", str(tiny_vision_model), batch_size=8),
                             text_codebook_size=16, image_codebook_size=8, structure_codebook_size=8)
    books = fit_codebooks([example_graph], config)
    assert books["text"].dim == 32 and books["image"].dim == 32
    books.save(tmp_path / "books")
    tokenize_graph(example_graph, tmp_path / "out", tmp_path / "books", config)
    tables = read_token_tables(tmp_path / "out" / "example")
    assert tables.manifest["encoders"]["text"]["architecture"] == "BertModel"
    assert tables.manifest["encoders"]["image"]["architecture"] == "ViTModel"
    owners, codes, counts = tables.tokens("entity", "image")
    # 32x32 input, 8x8 patches: 16 patch tokens per image ([CLS] dropped).
    assert np.bincount(owners, weights=counts).max() <= 16
    assert len(set(owners.tolist())) == tables.num_entities


def test_an_unloadable_local_model_is_one_line_naming_its_folder(tiny_text_model, tmp_path):
    """A model folder with missing or corrupt weights: an EncoderError (the CLI prints it as one line)
    that names the folder, without transformers' advice about the Hub (TOFU never downloads)."""
    from tokenizer_stage.config import EncoderError
    from tokenizer_stage.encoders import load_encoder

    missing, corrupt = tmp_path / "missing", tmp_path / "corrupt"
    for folder in (missing, corrupt):
        shutil.copytree(tiny_text_model, folder)
        for weights in [*folder.glob("*.safetensors"), *folder.glob("*.bin")]:
            if folder == missing:
                weights.unlink()
            else:
                weights.write_bytes(b"{}")
    for folder in (missing, corrupt):
        for modality in ("text", "image"):
            with pytest.raises(EncoderError) as err:
                load_encoder(EncoderSpec(modality, str(folder)))
            message = str(err.value)
            assert message.startswith(f"{folder}: cannot load a") and "\n" not in message


def test_corrupt_image_is_skipped_and_counted(example_graph, codebooks_dir, fast_config, tmp_path):
    graph = tmp_path / "g"
    shutil.copytree(example_graph, graph)
    victim = sorted((graph / "pictures").rglob("*.png"))[0]
    victim.write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    summary = tokenize_graph(graph, tmp_path / "out", codebooks_dir, fast_config)
    assert summary.images_failed == 1
    tables = read_token_tables(tmp_path / "out" / "example")
    entities = tables.tables["entities"].to_pydict()
    assert sum(entities["images_failed"]) == 1
    assert sum(entities["images_used"]) == tables.num_entities - 1
    assert any("unreadable image" in w for w in tables.manifest["warnings"])


def test_structural_tokens_ignore_ids(example_graph, codebooks_dir, fast_config, tmp_path):
    """Renaming every entity and relation leaves each entity's structural tokens unchanged."""
    graph = tmp_path / "renamed"
    graph.mkdir()
    rng = np.random.default_rng(3)
    lines = (example_graph / "train.tsv").read_text().splitlines()
    entities = sorted({x for line in lines for x in (line.split("\t")[0], line.split("\t")[2])})
    relations = sorted({line.split("\t")[1] for line in lines})
    new_e = {e: f"e{i:04d}" for i, e in zip(rng.permutation(len(entities)), entities)}
    new_r = {r: f"r{i}" for i, r in zip(rng.permutation(len(relations)), relations)}
    (graph / "train.tsv").write_text("".join(
        f"{new_e[h]}\t{new_r[r]}\t{new_e[t]}\n" for h, r, t in (line.split("\t") for line in lines)))
    plain = tmp_path / "plain"
    plain.mkdir()
    shutil.copy(example_graph / "train.tsv", plain / "train.tsv")
    structure_only = TokenizerConfig(use_text=False, use_images=False)
    tokenize_graph(plain, tmp_path / "out", codebooks_dir, structure_only)
    tokenize_graph(graph, tmp_path / "out", codebooks_dir, structure_only)

    def by_label(folder):
        t = read_token_tables(folder)
        labels = t.tables["entities"]["label"].to_pylist()
        owners, codes, counts = t.tokens("entity", "structure")
        result = {}
        for o, c, n in zip(owners, codes, counts):
            result.setdefault(labels[o], []).append((int(c), int(n)))
        return result

    a, b = by_label(tmp_path / "out" / "plain"), by_label(tmp_path / "out" / "renamed")
    assert set(a) == set(entities) and all(a.values())   # every entity has structure tokens
    assert {new_e[k]: v for k, v in a.items()} == b


def test_failed_write_leaves_no_artifact(example_graph, codebooks_dir, fast_config, tmp_path, monkeypatch):
    import pyarrow.parquet

    tokenize_graph(example_graph, tmp_path, codebooks_dir, fast_config)
    good = json.loads((tmp_path / "example" / "manifest.json").read_text())
    calls = {"n": 0}
    real = pyarrow.parquet.write_table

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(pyarrow.parquet, "write_table", flaky)
    with pytest.raises(OSError, match="disk full"):
        tokenize_graph(example_graph, tmp_path, codebooks_dir, fast_config, force=True)
    # The old complete artifact is untouched and no staging folder is left behind.
    assert json.loads((tmp_path / "example" / "manifest.json").read_text()) == good
    read_token_tables(tmp_path / "example")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    # A first write that fails leaves nothing a reader could take for complete.
    calls["n"] = 0
    with pytest.raises(OSError):
        tokenize_graph(example_graph, tmp_path / "fresh", codebooks_dir, fast_config)
    assert not (tmp_path / "fresh" / "example").exists()
