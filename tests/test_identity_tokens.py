"""Tokens that keep identity (lexical subwords, dense product codes) and the matching that reads them."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from click.testing import CliRunner

from artifacts.codebooks import DENSE_TEXT, CodebookSet
from artifacts.metrics import read_metrics
from artifacts.task_tables import read_alignment_artifact, read_linking_artifact
from artifacts.token_tables import LexiconMismatch, read_token_tables
from pipeline.cli import main
from reasoning_stage import matching
from reasoning_stage.config import ModelConfig
from reasoning_stage.models import TofuModel
from reasoning_stage.reasoning import LoadedModel, evaluate_task, matching_problem, validate_bootstrap
from reasoning_stage.training import model_config_for
from tokenizer_stage.encoders import load_encoder
from tokenizer_stage.kg_reader import KGFormatError
from tokenizer_stage.tasks import read_task
from tokenizer_stage.tokenize import tokenize_graph
from tokenizer_stage.tokenize_task import tokenize_task

CPU = torch.device("cpu")


def small_loaded(tables, codebook_id: str) -> LoadedModel:
    torch.manual_seed(0)
    config = model_config_for(tables, ModelConfig(dim=16, entity_layers=1, relation_layers=1))
    return LoadedModel(TofuModel(config).eval(), {"codebook_id": codebook_id})


def test_lexical_tokens_round_trip_through_parquet(example_graph, codebooks_dir, fast_config, tmp_path):
    tokenize_graph(example_graph, tmp_path, codebooks_dir, fast_config)
    tables = read_token_tables(tmp_path / "example")
    names = tables.tables["entities"]["name"].to_pylist()
    owners, subwords, counts = tables.lexical("name")
    encoder = load_encoder(fast_config.text_encoder)
    assert tables.lexicon == encoder.lexicon
    for entity in range(0, len(names), 7):
        if not names[entity]:
            continue
        expected = {}
        for token in encoder.tokenizer(names[entity], add_special_tokens=False)["input_ids"]:
            expected[token] = expected.get(token, 0) + 1
        mine = owners == entity
        assert dict(zip(subwords[mine].tolist(), counts[mine].tolist())) == expected
    ids, codes = tables.dense("full")
    decoder = tables.dense_decoder
    assert decoder is not None and codes.shape[1] == int(decoder.fit["subquantizers"])
    assert np.array_equal(decoder.centroids, CodebookSet.load(codebooks_dir)[DENSE_TEXT].centroids)


def write_linking_task(folder: Path, kb: list[tuple[str, str, str]], mentions: list[tuple[str, str, str]]) -> Path:
    folder.mkdir(parents=True)
    (folder / "kb.tsv").write_text("".join("\t".join(r) + "\n" for r in kb), encoding="utf-8")
    rows = "".join(f"m{i}\t{text}\t{context}\t{entity}\n" for i, (text, context, entity) in enumerate(mentions))
    (folder / "test.tsv").write_text(rows, encoding="utf-8")
    (folder / "task.toml").write_text('[task]\nkind = "linking"\nname = "namesakes"\n[kb]\nentities = "kb.tsv"\n'
                                      '[mentions]\ntest = "test.tsv"\n', encoding="utf-8")
    return folder


def test_a_mention_equal_to_a_name_ranks_that_entity_first_among_near_namesakes(codebooks_dir, fast_config, tmp_path):
    kb = [("e1", "Paris", "capital of France"), ("e2", "Paris Hilton", "American media personality"),
          ("e3", "Paris, Texas", "city in Lamar County"), ("e4", "Parish", "administrative division"),
          ("e5", "Pariser Platz", "square in Berlin"), ("e6", "Hilton Paris Opera", "hotel in Paris")]
    mentions = [(name, "", label) for label, name, _ in kb]
    folder = write_linking_task(tmp_path / "namesakes", kb, mentions)
    tokenize_task(folder, tmp_path / "out", codebooks_dir, fast_config)
    artifact = read_linking_artifact(tmp_path / "out" / "namesakes")
    loaded = small_loaded(artifact.kb, artifact.codebook_id)
    ranks = evaluate_task(loaded, artifact, "test", CPU)[0]
    assert ranks.pessimistic.tolist() == [1] * len(kb)


def test_relabelling_every_id_leaves_all_scores_unchanged(codebooks_dir, fast_config, tmp_path, example_graph):
    kb = [("e1", "Paris", "capital of France"), ("e2", "Paris Hilton", "media personality"),
          ("e3", "Lyon", "city in France"), ("e4", "Texas", "state of the United States")]
    folder = write_linking_task(tmp_path / "namesakes", kb, [("paris", "in France", "e1"), ("hilton", "", "e2")])
    tokenize_task(folder, tmp_path / "out", codebooks_dir, fast_config)
    artifact = read_linking_artifact(tmp_path / "out" / "namesakes")
    loaded = small_loaded(artifact.kb, artifact.codebook_id)
    problem = matching_problem(loaded, artifact, "test", CPU)
    rows = np.arange(problem.source.size)
    scores = matching.score_matrix(loaded.model, problem.source, problem.target, rows, problem.task, problem.evidence)
    # The same KB with every entity id renamed so that the ids (positions in sorted label order) change too.
    renamed_as = {"e1": "k4", "e2": "k2", "e3": "k1", "e4": "k3"}
    moved = [(renamed_as[label], name, text) for label, name, text in reversed(kb)]
    folder2 = write_linking_task(tmp_path / "renamed", moved, [("paris", "in France", "k4"), ("hilton", "", "k2")])
    (folder2 / "task.toml").write_text((folder2 / "task.toml").read_text().replace("namesakes", "renamed"))
    tokenize_task(folder2, tmp_path / "out", codebooks_dir, fast_config)
    renamed = read_linking_artifact(tmp_path / "out" / "renamed")
    problem2 = matching_problem(loaded, renamed, "test", CPU)
    scores2 = matching.score_matrix(loaded.model, problem2.source, problem2.target, rows, problem2.task,
                                    problem2.evidence)
    labels = artifact.kb.tables["entities"]["label"].to_pylist()
    labels2 = renamed.kb.tables["entities"]["label"].to_pylist()
    order = [labels2.index(renamed_as[label]) for label in labels]
    assert order != list(range(len(order)))   # the ids did move
    assert torch.allclose(scores, scores2[:, order], atol=1e-5)


def random_graph(folder: Path, entities: int, triples: int, relations: int, seed: int, names: dict[int, str]) -> None:
    rng = random.Random(seed)
    rows = set()
    while len(rows) < triples:
        h, t = rng.randrange(entities), rng.randrange(entities)
        if h != t:
            rows.add((h, rng.randrange(relations), t))
    folder.mkdir(parents=True)
    (folder / "train.tsv").write_text("".join(f"{names[h]}\tr{r}\t{names[t]}\n" for h, r, t in sorted(rows)))
    (folder / "kg.toml").write_text(f'name = "{folder.name}"\n', encoding="utf-8")


def alignment_with_a_relabelled_copy(folder: Path, seed_share: float, lost_share: float = 0.0):
    """Graph 1 random (400 entities, no text), graph 2 its relabelled copy without ``lost_share`` of
    its triples; ``seed_share`` of the pairs are seed links, the rest test links. Tokenized with the
    shipped codebooks; returns the artifact."""
    from artifacts.shipped import shipped_codebooks
    from tokenizer_stage.config import TokenizerConfig

    n = 400
    shuffled = list(range(n))
    random.Random(5).shuffle(shuffled)
    random_graph(folder / "g1", n, 2400, 6, 0, {i: f"a{i}" for i in range(n)})
    random_graph(folder / "g2", n, 2400, 6, 0, {i: f"b{shuffled[i]}" for i in range(n)})
    drop = random.Random(1)
    kept = [line for line in (folder / "g2" / "train.tsv").read_text().splitlines() if drop.random() >= lost_share]
    (folder / "g2" / "train.tsv").write_text("".join(line + "\n" for line in kept))
    present = {label for line in kept for label in line.split("\t")[::2]}
    pairs = [(f"a{i}", f"b{shuffled[i]}") for i in range(n) if f"b{shuffled[i]}" in present]
    random.Random(0).shuffle(pairs)
    cut = int(seed_share * n)
    for split, part in (("train", pairs[:cut]), ("test", pairs[cut:])):
        (folder / f"{split}_links.tsv").write_text("".join(f"{a}\t{b}\n" for a, b in part))
    (folder / "task.toml").write_text(
        '[task]\nkind = "alignment"\nname = "self"\ngraph1 = "g1"\ngraph2 = "g2"\n'
        '[links]\ntrain = "train_links.tsv"\ntest = "test_links.tsv"\n', encoding="utf-8")
    tokenize_task(folder, folder / "out", shipped_codebooks(), TokenizerConfig(use_text=False, use_images=False))
    return read_alignment_artifact(folder / "out" / "self")


@pytest.mark.slow
def test_anchors_align_a_graph_with_a_relabelled_copy_of_itself_without_text(tmp_path, shipped):
    """No text, 30% seed links, the shipped checkpoint (never trained on this graph): the anchors
    alone must find the counterparts."""
    from reasoning_stage.reasoning import load_model

    artifact = alignment_with_a_relabelled_copy(tmp_path, seed_share=0.3)
    loaded = load_model(shipped, CPU)
    assert "self" not in {t["name"] for t in loaded.manifest["training"].get("tasks", [])}
    metrics = evaluate_task(loaded, artifact, "test", CPU)[1]
    assert metrics["hits@1"] >= 0.9, metrics


def test_bootstrapped_pseudo_seeds_find_what_few_seed_links_miss(tmp_path, shipped):
    """5% seed links, graph 2 a copy that lost 30% of its triples, no text, the shipped checkpoint: the
    anchors alone find some counterparts; one round of pseudo-seeds (confident mutual best matches)
    lets the anchors reach most of the rest."""
    from reasoning_stage.reasoning import load_model

    artifact = alignment_with_a_relabelled_copy(tmp_path, seed_share=0.05, lost_share=0.3)
    loaded = load_model(shipped, CPU)
    anchors_only = evaluate_task(loaded, artifact, "test", CPU)[1]["hits@1"]
    bootstrapped = evaluate_task(loaded, artifact, "test", CPU, bootstrap=1)[1]["hits@1"]
    # Most of the rest: at least half of what the anchors alone miss.
    assert bootstrapped >= anchors_only + 0.5 * (1 - anchors_only), (anchors_only, bootstrapped)
    # --bootstrap auto takes the round count that ranks held-out train links best, and says so.
    hits = validate_bootstrap(loaded, artifact, CPU)
    chosen = max(hits, key=lambda rounds: (hits[rounds], -rounds))
    result = CliRunner().invoke(main, ["reason", "--task", "align", str(artifact.folder), "--bootstrap", "auto",
                                       "--output", str(tmp_path / "res"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert f"self: --bootstrap auto chose {chosen} (held-out train links H@1 {hits[0]:.4f} with 0" in result.output
    assert read_metrics(tmp_path / "res")["records"][0]["bootstrap"] == chosen


def test_the_assignment_reads_its_confident_pairs_as_anchors_and_ranks_again(tmp_path, shipped):
    """5% seed links, graph 2 a copy that lost 30% of its triples, no text: after the assignment, the
    test pairs each other's best with high probability join the anchors, and ranking once more through
    them finds at least half of the counterparts the assignment alone misses."""
    from reasoning_stage.reasoning import load_model

    artifact = alignment_with_a_relabelled_copy(tmp_path, seed_share=0.05, lost_share=0.3)
    loaded = load_model(shipped, CPU)
    problem = matching_problem(loaded, artifact, "test", CPU)
    test = artifact.links["test"]
    counterparts = torch.as_tensor(np.unique(test[:, 1]))
    gold = torch.as_tensor(np.searchsorted(counterparts.numpy(), test[:, 1]))

    def hits(confidence):
        scores = matching.assigned_scores(loaded.model, problem.source, problem.target, test[:, 0], counterparts,
                                          problem.task, problem.evidence, confidence=confidence)[:, counterparts]
        return float((scores.argmax(1) == gold).float().mean())

    assigned_once, with_anchors = hits(None), hits(matching.ASSIGNMENT_ANCHOR_CONFIDENCE)
    assert with_anchors >= assigned_once + 0.5 * (1 - assigned_once), (assigned_once, with_anchors)
    ranked = matching.rank_matches(loaded.model, problem.source, problem.target, test, problem.task,
                                   evidence=problem.evidence, candidates=counterparts.numpy(), assignment=True)
    assert abs(ranked.metrics()["hits@1"] - with_anchors) < 1e-6   # what --assignment ranks with


def test_an_anchor_block_holds_the_anchor_channels_of_the_profiles():
    """The second pass's block (accumulated a few seed pairs at a time) equals the channels the anchor
    profiles give, near and far hops, for the pairs it was built for; zero outside its columns."""
    from reasoning_stage.evidence import ANCHOR_HOPS, FAR_ANCHOR_HOPS, anchor_block, anchor_evidence

    generator = torch.Generator().manual_seed(0)
    source_edges = torch.randint(0, 60, (2, 300), generator=generator)
    target_edges = torch.randint(0, 70, (2, 320), generator=generator)
    seeds = np.stack([np.arange(0, 50, 2), np.arange(1, 70, 2)[:25]], 1)
    (near_s, near_t), (far_s, far_t) = anchor_evidence(source_edges, 60, target_edges, 70, seeds, CPU)
    rows, columns = torch.tensor([3, 7, 8, 41]), torch.tensor([0, 5, 9, 33, 69])
    block = anchor_block(source_edges, 60, target_edges, 70, seeds, rows, columns, chunk=7)
    assert torch.allclose(block.near, near_s[rows] @ near_t[columns].T / ANCHOR_HOPS, atol=1e-5)
    assert torch.allclose(block.far, far_s[rows] @ far_t[columns].T / FAR_ANCHOR_HOPS, atol=1e-5)
    assert float(block.near.abs().sum()) > 0   # the graphs do reach their seeds: a comparison that can fail
    every = block.lookup(block.near, torch.tensor([41, 3]), 70)
    assert every.shape == (2, 70) and torch.equal(every[:, columns], block.near[[3, 0]])
    assert float(every[:, [c for c in range(70) if c not in columns.tolist()]].abs().sum()) == 0
    with pytest.raises(ValueError, match="source owner 4"):
        block.lookup(block.near, torch.tensor([4]), 70)
    assert anchor_block(source_edges, 60, target_edges, 70, seeds, rows, columns, far=False).far is None


def test_assignment_anchors_are_confident_mutual_best_pairs_that_no_seed_names():
    probability = torch.tensor([[0.97, 0.02, 0.01, 0.00],    # row 0 -> column 0: mutual, confident
                                [0.01, 0.60, 0.39, 0.00],    # row 1 -> column 1: mutual, not confident
                                [0.00, 0.01, 0.02, 0.97],    # row 2 -> column 3: confident, but seeded
                                [0.02, 0.37, 0.58, 0.03]])   # row 3 -> column 2: mutual, not confident
    rows = np.array([10, 11, 12, 13])
    seeds = np.array([[99, 3]])
    found = matching.assignment_anchors(probability.log(), rows, seeds, confidence=0.95)
    assert found.tolist() == [[10, 0]]
    assert matching.assignment_anchors(probability.log(), rows, seeds, confidence=0.5).tolist() == [[10, 0], [11, 1],
                                                                                                     [13, 2]]
    crowded = probability.clone()
    crowded[1, 0] = 0.98   # row 1's best is now column 0, which row 1 holds more strongly than row 0
    assert matching.assignment_anchors(crowded.log(), rows, seeds, confidence=0.95).tolist() == [[11, 0]]


def test_a_graph_tokenized_with_another_tokenizer_is_refused_by_name(codebooks_dir, fast_config, tmp_path):
    kb = [("e1", "Paris", "capital of France"), ("e2", "Lyon", "city in France")]
    folder = write_linking_task(tmp_path / "namesakes", kb, [("paris", "", "e1")])
    tokenize_task(folder, tmp_path / "out", codebooks_dir, fast_config)
    artifact = read_linking_artifact(tmp_path / "out" / "namesakes")
    loaded = small_loaded(artifact.kb, artifact.codebook_id)
    other = dict(artifact.lexicon, vocab="0123456789abcdef", vocab_size=artifact.lexicon["vocab_size"] + 1)
    loaded.manifest["lexicon"] = other   # a checkpoint whose evidence weights saw another vocabulary
    with pytest.raises(LexiconMismatch, match=str(artifact.folder)):
        evaluate_task(loaded, artifact, "test", CPU)
    loaded.manifest["lexicon"] = dict(artifact.lexicon)
    assert evaluate_task(loaded, artifact, "test", CPU)[1]["queries"] == 1


def test_a_seed_link_naming_an_entity_not_in_its_graph_gets_file_and_line(example_graph, tmp_path):
    entities = [line.split("\t")[0] for line in (example_graph / "entities.tsv").read_text().splitlines()[1:]]
    (tmp_path / "train_links.tsv").write_text(f"{entities[0]}\t{entities[0]}\n{entities[1]}\t{entities[1]}\n"
                                              f"nobody:999\t{entities[2]}\n")
    (tmp_path / "task.toml").write_text(
        f'[task]\nkind = "alignment"\nname = "self"\ngraph1 = "{example_graph}"\ngraph2 = "{example_graph}"\n'
        '[links]\ntrain = "train_links.tsv"\n', encoding="utf-8")
    with pytest.raises(KGFormatError) as caught:
        read_task(tmp_path)
    assert f"{tmp_path / 'train_links.tsv'}:3" in str(caught.value)
    assert "nobody:999" in str(caught.value)


def test_an_artifact_of_format_1_is_tokenized_again_by_the_next_run(example_graph, codebooks_dir, fast_config,
                                                                    tmp_path):
    """Format 1 had no lexical or dense tables: the next incremental run makes the artifact again, and says so."""
    import json

    from artifacts.manifest import write_manifest

    tokenize_graph(example_graph, tmp_path, codebooks_dir, fast_config)
    folder = tmp_path / "example"
    old = json.loads((folder / "manifest.json").read_text())
    for name in ("entity_lexical.parquet", "entity_dense.parquet", "text_dense.npy"):
        (folder / name).unlink()
    body = {k: v for k, v in old.items() if k not in ("kind", "format_version", "code_version", "files",
                                                       "manifest_sha256", "lexicon", "dense")}
    write_manifest(folder, "tofu.token_tables", 1, body,
                   [n for n in old["files"] if n not in ("entity_lexical.parquet", "entity_dense.parquet",
                                                         "text_dense.npy")])
    with pytest.warns(UserWarning, match="format version 1"):
        summary = tokenize_graph(example_graph, tmp_path, codebooks_dir, fast_config)
    assert summary.status == "tokenized"
    assert read_token_tables(folder).manifest["format_version"] == 2
    assert len(read_token_tables(folder).lexical("name")[0]) > 0


def test_fit_evidence_changes_only_the_evidence_weights(codebooks_dir, fast_config, tmp_path):
    from click.testing import CliRunner

    from artifacts.checkpoint import load_checkpoint, save_checkpoint
    from pipeline.cli import main

    kb = [(f"e{i}", name, text) for i, (name, text) in enumerate([
        ("Paris", "capital of France"), ("Paris Hilton", "media personality"), ("Lyon", "city in France"),
        ("Texas", "state of the United States"), ("Berlin", "capital of Germany"), ("Hilton", "hotel chain")])]
    folder = write_linking_task(tmp_path / "task", kb, [(name, text, label) for label, name, text in kb])
    (folder / "test.tsv").rename(folder / "train.tsv")
    (folder / "test.tsv").write_text("m9\tparis\tin France\te0\n", encoding="utf-8")
    (folder / "task.toml").write_text((folder / "task.toml").read_text().replace(
        'test = "test.tsv"', 'train = "train.tsv"\ntest = "test.tsv"'), encoding="utf-8")
    tokenize_task(folder, tmp_path / "out", codebooks_dir, fast_config)
    artifact = read_linking_artifact(tmp_path / "out" / "namesakes")
    loaded = small_loaded(artifact.kb, artifact.codebook_id)
    from reasoning_stage.models import CHANNEL_OFF

    with torch.no_grad():   # channels switched off, as an older checkpoint's are when loaded
        loaded.model.evidence_weight[:, 6:] = CHANNEL_OFF
    save_checkpoint(tmp_path / "before", loaded.model.state_dict(), loaded.model.config.to_json(),
                    artifact.codebook_id, {"graphs": []})
    result = CliRunner().invoke(main, ["fit-evidence", str(artifact.folder), "--checkpoint", str(tmp_path / "before"),
                                       "--out", str(tmp_path / "after"), "--steps", "50"])
    assert result.exit_code == 0, result.output
    _, before, _ = load_checkpoint(tmp_path / "before")
    manifest, after, _ = load_checkpoint(tmp_path / "after")
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed == ["evidence_weight"]
    assert torch.all(after["evidence_weight"][matching.LINKING, 6:] != before["evidence_weight"][matching.LINKING, 6:])
    assert torch.all(after["evidence_weight"][matching.LINKING, 6:] > CHANNEL_OFF / 2)   # woken, then fitted
    assert torch.equal(after["evidence_weight"][matching.ALIGNMENT], before["evidence_weight"][matching.ALIGNMENT])
    assert manifest["training"]["evidence"]["lexicon"] == artifact.lexicon
    assert set(manifest["training"]["evidence"]["by_task"]) == {"linking"}
    assert set(manifest["training"]["evidence"]["by_task"]["linking"]["datasets"]) == {artifact.name}
    assert "linking:" in result.output


def test_a_short_list_from_the_name_channels_keeps_the_best_candidates(codebooks_dir, fast_config, tmp_path):
    kb = [("e1", "Paris", "capital of France"), ("e2", "Paris Hilton", "American media personality"),
          ("e3", "Paris, Texas", "city in Lamar County"), ("e4", "Parish", "administrative division"),
          ("e5", "Berlin", "capital of Germany"), ("e6", "Hilton Paris Opera", "hotel in Paris"),
          ("e7", "Lyon", "city in France"), ("e8", "Texas", "state of the United States")]
    folder = write_linking_task(tmp_path / "namesakes", kb, [(name, "", label) for label, name, _ in kb])
    tokenize_task(folder, tmp_path / "out", codebooks_dir, fast_config)
    artifact = read_linking_artifact(tmp_path / "out" / "namesakes")
    loaded = small_loaded(artifact.kb, artifact.codebook_id)
    problem = matching_problem(loaded, artifact, "test", CPU)
    rows = np.arange(problem.source.size)
    every, _ = matching.top_matches(loaded.model, problem.source, problem.target, rows, problem.task, 1,
                                    evidence=problem.evidence)
    pool = problem.evidence.candidates(torch.as_tensor(rows[:1]), 2)
    assert 2 <= len(pool) < len(kb)       # a short list, not the whole KB
    short, _ = matching.top_matches(loaded.model, problem.source, problem.target, rows, problem.task, 1,
                                    evidence=problem.evidence, shortlist=2, batch_size=1)
    assert short[:, 0].tolist() == every[:, 0].tolist() == list(range(len(kb)))


def _self_alignment(example_graph, codebooks_dir, fast_config, tmp_path, train, test: int,
                    other_codebooks: bool = False):
    """The example graph aligned with itself (entities ``train`` as train links, entity ``test`` as the
    test link), tokenized, and a small untrained checkpoint in ``tmp_path / "before"`` that reads the
    task's codebooks, or an id of other ones."""
    from artifacts.checkpoint import save_checkpoint

    entities = [line.split("\t")[0] for line in (example_graph / "entities.tsv").read_text().splitlines()[1:]]
    (tmp_path / "train_links.tsv").write_text("".join(f"{entities[i]}\t{entities[i]}\n" for i in train))
    (tmp_path / "test_links.tsv").write_text(f"{entities[test]}\t{entities[test]}\n")
    (tmp_path / "task.toml").write_text(
        f'[task]\nkind = "alignment"\nname = "self"\ngraph1 = "{example_graph}"\ngraph2 = "{example_graph}"\n'
        '[links]\ntrain = "train_links.tsv"\ntest = "test_links.tsv"\n', encoding="utf-8")
    tokenize_task(tmp_path, tmp_path / "out", codebooks_dir, fast_config)
    artifact = read_alignment_artifact(tmp_path / "out" / "self")
    loaded = small_loaded(artifact.graphs[0], artifact.codebook_id)
    save_checkpoint(tmp_path / "before", loaded.model.state_dict(), loaded.model.config.to_json(),
                    "0" * len(artifact.codebook_id) if other_codebooks else artifact.codebook_id, {"graphs": []})
    return artifact


def test_fit_evidence_without_training_pairs_is_a_clear_error(example_graph, codebooks_dir, fast_config, tmp_path):
    """One train link of an alignment is all anchor (70% of one): nothing is left to fit on."""
    from click.testing import CliRunner

    from pipeline.cli import main

    artifact = _self_alignment(example_graph, codebooks_dir, fast_config, tmp_path, train=range(1), test=1)
    result = CliRunner().invoke(main, ["fit-evidence", str(artifact.folder), "--checkpoint", str(tmp_path / "before"),
                                       "--out", str(tmp_path / "after")])
    assert result.exit_code == 1
    assert "no training pairs" in result.output and str(artifact.folder) in result.output
    assert not (tmp_path / "after").exists()


def test_fit_evidence_refuses_a_checkpoint_of_other_codebooks(example_graph, codebooks_dir, fast_config, tmp_path,
                                                           monkeypatch):
    """Tasks tokenized with other codebooks than the checkpoint reads are refused before any fit, with
    the task named, and no checkpoint is written."""
    from click.testing import CliRunner

    import reasoning_stage.reasoning
    from pipeline.cli import main

    fits = []
    monkeypatch.setattr(reasoning_stage.reasoning, "fit_evidence", lambda *args, **kwargs: fits.append(args))

    artifact = _self_alignment(example_graph, codebooks_dir, fast_config, tmp_path, train=range(6), test=7,
                               other_codebooks=True)
    result = CliRunner().invoke(main, ["fit-evidence", str(artifact.folder), "--checkpoint", str(tmp_path / "before"),
                                       "--out", str(tmp_path / "after")])
    assert result.exit_code == 1
    assert "codebook" in result.output and str(artifact.folder) in result.output
    assert "Traceback" not in result.output and not fits
    assert not (tmp_path / "after").exists()


def counts(rows: list[dict[int, int]], vocabulary: int = 8) -> torch.Tensor:
    """Sparse CSR subword counts, one dict ``{subword: count}`` per owner."""
    from reasoning_stage.evidence import lexical_matrix

    owners = [i for i, row in enumerate(rows) for _ in row]
    subwords = [s for row in rows for s in row]
    values = [c for row in rows for c in row.values()]
    return lexical_matrix(len(rows), vocabulary, np.array(owners), np.array(subwords), np.array(values))


def test_coverage_channels_score_a_partial_mention_and_a_context_that_spells_out_the_name():
    from reasoning_stage.evidence import EVIDENCE_CHANNELS, MatchingEvidence, coverage_pairs

    # Subwords: 0 "dempsey", 1 "clint", 2 "jack", 3 "playing", 4 "boxer", 5 "x"; names of three KB entities:
    kb_names = counts([{1: 1, 0: 1}, {2: 1, 0: 1}, {5: 1}])          # Clint Dempsey, Jack Dempsey, X
    mentions = counts([{0: 1}, {0: 1, 1: 1}])                        # "Dempsey", "Clint Dempsey"
    contexts = counts([{0: 1, 1: 1, 3: 1}, {}])                      # "Clint Dempsey playing", none
    pairs = coverage_pairs({"name": mentions, "description": contexts}, {"name": kb_names})
    evidence = MatchingEvidence({}, {}, None, pairs)
    channels = evidence.channels(torch.arange(2), 3)
    cover = channels[..., EVIDENCE_CHANNELS.index("name_coverage") - 1]
    spelled = channels[..., EVIDENCE_CHANNELS.index("name_in_description") - 1]
    # "Dempsey" lies wholly inside both Dempseys and nowhere else; "Clint Dempsey" only inside Clint's.
    assert torch.allclose(cover[0], torch.tensor([1.0, 1.0, 0.0]))
    assert cover[1, 0] == pytest.approx(1.0) and 0 < cover[1, 1] < 0.5 and cover[1, 2] == 0
    # The context names Clint Dempsey whole and half of Jack Dempsey (the common, low-IDF half).
    assert spelled[0, 0] == pytest.approx(1.0) and 0 < spelled[0, 1] < 0.5 and spelled[0, 2] == 0
    assert torch.all(spelled[1] == 0)                                # no context, no evidence


def test_a_checkpoint_from_before_the_coverage_channels_scores_as_it_did(tmp_path):
    from reasoning_stage.models import CHANNEL_OFF, with_current_evidence

    torch.manual_seed(0)
    model = TofuModel(ModelConfig(dim=8, entity_layers=1, relation_layers=1, modalities=("text",), codebook_sizes={"text": 4}))
    old = {k: v.clone() for k, v in model.state_dict().items()}
    old["evidence_weight"] = old["evidence_weight"][:, :6]           # a checkpoint of six channels
    model.load_state_dict(with_current_evidence(old, model), strict=True)
    scores, channels = torch.randn(3, 5), torch.rand(3, 5, model.evidence_weight.shape[1] - 1)
    before = torch.nn.functional.softplus(old["evidence_weight"][0])
    expected = before[0] * scores + channels[..., :5] @ before[1:]
    assert torch.allclose(model.combine_evidence(scores, channels, 0), expected, atol=1e-6)
    assert torch.all(model.evidence_weight[:, 6:] == CHANNEL_OFF)


def test_time_fit_reads_the_years_of_a_context_against_an_entity_span():
    from reasoning_stage.evidence import named_years, time_fit

    contexts = named_years(["Dempsey playing for the United States in May 2013", "Dempsey in 1920 and 1921",
                            "Dempsey, undated"])
    kb = named_years(["Sex: male. Birth: 1983, Nacogdoches.", "Birth: 1895, Manassa. Death: 1983, New York.",
                      "a boxer"])
    fit = time_fit(contexts, kb)
    assert fit.tolist() == [[1.0, -1.0, 0.0],     # alive in 2013 (one year opens the span); dead by then
                            [-1.0, 1.0, 0.0],     # not born yet; both years inside 1895-1983
                            [0.0, 0.0, 0.0]]      # no year, no evidence
    assert named_years(["no year here", None]) is None


def test_prominence_prefers_the_entity_the_knowledge_base_says_most_about():
    from reasoning_stage.evidence import prominence

    descriptions = counts([{0: 1}, {0: 2, 1: 3, 2: 1}, {}])
    scores = prominence(descriptions)
    assert scores[1] == pytest.approx(1.0) and 0 < scores[0] < scores[1] and scores[2] == 0


def test_fit_on_seeds_learns_a_tasks_weights_from_its_own_seed_links(tmp_path, shipped):
    """A checkpoint whose alignment weights ignore the seed links (anchor channels off) cannot find the
    counterparts of a relabelled copy with no text; --fit-on-seeds learns from the task's own train links
    to read them, and leaves the checkpoint file as it was."""
    from artifacts.checkpoint import load_checkpoint, save_checkpoint
    from reasoning_stage.evidence import EVIDENCE_CHANNELS
    from reasoning_stage.models import CHANNEL_OFF, with_current_evidence

    artifact = alignment_with_a_relabelled_copy(tmp_path, seed_share=0.5, lost_share=0.3)
    manifest, state, _ = load_checkpoint(shipped)
    loaded = LoadedModel(TofuModel(ModelConfig.from_json(manifest["model"])), manifest)
    loaded.model.load_state_dict(with_current_evidence(state, loaded.model))
    with torch.no_grad():
        for channel in ("anchors", "far_anchors"):
            loaded.model.evidence_weight[matching.ALIGNMENT, EVIDENCE_CHANNELS.index(channel)] = CHANNEL_OFF
    save_checkpoint(tmp_path / "blind", loaded.model.state_dict(), manifest["model"], manifest["codebook_id"],
                    manifest["training"])
    before = (tmp_path / "blind" / "model.safetensors").read_bytes()
    hits = {}
    for flags in ([], ["--fit-on-seeds"]):
        out = tmp_path / f"res{len(flags)}"
        result = CliRunner().invoke(main, ["reason", "--task", "align", str(artifact.folder), "--checkpoint",
                                           str(tmp_path / "blind"), "--output", str(out), "--device", "cpu", *flags])
        assert result.exit_code == 0, result.output
        record = read_metrics(out)["records"][0]
        assert record["fit_on_seeds"] == bool(flags)
        hits[bool(flags)] = record["hits@1"]
    assert hits[False] < 0.3 and hits[True] >= 0.9, hits
    assert "evidence weights fitted on its seed links" in result.output
    assert (tmp_path / "blind" / "model.safetensors").read_bytes() == before
    result = CliRunner().invoke(main, ["reason", "--task", "link", str(artifact.folder), "--fit-on-seeds"])
    assert result.exit_code != 0 and "--fit-on-seeds apply to --task align" in result.output


def test_far_anchor_profiles_are_built_only_where_a_task_weighs_them(tmp_path, shipped):
    """They cost two-thirds more memory than the near hops: an alignment whose weights switch them off
    builds none, and its scores are the same."""
    from reasoning_stage.evidence import EVIDENCE_CHANNELS
    from reasoning_stage.models import CHANNEL_OFF
    from reasoning_stage.reasoning import load_model

    artifact = alignment_with_a_relabelled_copy(tmp_path, seed_share=0.3, lost_share=0.3)
    loaded = load_model(shipped, CPU)
    column = EVIDENCE_CHANNELS.index("far_anchors")
    with torch.no_grad():
        loaded.model.evidence_weight[matching.ALIGNMENT, column] = CHANNEL_OFF
    lean = matching_problem(loaded, artifact, "test", CPU)
    assert lean.evidence.far_anchors is None and lean.evidence.anchors is not None
    full = matching.matching_evidence(lean.source, lean.target, artifact.links["train"])
    assert full.far_anchors is not None
    rows = np.arange(lean.source.size)
    assert torch.allclose(matching.score_matrix(loaded.model, lean.source, lean.target, rows, lean.task, lean.evidence),
                          matching.score_matrix(loaded.model, lean.source, lean.target, rows, lean.task, full),
                          atol=1e-5)
    with torch.no_grad():
        loaded.model.evidence_weight[matching.ALIGNMENT, column] = 0.0
    assert matching_problem(loaded, artifact, "test", CPU).evidence.far_anchors is not None


def test_held_out_pairs_are_scored_as_shipped_without_reaching_any_fit(tmp_path, shipped, monkeypatch):
    """Validation as shipped refits the evidence weights from their initial values on the train pairs it
    does not hold out: no held-out pair is learnt from or read as an anchor, the checkpoint's own weights
    (here blind to anchors) do not count, and the loaded model is left as it was."""
    from reasoning_stage.evidence import EVIDENCE_CHANNELS
    from reasoning_stage.models import CHANNEL_OFF
    from reasoning_stage.reasoning import held_out_ranks_as_shipped, load_model
    from reasoning_stage.training import matching_pairs

    artifact = alignment_with_a_relabelled_copy(tmp_path, seed_share=0.6, lost_share=0.2)
    loaded = load_model(shipped, CPU)
    with torch.no_grad():
        for channel in ("anchors", "far_anchors"):
            loaded.model.evidence_weight[matching.ALIGNMENT, EVIDENCE_CHANNELS.index(channel)] = CHANNEL_OFF
    own = loaded.model.evidence_weight.detach().clone()
    _, held = matching_pairs(artifact)
    held_sources = set(held[:, 0].tolist())
    read = {"learnt": [], "anchors": []}
    fit, evidence = matching.fit_evidence_weights, matching.matching_evidence
    monkeypatch.setattr(matching, "fit_evidence_weights",
                        lambda model, problems, **kw: read["learnt"].extend(p[3] for p in problems) or
                        fit(model, problems, **kw))
    monkeypatch.setattr(matching, "matching_evidence",
                        lambda source, target, seeds=None, *a: read["anchors"].append(seeds) or
                        evidence(source, target, seeds, *a))
    ranks = held_out_ranks_as_shipped(loaded, artifact, CPU)
    assert len(ranks.pessimistic) == len(held) > 0
    assert read["learnt"] and read["anchors"]
    for pairs in read["learnt"] + [s for s in read["anchors"] if s is not None]:
        assert not held_sources & set(np.asarray(pairs)[:, 0].tolist())
    assert ranks.metrics()["hits@1"] >= 0.9, ranks.metrics()   # the refit reads the anchors
    assert torch.equal(loaded.model.evidence_weight, own)
    as_loaded = load_model(shipped, CPU)   # other weights of its own: the same refit, the same ranks
    assert not torch.equal(as_loaded.model.evidence_weight, own)
    assert np.array_equal(held_out_ranks_as_shipped(as_loaded, artifact, CPU).pessimistic, ranks.pessimistic)
