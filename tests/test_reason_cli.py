"""The ``tofu reason`` / ``train`` command lines: queries, marked predictions, help, the results chart,
and checkpoint files that cannot be read."""
from __future__ import annotations

import builtins
import json
import os
import pickle
import shutil
from pathlib import Path

import click
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from artifacts.checkpoint import save_checkpoint
from artifacts.manifest import write_manifest
from artifacts.token_tables import read_token_tables
from pipeline.cli import main
from pipeline.plots import VALUES_KEY, chart_size
from reasoning_stage.config import ModelConfig
from reasoning_stage.models import TofuModel
from reasoning_stage.training import model_config_for
from tokenizer_stage.tokenize import tokenize_graph

SMALL = dict(dim=16, entity_layers=2, relation_layers=2)
MOVED_TO_TEST = {"born_in": 4, "likes_colour": 3, "friend_of": 2}   # test queries beside citizen_of


@pytest.fixture(scope="module")
def graph(tmp_path_factory, example_graph) -> Path:
    """The example graph with a few triples of three more relations moved from train to test."""
    folder = tmp_path_factory.mktemp("graphs") / "several"
    shutil.copytree(example_graph, folder)
    moved, kept, left = [], [], dict(MOVED_TO_TEST)
    for line in (folder / "train.tsv").read_text().splitlines():
        relation = line.split("\t")[1]
        if left.get(relation):
            left[relation] -= 1
            moved.append(line)
        else:
            kept.append(line)
    (folder / "train.tsv").write_text("\n".join(kept) + "\n")
    with open(folder / "test.tsv", "a") as handle:
        handle.write("\n".join(moved) + "\n")
    (folder / "kg.toml").write_text('name = "several"\n')
    return folder


@pytest.fixture(scope="module")
def tables(tmp_path_factory, graph, codebooks_dir, fast_config):
    out = tmp_path_factory.mktemp("tables")
    tokenize_graph(graph, out, codebooks_dir, fast_config)
    return read_token_tables(out / "several")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tables) -> Path:
    """An untrained small model with optimizer state, for --resume too."""
    torch.manual_seed(0)
    model = TofuModel(model_config_for(tables, ModelConfig(**SMALL)))
    folder = tmp_path_factory.mktemp("ckpt") / "ckpt"
    optimizer = torch.optim.AdamW(model.parameters())
    save_checkpoint(folder, model.state_dict(), model.config.to_json(), tables.codebook_id,
                    {"step": 0, "history": []}, optimizer.state_dict())
    return folder


def _reason(tables, checkpoint, *args: str, stdin: str | None = None):
    return CliRunner().invoke(main, ["reason", "--checkpoint", str(checkpoint), str(tables.folder), "--quiet",
                                     *args], input=stdin)


def _rows(path: Path) -> list[dict[str, str]]:
    header, *lines = path.read_text().splitlines()
    return [dict(zip(header.split("\t"), line.split("\t"))) for line in lines]


def _facts(graph: Path) -> dict[tuple[str, str, str], list[str]]:
    """(head, relation, tail) labels -> the files holding it, read from the graph folder itself."""
    sets: dict[tuple[str, str, str], list[str]] = {}
    for split in ("test", "train", "valid"):
        for line in (graph / f"{split}.tsv").read_text().splitlines():
            sets.setdefault(tuple(line.split("\t")), []).append(split)
    return sets


def test_queries_from_standard_input_and_the_command_line(tables, checkpoint, tmp_path):
    queries = tmp_path / "q.tsv"
    queries.write_text("person:003\tcitizen_of\t?\n?\tcity_in\tcountry:japan\n")
    from_file = _reason(tables, checkpoint, "--predict", str(queries), "--top-k", "3", "--output", str(tmp_path / "f"))
    assert from_file.exit_code == 0, from_file.output
    # Named by graph and split, so a run on another graph or split does not overwrite it.
    written = (tmp_path / "f" / "predictions_several_test.tsv").read_text()
    assert "2 queries, top 3 answers each" in from_file.output
    piped = _reason(tables, checkpoint, "--predict", "-", "--top-k", "3", "--output", str(tmp_path / "s"),
                    stdin=queries.read_text())
    assert piped.exit_code == 0, piped.output
    assert (tmp_path / "s" / "predictions_several_test.tsv").read_text() == written
    asked = _reason(tables, checkpoint, "--query", "person:003\tcitizen_of\t?", "--query", "? city_in country:japan",
                    "--top-k", "3", "--output", str(tmp_path / "q"))
    assert asked.exit_code == 0, asked.output
    assert (tmp_path / "q" / "predictions_several_test.tsv").read_text() == written
    one = _reason(tables, checkpoint, "--query", "person:003 citizen_of ?", "--top-k", "1", "--output",
                  str(tmp_path / "one"))
    assert "1 query, top 1 answer each" in one.output
    # Mistakes are one line naming where they are.
    for args, stdin, expected in [
        (["--query", "person:003 citizen_of"], None, "Error: --query 'person:003 citizen_of' (split at spaces into 2 "
                                                     "fields: a label with a space needs tabs between the fields): "
                                                     "expected head<TAB>"),
        (["--query", "person:003\tcitizen_of"], None, "Error: --query 'person:003\\tcitizen_of': expected head<TAB>"),
        (["--query", "nobody citizen_of ?"], None, "Error: --query 'nobody citizen_of ?': entity 'nobody' is not in"),
        (["--predict", "-"], "person:003\tcitizen_of\t?\n\tcitizen_of\tx\n", "Error: <stdin>:2: exactly one of"),
        (["--predict", "-"], "\n", "Error: <stdin>: no queries"),
    ]:
        result = _reason(tables, checkpoint, *args, "--output", str(tmp_path / "bad"), stdin=stdin)
        assert result.exit_code == 1 and expected in result.output, (args, result.output)
        assert "Traceback" not in result.output
    assert not (tmp_path / "bad").exists()
    both = _reason(tables, checkpoint, "--predict", str(queries), "--query", "person:003 citizen_of ?")
    assert both.exit_code == 2 and "not both" in both.output


def test_predictions_mark_known_answers_or_leave_them_out(tables, checkpoint, graph, tmp_path):
    facts = _facts(graph)
    # A training fact and a held-out one, asked from both sides; every entity is ranked.
    train_fact = next(f for f, where in facts.items() if f[1] == "born_in" and where == ["train"])
    test_fact = next(f for f, where in facts.items() if f[1] == "citizen_of" and where == ["test"])
    queries = tmp_path / "q.tsv"
    queries.write_text(f"{train_fact[0]}\tborn_in\t?\n?\tborn_in\t{train_fact[2]}\n{test_fact[0]}\tcitizen_of\t?\n")
    result = _reason(tables, checkpoint, "--predict", str(queries), "--top-k", "1000",
                     "--output", str(tmp_path / "all"))
    assert result.exit_code == 0, result.output
    entities = tables.num_entities
    assert f"3 queries, top {entities} answers each (the graph has {entities} candidates)" in result.output
    rows = _rows(tmp_path / "all" / "predictions_several_test.tsv")
    assert len(rows) == 3 * entities
    for row in rows:
        fact = (row["answer"] if row["query_head"] == "?" else row["query_head"], row["relation"],
                row["answer"] if row["query_tail"] == "?" else row["query_tail"])
        assert row["known"] == ",".join(facts.get(fact, [])), row
    assert {(r["query_head"], r["answer"], r["known"]) for r in rows} >= {
        (train_fact[0], train_fact[2], "train"), ("?", train_fact[0], "train"), (test_fact[0], test_fact[2], "test")}
    assert "[known: train]" in result.output
    # Left out: the remaining answers keep their order and are ranked 1, 2, ...
    result = _reason(tables, checkpoint, "--predict", str(queries), "--top-k", "1000", "--exclude-known",
                     "--output", str(tmp_path / "new"))
    assert result.exit_code == 0, result.output
    assert "known answers left out" in result.output
    new = _rows(tmp_path / "new" / "predictions_several_test.tsv")
    assert all(row["known"] == "" for row in new)
    for query in {(r["query_head"], r["query_tail"]) for r in rows}:
        kept = [r for r in rows if (r["query_head"], r["query_tail"]) == query and not r["known"]]
        left = [r for r in new if (r["query_head"], r["query_tail"]) == query]
        assert [r["answer"] for r in left] == [r["answer"] for r in kept]
        assert [int(r["rank"]) for r in left] == list(range(1, len(left) + 1))
    assert len(new) < len(rows)
    result = _reason(tables, checkpoint, "--exclude-known", "--output", str(tmp_path / "eval"))
    assert result.exit_code == 2 and "--exclude-known applies to --predict and --query" in result.output


def test_every_option_says_what_it_does_and_command_summaries_are_whole():
    for name, command in main.commands.items():
        silent = [p.opts[0] for p in command.params if isinstance(p, click.Option) and not p.help]
        assert not silent, (name, silent)
    overview = CliRunner().invoke(main, ["--help"], terminal_width=80).output
    listed = overview.split("Commands:")[1]
    assert "..." not in listed
    for name, command in main.commands.items():
        assert f"{name} " in listed and command.get_short_help_str(limit=1000) in " ".join(listed.split())


def test_plot_shows_mrr_per_relation_and_ranks_as_the_metrics_say(tables, checkpoint, tmp_path):
    plot = tmp_path / "chart.png"
    result = _reason(tables, checkpoint, "--output", str(tmp_path / "res"), "--plot", str(plot))
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "res" / "metrics.json").read_text())["records"][0]
    per_relation = record["per_relation"]
    assert sorted(per_relation) == sorted(["citizen_of", *MOVED_TO_TEST])
    with Image.open(plot) as image:
        image.load()
        assert image.format == "PNG" and image.size == chart_size(len(per_relation))
        plotted = json.loads(image.text[VALUES_KEY])
    assert plotted["per_relation"] == per_relation
    # Per relation and direction, the figures add up to the graph's own.
    queries = sum(r["queries"] for r in per_relation.values())
    assert queries == record["queries"] == 2 * len(tables.queries("test"))
    assert sum(r["mrr"] * r["queries"] for r in per_relation.values()) / queries == pytest.approx(record["mrr"])
    for r in per_relation.values():
        assert r["tail_queries"] + r["head_queries"] == r["queries"]
        assert r["tail_mrr"] * r["tail_queries"] + r["head_mrr"] * r["head_queries"] == \
            pytest.approx(r["mrr"] * r["queries"])
    counts = plotted["rank_counts"]
    assert sum(counts["tail"].values()) == sum(counts["head"].values()) == queries // 2
    assert (counts["tail"]["1"] + counts["head"]["1"]) / queries == pytest.approx(record["hits@1"])
    assert sum(counts[d][b] for d in counts for b in ("1", "2-3", "4-10")) / queries == \
        pytest.approx(record["hits@10"])
    assert "per_relation" not in (tmp_path / "res" / "metrics.csv").read_text()


def _recorded_again(folder: Path) -> None:
    """Re-record the checkpoint's file hashes, as a checkpoint crafted on purpose would."""
    manifest = json.loads((folder / "manifest.json").read_text())
    write_manifest(folder, manifest["kind"], manifest["format_version"],
                   {k: manifest[k] for k in ("model", "codebook_id", "training")}, list(manifest["files"]))


def test_unreadable_or_refused_checkpoint_files_are_one_error_line(tables, checkpoint, tmp_path, monkeypatch):
    runner = CliRunner()
    train = ["train", str(tables.folder), "--max-steps", "3", "--quiet", "--out", str(tmp_path / "next")]
    # An optimizer state that asks to run code is refused, not unpickled.
    evil = tmp_path / "evil"
    shutil.copytree(checkpoint, evil)
    marker = tmp_path / "code_ran"

    class Payload:
        def __reduce__(self):
            return os.mkdir, (str(marker),)

    (evil / "optimizer.pt").write_bytes(pickle.dumps({"state": Payload()}, protocol=2))
    _recorded_again(evil)
    result = runner.invoke(main, [*train, "--resume", str(evil)])
    assert result.exit_code == 1, result.output
    assert f"Error: {evil / 'optimizer.pt'}: refused, not unpickled: it is not plain tensor data" in result.output
    assert "weights_only=False" not in result.output and "Traceback" not in result.output
    assert not marker.exists() and not (tmp_path / "next").exists()
    # Weights that cannot be parsed, and weights the system will not let us read.
    broken = tmp_path / "broken"
    shutil.copytree(checkpoint, broken)
    (broken / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{nonsense")
    _recorded_again(broken)
    result = _reason(tables, broken, "--output", str(tmp_path / "res"))
    assert result.exit_code == 1 and f"Error: {broken / 'model.safetensors'}: unreadable weights" in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    real_open = builtins.open

    def refusing_open(path, *args, **kwargs):
        if str(path).endswith("model.safetensors"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", refusing_open)
    for args in (["reason", "--checkpoint", str(checkpoint), str(tables.folder), "--output", str(tmp_path / "r2")],
                 [*train, "--init", str(checkpoint)]):
        result = runner.invoke(main, args)
        assert result.exit_code == 1, result.output
        assert f"Error: {checkpoint / 'model.safetensors'}: unreadable: Permission denied" in result.output
        assert "Traceback" not in result.output


def test_paths_and_numbers_that_cannot_work_fail_in_one_line_and_keep_the_results(tables, checkpoint, tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    # An output folder below a file is refused before any work.
    result = _reason(tables, checkpoint, "--output", str(a_file / "sub"))
    assert result.exit_code == 1 and f"{a_file / 'sub'}: {a_file} is a file, not a folder" in result.output
    assert isinstance(result.exception, SystemExit) and a_file.read_text() == "x"
    # Minutes that are no number of minutes: a usage error, and no output folder.
    for bad in ("nan", "inf"):
        result = _reason(tables, checkpoint, "--output", str(tmp_path / "none"), "--embedding-minutes", bad)
        assert result.exit_code == 2 and "is not a finite number" in result.output, result.output
    assert not (tmp_path / "none").exists()
    # A chart that cannot be written fails after the metrics are written, naming the chart's own path.
    if Path("/proc").is_dir():
        plot = Path("/proc") / "tofu_chart.png"
        result = _reason(tables, checkpoint, "--output", str(tmp_path / "res"), "--plot", str(plot))
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
        assert f"Error: {plot}: " in result.output and ".tmp-" not in result.output
        assert json.loads((tmp_path / "res" / "metrics.json").read_text())["records"]


def test_a_split_ranked_over_its_own_graph_is_said_to_be_no_prediction(tables, checkpoint, tmp_path):
    """The train split is ranked over the graph that holds its triples: the figures are allowed but said
    to read back shown edges; a held-out split says nothing of the kind."""
    train = _reason(tables, checkpoint, "--split", "train", "--output", str(tmp_path / "train"))
    assert train.exit_code == 0, train.output
    assert "note: several: split 'train' is ranked over its own graph" in train.output
    test = _reason(tables, checkpoint, "--split", "test", "--output", str(tmp_path / "test"))
    assert test.exit_code == 0 and "ranked over its own graph" not in test.output


def test_edited_manifests_are_refused_and_a_layout_mismatch_says_why(tables, checkpoint, tmp_path):
    edited = tmp_path / "edited"
    shutil.copytree(checkpoint, edited)
    manifest = json.loads((edited / "manifest.json").read_text())
    manifest["model"]["dim"] = 2 * manifest["model"]["dim"]
    (edited / "manifest.json").write_text(json.dumps(manifest))
    result = _reason(tables, edited, "--output", str(tmp_path / "r1"))
    assert result.exit_code == 1 and "the manifest was edited after it was written" in result.output
    # The same manifest as written by a tool: the weights do not fit the layout it names, and the
    # message says which tensor.
    _recorded_again(edited)
    result = _reason(tables, edited, "--output", str(tmp_path / "r2"))
    assert result.exit_code == 1 and "a checkpoint of another model layout" in result.output
    assert "size mismatch for" in result.output and len(result.output.strip().splitlines()) == 1
    # Token tables whose manifest was edited (here: which triples the test split asks) are refused too.
    artifact = tmp_path / "artifact"
    shutil.copytree(tables.folder, artifact)
    manifest = json.loads((artifact / "manifest.json").read_text())
    manifest["splits"]["test"]["queries"] = manifest["splits"]["train"]["queries"]
    (artifact / "manifest.json").write_text(json.dumps(manifest))
    result = CliRunner().invoke(main, ["reason", "--checkpoint", str(checkpoint), str(artifact), "--quiet",
                                       "--output", str(tmp_path / "r3")])
    assert result.exit_code == 1 and f"{artifact / 'manifest.json'}: the manifest was edited" in result.output
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r3").exists()


def test_a_chart_of_many_relations_shows_the_most_asked(tmp_path):
    from pipeline.plots import MAX_RELATIONS, evaluation_chart

    per_relation = {f"/relation/{i:02d}/{'x' * 50}": {"mrr": 1 / (i + 1), "queries": i + 1, "tail_mrr": 1 / (i + 1),
                                                      "tail_queries": i + 1, "head_mrr": 0.0, "head_queries": 0}
                    for i in range(MAX_RELATIONS + 10)}
    path = evaluation_chart(tmp_path / "many.png", "many", per_relation, {"tail": [1, 3, 5, 50, 500], "head": []})
    with Image.open(path) as image:
        assert image.size == chart_size(MAX_RELATIONS + 10) == chart_size(MAX_RELATIONS)
        plotted = json.loads(image.text[VALUES_KEY])
    assert sorted(plotted["per_relation"]) == sorted(list(per_relation)[10:])
    assert plotted["rank_counts"] == {"tail": {"1": 1, "2-3": 1, "4-10": 1, "11-100": 1, ">100": 1},
                                      "head": {"1": 0, "2-3": 0, "4-10": 0, "11-100": 0, ">100": 0}}
