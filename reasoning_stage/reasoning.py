"""Using a trained reasoner: evaluation tables, top-k predictions, fine-tuning."""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

from artifacts.checkpoint import load_checkpoint
from artifacts.compatibility import require_codebook_id
from artifacts.task_tables import (ALIGNMENT_KIND, AlignmentArtifact, LinkingArtifact, read_alignment_artifact,
                                   read_linking_artifact, task_kind)
from artifacts.token_tables import TokenTables, check_lexicon
from reasoning_stage.evaluation import Ranks, evaluate_graph
from reasoning_stage.graph_data import KnownTriples, graph_tensors
from reasoning_stage.config import EVIDENCE_FIT_STEPS, ModelConfig
from reasoning_stage.models import TofuModel, initial_evidence_weight, with_current_evidence

if TYPE_CHECKING:
    from reasoning_stage.graph_embedding import GraphEmbedding, GraphEmbeddingConfig


class PredictionInputError(ValueError):
    """A predictions file names something the graph does not have."""


@dataclass
class LoadedModel:
    model: TofuModel
    manifest: dict[str, Any]

    @property
    def codebook_id(self) -> str | None:
        return self.manifest.get("codebook_id")

    @property
    def lexicon(self) -> dict[str, Any] | None:
        """The tokenizer whose subword ids the evidence weights were fitted on (None before any fit)."""
        return self.manifest.get("lexicon") or self.manifest.get("training", {}).get("evidence", {}).get("lexicon")


def task_lexicon(artifact: "TaskArtifact") -> dict[str, Any] | None:
    return artifact.lexicon if isinstance(artifact, LinkingArtifact) else artifact.graphs[0].lexicon


def load_model(folder: Path, device: torch.device) -> LoadedModel:
    manifest, state, _ = load_checkpoint(folder)
    try:
        model = TofuModel(ModelConfig.from_json(manifest["model"]))
        model.load_state_dict(with_current_evidence(state, model), strict=True)
    except (RuntimeError, ValueError, TypeError) as err:
        from artifacts.errors import ArtifactError

        # load_state_dict's message opens with a header line ending in ':'; the reason is the next line.
        lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
        reason = lines[1] if len(lines) > 1 and lines[0].endswith(":") else lines[0] if lines else type(err).__name__
        raise ArtifactError(f"{folder}: a checkpoint of another model layout (written by TOFU "
                            f"{manifest.get('code_version', '?')}); this TOFU cannot load it: {reason}") from None
    return LoadedModel(model.to(device).eval(), manifest)


TaskArtifact = AlignmentArtifact | LinkingArtifact


def read_artifacts(paths: Sequence[Path]) -> tuple[list[TokenTables], list[TaskArtifact]]:
    """Split artifact folders into token tables (link prediction) and alignment / linking tasks."""
    from artifacts.token_tables import read_token_tables

    tables, tasks = [], []
    for path in paths:
        kind = task_kind(path)
        if kind is None:
            tables.append(read_token_tables(path))
        else:
            tasks.append(read_alignment_artifact(path) if kind == ALIGNMENT_KIND else read_linking_artifact(path))
    folders: dict[str, list[str]] = {}
    for artifact in [*tables, *tasks]:
        folders.setdefault(artifact.name, []).append(str(artifact.folder))
    twice = {name: where for name, where in folders.items() if len(where) > 1}
    if twice:   # metrics, prediction files and training logs are keyed by the name
        from artifacts.errors import ArtifactError

        name, where = next(iter(twice.items()))
        raise ArtifactError(f"two artifacts named {name!r} ({', '.join(where)}): give each graph or task once "
                            "(same-named artifacts of two roots cannot be told apart in the results)")
    return tables, tasks


def artifact_task(artifact: TaskArtifact) -> str:
    return "alignment" if isinstance(artifact, AlignmentArtifact) else "linking"


def task_tables_of(artifact: TaskArtifact) -> TokenTables:
    """A token-table folder of a task (for the codebook sizes a new model reads)."""
    return artifact.graphs[0] if isinstance(artifact, AlignmentArtifact) else artifact.kb


def evaluate_task(loaded: LoadedModel, artifact: TaskArtifact, split: str, device: torch.device,
                  routing: bool = True, candidates: str = "all", assignment: bool = False,
                  bootstrap: int = 0, problem: "MatchingProblem | None" = None) -> tuple[Ranks, dict[str, float]]:
    """Hits@k and MRR of an alignment (graph 1 -> graph-2 entities) or linking (mention -> every KB
    entity) split; ``routing=False`` embeds with the link-prediction route for every task.

    ``candidates``: ``"all"`` ranks every graph-2 entity, ``"test"`` only the split's gold counterparts
    (as alignment papers rank). ``assignment`` ranks after a global one-to-one (Sinkhorn) normalisation.
    ``bootstrap``: see :func:`matching_problem`; ``problem``: that problem already built for ``split``.
    """
    from reasoning_stage import matching

    pairs = task_pairs(artifact, split)
    if len(pairs) == 0:
        raise PredictionInputError(f"{artifact.folder}: split {split!r} has no gold pairs to evaluate "
                                   "(unlabelled mentions only?); use --predict-top-k for predictions")
    if candidates not in ("all", "test"):
        raise ValueError(f"candidates must be 'all' or 'test', not {candidates!r}")
    problem = problem or matching_problem(loaded, artifact, split, device, bootstrap=bootstrap)
    ranks = matching.rank_matches(loaded.model, problem.source, problem.target, pairs, problem.task,
                                  route_task=None if routing else 0, evidence=problem.evidence,
                                  candidates=np.unique(pairs[:, 1]) if candidates == "test" else None,
                                  assignment=assignment)
    return ranks, ranks.metrics()


@dataclass
class MatchingProblem:
    source: Any
    target: Any
    task: int
    evidence: Any


def seed_links(artifact: TaskArtifact, split: str) -> np.ndarray:
    """The links an alignment reads as input when asked for ``split``: its train links (none for the
    train split itself, nor for linking)."""
    if not isinstance(artifact, AlignmentArtifact) or split == "train":
        return np.zeros((0, 2), np.int64)
    return artifact.links.get("train", np.zeros((0, 2), np.int64))


# Share of an alignment's train links read as anchors when the rest are held out to learn from or validate on.
ANCHOR_SHARE = 0.7


def held_out_seed_links(pairs: np.ndarray, anchor_share: float = ANCHOR_SHARE, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Train links split (seeded, each part in file order) into anchors, read as input as at inference,
    and held-out pairs to learn from or to validate on."""
    order = np.random.default_rng(seed).permutation(len(pairs))
    cut = int(round(anchor_share * len(pairs)))
    return pairs[np.sort(order[:cut])], pairs[np.sort(order[cut:])]


def training_problem(loaded: LoadedModel, artifact: TaskArtifact, device: torch.device, anchor_share: float = ANCHOR_SHARE,
                     seed: int = 0, pairs: np.ndarray | None = None) -> tuple[MatchingProblem, np.ndarray]:
    """A task's problem on its train split, and the pairs to learn from: ``pairs`` (default: every train
    pair). An alignment's pairs are split (:func:`held_out_seed_links`) into anchors and the pairs to learn
    from."""
    from reasoning_stage import matching

    problem = matching_problem(loaded, artifact, "train", device)
    pairs = task_pairs(artifact, "train") if pairs is None else pairs
    if isinstance(artifact, AlignmentArtifact):
        anchors, pairs = held_out_seed_links(pairs, anchor_share, seed)
        problem.evidence = matching.matching_evidence(problem.source, problem.target, anchors)
    return problem, pairs


def best_bootstrap_rounds(hits: dict[int, float]) -> int:
    """The round count :func:`validate_bootstrap` found best; a tie goes to fewer rounds."""
    return max(hits, key=lambda rounds: (hits[rounds], -rounds))


def validate_bootstrap(loaded: LoadedModel, artifact: AlignmentArtifact, device: torch.device,
                       rounds: Sequence[int] = (0, 1)) -> dict[int, float]:
    """Hits@1 on held-out train links (:func:`held_out_seed_links`; the anchors are the other 70%) with
    each number of bootstrap rounds: how ``--bootstrap auto`` chooses without reading a test link."""
    from reasoning_stage import matching

    if not isinstance(artifact, AlignmentArtifact):
        raise PredictionInputError(f"{artifact.folder}: bootstrapping applies to alignment tasks")
    problem = matching_problem(loaded, artifact, "train", device)
    anchors, held = held_out_seed_links(task_pairs(artifact, "train"))
    if len(held) == 0:
        raise PredictionInputError(f"{artifact.folder}: too few train links to hold some out for validation")
    hits = {}
    for count in rounds:
        evidence = matching.bootstrapped_evidence(loaded.model, problem.source, problem.target, problem.task,
                                                  anchors, rounds=count)
        ranks = matching.rank_matches(loaded.model, problem.source, problem.target, held, problem.task,
                                      evidence=evidence)
        hits[count] = ranks.metrics()["hits@1"]
    return hits


def fit_evidence(loaded: LoadedModel, artifacts: Sequence[TaskArtifact], device: torch.device,
                 steps: int = EVIDENCE_FIT_STEPS) -> dict[str, float]:
    """Learn the checkpoint's evidence weights on the train splits of ``artifacts``; the loaded model is
    changed in place and its manifest records the tokenizer whose subword ids the weights saw."""
    from reasoning_stage import matching

    problems = []
    for artifact in artifacts:
        problem, pairs = training_problem(loaded, artifact, device)
        if len(pairs) == 0:
            raise PredictionInputError(
                f"{artifact.folder}: no training pairs to fit on (its train split has no labelled mentions, or an "
                "alignment too few train links to keep some apart from the anchors)")
        problems.append((problem.source, problem.target, problem.evidence, pairs, problem.task))
        if task_lexicon(artifact):
            loaded.manifest["lexicon"] = task_lexicon(artifact)
    losses = matching.fit_evidence_weights(loaded.model, problems, steps=steps)
    return {artifact.name: loss for artifact, loss in zip(artifacts, losses)}


def held_out_ranks_as_shipped(loaded: LoadedModel, artifact: TaskArtifact, device: torch.device,
                              holdout_seed: int = 0, steps: int = EVIDENCE_FIT_STEPS) -> Ranks:
    """Ranks of the pairs that training holds out for validation (:func:`training.matching_pairs`),
    scored as a shipped checkpoint scores a task, with none of those pairs seen by any fit.

    ``tofu fit-evidence`` fits a checkpoint's evidence weights on every train pair, the held-out ones
    included, so the checkpoint's own weights cannot be validated on them. Here the weights start again
    from their initial values (where training leaves them) and are fitted as ``fit-evidence`` fits them on
    the other train pairs only; an alignment then reads those other train links as its anchors. The model
    in ``loaded`` is left as it was.
    """
    from reasoning_stage import matching
    from reasoning_stage.training import matching_pairs

    fit_pairs, held = matching_pairs(artifact, holdout_seed)
    model = copy.deepcopy(loaded.model)
    with torch.no_grad():
        model.evidence_weight.copy_(initial_evidence_weight(model.config.num_tasks))
    refit = LoadedModel(model, loaded.manifest)
    problem, learn = training_problem(refit, artifact, device, pairs=fit_pairs)
    matching.fit_evidence_weights(model, [(problem.source, problem.target, problem.evidence, learn, problem.task)],
                                  steps=steps)
    anchors = fit_pairs if isinstance(artifact, AlignmentArtifact) else np.zeros((0, 2), np.int64)
    evidence = matching.matching_evidence(problem.source, problem.target, anchors,
                                          model.channel_in_use(problem.task, "far_anchors"))
    return matching.rank_matches(model, problem.source, problem.target, held, problem.task, evidence=evidence)


def matching_problem(loaded: LoadedModel, artifact: TaskArtifact, split: str, device: torch.device,
                     bootstrap: int = 0) -> MatchingProblem:
    """Both sides of a task artifact with their evidence (names, descriptions, anchors through the seed
    links), after the codebook and tokenizer checks. ``bootstrap`` (alignment): rounds of pseudo-seeds,
    confident mutual best matches among the entities no seed link names, added to the anchors
    (:func:`matching.bootstrapped_evidence`; neither the split nor a label is read)."""
    from reasoning_stage import matching

    require_codebook_id([artifact], loaded.codebook_id)
    check_lexicon(task_lexicon(artifact), loaded.lexicon, artifact.folder, "the checkpoint")
    if isinstance(artifact, AlignmentArtifact):
        source, target = matching.alignment_sides(artifact, loaded.model, device)
        task = matching.ALIGNMENT
    else:
        source, target = matching.linking_sides(artifact, loaded.model, device)
        task = matching.LINKING
    seeds = seed_links(artifact, split)
    if bootstrap and task == matching.ALIGNMENT:
        evidence = matching.bootstrapped_evidence(loaded.model, source, target, task, seeds, rounds=bootstrap)
    else:
        evidence = matching.matching_evidence(source, target, seeds, loaded.model.channel_in_use(task, "far_anchors"))
    return MatchingProblem(source, target, task, evidence)


def task_pairs(artifact: TaskArtifact, split: str) -> np.ndarray:
    """``[n, 2]`` (source, gold target) of a split: alignment links, or labelled mentions."""
    if isinstance(artifact, AlignmentArtifact):
        if split not in artifact.links:
            raise PredictionInputError(f"{artifact.folder}: no links of split {split!r} "
                                       f"(has {', '.join(sorted(artifact.links))})")
        return artifact.links[split]
    try:
        index, gold = artifact.split(split)
    except KeyError as err:
        raise PredictionInputError(str(err).strip('"')) from None
    return np.stack([index[gold >= 0], gold[gold >= 0]], 1)


def predict_task(loaded: LoadedModel, artifact: TaskArtifact, split: str, top_k: int,
                 device: torch.device, routing: bool = True, shortlist: int | None = None,
                 bootstrap: int = 0, problem: "MatchingProblem | None" = None) -> list[dict[str, Any]]:
    """Top-k candidates (labels and names) for every source of a split: graph-1 entities or mentions;
    ``shortlist``: re-rank only each channel's best candidates (see :func:`matching.top_matches`);
    ``bootstrap``, ``problem``: see :func:`evaluate_task`."""
    from reasoning_stage import matching

    problem = problem or matching_problem(loaded, artifact, split, device, bootstrap=bootstrap)
    if isinstance(artifact, AlignmentArtifact):
        rows = task_pairs(artifact, split)[:, 0]
        source_labels = artifact.graphs[0].tables["entities"]["label"].to_pylist()
        target_table = artifact.graphs[1].tables["entities"]
    else:
        rows = artifact.split(split)[0]
        texts = artifact.mentions["text"].to_pylist()
        source_labels = [f"{i}:{t}" for i, t in zip(artifact.mentions["mention_id"].to_pylist(), texts)]
        target_table = artifact.kb.tables["entities"]
    labels, names = target_table["label"].to_pylist(), target_table["name"].to_pylist()
    index, scores = matching.top_matches(loaded.model, problem.source, problem.target, np.asarray(rows), problem.task,
                                         top_k, route_task=None if routing else 0, evidence=problem.evidence,
                                         shortlist=shortlist)
    out = []
    for row, candidates, values in zip(np.asarray(rows).tolist(), index.tolist(), scores.tolist()):
        for rank, (candidate, value) in enumerate(zip(candidates, values), 1):
            out.append({"source": source_labels[row], "rank": rank, "candidate": labels[candidate],
                        "candidate_name": names[candidate] or "", "score": round(value, 6)})
    return out


def check_splits(tables: TokenTables, splits: Sequence[str], need_queries: bool = True) -> None:
    """Refuse, before any work, a split the artifact lacks, splits over different inference graphs, or
    (``need_queries``) splits with no triples to rank together: an example graph or a graph kept only
    for predictions can have an empty test split."""
    missing = [s for s in splits if s not in tables.splits]
    if missing:
        raise PredictionInputError(f"{tables.folder}: no split {missing[0]!r} "
                                   f"(has {', '.join(sorted(tables.splits))}); choose with --split")
    graphs = {s: tables.splits[s]["graph"] for s in splits}
    if len(set(graphs.values())) > 1:
        # Each inference graph has its own candidates; ranks over two of them cannot be pooled.
        over = "; ".join(f"{s} over {g}" for s, g in graphs.items())
        raise PredictionInputError(f"{tables.folder}: splits {', '.join(splits)} are ranked over different "
                                   f"inference graphs ({over}); evaluate them in separate runs")
    if need_queries and not sum(len(tables.queries(s)) for s in splits):
        raise PredictionInputError(f"{tables.folder}: split(s) {', '.join(splits)} hold no triples to evaluate "
                                   f"(splits with triples: {', '.join(s for s in sorted(tables.splits) if len(tables.queries(s))) or 'none'}); "
                                   "choose with --split, or use --predict")


def evaluate(loaded: LoadedModel, tables: TokenTables, splits: Sequence[str], device: torch.device,
             batch_size: int | None = None, progress: Callable | None = None) -> tuple[Ranks, dict[str, float]]:
    check_splits(tables, splits)
    require_codebook_id([tables], loaded.codebook_id)
    ranks = evaluate_graph(loaded.model, tables, list(splits), device, batch_size=batch_size, progress=progress)
    return ranks, ranks.metrics()


def per_relation_metrics(ranks: Ranks, tables: TokenTables) -> dict[str, dict[str, float | int]]:
    """``{relation label: {"mrr", "queries", "tail_mrr", "tail_queries", "head_mrr", "head_queries"}}`` of
    the ranked queries: filtered pessimistic MRR of both directions and of tail and head queries alone
    (a direction without queries has MRR 0 and 0 queries)."""
    labels = tables.tables["relations"]["label"].to_pylist()
    both = ranks.per_relation(tables.num_relations)
    sides = {d: ranks.per_relation(tables.num_relations, d) for d in ("tail", "head")}
    out = {}
    for relation, (mrr, queries) in both.items():
        record: dict[str, float | int] = {"mrr": mrr, "queries": queries}
        for side, found in sides.items():
            record[f"{side}_mrr"], record[f"{side}_queries"] = found.get(relation, (0.0, 0))
        out[labels[relation]] = record
    return out


def read_prediction_queries(path: Path, tables: TokenTables, split: str | None = None) -> list[tuple[int, int, str]]:
    """Rows ``head<TAB>relation<TAB>?`` or ``?<TAB>relation<TAB>tail`` of a file, in labels -> (entity,
    relation id, side); see :func:`parse_prediction_queries`."""
    with open(path, "rb") as handle:
        return parse_prediction_queries(query_lines(handle, str(path)), tables, split, str(path))


def query_lines(handle: Iterable[bytes], name: str) -> Iterator[tuple[str, str]]:
    """``(where, line)`` of each line of a query file or stream; ``where`` is ``name:line``."""
    for number, raw in enumerate(handle, 1):
        try:
            line = raw.decode("utf-8-sig" if number == 1 else "utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise PredictionInputError(f"{name}:{number}: not valid UTF-8") from None
        yield f"{name}:{number}", line


def parse_prediction_queries(rows: Iterable[tuple[str, str]], tables: TokenTables, split: str | None = None,
                             source: str = "queries") -> list[tuple[int, int, str]]:
    """``(where, 'head<TAB>relation<TAB>?' or '?<TAB>relation<TAB>tail')`` in labels -> (entity, relation
    id, side); an error names the row's ``where``, blank rows are skipped.

    With ``split``, each query's entity must be in that split's inference graph (the graph the
    answers are ranked over); an entity of another graph of the artifact is refused at its line.
    """
    from reasoning_stage.graph_data import candidate_entities

    entities = {label: i for i, label in enumerate(tables.tables["entities"]["label"].to_pylist())}
    relations = {label: i for i, label in enumerate(tables.tables["relations"]["label"].to_pylist())}
    inside = set(candidate_entities(tables, split).tolist()) if split is not None else None
    queries = []
    for where, line in rows:
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 3:
            raise PredictionInputError(f"{where}: expected head<TAB>relation<TAB>tail with one '?'")
        head, relation, tail = parts
        if (head == "?") == (tail == "?"):
            raise PredictionInputError(f"{where}: exactly one of head and tail must be '?'")
        if relation not in relations:
            raise PredictionInputError(f"{where}: relation {relation!r} is not in graph {tables.name}")
        known = tail if head == "?" else head
        if known not in entities:
            raise PredictionInputError(f"{where}: entity {known!r} is not in graph {tables.name}")
        if inside is not None and entities[known] not in inside:
            others = [s for s in sorted(tables.splits)
                      if entities[known] in set(candidate_entities(tables, s).tolist())]
            raise PredictionInputError(
                f"{where}: entity {known!r} is not in the graph of split {split!r} "
                f"({tables.splits[split]['graph']}), which --split picks for the predictions"
                + (f"; it is in that of split(s) {', '.join(others)}" if others else ""))
        queries.append((entities[known], relations[relation], "head" if head == "?" else "tail"))
    if not queries:
        raise PredictionInputError(f"{source}: no queries")
    return queries


def predict(loaded: LoadedModel, tables: TokenTables, split: str, queries: list[tuple[int, int, str]],
            top_k: int, device: torch.device, exclude_known: bool = False) -> list[dict[str, Any]]:
    """Top-k answers (labels and names) for each query, highest score first.

    Each answer's ``known`` names the artifact's triple sets that already hold it (e.g. ``train``;
    empty for a new fact); ``exclude_known`` leaves those answers out, so a query may get fewer than k.
    """
    require_codebook_id([tables], loaded.codebook_id)
    graph = graph_tensors(tables, split)
    num_rel = graph.num_relations
    # Query entities and answers: artifact ids outside, this split's node ids inside the model.
    as_triples = torch.tensor([[e, 0, e] for e, _, _ in queries], dtype=torch.long)
    try:
        local = graph.to_local(as_triples)[:, 0].tolist()
    except ValueError as err:
        raise PredictionInputError(f"{err} (split {split!r})") from err
    queries = [(node, r, side) for node, (_, r, side) in zip(local, queries)]
    artifact_id = graph.entity_ids.tolist() if graph.entity_ids is not None else None
    labels = tables.tables["entities"]["label"].to_pylist()
    names = tables.tables["entities"]["name"].to_pylist()
    rel_labels = tables.tables["relations"]["label"].to_pylist()
    batch = torch.tensor([[e, r + (num_rel if side == "head" else 0)] for e, r, side in queries])
    known_mask = KnownTriples(tables, graph).mask(batch[:, 0], batch[:, 1]) if exclude_known else None
    graph = graph.to(device)
    with torch.inference_mode():
        scores = loaded.model(graph, batch.to(device))
    if known_mask is not None:
        scores = scores.masked_fill(known_mask.to(scores.device), float("-inf"))
    top = torch.topk(scores, min(top_k, scores.shape[1]), dim=1)
    rows, answered = [], []
    for (entity, relation, side), values, indices in zip(queries, top.values.tolist(), top.indices.tolist()):
        if artifact_id is not None:
            entity, indices = artifact_id[entity], [artifact_id[i] for i in indices]
        for rank, (value, index) in enumerate(zip(values, indices), 1):
            if value == float("-inf"):   # a known answer left out, as are all below it
                break
            rows.append({"query_head": "?" if side == "head" else labels[entity], "relation": rel_labels[relation],
                         "query_tail": labels[entity] if side == "head" else "?", "rank": rank,
                         "answer": labels[index], "answer_name": names[index] or "", "score": round(value, 6)})
            answered.append((index, relation, entity) if side == "head" else (entity, relation, index))
    for row, sets in zip(rows, known_triple_sets(tables, np.asarray(answered, dtype=np.int64).reshape(-1, 3))):
        row["known"] = sets
    return rows


def known_triple_sets(tables: TokenTables, triples: np.ndarray) -> list[str]:
    """For each ``(head, relation, tail)`` row in artifact ids, the names of the artifact's triple sets
    that hold it, comma-separated ('' for none)."""
    def keys(rows: np.ndarray) -> np.ndarray:
        return (rows[:, 0] * tables.num_relations + rows[:, 1]) * tables.num_entities + rows[:, 2]

    asked = keys(triples)
    held = {name: np.isin(asked, keys(tables.triple_set(name))) for name in tables.manifest["counts"]["triple_sets"]}
    return [",".join(name for name, inside in held.items() if inside[i]) for i in range(len(triples))]


def with_graph_embedding(loaded: LoadedModel, tables: TokenTables, device: torch.device,
                         config: "GraphEmbeddingConfig", held_out: Sequence[str] = (), train_split: str = "train",
                         validation_split: str = "valid", progress: Callable | None = None
                         ) -> tuple[LoadedModel, "GraphEmbedding", dict[str, Any]]:
    """``loaded`` with a graph-own embedding (:mod:`reasoning_stage.graph_embedding`) fitted on the
    ``train_split`` graph of ``tables`` and added to its link-prediction scores.

    The weight is chosen on ``validation_split`` when the artifact has one with triples and it is not
    among ``held_out`` (the splits about to be evaluated); otherwise it is ``UNVALIDATED_WEIGHT``.
    Returns the combined model, the embedding and a record of the fit (the weight, where it was chosen,
    each grid weight's validation MRR, the run).
    """
    from reasoning_stage.graph_embedding import (UNVALIDATED_WEIGHT, WithGraphEmbedding, fit_graph_embedding,
                                                 weight_on_validation)

    if train_split not in tables.splits or not len(tables.queries(train_split)):
        raise PredictionInputError(f"{tables.folder}: no {train_split!r} triples to fit a graph embedding on "
                                   f"(splits: {', '.join(sorted(tables.splits))})")
    require_codebook_id([tables], loaded.codebook_id)
    embedding, run = fit_graph_embedding(graph_tensors(tables, train_split), tables.num_entities, config, device,
                                         progress)
    validated = (validation_split in tables.splits and validation_split not in held_out
                 and len(tables.queries(validation_split)) > 0)
    record: dict[str, Any] = {"run": run, "chosen_on": validation_split if validated else None}
    if validated:
        weight, by_weight = weight_on_validation(loaded.model, embedding, tables, validation_split, device)
        record["validation_mrr"] = {f"{w:g}": round(mrr, 4) for w, mrr in by_weight.items()}
    else:
        weight = UNVALIDATED_WEIGHT
    record["weight"] = weight
    return LoadedModel(WithGraphEmbedding(loaded.model, embedding, weight), loaded.manifest), embedding, record


def with_saved_graph_embedding(loaded: LoadedModel, tables: TokenTables, folder: Path,
                               device: torch.device) -> tuple[LoadedModel, float]:
    """``loaded`` with the graph embedding kept in ``folder`` (``tofu reason --embedding-minutes``) added at
    its recorded weight; refused (``ArtifactError``) unless it was fitted on ``tables``."""
    from artifacts.graph_embedding import load_graph_embedding
    from reasoning_stage.graph_embedding import GraphEmbedding, WithGraphEmbedding

    manifest, tensors = load_graph_embedding(folder, tables)
    embedding = GraphEmbedding(tensors["entity"].shape[0], tensors["relation"].shape[0],
                               tensors["entity"].shape[1] // 2)
    embedding.load_state_dict(tensors)
    embedding = embedding.requires_grad_(False).to(device).eval()
    weight = float(manifest["weight"])
    return LoadedModel(WithGraphEmbedding(loaded.model, embedding, weight), loaded.manifest), weight
