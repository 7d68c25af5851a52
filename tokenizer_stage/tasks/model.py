"""What ``read_task`` returns: an AlignmentTask (two graphs and link pairs) or a LinkingTask (a KB and
mentions)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tokenizer_stage.kg_reader.model import KnowledgeGraph

TASK_LAYOUTS = (
    "alignment:canonical",
    "alignment:dbp15k",
    "linking:canonical",
    "linking:wikimel",
    "linking:richpedia",
)

SPLIT_KEYS = ("train", "valid", "test")  # the splits a task's links and mentions may have


@dataclass
class AlignmentTask:
    name: str
    root: Path
    layout: str  # "canonical" | "dbp15k"
    graphs: tuple[KnowledgeGraph, KnowledgeGraph]
    # split -> (label in graphs[0].entities, label in graphs[1].entities)
    links: dict[str, list[tuple[str, str]]]
    source_files: list[Path]  # every file read (graph files included), for fingerprints
    warnings: list[str]  # graph warnings first, then the task's own


@dataclass(frozen=True)
class Mention:
    mention_id: str
    text: str  # surface form, non-empty, surrounding whitespace removed
    context: str  # sentence around it ("" if none)
    entity: str | None  # gold KB entity label (None = unlabelled, prediction only)
    image: Path | None = None


@dataclass
class LinkingTask:
    name: str
    root: Path
    layout: str  # "canonical" | "wikimel" | "richpedia"
    kb: KnowledgeGraph  # may have no triples (triple_sets={}, splits={})
    mentions: dict[str, list[Mention]]  # split -> mentions
    source_files: list[Path]
    warnings: list[str]
