"""Tests for tokenizer_stage.tasks: small hand-made task folders + the shared benchmark data."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

from tokenizer_stage.kg_reader import KGFormatError, KGWarning, Split, Text
from tokenizer_stage.tasks import (
    AlignmentTask,
    LinkingTask,
    Mention,
    detect_task_layout,
    read_alignment_task,
    read_linking_task,
    read_task,
)
from tokenizer_stage.tasks.dbp15k import DBP15K_TEST_FRACTION


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def tsv(*rows: tuple[str, ...]) -> str:
    return "".join("\t".join(r) + "\n" for r in rows)


def quiet(fn: Callable, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KGWarning)
        return fn(*args, **kw)


def expect_error(path: Path, file_name: str, line: int | None, *fragments: str, reader: Callable = read_task) -> KGFormatError:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KGWarning)
        with pytest.raises(KGFormatError) as info:
            reader(path)
    err = info.value
    msg = str(err)
    assert Path(err.path).name == file_name, msg
    assert err.line == line, msg
    assert msg.startswith(f"{err.path}:{line}: " if line is not None else f"{err.path}: "), msg
    if line is not None:
        assert f"{file_name}:{line}:" in msg
    for frag in fragments:
        assert frag in msg, msg
    return err


# --------------------------------------------------------------------------- canonical alignment

ALIGN_TOML = """[task]
kind = "alignment"
graph1 = "kg1"
graph2 = "kg2"
[links]
train = "train_links.tsv"
test = "test_links.tsv"
"""


@pytest.fixture
def alignment(tmp_path: Path) -> Path:
    root = tmp_path / "toy-align"
    # graph 1 uses bracketed URIs (like DB15K), graph 2 plain ids
    write(root / "kg1" / "train.tsv", tsv(("<u:a>", "r", "<u:b>"), ("<u:b>", "r", "<u:c>"), ("<u:c>", "s", "<u:d>")))
    write(root / "kg2" / "train.tsv", tsv(("A", "p", "B"), ("B", "p", "C"), ("C", "q", "D"), ("D", "q", "E")))
    write(root / "train_links.tsv", tsv(("u:a", "A"), ("<u:b>", "B")))
    write(root / "test_links.tsv", "\n" + tsv(("<u:c>", "C"), ("u:d", "<D>")))
    write(root / "task.toml", ALIGN_TOML)
    return root


def test_alignment_canonical(alignment: Path) -> None:
    assert detect_task_layout(alignment) == "alignment:canonical"
    assert detect_task_layout(alignment / "task.toml") == "alignment:canonical"
    task = read_task(alignment)
    assert isinstance(task, AlignmentTask)
    assert task.layout == "canonical" and task.name == "toy-align" and task.root == alignment
    assert [len(g.entities) for g in task.graphs] == [4, 5]
    # labels are the graphs' own, whatever brackets the link file used
    assert task.links == {"train": [("<u:a>", "A"), ("<u:b>", "B")], "test": [("<u:c>", "C"), ("<u:d>", "D")]}
    names = {p.name for p in task.source_files}
    assert {"task.toml", "train_links.tsv", "test_links.tsv", "train.tsv"} <= names
    assert all(p.is_absolute() for p in task.source_files)
    assert task.warnings == []
    assert read_alignment_task(alignment, name="other").name == "other"


def test_alignment_name_from_toml_and_absolute_paths(alignment: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    write(elsewhere / "task.toml", ALIGN_TOML.replace('kind = "alignment"', 'kind = "alignment"\nname = "named"')
          .replace('"kg1"', json.dumps(str(alignment / "kg1"))).replace('"kg2"', json.dumps(str(alignment / "kg2")))
          .replace('"train_links.tsv"', json.dumps(str(alignment / "train_links.tsv")))
          .replace('"test_links.tsv"', json.dumps(str(alignment / "test_links.tsv"))))
    task = read_alignment_task(elsewhere / "task.toml")
    assert task.name == "named" and task.root == elsewhere
    assert len(task.links["train"]) == 2


def test_alignment_all_split_is_deterministic_and_disjoint(tmp_path: Path) -> None:
    root = tmp_path / "split"
    n = 20
    write(root / "kg1" / "train.tsv", tsv(*[(f"a{i}", "r", f"a{i + 1}") for i in range(n)]))
    write(root / "kg2" / "train.tsv", tsv(*[(f"b{i}", "r", f"b{i + 1}") for i in range(n)]))
    write(root / "links.tsv", tsv(*[(f"a{i}", f"b{i}") for i in range(n)]))
    toml = '[task]\nkind = "alignment"\ngraph1 = "kg1"\ngraph2 = "kg2"\n[links]\nall = "links.tsv"\ntest_fraction = 0.7\nseed = {seed}\n'
    write(root / "task.toml", toml.format(seed=0))
    first, again = read_task(root), read_task(root)
    assert first.links == again.links
    train, test = first.links["train"], first.links["test"]
    assert (len(train), len(test)) == (6, 14)
    assert not set(train) & set(test)
    assert set(train) | set(test) == {(f"a{i}", f"b{i}") for i in range(n)}
    assert train == sorted(train, key=lambda p: int(p[0][1:]))  # file order within a split
    write(root / "task.toml", toml.format(seed=1))
    assert read_task(root).links != first.links
    # defaults: test_fraction 0.7, seed 0
    write(root / "task.toml", '[task]\nkind = "alignment"\ngraph1 = "kg1"\ngraph2 = "kg2"\n[links]\nall = "links.tsv"\n')
    assert read_task(root).links == first.links


def test_alignment_missing_skip_drops_and_warns(alignment: Path) -> None:
    write(alignment / "train_links.tsv", tsv(("u:a", "A"), ("u:zzz", "B"), ("<u:b>", "nope"), ("<u:b>", "B")))
    write(alignment / "task.toml", ALIGN_TOML + 'missing = "skip"\n')
    with pytest.warns(KGWarning, match="skipped 2 pair"):
        task = read_task(alignment)
    assert task.links["train"] == [("<u:a>", "A"), ("<u:b>", "B")]
    assert any("1 not in graph 1" in w and "1 more not in graph 2" in w for w in task.warnings)


def test_alignment_repeated_pair_is_dropped_with_warning(alignment: Path) -> None:
    write(alignment / "train_links.tsv", tsv(("u:a", "A"), ("<u:a>", "A")))
    with pytest.warns(KGWarning, match="repeated link pair"):
        task = read_task(alignment)
    assert task.links["train"] == [("<u:a>", "A")]


def test_alignment_pair_in_two_splits_warns(alignment: Path) -> None:
    write(alignment / "test_links.tsv", tsv(("u:a", "A")))
    with pytest.warns(KGWarning, match="both split 'train' and split 'test'"):
        read_task(alignment)


@pytest.mark.parametrize(
    ("file_name", "content", "line", "fragments"),
    [
        ("train_links.tsv", "u:a\tA\nu:b\tB\tX\n", 2, ("expected 2", "3 field(s)")),
        ("train_links.tsv", "u:a\n", 1, ("expected 2", "1 field(s)")),
        ("train_links.tsv", "u:a\tA\n\nu:x\tB\n", 3, ("'u:x'", "not in graph 1", "'kg1'")),
        ("test_links.tsv", "u:c\tC\nu:d\tZ\n", 2, ("'Z'", "not in graph 2", "'kg2'")),
        ("train_links.tsv", "u:a\tA\nu:b\tB\nu:a\tC\n", 3, ("graph-1 entity '<u:a>'", "linked twice", "line 1")),
        ("train_links.tsv", "u:a\tA\nu:b\tA\n", 2, ("graph-2 entity 'A'", "linked twice")),
    ],
)
def test_alignment_link_errors(alignment: Path, file_name: str, content: str, line: int, fragments: tuple[str, ...]) -> None:
    write(alignment / file_name, content)
    expect_error(alignment, file_name, line, *fragments)


def test_alignment_no_links(alignment: Path) -> None:
    write(alignment / "train_links.tsv", "")
    write(alignment / "test_links.tsv", "\n")
    expect_error(alignment, "task.toml", None, "no links")
    write(alignment / "train_links.tsv", "u:nope\tA\n")
    write(alignment / "task.toml", ALIGN_TOML + 'missing = "skip"\n')
    expect_error(alignment, "task.toml", None, "no links", "skipped")


@pytest.mark.parametrize(
    ("toml", "line", "fragments"),
    [
        (ALIGN_TOML.replace('graph2 = "kg2"\n', ""), 1, ("missing required key 'task.graph2'",)),
        (ALIGN_TOML.replace('graph2 = "kg2"', 'graph2 = "kg2"\ncolour = "red"'), 5, ("unknown key 'task.colour'",)),
        (ALIGN_TOML + "[extra]\n", 8, ("unknown key 'extra'",)),
        (ALIGN_TOML.replace('"test_links.tsv"', '"nope.tsv"'), 7, ("'links.test': file does not exist", "nope.tsv")),
        (ALIGN_TOML.replace('"kg2"', '"kg9"'), 4, ("'task.graph2'", "does not exist")),
        (ALIGN_TOML.replace('"kg2"', '"."'), 4, ("'task.graph2'", "is a task folder, not a graph")),
        (ALIGN_TOML.replace('"alignment"', '"matching"'), 2, ("unknown task kind 'matching'",)),
        (ALIGN_TOML + 'all = "train_links.tsv"\n', 6, ("'links.all' and 'links.train' exclude each other",)),
        (ALIGN_TOML + "seed = 3\n", 8, ("'links.seed' only applies with 'links.all'",)),
        (ALIGN_TOML + 'missing = "maybe"\n', 8, ("'links.missing' must be",)),
        ("[task]\nkind = \"alignment\"\ngraph1 = \"kg1\"\ngraph2 = \"kg2\"\n[links]\n", 5, ("needs 'train'",)),
        ("[task\n", 1, ("invalid TOML",)),
    ],
)
def test_alignment_toml_errors(alignment: Path, toml: str, line: int, fragments: tuple[str, ...]) -> None:
    write(alignment / "task.toml", toml)
    expect_error(alignment, "task.toml", line, *fragments)


def test_alignment_bad_test_fraction(alignment: Path) -> None:
    write(alignment / "task.toml", ALIGN_TOML.replace('train = "train_links.tsv"\ntest = "test_links.tsv"\n',
                                                      'all = "train_links.tsv"\ntest_fraction = 1.5\n'))
    expect_error(alignment, "task.toml", 7, "'links.test_fraction' must be a number between 0 and 1")


def test_alignment_graph_errors_propagate(alignment: Path) -> None:
    write(alignment / "kg2" / "train.tsv", "A\tp\n")
    expect_error(alignment, "train.tsv", 1, "expected 3")


def test_wrong_kind_and_plain_graph(alignment: Path, linking: Path) -> None:
    expect_error(linking, "task.toml", 2, "task kind is 'linking', expected 'alignment'", reader=read_alignment_task)
    expect_error(alignment, "task.toml", 2, "task kind is 'alignment', expected 'linking'", reader=read_linking_task)
    plain = alignment / "kg1"
    assert detect_task_layout(plain) is None
    with pytest.raises(KGFormatError, match="not a task folder"):
        read_task(plain)
    kg_toml = write(plain / "kg.toml", 'name = "g1"\n')
    assert detect_task_layout(kg_toml) is None  # a graph's kg.toml is no task
    write(alignment / "task.toml", "x = 1\n")  # a task.toml must say what it is
    with pytest.raises(KGFormatError, match=r"missing required table \[task\]"):
        read_task(alignment)
    with pytest.raises(KGFormatError, match="path does not exist"):
        read_task(alignment / "missing")


# --------------------------------------------------------------------------- DBP15K


@pytest.fixture
def dbp15k(tmp_path: Path) -> Path:
    root = tmp_path / "DBP15K" / "zh_en"
    write(root / "ent_ids_1", tsv(*[(str(i), f"http://zh.dbpedia.org/resource/Z{i}") for i in range(10)]))
    write(root / "ent_ids_2", tsv(*[(str(100 + i), f"http://dbpedia.org/resource/E_{i}") for i in range(12)]))
    write(root / "triples_1", tsv(*[(str(i), "7", str(i + 1)) for i in range(9)]) + "0\t7\t1\n")  # one repeated row
    write(root / "triples_2", tsv(*[(str(100 + i), str(50 + i % 2), str(101 + i)) for i in range(11)]))
    write(root / "ill_ent_ids", tsv(*[(str(i), str(100 + i)) for i in range(10)]))
    names = [[i, ["zed", str(i)]] for i in range(5)] + [[100, ["english", "zero"]]]
    write(root.parent / "translated_ent_name" / "dbp_zh_en.json", json.dumps(names))
    return root


def test_dbp15k(dbp15k: Path) -> None:
    assert detect_task_layout(dbp15k) == "alignment:dbp15k"
    with pytest.warns(KGWarning, match="dropped 1 duplicate triple"):
        task = read_task(dbp15k)
    assert isinstance(task, AlignmentTask) and task.layout == "dbp15k" and task.name == "zh_en"
    g1, g2 = task.graphs
    assert (g1.name, g2.name) == ("zh_en-zh", "zh_en-en")
    assert (len(g1.entities), len(g2.entities)) == (10, 12)
    assert g1.layout == g2.layout == "dbp15k"
    assert g1.triple_sets["train"][0] == ("http://zh.dbpedia.org/resource/Z0", "r7", "http://zh.dbpedia.org/resource/Z1")
    assert len(g1.triple_sets["train"]) == 9 and g1.splits == {"train": Split("train", "train")}
    assert g2.relations == ["r50", "r51"] and g2.relation_text["r50"] == Text(None, None, "none")
    assert g1.entity_text["http://zh.dbpedia.org/resource/Z3"] == Text("zed 3", None, "file")
    assert g1.entity_text["http://zh.dbpedia.org/resource/Z7"] == Text("Z7", None, "derived")
    assert g2.entity_text["http://dbpedia.org/resource/E_0"] == Text("english zero", None, "file")
    assert g2.entity_text["http://dbpedia.org/resource/E_5"] == Text("E 5", None, "derived")
    assert g2.declared_entities == set(g2.entities)  # E_11 is in no triple but is declared
    train, test = task.links["train"], task.links["test"]
    assert (len(train), len(test)) == (3, 7) and not set(train) & set(test)
    assert ("http://zh.dbpedia.org/resource/Z4", "http://dbpedia.org/resource/E_4") in train + test
    assert quiet(read_task, dbp15k).links == task.links
    assert {p.name for p in task.source_files} == {"ent_ids_1", "ent_ids_2", "triples_1", "triples_2", "ill_ent_ids",
                                                   "dbp_zh_en.json"}


def test_dbp15k_is_not_a_linking_task(dbp15k: Path) -> None:
    expect_error(dbp15k, "zh_en", None, "alignment:dbp15k task folder, not linking", reader=read_linking_task)


def test_dbp15k_without_names(dbp15k: Path) -> None:
    (dbp15k.parent / "translated_ent_name" / "dbp_zh_en.json").unlink()
    with pytest.warns(KGWarning) as rec:
        task = read_task(dbp15k)
    assert any("no translated names" in str(w.message) for w in rec)
    assert task.graphs[1].entity_text["http://dbpedia.org/resource/E_0"] == Text("E 0", None, "derived")


@pytest.mark.parametrize(
    ("file_name", "content", "line", "fragments"),
    [
        ("triples_1", "0\t7\t1\n1\t7\t55\n", 2, ("entity id '55' is not in ent_ids_1",)),
        ("triples_2", "100\t7\n", 1, ("2 field(s)",)),
        ("ill_ent_ids", "0\t100\n1\t5\n", 2, ("'5' is not in graph 2",)),
        ("ill_ent_ids", "0\t100\n0\t101\n", 2, ("linked twice",)),
        ("ent_ids_1", "0\tu:x\n1\tu:x\n", 2, ("listed twice",)),
    ],
)
def test_dbp15k_errors(dbp15k: Path, file_name: str, content: str, line: int, fragments: tuple[str, ...]) -> None:
    write(dbp15k / file_name, content)
    expect_error(dbp15k, file_name, line, *fragments)


def test_dbp15k_bad_names_json(dbp15k: Path) -> None:
    write(dbp15k.parent / "translated_ent_name" / "dbp_zh_en.json", '[[0, ["a"]], [1, "b"]]')
    expect_error(dbp15k, "dbp_zh_en.json", None, "entry 1")


# --------------------------------------------------------------------------- canonical linking

LINK_TOML = """[task]
kind = "linking"
name = "toy-kb"
[kb]
entities = "kb.tsv"
images = "images/mapping.tsv"
[mentions]
train = "train.tsv"
test = "test.tsv"
"""


@pytest.fixture
def linking(tmp_path: Path) -> Path:
    root = tmp_path / "toy-link"
    write(root / "kb.tsv", tsv(("E1", "Paris", "capital of France"), ("E2", "Paris Hilton", ""), ("E3", "Texas")))
    write(root / "images" / "e1.jpg", "x")
    write(root / "images" / "mapping.tsv", tsv(("E1", "e1.jpg")))
    write(root / "pics" / "m1.png", "x")
    write(root / "train.tsv", tsv(("m1", "Paris", "Paris is lovely.", "E1", "pics/m1.png"), ("m2", " Hilton ", "", "E2")))
    write(root / "test.tsv", tsv(("m3", "Paris", "Paris, Texas", ""), ("m4", "Texas", "Paris, Texas", "E3", "")))
    write(root / "task.toml", LINK_TOML)
    return root


def test_linking_canonical(linking: Path) -> None:
    assert detect_task_layout(linking) == "linking:canonical"
    task = read_task(linking)
    assert isinstance(task, LinkingTask) and task.layout == "canonical" and task.name == "toy-kb"
    kb = task.kb
    assert kb.entities == ["E1", "E2", "E3"] and kb.declared_entities == {"E1", "E2", "E3"}
    assert kb.triple_sets == {} and kb.splits == {}
    assert kb.entity_text["E1"] == Text("Paris", "capital of France", "file")
    assert kb.entity_text["E2"] == Text("Paris Hilton", None, "file")
    assert kb.images == {"E1": [linking / "images" / "e1.jpg"]}
    assert task.mentions["train"] == [
        Mention("m1", "Paris", "Paris is lovely.", "E1", linking / "pics" / "m1.png"),
        Mention("m2", "Hilton", "", "E2"),
    ]
    assert [(m.mention_id, m.entity, m.image) for m in task.mentions["test"]] == [("m3", None, None), ("m4", "E3", None)]
    names = {p.name for p in task.source_files}
    assert {"task.toml", "kb.tsv", "mapping.tsv", "train.tsv", "test.tsv", "e1.jpg", "m1.png"} <= names
    assert task.warnings == []


def test_linking_with_graph(linking: Path) -> None:
    write(linking / "kg" / "train.tsv", tsv(("E1", "located_in", "E4"), ("E3", "contains", "E1")))
    write(linking / "kg" / "entities.tsv", "id\tname\tdescription\nE1\tParis (graph)\tfrom the graph\nE4\tFrance\t\n")
    write(linking / "task.toml", LINK_TOML.replace('[mentions]', 'graph = "kg"\n[mentions]'))
    task = read_task(linking)
    kb = task.kb
    assert kb.entities == ["E1", "E2", "E3", "E4"]  # graph-only entity E4 stays as a context node
    assert len(kb.triple_sets["train"]) == 2 and "train" in kb.splits
    assert kb.entity_text["E1"] == Text("Paris", "capital of France", "file")  # kb.tsv wins
    assert kb.entity_text["E4"].name == "France"
    assert {"E1", "E2", "E3"} <= kb.declared_entities
    assert kb.images["E1"] == [linking / "images" / "e1.jpg"]
    assert kb.name == "toy-kb"


def test_linking_missing_mention_image_warns(linking: Path) -> None:
    write(linking / "train.tsv", tsv(("m1", "Paris", "", "E1", "pics/none.png")))
    with pytest.warns(KGWarning, match="1 mention image"):
        task = read_task(linking)
    assert task.mentions["train"][0].image is None


@pytest.mark.parametrize(
    ("file_name", "content", "line", "fragments"),
    [
        ("train.tsv", "m1\tParis\tctx\tE1\nm2\t  \tctx\tE1\n", 2, ("mention 'm2'", "empty mention text")),
        ("test.tsv", "m3\tParis\tctx\tE9\n", 1, ("gold entity 'E9' is not in the KB",)),
        ("test.tsv", "m3\tParis\tctx\n", 1, ("got 3 field(s)",)),
        ("test.tsv", "m3\tParis\tctx\tE1\tx.png\textra\n", 1, ("got 6 field(s)",)),
        ("test.tsv", "\nm1\tParis\tctx\tE1\n", 2, ("duplicate mention id 'm1'", "train.tsv:1")),
        ("kb.tsv", "E1\tParis\t\nE2\tHilton\nE1\tAgain\t\n", 3, ("duplicate KB id 'E1'", "line 1")),
        ("kb.tsv", "E1\n", 1, ("got 1 field(s)",)),
        ("kb.tsv", "", None, ("no KB entities",)),
    ],
)
def test_linking_errors(linking: Path, file_name: str, content: str, line: int | None, fragments: tuple[str, ...]) -> None:
    write(linking / file_name, content)
    expect_error(linking, file_name, line, *fragments)


@pytest.mark.parametrize(
    ("toml", "line", "fragments"),
    [
        (LINK_TOML.replace('"kb.tsv"', '"nokb.tsv"'), 5, ("'kb.entities': file does not exist",)),
        (LINK_TOML.replace('entities = "kb.tsv"\n', ""), 4, ("missing required key 'kb.entities'",)),
        (LINK_TOML.replace('test = "test.tsv"', 'tests = "test.tsv"'), 9, ("unknown key 'mentions.tests'",)),
        (LINK_TOML.replace('train = "train.tsv"\ntest = "test.tsv"\n', ""), 7, ("needs at least one",)),
        (LINK_TOML.replace("[mentions]", "[mention]"), 7, ("unknown key 'mention'",)),
    ],
)
def test_linking_toml_errors(linking: Path, toml: str, line: int, fragments: tuple[str, ...]) -> None:
    write(linking / "task.toml", toml)
    expect_error(linking, "task.toml", line, *fragments)


def test_linking_no_mentions(linking: Path) -> None:
    write(linking / "train.tsv", "")
    write(linking / "test.tsv", "\n")
    expect_error(linking, "task.toml", None, "no mentions")


# --------------------------------------------------------------------------- WikiMEL / Richpedia-MEL


def write_json(path: Path, data) -> Path:
    return write(path, json.dumps(data, ensure_ascii=False, indent=1))


@pytest.fixture
def wikimel(tmp_path: Path) -> Path:
    root = tmp_path / "WikiMEL"
    samples = {
        "1": {"id": "1", "sentence": "A and B.", "mentions": ["A", "B"], "entities": ["Aa", "Bb"], "answer": ["Q1", "Q2"]},
        "2": {"id": "2", "sentence": "Only C.", "mentions": ["C"], "entities": ["Cc"], "answer": ["Q3"]},
        "3": {"id": "3", "sentence": "A again.", "mentions": ["A"], "entities": ["Aa"], "answer": ["Q1"]},
        "4": {"id": "4", "sentence": "In no split.", "mentions": ["B"], "entities": ["Bb"], "answer": ["Q2"]},
    }
    write_json(root / "Wikidata-MEL.json", samples)
    write_json(root / "splits.json", {"train": ["1", "99"], "dev": ["2"], "test": ["3", "98", "97"]})
    write_json(root / "qid2ne.json", {"Q1": "Aa", "Q2": "Bb", "Q3": "Cc", "Q4": "Dd"})
    write_json(root / "qid2abs.json", {"Q1": "Sex: female.", "Q2": "", "Q3": "Occupation: x."})
    return root


def test_wikimel(wikimel: Path) -> None:
    assert detect_task_layout(wikimel) == "linking:wikimel"
    with pytest.warns(KGWarning) as rec:
        task = read_task(wikimel)
    assert isinstance(task, LinkingTask) and task.layout == "wikimel" and task.name == "WikiMEL"
    assert list(task.mentions) == ["train", "valid", "test"]
    assert task.mentions["train"] == [Mention("1:0", "A", "A and B.", "Q1"), Mention("1:1", "B", "A and B.", "Q2")]
    assert [m.mention_id for m in task.mentions["valid"]] == ["2:0"]
    assert [m.mention_id for m in task.mentions["test"]] == ["3:0"]
    assert task.kb.entities == ["Q1", "Q2", "Q3", "Q4"] and task.kb.triple_sets == {}
    assert task.kb.entity_text["Q1"] == Text("Aa", "Sex: female.", "file")
    assert task.kb.entity_text["Q2"] == Text("Bb", None, "file")
    assert task.kb.entity_text["Q4"] == Text("Dd", None, "file")
    messages = [str(w.message) for w in rec]
    assert any("split 'train': dropped 1 of 2" in m for m in messages)
    assert any("split 'test': dropped 2 of 3" in m for m in messages)
    assert any("1 sample(s) are in no split" in m for m in messages)
    assert {p.name for p in task.source_files} == {"Wikidata-MEL.json", "splits.json", "qid2ne.json", "qid2abs.json"}


@pytest.mark.parametrize(
    ("change", "file_name", "fragments"),
    [
        (lambda s: s["2"].update(answer=["Q9"]), "Wikidata-MEL.json", ("sample 2: gold entity 'Q9'", "not in the KB")),
        (lambda s: s["1"].update(answer=["Q1"]), "Wikidata-MEL.json", ("sample 1: 'answer' must list one entity per mention",)),
        (lambda s: s["3"].update(mentions="A", answer=5), "Wikidata-MEL.json", ("sample 3: answer 0",)),
        (lambda s: s.update({"2": ["not", "an", "object"]}), "Wikidata-MEL.json", ("sample 2: expected an object",)),
    ],
)
def test_wikimel_errors(wikimel: Path, change, file_name: str, fragments: tuple[str, ...]) -> None:
    samples = json.loads((wikimel / "Wikidata-MEL.json").read_text(encoding="utf-8"))
    change(samples)
    write_json(wikimel / "Wikidata-MEL.json", samples)
    expect_error(wikimel, file_name, None, *fragments)


def test_wikimel_sample_in_two_splits_and_bad_json(wikimel: Path) -> None:
    write_json(wikimel / "splits.json", {"train": ["1"], "test": ["1"]})
    expect_error(wikimel, "Wikidata-MEL.json", None, "sample 1:", "mention id '1:0' occurs in split 'train'")
    write(wikimel / "splits.json", '{"train": ["1"],\n "test": [}')
    expect_error(wikimel, "splits.json", 2, "invalid JSON")


def test_wikimel_blank_mention_is_dropped(wikimel: Path) -> None:
    samples = json.loads((wikimel / "Wikidata-MEL.json").read_text(encoding="utf-8"))
    samples["1"]["mentions"] = ["A", " \n"]
    write_json(wikimel / "Wikidata-MEL.json", samples)
    with pytest.warns(KGWarning) as rec:
        task = read_task(wikimel)
    assert any("dropped 1 mention(s) with empty text (1:1)" in str(w.message) for w in rec)
    assert [m.mention_id for m in task.mentions["train"]] == ["1:0"]


def test_wikimel_sample_without_answer_is_kept_unlabelled_and_said(wikimel: Path) -> None:
    samples = json.loads((wikimel / "Wikidata-MEL.json").read_text(encoding="utf-8"))
    del samples["3"]["answer"]
    write_json(wikimel / "Wikidata-MEL.json", samples)
    with pytest.warns(KGWarning) as rec:
        task = read_task(wikimel)
    assert any("1 mention(s) of split 'test' have no answer: predicted, not scored or trained on (3:0)"
               in str(w.message) for w in rec)
    assert [(m.mention_id, m.entity) for m in task.mentions["test"]] == [("3:0", None)]


@pytest.fixture
def richpedia(tmp_path: Path) -> Path:
    root = tmp_path / "RichpediaMEL"

    def sample(q: str, mention: str, sentence: str) -> dict:
        return {"id": q, "sentence": sentence, "mentions": mention, "entities": mention, "answer": q}

    write_json(root / "train.json", {"Q1": sample("Q1", "Ann", "Ann  was a painter."), "Q2": sample("Q2", "Bo ", "Bo.")})
    write_json(root / "test.json", {"Q3": sample("Q3", "Cy", "Cy  is a poet.")})
    write_json(root / "qid2ne.json", {"Q1": "Ann", "Q2": "Bo", "Q3": "Cy"})
    write_json(root / "qid2abs.json", {"Q1": "Occupation: painter.", "Q2": "", "Q3": "Occupation: poet."})
    return root


def test_richpedia(richpedia: Path) -> None:
    assert detect_task_layout(richpedia) == "linking:richpedia"
    task = read_task(richpedia, name="rp")
    assert isinstance(task, LinkingTask) and task.layout == "richpedia" and task.name == "rp"
    assert task.mentions == {
        "train": [Mention("Q1:0", "Ann", "Ann  was a painter.", "Q1"), Mention("Q2:0", "Bo", "Bo.", "Q2")],
        "test": [Mention("Q3:0", "Cy", "Cy  is a poet.", "Q3")],
    }
    assert task.kb.entities == ["Q1", "Q2", "Q3"] and task.kb.layout == "richpedia"
    assert task.kb.entity_text["Q2"] == Text("Bo", None, "file")
    assert task.warnings == []


def test_richpedia_errors(richpedia: Path) -> None:
    data = json.loads((richpedia / "test.json").read_text(encoding="utf-8"))
    data["Q3"]["answer"] = "Q77"
    write_json(richpedia / "test.json", data)
    err = expect_error(richpedia, "test.json", None, "sample Q3: gold entity 'Q77'", "is not in the KB")
    assert str(err).startswith(f"{richpedia / 'test.json'}: sample Q3: ")
    write_json(richpedia / "test.json", {"Q1": data["Q3"] | {"answer": "Q1"}})
    expect_error(richpedia, "test.json", None, "mention id 'Q1:0' occurs in split 'train' and again in 'test'")
    write_json(richpedia / "test.json", {})
    write_json(richpedia / "train.json", {})
    expect_error(richpedia, "RichpediaMEL", None, "no mentions")
    write_json(richpedia / "qid2ne.json", {"Q1": 3})
    expect_error(richpedia, "qid2ne.json", None, "entry Q1: expected a string")


# --------------------------------------------------------------------------- shared benchmark data


@pytest.mark.data
def test_data_dbp15k_zh_en(data_root: Path) -> None:
    task = quiet(read_task, data_root / "alignment" / "DBP15K" / "zh_en")
    assert task.layout == "dbp15k"
    assert [len(g.entities) for g in task.graphs] == [19388, 19572]
    assert [len(g.triple_sets["train"]) for g in task.graphs] == [70414, 95142]
    assert [len(g.relations) for g in task.graphs] == [1701, 1323]
    assert {k: len(v) for k, v in task.links.items()} == {"train": 4500, "test": 10500}
    assert not set(task.links["train"]) & set(task.links["test"])
    # translated names cover every entity
    assert all(t.source == "file" for g in task.graphs for t in g.entity_text.values())
    assert task.graphs[1].entity_text["http://dbpedia.org/resource/Kim_Dae-jung"].name == "kim dae jung"


@pytest.mark.data
def test_data_wikimel(data_root: Path) -> None:
    task = quiet(read_task, data_root / "linking" / "WikiMEL")
    assert task.layout == "wikimel"
    assert len(task.kb.entities) == 18880
    assert {k: len(v) for k, v in task.mentions.items()} == {"train": 18088, "valid": 2627, "test": 5131}
    dropped = [int(w.split(": dropped ")[1].split()[0]) for w in task.warnings if "with no sample" in w]
    assert sum(dropped) == 2281  # the data README: 2,281 split ids have no sample


@pytest.mark.data
def test_data_richpedia(data_root: Path) -> None:
    task = quiet(read_task, data_root / "linking" / "RichpediaMEL")
    assert task.layout == "richpedia"
    assert len(task.kb.entities) == 17805
    assert len(task.mentions["test"]) == 3561
    # train.json has one sample (Q79179) whose mention is only whitespace
    assert len(task.mentions["train"]) == 14243
    assert any("Q79179:0" in w for w in task.warnings)


@pytest.mark.data
def test_data_db15k_mkgw_alignment(data_root: Path, tmp_path: Path) -> None:
    links = data_root / "alignment" / "mkg_ent_links" / "MKG-W" / "ent_links"
    toml = "\n".join([
        "[task]",
        'kind = "alignment"',
        'name = "db15k-mkgw"',
        f"graph1 = {json.dumps(str(data_root / 'mmkg' / 'DB15K'))}",
        f"graph2 = {json.dumps(str(data_root / 'mmkg' / 'MKG-W'))}",
        "[links]",
        f"all = {json.dumps(str(links))}",
        'missing = "skip"',
    ])
    write(tmp_path / "task.toml", toml + "\n")
    task = quiet(read_task, tmp_path)
    train, test = task.links["train"], task.links["test"]
    pairs = 2246  # the data README's count of ent_links rows with both ends in the two graphs
    assert len(train) + len(test) == pairs
    assert len(test) == round(pairs * DBP15K_TEST_FRACTION)  # the default test_fraction
    assert all(a.startswith("<http://dbpedia.org/resource/") for a, _ in train + test)  # DB15K's own labels
    rows = len(links.read_text().splitlines())
    assert any(f"skipped {rows - pairs} pair(s)" in w for w in task.warnings)
