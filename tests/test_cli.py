"""The ``tofu tokenize`` command: exit codes, messages, Dask and incremental runs."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from pipeline.cli import main

SMALL = ["--no-images", "--text-codebook-size", "32", "--structure-codebook-size", "8", "--quiet"]


def _run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _write(folder: Path, name: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)


@pytest.mark.parametrize("case, files, expected", [
    ("malformed row", {"train.tsv": "a\tr\tb\na\tr\n"}, "train.tsv:2"),
    ("empty graph", {"train.tsv": "\n"}, "train.tsv"),
    ("unknown query entity", {"train.tsv": "a\tr\tb\n", "test.tsv": "a\tr\tb\nzz\tr\tb\n"}, "test.tsv:2"),
    ("bad entities header", {"train.tsv": "a\tr\tb\n", "entities.tsv": "a\tA\n"}, "entities.tsv"),
])
def test_bad_input_fails_with_file_and_line(tmp_path, case, files, expected):
    graph = tmp_path / "bad"
    for name, text in files.items():
        _write(graph, name, text)
    result = _run("tokenize", str(graph), "--out", str(tmp_path / "out"), *SMALL)
    assert result.exit_code != 0, case
    assert expected in result.output, result.output
    assert "Traceback" not in result.output
    # The root this run made holds nothing of it (no codebooks copied, no record, no lock) ...
    assert not (tmp_path / "out").exists(), list((tmp_path / "out").rglob("*"))
    # ... and a root that was there before stays, as it was.
    (tmp_path / "mine").mkdir()
    result = _run("tokenize", str(graph), "--out", str(tmp_path / "mine"), *SMALL)
    assert result.exit_code != 0 and (tmp_path / "mine").is_dir() and not (tmp_path / "mine" / "bad").exists()
    # A path that reaches the old folder through a folder the run makes is not a root the run made.
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    result = _run("tokenize", str(graph), "--out", str(tmp_path / "notyet" / ".." / "mine"), *SMALL)
    assert result.exit_code != 0 and (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_missing_folder_and_missing_codebooks(tmp_path, example_graph):
    result = _run("tokenize", str(tmp_path / "nope"), "--out", str(tmp_path / "out"), *SMALL)
    assert result.exit_code != 0 and "nope" in result.output
    result = _run("tokenize", str(example_graph), "--out", str(tmp_path / "out"),
                  "--codebooks", str(tmp_path / "no_books"), *SMALL)
    assert result.exit_code != 0 and "no codebook set there" in result.output
    assert not (tmp_path / "out").exists()   # made by the failed run, removed with it


def test_one_bad_graph_does_not_stop_the_others(tmp_path, example_graph):
    _write(tmp_path / "graphs" / "broken", "train.tsv", "x\ty\n")
    shutil.copytree(example_graph, tmp_path / "graphs" / "example")
    # Fit codebooks on the good graph alone, then run both.
    assert _run("tokenize", str(tmp_path / "graphs" / "example"), "--out", str(tmp_path / "out"),
                *SMALL).exit_code == 0
    result = _run("tokenize", str(tmp_path / "graphs"), "--out", str(tmp_path / "out"), "--workers", "1", *SMALL)
    assert result.exit_code == 1
    assert "broken: FAILED" in result.output and "train.tsv:1" in result.output
    assert "example: up to date, skipped" in result.output
    assert not (tmp_path / "out" / "broken").exists()
    run = json.loads((tmp_path / "out" / "last_tokenize_run.json").read_text())
    assert {g["name"]: g["status"] for g in run["graphs"]} == {"broken": "failed", "example": "skipped"}


def test_dask_run_equals_serial_run_and_reruns_incrementally(tmp_path, example_graph, second_graph,
                                                             tiny_vision_model):
    graphs = tmp_path / "graphs"
    shutil.copytree(example_graph, graphs / "example")
    shutil.copytree(second_graph, graphs / "second")
    # Images too (a tiny vision model keeps it quick): workers run torch with another thread count.
    with_images = ["--image-encoder", str(tiny_vision_model), "--image-codebook-size", "8",
                   *[a for a in SMALL if a != "--no-images"]]
    serial = _run("tokenize", str(graphs), "--out", str(tmp_path / "serial"), "--workers", "1", *with_images)
    assert serial.exit_code == 0, serial.output
    shutil.copytree(tmp_path / "serial" / "codebooks", tmp_path / "books")
    parallel = _run("tokenize", str(graphs), "--out", str(tmp_path / "dask"), "--workers", "2",
                    "--codebooks", str(tmp_path / "books"), *with_images)
    assert parallel.exit_code == 0, parallel.output
    assert "dask:local(2 workers)" in parallel.output
    for graph in ("example", "second"):
        for table in ("entity_tokens", "relation_tokens", "triples", "entities", "relations"):
            a = pq.read_table(tmp_path / "serial" / graph / f"{table}.parquet")
            b = pq.read_table(tmp_path / "dask" / graph / f"{table}.parquet")
            assert a.equals(b), (graph, table)
    # Summary table lists both graphs with their counts.
    assert "example" in parallel.output and "second" in parallel.output and "struct tok" in parallel.output
    modalities = pq.read_table(tmp_path / "dask" / "example" / "entity_tokens.parquet")["modality"].to_pylist()
    assert "image" in modalities
    # Re-run: both skipped; then one changed graph is redone, the other skipped.
    rerun = _run("tokenize", str(graphs), "--out", str(tmp_path / "serial"), "--workers", "1", *with_images)
    assert rerun.output.count("up to date, skipped") == 2
    with open(graphs / "second" / "train.tsv", "a") as handle:
        handle.write("person:001\tfriend_of\tperson:002\n")
    rerun = _run("tokenize", str(graphs), "--out", str(tmp_path / "serial"), "--workers", "1", *with_images)
    assert "example: up to date, skipped" in rerun.output
    assert "second: tokenized" in rerun.output
    forced = _run("tokenize", str(graphs), "--out", str(tmp_path / "serial"), "--workers", "1", "--force",
                  *with_images)
    assert forced.output.count("tokenized in") == 2


def test_a_codebook_fitted_smaller_than_asked_is_said_at_every_run(tmp_path):
    """A graph too small for the codebook sizes asked for fits fewer codes; the set is frozen once
    written, so each run that tokenizes with it says which modality is smaller and by how much."""
    from artifacts.codebooks import CodebookSet

    folder = tmp_path / "tiny"
    folder.mkdir()
    (folder / "train.tsv").write_text("ann\tknows\tbob\nbob\tknows\tcid\n")
    (folder / "entities.tsv").write_text("id\tname\nann\tAnn\nbob\tBob\ncid\tCid\n")
    out = tmp_path / "out"
    fitted = _run("tokenize", str(folder), "--out", str(out), *SMALL)
    assert fitted.exit_code == 0, fitted.output
    books = CodebookSet.load(out / "codebooks")
    for modality, asked in (("text", 32), ("structure", 8)):
        assert books[modality].size < asked
        said = f"warning: {modality} codebook: {books[modality].size} codes fitted where {asked} were asked for"
        assert said in fitted.output and "(tiny)" in fitted.output
    again = _run("tokenize", str(folder), "--out", str(out), "--force", *SMALL)
    assert "(frozen, id" in again.output and "warning: text codebook:" in again.output
    roomy = _run("tokenize", str(folder), "--out", str(tmp_path / "roomy"), "--no-images", "--quiet",
                 "--text-codebook-size", "2", "--structure-codebook-size", "1")
    assert "codes fitted where" not in roomy.output   # sizes the graph can give: nothing said


def test_refit_codebooks_changes_their_identity(tmp_path, example_graph, second_graph):
    out = tmp_path / "out"
    first = _run("tokenize", str(example_graph), "--out", str(out), *SMALL)
    assert "(fitted, id" in first.output
    frozen = _run("tokenize", str(second_graph), "--out", str(out), *SMALL)
    assert "(frozen, id" in frozen.output
    refit = _run("tokenize", str(second_graph), "--out", str(out), "--refit-codebooks", *SMALL)
    assert "(fitted, id" in refit.output
    old_id = first.output.split("id ")[1].split(")")[0]
    new_id = refit.output.split("id ")[1].split(")")[0]
    assert old_id != new_id
    # The graph not given keeps the old codebooks' tokens: pointed out, as no model reads both.
    assert f"note: {out / 'example'}: made with other codebooks than {out}'s (id {new_id})" in refit.output


def test_existing_dask_scheduler_by_address(tmp_path, example_graph):
    from dask.distributed import LocalCluster

    assert _run("tokenize", str(example_graph), "--out", str(tmp_path / "serial"), *SMALL).exit_code == 0
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        result = _run("tokenize", str(example_graph), "--out", str(tmp_path / "remote"),
                      "--codebooks", str(tmp_path / "serial" / "codebooks"),
                      "--scheduler", cluster.scheduler_address, *SMALL)
    assert result.exit_code == 0, result.output
    assert f"dask:{cluster.scheduler_address}" in result.output
    a = pq.read_table(tmp_path / "serial" / "example" / "entity_tokens.parquet")
    b = pq.read_table(tmp_path / "remote" / "example" / "entity_tokens.parquet")
    assert a.equals(b)


def test_paths_that_are_files_fail_without_traceback(tmp_path, example_graph):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    result = _run("tokenize", str(a_file), "--out", str(tmp_path / "out"), *SMALL)
    assert result.exit_code == 1 and "a_file: is a file" in result.output
    assert not (tmp_path / "out").exists()
    result = _run("tokenize", str(example_graph), "--out", str(a_file), *SMALL)
    assert result.exit_code == 1 and "a_file: exists and is not a folder" in result.output
    assert a_file.read_text() == "x"
    # A folder to create below a file: refused before any work, in one line.
    result = _run("tokenize", str(example_graph), "--out", str(a_file / "sub"), *SMALL)
    assert result.exit_code == 1 and f"{a_file} is a file, not a folder" in result.output
    result = _run("example", str(a_file / "sub"))
    assert result.exit_code == 1 and str(a_file / "sub") in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    # A device or a timeout that cannot work is an option error, before codebooks are copied.
    for option, value in (("--device", "bogus"), ("--device", "meta"), ("--scheduler-timeout", "nan")):
        result = CliRunner().invoke(main, ["tokenize", str(example_graph), "--out", str(tmp_path / "out2"),
                                           option, value, *SMALL])
        assert result.exit_code == 2 and option in result.output, (option, value, result.output)
    assert not (tmp_path / "out2").exists()
    # A recipe is no graph: said so, with the command that runs it.
    recipe = Path(__file__).resolve().parents[1] / "recipes" / "pretrain.toml"
    result = _run("tokenize", str(recipe), "--out", str(tmp_path / "out"), *SMALL)
    assert result.exit_code == 1 and "is a file, not a kg.toml or task.toml" in result.output
    assert "a pretraining recipe runs with `tofu pretrain`" in result.output
    # A graph's own kg.toml names the graph (a file that is allowed).
    result = _run("tokenize", str(example_graph / "kg.toml"), "--out", str(tmp_path / "out"), *SMALL)
    assert result.exit_code == 0 and (tmp_path / "out" / "example" / "manifest.json").is_file(), result.output


def test_one_triples_file_is_a_graph_and_a_broken_split_file_an_error(tmp_path, example_graph):
    # One triples file given itself (a PyKEEN-style TSV with a header): a graph named after the file,
    # all of it the train split, and both said.
    data = tmp_path / "data"
    _write(data, "family.tsv", "head\trelation\ttail\n" + (example_graph / "train.tsv").read_text())
    result = _run("tokenize", str(data / "family.tsv"), "--out", str(tmp_path / "out"), *SMALL)
    assert result.exit_code == 0, result.output
    assert f"{data / 'family.tsv'}:1: header row" in result.output and "no split asked for" in result.output
    manifest = json.loads((tmp_path / "out" / "family" / "manifest.json").read_text())
    assert manifest["graph"]["root"] == str(data / "family.tsv") and list(manifest["splits"]) == ["train"]
    result = _run("tokenize", str(data / "family.tsv"), "--out", str(tmp_path / "out"), *SMALL)
    assert result.exit_code == 0 and "family: up to date, skipped" in result.output, result.output
    # A split file that is a dangling symbolic link stops that graph, named, instead of the split vanishing.
    graph = tmp_path / "graph"
    shutil.copytree(example_graph, graph)
    (graph / "valid.tsv").unlink()
    (graph / "valid.tsv").symlink_to(tmp_path / "gone.tsv")
    result = _run("tokenize", str(graph), "--out", str(tmp_path / "out"), *SMALL)
    assert result.exit_code == 1, result.output
    assert f"{graph / 'valid.tsv'}: symbolic link to a file that does not exist" in result.output
    assert not (tmp_path / "out" / "example").exists()


def test_data_warnings_print_once_with_quiet_and_name_the_files(tmp_path, tiny_vision_model):
    from pipeline.example import write_example_graph

    graph = write_example_graph(tmp_path / "g", people=5, seed=3)
    broken = sorted((graph / "pictures").glob("person_*/0.png"))[0]
    broken.write_text("not a png")
    (graph / "test.tsv").write_text("")
    args = ["--out", str(tmp_path / "out"), "--image-encoder", str(tiny_vision_model), "--image-codebook-size",
            "4", "--text-codebook-size", "8", "--structure-codebook-size", "4", "--quiet"]
    for workers in ("1", "2"):   # in-process and on Dask workers alike
        result = _run("tokenize", str(graph), *args, "--workers", workers, "--force")
        assert result.exit_code == 0, result.output
        lines = [line for line in result.output.splitlines() if line.lstrip().startswith("warning:")]
        assert "Warning" not in result.output   # not also as Python warnings
        assert lines == ["  warning: example: split 'test' has no triples: nothing to evaluate on it",
                         f"  warning: example: 1 unreadable image(s) skipped: {broken}"], result.output
    # ... and evaluating that split is refused before any output, naming the splits that have triples.
    result = _run("reason", str(tmp_path / "out" / "example"), "--output", str(tmp_path / "res"), "--quiet")
    assert result.exit_code == 1 and "hold no triples to evaluate" in result.output
    assert "splits with triples: train, valid" in result.output
    result = _run("reason", str(tmp_path / "out" / "example"), "--split", "tst", "--output", str(tmp_path / "res"))
    assert result.exit_code == 1 and "no split 'tst' (has test, train, valid)" in result.output
    assert not (tmp_path / "res").exists()
    (tmp_path / "res").write_text("x")
    result = _run("reason", str(tmp_path / "out" / "example"), "--split", "valid", "--output", str(tmp_path / "res"))
    assert result.exit_code == 1 and "res: exists and is not a folder" in result.output


def test_a_failed_retokenize_says_the_old_artifact_is_stale(tmp_path, example_graph):
    graph = tmp_path / "graph_folder"   # named apart from the artifact ("example", from kg.toml)
    shutil.copytree(example_graph, graph)
    assert _run("tokenize", str(graph), "--out", str(tmp_path / "out"), *SMALL).exit_code == 0
    with open(graph / "train.tsv", "a") as handle:
        handle.write("person:001\tfriend_of\n")
    result = _run("tokenize", str(graph), "--out", str(tmp_path / "out"), *SMALL)
    assert result.exit_code == 1
    assert f"{tmp_path / 'out' / 'example'}: still the artifacts of an earlier run" in result.output


@pytest.mark.parametrize("people, held_out", [(5, (1, 1)), (8, (1, 2)), (23, (3, 5)), (24, (8, 12)), (60, (8, 12))])
def test_example_graph_always_has_valid_and_test_queries(tmp_path, people, held_out):
    from pipeline.example import write_example_graph

    graph = write_example_graph(tmp_path / "g", people=people, seed=0)
    valid, test = (len((graph / f"{s}.tsv").read_text().splitlines()) for s in ("valid", "test"))
    assert (valid, test) == held_out
    train_relations = {line.split("\t")[1] for line in (graph / "train.tsv").read_text().splitlines()}
    assert "citizen_of" in train_relations


def test_reason_refuses_splits_over_different_graphs_before_any_output(tmp_path):
    from tests.test_kg_reader import make_grail

    graph = make_grail(tmp_path / "data")   # toy_v1 with its toy_v1_ind sibling: two inference graphs
    result = _run("tokenize", str(graph), "--out", str(tmp_path / "out"), *SMALL)
    assert result.exit_code == 0, result.output
    result = _run("reason", str(tmp_path / "out" / "toy_v1"), "--split", "valid,test", "--output",
                  str(tmp_path / "res"), "--quiet")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "are ranked over different inference graphs (valid over train; test over ind_graph)" in result.output
    assert not (tmp_path / "res").exists()
    # The GraIL protocol's pair shares the _ind graph and passes the same check.
    from artifacts.token_tables import read_token_tables
    from reasoning_stage.reasoning import check_splits

    check_splits(read_token_tables(tmp_path / "out" / "toy_v1"), ["ind_valid", "test"])


def test_graph_names_cannot_leave_or_clobber_the_output_root(tmp_path, example_graph):
    out = tmp_path / "out"
    result = _run("tokenize", str(example_graph), "--out", str(out), *SMALL)
    assert result.exit_code == 0, result.output
    before = sorted(p.name for p in out.iterdir())
    for name, message in [(".", "is not a plain folder name"), ("../escape", "is not a plain folder name"),
                          ("codebooks", "is the root's own 'codebooks' entry")]:
        graph = tmp_path / "named"
        shutil.copytree(example_graph, graph, dirs_exist_ok=True)
        (graph / "kg.toml").write_text(f'# a comment line\nname = "{name}"\n')
        result = _run("tokenize", str(graph), "--out", str(out), *SMALL)
        assert result.exit_code == 1 and f"kg.toml:2: 'name' '{name}' {message}" in result.output, result.output
    # A folder's own name is checked too (no kg.toml), before any work, and so is a task.toml's.
    shutil.copytree(example_graph, tmp_path / "lib" / "codebooks")
    (tmp_path / "lib" / "codebooks" / "kg.toml").unlink()
    result = _run("tokenize", str(tmp_path / "lib" / "codebooks"), "--out", str(out), *SMALL)
    assert result.exit_code == 1 and "its name 'codebooks'" in result.output
    _write(tmp_path / "task", "task.toml", '[task]\nkind = "alignment"\nname = "../away"\n')
    result = _run("tokenize", str(tmp_path / "task"), "--out", str(out), *SMALL)
    assert result.exit_code == 1 and "task.toml:3: 'task.name' '../away' is not a plain folder name" in result.output
    assert sorted(p.name for p in out.iterdir()) == before and not (tmp_path / "escape").exists()


def test_a_broken_kg_toml_fails_at_its_line_inside_a_folder_of_graphs(tmp_path, example_graph):
    shutil.copytree(example_graph, tmp_path / "graphs" / "good")
    shutil.copytree(example_graph, tmp_path / "graphs" / "bad")
    _write(tmp_path / "graphs" / "notes", "todo.txt", "a folder of notes, no graph")
    (tmp_path / "graphs" / "empty").mkdir()
    for text, expected in [('name = "bad"\nnmae = "x"\n', "bad/kg.toml:2: unknown key 'nmae'"),
                           ('name = \n', "bad/kg.toml:1: invalid TOML"),
                           ('name = "b\xe9"\n'.encode("latin-1"), "bad/kg.toml:1: not valid UTF-8")]:
        toml = tmp_path / "graphs" / "bad" / "kg.toml"
        toml.write_bytes(text) if isinstance(text, bytes) else toml.write_text(text)
        result = _run("tokenize", str(tmp_path / "graphs"), "--out", str(tmp_path / "out"), *SMALL)
        assert result.exit_code == 1 and expected in result.output, result.output
        assert not (tmp_path / "out").exists()
    # A subfolder that is no graph at all is left out, and said.
    (tmp_path / "graphs" / "bad" / "kg.toml").write_text('name = "bad"\n')
    result = _run("tokenize", str(tmp_path / "graphs"), "--out", str(tmp_path / "out"), *SMALL)
    assert result.exit_code == 0, result.output
    assert f"skipped {tmp_path / 'graphs' / 'notes'}: neither a graph nor a task folder (cannot detect the layout" \
        in result.output
    assert "empty" not in result.output   # a folder holding no graph-like files is no mistake


def test_example_writes_only_new_empty_or_earlier_example_folders(tmp_path):
    assert _run("example", str(tmp_path / "ex"), "--people", "6").exit_code == 0
    first = (tmp_path / "ex" / "train.tsv").read_text()
    result = _run("example", str(tmp_path / "ex"), "--people", "8")   # an earlier example: rewritten
    assert result.exit_code == 0 and (tmp_path / "ex" / "train.tsv").read_text() != first
    mine = tmp_path / "mine"
    _write(mine, "train.tsv", "a\tr\tb\n")
    (tmp_path / "a_file").write_text("x")
    for target, message in [(mine, "holds files that `tofu example` did not write"),
                            (tmp_path / "a_file", "a_file: exists and is not a folder")]:
        result = _run("example", str(target))
        assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
    assert [p.name for p in mine.iterdir()] == ["train.tsv"] and (mine / "train.tsv").read_text() == "a\tr\tb\n"


def test_codebook_sizes_given_against_a_frozen_set_are_refused(tmp_path, example_graph):
    out = tmp_path / "out"
    assert _run("tokenize", str(example_graph), "--out", str(out), *SMALL).exit_code == 0
    result = _run("tokenize", str(example_graph), "--out", str(out), "--no-images", "--text-codebook-size", "100")
    assert result.exit_code == 2
    assert "100, but the frozen set in" in result.output and "was fitted with 32 text codes" in result.output
    # The same size, or none given, uses the frozen set as before.
    assert _run("tokenize", str(example_graph), "--out", str(out), *SMALL).exit_code == 0
    result = _run("tokenize", str(example_graph), "--out", str(out), "--no-images", "--quiet")
    assert result.exit_code == 0 and "up to date, skipped" in result.output
    # A graph with fewer distinct vectors than asked fits a smaller codebook; the same command runs again.
    _write(tmp_path / "tiny", "train.tsv", "a\tr\tb\nb\tr\tc\nc\ts\td\n")
    args = ["tokenize", str(tmp_path / "tiny"), "--out", str(tmp_path / "out_tiny"), "--no-text", "--no-images",
            "--structure-codebook-size", "32", "--quiet"]
    assert _run(*args).exit_code == 0
    result = _run(*args)
    assert result.exit_code == 0 and "up to date, skipped" in result.output, result.output


def test_artifacts_of_deleted_graphs_are_pointed_out(tmp_path, example_graph):
    for name in ("keep", "gone"):
        shutil.copytree(example_graph, tmp_path / "graphs" / name)
        (tmp_path / "graphs" / name / "kg.toml").write_text(f'name = "{name}"\n')
    out = tmp_path / "out"
    result = _run("tokenize", str(tmp_path / "graphs"), "--out", str(out), *SMALL)
    assert result.exit_code == 0 and "note:" not in result.output, result.output
    shutil.rmtree(tmp_path / "graphs" / "gone")
    result = _run("tokenize", str(tmp_path / "graphs"), "--out", str(out), *SMALL)
    assert result.exit_code == 0 and "keep: up to date, skipped" in result.output, result.output
    assert (f"note: {out / 'gone'} was made from {tmp_path / 'graphs' / 'gone'}, which no longer exists"
            in result.output)
    assert (out / "gone" / "manifest.json").is_file()   # pointed out, never deleted
    # A graph renamed in its kg.toml gets a new artifact; the old one is pointed out too.
    (tmp_path / "graphs" / "keep" / "kg.toml").write_text('name = "kept"\n')
    result = _run("tokenize", str(tmp_path / "graphs"), "--out", str(out), *SMALL)
    assert result.exit_code == 0 and "kept: tokenized" in result.output, result.output
    assert f"note: {out / 'keep'} was made from {tmp_path / 'graphs' / 'keep'}, which is now tokenized as 'kept'" \
        in result.output
    # ... and a new graph may take the old name: the renamed folder no longer claims it.
    shutil.copytree(example_graph, tmp_path / "new" / "keep")
    (tmp_path / "new" / "keep" / "kg.toml").write_text('name = "keep"\n')
    with open(tmp_path / "new" / "keep" / "train.tsv", "a") as handle:
        handle.write("person:000\tfriend_of\tperson:003\n")
    result = _run("tokenize", str(tmp_path / "new" / "keep"), "--out", str(out), *SMALL)
    assert result.exit_code == 0 and "keep: tokenized" in result.output, result.output
    assert f"note: {out / 'keep'}" not in result.output


def test_stand_alone_toml_files_and_redirected_graphs(tmp_path, example_graph):
    """Several .toml files in one folder are each their own source; a kg.toml folder pointing at data
    elsewhere can move without being tokenized again."""
    configs = tmp_path / "configs"
    configs.mkdir()
    for name in ("ga", "gb"):
        (configs / f"{name}.toml").write_text(f'name = "{name}"\n[files]\nsource = "{example_graph.as_posix()}"\n')
    out = tmp_path / "out"
    result = _run("tokenize", str(configs / "ga.toml"), str(configs / "gb.toml"), "--out", str(out), *SMALL)
    assert result.exit_code == 0 and "note:" not in result.output, result.output
    assert json.loads((out / "ga" / "manifest.json").read_text())["graph"]["root"] == str(configs / "ga.toml")
    result = _run("tokenize", str(configs / "ga.toml"), str(configs / "gb.toml"), "--out", str(out), *SMALL)
    assert result.output.count("up to date, skipped") == 2 and "note:" not in result.output, result.output
    # The pointer moves from before its data in path order to after it: still up to date.
    shutil.copytree(example_graph, tmp_path / "m" / "data")
    (tmp_path / "m" / "a_pointer").mkdir()
    (tmp_path / "m" / "a_pointer" / "kg.toml").write_text(
        f'name = "pointed"\n[files]\nsource = "{(tmp_path / "m" / "data").as_posix()}"\n')
    assert _run("tokenize", str(tmp_path / "m" / "a_pointer"), "--out", str(out), *SMALL).exit_code == 0
    (tmp_path / "m" / "a_pointer").rename(tmp_path / "m" / "z_pointer")
    result = _run("tokenize", str(tmp_path / "m" / "z_pointer"), "--out", str(out), *SMALL)
    assert "pointed: up to date, skipped" in result.output and "note:" not in result.output, result.output


def test_moved_linked_and_clashing_graph_folders(tmp_path, example_graph):
    for name in ("a", "b"):
        shutil.copytree(example_graph, tmp_path / "graphs" / name)
        (tmp_path / "graphs" / name / "kg.toml").write_text(f'name = "{name}"\n')
    out = tmp_path / "out"
    assert _run("tokenize", str(tmp_path / "graphs"), "--out", str(out), *SMALL).exit_code == 0
    # The folder of graphs moves and one graph breaks: the other is up to date and now recorded at its
    # new place (no "no longer exists" note); the failure names the earlier artifact that stays.
    (tmp_path / "graphs").rename(tmp_path / "moved")
    with open(tmp_path / "moved" / "b" / "train.tsv", "a") as handle:
        handle.write("only two\tfields\n")
    result = _run("tokenize", str(tmp_path / "moved"), "--out", str(out), *SMALL)
    assert result.exit_code == 1 and "a: up to date, skipped" in result.output, result.output
    assert "no longer exists" not in result.output
    assert f"({out / 'b'}: still the artifacts of an earlier run" in result.output
    assert json.loads((out / "a" / "manifest.json").read_text())["graph"]["root"] == str(tmp_path / "moved" / "a")
    # An identical copy is up to date; the artifact keeps naming the original.
    shutil.copytree(tmp_path / "moved" / "a", tmp_path / "other" / "a")
    result = _run("tokenize", str(tmp_path / "other" / "a"), "--out", str(out), *SMALL)
    assert result.exit_code == 0 and "a: up to date, skipped" in result.output, result.output
    assert json.loads((out / "a" / "manifest.json").read_text())["graph"]["root"] == str(tmp_path / "moved" / "a")
    # Another folder whose graph has the same name does not replace the artifact while the first exists.
    with open(tmp_path / "other" / "a" / "train.tsv", "a") as handle:
        handle.write("person:000\tfriend_of\tperson:003\n")
    before = (out / "a" / "entity_tokens.parquet").read_bytes()
    result = _run("tokenize", str(tmp_path / "other" / "a"), "--out", str(out), *SMALL)
    assert result.exit_code == 1, result.output
    assert f"{out / 'a'} holds the artifact of {tmp_path / 'moved' / 'a'}" in result.output
    assert (out / "a" / "entity_tokens.parquet").read_bytes() == before
    assert _run("tokenize", str(tmp_path / "other" / "a"), "--out", str(out), "--force", *SMALL).exit_code == 0
    # A linked graph folder is named by its link (as the CLI checks names), not by the folder it points to.
    (tmp_path / "links").mkdir()
    shutil.copytree(example_graph, tmp_path / "plain" / "data")
    (tmp_path / "plain" / "data" / "kg.toml").unlink()   # named by its folder
    (tmp_path / "links" / "graph_x").symlink_to(tmp_path / "plain" / "data", target_is_directory=True)
    result = _run("tokenize", str(tmp_path / "links" / "graph_x"), "--out", str(tmp_path / "out_links"), *SMALL)
    assert result.exit_code == 0 and "graph_x: tokenized" in result.output, result.output
    assert (tmp_path / "out_links" / "graph_x" / "manifest.json").is_file()
    # The same folder by its own path too: two artifacts of one graph, pointed out.
    result = _run("tokenize", str(tmp_path / "plain" / "data"), "--out", str(tmp_path / "out_links"), *SMALL)
    assert result.exit_code == 0, result.output
    assert (f"note: {tmp_path / 'out_links' / 'graph_x'} was made from {tmp_path / 'links' / 'graph_x'}, the same "
            f"folder as {tmp_path / 'out_links' / 'data'}") in result.output
