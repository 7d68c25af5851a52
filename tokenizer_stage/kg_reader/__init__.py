"""Read a knowledge-graph folder, in any supported layout, into one in-memory object.

Pure Python + stdlib. ``read_kg(path)`` returns a :class:`KnowledgeGraph` whose
triple sets hold string ids (openke integer ids are mapped back to names), plus the
split definitions, entity/relation text and entity image paths.

Layouts (``detect_layout``; ``layout = "..."`` in kg.toml overrides detection):

* ``canonical``: ``train.tsv valid.tsv test.tsv`` (+ optional ``graph.tsv``).
  Sets ``train``/``valid``/``test``/``graph`` (those present). Splits ``train``
  (train/train), ``valid`` and ``test`` (graph = ``graph`` if graph.tsv exists,
  else ``train``). train.tsv is required unless graph.tsv exists (then there is no
  ``train`` split). Missing valid/test -> that split is absent.
  One triples file holding every triple (``files.all`` in kg.toml, or the file
  given instead of a folder, which then names the graph) is the ``train`` split
  alone, with a note, unless kg.toml asks for a ``[split]`` (:class:`SplitRequest`):
  then it is cut into train/valid/test, every entity and relation of valid/test
  also in train.
* ``grail``: folder ``X`` with ``train.txt valid.txt test.txt`` and a sibling
  ``X_ind`` holding the same three files. Sets ``train valid test`` (from X) and
  ``ind_graph ind_valid ind_test`` (from X_ind). Splits ``train`` (train/train),
  ``valid`` (train/valid), ``test`` (ind_graph/ind_test), ``ind_valid``
  (ind_graph/ind_valid). A folder with those files but no ``_ind`` sibling (an
  ``X_ind`` folder given directly, too) is read as a plain graph, still reported
  as layout ``"grail"``: sets train/valid/test, splits train/valid/test all over
  ``train``.
* ``ingram``: ``train.txt msg.txt valid.txt test.txt``. Sets train/msg/valid/test.
  Splits ``train`` (train/train), ``valid`` (msg/valid), ``test`` (msg/test).
* ``openke``: ``entity2id.txt relation2id.txt train2id.txt valid2id.txt
  test2id.txt`` (first line = record count; triples are HEAD TAIL RELATION).
  Sets train/valid/test (names, not ints); splits train/valid/test all over
  ``train``. Every entity2id / relation2id entry is declared.

Triple files are tab-separated, or comma-separated (CSV quoting) when named
``.csv``. A first row of column names (head/relation/tail, subject/predicate/object,
h/r/t, source/relation/target, ...) is skipped with a note. A control character
(Unicode category Cc) in a label is an error at its line.

In every layout valid/test files are optional (missing -> split absent; a name
that is there but cannot be read, such as a dangling symlink, is an error) and the
folder may also hold ``entities.tsv relations.tsv entity2text.txt
relation2text.txt entity2wikidata.json images/ images.tsv``; for grail the
``_ind`` sibling is searched as well.

kg.toml (optional): top-level ``name``, ``layout``, a ``[split]`` table (``train
valid test`` shares and ``seed``, for ``files.all``) and a ``[files]`` table with
``train valid test graph`` or ``all`` (canonical only), ``source`` (read the graph from that
folder; its own kg.toml is NOT read, so redirects never chain), ``entity_text``,
``relation_text``, ``images`` (a path or a list of paths). Relative paths resolve
against kg.toml's folder; unknown keys and missing paths are errors.

Text precedence: files named in kg.toml come first (in list order), then files
found in the data folder. Per id, the name comes from the first file that gives a
non-empty one, the description likewise. Only canonical-format files
(``id/name/description`` header, e.g. entities.tsv) *declare* ids; kg-bert and
JSON text files only annotate ids that are already in the graph (text for other
ids is ignored). An entity whose file text has a description but no name gets
``derive_name(id)`` as its name (source stays "file").

Everything returned is an absolute, normalised path (``..`` collapsed, symlinks
not followed), so ``source_files`` can be hashed to key caches.

Modules: ``read`` (read_kg), ``layout`` (where a graph is, which layout),
``kg_toml`` (kg.toml read and write), one per layout (``canonical``, ``grail``,
``ingram``, ``openke``), ``triples`` (triple files), ``texts``, ``images``,
``derived_names`` (names from ids), ``files`` (reading files, ReadContext),
``model`` (KnowledgeGraph) and ``errors`` (KGFormatError, KGWarning).
"""

from tokenizer_stage.kg_reader.derived_names import derive_name
from tokenizer_stage.kg_reader.errors import KGFormatError, KGWarning
from tokenizer_stage.kg_reader.kg_toml import kg_toml_text, restore_kg_toml, write_kg_toml
from tokenizer_stage.kg_reader.layout import detect_layout, graph_name
from tokenizer_stage.kg_reader.model import LAYOUTS, KnowledgeGraph, Split, SplitRequest, Text
from tokenizer_stage.kg_reader.read import read_kg
from tokenizer_stage.kg_reader.triples import TRIPLE_FILE_SUFFIXES, is_triples_file

__all__ = [
    "KGFormatError",
    "KGWarning",
    "Text",
    "Split",
    "SplitRequest",
    "KnowledgeGraph",
    "LAYOUTS",
    "TRIPLE_FILE_SUFFIXES",
    "is_triples_file",
    "detect_layout",
    "read_kg",
    "derive_name",
    "graph_name",
    "kg_toml_text",
    "restore_kg_toml",
    "write_kg_toml",
]
