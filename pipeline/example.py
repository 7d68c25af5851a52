"""A small multimodal example graph, generated on demand (the demo and the tests use it).

People, cities and countries with names, descriptions and Pillow-drawn
pictures, in the canonical KG folder layout. It holds a rule a model can
learn: ``born_in(p, c) & city_in(c, k) -> citizen_of(p, k)``; most
``citizen_of`` triples follow it, so they are predictable from structure.
"""
from __future__ import annotations

import random
import shutil
from pathlib import Path

COUNTRIES = [("france", "France", (0, 85, 164)), ("japan", "Japan", (188, 0, 45)),
             ("brazil", "Brazil", (0, 156, 59)), ("canada", "Canada", (255, 0, 0)),
             ("kenya", "Kenya", (0, 0, 0)), ("norway", "Norway", (186, 12, 47))]
CITIES_PER_COUNTRY = 4
COLOURS = [("red", (220, 30, 30)), ("green", (30, 160, 60)), ("blue", (30, 60, 200)),
           ("yellow", (230, 200, 20)), ("purple", (130, 40, 160))]
FIRST = ["Ada", "Ben", "Chloe", "Dmitri", "Emi", "Farah", "Goran", "Hana", "Ivo", "Jun", "Kofi", "Lena",
         "Mika", "Nour", "Omar", "Pia", "Quinn", "Rosa", "Sven", "Tariq", "Uma", "Vera", "Wim", "Xu",
         "Yara", "Zeno"]
LAST = ["Abe", "Berg", "Costa", "Dubois", "Eze", "Fjord", "Gomez", "Hale", "Ito", "Jensen"]


def _draw(path: Path, colour: tuple[int, int, int], shape: str, seed: int) -> None:
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    img = Image.new("RGB", (96, 96), (245, 245, 240))
    draw = ImageDraw.Draw(img)
    for _ in range(3):  # background clutter so images of one class are not identical
        x, y = rng.randrange(0, 80), rng.randrange(0, 80)
        draw.rectangle([x, y, x + 12, y + 12], fill=(rng.randrange(150, 230),) * 3)
    box = [18 + rng.randrange(-6, 6), 18 + rng.randrange(-6, 6), 78, 78]
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    else:
        draw.polygon([(48, 12), (86, 84), (10, 84)], fill=colour)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


EXAMPLE_MARK = "# written by `tofu example`, which may write this folder again\n"


def _check_example_folder(folder: Path) -> None:
    """Write only into a new or empty folder, or over an earlier example (its kg.toml carries the mark)."""
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"{folder}: is a file; give a new or empty folder for the example graph")
    if folder.is_dir() and any(folder.iterdir()):
        toml = folder / "kg.toml"
        text = toml.read_text(encoding="utf-8", errors="replace") if toml.is_file() else ""
        # An example kg.toml without the mark holds exactly this text.
        if not (text.startswith(EXAMPLE_MARK) or text == 'name = "example"\n'):
            raise FileExistsError(f"{folder}: holds files that `tofu example` did not write; give a new or "
                                  "empty folder (nothing was written)")


# People in the example graph unless told otherwise (`tofu example --people`).
EXAMPLE_PEOPLE = 60
EXAMPLE_SEED = 0


def write_example_graph(folder: Path, people: int = EXAMPLE_PEOPLE, seed: int = EXAMPLE_SEED,
                        images: bool = True) -> Path:
    """Write the example graph into ``folder`` (canonical layout) and return it."""
    rng = random.Random(seed)
    folder = Path(folder)
    _check_example_folder(folder)
    shutil.rmtree(folder / "pictures", ignore_errors=True)   # an earlier example's; drawn anew below
    (folder / "images.tsv").unlink(missing_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    entities: list[tuple[str, str, str]] = []
    triples: list[tuple[str, str, str]] = []
    pictures: dict[str, tuple[tuple[int, int, int], str]] = {}
    cities = []
    for cid, cname, flag in COUNTRIES:
        entities.append((f"country:{cid}", cname, f"{cname} is a country."))
        pictures[f"country:{cid}"] = (flag, "square")
        for i in range(CITIES_PER_COUNTRY):
            city = f"city:{cid}_{i}"
            name = f"{cname[:3]}ville {i}"
            entities.append((city, name, f"{name} is a city in {cname}."))
            triples.append((city, "city_in", f"country:{cid}"))
            pictures[city] = (flag, "triangle")
            cities.append((city, cid))
    for colour, rgb in COLOURS:
        entities.append((f"colour:{colour}", colour, f"the colour {colour}"))
        pictures[f"colour:{colour}"] = (rgb, "square")
    names = set()
    for p in range(people):
        while True:
            name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
            if name not in names:
                names.add(name)
                break
        person = f"person:{p:03d}"
        colour, rgb = rng.choice(COLOURS)
        entities.append((person, name, f"{name} is a person who likes {colour}."))
        pictures[person] = (rgb, "circle")
        city, cid = rng.choice(cities)
        triples.append((person, "born_in", city))
        triples.append((person, "likes_colour", f"colour:{colour}"))
        # The rule holds for 90% of people; the rest emigrated.
        citizen = cid if rng.random() < 0.9 else rng.choice(COUNTRIES)[0]
        triples.append((person, "citizen_of", f"country:{citizen}"))
    people_ids = [e for e, _, _ in entities if e.startswith("person:")]
    for person in people_ids:
        for friend in rng.sample(people_ids, 2):
            if friend != person:
                triples.append((person, "friend_of", friend))
    rng.shuffle(triples)
    # A small graph may leave a colour unliked: list only entities that some triple uses.
    used = {e for h, _, t in triples for e in (h, t)}
    entities = [row for row in entities if row[0] in used]
    pictures = {e: p for e, p in pictures.items() if e in used}
    # Queries: citizen_of facts held out (answerable through the rule), plus a few others.
    citizen = [t for t in triples if t[1] == "citizen_of"]
    # 8 valid and 12 test from 24 people up; smaller graphs hold out about a third, at least one
    # each, so that citizen_of stays in train and every split has queries.
    n_valid, n_test = (8, 12) if people >= 24 else (max(1, people // 6), max(1, people // 4))
    valid, test = citizen[:n_valid], citizen[n_valid:n_valid + n_test]
    held = set(valid) | set(test)
    train = [t for t in triples if t not in held]

    def write(name: str, rows) -> None:
        (folder / name).write_text("".join("\t".join(r) + "\n" for r in rows), encoding="utf-8")

    write("train.tsv", train)
    write("valid.tsv", valid)
    write("test.tsv", test)
    write("entities.tsv", [("id", "name", "description")] + sorted(entities))
    write("relations.tsv", [("id", "name", "description"),
                            ("born_in", "born in", "the city where a person was born"),
                            ("citizen_of", "citizen of", "the country whose citizen a person is"),
                            ("city_in", "city in", "the country a city lies in"),
                            ("friend_of", "friend of", "a friend of a person"),
                            ("likes_colour", "likes colour", "a person's favourite colour")])
    if images:
        for i, (entity, (rgb, shape)) in enumerate(sorted(pictures.items())):
            _draw(folder / "pictures" / entity.replace(":", "_") / "0.png", rgb, shape, seed * 1000 + i)
        (folder / "images.tsv").write_text(
            "".join(f"{e}\tpictures/{e.replace(':', '_')}/0.png\n" for e in sorted(pictures)), encoding="utf-8")
    (folder / "kg.toml").write_text(EXAMPLE_MARK + 'name = "example"\n', encoding="utf-8")
    return folder
