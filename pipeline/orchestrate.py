"""Running stage one over many graphs: codebooks first, then graphs in parallel on Dask.

Codebooks must exist before any graph is quantized (that is what makes the
tokens of all graphs comparable), so fitting is a serial first phase; the
per-graph work after it is independent and runs on a Dask cluster: a local
one by default, or an existing one given by its scheduler address.
"""
from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from artifacts.atomic import atomic_write_json, exclusive_root, remove_stale_staging
from artifacts.codebooks import CodebookSet, codebooks_exist
from artifacts.root import LAST_RUN_FILE, codebook_folder, remove_root_without_artifacts
from artifacts.shipped import shipped_codebooks
from pipeline.defaults import SCHEDULER_TIMEOUT
from tokenizer_stage.kg_reader import TRIPLE_FILE_SUFFIXES, KGFormatError, KGWarning, detect_layout
from tokenizer_stage.naming import artifact_name
from tokenizer_stage.config import TokenizerConfig
from tokenizer_stage.tokenize import (GraphSummary, codebook_size_notes, codebooks_suit_config, fit_codebooks,
                                      tokenize_graph)


POLL_SECONDS = 1.0   # how often a Dask run checks that its cluster still has workers


class ClusterError(RuntimeError):
    """The Dask cluster cannot run the graphs: its scheduler is unreachable or lost, or it has no workers."""


@dataclass
class GraphFailure:
    name: str
    error: str
    source: str = ""    # the graph folder that failed
    status: str = "failed"   # as a GraphSummary's "tokenized" / "skipped", in last_tokenize_run.json


def _is_recipe(path: Path) -> bool:
    """A pretraining recipe (``[[graph]]`` entries), given where a graph's kg.toml was expected."""
    return "[[graph]]" in path.read_text(encoding="utf-8", errors="replace")


def _not_a_graph(path: Path) -> str | None:
    """None for a KG folder or an alignment / linking task folder (tokenized the same way); else why
    it is neither.

    A folder that declares itself one (a kg.toml or task.toml in it, or the file named) is one: an
    error in its TOML is raised (file and line), not taken for "no graph here".
    """
    from tokenizer_stage.tasks import TASK_TOML, detect_task_layout

    declared = (path / "kg.toml").is_file() or (path / TASK_TOML).is_file() \
        or (path.is_file() and path.suffix.lower() == ".toml" and not _is_recipe(path))
    try:
        if detect_task_layout(path) is None:
            detect_layout(path)
        return None
    except KGFormatError as err:
        if declared:
            raise
        return err.reason


def discover_graph_dirs(paths: Sequence[Path], skipped: list[tuple[Path, str]] | None = None) -> list[Path]:
    """Graph folders named directly, or every graph folder inside a folder of graphs.

    In a folder of GraIL graphs, ``X_ind`` is read as part of ``X`` and not on its own. Subfolders
    that are no graph are left out, each added to ``skipped`` with the reason.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise KGFormatError("no such graph folder", path)
        problem = _not_a_graph(path)
        if problem is None:   # a folder, its kg.toml / task.toml, or one triples file
            found.append(path)
            continue
        if not path.is_dir():
            recipe = path.suffix.lower() == ".toml" and _is_recipe(path)
            raise KGFormatError("is a file, not a kg.toml or task.toml; give a knowledge-graph folder, a folder "
                                f"of them or one file of triples ({', '.join(TRIPLE_FILE_SUFFIXES)}; see README: "
                                "'The KG directory')"
                                + ("; a pretraining recipe runs with `tofu pretrain`" if recipe else ""), path)
        children = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
        why_not = {child: _not_a_graph(child) for child in children}
        graphs = [child for child, why in why_not.items() if why is None]
        # Non-graphs are said only where graph files were likely meant (a folder of .json names that
        # a sibling task reads, such as DBP15K's translated_ent_name, is no mistake).
        if skipped is not None:
            skipped.extend((child, f"neither a graph nor a task folder ({why})") for child, why in why_not.items()
                           if why is not None and any(p.suffix.lower() in (".tsv", ".txt") for p in child.iterdir()))
        names = {p.name for p in graphs}
        graphs = [p for p in graphs if not (p.name.endswith("_ind") and p.name[:-4] in names)]
        if not graphs:
            raise KGFormatError(f"neither a knowledge-graph folder ({problem}) nor a folder of them "
                                "(see README: 'The KG directory')", path)
        found.extend(graphs)
    return found


def resolve_codebooks(out_root: Path, codebooks: Path | None, refit: bool, graph_dirs: Sequence[Path],
                      config: TokenizerConfig, progress, use_shipped: bool = True) -> tuple[Path, str]:
    """Where the codebooks are; returns (path, what happened).

    Order: ``codebooks`` if given; else ROOT/codebooks if present; else the
    shipped pretrained set (copied into ROOT/codebooks) when it suits
    ``config`` -- so the shipped model reads the tokens; else fit new ones.
    ``refit`` always fits.
    """
    location = codebook_folder(out_root, codebooks)
    if codebooks and not refit and not codebooks_exist(location):
        raise FileNotFoundError(f"{location}: no codebook set there (a folder with manifest.json); "
                                "omit --codebooks to fit one in the output root, or add --refit-codebooks")
    if codebooks_exist(location) and not refit:
        CodebookSet.load(location)  # validate before any graph work
        return location, "frozen"
    shipped = shipped_codebooks() if use_shipped and not refit and not codebooks else None
    shipped_set = CodebookSet.load(shipped) if shipped is not None else None
    if shipped_set is not None and codebooks_suit_config(shipped_set, config) is None:
        shipped_set.save(location)
        return location, "shipped"
    book_set = fit_codebooks(graph_dirs, config, progress=progress)
    book_set.save(location)
    return location, "fitted"


def _tokenize_one(graph_dir: str, out_root: str, codebooks_dir: str, config: TokenizerConfig,
                   force: bool, threads: int, progress_enabled: bool) -> GraphSummary | GraphFailure:
    """One graph or task on a Dask worker (or in-process); failures come back as values, not crashes."""
    import torch

    from pipeline.progress import make_progress

    from tokenizer_stage.tasks import detect_task_layout
    from tokenizer_stage.tokenize_task import tokenize_task

    torch.set_num_threads(threads)
    try:
        run = tokenize_task if detect_task_layout(Path(graph_dir)) is not None else tokenize_graph
        # The summary carries every warning back to the caller, who shows them: a worker process
        # printing them itself would interleave them with the progress bars.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return run(Path(graph_dir), Path(out_root), Path(codebooks_dir), config, force=force,
                       progress=make_progress(progress_enabled))
    except (KGFormatError, ValueError, OSError, RuntimeError) as err:
        return _failure(graph_dir, str(err))


def _failure(graph_dir: str, error: str) -> GraphFailure:
    try:   # the artifact's name, as a success would be listed, when the name itself can be read
        name = artifact_name(Path(graph_dir))
    except (KGFormatError, ValueError, OSError):
        name = Path(graph_dir).name
    return GraphFailure(name, error, str(graph_dir))


def tokenize_many(graph_dirs: Sequence[Path], out_root: Path, config: TokenizerConfig,
                  codebooks: Path | None = None, refit_codebooks: bool = False, force: bool = False,
                  workers: int | None = None, scheduler: str | None = None, progress: bool = True,
                  on_result: Callable[[GraphSummary | GraphFailure], None] | None = None,
                  use_shipped_codebooks: bool = True,
                  scheduler_timeout: float = SCHEDULER_TIMEOUT) -> tuple[list[GraphSummary | GraphFailure], dict]:
    """Tokenize every graph; return per-graph results (in input order) and run facts.

    One run at a time writes to an artifact root (a second one is refused: :func:`exclusive_root`).
    A Dask run raises :class:`ClusterError` when its scheduler does not answer within
    ``scheduler_timeout`` seconds, or its cluster has no worker for that long.
    """
    out_root = Path(out_root)
    out_root.parent.mkdir(parents=True, exist_ok=True)
    try:   # made by this run only if this very mkdir makes it (not a path through '..' to an old folder)
        out_root.mkdir()
        new_root = True
    except FileExistsError:
        new_root = False
    with exclusive_root(out_root):   # a run refused the lock removes nothing
        try:
            results, facts = _tokenize_many(graph_dirs, out_root, config, codebooks, refit_codebooks, force,
                                            workers, scheduler, progress, on_result, use_shipped_codebooks,
                                            scheduler_timeout)
        except Exception:
            if new_root:   # still under the lock: no other run writes here
                remove_root_without_artifacts(out_root)
            raise
        # A root this run made, where every graph failed, holds only what the run wrote beside them.
        failed_all = bool(results) and all(isinstance(r, GraphFailure) for r in results)
        facts["root_removed"] = new_root and failed_all and remove_root_without_artifacts(out_root)
    # Warnings are raised here, in the caller's process, once per graph and whatever the executor.
    for note in facts["codebook_notes"]:
        warnings.warn(note, KGWarning, stacklevel=2)
    for result in results:
        for note in getattr(result, "warnings", ()):
            warnings.warn(note, KGWarning, stacklevel=2)
    return results, facts


def _tokenize_many(graph_dirs, out_root, config, codebooks, refit_codebooks, force, workers, scheduler, progress,
                   on_result, use_shipped_codebooks, scheduler_timeout):
    from pipeline.progress import make_progress

    remove_stale_staging(out_root)
    # Absolute, but symlinks kept: a linked graph folder is named by its link, as the CLI named it.
    graph_dirs = [Path(os.path.abspath(d)) for d in graph_dirs]
    started = time.perf_counter()
    codebooks_dir, codebook_state = resolve_codebooks(out_root, codebooks, refit_codebooks, graph_dirs,
                                                      config, make_progress(progress), use_shipped_codebooks)
    if refit_codebooks:
        force = True  # every artifact made with the old codebooks is now stale
    cpus = os.cpu_count() or 1
    workers = workers or min(len(graph_dirs), cpus)
    threads = max(1, cpus // max(workers, 1))
    # Absolute paths: a worker of a --scheduler cluster may run in another folder.
    args = (os.path.abspath(out_root), os.path.abspath(codebooks_dir), config, force)
    results: dict[str, GraphSummary | GraphFailure] = {}

    def arrived(result: GraphSummary | GraphFailure) -> None:
        if on_result:
            on_result(result)

    if scheduler is None and workers <= 1:
        executor = "serial"
        for graph_dir in graph_dirs:
            result = _tokenize_one(str(graph_dir), *args, threads, progress)
            results[str(graph_dir)] = result
            arrived(result)
    else:
        executor = f"dask:{scheduler}" if scheduler else f"dask:local({workers} workers)"
        results = _run_on_dask(graph_dirs, args, threads, progress, workers, scheduler, arrived, scheduler_timeout)
    ordered = [results[str(d)] for d in graph_dirs]
    book_set = CodebookSet.load(codebooks_dir)
    facts = {"codebooks": str(codebooks_dir), "codebook_state": codebook_state, "codebook_id": book_set.codebook_id,
             "codebook_notes": codebook_size_notes(book_set), "executor": executor,
             "seconds": round(time.perf_counter() - started, 3)}
    atomic_write_json(out_root / LAST_RUN_FILE, {
        "facts": facts, "config": _config_json(config),
        "graphs": [r.as_dict() if isinstance(r, GraphSummary) else vars(r) for r in ordered]})
    return ordered, facts


def _run_on_dask(graph_dirs, args, threads, progress, workers, scheduler, on_result, timeout):
    import logging

    from dask.distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout=timeout)
        except (OSError, ValueError, TypeError) as err:   # unreachable (after timeout s), or a bad address
            raise ClusterError(f"cannot reach the Dask scheduler at {scheduler!r}: {err}") from None
        cluster = None
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)
        client = Client(cluster)
    try:
        futures = {client.submit(_tokenize_one, str(d), *args, threads, progress, pure=False): str(d)
                   for d in graph_dirs}
        return _gather(client, futures, scheduler or "local", on_result, timeout)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _gather(client, futures: dict, where: str, on_result, timeout: float) -> dict:
    """Each future's result as it arrives; a :class:`ClusterError` when the scheduler is lost or the
    cluster has had no worker for ``timeout`` seconds (its tasks would wait for ever)."""
    from concurrent.futures import CancelledError

    from dask.distributed import wait
    from distributed.comm import CommClosedError
    from distributed.scheduler import KilledWorker

    results, pending = {}, set(futures)
    no_worker_since = None
    while pending:
        try:
            done, pending = wait(pending, timeout=POLL_SECONDS, return_when="FIRST_COMPLETED")
        except TimeoutError:
            done = set()
        for future in done:
            try:
                result = future.result()
            except KilledWorker as err:   # the scheduler gave up on it after workers died running it
                result = _failure(futures[future], f"Dask workers died while tokenizing it ({err})")
            except (CancelledError, CommClosedError, OSError) as err:
                raise ClusterError(f"lost the Dask scheduler ({where}): {err or type(err).__name__}") from None
            results[futures[future]] = result
            if on_result:
                on_result(result)
        if not pending:
            break
        try:
            has_workers = bool(client.nthreads())
        except (CommClosedError, OSError) as err:
            raise ClusterError(f"lost the Dask scheduler ({where}): {err}") from None
        if has_workers:
            no_worker_since = None
        elif no_worker_since is None:
            no_worker_since = time.monotonic()
        elif time.monotonic() - no_worker_since > timeout:
            raise ClusterError(f"the Dask cluster ({where}) has had no workers for {timeout:g} s, with "
                               f"{len(pending)} of {len(futures)} graph(s) left; start workers "
                               "(dask worker ADDRESS) or raise --scheduler-timeout")
    return results


def _config_json(config: TokenizerConfig) -> dict:
    from dataclasses import asdict

    return asdict(config)
