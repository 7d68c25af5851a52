"""Pretraining recipes, the shipped model's files, its codebooks as tokenize's default, the plot."""
from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from artifacts.checkpoint import load_checkpoint
from artifacts.codebooks import CodebookSet
from artifacts.errors import ArtifactError
from artifacts.shipped import ship, shipped_checkpoint, shipped_codebooks
from pipeline import orchestrate
from pipeline.cli import main
from pipeline.defaults import MODEL_DEFAULTS, TRAIN_DEFAULTS
from pipeline.plots import chart_size
from pipeline.pretrain import RecipeError, read_recipe, run_recipe, without_graphs, write_graph_folders
from reasoning_stage.training import TrainingInputError

REPO = Path(__file__).resolve().parents[1]


def _recipe(path: Path, body: str) -> Path:
    path.write_text(body, encoding="utf-8")
    return path


def test_without_drops_the_graphs_it_names_and_refuses_what_matches_nothing(tmp_path):
    """``tofu pretrain --without 'nell_*'``: the recipe less a family, checked before any work."""
    shipped = read_recipe(REPO / "recipes" / "pretrain.toml")
    kept = without_graphs(shipped, ["nell_*"])
    assert [g["name"] for g in kept.graphs] == [g["name"] for g in shipped.graphs if not g["name"].startswith("nell")]
    assert len(kept.graphs) == 8 and kept.model == shipped.model and kept.train == shipped.train
    assert len(shipped.graphs) == 12    # the recipe itself is unchanged
    assert [g["name"] for g in without_graphs(shipped, ["nell_*", "WN18RR_v[12]"]).graphs][-2:] == ["WN18RR_v3",
                                                                                                      "WN18RR_v4"]
    with pytest.raises(RecipeError, match="--without 'NELL_\\*' matches no \\[\\[graph\\]\\] name"):
        without_graphs(shipped, ["NELL_*"])        # names match case-sensitively, as the artifacts are named
    with pytest.raises(RecipeError, match="leaves no graph to train on"):
        without_graphs(shipped, ["*"])
    work = tmp_path / "work"
    result = CliRunner().invoke(main, ["pretrain", str(REPO / "recipes" / "pretrain.toml"), "--without", "nope*",
                                       "--data", str(tmp_path), "--work", str(work)])
    assert result.exit_code != 0 and "--without 'nope*' matches no" in result.output
    assert not work.exists()


def test_recipe_refuses_zero_shot_graphs_and_bad_files(tmp_path):
    ingram = _recipe(tmp_path / "a.toml", '[[graph]]\nname = "nl"\nsource = "ingram/NL-25"\n')
    with pytest.raises(RecipeError, match="zero-shot evaluation graph"):
        read_recipe(ingram)
    # However the path is spelled, an InGram graph is refused once it is resolved against the data folder.
    data = tmp_path / "data"
    for folder in ("ingram/NL-25", "mine/WK-50", "mine/sub"):
        (data / folder).mkdir(parents=True)
    (data / "ingram" / "mine").mkdir()
    for source, in_data in (("./ingram/NL-25", data), ("mine/../ingram/NL-25", data), (str(data / "ingram/NL-25"), data),
                            ("NL-25", data / "ingram"), ("mine", data / "ingram"), ("mine/WK-50", data)):
        recipe = read_recipe(_recipe(tmp_path / "a2.toml", f'[[graph]]\nname = "g"\nsource = "{source}"\n'))
        with pytest.raises(RecipeError, match="zero-shot evaluation graph"):
            write_graph_folders(recipe, in_data, tmp_path / "w_ingram")
    assert not (tmp_path / "w_ingram").exists()
    # A GraIL _ind graph (beside its training graph) is a test graph too; a folder merely named *_ind is not.
    for folder in ("grail/toy_v1", "grail/toy_v1_ind", "mine/alone_ind"):
        (data / folder).mkdir(parents=True)
    recipe = read_recipe(_recipe(tmp_path / "a4.toml", '[[graph]]\nname = "g"\nsource = "grail/toy_v1_ind"\n'))
    with pytest.raises(RecipeError, match="inductive test graph of toy_v1"):
        write_graph_folders(recipe, data, tmp_path / "w_ind")
    assert not (tmp_path / "w_ind").exists()
    for source in ("grail/toy_v1", "mine/alone_ind", "mine/sub"):
        recipe = read_recipe(_recipe(tmp_path / "a5.toml", f'[[graph]]\nname = "g"\nsource = "{source}"\n'))
        assert write_graph_folders(recipe, data, tmp_path / "w_ok") == [tmp_path / "w_ok" / "graphs" / "g"]
        written = tomllib.loads((tmp_path / "w_ok" / "graphs" / "g" / "kg.toml").read_text())
        assert written == {"name": "g", "files": {"source": (data / source).resolve().as_posix()}}
    empty = _recipe(tmp_path / "e.toml", '[[graph]]\nname = "g"\nsource = ""\n')
    with pytest.raises(RecipeError, match="'source' must be one path \\(a non-empty string\\)"):
        read_recipe(empty)
    for name in ("../up", "codebooks", 3):
        bad_name = _recipe(tmp_path / "n.toml", f'[[graph]]\nname = {name!r}\nsource = "a"\n'.replace("'", '"'))
        with pytest.raises(RecipeError, match="#1: name"):
            read_recipe(bad_name)
    twice = _recipe(tmp_path / "d.toml", '[[graph]]\nname = "g"\nsource = "a"\n[[graph]]\nname = "g"\nsource = "b"\n')
    with pytest.raises(RecipeError, match="name 'g' is used more than once"):
        read_recipe(twice)
    with pytest.raises(RecipeError, match="no \\[\\[graph\\]\\] entries"):
        read_recipe(_recipe(tmp_path / "b.toml", 'name = "x"\n'))
    with pytest.raises(RecipeError, match="b2.toml"):
        read_recipe(_recipe(tmp_path / "b2.toml", "[[graph]\n"))
    with pytest.raises(RecipeError, match="'graph' is one table; write each graph as \\[\\[graph\\]\\]"):
        read_recipe(_recipe(tmp_path / "t1.toml", '[graph]\nname = "g"\nsource = "g"\n'))
    for section, value in (("model", '"x"'), ("tokenizer", "5"), ("train", "[1, 2]")):
        with pytest.raises(RecipeError, match=f"{section} must be a \\[{section}\\] table"):
            read_recipe(_recipe(tmp_path / "t2.toml", f'{section} = {value}\n[[graph]]\nname = "g"\nsource = "g"\n'))
    with pytest.raises(RecipeError, match="is a folder; give the recipe's TOML file"):
        read_recipe(tmp_path)
    (tmp_path / "latin1.toml").write_bytes('name = "caf\u00e9"\n'.encode("latin-1"))
    with pytest.raises(RecipeError, match="latin1.toml: not UTF-8 text"):
        read_recipe(tmp_path / "latin1.toml")
    typo = _recipe(tmp_path / "c.toml", '[[graph]]\nname = "g"\nsource = "g"\nentity_txt = "t"\n')
    with pytest.raises(RecipeError, match="unknown keys \\['entity_txt'\\]"):
        read_recipe(typo)
    # The recipe the product ships trains on GraIL training graphs only.
    shipped = read_recipe(REPO / "recipes" / "pretrain.toml")
    assert len(shipped.graphs) == 12
    assert all(g["source"].startswith("grail/") and not g["source"].endswith("_ind") for g in shipped.graphs)


def test_recommended_settings_are_those_of_the_shipped_recipe_and_model():
    """`tofu train`'s defaults (pipeline.defaults) say they are the shipped recipe's: keep them so."""
    recipe = read_recipe(REPO / "recipes" / "pretrain.toml")
    for key, value in MODEL_DEFAULTS.items():
        assert list(recipe.model[key]) == list(value), key     # every model default is a list setting
    for key, value in TRAIN_DEFAULTS.items():
        assert recipe.train[key] == value, key
    checkpoint = shipped_checkpoint()
    if checkpoint is not None:
        _assert_trained_with_recommended_settings(load_checkpoint(checkpoint)[0])


def _assert_trained_with_recommended_settings(manifest: dict) -> None:
    assert {k: manifest["training"]["config"][k] for k in TRAIN_DEFAULTS} == TRAIN_DEFAULTS
    assert manifest["model"]["messages"] == list(MODEL_DEFAULTS["messages"])


def test_recipe_errors_name_the_line_of_the_setting(tmp_path):
    """A recipe's content errors point at the line to fix, as TOML syntax errors already do."""
    body = ('name = "r"\n\n[model]\ndim = 64\nmessages = "distmult"\n\n[train]\nmax_minutes = "five"\n\n'
            '[[graph]]\nname = "a"\nsource = "src/a"\n\n[[graph]]\nname = "b"  # the second\nsource = "src/b"\n'
            'entity_txt = "t"\n')
    path = _recipe(tmp_path / "r.toml", body)
    with pytest.raises(RecipeError, match=r"r\.toml:17: \[\[graph\]\] b: unknown keys \['entity_txt'\]"):
        read_recipe(path)
    recipe = read_recipe(_recipe(path, body.replace('entity_txt = "t"\n', "")))
    assert (recipe.where("model", "messages"), recipe.where("train")) == (f"{path}:5", f"{path}:7")
    assert recipe.where(None, "source", "b") == f"{path}:16" and recipe.where(None, "source", 1) == f"{path}:12"
    assert recipe.where(None, "name") == f"{path}:1" and recipe.where(None, "source", "nope") == str(path)
    # After --without the graphs keep their own lines.
    data = tmp_path / "data"
    (data / "src" / "b").mkdir(parents=True)
    with pytest.raises(RecipeError, match=r"r\.toml:12: \[\[graph\]\] a: source .* does not exist"):
        write_graph_folders(recipe, data, tmp_path / "w")
    assert write_graph_folders(without_graphs(recipe, ["a"]), data, tmp_path / "w") == [tmp_path / "w" / "graphs" / "b"]
    (data / "src" / "b").rmdir()
    with pytest.raises(RecipeError, match=r"r\.toml:16: \[\[graph\]\] b: source"):
        write_graph_folders(without_graphs(recipe, ["a"]), data, tmp_path / "w2")
    with pytest.raises(RecipeError, match=r"r\.toml:5: \[model\] messages must be a list"):
        run_recipe(recipe, data, tmp_path / "w3", tmp_path / "ck", "cpu")
    recipe = read_recipe(_recipe(path, body.replace('messages = "distmult"', 'messages = ["distmult"]')
                                 .replace('entity_txt = "t"\n', "")))
    with pytest.raises(RecipeError, match=r"r\.toml:8: \[train\]: max_minutes must be a number"):
        run_recipe(recipe, data, tmp_path / "w3", tmp_path / "ck", "cpu")


def test_recipe_graph_reads_several_text_files_in_order(tmp_path):
    from pipeline.pretrain import write_graph_folders
    from tokenizer_stage.kg_reader import read_kg

    data = tmp_path / "data"
    (data / "g").mkdir(parents=True)
    (data / "g" / "train.tsv").write_text("/m/a\tr\t/m/b\n/m/b\tr\t/m/c\n", encoding="utf-8")
    (data / "names.txt").write_text("/m/a\tAda\n/m/b\tBob\n", encoding="utf-8")
    (data / "wiki.json").write_text(json.dumps({"/m/a": {"label": "Ada L.", "description": "mathematician"},
                                                "/m/c": {"label": "Cy", "description": "city"}}), encoding="utf-8")
    body = '[[graph]]\nname = "g"\nsource = "g"\nentity_text = ["names.txt", "wiki.json"]\n'
    [folder] = write_graph_folders(read_recipe(_recipe(tmp_path / "r.toml", body)), data, tmp_path / "work")
    kg = read_kg(folder)
    # the first file that names an id gives its name; the second still adds its description
    assert (kg.entity_text["/m/a"].name, kg.entity_text["/m/a"].description) == ("Ada", "mathematician")
    assert (kg.entity_text["/m/b"].name, kg.entity_text["/m/b"].description) == ("Bob", None)
    assert (kg.entity_text["/m/c"].name, kg.entity_text["/m/c"].description) == ("Cy", "city")

    for bad, message in (('source = ["g"]', "'source' must be one path"),
                         ('entity_text = []', "'entity_text' must be a path or a list of paths"),
                         ('images = 3', "'images' must be a path or a list of paths")):
        key = bad.split(" =")[0]
        lines = [ln for ln in body.splitlines() if not ln.startswith(key)] + [bad]
        with pytest.raises(RecipeError, match=message):
            read_recipe(_recipe(tmp_path / "bad.toml", "\n".join(lines) + "\n"))
    gone = read_recipe(_recipe(tmp_path / "r2.toml", body.replace('"wiki.json"', '"wiki2.json"')))
    with pytest.raises(RecipeError, match="wiki2.json does not exist"):
        write_graph_folders(gone, data, tmp_path / "work2")


def test_recipe_trains_and_ships(tmp_path, example_graph, fast_config):
    data = tmp_path / "data"
    data.mkdir()
    (data / "example").symlink_to(example_graph, target_is_directory=True)
    recipe = read_recipe(_recipe(tmp_path / "r.toml", f'''
name = "tiny"
[tokenizer]
text_codebook_size = {fast_config.text_codebook_size}
image_codebook_size = {fast_config.image_codebook_size}
structure_codebook_size = {fast_config.structure_codebook_size}
tokens_per_entity = 4
[model]
dim = 16
entity_layers = 2
relation_layers = 1
[train]
max_steps = 3
eval_every = 3
eval_triples = 10
[[graph]]
name = "example"
source = "example"
'''))
    missing = read_recipe(_recipe(tmp_path / "m.toml", '[[graph]]\nname = "gone"\nsource = "nowhere"\n'))
    with pytest.raises(RecipeError, match="nowhere does not exist"):
        run_recipe(missing, data, tmp_path / "w0", tmp_path / "w0" / "ck", torch.device("cpu"), progress=False)

    # Bad training settings are refused before any graph is tokenized.
    for section, bad, message in (
            ("train", "loss = \"hinge\"", "unknown loss 'hinge'"), ("train", "lr_schedule = \"linear\"", "lr_schedule"),
            ("train", "batchsize = 4", r"\[train\]: unknown keys \['batchsize'\]"),
            ("train", "batch_size = \"x\"", "batch_size must be an integer, got 'x'"),
            ("train", "max_steps = -3", "max_steps must be at least 1"),
            ("train", "learning_rate = -1.0", "learning_rate cannot be negative"),
            ("train", "max_minutes = 0", "the time budget must be positive"),
            ("train", "max_seconds = 60", r"unknown keys \['max_seconds'\] \(the budget is max_minutes\)"),
            ("model", "dim = \"big\"", r"\[model\]: dim must be an integer"),
            ("model", "messages = [\"unknown\"]", "messages must be a non-empty subset"),
            ("model", "num_experts = 0", "num_experts must be an integer of at least 1"),
            ("model", "expert_top_k = 9", r"expert_top_k \(9\) cannot exceed num_experts \(4\)"),
            ("model", "num_tasks = 1", r"\[model\]: unknown keys \['num_tasks'\]"),
            ("train", "weight_decay = -1.0", "weight_decay cannot be negative"),
            ("train", "min_lr_ratio = -5.0", r"min_lr_ratio must be in \[0, 1\]"),
            ("train", "task_weights = {link_prediction = \"a\"}", "task_weights: link_prediction must be a finite"),
            ("train", "task_weights = {link_prediction = nan}", "task_weights: link_prediction must be a finite"),
            ("tokenizer", "seed = \"x\"", r"\[tokenizer\]: seed must be an integer of at least 0"),
            ("tokenizer", "use_text = 1", "use_text must be true or false")):
        key = bad.split(" =")[0]
        text = "".join(line for line in (tmp_path / "r.toml").read_text().splitlines(keepends=True)
                       if not line.startswith(f"{key} =")).replace(f"[{section}]\n", f"[{section}]\n{bad}\n")
        with pytest.raises(RecipeError, match=message):
            run_recipe(read_recipe(_recipe(tmp_path / "bad.toml", text)), data, tmp_path / "w1", tmp_path / "w1" / "ck",
                       torch.device("cpu"), progress=False)
        assert not (tmp_path / "w1").exists()
    text = (tmp_path / "r.toml").read_text().replace("[model]\n", '[model]\nmessages = "distmult"\n')
    with pytest.raises(RecipeError, match=r'messages must be a list, e\.g\. messages = \["distmult"\]'):
        run_recipe(read_recipe(_recipe(tmp_path / "bad.toml", text)), data, tmp_path / "w1", tmp_path / "w1" / "ck",
                   torch.device("cpu"), progress=False)
    assert not (tmp_path / "w1").exists()

    # Split names can only be checked against the tokenized graphs: refused before any training step.
    for bad, message in (('train_split = "nope"', "no split 'nope' to train on"),
                         ('valid_split = "nope"', "no graph has the validation split 'nope'")):
        text = (tmp_path / "r.toml").read_text().replace("[train]\n", f"[train]\n{bad}\n")
        with pytest.raises(TrainingInputError, match=message):
            run_recipe(read_recipe(_recipe(tmp_path / "bad.toml", text)), data, tmp_path / "w2", tmp_path / "w2" / "ck",
                       torch.device("cpu"), progress=False)
        assert not (tmp_path / "w2" / "ck").exists()
    checkpoint = run_recipe(recipe, data, tmp_path / "work", tmp_path / "work" / "ck", torch.device("cpu"),
                            progress=False)
    manifest, _, _ = load_checkpoint(checkpoint)
    assert manifest["training"]["step"] == 3 and manifest["model"]["dim"] == 16
    # Keys the recipe leaves out train as `tofu train` does by default: the recommended settings.
    _assert_trained_with_recommended_settings(manifest)
    books = tmp_path / "work" / "artifacts" / "codebooks"
    assert manifest["codebook_id"] == CodebookSet.load(books).codebook_id
    # A source that fails to tokenize leaves the graph's kg.toml pointing where its artifact came from.
    pointer = tmp_path / "work" / "graphs" / "example" / "kg.toml"
    before = pointer.read_text()
    shutil.copytree(example_graph, data / "broken")
    with open(data / "broken" / "train.tsv", "a") as handle:
        handle.write("only\ttwo\n")
    broken = (tmp_path / "r.toml").read_text().replace('source = "example"', 'source = "broken"')
    with pytest.raises(RecipeError, match="train.tsv:"):
        run_recipe(read_recipe(_recipe(tmp_path / "r3.toml", broken)), data, tmp_path / "work",
                   tmp_path / "work" / "ck", torch.device("cpu"), progress=False)
    assert pointer.read_text() == before and load_checkpoint(checkpoint)[0]["training"]["step"] == 3
    # So does a run stopped part-way through stage one (an error, Ctrl-C).
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(orchestrate, "tokenize_many", interrupted)
        with pytest.raises(KeyboardInterrupt):
            run_recipe(read_recipe(_recipe(tmp_path / "r3.toml", broken)), data, tmp_path / "work",
                       tmp_path / "work" / "ck", torch.device("cpu"), progress=False)
    assert pointer.read_text() == before
    # The same --work with another codebook size is refused, not trained on the old codebooks.
    resized = (tmp_path / "r.toml").read_text().replace(f"text_codebook_size = {fast_config.text_codebook_size}",
                                                        f"text_codebook_size = {fast_config.text_codebook_size * 2}")
    with pytest.raises(RecipeError, match=f"the text codebook was fitted with {fast_config.text_codebook_size} codes, "
                                          f"{fast_config.text_codebook_size * 2} asked for; give a new --work"):
        run_recipe(read_recipe(_recipe(tmp_path / "r2.toml", resized)), data, tmp_path / "work",
                   tmp_path / "work" / "ck", torch.device("cpu"), progress=False)
    assert load_checkpoint(checkpoint)[0]["training"]["step"] == 3

    root = ship(checkpoint, books, tmp_path / "shipped")
    trained, copied = load_checkpoint(checkpoint)[1], load_checkpoint(shipped_checkpoint(root))[1]
    assert trained.keys() == copied.keys() and all(torch.equal(trained[k], copied[k]) for k in trained)
    assert not (root / "checkpoint" / "optimizer.pt").exists()        # weights only: small
    assert CodebookSet.load(shipped_codebooks(root)).codebook_id == manifest["codebook_id"]
    other = tmp_path / "other_books"
    CodebookSet.load(books).save(other)
    (other / "manifest.json").write_text(json.dumps({**json.loads((other / "manifest.json").read_text()),
                                                     "identity": "elsewhere"}))
    with pytest.raises((ValueError, ArtifactError)):   # the set is refused, whichever check sees it first
        ship(checkpoint, other, tmp_path / "shipped2")
    assert not (tmp_path / "shipped2").exists()


def test_tokenize_defaults_to_shipped_codebooks_when_they_suit(tmp_path, example_graph, codebooks_dir, fast_config,
                                                               monkeypatch):
    monkeypatch.setattr(orchestrate, "shipped_codebooks", lambda: codebooks_dir)
    _, facts = orchestrate.tokenize_many([example_graph], tmp_path / "a", fast_config, workers=1, progress=False)
    assert facts["codebook_state"] == "shipped"
    assert CodebookSet.load(tmp_path / "a" / "codebooks").codebook_id == CodebookSet.load(codebooks_dir).codebook_id
    # Other sizes than the shipped set's: fit new codebooks instead of mixing.
    from dataclasses import replace

    other = replace(fast_config, text_codebook_size=fast_config.text_codebook_size + 1)
    _, facts = orchestrate.tokenize_many([example_graph], tmp_path / "b", other, workers=1, progress=False)
    assert facts["codebook_state"] == "fitted"
    # A recipe asks for its own codebooks explicitly.
    _, facts = orchestrate.tokenize_many([example_graph], tmp_path / "c", fast_config, workers=1, progress=False,
                                         use_shipped_codebooks=False)
    assert facts["codebook_state"] == "fitted"


def test_reason_without_checkpoint_uses_the_shipped_model_and_plots(tmp_path, example_graph, codebooks_dir,
                                                                    fast_config, monkeypatch):
    import artifacts.shipped as shipped_module

    artifacts_root = tmp_path / "artifacts"
    orchestrate.tokenize_many([example_graph], artifacts_root, fast_config, codebooks=codebooks_dir, workers=1,
                              progress=False)
    monkeypatch.setattr(shipped_module, "shipped_checkpoint", lambda: None)
    result = CliRunner().invoke(main, ["reason", str(artifacts_root), "--quiet"])
    assert result.exit_code != 0 and "ships no pretrained model" in result.output

    from artifacts.token_tables import read_token_tables
    from reasoning_stage.config import ModelConfig
    from reasoning_stage.models import TofuModel
    from reasoning_stage.config import TrainConfig
    from reasoning_stage.training import model_config_for, train

    tables = read_token_tables(artifacts_root / "example")
    model = TofuModel(model_config_for(tables, ModelConfig(dim=16, entity_layers=2, relation_layers=1)))
    train(model, [tables], TrainConfig(max_steps=2, eval_every=2, eval_triples=5), tmp_path / "ck",
          torch.device("cpu"))
    monkeypatch.setattr(shipped_module, "shipped_checkpoint", lambda: tmp_path / "ck")
    plot = tmp_path / "mrr.png"
    result = CliRunner().invoke(main, ["reason", str(artifacts_root), "--output", str(tmp_path / "out"),
                                       "--plot", str(plot), "--quiet"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["checkpoint"] == str(tmp_path / "ck")
    asked = len({int(r) for r in tables.queries("test")[:, 1]})      # one row of bars per relation asked about
    with Image.open(plot) as image:
        assert image.format == "PNG" and image.size == chart_size(asked)


def test_shipped_model_reads_a_new_graph_zero_shot(tmp_path, example_graph, shipped):
    """Default tokenize uses the shipped codebooks; the shipped model then ranks better than an untrained one."""
    from artifacts.token_tables import read_token_tables
    from reasoning_stage.evaluation import evaluate_graph
    from reasoning_stage.config import ModelConfig
    from reasoning_stage.models import TofuModel
    from reasoning_stage.reasoning import load_model
    from tokenizer_stage.config import TokenizerConfig

    _, facts = orchestrate.tokenize_many([example_graph], tmp_path, TokenizerConfig(), workers=1, progress=False)
    assert facts["codebook_state"] == "shipped"
    tables = read_token_tables(tmp_path / "example")
    loaded = load_model(shipped, torch.device("cpu"))
    assert tables.codebook_id == loaded.codebook_id
    untrained_mrr = []
    for seed in range(3):
        torch.manual_seed(seed)
        untrained = TofuModel(ModelConfig.from_json(loaded.manifest["model"]))
        untrained_mrr.append(evaluate_graph(untrained, tables, ["valid", "test"], torch.device("cpu")).metrics()["mrr"])
    shipped_mrr = evaluate_graph(loaded.model, tables, ["valid", "test"], torch.device("cpu")).metrics()["mrr"]
    assert shipped_mrr > max(untrained_mrr), (shipped_mrr, untrained_mrr)


def test_the_wikidata_recipe_is_the_shipped_recipe_plus_two_mmkg_train_graphs(data_root, tmp_path):
    """``recipes/pretrain_wikidata.toml`` (docs/BENCHMARKS.md's experiment) differs from the shipped
    recipe only by MKG-W and MKG-Y and by its messages (DistMult alone, as when it ran), and every source
    it names is in the data and may be trained on."""
    shipped = read_recipe(REPO / "recipes" / "pretrain.toml")
    wikidata = read_recipe(REPO / "recipes" / "pretrain_wikidata.toml")
    assert wikidata.model == {**shipped.model, "messages": ["distmult"]}
    assert (wikidata.train, wikidata.tokenizer) == (shipped.train, shipped.tokenizer)
    assert wikidata.graphs[:len(shipped.graphs)] == shipped.graphs
    assert [g["source"] for g in wikidata.graphs[len(shipped.graphs):]] == ["mmkg/MKG-W", "mmkg/MKG-Y"]
    folders = write_graph_folders(wikidata, data_root, tmp_path)
    assert [f.name for f in folders] == [g["name"] for g in wikidata.graphs]
    assert all((f / "kg.toml").is_file() for f in folders)
