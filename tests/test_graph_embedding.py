"""A graph's own embedding beside the reasoner (``tofu reason --embedding-minutes``): it learns the
graph's facts, adds to the reasoner's scores by artifact id, takes its weight from validation, and its
files belong to the token tables it was fitted on."""
from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from artifacts.checkpoint import save_checkpoint
from artifacts.errors import ArtifactError
from artifacts.graph_embedding import load_graph_embedding, save_graph_embedding
from artifacts.manifest import DIGEST_KEY
from artifacts.token_tables import read_token_tables
from pipeline.cli import main
from reasoning_stage.config import ModelConfig
from reasoning_stage.evaluation import evaluate_graph
from reasoning_stage.graph_data import GraphTensors, graph_tensors
from reasoning_stage.graph_embedding import (WEIGHT_GRID, GraphEmbedding, GraphEmbeddingConfig, WithGraphEmbedding,
                                             fit_graph_embedding, weight_on_validation)
from reasoning_stage.models import TofuModel
from reasoning_stage.reasoning import load_model
from reasoning_stage.training import model_config_for
from tokenizer_stage.tokenize import tokenize_graph

SMALL = dict(dim=16, entity_layers=2, relation_layers=2)


def _graph(num_entities: int = 40) -> GraphTensors:
    """Two functional relations over a ring of entities (each head has one tail per relation), with inverses."""
    heads = torch.arange(num_entities)
    tails = torch.cat([(heads + 1) % num_entities, (heads * 7 + 3) % num_entities])
    heads, relations = torch.cat([heads, heads]), torch.repeat_interleave(torch.tensor([0, 1]), num_entities)
    edge_index = torch.stack([torch.cat([heads, tails]), torch.cat([tails, heads])])
    return GraphTensors("ring", num_entities, 2, edge_index, torch.cat([relations, relations + 2]))


def _rank_of_answers(embedding: GraphEmbedding, graph: GraphTensors) -> torch.Tensor:
    with torch.no_grad():
        scores = embedding(graph.edge_index[0], graph.edge_type)
    answer = scores.gather(1, graph.edge_index[1].unsqueeze(1))
    return 1 + (scores > answer).sum(1)


def test_the_embedding_learns_the_graph_it_is_fitted_on():
    graph = _graph()
    fitted, run = fit_graph_embedding(graph, graph.num_entities,
                                      GraphEmbeddingConfig(minutes=10.0, max_epochs=150, rank=16, batch_size=40))
    assert run["epochs"] == 150 and run["steps"] == 150 * 4   # 160 directed edges, batches of 40
    assert not any(p.requires_grad for p in fitted.parameters())
    untrained = GraphEmbedding(graph.num_entities, 4, 16)
    untrained.reset_parameters(1e-3, torch.Generator().manual_seed(0))
    learned, chance = _rank_of_answers(fitted, graph), _rank_of_answers(untrained, graph)
    # Each query has one answer among 40: the fitted model puts nearly every answer first.
    assert (learned == 1).float().mean() > 0.9, learned.tolist()
    assert (chance == 1).float().mean() < 0.2


def test_a_fit_is_seeded_and_refuses_an_empty_graph_or_a_bad_setting():
    graph = _graph(12)
    config = GraphEmbeddingConfig(minutes=10.0, max_epochs=3, rank=4, batch_size=8)
    first, _ = fit_graph_embedding(graph, 12, config)
    second, _ = fit_graph_embedding(graph, 12, config)
    assert torch.equal(first.entity, second.entity) and torch.equal(first.relation, second.relation)
    empty = GraphTensors("empty", 3, 1, torch.zeros(2, 0, dtype=torch.long), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="no triples"):
        fit_graph_embedding(empty, 3, config)
    for bad in (dict(minutes=0), dict(minutes=float("nan")), dict(rank=0), dict(max_epochs=0),
                dict(learning_rate=-1.0), dict(batch_size=True)):
        with pytest.raises(ValueError):
            GraphEmbeddingConfig(**bad)


class _Constant(torch.nn.Module):
    """A stand-in reasoner: the same score for every candidate."""
    config = ModelConfig(dim=4, modalities=())

    def forward(self, graph, queries, task=0, **precomputed):
        return torch.zeros(len(queries), graph.num_entities)


def test_combined_scores_add_the_embedding_by_artifact_id():
    graph = _graph(10)
    embedding = GraphEmbedding(10, 4, 3)
    embedding.reset_parameters(1.0, torch.Generator().manual_seed(1))
    # The inference graph holds artifact entities 9, 7, 5, 3, 1 as its nodes 0..4.
    ids = torch.tensor([9, 7, 5, 3, 1])
    sub = GraphTensors("sub", 5, 2, torch.zeros(2, 0, dtype=torch.long), torch.zeros(0, dtype=torch.long),
                       entity_ids=ids)
    queries = torch.tensor([[0, 1], [3, 2]])
    with torch.no_grad():
        expected = torch.stack([embedding(torch.tensor([9]), torch.tensor([1]))[0, ids],
                                embedding(torch.tensor([3]), torch.tensor([2]))[0, ids]])
        assert torch.allclose(WithGraphEmbedding(_Constant(), embedding, 2.5)(sub, queries), 2.5 * expected)
        assert torch.equal(WithGraphEmbedding(_Constant(), embedding, 0.0)(sub, queries), torch.zeros(2, 5))


@pytest.fixture(scope="module")
def tables(tmp_path_factory, example_graph, codebooks_dir, fast_config):
    out = tmp_path_factory.mktemp("tables")
    tokenize_graph(example_graph, out, codebooks_dir, fast_config)
    return read_token_tables(out / example_graph.name)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tables) -> Path:
    torch.manual_seed(0)
    model = TofuModel(model_config_for(tables, ModelConfig(**SMALL)))
    folder = tmp_path_factory.mktemp("ckpt") / "ckpt"
    save_checkpoint(folder, model.state_dict(), model.config.to_json(), tables.codebook_id, {"step": 0, "history": []})
    return folder


@pytest.fixture(scope="module")
def fitted(tables) -> GraphEmbedding:
    """An embedding fitted on the example graph's train and valid triples: it knows the valid answers."""
    graph = graph_tensors(tables, "train")
    valid = torch.as_tensor(tables.queries("valid"))
    heads, relations, tails = valid[:, 0], valid[:, 1], valid[:, 2]
    with_valid = GraphTensors(graph.name, tables.num_entities, tables.num_relations,
                              torch.cat([graph.edge_index, torch.stack([torch.cat([heads, tails]),
                                                                        torch.cat([tails, heads])])], 1),
                              torch.cat([graph.edge_type, relations, relations + tables.num_relations]))
    embedding, _ = fit_graph_embedding(with_valid, tables.num_entities,
                                       GraphEmbeddingConfig(minutes=10.0, max_epochs=100, rank=16, batch_size=64))
    return embedding


def test_validation_chooses_a_weight_that_helps_and_zero_where_none_does(tables, checkpoint, fitted):
    reasoner = load_model(checkpoint, torch.device("cpu")).model
    weight, mrr = weight_on_validation(reasoner, fitted, tables, "valid", torch.device("cpu"))
    assert set(mrr) == set(WEIGHT_GRID)
    # Zero is the reasoner alone, as evaluation ranks it.
    assert mrr[0.0] == pytest.approx(evaluate_graph(reasoner, tables, ["valid"], torch.device("cpu")).metrics()["mrr"])
    assert weight > 0 and mrr[weight] == max(mrr.values()) and mrr[weight] > mrr[0.0] + 0.2
    # An embedding that scores every candidate alike cannot help: the reasoner stays alone.
    flat = GraphEmbedding(tables.num_entities, 2 * tables.num_relations, 4)
    weight, mrr = weight_on_validation(reasoner, flat, tables, "valid", torch.device("cpu"))
    assert weight == 0.0 and len(set(mrr.values())) == 1


def test_an_embedding_is_refused_for_other_token_tables(tables, fitted, tmp_path):
    folder = tmp_path / "embedding"
    save_graph_embedding(folder, dict(fitted.named_parameters()), tables, 0.5, {"rank": 16}, {"epochs": 100})
    manifest, tensors = load_graph_embedding(folder, tables)
    assert manifest["weight"] == 0.5 and torch.equal(tensors["entity"], fitted.entity)
    # The same graph tokenized again (another manifest) is other tables: its ids may mean other entities.
    again = replace(tables, manifest={**tables.manifest, DIGEST_KEY: "0" * 64})
    with pytest.raises(ArtifactError, match="tokenized again since"):
        load_graph_embedding(folder, again)
    with pytest.raises(ValueError, match="holds the tensors"):
        save_graph_embedding(tmp_path / "bad", {"entity": fitted.entity}, tables, 1.0, {}, {})
    assert not (tmp_path / "bad").exists()


def test_reason_fits_an_embedding_keeps_it_and_says_its_weight(tables, checkpoint, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["reason", str(tables.folder), "--checkpoint", str(checkpoint), "--quiet",
                                       "--embedding-minutes", "0.02", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "graph embedding" in result.output and "chosen on valid" in result.output
    manifest, tensors = load_graph_embedding(out / f"graph_embedding_{tables.name}", tables)
    assert manifest["run"]["chosen_on"] == "valid" and manifest["weight"] in WEIGHT_GRID
    assert tensors["entity"].shape == (tables.num_entities, 2 * manifest["settings"]["rank"])
    # The kept embedding, given back, ranks as the run that fitted it did.
    kept = out / f"graph_embedding_{tables.name}"
    again = CliRunner().invoke(main, ["reason", str(tables.folder), "--checkpoint", str(checkpoint), "--quiet",
                                      "--graph-embedding", str(kept), "--output", str(tmp_path / "again")])
    assert again.exit_code == 0, again.output
    assert f"at weight {manifest['weight']:g}" in again.output
    first, second = (json.loads((folder / "metrics.json").read_text())["records"][0]
                     for folder in (out, tmp_path / "again"))
    assert second["mrr"] == pytest.approx(first["mrr"]) and second["queries"] == first["queries"]
    for extra, expected in ((["--embedding-minutes", "1"], "without --embedding-minutes"),
                            (["--task", "align"], "apply to link prediction")):
        refused = CliRunner().invoke(main, ["reason", str(tables.folder), "--checkpoint", str(checkpoint),
                                            "--graph-embedding", str(kept), *extra, "--output", str(tmp_path / "r")])
        assert refused.exit_code == 2 and expected in refused.output, refused.output
    damaged = tmp_path / "damaged"
    shutil.copytree(kept, damaged)
    (damaged / "embedding.safetensors").write_bytes(b"not weights")
    refused = CliRunner().invoke(main, ["reason", str(tables.folder), "--checkpoint", str(checkpoint),
                                        "--graph-embedding", str(damaged), "--output", str(tmp_path / "r")])
    assert refused.exit_code == 1 and "embedding.safetensors" in refused.output and "Traceback" not in refused.output
    assert not (tmp_path / "r").exists()
    # Evaluating the valid split itself leaves nothing to choose on: the weight is the fixed one.
    on_valid = CliRunner().invoke(main, ["reason", str(tables.folder), "--checkpoint", str(checkpoint), "--quiet",
                                         "--embedding-minutes", "0.02", "--split", "valid", "--output",
                                         str(tmp_path / "v")])
    assert on_valid.exit_code == 0 and "weight 1 (no valid split" in on_valid.output, on_valid.output
    refused = CliRunner().invoke(main, ["reason", str(tables.folder), "--checkpoint", str(checkpoint),
                                        "--task", "align", "--embedding-minutes", "1", "--output", str(tmp_path / "a")])
    assert refused.exit_code == 2 and "--embedding-minutes" in refused.output
    assert not (tmp_path / "a").exists()
