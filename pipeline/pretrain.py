"""Pretraining recipes: one TOML file names the graphs, the tokenizer, the model and the budget.

``tofu pretrain RECIPE`` writes a ``kg.toml`` per graph (pointing into the
data folder, copying nothing), tokenizes them with codebooks fitted on those
graphs, trains, and with ``--ship`` installs the result as the packaged model
(:mod:`artifacts.shipped`). See recipes/pretrain.toml.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from artifacts.root import artifact_name_problem

# Zero-shot evaluation graphs that must never be trained on (the project's data rules).
FORBIDDEN_SOURCES = ("ingram/",)
GRAPH_FILE_KEYS = ("entity_text", "relation_text", "images")


class RecipeError(ValueError):
    """A recipe that cannot be run, with the file and the reason."""


@dataclass
class Recipe:
    path: Path
    name: str
    graphs: list[dict[str, str]]
    tokenizer: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list, repr=False)

    def where(self, section: str | None = None, key: str | None = None, graph: int | str | None = None) -> str:
        """``path:line`` of a setting, for errors: ``key`` in ``[section]``, in a ``[[graph]]`` (its
        number from 1, or its name), or at the top; the table's header without ``key``; the path
        alone when the text does not show it (a key written as a dotted or inline table)."""
        return _where(self.path, self.lines, section, key, graph)


def _where(path: Path, lines: list[str], section: str | None, key: str | None, graph: int | str | None) -> str:
    """:meth:`Recipe.where` over a recipe's text, before its Recipe exists."""
    if isinstance(graph, str):
        graph = _graph_number(lines, graph)
        if graph is None:
            return str(path)
    line = _setting_line(lines, section, key, graph)
    return f"{path}:{line}" if line else str(path)


_HEADER = re.compile(r"\s*\[(\[)?\s*([A-Za-z0-9_-]+)\s*\]")


def _graph_number(lines: list[str], name: str) -> int | None:
    """Which ``[[graph]]`` of the recipe text (from 1) is named ``name``, or None."""
    named = re.compile(rf"\s*name\s*=\s*[\"']{re.escape(name)}[\"']\s*(#.*)?$")
    number, inside = 0, False
    for text in lines:
        header = _HEADER.match(text)
        if header:
            inside = bool(header.group(1)) and header.group(2) == "graph"
            number += inside
        elif inside and named.match(text):
            return number
    return None


def _setting_line(lines: list[str], section: str | None, key: str | None, graph: int | None = None) -> int | None:
    """The 1-based line of a recipe setting (see :meth:`Recipe.where`), or None."""
    key_pattern = re.compile(rf"\s*[\"']?{re.escape(key)}[\"']?\s*=") if key else None
    inside, graphs_seen = section is None and graph is None, 0
    for number, text in enumerate(lines, 1):
        header = _HEADER.match(text)
        if header:
            if graph is not None:
                graphs_seen += bool(header.group(1)) and header.group(2) == "graph"
                inside = bool(header.group(1)) and header.group(2) == "graph" and graphs_seen == graph
            else:
                inside = not header.group(1) and header.group(2) == section
            if inside and key is None:
                return number
            continue
        if inside and key_pattern and key_pattern.match(text):
            return number
    return None


def read_recipe(path: Path) -> Recipe:
    path = Path(path)
    if path.is_dir():
        raise RecipeError(f"{path}: is a folder; give the recipe's TOML file (e.g. recipes/pretrain.toml)")
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except FileNotFoundError:
        raise RecipeError(f"{path}: no such recipe file") from None
    except UnicodeDecodeError as err:
        raise RecipeError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except tomllib.TOMLDecodeError as err:
        raise RecipeError(f"{path}: {err}") from None
    lines = text.splitlines()

    def at(section: str | None = None, key: str | None = None, graph: int | None = None) -> str:
        return _where(path, lines, section, key, graph)   # path:line of a setting, for the errors below

    graphs = data.get("graph", [])
    if isinstance(graphs, dict):
        raise RecipeError(f"{at('graph')}: 'graph' is one table; write each graph as [[graph]] (two brackets)")
    if not isinstance(graphs, list) or not all(isinstance(g, dict) for g in graphs):
        raise RecipeError(f"{at(None, 'graph')}: 'graph' must be [[graph]] tables, one per graph")
    if not graphs:
        raise RecipeError(f"{path}: no [[graph]] entries")
    for section in ("tokenizer", "model", "train"):
        if not isinstance(data.get(section, {}), dict):
            raise RecipeError(f"{at(None, section)}: {section} must be a [{section}] table, got {data[section]!r}")
    if not isinstance(data.get("name", ""), str):
        raise RecipeError(f"{at(None, 'name')}: name must be a string, got {data['name']!r}")
    for i, graph in enumerate(graphs, 1):
        if "name" not in graph or "source" not in graph:
            raise RecipeError(f"{at(graph=i)}: [[graph]] #{i} needs 'name' and 'source'")
        unknown = set(graph) - {"name", "source", *GRAPH_FILE_KEYS}
        if unknown:
            raise RecipeError(f"{at(None, min(unknown), i)}: [[graph]] {graph['name']}: unknown keys {sorted(unknown)}")
        problem = artifact_name_problem(graph["name"]) if isinstance(graph["name"], str) else "is not a string"
        if problem:   # it names the graph's artifact folder
            raise RecipeError(f"{at(None, 'name', i)}: [[graph]] #{i}: name {graph['name']!r} {problem}")
        if not isinstance(graph["source"], str) or not graph["source"].strip():
            raise RecipeError(f"{at(None, 'source', i)}: [[graph]] {graph['name']}: 'source' must be one path "
                              "(a non-empty string)")
        for key in GRAPH_FILE_KEYS:
            value = graph.get(key, "")
            if not (isinstance(value, str) or (isinstance(value, list) and value
                                               and all(isinstance(v, str) for v in value))):
                raise RecipeError(f"{at(None, key, i)}: [[graph]] {graph['name']}: {key!r} must be a path or a "
                                  "list of paths")
        if any(graph["source"].replace("\\", "/").startswith(f) for f in FORBIDDEN_SOURCES):
            raise RecipeError(f"{at(None, 'source', i)}: [[graph]] {graph['name']}: {graph['source']} is a "
                              "zero-shot evaluation graph (InGram); it must not be trained on")
    names = [g["name"] for g in graphs]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        second = [i for i, n in enumerate(names, 1) if n == repeated[0]][1]
        raise RecipeError(f"{at(None, 'name', second)}: [[graph]] name {repeated[0]!r} is used more than once "
                          "(each graph's artifact is named by it)")
    unknown = set(data) - {"name", "graph", "tokenizer", "model", "train"}
    if unknown:
        first = min(unknown)
        where = at(first) if isinstance(data[first], dict) else at(None, first)
        raise RecipeError(f"{where}: unknown keys or sections {sorted(unknown)}")
    return Recipe(path, data.get("name", path.stem), graphs, data.get("tokenizer", {}), data.get("model", {}),
                  data.get("train", {}), lines)


def without_graphs(recipe: Recipe, patterns: list[str]) -> Recipe:
    """``recipe`` less the graphs whose name matches one of the shell ``patterns`` (``nell_*``): a
    checkpoint that never saw a family, for zero-shot rows on graphs that share its triples."""
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(g["name"], pattern) for g in recipe.graphs):
            names = ", ".join(g["name"] for g in recipe.graphs)
            raise RecipeError(f"{recipe.path}: --without {pattern!r} matches no [[graph]] name ({names})")
    kept = [g for g in recipe.graphs if not any(fnmatch.fnmatchcase(g["name"], p) for p in patterns)]
    if not kept:
        raise RecipeError(f"{recipe.path}: --without {' '.join(patterns)} leaves no graph to train on")
    return dataclasses.replace(recipe, graphs=kept)


def zero_shot_only_reason(source: Path) -> str | None:
    """Why ``source`` is a graph the project only evaluates on, or None. However the path is spelled:
    an InGram graph (a folder NL-*, WK-*, or one inside a folder named ``ingram``), or a GraIL
    inductive test graph (a folder ``X_ind`` beside its training graph ``X``)."""
    folder = Path(source).resolve()
    if folder.parent.name.lower() == "ingram" or re.fullmatch(r"(NL|WK)-\d+", folder.name):
        return "a zero-shot evaluation graph (InGram)"
    if folder.name.endswith("_ind") and (folder.parent / folder.name[:-len("_ind")]).is_dir():
        return (f"a zero-shot evaluation graph (GraIL's inductive test graph of {folder.name[:-len('_ind')]}; "
                "name the training graph, whose artifact carries this one for evaluation only)")
    return None


def write_graph_folders(recipe: Recipe, data: Path, work: Path) -> list[Path]:
    """A folder with a ``kg.toml`` per recipe graph, its paths resolved against ``data``."""
    from tokenizer_stage.kg_reader import write_kg_toml

    resolved = []   # every graph is checked before any kg.toml is written
    for graph in recipe.graphs:
        files: dict[str, Path | list[Path]] = {}
        for key in ("source", *GRAPH_FILE_KEYS):
            if key not in graph:
                continue
            # text and image keys may name several files (read in order, as kg.toml does)
            values = graph[key] if isinstance(graph[key], list) else [graph[key]]
            targets = []
            for value in values:
                target = (Path(data) / value).resolve()
                if not target.exists():
                    where = recipe.where(None, key, graph["name"])
                    raise RecipeError(f"{where}: [[graph]] {graph['name']}: {key} {target} does not exist "
                                      "(pass --data or set TOFU_DATA)")
                why = zero_shot_only_reason(target) if key == "source" else None
                if why:
                    raise RecipeError(f"{recipe.where(None, key, graph['name'])}: [[graph]] {graph['name']}: "
                                      f"{target} is {why}; "
                                      "it must not be trained on")
                targets.append(target)
            files[key] = targets if isinstance(graph[key], list) else targets[0]
        resolved.append((graph["name"], files))
    return [write_kg_toml(Path(work) / "graphs" / name, name, files) for name, files in resolved]


def _where_error(recipe: Recipe, section: str, err: Exception) -> str:
    """Where a setting of ``[section]`` that a config's error names sits (the header if none)."""
    settings = recipe.model if section == "model" else recipe.train
    named = [key for key in settings if re.search(rf"\b{re.escape(key)}\b", str(err))]
    return recipe.where(section, named[0] if named else None)


def tokenizer_config(recipe: Recipe):
    from tokenizer_stage.config import TokenizerConfig

    allowed = {"tokens_per_entity", "text_codebook_size", "image_codebook_size", "structure_codebook_size",
               "seed", "use_text", "use_images", "fit_entities_per_graph", "fit_images_per_graph"}
    unknown = set(recipe.tokenizer) - allowed
    if unknown:
        raise RecipeError(f"{recipe.where('tokenizer', min(unknown))}: [tokenizer]: unknown keys {sorted(unknown)}")
    for key, value in recipe.tokenizer.items():
        wanted = bool if key.startswith("use_") else int
        least = 0 if key == "seed" else 1 if key in ("tokens_per_entity", "fit_entities_per_graph",
                                                     "fit_images_per_graph") else 2
        if not isinstance(value, wanted) or (wanted is int and (isinstance(value, bool) or value < least)):
            kind = "true or false" if wanted is bool else f"an integer of at least {least}"
            raise RecipeError(f"{recipe.where('tokenizer', key)}: [tokenizer]: {key} must be {kind}, got {value!r}")
    return TokenizerConfig(**recipe.tokenizer)


def run_recipe(recipe: Recipe, data: Path, work: Path, checkpoint: Path, device, max_minutes: float | None = None,
               progress: bool = True, log: Callable[[dict[str, Any]], None] | None = None) -> Path:
    """Tokenize the recipe's graphs under ``work/artifacts`` and train; returns the checkpoint folder."""
    import torch

    from artifacts.codebooks import CodebookSet, codebooks_exist
    from artifacts.root import codebook_folder
    from artifacts.token_tables import read_token_tables
    from pipeline.defaults import MODEL_DEFAULTS, TRAIN_DEFAULTS
    from pipeline.orchestrate import tokenize_many
    from pipeline.progress import make_progress
    from pipeline.training_run import train_model
    from reasoning_stage.config import ModelConfig, TrainConfig, check_train_config
    from artifacts.compatibility import frozen_size_conflict
    from tokenizer_stage.kg_reader import kg_toml_text, restore_kg_toml

    # Settings are checked before the graphs are tokenized (minutes of work). Keys the recipe leaves
    # out take the recommended settings, as `tofu train`'s options do.
    model_settings = {**MODEL_DEFAULTS, **recipe.model}
    for key in ("messages", "modalities"):
        value = model_settings.get(key)
        if isinstance(value, str):  # tuple("distmult") would be its letters
            example = f'["{value}"]' if value else "[]"
            raise RecipeError(f"{recipe.where('model', key)}: [model] {key} must be a list, e.g. {key} = {example}")
        if value is not None:
            model_settings[key] = tuple(value)
    train_settings = {**TRAIN_DEFAULTS, **recipe.train}
    recipe_minutes = train_settings.pop("max_minutes", None)
    minutes = max_minutes if max_minutes is not None else recipe_minutes
    # [train] gives its budget as max_minutes, never TrainConfig's max_seconds.
    train_keys = set(TrainConfig.__dataclass_fields__) - {"max_seconds"} | {"max_minutes"}
    # The token vocabularies and the task count come from the artifacts and the code, not a recipe.
    model_keys = set(ModelConfig.__dataclass_fields__) - {"codebook_sizes", "relation_text_codebook_size",
                                                          "num_tasks"}
    for section, settings, allowed in (("model", recipe.model, model_keys),
                                       ("train", recipe.train, train_keys)):
        unknown = sorted(set(settings) - allowed)
        if unknown:
            raise RecipeError(f"{recipe.where(section, unknown[0])}: [{section}]: unknown keys {unknown}"
                              + (" (the budget is max_minutes)" if "max_seconds" in unknown else ""))
    if minutes is not None and (isinstance(minutes, bool) or not isinstance(minutes, (int, float))):
        raise RecipeError(f"{recipe.where('train', 'max_minutes')}: [train]: max_minutes must be a number, "
                          f"got {minutes!r}")
    try:
        base = ModelConfig(**model_settings)
    except (TypeError, ValueError) as err:
        raise RecipeError(f"{_where_error(recipe, 'model', err)}: [model]: {err}") from None
    try:
        train_config = TrainConfig(**train_settings, max_seconds=None if minutes is None else 60.0 * minutes)
        check_train_config(train_config)
    except (TypeError, ValueError) as err:
        raise RecipeError(f"{_where_error(recipe, 'train', err)}: [train]: {err}") from None
    config = tokenizer_config(recipe)
    books = codebook_folder(Path(work) / "artifacts")
    if codebooks_exist(books):   # a reused --work: its frozen codebooks must be the recipe's
        conflict = frozen_size_conflict(CodebookSet.load(books), config.codebook_sizes())
        if conflict:
            modality, asked, then = conflict
            where = recipe.where("tokenizer", f"{modality}_codebook_size")
            raise RecipeError(f"{where}: [tokenizer]: {books}: the {modality} codebook was fitted with {then} "
                              f"codes, {asked} asked for; give a new --work, or delete {books} to fit the "
                              "recipe's codebooks (its graphs are then tokenized again)")
    pointers = {g["name"]: kg_toml_text(Path(work) / "graphs" / g["name"]) for g in recipe.graphs}
    try:
        folders = write_graph_folders(recipe, data, work)
        # The recipe's own codebooks (fitted on its graphs on the first run), never the shipped ones.
        results, _ = tokenize_many(folders, Path(work) / "artifacts", config, workers=1, progress=progress,
                                   use_shipped_codebooks=False)
    except BaseException:
        # Stopped part-way (an error, Ctrl-C): every kg.toml goes back to the earlier run's sources. A graph
        # tokenized meanwhile then differs from its kg.toml, which stage one notices and redoes next run.
        for name, text in pointers.items():
            restore_kg_toml(Path(work) / "graphs" / name, text)
        raise
    failed = [r for r in results if getattr(r, "error", None)]
    if failed:
        # A graph that failed keeps the artifact of an earlier run: its kg.toml goes back to that run's sources.
        for r in failed:
            if r.name in pointers:
                restore_kg_toml(Path(work) / "graphs" / r.name, pointers[r.name])
        raise RecipeError(f"{recipe.path}: " + "; ".join(f"[[graph]] {r.name}: {r.error}" for r in failed))
    tables = [read_token_tables(Path(work) / "artifacts" / g["name"]) for g in recipe.graphs]
    torch.manual_seed(train_config.seed)
    return train_model(tables, [], Path(checkpoint), train_config, base, device, progress=make_progress(progress),
                       log=log)
