"""Read an entity-alignment or entity-linking task folder into one in-memory object.

Pure Python + stdlib, built on :mod:`tokenizer_stage.kg_reader` (graphs are
:class:`KnowledgeGraph` objects, bad input raises :class:`KGFormatError` whose
text is ``FILE:LINE: reason``, or ``FILE: reason`` where no line applies).

Layouts (``detect_task_layout``):

* ``alignment:canonical``: a folder with ``task.toml``::

      [task]
      kind = "alignment"
      name = "my-task"             # optional, default: the folder name
      graph1 = "kg1"               # any folder (or kg.toml) read_kg reads
      graph2 = "kg2"
      [links]
      train = "train_links.tsv"    # and/or valid, test: graph-1 entity <TAB> graph-2 entity
      test = "test_links.tsv"
      # or: all = "links.tsv", test_fraction = 0.7, seed = 0 (seeded split, see below)
      missing = "error"            # or "skip": drop pairs whose entity is not in its graph

  Paths are relative to task.toml (absolute paths allowed).
* ``alignment:dbp15k``: the MCLEA/EVA DBP15K folder (``ent_ids_1 ent_ids_2
  triples_1 triples_2 ill_ent_ids``, plus ``../translated_ent_name/dbp_<folder>.json``
  when present). Both graphs are built in memory; gold pairs are split 30% train /
  70% test by a seeded shuffle (seed 0), the usual protocol.
* ``linking:canonical``: a folder with ``task.toml``::

      [task]
      kind = "linking"
      name = "my-kb"
      [kb]
      entities = "kb.tsv"           # id <TAB> name [<TAB> description]
      images = "images/mapping.tsv" # optional: entity id <TAB> image path (relative to this file)
      graph = "kg"                  # optional: a graph (read_kg) whose triples connect KB entities
      [mentions]
      train = "train.tsv"           # and/or valid, test:
      test = "test.tsv"             # mention id <TAB> mention <TAB> context <TAB> entity id [<TAB> image]

* ``linking:wikimel``: ``Wikidata-MEL.json splits.json qid2ne.json`` (+ ``qid2abs.json``).
* ``linking:richpedia``: ``train.json test.json qid2ne.json`` (+ ``qid2abs.json``,
  optional ``dev.json``).

Link pairs and mentions keep their file order within a split. Link labels are
matched to graph entities exactly, else after removing surrounding ``<`` ``>``
on either side (DB15K writes ``<http://dbpedia.org/resource/X>``, link files
often ``http://dbpedia.org/resource/X``); the graph's own label is stored.

JSON files have no useful line numbers, so their errors read
``FILE: sample KEY: reason``.

Modules: ``read`` (read_task, read_alignment_task, read_linking_task), ``layout``
(where a task is, which layout, its name), ``task_toml``, one per layout
(``alignment_canonical``, ``dbp15k``, ``linking_canonical``, ``wikimel``,
``richpedia``), ``mel_json`` (what the JSON linking layouts share), ``common``
(helpers of every task reader) and ``model`` (AlignmentTask, LinkingTask).
What an artifact is named and made from is :mod:`tokenizer_stage.naming`.
"""

from tokenizer_stage.tasks.layout import detect_task_layout
from tokenizer_stage.tasks.model import TASK_LAYOUTS, AlignmentTask, LinkingTask, Mention
from tokenizer_stage.tasks.read import read_alignment_task, read_linking_task, read_task
from tokenizer_stage.tasks.task_toml import TASK_TOML

__all__ = [
    "TASK_LAYOUTS",
    "TASK_TOML",
    "AlignmentTask",
    "Mention",
    "LinkingTask",
    "detect_task_layout",
    "read_task",
    "read_alignment_task",
    "read_linking_task",
]
