"""Multi-task TOFU: task routing, gated experts, entity alignment and entity linking."""
from __future__ import annotations

import csv
import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from click.testing import CliRunner

from artifacts.manifest import with_digest
from artifacts.metrics import RECORD_FIELDS, read_metrics
from artifacts.task_tables import read_alignment_artifact, read_linking_artifact
from pipeline.cli import main
from reasoning_stage import matching
from reasoning_stage.graph_data import whole_graph
from reasoning_stage.config import ModelConfig, TASKS
from reasoning_stage.models import TofuModel
from reasoning_stage.routing import GatedMixtureOfExperts
from reasoning_stage.config import TrainConfig
from reasoning_stage.training import matching_job, model_config_for, train
from tokenizer_stage.tokenize_task import tokenize_task

SMALL = {"dim": 32, "entity_layers": 2, "relation_layers": 2}
CPU = torch.device("cpu")


def _rows(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines() if line]


def relabelled_copy(graph: Path, target: Path, seed: int = 1) -> dict[str, str]:
    """A copy of a canonical KG folder with every entity and relation id renamed (texts and images kept)."""
    entities = [r[0] for r in _rows(graph / "entities.tsv")[1:]]
    relations = [r[0] for r in _rows(graph / "relations.tsv")[1:]]
    shuffled = list(range(len(entities)))
    random.Random(seed).shuffle(shuffled)
    new_entity = {e: f"x{shuffled[i]:04d}" for i, e in enumerate(entities)}
    new_relation = {r: f"rel{i}" for i, r in enumerate(relations)}
    target.mkdir(parents=True)
    for name in ("train.tsv", "valid.tsv", "test.tsv"):
        rows = [(new_entity[h], new_relation[r], new_entity[t]) for h, r, t in _rows(graph / name)]
        (target / name).write_text("".join("\t".join(r) + "\n" for r in rows), encoding="utf-8")
    header, *body = _rows(graph / "entities.tsv")
    (target / "entities.tsv").write_text("\t".join(header) + "\n" + "".join(
        "\t".join([new_entity[r[0]], *r[1:]]) + "\n" for r in body), encoding="utf-8")
    header, *body = _rows(graph / "relations.tsv")
    (target / "relations.tsv").write_text("\t".join(header) + "\n" + "".join(
        "\t".join([new_relation[r[0]], *r[1:]]) + "\n" for r in body), encoding="utf-8")
    images = []
    for entity, file in _rows(graph / "images.tsv"):
        (target / file).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(graph / file, target / file)
        images.append(f"{new_entity[entity]}\t{file}\n")
    (target / "images.tsv").write_text("".join(images), encoding="utf-8")
    (target / "kg.toml").write_text('name = "copy"\n', encoding="utf-8")
    return new_entity


@pytest.fixture(scope="module")
def alignment_folder(tmp_path_factory, example_graph) -> Path:
    folder = tmp_path_factory.mktemp("align") / "self_align"
    folder.mkdir()
    mapping = relabelled_copy(example_graph, folder / "copy")
    pairs = sorted(mapping.items())
    random.Random(0).shuffle(pairs)
    cut = len(pairs) * 4 // 10
    for split, part in (("train", pairs[:cut]), ("test", pairs[cut:])):
        (folder / f"{split}_links.tsv").write_text("".join(f"{a}\t{b}\n" for a, b in part), encoding="utf-8")
    (folder / "task.toml").write_text(
        f'[task]\nkind = "alignment"\nname = "self_align"\ngraph1 = "{example_graph}"\ngraph2 = "copy"\n'
        '[links]\ntrain = "train_links.tsv"\ntest = "test_links.tsv"\n', encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def linking_folder(tmp_path_factory, example_graph) -> Path:
    """A KB of the example graph's entities; each mention is an entity's name in its own description."""
    folder = tmp_path_factory.mktemp("link") / "self_link"
    folder.mkdir()
    entities = _rows(example_graph / "entities.tsv")[1:]
    (folder / "kb.tsv").write_text("".join("\t".join(r) + "\n" for r in entities), encoding="utf-8")
    order = list(range(len(entities)))
    random.Random(0).shuffle(order)
    cut = len(order) // 2
    for split, part in (("train", order[:cut]), ("test", order[cut:])):
        (folder / f"{split}.tsv").write_text("".join(
            f"m{i}\t{entities[i][1]}\t{entities[i][2]}\t{entities[i][0]}\n" for i in part), encoding="utf-8")
    (folder / "task.toml").write_text(
        '[task]\nkind = "linking"\nname = "self_link"\n[kb]\nentities = "kb.tsv"\n'
        '[mentions]\ntrain = "train.tsv"\ntest = "test.tsv"\n', encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def alignment_artifact(tmp_path_factory, alignment_folder, codebooks_dir, fast_config):
    out = tmp_path_factory.mktemp("align_art")
    summary = tokenize_task(alignment_folder, out, codebooks_dir, fast_config)
    assert summary.status == "tokenized"
    return read_alignment_artifact(out / "self_align")


@pytest.fixture(scope="module")
def linking_artifact(tmp_path_factory, linking_folder, codebooks_dir, fast_config):
    out = tmp_path_factory.mktemp("link_art")
    tokenize_task(linking_folder, out, codebooks_dir, fast_config)
    return read_linking_artifact(out / "self_link")


def small_model(tables) -> TofuModel:
    torch.manual_seed(0)
    return TofuModel(model_config_for(tables, ModelConfig(**SMALL)))


# ------------------------------------------------------------------ routing and experts

def test_routing_weights_differ_between_tasks(alignment_artifact):
    model = small_model(alignment_artifact.graphs[0]).eval()
    graph = whole_graph(alignment_artifact.graphs[0])
    with torch.no_grad():
        routes = [model.router(t) for t in range(len(TASKS))]
        features = [model.entity_features(graph, t) for t in range(len(TASKS))]
    for a in range(len(TASKS)):
        for b in range(a + 1, len(TASKS)):
            assert not torch.allclose(routes[a].modality_bias, routes[b].modality_bias)
            assert not torch.allclose(features[a].modality_weights, features[b].modality_weights)
            assert not torch.allclose(features[a].values, features[b].values)
    # Modality weights are a distribution over the modalities an entity has.
    weights = features[0].modality_weights
    assert torch.allclose(weights.sum(1), torch.ones(len(weights)), atol=1e-5)


def test_expert_gate_responds_to_input_and_keeps_top_k():
    torch.manual_seed(0)
    moe = GatedMixtureOfExperts(16, num_experts=4, top_k=2)
    x = torch.randn(50, 16)
    bias = torch.zeros(4)
    out = moe(x, bias)
    assert ((out.weights > 0).sum(1) == 2).all()
    assert torch.allclose(out.weights.sum(1), torch.ones(50), atol=1e-5)
    # Different inputs are sent to different experts; the task's bias moves the choice too.
    assert len({tuple(row) for row in (out.weights > 0).int().tolist()}) > 1
    shifted = moe(x, torch.tensor([5.0, 0.0, 0.0, 0.0]))
    assert (shifted.weights[:, 0] > 0).all() and not torch.allclose(shifted.weights, out.weights)
    assert 1.0 <= out.balance_loss.item() <= 4.0
    # Rows without content stay zero (a missing modality is not turned into a signal).
    assert torch.equal(moe(torch.zeros(3, 16), bias).values, torch.zeros(3, 16))
    with pytest.raises(ValueError):
        GatedMixtureOfExperts(16, num_experts=2, top_k=3)
    # The task loss reaches the gate for every top_k, one expert included.
    for k in (1, 2):
        moe = GatedMixtureOfExperts(16, num_experts=4, top_k=k)
        nn.init.normal_(moe.w2, std=0.1)   # experts that differ from the identity
        moe(x, bias).values.pow(2).sum().backward()
        assert moe.gate.weight.grad.abs().sum() > 1.0, k   # (renormalised, k = 1 gave about 4e-5: rounding)


# ------------------------------------------------------------------ alignment

def test_alignment_with_a_relabelled_copy_reaches_hits1(alignment_artifact, tmp_path):
    model = small_model(alignment_artifact.graphs[0])
    job = matching_job(alignment_artifact, model, CPU, valid_share=0.1)
    source, target = job.source, job.target
    test = alignment_artifact.links["test"]
    before = matching.rank_matches(model, source, target, test, matching.ALIGNMENT).metrics()
    train(model, [], TrainConfig(max_steps=150, eval_every=150, learning_rate=3e-3, match_batch_size=32),
          tmp_path / "ckpt", CPU, jobs=[job])
    after = matching.rank_matches(model, source, target, test, matching.ALIGNMENT).metrics()
    assert after["hits@1"] == 1.0, (before, after)
    assert after["mrr"] >= before["mrr"]


def test_bootstrapped_pseudo_seeds_are_one_to_one_unlinked_and_right_where_names_agree(alignment_artifact,
                                                                                       monkeypatch):
    """Pseudo-seeds come from entities no seed link names, one partner each, and (names agree in a
    relabelled copy) are the gold counterparts; the split's links are never read."""
    model = small_model(alignment_artifact.graphs[0]).eval()
    source, target = matching.alignment_sides(alignment_artifact, model, CPU)
    seeds = alignment_artifact.links["train"]
    passed = []
    real = matching.matching_evidence
    monkeypatch.setattr(matching, "matching_evidence",
                        lambda s, t, links=None, far=True: passed.append(links) or real(s, t, links, far))
    matching.bootstrapped_evidence(model, source, target, matching.ALIGNMENT, seeds, rounds=1)
    assert len(passed) == 2 and np.array_equal(passed[-1][:len(seeds)], seeds)
    pseudo = passed[-1][len(seeds):]
    assert len(pseudo) > 0
    assert not set(pseudo[:, 0]) & set(seeds[:, 0]) and not set(pseudo[:, 1]) & set(seeds[:, 1])
    assert len(set(pseudo[:, 0])) == len(set(pseudo[:, 1])) == len(pseudo)
    gold = dict(alignment_artifact.links["test"].tolist())
    assert np.mean([gold.get(a) == b for a, b in pseudo.tolist()]) >= 0.9


def test_a_single_training_pair_without_valid_split_is_refused(alignment_artifact):
    from dataclasses import replace

    from reasoning_stage.training import TrainingInputError

    model = small_model(alignment_artifact.graphs[0])
    two = replace(alignment_artifact, links={"train": alignment_artifact.links["train"][:2]})
    job = matching_job(two, model, CPU)
    assert len(job.train_pairs) == 1 and len(job.valid_pairs) == 1   # one held out for validation, one to train on
    one = replace(alignment_artifact, links={"train": alignment_artifact.links["train"][:1]})
    with pytest.raises(TrainingInputError, match="one training pair and no 'valid' split"):
        matching_job(one, model, CPU)


def test_alignment_ranks_are_invariant_to_relabelling(alignment_artifact):
    model = small_model(alignment_artifact.graphs[0]).eval()
    source, target = matching.alignment_sides(alignment_artifact, model, CPU)
    test = alignment_artifact.links["test"]
    ranks = matching.rank_matches(model, source, target, test, matching.ALIGNMENT)
    permutation = torch.randperm(target.size, generator=torch.Generator().manual_seed(3))
    moved = matching.relabelled(target, permutation)
    moved_pairs = np.stack([test[:, 0], permutation.numpy()[test[:, 1]]], 1)
    moved_ranks = matching.rank_matches(model, source, moved, moved_pairs, matching.ALIGNMENT)
    assert np.array_equal(ranks.pessimistic, moved_ranks.pessimistic)
    source_perm = torch.randperm(source.size, generator=torch.Generator().manual_seed(4))
    moved_source = matching.relabelled(source, source_perm)
    again = matching.rank_matches(model, moved_source, target,
                                  np.stack([source_perm.numpy()[test[:, 0]], test[:, 1]], 1), matching.ALIGNMENT)
    assert np.array_equal(ranks.pessimistic, again.pessimistic)


def test_alignment_with_names_and_seed_links_is_invariant_to_relabelling(alignment_artifact):
    """The identity evidence too (subword TF-IDF, decoded vectors, anchors through the seed links)."""
    model = small_model(alignment_artifact.graphs[0]).eval()
    source, target = matching.alignment_sides(alignment_artifact, model, CPU)
    seeds, test = alignment_artifact.links["train"], alignment_artifact.links["test"]
    evidence = matching.matching_evidence(source, target, seeds)
    assert evidence.anchors is not None and evidence.lexical and evidence.dense
    ranks = matching.rank_matches(model, source, target, test, matching.ALIGNMENT, evidence=evidence)
    permutation = torch.randperm(target.size, generator=torch.Generator().manual_seed(3))
    moved = matching.relabelled(target, permutation)
    moved_seeds = np.stack([seeds[:, 0], permutation.numpy()[seeds[:, 1]]], 1)
    moved_evidence = matching.matching_evidence(source, moved, moved_seeds)
    moved_ranks = matching.rank_matches(model, source, moved, np.stack([test[:, 0], permutation.numpy()[test[:, 1]]], 1),
                                        matching.ALIGNMENT, evidence=moved_evidence)
    assert np.array_equal(ranks.pessimistic, moved_ranks.pessimistic)
    assert ranks.metrics()["hits@1"] > 0.5   # the evidence finds the counterparts: a test that can fail


def test_test_counterpart_protocol_and_assignment(alignment_artifact):
    model = small_model(alignment_artifact.graphs[0]).eval()
    source, target = matching.alignment_sides(alignment_artifact, model, CPU)
    seeds, test = alignment_artifact.links["train"], alignment_artifact.links["test"]
    evidence = matching.matching_evidence(source, target, seeds)
    counterparts = np.unique(test[:, 1])
    every = matching.rank_matches(model, source, target, test, matching.ALIGNMENT, evidence=evidence)
    among = matching.rank_matches(model, source, target, test, matching.ALIGNMENT, evidence=evidence,
                                  candidates=counterparts)
    assigned = matching.rank_matches(model, source, target, test, matching.ALIGNMENT, evidence=evidence,
                                     candidates=counterparts, assignment=True)
    assert among.pessimistic.max() <= len(counterparts) < target.size
    assert (among.pessimistic <= every.pessimistic).all()      # fewer candidates never rank the answer lower
    assert assigned.pessimistic.max() <= len(counterparts)
    assert assigned.metrics()["hits@1"] >= among.metrics()["hits@1"] - 1e-9


# ------------------------------------------------------------------ linking

def _text_bags(owners: np.ndarray, codes: np.ndarray, counts: np.ndarray) -> dict[int, tuple]:
    bags: dict[int, list] = {}
    for o, c, n in zip(owners.tolist(), codes.tolist(), counts.tolist()):
        bags.setdefault(o, []).append((c, n))
    return {o: tuple(sorted(b)) for o, b in bags.items()}


def test_linking_finds_an_entity_from_its_own_description(linking_artifact, tmp_path):
    model = small_model(linking_artifact.kb)
    job = matching_job(linking_artifact, model, CPU)
    index, gold = linking_artifact.split("test")
    test = np.stack([index, gold], 1)
    zero_shot = matching.rank_matches(model, job.source, job.target, test, matching.LINKING)
    train(model, [], TrainConfig(max_steps=100, eval_every=100, learning_rate=3e-3, match_batch_size=32),
          tmp_path / "ckpt", CPU, jobs=[job])
    trained = matching.rank_matches(model, job.source, job.target, test, matching.LINKING)
    # A KB of texts only cannot tell apart entities whose text tokens are identical (ties count
    # against the answer); every other entity must come first from its own name and description.
    bags = _text_bags(*linking_artifact.kb.tokens("entity", "text"))
    clashes = {bag: sum(1 for b in bags.values() if b == bag) for bag in bags.values()}
    distinct = np.array([clashes[bags[g]] == 1 for g in gold.tolist()])
    assert distinct.mean() > 0.8
    assert (trained.pessimistic[distinct] == 1).all(), trained.pessimistic
    assert (zero_shot.pessimistic[distinct] <= 10).mean() > 0.5     # chance would be 10 / |KB|
    assert (trained.pessimistic[~distinct] <= 1 + (~distinct).sum()).all()


def test_linking_ranks_are_invariant_to_relabelling(linking_artifact):
    model = small_model(linking_artifact.kb).eval()
    mentions, kb = matching.linking_sides(linking_artifact, model, CPU)
    index, gold = linking_artifact.split("test")
    ranks = matching.rank_matches(model, mentions, kb, np.stack([index, gold], 1), matching.LINKING)
    permutation = torch.randperm(kb.size, generator=torch.Generator().manual_seed(5))
    moved = matching.rank_matches(model, mentions, matching.relabelled(kb, permutation),
                                  np.stack([index, permutation.numpy()[gold]], 1), matching.LINKING)
    assert np.array_equal(ranks.pessimistic, moved.pessimistic)


def test_mentions_share_the_entities_code_space(linking_artifact):
    """Mentions are quantized with the KB's frozen codebooks: a mention written exactly like its
    entity's text gets exactly that entity's text tokens."""
    owners, codes, _ = linking_artifact.kb.tokens("entity", "text")
    entity_codes = {o: set() for o in owners.tolist()}
    for o, c in zip(owners.tolist(), codes.tolist()):
        entity_codes[o].add(c)
    m_owners, m_codes, _ = linking_artifact.tokens("text")
    mention_codes = {o: set() for o in m_owners.tolist()}
    for o, c in zip(m_owners.tolist(), m_codes.tolist()):
        mention_codes[o].add(c)
    index, gold = linking_artifact.split("test")
    assert all(mention_codes[i] == entity_codes[g] for i, g in zip(index.tolist(), gold.tolist()))


def test_unreadable_mention_images_are_named_and_counted(linking_folder, codebooks_dir, fast_config, tmp_path):
    """A mention image that cannot be read is skipped, named in a warning and the manifest, and counted in
    the task's summary with the mention images used, as a graph's images are, also when the run is skipped."""
    from PIL import Image

    folder = tmp_path / "pictured"
    shutil.copytree(linking_folder, folder)
    (folder / "pics").mkdir()
    Image.new("RGB", (32, 32), (200, 30, 30)).save(folder / "pics" / "good.png")
    (folder / "pics" / "bad.png").write_bytes(b"not a png")
    rows = (folder / "test.tsv").read_text(encoding="utf-8").splitlines()
    rows[0] += "\tpics/good.png"
    rows[1] += "\tpics/bad.png"
    (folder / "test.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    with pytest.warns(UserWarning, match="self_link: 1 unreadable mention image\\(s\\) skipped: .*bad.png"):
        summary = tokenize_task(folder, tmp_path / "out", codebooks_dir, fast_config)
    assert (summary.images_used, summary.images_failed) == (1, 1)
    artifact = read_linking_artifact(tmp_path / "out" / "self_link")
    mention_image_tokens = len(artifact.tokens("image")[0])
    assert mention_image_tokens > 0
    assert summary.tokens["image"] == mention_image_tokens   # the KB here has no images
    assert any("bad.png" in note for note in artifact.manifest["warnings"])
    again = tokenize_task(folder, tmp_path / "out", codebooks_dir, fast_config)
    assert again.status == "skipped"
    assert (again.images_used, again.images_failed, again.tokens) == (1, 1, summary.tokens)


# ------------------------------------------------------------------ commands

def test_cli_tokenize_train_reason_tasks(alignment_folder, linking_folder, example_graph, codebooks_dir, tmp_path):
    runner = CliRunner()
    out = tmp_path / "art"
    result = runner.invoke(main, ["tokenize", str(alignment_folder), str(linking_folder), str(example_graph),
                                  "--out", str(out),
                                  "--codebooks", str(codebooks_dir), "--text-codebook-size", "64",
                                  "--image-codebook-size", "32", "--structure-codebook-size", "16",
                                  "--tokens-per-entity", "6", "--workers", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    assert (out / "self_align" / "links.parquet").is_file() and (out / "self_link" / "mentions.parquet").is_file()
    first = {g["name"]: g for g in json.loads((out / "last_tokenize_run.json").read_text())["graphs"]}
    result = runner.invoke(main, ["tokenize", str(alignment_folder), str(linking_folder), "--out", str(out),
                                  "--codebooks", str(codebooks_dir), "--tokens-per-entity", "6", "--workers", "1",
                                  "--quiet"])
    assert result.exit_code == 0, result.output
    again = {g["name"]: g for g in json.loads((out / "last_tokenize_run.json").read_text())["graphs"]}
    for name in ("self_align", "self_link"):   # a skipped task reports its graphs' counts, as tokenized
        assert again[name]["status"] == "skipped" and first[name]["status"] == "tokenized"
        assert again[name]["entities"] == first[name]["entities"] > 0
        assert again[name]["tokens"] == first[name]["tokens"]
    ckpt = tmp_path / "ckpt"
    result = runner.invoke(main, ["train", str(out / "self_align"), str(out / "self_link"), "--out", str(ckpt),
                                  "--max-steps", "6", "--eval-every", "6", "--dim", "16", "--layers", "1",
                                  "--relation-layers", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "alignment:self_align" in result.output and "linking:self_link" in result.output
    # Runs of other seeds hold out the same mentions: from the same weights (--lr 0), the same validation MRR.
    figures = []
    for seed in ("0", "1", "2"):
        run = tmp_path / f"seed{seed}"
        result = runner.invoke(main, ["train", str(out / "self_link"), "--init", str(ckpt), "--out", str(run),
                                      "--max-steps", "1", "--eval-every", "1", "--lr", "0", "--seed", seed, "--quiet"])
        assert result.exit_code == 0, result.output
        figures.append(json.loads(Path(f"{run}.log.jsonl").read_text().splitlines()[-1])["valid_mrr/linking:self_link"])
    assert figures[0] == figures[1] == figures[2], figures  # drawn with each --seed: 0.83, 1.0, 0.83
    result = runner.invoke(main, ["reason", "--task", "align", str(out / "self_align"), "--checkpoint", str(ckpt),
                                  "--output", str(tmp_path / "res"), "--predict-top-k", "--top-k", "3"])
    assert result.exit_code == 0, result.output
    predictions = _rows(tmp_path / "res" / "predictions_self_align_test.tsv")
    assert predictions[0] == ["source", "rank", "candidate", "candidate_name", "score"]
    assert len(predictions) - 1 == 3 * len(_rows(alignment_folder / "test_links.tsv"))
    metrics = _rows(tmp_path / "res" / "metrics.csv")
    assert metrics[0][0] == "graph,split,task,queries,mrr,mrr_low,mrr_high,hits@1,hits@3,hits@10,tie_gap_mrr,seconds,routing,candidates,assignment,bootstrap,fit_on_seeds"
    for folder, extra in (("res2", ["--no-routing"]), ("res2_routed", [])):
        result = runner.invoke(main, ["reason", "--task", "link", str(out / "self_link"), "--checkpoint", str(ckpt),
                                      "--output", str(tmp_path / folder), "--predict-top-k", "--top-k", "2", *extra])
        assert result.exit_code == 0, result.output
    # The ablation embeds mentions and KB with the link-prediction route: other scores, said in metrics.csv.
    for folder, routing in (("res2", "False"), ("res2_routed", "True")):
        with open(tmp_path / folder / "metrics.csv", encoding="utf-8") as handle:
            assert [row["routing"] for row in csv.DictReader(handle)] == [routing]
    scores = [[r[4] for r in _rows(tmp_path / f / "predictions_self_link_test.tsv")[1:]] for f in ("res2", "res2_routed")]
    assert scores[0] != scores[1]
    # Link prediction on a root that holds tasks beside a graph: the graph is evaluated, the tasks are named.
    result = runner.invoke(main, ["reason", str(out), "--checkpoint", str(ckpt), "--output", str(tmp_path / "res3")])
    assert result.exit_code == 0, result.output
    assert f"skipped {out / 'self_align'}: an alignment task artifact; evaluate it with --task align" in result.output
    assert [r[0].split(",")[0] for r in _rows(tmp_path / "res3" / "metrics.csv")[1:]] == ["example"]
    # One metrics schema for link prediction and the matching tasks.
    graph_metrics, task_metrics = read_metrics(tmp_path / "res3"), read_metrics(tmp_path / "res")
    assert graph_metrics.keys() == task_metrics.keys()
    assert (graph_metrics["task"], task_metrics["task"]) == ("link_prediction", "alignment")
    for body in (graph_metrics, task_metrics):
        assert all(set(RECORD_FIELDS) <= record.keys() and record["task"] == body["task"] for record in body["records"])
    shutil.copytree(out / "self_align", tmp_path / "tasks_only" / "self_align")
    for args, message in [([str(out / "self_link")], "a linking task artifact; evaluate it with --task link"),
                          ([str(tmp_path / "tasks_only")],
                           "(the task artifacts skipped above are evaluated with --task align or --task link)"),
                          (["--task", "align", str(out / "self_align"), str(out / "self_align")],
                           "two artifacts named 'self_align'"),
                          (["--task", "align", str(out / "self_align"), "--finetune-epochs", "1"],
                           "--graph-embedding and --plot apply to link prediction")]:
        result = runner.invoke(main, ["reason", *args, "--checkpoint", str(ckpt), "--output", str(tmp_path / "r4")])
        assert result.exit_code != 0 and message in result.output, (args, result.output)
        assert not (tmp_path / "r4").exists()
    # Codebooks that differ are refused before any task is built or any output is written.
    shutil.copytree(ckpt, tmp_path / "ckpt_other")
    manifest = json.loads((tmp_path / "ckpt_other" / "manifest.json").read_text())
    # (written with its digest: a checkpoint made with other codebooks, not a damaged one)
    other = with_digest({**manifest, "codebook_id": "other"})
    (tmp_path / "ckpt_other" / "manifest.json").write_text(json.dumps(other))
    result = runner.invoke(main, ["reason", "--task", "align", str(out / "self_align"), "--checkpoint",
                                  str(tmp_path / "ckpt_other"), "--output", str(tmp_path / "r5"), "--predict-top-k"])
    assert result.exit_code == 1 and "tokenized with codebooks" in result.output, result.output
    assert not (tmp_path / "r5").exists()
    shutil.copytree(out / "example", tmp_path / "elsewhere" / "example")
    manifest = json.loads((tmp_path / "elsewhere" / "example" / "manifest.json").read_text())
    manifest["codebooks"]["id"] = "other"
    (tmp_path / "elsewhere" / "example" / "manifest.json").write_text(json.dumps(with_digest(manifest)))
    result = runner.invoke(main, ["train", str(out / "self_align"), str(tmp_path / "elsewhere" / "example"),
                                  "--out", str(tmp_path / "mixed"), "--max-steps", "1", "--quiet"])
    assert result.exit_code == 1 and "tokenized with codebooks" in result.output and "other" in result.output, \
        result.output
    assert not (tmp_path / "mixed").exists()
    # A task artifact given to the wrong task, and a missing link file, are clear errors.
    result = runner.invoke(main, ["reason", "--task", "link", str(out / "self_align"), "--checkpoint", str(ckpt)])
    assert result.exit_code != 0 and "linking task artifacts" in result.output
    (alignment_folder / "test_links.tsv").rename(alignment_folder / "moved.tsv")
    try:
        result = runner.invoke(main, ["tokenize", str(alignment_folder), "--out", str(tmp_path / "bad"),
                                      "--codebooks", str(codebooks_dir), "--workers", "1", "--quiet"])
    finally:
        (alignment_folder / "moved.tsv").rename(alignment_folder / "test_links.tsv")
    assert result.exit_code == 1 and "test_links.tsv" in result.output
    assert not (tmp_path / "bad" / "self_align").exists()
