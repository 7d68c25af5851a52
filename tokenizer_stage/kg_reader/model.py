"""What ``read_kg`` returns: a KnowledgeGraph of triple sets, splits, texts and image paths."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

LAYOUTS = ("canonical", "grail", "ingram", "openke")

Triple = tuple[str, str, str]


@dataclass(frozen=True)
class Text:
    name: str | None
    description: str | None
    source: str  # "file" (from a text file), "derived" (made from the id), or "none"


@dataclass(frozen=True)
class Split:
    graph: str  # name of the triple set that is the inference graph for this split
    queries: str  # name of the triple set holding the query triples


@dataclass(frozen=True)
class SplitRequest:
    """How one triples file is cut into train / valid / test (kg.toml ``[split]``).

    The distinct triples are sorted (so row order never changes the split) and shuffled with
    ``random.Random(seed)``. Walking them in that order, a triple that brings an entity or relation
    not seen before goes to train, so every entity and relation of valid / test is in train (as
    PyKEEN's ``TriplesFactory.split`` with its coverage method); the others fill the rest of train,
    then valid (``round(n * valid)`` triples), then test. A share of 0 leaves that split out.
    """
    train: float = 0.8
    valid: float = 0.1
    test: float = 0.1
    seed: int = 0


@dataclass
class KnowledgeGraph:
    name: str
    root: Path
    layout: str
    triple_sets: dict[str, list[Triple]]
    splits: dict[str, Split]
    entities: list[str]
    relations: list[str]
    entity_text: dict[str, Text]
    relation_text: dict[str, Text]
    images: dict[str, list[Path]]
    source_files: list[Path]
    warnings: list[str]
    # Additions beyond the agreed interface (all defaulted, so they are optional):
    declared_entities: set[str] = field(default_factory=set)  # from entities.tsv / entity2id
    declared_relations: set[str] = field(default_factory=set)  # from relations.tsv / relation2id
    triple_files: dict[str, Path] = field(default_factory=dict)  # set name -> file it came from

    def _split(self, split: str) -> Split:
        try:
            return self.splits[split]
        except KeyError:
            raise KeyError(f"unknown split {split!r} for graph {self.name!r}; have {sorted(self.splits)}") from None

    def inference_graph(self, split: str) -> list[Triple]:
        """Observed triples for `split` (the stored list: do not mutate)."""
        return self.triple_sets[self._split(split).graph]

    def queries(self, split: str) -> list[Triple]:
        """Query triples to rank for `split` (the stored list: do not mutate)."""
        return self.triple_sets[self._split(split).queries]

    def graph_entities(self, split: str) -> set[str]:
        """Entities of the split's inference graph + declared entities."""
        ents = set(self.declared_entities)
        for h, _, t in self.inference_graph(split):
            ents.add(h)
            ents.add(t)
        return ents

    def graph_relations(self, split: str) -> set[str]:
        """Relations of the split's inference graph + declared relations."""
        return {r for _, r, _ in self.inference_graph(split)} | self.declared_relations
