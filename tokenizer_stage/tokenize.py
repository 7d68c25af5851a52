"""Stage one for one graph: read it, encode its texts and images, quantize, write token tables.

Features are streamed batch by batch into code counts and dropped: memory is
bounded by one batch of features plus the graph itself, whatever its size.
"""
from __future__ import annotations

import math
import os
import time
import warnings
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from artifacts import token_tables
from artifacts.codebooks import DENSE_TEXT, PRODUCT_QUANTIZER, Codebook, CodebookSet
from artifacts.compatibility import encoder_codebook_problem, structure_codebook_problem
from artifacts.errors import ArtifactError, CodebookMismatchError
from artifacts.hashing import files_digest, object_sha256, relative_digest
from artifacts.manifest import check_manifest_digests, record_source, recorded_source
from artifacts.root import artifact_folder
from tokenizer_stage import structure
from tokenizer_stage.config import EncoderSpec, TokenizerConfig
from tokenizer_stage.encoders import load_encoder, pool_states, weights_digest
from tokenizer_stage.kg_reader import KGFormatError, KnowledgeGraph, Text, read_kg
from tokenizer_stage.naming import artifact_name, source_of
from tokenizer_stage.quantize import CodeAssigner, FeatureSample, fit_codebook, fit_product_quantizer, top_codes
from tokenizer_stage.text_identity import identity_columns, pooled_vectors

ProgressFactory = Callable[..., Any]


@dataclass
class GraphSummary:
    name: str
    status: str                        # "tokenized" | "skipped"
    folder: str
    entities: int = 0
    relations: int = 0
    triples: int = 0
    tokens: dict[str, int] = field(default_factory=dict)   # modality -> token rows
    images_used: int = 0
    images_failed: int = 0
    seconds: float = 0.0
    forward_seconds: float = 0.0       # time inside encoder forward passes
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def skipped(cls, name: str, folder: Path, counts: list[dict[str, Any]], seconds: float,
                token_kinds: Sequence[str] | None = None) -> "GraphSummary":
        """An up-to-date artifact's summary, from the manifest counts of its token tables (a task's:
        of each of its graphs); ``token_kinds`` limits the token counts summed (default: all)."""
        kinds = token_kinds if token_kinds is not None else list(dict.fromkeys(k for c in counts for k in c["tokens"]))
        return cls(name, "skipped", str(folder),
                   entities=sum(c["entities"] for c in counts), relations=sum(c["relations"] for c in counts),
                   triples=sum(sum(c["triple_sets"].values()) for c in counts),
                   tokens={k: sum(c["tokens"].get(k, 0) for c in counts) for k in kinds},
                   images_used=sum(c["images_used"] for c in counts),
                   images_failed=sum(c["images_failed"] for c in counts), seconds=seconds)


def no_progress(iterable=None, **_: Any):
    """A ProgressFactory that shows nothing: the default of every stage, and what --quiet runs use."""
    return iterable if iterable is not None else _NullBar()


class _NullBar:
    def update(self, *_: Any) -> None: ...
    def set_postfix(self, *_: Any, **__: Any) -> None: ...
    def close(self) -> None: ...


def entity_text(text: Text) -> str | None:
    """The string an entity's text tokens come from (name, then description)."""
    if text.source == "none" or not (text.name or text.description):
        return None
    if text.name and text.description:
        return f"{text.name}: {text.description}"
    return text.name or text.description


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _load_image(path: Path):
    """An RGB PIL image, or None when the file is unreadable or corrupt (never fatal)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()
            return img.convert("RGB")
    except Exception:  # PIL raises many types for corrupt files; all mean "skip this image"
        return None


def encoder_fingerprint(spec: EncoderSpec) -> dict[str, str]:
    """Cheap identity of an encoder for incremental checks: its source and its weights' hash."""
    return {"source": spec.source, "weights": weights_digest(spec.resolve_path())}


def source_fingerprint(kg: KnowledgeGraph, config: TokenizerConfig, codebooks: CodebookSet,
                       source_digest: list[dict[str, Any]]) -> str:
    """Changes when any input file (``source_digest``: :func:`files_digest` of the graph's sources),
    encoder, codebook or token setting changes."""
    encoders = {}
    if config.use_text:
        encoders["text"] = encoder_fingerprint(config.text_encoder)
    if config.use_images and kg.images:
        encoders["image"] = encoder_fingerprint(config.image_encoder)
    return object_sha256({
        "format": token_tables.FORMAT_VERSION, "sources": relative_digest(source_digest, kg.root),
        "encoders": encoders, "codebooks": codebooks.codebook_id, "settings": config.token_settings(), "name": kg.name,
    })


# --------------------------------------------------------------------------- encoding


def _encode_texts(texts: dict[int, str], spec: EncoderSpec, progress: ProgressFactory,
                  desc: str, timer: list[float]) -> Iterator[tuple[list[int], list[np.ndarray]]]:
    """Yield ``(owner ids, per-owner subword features)`` batch by batch."""
    if not texts:
        return
    encoder = load_encoder(spec)
    # Sorting by length keeps padding small; the order is deterministic.
    order = sorted(texts, key=lambda owner: (len(texts[owner]), owner))
    bar = progress(total=len(order), desc=desc, unit="text")
    for chunk in _batches(order, spec.batch_size):
        start = time.perf_counter()
        features = encoder.encode([texts[o] for o in chunk])
        timer[0] += time.perf_counter() - start
        bar.update(len(chunk))
        yield list(chunk), features
    bar.close()


def _encode_images(images: dict[int, list[Path]], spec: EncoderSpec, progress: ProgressFactory,
                   desc: str, timer: list[float], failed: dict[int, int],
                   failed_paths: list[Path] | None = None) -> Iterator[tuple[list[int], list[np.ndarray]]]:
    """Yield ``(owner ids, per-image patch features)``; unreadable images are counted in ``failed``
    (and listed in ``failed_paths``)."""
    jobs = [(owner, path) for owner in sorted(images) for path in images[owner]]
    if not jobs:
        return
    encoder = load_encoder(spec)
    bar = progress(total=len(jobs), desc=desc, unit="img")
    # Decoding runs in a thread while the model works on the previous batch.
    with ThreadPoolExecutor(max_workers=2) as pool:
        decoded = pool.map(lambda job: (job[0], job[1], _load_image(job[1])), jobs)
        pending: list[tuple[int, Any]] = []
        for owner, path, image in decoded:
            bar.update(1)
            if image is None:
                failed[owner] += 1
                if failed_paths is not None:
                    failed_paths.append(path)
                continue
            pending.append((owner, image))
            if len(pending) == spec.batch_size:
                yield _forward_images(encoder, pending, timer)
                pending = []
        if pending:
            yield _forward_images(encoder, pending, timer)
    bar.close()


def _forward_images(encoder, pending, timer):
    start = time.perf_counter()
    features = encoder.encode([img for _, img in pending])
    timer[0] += time.perf_counter() - start
    return [owner for owner, _ in pending], features


# --------------------------------------------------------------------------- graph → ids


@dataclass
class IndexedGraph:
    kg: KnowledgeGraph
    entity_index: dict[str, int]
    relation_index: dict[str, int]
    triple_sets: dict[str, np.ndarray]

    @property
    def structure_graph(self) -> np.ndarray:
        """Union of all inference graphs, which structure tokens are computed on. An entity in two of
        them (a few labels appear in both GraIL X and X_ind: 8 in WN18RR_v3, 3 in nell_v3, 1 in
        nell_v4) gets its structure from both; no triple joins two entities across the graphs."""
        names = sorted({s.graph for s in self.kg.splits.values()})
        parts = [self.triple_sets[n] for n in names] or [np.zeros((0, 3), dtype=np.int64)]
        return np.unique(np.concatenate(parts), axis=0)


def index_graph(kg: KnowledgeGraph) -> IndexedGraph:
    entity_index = {label: i for i, label in enumerate(kg.entities)}
    relation_index = {label: i for i, label in enumerate(kg.relations)}
    sets = {}
    for name, triples in kg.triple_sets.items():
        array = np.array([(entity_index[h], relation_index[r], entity_index[t]) for h, r, t in triples],
                         dtype=np.int64).reshape(-1, 3)
        sets[name] = array
    return IndexedGraph(kg, entity_index, relation_index, sets)


def _owner_texts(labels: list[str], texts: dict[str, Text]) -> dict[int, str]:
    result = {}
    for i, label in enumerate(labels):
        text = texts.get(label)
        string = entity_text(text) if text is not None else None
        if string:
            result[i] = string
    return result


def text_tokens(texts: dict[int, str], codebooks: CodebookSet, config: TokenizerConfig,
                progress: ProgressFactory, desc: str, timer: list[float],
                pooled: dict[int, np.ndarray] | None = None) -> dict[int, list[tuple[int, int]]]:
    """Owner -> its top ``tokens_per_entity`` text codes with counts (entities, relations, mentions alike).

    ``pooled`` (when given) collects each text's pooled vector from the same forward pass.
    """
    assigner = CodeAssigner(codebooks["text"].centroids)
    result: dict[int, list[tuple[int, int]]] = {}
    for owners, feats in _encode_texts(texts, config.text_encoder, progress, desc, timer):
        lengths = [len(f) for f in feats]
        codes = assigner.assign(np.concatenate(feats)) if sum(lengths) else np.zeros(0, np.int64)
        for owner, chunk, states in zip(owners, np.split(codes, np.cumsum(lengths)[:-1]), feats):
            if len(chunk):
                result[owner] = top_codes(chunk, config.tokens_per_entity)
                if pooled is not None:
                    pooled[owner] = pool_states(states)
    return result


def text_fields(labels: list[str], texts: dict[str, Text]) -> tuple[dict[int, str], dict[int, str]]:
    """``(names, descriptions)`` by owner id: the fields lexical and dense tokens keep apart."""
    names, descriptions = {}, {}
    for i, label in enumerate(labels):
        text = texts.get(label)
        if text is None or text.source == "none":
            continue
        if text.name:
            names[i] = text.name
        if text.description:
            descriptions[i] = text.description
    return names, descriptions


def image_tokens(images: dict[int, list[Path]], codebooks: CodebookSet, config: TokenizerConfig,
                 progress: ProgressFactory, desc: str, timer: list[float], used: np.ndarray,
                 failed: dict[int, int], failed_paths: list[Path] | None = None) -> dict[int, list[tuple[int, int]]]:
    """Owner -> top image codes counted over all of its readable images; fills ``used`` and ``failed``
    (and ``failed_paths``)."""
    assigner = CodeAssigner(codebooks["image"].centroids)
    counts: dict[int, list[np.ndarray]] = defaultdict(list)
    for owners, feats in _encode_images(images, config.image_encoder, progress, desc, timer, failed, failed_paths):
        codes = assigner.assign(np.concatenate(feats))
        for owner, chunk in zip(owners, np.split(codes, len(owners))):
            counts[owner].append(chunk)
            used[owner] += 1
    return {o: top_codes(np.concatenate(c), config.tokens_per_entity) for o, c in counts.items()}


def unreadable_images_note(what: str, failed_paths: Sequence[Path]) -> str:
    """The note of skipped images: ``what`` and the first three paths."""
    shown = ", ".join(str(p) for p in failed_paths[:3]) + (", ..." if len(failed_paths) > 3 else "")
    return f"{what} skipped: {shown}"


# --------------------------------------------------------------------------- codebook fitting


def graphs_in(path: Path) -> list[KnowledgeGraph]:
    """The graphs of a KG folder (one) or of a task folder (an alignment's two, a linking task's KB)."""
    from tokenizer_stage.tasks import AlignmentTask, detect_task_layout, read_task

    if detect_task_layout(path) is None:
        return [read_kg(path)]
    task = read_task(path)
    return list(task.graphs) if isinstance(task, AlignmentTask) else [task.kb]


def fit_codebooks(graph_dirs: Sequence[Path], config: TokenizerConfig,
                  progress: ProgressFactory = no_progress) -> CodebookSet:
    """Fit one codebook per modality on a bounded, seeded sample from ``graph_dirs``."""
    rng = np.random.default_rng(config.seed)
    samples = {m: FeatureSample(config.fit_max_vectors, config.seed + i)
               for i, m in enumerate(("structure", "text", "image"))}
    graphs_used: dict[str, list[str]] = defaultdict(list)
    timer = [0.0]
    for kg in (kg for graph_dir in graph_dirs for kg in graphs_in(graph_dir)):
        indexed = index_graph(kg)
        samples["structure"].add(structure.structural_features(len(kg.entities), indexed.structure_graph))
        graphs_used["structure"].append(kg.name)
        if config.use_text:
            texts = _owner_texts(kg.entities, kg.entity_text)
            texts.update({len(kg.entities) + i: t
                          for i, t in _owner_texts(kg.relations, kg.relation_text).items()})
            if texts:
                keys = sorted(texts)
                if len(keys) > config.fit_entities_per_graph:
                    keys = sorted(rng.choice(keys, config.fit_entities_per_graph, replace=False).tolist())
                for _, feats in _encode_texts({k: texts[k] for k in keys}, config.text_encoder, progress,
                                              f"{kg.name}: fit text", timer):
                    for f in feats:
                        samples["text"].add(f)
                graphs_used["text"].append(kg.name)
        if config.use_images and kg.images:
            owners = sorted(kg.images)
            chosen = {}
            for owner_index in rng.permutation(len(owners)):
                owner = owners[int(owner_index)]
                chosen[indexed.entity_index[owner]] = kg.images[owner]
                if sum(len(v) for v in chosen.values()) >= config.fit_images_per_graph:
                    break
            failed: dict[int, int] = defaultdict(int)
            for _, feats in _encode_images(chosen, config.image_encoder, progress,
                                           f"{kg.name}: fit images", timer, failed):
                for f in feats:
                    samples["image"].add(f)
            graphs_used["image"].append(kg.name)
    sizes = config.codebook_sizes()
    books = {}
    if config.use_text and graphs_used["text"]:
        vectors, used = dense_fit_vectors([kg for d in graph_dirs for kg in graphs_in(d)], config, progress)
        if len(vectors):
            books[DENSE_TEXT] = dense_codebook(vectors, used, config)
    for modality, sample in samples.items():
        vectors = sample.vectors()
        if len(vectors) == 0:
            continue
        centroids = fit_codebook(vectors, sizes[modality], seed=config.seed)
        if modality == "structure":
            encoder = {"modality": "structure", "name": "tofu-structural-features",
                       "version": structure.FEATURES_VERSION, "features": list(structure.FEATURE_NAMES)}
        else:
            spec = config.text_encoder if modality == "text" else config.image_encoder
            encoder = load_encoder(spec).identity
        books[modality] = Codebook(modality, centroids, encoder, {
            "vectors_seen": sample.seen, "vectors_used": len(vectors), "seed": config.seed,
            "graphs": graphs_used[modality], "requested_size": sizes[modality]})
    return CodebookSet(books)


def codebook_size_notes(book_set: CodebookSet) -> list[str]:
    """A note for each codebook of ``book_set`` fitted with fewer codes than asked for. k-means places at
    most one centroid per distinct vector, and a set is frozen once written, so every graph tokenized with
    it gets the coarser codes: worth saying at each run, not only in the manifest."""
    notes = []
    for modality in token_tables.MODALITIES:
        if modality not in book_set:
            continue
        book = book_set[modality]
        asked = int(book.fit.get("requested_size", book.size))
        if book.size < asked:
            notes.append(f"{modality} codebook: {book.size} codes fitted where {asked} were asked for: the graphs "
                         f"it was fitted on ({', '.join(book.fit.get('graphs', [])) or 'unknown'}) give only "
                         f"{book.size} distinct {modality} vectors. Fit on more graphs (--refit-codebooks), or "
                         "tokenize with the shipped codebooks")
    return notes


def dense_fit_vectors(graphs: Sequence[KnowledgeGraph], config: TokenizerConfig,
                      progress: ProgressFactory = no_progress) -> tuple[np.ndarray, list[str]]:
    """Pooled vectors of the names and whole texts of a seeded sample of each graph's entities, and the
    graphs that gave some."""
    rng = np.random.default_rng(config.seed)
    vectors, used, timer = [], [], [0.0]
    for kg in graphs:
        names, _ = text_fields(kg.entities, kg.entity_text)
        texts = _owner_texts(kg.entities, kg.entity_text)
        keys = sorted(texts)
        if not keys:
            continue
        if len(keys) > config.fit_dense_per_graph:
            keys = sorted(rng.choice(keys, config.fit_dense_per_graph, replace=False).tolist())
        for sample in ({k: texts[k] for k in keys}, {k: names[k] for k in keys if k in names}):
            vectors.extend(pooled_vectors(sample, config.text_encoder, progress, f"{kg.name}: fit dense", timer).values())
        used.append(kg.name)
    return np.stack(vectors) if vectors else np.zeros((0, 0), np.float32), used


def dense_codebook(vectors: np.ndarray, graphs: list[str], config: TokenizerConfig) -> Codebook:
    """The frozen product quantizer of pooled text vectors (the codebook set's ``text_dense``)."""
    # As many parts as asked when they divide the encoder's width (384 / 96 = 4 dimensions each), else the
    # largest number that does (a 32-d test encoder gets 32).
    subquantizers = math.gcd(vectors.shape[1], config.dense_subquantizers)
    centroids = fit_product_quantizer(vectors, subquantizers, config.seed)
    return Codebook(DENSE_TEXT, centroids, load_encoder(config.text_encoder).identity, {
        "kind": PRODUCT_QUANTIZER, "subquantizers": subquantizers, "vectors_used": len(vectors),
        "seed": config.seed, "graphs": graphs})


def check_codebooks(codebooks: CodebookSet, config: TokenizerConfig, kg: KnowledgeGraph) -> list[str]:
    """Refuse codebooks made for other encoders; return warnings for modalities they lack."""
    problem = structure_codebook_problem(codebooks, structure.FEATURES_VERSION)
    if problem:
        raise CodebookMismatchError(problem)
    notes = []
    for modality, spec, wanted in (("text", config.text_encoder, config.use_text),
                                   ("image", config.image_encoder, config.use_images and bool(kg.images))):
        if not wanted:
            continue
        if modality not in codebooks:
            notes.append(f"{kg.name}: the codebook set has no {modality} codebook; "
                         f"{modality} tokens skipped (refit with --refit-codebooks to add one)")
            continue
        problem = encoder_codebook_problem(codebooks, modality, spec.source, weights_digest(spec.resolve_path()))
        if problem:
            raise CodebookMismatchError(problem)
    return notes


def codebooks_suit_config(codebooks: CodebookSet, config: TokenizerConfig) -> str | None:
    """Why ``codebooks`` are not what ``config`` would fit (sizes, encoders), or None if they are."""
    problem = structure_codebook_problem(codebooks, structure.FEATURES_VERSION)
    if problem:
        return problem
    specs = {"text": (config.text_encoder, config.use_text), "image": (config.image_encoder, config.use_images)}
    for modality, size in config.codebook_sizes().items():
        if modality != "structure" and not specs[modality][1]:
            continue
        if modality not in codebooks:
            return f"no {modality} codebook"
        if codebooks[modality].size != size:
            return f"{modality} codebook has {codebooks[modality].size} codes, {size} asked for"
        if modality != "structure":
            spec = specs[modality][0]
            try:
                weights = weights_digest(spec.resolve_path())
            except (OSError, ValueError) as err:
                return f"{modality} encoder unavailable: {err}"
            problem = encoder_codebook_problem(codebooks, modality, spec.source, weights)
            if problem:
                return problem
    return None


# --------------------------------------------------------------------------- tokenizing


def existing_artifact(folder: Path, source: Path, fingerprint: str, force: bool,
                      read: Callable[[Path], dict[str, Any]]) -> tuple[dict[str, Any] | None, list[str]]:
    """What is already at ``folder``: its manifest (``read`` validates it and hashes its files) when it
    is up to date and the work can be skipped, else ``None`` and notes for the new artifact.

    ``source`` is what the new artifact is made from (``naming.source_of``). A skipped artifact whose
    recorded source is gone is pointed at ``source`` (the folder moved); an identical copy elsewhere
    leaves it naming the original. An artifact made from another source that still exists, and still
    goes by this name, is not replaced by a different graph (two graphs with one name) unless ``force``.
    """
    if force or not token_tables.is_complete(folder):
        return None, []
    notes = []
    try:
        existing = read(folder)
        check_manifest_digests(folder)   # an edited manifest (its splits, say) is no up-to-date artifact
    except ArtifactError as err:   # damaged, edited or of an old format: redone, and said so
        existing, notes = {}, [f"{err}: tokenized again"]
    earlier = recorded_source(folder)
    elsewhere = (earlier is not None and earlier.exists() and os.path.realpath(earlier) != os.path.realpath(source)
                 and _still_named(earlier, folder.name))
    if existing.get("fingerprint") == fingerprint:
        if not elsewhere:
            record_source(folder, source)
        return existing, []
    if elsewhere:
        raise ValueError(f"{folder} holds the artifact of {earlier}, another folder whose graph is also named "
                         f"{folder.name!r}; give one of them another name (kg.toml 'name' or task.toml "
                         "'task.name'), write to another --out, or add --force to replace it")
    return None, notes


def _still_named(source: Path, name: str) -> bool:
    """Whether ``source`` still tokenizes under ``name`` (not renamed in its kg.toml / task.toml since);
    a source whose name cannot be read is taken to keep it (nothing is replaced on a guess)."""
    try:
        return artifact_name(source) == name
    except (KGFormatError, ValueError, OSError):
        return True


def tokenize_graph(graph_dir: Path, out_root: Path, codebooks_dir: Path, config: TokenizerConfig,
                   force: bool = False, progress: ProgressFactory = no_progress,
                   name: str | None = None) -> GraphSummary:
    """Tokenize one graph into ``out_root/<name>/`` unless an up-to-date artifact is there."""
    kg = read_kg(graph_dir, name=name)
    return tokenize_kg(kg, artifact_folder(Path(out_root), kg.name), codebooks_dir, config, force, progress,
                       source=source_of(graph_dir))


def tokenize_kg(kg: KnowledgeGraph, folder: Path, codebooks_dir: Path, config: TokenizerConfig,
                force: bool = False, progress: ProgressFactory = no_progress,
                source: Path | None = None) -> GraphSummary:
    """Tokenize an in-memory graph into ``folder`` (the token-table contract) unless it is up to date.

    A graph without triples (a linking knowledge base) is allowed: its
    entities get text and image tokens and an isolated-node structure code.
    """
    started = time.perf_counter()
    codebooks = CodebookSet.load(codebooks_dir)
    folder = Path(folder)
    source_digest = files_digest(kg.source_files)  # read every source once: fingerprint and manifest
    fingerprint = source_fingerprint(kg, config, codebooks, source_digest)
    source = Path(source) if source is not None else kg.root   # what the manifest records it was made from
    existing, redo_notes = existing_artifact(folder, source, fingerprint, force,
                                             lambda f: token_tables.read_manifest_only(f, verify_files=True))
    if existing is not None:
        return GraphSummary.skipped(kg.name, folder, [existing["counts"]], time.perf_counter() - started)
    notes = list(kg.warnings) + redo_notes + check_codebooks(codebooks, config, kg)
    notes += [f"{kg.name}: split {name!r} has no triples: nothing to evaluate on it"
              for name, split in sorted(kg.splits.items()) if not kg.triple_sets.get(split.queries)]
    for note in notes[len(kg.warnings):]:
        warnings.warn(note, stacklevel=2)
    indexed = index_graph(kg)
    k = config.tokens_per_entity
    n_ent, n_rel = len(kg.entities), len(kg.relations)
    entity_tokens: dict[str, dict[int, list[tuple[int, int]]]] = {}
    relation_tokens: dict[str, dict[int, list[tuple[int, int]]]] = {}
    timer = [0.0]

    # Structure: id-free neighbourhood statistics -> own code + neighbours' codes.
    graph = indexed.structure_graph
    own = CodeAssigner(codebooks["structure"].centroids).assign(
        structure.structural_features(n_ent, graph))
    entity_tokens["structure"] = structure.structure_tokens(own, graph, codebooks["structure"].size, k)

    # Text: entities and relations share the text codebook (mentions will too).
    lexical, dense, lexicon = {}, {}, None
    if config.use_text and "text" in codebooks:
        full_vectors: dict[int, np.ndarray] = {}
        for owner_kind, labels, texts, target, pooled in (
                ("entity", kg.entities, kg.entity_text, entity_tokens, full_vectors),
                ("relation", kg.relations, kg.relation_text, relation_tokens, None)):
            target["text"] = text_tokens(_owner_texts(labels, texts), codebooks, config, progress,
                                         f"{kg.name}: {owner_kind} text", timer, pooled)
        # Identity: every subword of names and descriptions, and dense codes of names and whole texts.
        names, descriptions = text_fields(kg.entities, kg.entity_text)
        lexical, dense = identity_columns("entity_id", names, descriptions, full_vectors, codebooks,
                                          config.text_encoder, progress, f"{kg.name}: entity", timer)
        lexicon = load_encoder(config.text_encoder).lexicon

    # Images: patch features -> codes, counted over all of an entity's images.
    images_used = np.zeros(n_ent, dtype=np.int64)
    failed: dict[int, int] = defaultdict(int)
    failed_paths: list[Path] = []
    if config.use_images and kg.images and "image" in codebooks:
        by_owner = {indexed.entity_index[e]: paths for e, paths in kg.images.items()}
        entity_tokens["image"] = image_tokens(by_owner, codebooks, config, progress, f"{kg.name}: images",
                                              timer, images_used, failed, failed_paths)
        if failed_paths:
            notes.append(unreadable_images_note(f"{kg.name}: {len(failed_paths)} unreadable image(s)", failed_paths))

    columns = _columns(kg, indexed, entity_tokens, relation_tokens, images_used, failed)
    columns["entity_lexical"] = lexical or {"entity_id": [], "field": [], "subword": [], "count": []}
    columns["entity_dense"] = dense or {"entity_id": [], "field": [], "codes": []}
    token_counts = {m: sum(len(v) for v in entity_tokens.get(m, {}).values()) for m in token_tables.MODALITIES}
    token_counts["relation_text"] = sum(len(v) for v in relation_tokens.get("text", {}).values())
    token_counts["lexical"] = len(columns["entity_lexical"]["entity_id"])
    token_counts["dense"] = len(columns["entity_dense"]["entity_id"])
    counts_body = {
        "entities": n_ent, "relations": n_rel,
        "triple_sets": {name: int(len(a)) for name, a in indexed.triple_sets.items()},
        "tokens": token_counts,
        "entities_with_tokens": {m: len(entity_tokens.get(m, {})) for m in token_tables.MODALITIES},
        "text_sources": {s: sum(1 for t in kg.entity_text.values() if t.source == s)
                         for s in ("file", "derived", "none")},
        "images_used": int(images_used.sum()), "images_failed": int(sum(failed.values())),
    }
    manifest = {
        "graph": {"name": kg.name, "layout": kg.layout, "root": str(source)},
        "fingerprint": fingerprint,
        "sources": source_digest,
        "encoders": {m: codebooks[m].encoder for m in ("text", "image") if m in codebooks},
        "codebooks": codebooks.describe(),
        "lexicon": lexicon,
        "settings": config.token_settings(),
        "splits": {name: {"graph": s.graph, "queries": s.queries} for name, s in sorted(kg.splits.items())},
        "counts": counts_body,
        "warnings": notes,
    }
    token_tables.write_token_tables(folder, kg.name, columns, manifest,
                                    codebooks[DENSE_TEXT] if DENSE_TEXT in codebooks else None)
    return GraphSummary(kg.name, "tokenized", str(folder), entities=n_ent, relations=n_rel,
                        triples=sum(counts_body["triple_sets"].values()), tokens=token_counts,
                        images_used=int(images_used.sum()), images_failed=int(sum(failed.values())),
                        seconds=time.perf_counter() - started, forward_seconds=timer[0], warnings=notes)


def _token_columns(owner_key: str, per_modality: dict[str, dict[int, list[tuple[int, int]]]]) -> dict[str, list]:
    cols: dict[str, list] = {owner_key: [], "modality": [], "rank": [], "code": [], "count": []}
    for modality in token_tables.MODALITIES:
        for owner in sorted(per_modality.get(modality, {})):
            for rank, (code, count) in enumerate(per_modality[modality][owner]):
                cols[owner_key].append(owner)
                cols["modality"].append(modality)
                cols["rank"].append(rank)
                cols["code"].append(code)
                cols["count"].append(count)
    return cols


def _columns(kg, indexed, entity_tokens, relation_tokens, images_used, failed) -> dict[str, dict[str, Any]]:
    def text_cols(labels, texts):
        rows = [texts.get(label) for label in labels]
        return {"label": labels,
                "name": [t.name if t else None for t in rows],
                "description": [t.description if t else None for t in rows],
                "text_source": [t.source if t else "none" for t in rows]}

    failed_arr = np.zeros(len(kg.entities), dtype=np.int64)
    for owner, count in failed.items():
        failed_arr[owner] = count
    triple_names = sorted(indexed.triple_sets)
    triples = np.concatenate([indexed.triple_sets[n] for n in triple_names]) if triple_names else np.zeros((0, 3))
    return {
        "entities": {"entity_id": np.arange(len(kg.entities), dtype=np.int32),
                     **text_cols(kg.entities, kg.entity_text),
                     "images_used": images_used.astype(np.int16), "images_failed": failed_arr.astype(np.int16)},
        "relations": {"relation_id": np.arange(len(kg.relations), dtype=np.int32),
                      **text_cols(kg.relations, kg.relation_text)},
        "triples": {"triple_set": [n for n in triple_names for _ in range(len(indexed.triple_sets[n]))],
                    "head": triples[:, 0].astype(np.int32), "relation": triples[:, 1].astype(np.int32),
                    "tail": triples[:, 2].astype(np.int32)},
        "entity_tokens": _token_columns("entity_id", entity_tokens),
        "relation_tokens": _token_columns("relation_id", relation_tokens),
    }
