"""Tests for tokenizer_stage.kg_reader: small hand-made graphs + the shared benchmark data."""

from __future__ import annotations

import pickle
import unicodedata
import warnings
from pathlib import Path

import pytest

from conftest import shared_data

from tokenizer_stage.kg_reader import (
    KGFormatError,
    KGWarning,
    KnowledgeGraph,
    Split,
    Text,
    derive_name,
    detect_layout,
    graph_name,
    read_kg,
)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def tsv(*rows: tuple[str, ...]) -> str:
    return "".join("\t".join(r) + "\n" for r in rows)


def read_quiet(path, **kw) -> KnowledgeGraph:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KGWarning)
        return read_kg(path, **kw)


def expect_error(path, file_name: str, line: int | None, *fragments: str) -> KGFormatError:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KGWarning)
        with pytest.raises(KGFormatError) as info:
            read_kg(path)
    err = info.value
    msg = str(err)
    assert Path(err.path).name == file_name, msg
    assert err.line == line, msg
    prefix = f"{err.path}:{line}: " if line is not None else f"{err.path}: "
    assert msg.startswith(prefix), msg
    assert file_name in msg
    for frag in fragments:
        assert frag in msg, msg
    return err


# --------------------------------------------------------------------------- canonical


@pytest.fixture
def canonical(tmp_path: Path) -> Path:
    root = tmp_path / "toy"
    write(root / "train.tsv", tsv(("a", "likes", "b"), ("b", "likes", "c"), ("c", "_hypernym", "a")))
    write(root / "valid.tsv", tsv(("a", "likes", "c")))
    write(root / "test.tsv", tsv(("b", "_hypernym", "a")))
    # 'z' is declared only (in no triple); 'b' has a description but no name.
    write(root / "entities.tsv", "id\tname\tdescription\na\tAlpha\tfirst letter\nb\t\tsecond letter\nz\tZed\n")
    write(root / "relations.tsv", "id\tname\nlikes\tis fond of\n")
    for f in ("2.png", "1.JPG", "notes.txt"):
        write(root / "images" / "a" / f, "x")
    write(root / "images" / "ghost" / "g.jpg", "x")  # folder for an unknown entity
    write(root / "pics" / "c.jpeg", "x")
    write(root / "images.tsv", tsv(("c", "pics/c.jpeg"), ("c", "pics/missing.png")))
    return root


def test_canonical_layout(canonical: Path) -> None:
    assert detect_layout(canonical) == "canonical"
    with pytest.warns(KGWarning) as rec:
        kg = read_kg(canonical)
    assert kg.name == "toy" and kg.layout == "canonical" and kg.root == canonical
    assert kg.triple_sets == {
        "train": [("a", "likes", "b"), ("b", "likes", "c"), ("c", "_hypernym", "a")],
        "valid": [("a", "likes", "c")],
        "test": [("b", "_hypernym", "a")],
    }
    assert kg.splits == {"train": Split("train", "train"), "valid": Split("train", "valid"), "test": Split("train", "test")}
    assert kg.entities == ["a", "b", "c", "z"]
    assert kg.relations == ["_hypernym", "likes"]
    assert kg.declared_entities == {"a", "b", "z"}
    assert kg.entity_text == {
        "a": Text("Alpha", "first letter", "file"),
        "b": Text("b", "second letter", "file"),  # name derived, description from file
        "c": Text("c", None, "derived"),
        "z": Text("Zed", None, "file"),
    }
    assert kg.relation_text == {"likes": Text("is fond of", None, "file"), "_hypernym": Text("hypernym", None, "derived")}
    assert kg.images == {
        "a": [canonical / "images" / "a" / "1.JPG", canonical / "images" / "a" / "2.png"],
        "c": [canonical / "pics" / "c.jpeg"],
    }
    assert kg.inference_graph("valid") == kg.triple_sets["train"]
    assert kg.queries("test") == [("b", "_hypernym", "a")]
    assert kg.graph_entities("valid") == {"a", "b", "c", "z"}
    assert kg.graph_relations("valid") == {"likes", "_hypernym"}
    expected_sources = sorted(
        canonical / f
        for f in (
            "train.tsv", "valid.tsv", "test.tsv", "entities.tsv", "relations.tsv", "images.tsv",
            "images/a/1.JPG", "images/a/2.png", "pics/c.jpeg",
        )
    )
    assert kg.source_files == expected_sources
    assert kg.triple_files["valid"] == canonical / "valid.tsv"
    joined = "\n".join(kg.warnings)
    assert "missing.png" in joined and "skipped 1 image" in joined
    assert "ignored 1 image folder" in joined
    # z is declared in entities.tsv but in no triple: kept as a candidate, and said.
    assert f"{canonical / 'entities.tsv'}: 1 entity id(s) in no triple, kept as isolated entities: 'z'" in kg.warnings
    assert len(rec) == len(kg.warnings) == 3
    with pytest.raises(KeyError, match="unknown split"):
        kg.queries("nope")


def test_canonical_graph_tsv_and_optional_splits(tmp_path: Path) -> None:
    root = tmp_path / "g"
    write(root / "train.tsv", tsv(("a", "r", "b")))
    write(root / "graph.tsv", tsv(("x", "r", "y"), ("y", "s", "z")))
    write(root / "test.tsv", tsv(("z", "r", "x")))
    kg = read_kg(root)
    assert kg.splits == {"train": Split("train", "train"), "test": Split("graph", "test")}
    assert kg.graph_entities("test") == {"x", "y", "z"}
    assert kg.entities == ["a", "b", "x", "y", "z"]

    only_graph = tmp_path / "only_graph"
    write(only_graph / "graph.tsv", tsv(("x", "r", "y")))
    write(only_graph / "valid.tsv", tsv(("y", "r", "x")))
    kg = read_kg(only_graph)
    assert kg.splits == {"valid": Split("graph", "valid")}
    assert set(kg.triple_sets) == {"graph", "valid"}


def test_canonical_images_dir_freebase_folder_names(tmp_path: Path) -> None:
    root = tmp_path / "fb"
    write(root / "train.tsv", tsv(("/m/0_jm", "/film/film/genre", "/m/02x")))
    write(root / "images" / "m.0_jm" / "google_1.jpg", "x")
    write(root / "images" / "/m/02x".replace("/", "_") / "x.jpg", "x")  # '_m_02x' matches nothing
    kg = read_quiet(root)
    assert kg.images == {"/m/0_jm": [root / "images" / "m.0_jm" / "google_1.jpg"]}
    assert kg.entity_text["/m/0_jm"] == Text(None, None, "none")
    assert kg.relation_text["/film/film/genre"] == Text("film film genre", None, "derived")
    assert any("ignored 1 image folder" in w for w in kg.warnings)


# --------------------------------------------------------------------------- grail / ingram / openke


def make_grail(tmp_path: Path) -> Path:
    x = tmp_path / "toy_v1"
    write(x / "train.txt", tsv(("a", "r", "b"), ("b", "s", "c")))
    write(x / "valid.txt", tsv(("a", "s", "c")))
    write(x / "test.txt", tsv(("c", "r", "a")))
    ind = tmp_path / "toy_v1_ind"
    write(ind / "train.txt", tsv(("p", "r", "q"), ("q", "r", "w")))
    write(ind / "valid.txt", tsv(("p", "r", "w")))
    write(ind / "test.txt", tsv(("w", "r", "p")))
    return x


def test_grail_with_ind_sibling(tmp_path: Path) -> None:
    x = make_grail(tmp_path)
    assert detect_layout(x) == "grail"
    kg = read_kg(x)
    assert kg.layout == "grail" and kg.name == "toy_v1"
    assert set(kg.triple_sets) == {"train", "valid", "test", "ind_graph", "ind_valid", "ind_test"}
    assert kg.triple_sets["ind_graph"] == [("p", "r", "q"), ("q", "r", "w")]
    assert kg.splits == {
        "train": Split("train", "train"),
        "valid": Split("train", "valid"),
        "test": Split("ind_graph", "ind_test"),
        "ind_valid": Split("ind_graph", "ind_valid"),
    }
    assert kg.entities == ["a", "b", "c", "p", "q", "w"]
    assert kg.relations == ["r", "s"]
    assert kg.graph_entities("test") == {"p", "q", "w"}
    assert kg.queries("test") == [("w", "r", "p")]
    assert len(kg.source_files) == 6 and kg.warnings == []


def test_grail_plain_and_ind_given_directly(tmp_path: Path) -> None:
    x = make_grail(tmp_path)
    kg = read_kg(tmp_path / "toy_v1_ind")
    assert kg.layout == "grail"
    assert set(kg.triple_sets) == {"train", "valid", "test"}
    assert kg.splits == {"train": Split("train", "train"), "valid": Split("train", "valid"), "test": Split("train", "test")}
    assert kg.entities == ["p", "q", "w"]
    (tmp_path / "toy_v1_ind" / "train.txt").unlink()
    (tmp_path / "toy_v1_ind" / "valid.txt").unlink()
    (tmp_path / "toy_v1_ind" / "test.txt").unlink()
    kg = read_kg(x)  # sibling without train.txt: plain graph
    assert kg.splits["test"] == Split("train", "test")
    assert kg.entities == ["a", "b", "c"]


def test_ingram(tmp_path: Path) -> None:
    root = tmp_path / "NL-x"
    write(root / "train.txt", tsv(("concept_city_york", "concept:locatedin", "concept_country_usa")))
    write(root / "msg.txt", tsv(("m1", "r1", "m2"), ("m2", "r2", "m3")))
    write(root / "valid.txt", tsv(("m1", "r2", "m3")))
    write(root / "test.txt", tsv(("m3", "r1", "m1")))
    assert detect_layout(root) == "ingram"
    kg = read_kg(root)
    assert set(kg.triple_sets) == {"train", "msg", "valid", "test"}
    assert kg.splits == {"train": Split("train", "train"), "valid": Split("msg", "valid"), "test": Split("msg", "test")}
    assert kg.graph_entities("test") == {"m1", "m2", "m3"}
    assert kg.graph_entities("train") == {"concept_city_york", "concept_country_usa"}
    assert kg.entity_text["concept_city_york"] == Text("city york", None, "derived")
    assert kg.relation_text["concept:locatedin"] == Text("locatedin", None, "derived")
    assert kg.entity_text["m1"] == Text("m1", None, "derived")


def make_openke(root: Path) -> Path:
    write(root / "entity2id.txt", "4\n<http://dbpedia.org/resource/A_b> 0\nB 1\nC 2\nD 3\n")
    write(root / "relation2id.txt", "2\nr0 0\nr1 1\n")
    write(root / "train2id.txt", "3\n0 1 0\n1 2 1\n0 1 0\n")  # head tail relation; one duplicate
    write(root / "valid2id.txt", "2\n0 1 0\n2 3 1\n")  # first repeats train; D/r1 only declared
    write(root / "test2id.txt", "1\n2 0 1\n")
    return root


def test_openke(tmp_path: Path) -> None:
    root = make_openke(tmp_path / "mm")
    assert detect_layout(root) == "openke"
    with pytest.warns(KGWarning) as rec:
        kg = read_kg(root)
    a = "<http://dbpedia.org/resource/A_b>"
    assert kg.triple_sets == {
        "train": [(a, "r0", "B"), ("B", "r1", "C")],
        "valid": [(a, "r0", "B"), ("C", "r1", "D")],
        "test": [("C", "r1", a)],
    }
    assert kg.splits == {"train": Split("train", "train"), "valid": Split("train", "valid"), "test": Split("train", "test")}
    assert kg.entities == sorted([a, "B", "C", "D"])
    assert kg.declared_entities == {a, "B", "C", "D"}
    assert kg.graph_entities("valid") == {a, "B", "C", "D"}
    assert kg.entity_text[a] == Text("A b", None, "derived")
    assert len(kg.warnings) == 3 and len(rec) == 3
    assert "train2id.txt: dropped 1 duplicate triple" in kg.warnings[0]
    # D is declared in entity2id.txt but in no train triple: a query about it reads its tokens alone.
    assert ("valid2id.txt: 1 of 2 query triples of split 'valid' ask about an entity or relation declared but "
            "in no triple of its inference graph 'train' (train2id.txt): 1 distinct, e.g. 'D' at line 3") \
        in kg.warnings[1]
    assert "valid2id.txt: 1 of 2 distinct query triples of split 'valid' also occur" in kg.warnings[2]


# --------------------------------------------------------------------------- kg.toml


def test_kg_toml_source_text_and_images(tmp_path: Path) -> None:
    make_grail(tmp_path / "data")
    write(tmp_path / "text" / "entity2text.txt", "a\talpha, the first letter\nzzz\tunused\np\tpee")  # no final newline
    write(tmp_path / "text" / "entity2wikidata.json", '{"a": {"label": "A!", "description": "desc a"}, "q": {"label": "Queue", "description": ""}}')
    write(tmp_path / "text" / "relation2text.txt", "r\tarr\n")
    write(tmp_path / "imgs" / "p.png", "x")
    write(tmp_path / "imgs" / "map.tsv", tsv(("p", "p.png"), ("nobody", "p.png")))
    cfg = tmp_path / "cfg" / "mine"
    write(
        cfg / "kg.toml",
        'name = "my_graph"\n\n[files]\nsource = "../../data/toy_v1"\n'
        'entity_text = ["../../text/entity2text.txt", "../../text/entity2wikidata.json"]\n'
        'relation_text = "../../text/relation2text.txt"\nimages = "../../imgs/map.tsv"\n',
    )
    assert detect_layout(cfg) == "grail"
    kg = read_quiet(cfg)
    assert kg.name == "my_graph" and kg.layout == "grail" and kg.root == cfg
    assert kg.splits["test"] == Split("ind_graph", "ind_test")
    # the first file gives names, the JSON fills in what is missing
    assert kg.entity_text["a"] == Text("alpha, the first letter", "desc a", "file")
    assert kg.entity_text["p"] == Text("pee", None, "file")
    assert kg.entity_text["q"] == Text("Queue", None, "file")
    assert kg.entity_text["b"] == Text("b", None, "derived")
    assert "zzz" not in kg.entity_text and "zzz" not in kg.entities  # text files do not declare ids
    assert kg.relation_text == {"r": Text("arr", None, "file"), "s": Text("s", None, "derived")}
    assert kg.images == {"p": [tmp_path / "imgs" / "p.png"]}
    assert any("ignored 1 row(s)" in w for w in kg.warnings)
    assert cfg / "kg.toml" in kg.source_files and tmp_path / "imgs" / "p.png" in kg.source_files
    assert tmp_path / "text" / "entity2wikidata.json" in kg.source_files
    assert read_quiet(cfg / "kg.toml", name="override").name == "override"


def test_kg_toml_canonical_files_and_layout(tmp_path: Path) -> None:
    write(tmp_path / "elsewhere" / "tr.txt", tsv(("a", "r", "b")))
    write(tmp_path / "elsewhere" / "te.txt", tsv(("b", "r", "a")))
    root = tmp_path / "g"
    write(root / "kg.toml", '[files]\ntrain = "../elsewhere/tr.txt"\ntest = "../elsewhere/te.txt"\n')
    assert detect_layout(root) == "canonical"
    kg = read_kg(root)
    assert kg.triple_sets == {"train": [("a", "r", "b")], "test": [("b", "r", "a")]}
    assert kg.splits == {"train": Split("train", "train"), "test": Split("train", "test")}

    ing = tmp_path / "ing"
    write(ing / "train.txt", tsv(("a", "r", "b")))
    write(ing / "kg.toml", 'layout = "ingram"\n')  # explicit layout, but msg.txt is missing
    assert detect_layout(ing) == "ingram"
    expect_error(ing, "msg.txt", None, "missing required file")


def test_kg_toml_wordnet_style_text(tmp_path: Path) -> None:
    root = tmp_path / "wn"
    write(root / "train.txt", tsv(("00001740", "_hypernym", "00002137")))
    write(tmp_path / "e2t.txt", "00001740\tentity, that which is perceived\n00002137\tabstraction, a general concept")
    write(root / "kg.toml", '[files]\nentity_text = "../e2t.txt"\n')
    kg = read_kg(root)
    assert kg.entity_text == {
        "00001740": Text("entity", "that which is perceived", "file"),
        "00002137": Text("abstraction", "a general concept", "file"),
    }


@pytest.mark.parametrize(
    "toml, line, fragment",
    [
        ('name = "x"\ncolour = "red"\n', 2, "unknown key 'colour'"),
        ('name = "x"\n\n[colours]\nred = 1\n', 3, "unknown key 'colours'"),
        ('name = "x"\n\n[files]\ntrain = "train.tsv"\nextra = "y"\n', 5, "unknown key 'files.extra'"),
        ('[files]\nentity_text = "nowhere.txt"\n', 2, "does not exist"),
        ('[files]\nsource = "../missing_dir"\n', 2, "does not exist"),
        ('layout = "weird"\n', 1, "unknown layout"),
        ('name = \n', 1, "invalid TOML"),
        ('[files]\ntrain = "train.tsv"\nsource = "."\n', 2, "only applies to the canonical layout"),
    ],
)
def test_kg_toml_errors(tmp_path: Path, toml: str, line: int, fragment: str) -> None:
    root = tmp_path / "g"
    write(root / "train.tsv", tsv(("a", "r", "b")))
    write(root / "train.txt", tsv(("a", "r", "b")))  # 'source = "."' then detects grail
    write(root / "kg.toml", toml)
    expect_error(root, "kg.toml", line, fragment)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "content, line",
    [
        ("a\tr\tb\nc\tr\n", 2),  # two fields
        ("a\tr\tb\n\n\nc\tr\td\te\n", 4),  # four fields; blank lines still count
        ("a\tr\tb\nc\t\td\n", 2),  # empty relation
        ("a\tr\tb\r\n \tr\td\r\n", 2),  # whitespace-only head
        ("a r b\n", 1),  # spaces, not tabs
    ],
)
def test_malformed_row(tmp_path: Path, content: str, line: int) -> None:
    write(tmp_path / "train.tsv", content)
    expect_error(tmp_path, "train.tsv", line, "expected 3 non-empty tab-separated fields")


def test_blank_lines_and_crlf(tmp_path: Path) -> None:
    write(tmp_path / "train.tsv", "\na\tr\tb\r\n\r\n  \nb\tr\tc")
    kg = read_kg(tmp_path)
    assert kg.triple_sets["train"] == [("a", "r", "b"), ("b", "r", "c")]


def test_missing_required_file(tmp_path: Path) -> None:
    write(tmp_path / "valid.tsv", tsv(("a", "r", "b")))
    (tmp_path / "kg.toml").write_text('layout = "canonical"\n')
    err = expect_error(tmp_path, "train.tsv", None, "missing required file")
    assert err.path == str(tmp_path / "train.tsv")
    empty = tmp_path / "nothing"
    empty.mkdir()
    expect_error(empty, "nothing", None, "cannot detect the layout")
    with pytest.raises(KGFormatError, match="does not exist"):
        read_kg(tmp_path / "absent")


def test_empty_graph(tmp_path: Path) -> None:
    write(tmp_path / "train.tsv", "\n\n")
    write(tmp_path / "valid.tsv", tsv(("a", "r", "b")))
    expect_error(tmp_path, "train.tsv", None, "empty graph")
    ing = tmp_path / "ing"
    write(ing / "train.txt", tsv(("a", "r", "b")))
    write(ing / "msg.txt", "")
    write(ing / "test.txt", tsv(("a", "r", "b")))
    expect_error(ing, "msg.txt", None, "empty graph")


def test_query_entity_not_in_inference_graph(tmp_path: Path) -> None:
    write(tmp_path / "train.tsv", tsv(("a", "r", "b"), ("b", "r", "c")))
    write(tmp_path / "test.tsv", tsv(("a", "r", "c"), ("c", "r", "a"), ("c", "r", "stranger")))
    expect_error(tmp_path, "test.tsv", 3, "tail entity 'stranger'", "split 'test'")
    # a declared entity (entities.tsv) is allowed in queries
    write(tmp_path / "entities.tsv", "id\tname\nstranger\tThe Stranger\n")
    kg = read_kg(tmp_path)
    assert "stranger" in kg.graph_entities("test") and kg.entity_text["stranger"].name == "The Stranger"


def test_query_relation_not_in_inference_graph(tmp_path: Path) -> None:
    root = tmp_path / "ing"
    write(root / "train.txt", tsv(("x", "new_rel", "y")))
    write(root / "msg.txt", tsv(("a", "r", "b")))
    write(root / "valid.txt", tsv(("a", "r", "b")))
    write(root / "test.txt", "\n" + tsv(("b", "r", "a"), ("a", "new_rel", "b")))
    expect_error(root, "test.txt", 3, "relation 'new_rel'", "'msg'")


def test_duplicate_triples_warning(tmp_path: Path) -> None:
    write(tmp_path / "train.tsv", tsv(("a", "r", "b"), ("b", "r", "c"), ("a", "r", "b"), ("a", "r", "b")))
    write(tmp_path / "valid.tsv", tsv(("a", "r", "c")))
    with pytest.warns(KGWarning, match=r"train\.tsv: dropped 2 duplicate triple"):
        kg = read_kg(tmp_path)
    assert kg.triple_sets["train"] == [("a", "r", "b"), ("b", "r", "c")]
    assert kg.warnings == [f"{tmp_path / 'train.tsv'}: dropped 2 duplicate triple(s); kept 2 distinct of 4 rows"]


def test_ids_with_surrounding_spaces_are_kept_and_warned_about(tmp_path: Path) -> None:
    write(tmp_path / "train.tsv", tsv(("a", "r", "b"), ("b", "r", "c"), ("a", "r", "c ")))
    write(tmp_path / "valid.tsv", tsv(("a", "r", "c")))
    with pytest.warns(KGWarning, match=r"train\.tsv: 1 row\(s\) have an id with leading or trailing spaces "
                                       r"\(first: line 3\)"):
        kg = read_kg(tmp_path)
    assert "c " in kg.entities and "c" in kg.entities


def test_query_overlapping_graph_warns(tmp_path: Path) -> None:
    write(tmp_path / "train.tsv", tsv(("a", "r", "b"), ("b", "r", "c")))
    write(tmp_path / "valid.tsv", tsv(("a", "r", "b"), ("a", "r", "c")))
    with pytest.warns(KGWarning, match=r"1 of 2 distinct query triples of split 'valid' also occur"):
        read_kg(tmp_path)


def test_a_query_about_an_entity_in_no_graph_triple_is_answered_and_warned_about(tmp_path: Path) -> None:
    """A declared entity with no edge in the inference graph is kept (its tokens still place it), but a
    query about one is said: the model reads only its tokens there."""
    write(tmp_path / "train.tsv", tsv(("a", "r", "b"), ("b", "r", "c")))
    write(tmp_path / "entities.tsv", "id\tname\na\tAlpha\nlone\tLonely\n")
    write(tmp_path / "test.tsv", tsv(("a", "r", "c"), ("lone", "r", "b"), ("a", "r", "lone")))
    with pytest.warns(KGWarning, match=r"test\.tsv: 2 of 3 query triples of split 'test' ask about an entity or "
                                       r"relation declared but in no triple of its inference graph 'train' "
                                       r"\(train\.tsv\): 1 distinct, e\.g\. 'lone' at line 2"):
        kg = read_kg(tmp_path)
    assert ("lone", "r", "b") in kg.triple_sets["test"]
    write(tmp_path / "test.tsv", tsv(("a", "r", "c")))   # every query part has an edge: nothing said
    write(tmp_path / "entities.tsv", "id\tname\na\tAlpha\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error", KGWarning)
        read_kg(tmp_path)


@pytest.mark.parametrize(
    "entity2id, train, file_name, line, fragment",
    [
        ("3\nA 0\nB 1\n", "1\n0 1 0\n", "entity2id.txt", 1, "header says 3 records but the file has 2"),
        ("x\nA 0\n", "1\n0 1 0\n", "entity2id.txt", 1, "record count"),
        ("2\nA 0\nB one\n", "1\n0 1 0\n", "entity2id.txt", 3, "entity id must be a non-negative integer"),
        ("2\nA 0\nB 0\n", "1\n0 1 0\n", "entity2id.txt", 3, "used twice"),
        ("2\nA 0\nB 1\n", "2\n0 1 0\n1 0\n", "train2id.txt", 3, "got 2 field(s)"),
        ("2\nA 0\nB 1\n", "1\n0 7 0\n", "train2id.txt", 2, "entity id 7 is not in entity2id.txt"),
        ("2\nA 0\nB 1\n", "1\n0 1 5\n", "train2id.txt", 2, "relation id 5 is not in relation2id.txt"),
        ("2\nA 0\nB 1\n", "1\n0 1 -1\n", "train2id.txt", 2, "relation id must be a non-negative integer"),
        ("2\nA 0\nB 1\n", "2\n0 1 0\n", "train2id.txt", 1, "header says 2 records but the file has 1"),
        ("2\nA 0\nB 1\n", "0\n", "train2id.txt", None, "empty graph"),
    ],
)
def test_openke_errors(tmp_path: Path, entity2id: str, train: str, file_name: str, line: int | None, fragment: str) -> None:
    write(tmp_path / "entity2id.txt", entity2id)
    write(tmp_path / "relation2id.txt", "1\nr 0\n")
    write(tmp_path / "train2id.txt", train)
    expect_error(tmp_path, file_name, line, fragment)


def test_openke_name_split_on_last_whitespace(tmp_path: Path) -> None:
    write(tmp_path / "entity2id.txt", "2\nNew York\t0\nB   1\n")
    write(tmp_path / "relation2id.txt", "1\nr 0\n")
    write(tmp_path / "train2id.txt", "1\n0 1 0\n")
    assert read_kg(tmp_path).triple_sets["train"] == [("New York", "r", "B")]
    # An id in entity2id.txt that no triple uses is kept and named with the file that lists it.
    write(tmp_path / "entity2id.txt", "3\nNew York\t0\nB   1\nLonely 2\n")
    with pytest.warns(KGWarning, match="entity2id.txt: 1 entity id\\(s\\) in no triple, kept as isolated "
                                       "entities: 'Lonely'"):
        assert "Lonely" in read_kg(tmp_path).entities


def test_text_and_image_file_errors(tmp_path: Path) -> None:
    write(tmp_path / "train.tsv", tsv(("a", "r", "b")))
    write(tmp_path / "entities.tsv", "a\tAlpha\n")
    expect_error(tmp_path, "entities.tsv", 1, "header row")
    (tmp_path / "entities.tsv").unlink()
    write(tmp_path / "images.tsv", "a\tpics/a.jpg\nb\n")
    expect_error(tmp_path, "images.tsv", 2, "expected 'entity id<TAB>image path'")
    (tmp_path / "images.tsv").unlink()
    (tmp_path / "train.tsv").write_bytes(b"a\tr\tb\nb\tr\t\xff\n")
    expect_error(tmp_path, "train.tsv", 2, "not valid UTF-8")


def test_error_object() -> None:
    err = KGFormatError("bad row", Path("/x/train.tsv"), 7)
    assert str(err) == "/x/train.tsv:7: bad row"
    assert (err.path, err.line, err.reason) == ("/x/train.tsv", 7, "bad row")
    assert str(KGFormatError("gone", "/x/y.tsv")) == "/x/y.tsv: gone"
    assert str(KGFormatError("plain")) == "plain"
    assert isinstance(err, ValueError)
    back = pickle.loads(pickle.dumps(err))
    assert (str(back), back.path, back.line, back.reason) == (str(err), err.path, err.line, err.reason)


# --------------------------------------------------------------------------- headers, symlinks, control characters


@pytest.mark.parametrize("header", ["head\trelation\ttail", "Subject\tPredicate\tObject", "h\tr\tt",
                                    " source \tRELATION\ttarget", "head_label\trelation_label\ttail_label"])
def test_header_row_is_skipped_with_a_note(tmp_path: Path, header: str) -> None:
    write(tmp_path / "train.tsv", "\n" + header + "\n" + tsv(("a", "r", "b"), ("b", "r", "c")))
    write(tmp_path / "test.tsv", header + "\n" + tsv(("a", "r", "c")))
    with pytest.warns(KGWarning) as rec:
        kg = read_kg(tmp_path)
    assert kg.triple_sets == {"train": [("a", "r", "b"), ("b", "r", "c")], "test": [("a", "r", "c")]}
    assert kg.entities == ["a", "b", "c"] and kg.relations == ["r"]
    notes = [str(w.message) for w in rec]
    assert f"{tmp_path / 'train.tsv'}:2: header row {header!r} skipped (column names, not a triple)" in notes
    assert any(n.startswith(f"{tmp_path / 'test.tsv'}:1: header row") for n in notes)


def test_header_row_rules(tmp_path: Path) -> None:
    # Column names in another order would read tails as relations: refused at their line.
    write(tmp_path / "train.tsv", "head\ttail\trelation\n" + tsv(("a", "r", "b")))
    expect_error(tmp_path, "train.tsv", 1, "another order than head, relation, tail")
    # Only a first row is a header; the same words later are a triple like any other.
    write(tmp_path / "train.tsv", tsv(("a", "r", "b"), ("head", "relation", "tail")))
    kg = read_kg(tmp_path)
    assert kg.triple_sets["train"] == [("a", "r", "b"), ("head", "relation", "tail")] and not kg.warnings
    # GraIL and InGram .txt files are read the same way.
    write(tmp_path / "ing" / "train.txt", "h\tr\tt\n" + tsv(("a", "r", "b")))
    write(tmp_path / "ing" / "msg.txt", "subject\tpredicate\tobject\n" + tsv(("a", "r", "b")))
    assert read_quiet(tmp_path / "ing").triple_sets == {"train": [("a", "r", "b")], "msg": [("a", "r", "b")]}


@pytest.mark.parametrize("folder_files, broken", [
    ({"train.tsv": tsv(("a", "r", "b"))}, "valid.tsv"),
    ({"train.tsv": tsv(("a", "r", "b"))}, "test.tsv"),
    ({"train.tsv": tsv(("a", "r", "b"))}, "entities.tsv"),
    ({"train.txt": tsv(("a", "r", "b"))}, "valid.txt"),                        # grail
    ({"train.txt": tsv(("a", "r", "b")), "msg.txt": tsv(("a", "r", "b"))}, "test.txt"),   # ingram
    ({"entity2id.txt": "2\na 0\nb 1\n", "relation2id.txt": "1\nr 0\n", "train2id.txt": "1\n0 1 0\n"},
     "valid2id.txt"),                                                           # openke
])
def test_dangling_or_looping_symlink_is_an_error_not_an_absent_file(tmp_path: Path, folder_files: dict[str, str],
                                                                     broken: str) -> None:
    for name, text in folder_files.items():
        write(tmp_path / name, text)
    (tmp_path / broken).symlink_to(tmp_path / "gone" / broken)
    expect_error(tmp_path, broken, None, "symbolic link to a file that does not exist", str(tmp_path / "gone"))
    (tmp_path / broken).unlink()
    (tmp_path / broken).symlink_to(tmp_path / "loop_b")   # broken -> loop_b -> broken
    (tmp_path / "loop_b").symlink_to(tmp_path / broken)
    expect_error(tmp_path, broken, None, "cannot read file: Too many levels of symbolic links")


def test_dangling_train_file_is_named_not_taken_for_no_graph(tmp_path: Path) -> None:
    (tmp_path / "train.tsv").symlink_to(tmp_path / "gone.tsv")
    assert detect_layout(tmp_path) == "canonical"
    expect_error(tmp_path, "train.tsv", None, "symbolic link to a file that does not exist")


@pytest.mark.parametrize("code", [c for c in range(0x110000) if unicodedata.category(chr(c)) == "Cc"
                                  and chr(c) not in "\t\n"])
def test_control_characters_in_labels_are_refused(tmp_path: Path, code: int) -> None:
    # TAB separates fields and LF (or CRLF) ends lines; any other control character in a label is an error.
    write(tmp_path / "train.tsv", tsv(("a", "r", "b"), ("a", "r", f"b{chr(code)}c")) + "x\tr\tb\r\n")
    expect_error(tmp_path, "train.tsv", 2, f"control character U+{code:04X} in a label")


def test_control_characters_in_declared_ids_are_refused_and_other_characters_kept(tmp_path: Path) -> None:
    odd = "b\u00a0\u200bé"   # no-break space (Zs), zero-width space (Cf), a letter: no control characters
    write(tmp_path / "train.tsv", tsv(("a", "r", odd)))
    assert read_kg(tmp_path).entities == ["a", odd]
    write(tmp_path / "entities.tsv", "id\tname\na\tAlpha\nz\x00\tZed\n")
    expect_error(tmp_path, "entities.tsv", 3, "control character U+0000")
    openke = tmp_path / "openke"
    write(openke / "entity2id.txt", "2\na 0\nb\x1b 1\n")
    write(openke / "relation2id.txt", "1\nr 0\n")
    write(openke / "train2id.txt", "1\n0 1 0\n")
    expect_error(openke, "entity2id.txt", 3, "control character U+001B")


# --------------------------------------------------------------------------- one triples file


def family_rows(people: int = 30) -> list[tuple[str, str, str]]:
    """A connected graph of ``people`` entities and 3 relations, 3 triples per person."""
    return [row for i in range(people) for row in (
        (f"p{i}", "knows", f"p{(i + 1) % people}"), (f"p{i}", "likes", f"p{(i + 3) % people}"),
        (f"p{i}", "works_with", f"p{(i * 7 + 2) % people}"))]


def test_one_triples_file_given_alone_is_the_train_split(tmp_path: Path) -> None:
    path = write(tmp_path / "data" / "family.tsv", "head\trelation\ttail\n" + tsv(*family_rows()))
    assert (detect_layout(path), graph_name(path)) == ("canonical", "family")
    with pytest.warns(KGWarning) as rec:
        kg = read_kg(path)
    assert kg.name == "family" and kg.root == tmp_path / "data"
    assert kg.splits == {"train": Split("train", "train")}
    assert sorted(kg.triple_sets["train"]) == sorted(family_rows())
    assert kg.source_files == [path]
    assert any("one triples file and no split asked for: its 90 triples are the train split" in str(w.message)
               for w in rec)


def test_one_csv_file_with_quotes_and_header(tmp_path: Path) -> None:
    path = write(tmp_path / "export.csv", 'subject,predicate,object\n"Smith, J.",knows,Ann\r\nAnn,"knows",Bob\n')
    kg = read_quiet(path)
    assert kg.triple_sets["train"] == [("Smith, J.", "knows", "Ann"), ("Ann", "knows", "Bob")]
    write(tmp_path / "bad.csv", 'a,knows,b\na,"kno"ws,b\n')
    expect_error(tmp_path / "bad.csv", "bad.csv", 2, "malformed CSV row")
    write(tmp_path / "short.csv", "a,knows,b\na,knows\n")
    expect_error(tmp_path / "short.csv", "short.csv", 2, "expected 3 non-empty comma-separated fields")


def split_of(kg: KnowledgeGraph) -> dict[str, list[tuple[str, str, str]]]:
    return {name: kg.queries(name) for name in kg.splits}


def test_kg_toml_split_of_one_file_covers_train_and_is_seeded(tmp_path: Path) -> None:
    rows = family_rows()
    write(tmp_path / "g" / "all.tsv", tsv(*rows))
    write(tmp_path / "g" / "kg.toml", 'name = "fam"\n[files]\nall = "all.tsv"\n[split]\n')
    kg = read_kg(tmp_path / "g")
    assert kg.name == "fam" and not kg.warnings
    assert kg.splits == {"train": Split("train", "train"), "valid": Split("train", "valid"),
                         "test": Split("train", "test")}
    parts = split_of(kg)
    assert {k: len(v) for k, v in parts.items()} == {"train": 72, "valid": 9, "test": 9}   # 0.8 / 0.1 / 0.1 of 90
    assert sorted(parts["train"] + parts["valid"] + parts["test"]) == sorted(rows)       # a partition
    for held_out in (parts["valid"], parts["test"]):
        assert ents_of(held_out) <= ents_of(parts["train"]) and rels_of(held_out) <= rels_of(parts["train"])
    assert parts["train"] == [r for r in rows if r in set(parts["train"])]                # file order kept
    # Row order never changes the split; the seed does.
    write(tmp_path / "g" / "all.tsv", tsv(*reversed(rows)))
    assert {k: sorted(v) for k, v in split_of(read_kg(tmp_path / "g")).items()} == \
        {k: sorted(v) for k, v in parts.items()}
    write(tmp_path / "g" / "kg.toml", '[files]\nall = "all.tsv"\n[split]\nseed = 1\n')
    assert sorted(split_of(read_kg(tmp_path / "g"))["test"]) != sorted(parts["test"])
    # Shares written: an unwritten valid share is 0 (no valid split), train is the rest.
    write(tmp_path / "g" / "kg.toml", '[files]\nall = "all.tsv"\n[split]\ntest = 0.2\n')
    kg = read_kg(tmp_path / "g")
    assert {k: len(v) for k, v in split_of(kg).items()} == {"train": 72, "test": 18}


@pytest.mark.parametrize("toml, line, fragment", [
    ('[files]\ntrain = "all.tsv"\n[split]\n', 3, "name that file as 'files.all'"),
    ('[files]\nall = "all.tsv"\ntest = "all.tsv"\n', 3, "'files.all' holds every triple: it cannot be combined"),
    ('[files]\nall = "all.tsv"\n[split]\ntrain = 0.8\nvalid = 0.3\n', 3, "must sum to 1"),
    ('[files]\nall = "all.tsv"\n[split]\nvalid = 0.5\ntest = 0.5\n', 3, "some left for train"),
    ('[files]\nall = "all.tsv"\n[split]\ntest = "0.1"\n', 4, "'split.test' must be a share from 0 to 1"),
    ('[files]\nall = "all.tsv"\n[split]\nseed = 1.5\n', 4, "'split.seed' must be an integer"),
    ('[files]\nall = "all.tsv"\n[split]\nratio = 0.8\n', 4, "unknown key 'split.ratio'"),
])
def test_kg_toml_split_errors(tmp_path: Path, toml: str, line: int, fragment: str) -> None:
    write(tmp_path / "all.tsv", tsv(*family_rows()))
    write(tmp_path / "kg.toml", toml)
    expect_error(tmp_path, "kg.toml", line, fragment)


def test_split_that_cannot_cover_every_entity_is_refused(tmp_path: Path) -> None:
    # A star of 10 triples: each brings its own leaf entity, so train would need all of them.
    write(tmp_path / "all.tsv", tsv(*[("hub", "has", f"leaf{i}") for i in range(10)]))
    write(tmp_path / "kg.toml", '[files]\nall = "all.tsv"\n[split]\n')
    expect_error(tmp_path, "all.tsv", None, "cannot split 10 triples 0.8 / 0.1 / 0.1",
                 "takes 10 triples here, more than its 8")


def test_folder_with_one_unnamed_triples_file_says_how_to_read_it(tmp_path: Path) -> None:
    write(tmp_path / "mine" / "export.csv", "a,r,b\n")
    expect_error(tmp_path / "mine", "mine", None, "cannot detect the layout",
                 "a file of all triples (export.csv?) is read when given itself, or named as 'files.all'")


# --------------------------------------------------------------------------- derive_name


@pytest.mark.parametrize(
    "ident, expected",
    [
        ("concept:person:john_doe", "john doe"),
        ("concept:agentactsinlocation", "agentactsinlocation"),
        ("concept_city_york", "city york"),
        ("<http://dbpedia.org/resource/Anarchism>", "Anarchism"),
        ("http://dbpedia.org/resource/Anarchism", "Anarchism"),
        ("<http://dbpedia.org/resource/Franciaorsz%C3%A1g>", "Franciaország"),
        ("<http://dbpedia.org/resource/AC/DC>", "AC/DC"),
        ("<http://dbpedia.org/resource/1._FC_N%C3%BCrnberg>", "1. FC Nürnberg"),
        ("<http://www.w3.org/2000/01/rdf-schema#seeAlso>", "seeAlso"),
        ("<http://dbpedia.org/ontology/country>", "country"),
        ("Gilles_Mbang_Ondo", "Gilles Mbang Ondo"),
        ("/film/film/genre", "film film genre"),
        ("_hypernym", "hypernym"),
        ("_member_of_domain_usage", "member of domain usage"),
        ("dog.n.01", "dog"),
        ("hot_dog.n.02", "hot dog"),
        ("wasBornIn", "wasBornIn"),
        ("/m/0hvvf", None),
        ("/g/11b6_x2z1", None),
        ("m.0_jm", None),
        ("Q42", None),
        ("P106", None),
        ("http://www.wikidata.org/entity/Q370252", None),
        ("http://www.wikidata.org/entity/P161", None),
        ("06083243", None),
        ("n01443537", None),
        ("12-34_56", None),
        ("", None),
    ],
)
def test_derive_name(ident: str, expected: str | None) -> None:
    assert derive_name(ident) == expected


# --------------------------------------------------------------------------- shared benchmark data


def data_root() -> Path:
    root = shared_data()
    if root is None or not (root / "README.md").is_file():
        pytest.skip("../shared/data not found (set TOFU_DATA to the benchmark data folder)")
    return root


def ents_of(triples) -> set[str]:
    return {h for h, _, _ in triples} | {t for _, _, t in triples}


def rels_of(triples) -> set[str]:
    return {r for _, r, _ in triples}


def distinct_lines(path: Path) -> tuple[int, int]:
    rows = [ln for ln in path.read_text(encoding="utf-8").split("\n")[1:] if ln.strip()]
    return len(rows), len(set(rows))


@pytest.mark.data
def test_data_grail_fb237_v1_with_ind() -> None:
    kg = read_kg(data_root() / "grail" / "fb237_v1")
    assert kg.layout == "grail" and kg.name == "fb237_v1"
    counts = {k: len(v) for k, v in kg.triple_sets.items()}
    assert counts == {"train": 4245, "valid": 489, "test": 492, "ind_graph": 1993, "ind_valid": 206, "ind_test": 205}
    transductive = kg.triple_sets["train"] + kg.triple_sets["valid"] + kg.triple_sets["test"]
    inductive = kg.triple_sets["ind_graph"] + kg.triple_sets["ind_valid"] + kg.triple_sets["ind_test"]
    assert len(ents_of(transductive)) == 1594 and len(rels_of(transductive)) == 180
    assert len(ents_of(inductive)) == 1093 and len(rels_of(inductive)) == 142
    assert len(kg.entities) == 1594 + 1093  # README: 0 shared entities
    assert len(kg.relations) == 180  # README: no _ind relation is unseen in train
    assert len(kg.graph_entities("test")) == 1093  # README: every query entity occurs in train.txt
    assert kg.splits["test"] == Split("ind_graph", "ind_test")
    assert kg.warnings == []
    assert all(t.source == "none" for t in kg.entity_text.values())  # MIDs are opaque
    assert kg.relation_text["/film/film/genre"].name == "film film genre"
    assert len(kg.source_files) == 6


@pytest.mark.data
def test_data_grail_wn18rr_v1_ind_direct() -> None:
    kg = read_kg(data_root() / "grail" / "WN18RR_v1_ind")
    assert {k: len(v) for k, v in kg.triple_sets.items()} == {"train": 1618, "valid": 185, "test": 188}
    assert set(kg.splits) == {"train", "valid", "test"} and kg.splits["test"] == Split("train", "test")
    assert len(kg.entities) == 922 and len(kg.relations) == 8
    assert kg.relation_text["_hypernym"] == Text("hypernym", None, "derived")


@pytest.mark.data
def test_data_ingram_nl25() -> None:
    kg = read_kg(data_root() / "ingram" / "NL-25")
    assert kg.layout == "ingram"
    assert {k: len(v) for k, v in kg.triple_sets.items()} == {"train": 17578, "msg": 2230, "valid": 743, "test": 744}
    assert len(kg.graph_entities("test")) == 2146 and len(kg.graph_relations("test")) == 120
    assert len(kg.graph_entities("train")) == 4396 and len(kg.graph_relations("train")) == 106
    assert len(kg.entities) == 4396 + 2146  # README: fully inductive
    assert len(kg.graph_relations("test") - kg.graph_relations("train")) == 52
    assert kg.warnings == []


def unlinked_queries(kg, split: str) -> int:
    """Query triples of ``split`` with an entity or relation in no triple of its inference graph."""
    graph = kg.triple_sets[kg.splits[split].graph]
    ents, rels = ents_of(graph), {r for _, r, _ in graph}
    return sum(h not in ents or r not in rels or t not in ents for h, r, t in kg.triple_sets[split])


@pytest.mark.data
def test_data_openke_db15k() -> None:
    root = data_root() / "mmkg" / "DB15K"
    with pytest.warns(KGWarning) as rec:
        kg = read_kg(root)
    assert kg.layout == "openke"
    assert len(kg.entities) == 12842 and len(kg.relations) == 279
    assert len(kg.declared_entities) == 12842
    valid_lines, valid_distinct = distinct_lines(root / "valid2id.txt")
    assert (valid_lines, valid_distinct) == (9904, 7481)  # README
    assert {k: len(v) for k, v in kg.triple_sets.items()} == {"train": 79222, "valid": valid_distinct, "test": 9902}
    train = set(kg.triple_sets["train"])
    in_train = sum(t in train for t in kg.triple_sets["valid"])
    assert in_train == 6584  # README: distinct valid triples also in train
    assert not train.intersection(kg.triple_sets["test"])  # README: test has no overlap
    assert kg.warnings == [str(w.message) for w in rec]
    assert len(kg.warnings) == 4
    assert f"dropped {valid_lines - valid_distinct} duplicate" in kg.warnings[0] and "valid2id.txt" in kg.warnings[0]
    assert f"{unlinked_queries(kg, 'valid')} of {valid_distinct} query triples of split 'valid' ask about" in kg.warnings[1]
    assert f"{in_train} of {valid_distinct} distinct query triples of split 'valid'" in kg.warnings[2]
    assert f"{unlinked_queries(kg, 'test')} of 9902 query triples of split 'test' ask about" in kg.warnings[3]
    # 57 valid/test entities are not in train (README); they are declared, so reading succeeds
    query_ents = ents_of(kg.triple_sets["valid"] + kg.triple_sets["test"])
    assert len(query_ents - ents_of(kg.triple_sets["train"])) == 57
    assert kg.entity_text["<http://dbpedia.org/resource/Anarchism>"] == Text("Anarchism", None, "derived")
    assert kg.relation_text["<http://dbpedia.org/ontology/country>"].name == "country"


@pytest.mark.data
def test_data_openke_mkg_w_and_y() -> None:
    kg = read_kg(data_root() / "mmkg" / "MKG-W")
    assert len(kg.entities) == 15000 and len(kg.relations) == 169
    assert {k: len(v) for k, v in kg.triple_sets.items()} == {"train": 34196, "valid": 4276, "test": 4274}
    # Only that some valid and test triples ask about entities with no train edge (declared in entity2id.txt).
    assert [w.split(" of ")[0].rsplit(": ", 1)[1] for w in kg.warnings] == \
        [str(unlinked_queries(kg, "valid")), str(unlinked_queries(kg, "test"))]
    assert all("ask about an entity or relation declared but in no triple" in w for w in kg.warnings)
    query_ents = ents_of(kg.triple_sets["valid"] + kg.triple_sets["test"])
    assert len(query_ents - ents_of(kg.triple_sets["train"])) == 491
    assert kg.entity_text["http://www.wikidata.org/entity/Q370252"] == Text(None, None, "none")
    kg = read_kg(data_root() / "mmkg" / "MKG-Y")
    assert len(kg.entities) == 15000 and len(kg.relations) == 28
    assert {k: len(v) for k, v in kg.triple_sets.items()} == {"train": 21310, "valid": 2665, "test": 2663}
    assert kg.entity_text["Gilles_Mbang_Ondo"] == Text("Gilles Mbang Ondo", None, "derived")


@pytest.mark.data
def test_data_kg_toml_fb237_text(tmp_path: Path) -> None:
    data = data_root()
    text_dir = data / "text" / "FB15k-237"
    write(
        tmp_path / "kg.toml",
        f'name = "fb237_v1_text"\n[files]\nsource = "{data / "grail" / "fb237_v1"}"\n'
        f'entity_text = "{text_dir / "entity2text.txt"}"\nrelation_text = "{text_dir / "relation2text.txt"}"\n',
    )
    kg = read_kg(tmp_path)
    assert kg.name == "fb237_v1_text" and len(kg.entities) == 1594 + 1093
    names = dict(ln.split("\t", 1) for ln in (text_dir / "entity2text.txt").read_text(encoding="utf-8").split("\n") if ln)
    assert all(t.source == "file" for t in kg.entity_text.values())
    assert all(kg.entity_text[e].name == names[e] for e in kg.entities)
    assert all(t.source == "file" for t in kg.relation_text.values())
    assert text_dir / "entity2text.txt" in kg.source_files and tmp_path / "kg.toml" in kg.source_files


@pytest.mark.data
def test_data_wn18rr_images_and_text(tmp_path: Path) -> None:
    data = data_root()
    mapping = data / "images" / "imagenet_wn18rr" / "mapping.tsv"
    n_rows = sum(1 for ln in mapping.read_text(encoding="utf-8").split("\n") if ln.strip())
    assert n_rows == 418  # README
    cfg = tmp_path / "wn_ind"
    write(
        cfg / "kg.toml",
        f'[files]\nsource = "{data / "grail" / "WN18RR_v1_ind"}"\nimages = "{mapping}"\n'
        f'entity_text = "{data / "text" / "WN18RR" / "entity2text.txt"}"\n',
    )
    kg = read_quiet(cfg)
    assert kg.name == "wn_ind" and len(kg.entities) == 922
    assert len(kg.images) == 4  # README: WN18RR_v1_ind has 4 entities with an image
    assert all(len(p) == 1 and p[0].is_file() and p[0].parent == mapping.parent for p in kg.images.values())
    assert any(f"ignored {418 - 4} row(s)" in w for w in kg.warnings)
    assert all(t.source == "file" and t.name and t.description for t in kg.entity_text.values())
    for ent, paths in kg.images.items():  # ImageNet label and WordNet lemma come from the same synset
        assert paths[0].name.startswith(f"n{ent}_")

    full = tmp_path / "wn_full"
    write(full / "kg.toml", f'[files]\nsource = "{data / "grail" / "WN18RR_v1"}"\nimages = "{mapping}"\n')
    kg = read_quiet(full)
    assert kg.splits["test"] == Split("ind_graph", "ind_test")
    assert len(kg.images) == 6 + 4  # README: v1 6 + v1_ind 4, disjoint entity sets
