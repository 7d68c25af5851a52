"""Artifact formats: versions refused, damage detected, atomic folders, codebook round trip."""
from __future__ import annotations

import json

import numpy as np
import pytest

from artifacts.atomic import staging_directory
from artifacts.codebooks import Codebook, CodebookSet
from artifacts.errors import ArtifactError, IncompleteArtifactError, UnsupportedFormatError
from artifacts.manifest import check_manifest_digests, record_source, recorded_source, with_digest
from artifacts import token_tables
from artifacts.token_tables import read_token_tables
from tokenizer_stage.tokenize import tokenize_graph


@pytest.fixture
def artifact(example_graph, codebooks_dir, fast_config, tmp_path):
    tokenize_graph(example_graph, tmp_path, codebooks_dir, fast_config)
    return tmp_path / "example"


def _edit_manifest(folder, sealed: bool = False, **changes):
    """Change manifest keys by hand; ``sealed``: with the digest recomputed, as a manifest written that
    way would have (the checks behind the digest's are then the ones that answer)."""
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest.update(changes)
    path.write_text(json.dumps(with_digest(manifest) if sealed else manifest))


def test_unknown_format_version_is_refused_with_reason(artifact):
    _edit_manifest(artifact, format_version=99)
    with pytest.raises(UnsupportedFormatError, match="format version 99 .* not readable"):
        read_token_tables(artifact)


def test_wrong_kind_and_incomplete_and_damaged(artifact):
    (artifact / "entities.parquet").write_bytes((artifact / "entities.parquet").read_bytes()[:-1] + b"\0")
    with pytest.raises(ArtifactError, match="content hash differs"):
        read_token_tables(artifact)
    _edit_manifest(artifact, kind="tofu.codebooks")
    with pytest.raises(ArtifactError, match="expected an artifact of kind 'tofu.token_tables'"):
        read_token_tables(artifact)
    (artifact / "manifest.json").unlink()
    with pytest.raises(IncompleteArtifactError, match="incomplete"):
        read_token_tables(artifact)


def test_tampered_manifests_are_refused_by_name(artifact):
    original = (artifact / "manifest.json").read_text()
    for change, message in [
            ({"format_version": True}, "format version True"),                 # True == 1 must not pass
            ({"files": {}}, "the manifest does not list entities.parquet"),    # would skip every hash check
            ({"splits": None}, "damaged manifest \\(no splits\\)"),
            ({"splits": {"test": {"graph": "train", "queries": "nope"}}}, "split 'test' names no triple set"),
            ({"graph": {"root": "/x"}}, "damaged manifest \\(no graph name\\)"),
            ({"codebooks": "abc"}, "damaged manifest \\(no codebook id\\)"),
            ({"splits": {"test": ["train", "test"]}}, "split 'test' names no triple set")]:
        _edit_manifest(artifact, **change)   # as edited by hand: its digest no longer holds
        with pytest.raises(ArtifactError, match=f"the manifest was edited after it was written|{message}"):
            read_token_tables(artifact)
        _edit_manifest(artifact, sealed=True)
        with pytest.raises(ArtifactError, match=message):
            read_token_tables(artifact)
        (artifact / "manifest.json").write_text(original)
    assert read_token_tables(artifact).name == "example"


def test_damaged_artifact_is_redone_not_skipped(artifact, example_graph, codebooks_dir, fast_config):
    table = artifact / "entity_tokens.parquet"
    good = table.read_bytes()
    table.write_bytes(good[:-9] + bytes([good[-9] ^ 1]) + good[-8:])   # same size, other content
    with pytest.warns(UserWarning, match="content hash differs from the manifest.*: tokenized again"):
        summary = tokenize_graph(example_graph, artifact.parent, codebooks_dir, fast_config)
    assert summary.status == "tokenized" and table.read_bytes() == good
    assert tokenize_graph(example_graph, artifact.parent, codebooks_dir, fast_config).status == "skipped"


def test_edited_manifest_is_redone_not_skipped(artifact, example_graph, codebooks_dir, fast_config):
    path = artifact / "manifest.json"
    good = json.loads(path.read_text())
    assert good["splits"]["test"] == {"graph": "train", "queries": "test"}
    # Pointing test at the valid triples keeps every table intact and changes every test figure.
    _edit_manifest(artifact, splits={**good["splits"], "test": {"graph": "train", "queries": "valid"}})
    with pytest.raises(ArtifactError, match="manifest.json: the manifest was edited after it was written"):
        read_token_tables(artifact)   # stage two refuses it, as stage one redoes it
    with pytest.warns(UserWarning, match="manifest.json: the manifest was edited after it was written .*: "
                                         "tokenized again"):
        summary = tokenize_graph(example_graph, artifact.parent, codebooks_dir, fast_config)
    assert summary.status == "tokenized" and json.loads(path.read_text())["splits"] == good["splits"]
    assert tokenize_graph(example_graph, artifact.parent, codebooks_dir, fast_config).status == "skipped"
    # A manifest that records no digest (an older TOFU's) cannot vouch for itself either.
    manifest = json.loads(path.read_text())
    del manifest["manifest_sha256"]
    path.write_text(json.dumps(manifest))
    with pytest.warns(UserWarning, match="records no manifest_sha256 .*: tokenized again"):
        assert tokenize_graph(example_graph, artifact.parent, codebooks_dir, fast_config).status == "tokenized"
    # Reformatting the file is no edit: the digest covers the content, not the bytes.
    path.write_text(json.dumps(json.loads(path.read_text()), indent=None))
    assert tokenize_graph(example_graph, artifact.parent, codebooks_dir, fast_config).status == "skipped"
    # The one rewrite TOFU makes itself (the graph folder moved) keeps the manifest's digest true.
    record_source(artifact, artifact.parent / "moved_here")
    check_manifest_digests(artifact)
    assert recorded_source(artifact) == artifact.parent / "moved_here"


def test_manifest_digest_covers_the_graphs_nested_in_a_task(tmp_path):
    from artifacts.manifest import write_manifest

    task = tmp_path / "task"
    for folder in (task, task / "graph1"):
        folder.mkdir()
        (folder / "data.bin").write_bytes(b"x")
        write_manifest(folder, "tofu.test", 1, {"splits": {"test": "test"}}, ["data.bin"])
    check_manifest_digests(task)
    _edit_manifest(task / "graph1", splits={"test": "valid"})
    with pytest.raises(ArtifactError, match="graph1/manifest.json: the manifest was edited after it was written"):
        check_manifest_digests(task)


def test_one_writing_run_per_root_and_hidden_staging_is_no_artifact(artifact):
    from artifacts.atomic import exclusive_root
    from artifacts.errors import RootBusyError
    from artifacts.root import artifact_folders

    root = artifact.parent
    with exclusive_root(root):
        with pytest.raises(RootBusyError, match="another tofu run .* is writing to this artifact root"):
            with exclusive_root(root):
                pass
    with exclusive_root(root):   # released when the first run ends
        pass
    # An interrupted write's staging folder is not read as an artifact.
    (root / ".example.tmp-0123abcd").mkdir()
    (root / ".example.tmp-0123abcd" / "entities.parquet").write_bytes(b"")
    assert artifact_folders([root]) == [artifact]


def test_parquet_files_describe_themselves(artifact):
    import pyarrow.parquet as pq

    meta = json.loads(pq.read_schema(artifact / "entity_tokens.parquet").metadata[b"tofu"])
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert meta == {"table": "entity_tokens", "format_version": token_tables.FORMAT_VERSION, "graph": "example",
                    "codebooks": manifest["codebooks"]["id"]}


def test_triple_sets_read_once_match_the_table_and_are_the_callers_to_change(artifact):
    """``triple_set`` filters the triples table once per set; each call still hands out its own array."""
    tables = read_token_tables(artifact)
    triples = tables.tables["triples"].to_pydict()
    for name in tables.manifest["counts"]["triple_sets"]:
        expected = [[h, r, t] for h, r, t, s in zip(triples["head"], triples["relation"], triples["tail"],
                                                     triples["triple_set"]) if s == name]
        first = tables.triple_set(name)
        assert first.dtype == np.int64 and first.tolist() == expected and len(expected) > 0
        first[:] = -1
        assert tables.triple_set(name).tolist() == expected
    with pytest.raises(KeyError, match="no triple set 'nope'"):
        tables.triple_set("nope")


def test_codebook_round_trip_and_identity(tmp_path):
    rng = np.random.default_rng(0)
    books = CodebookSet({"text": Codebook("text", rng.normal(size=(4, 3)).astype(np.float32),
                                          {"name": "enc", "weights": "abc"}, {"seed": 0})})
    books.save(tmp_path / "cb")
    loaded = CodebookSet.load(tmp_path / "cb")
    assert np.array_equal(loaded["text"].centroids, books["text"].centroids)
    assert loaded.codebook_id == books.codebook_id
    other = CodebookSet({"text": Codebook("text", books["text"].centroids, {"name": "enc", "weights": "xyz"})})
    assert other.codebook_id != books.codebook_id  # tied to the encoder, not only to the numbers
    np.save(tmp_path / "cb" / "text.npy", books["text"].centroids[::-1].copy())
    with pytest.raises(ArtifactError):
        CodebookSet.load(tmp_path / "cb")


def test_staging_directory_swaps_whole_or_not_at_all(tmp_path):
    target = tmp_path / "t"
    with staging_directory(target) as stage:
        (stage / "a").write_text("1")
    with pytest.raises(RuntimeError):
        with staging_directory(target) as stage:
            (stage / "a").write_text("2")
            raise RuntimeError("interrupted")
    assert (target / "a").read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]


def test_checkpoint_files_get_the_umask_mode(tmp_path):
    # safetensors writes its file 0600; a shipped checkpoint must be readable like the rest.
    import os

    import torch

    from artifacts.checkpoint import load_checkpoint, save_checkpoint

    old = os.umask(0o022)
    try:
        save_checkpoint(tmp_path / "ckpt", {"w": torch.ones(2)}, {"dim": 2}, "books", {"step": 0})
    finally:
        os.umask(old)
    for name in ("model.safetensors", "manifest.json"):
        assert (tmp_path / "ckpt" / name).stat().st_mode & 0o777 == 0o644, name
    _, state, _ = load_checkpoint(tmp_path / "ckpt")
    assert torch.equal(state["w"], torch.ones(2))
    # A checkpoint must say which codebooks it reads: readers refuse one that does not.
    with pytest.raises(ValueError, match="needs the id of the codebooks"):
        save_checkpoint(tmp_path / "no_id", {"w": torch.ones(2)}, {"dim": 2}, None, {"step": 0})
    assert not (tmp_path / "no_id").exists()
    _edit_manifest(tmp_path / "ckpt", sealed=True, codebook_id=None)
    with pytest.raises(ArtifactError, match="damaged checkpoint manifest \\(no valid codebook_id\\)"):
        load_checkpoint(tmp_path / "ckpt")


def test_metrics_files_have_one_schema_and_refuse_other_shapes(tmp_path):
    from artifacts.metrics import RECORD_FIELDS, read_metrics, write_metrics

    record = {field: 0.5 for field in RECORD_FIELDS} | {"graph": "g", "split": "test", "task": "linking",
                                                         "per_relation": {"r": {"mrr": 1.0}}}
    json_path, csv_path = write_metrics(tmp_path, "ck", "linking", [record])
    assert read_metrics(tmp_path)["records"] == [record]
    assert csv_path.read_text().splitlines()[0] == ",".join(RECORD_FIELDS)   # nested fields stay in the JSON
    with pytest.raises(ValueError, match="lacks \\['seconds'\\]"):
        write_metrics(tmp_path, "ck", "linking", [{k: v for k, v in record.items() if k != "seconds"}])
    with pytest.raises(ValueError, match="names task 'linking'"):
        write_metrics(tmp_path, "ck", "alignment", [record])
    json_path.write_text(json.dumps({"checkpoint": "ck", "graphs": [record]}))   # a metrics file without the schema key
    with pytest.raises(ArtifactError, match="not a TOFU metrics file"):
        read_metrics(tmp_path)
