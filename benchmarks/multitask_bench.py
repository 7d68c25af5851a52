"""Alignment and linking table of a checkpoint (default: the shipped one).

Tokenizes the four tasks from ../shared/data with --codebooks (default: the shipped set, which the
shipped checkpoint reads; pass the matching set with any other --checkpoint)
and writes ``multitask.csv`` and ``multitask.md`` into --work:

- alignment: DBP15K zh_en (translated names; 30% of the gold pairs train,
  70% test) and DB15K <-> MKG-W (the 2,246 ent_links pairs with both
  entities present; 30% / 70%); each test entity of graph 1 ranks every
  entity of graph 2;
- linking: WikiMEL and Richpedia-MEL test mentions rank every KB entity.

Rows per dataset, each with its candidate protocol (alignment: "all graph-2
entities", or only the "test counterparts" as the published peers rank;
linking: "all KB entities"):

- "TF-IDF names, no training": character 3-gram TF-IDF cosine over the names
  (benchmarks/name_baseline.py), computed here on the same test pairs and
  candidates; for alignment also with a global one-to-one assignment
  (Sinkhorn ranks; Hungarian H@1 in the setting label);
- the checkpoint as it is ("zero-shot" when the checkpoint never trained on
  that dataset, per its manifest; else "trained in checkpoint"), under both
  alignment protocols; the same with routing off (the link-prediction route
  for every task); for alignment, with assignment (test counterparts), and
  with one round of bootstrapped pseudo-seeds under each protocol, labelled
  with the held-out train links' H@1 with and without it (what
  ``tofu reason --bootstrap auto`` chooses by); for alignment, the same rows again
  with the alignment evidence weights fitted on the task's own seed links
  (``tofu reason --fit-on-seeds``), bootstrap rows labelled by the same check;
- with --finetune-steps, a row after fine-tuning a copy on the dataset's own
  train split ("fine-tuned").

Ranks count ties against the answer (rank = 1 + candidates scoring >= it). Seconds are the
ranking; the first row of a dataset (and of its bootstrap rows) also builds the evidence.
--baseline-only skips the checkpoint rows (no model is loaded).

    python benchmarks/multitask_bench.py [--data PATH] [--work DIR] [--checkpoint CKPT]
        [--tasks DBP15K-zh_en,DB15K-MKG-W,WikiMEL,RichpediaMEL] [--finetune-steps 200] [--baseline-only]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# Published H@1 beside ours (../shared/REFERENCE.md). Linking peers rank MIMIC's larger KBs (WikiMEL 109,976,
# RichpediaMEL 160,933 entities; ours 18,880 and 17,805), so they are not directly comparable; DBP15K peers rank
# the 10,500 test counterparts (30% seed links, 70% test). No published figure for DB15K <-> MKG-W.
PUBLISHED = {
    "WikiMEL": "BLINK 0.747 (text), MIMIC 0.880, MMoE 0.908 (KB 110k, with images)",
    "RichpediaMEL": "BLINK 0.585 (text), MIMIC 0.810, MMoE 0.855 (KB 161k, with images)",
    "zh_en": "Dual-AMN 0.731 (structure only); RDGCN 0.708, MCLEA 0.96, MEAformer 0.973 (with names); "
             "test counterparts",
    "DB15K-MKG-W": "–"}
BASELINE = "TF-IDF names, no training"
ALL_TARGETS = {"alignment": "all graph-2 entities", "linking": "all KB entities"}
TEST_TARGETS = "test counterparts"


def task_folders(data: Path, work: Path) -> dict[str, Path]:
    """The four task folders; DB15K <-> MKG-W gets a task.toml in ``work`` pointing into ``data``."""
    pair = work / "tasks" / "DB15K-MKG-W"
    pair.mkdir(parents=True, exist_ok=True)
    (pair / "task.toml").write_text(
        '[task]\nkind = "alignment"\nname = "DB15K-MKG-W"\n'
        f'graph1 = "{(data / "mmkg" / "DB15K").resolve()}"\ngraph2 = "{(data / "mmkg" / "MKG-W").resolve()}"\n'
        f'[links]\nall = "{(data / "alignment" / "mkg_ent_links" / "MKG-W" / "ent_links").resolve()}"\n'
        'test_fraction = 0.7\nseed = 0\nmissing = "skip"\n', encoding="utf-8")
    return {"DBP15K-zh_en": data / "alignment" / "DBP15K" / "zh_en", "DB15K-MKG-W": pair,
            "WikiMEL": data / "linking" / "WikiMEL", "RichpediaMEL": data / "linking" / "RichpediaMEL"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("TOFU_DATA", REPO.parent / "shared" / "data")))
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "multitask")
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: the shipped checkpoint")
    parser.add_argument("--codebooks", type=Path, default=None, help="default: the shipped codebooks")
    parser.add_argument("--tasks", default="DBP15K-zh_en,DB15K-MKG-W,WikiMEL,RichpediaMEL")
    parser.add_argument("--finetune-steps", type=int, default=0, help="fine-tune steps per task (0: skip)")
    parser.add_argument("--tokenize-only", action="store_true")
    parser.add_argument("--baseline-only", action="store_true", help="only the TF-IDF name baseline rows")
    args = parser.parse_args()

    import torch

    from artifacts.shipped import shipped_checkpoint, shipped_codebooks
    from pipeline.orchestrate import tokenize_many
    from reasoning_stage.allocator import retain_freed_memory
    import copy

    from reasoning_stage.reasoning import (LoadedModel, artifact_task, best_bootstrap_rounds, evaluate_task,
                                           fit_evidence, load_model, read_artifacts, validate_bootstrap)
    from reasoning_stage.config import TrainConfig
    from reasoning_stage.training import matching_job, train
    from tokenizer_stage.config import TokenizerConfig

    retain_freed_memory()
    torch.set_num_threads(os.cpu_count() or 1)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    checkpoint = args.checkpoint or shipped_checkpoint()
    codebooks = args.codebooks or shipped_codebooks()
    if checkpoint is None or codebooks is None:
        sys.exit("no checkpoint/codebooks given and none shipped")
    if not args.data.is_dir():
        sys.exit(f"data folder {args.data} not found; pass --data or set TOFU_DATA")
    wanted = [t for t in args.tasks.split(",") if t]
    folders = task_folders(args.data, args.work)
    started = time.perf_counter()
    results, facts = tokenize_many([folders[t] for t in wanted], args.work / "artifacts", TokenizerConfig(),
                                   codebooks=codebooks, workers=1, progress=True)
    failed = [r for r in results if getattr(r, "error", None)]
    if failed:
        sys.exit("; ".join(f"{r.name}: {r.error}" for r in failed))
    tokenize_seconds = time.perf_counter() - started
    print(f"tokenized {len(results)} task(s) in {tokenize_seconds:.0f}s", flush=True)
    if args.tokenize_only:
        return
    _, artifacts = read_artifacts([Path(r.folder) for r in results])
    loaded = None if args.baseline_only else load_model(checkpoint, device)
    trained_on = set() if loaded is None else {
        t["name"] for t in loaded.manifest.get("training", {}).get("tasks", [])}
    rows = []

    def record(artifact, label, protocol, metrics, seconds):
        rows.append({"task": artifact_task(artifact), "dataset": artifact.name, "setting": label,
                     "protocol": protocol, "queries": int(metrics["queries"]),
                     "hits@1": round(metrics["hits@1"], 4), "hits@10": round(metrics["hits@10"], 4),
                     "mrr": round(metrics["mrr"], 4), "seconds": round(seconds, 1),
                     "published": PUBLISHED.get(artifact.name, "–")})
        print(rows[-1], flush=True)

    for artifact in artifacts:
        kind = artifact_task(artifact)
        for label, protocol, metrics, seconds in name_baseline_rows(artifact):
            record(artifact, label, protocol, metrics, seconds)
        if loaded is None:
            continue
        setting = "trained in checkpoint" if artifact.name in trained_on else "zero-shot"
        # (label, routing, candidates, assignment); linking ranks the whole KB only, and a one-to-one
        # assignment does not fit it (many mentions link to one entity).
        runs = [(setting, True, "all", False, 0)]
        if kind == "alignment":
            runs.append((setting, True, "test", False, 0))
        runs.append((setting + ", routing off", False, "all", False, 0))
        if kind == "alignment":
            runs.append((setting + ", with assignment", True, "test", True, 0))
            # One round of pseudo-seeds, with what held-out train links say of it (--bootstrap auto's choice).
            hits = validate_bootstrap(loaded, artifact, device)
            verdict = "auto takes it" if best_bootstrap_rounds(hits) == 1 else "auto skips it"
            label = f"{setting}, bootstrap 1 (held-out train links H@1 {hits[1]:.3f}, {hits[0]:.3f} without: {verdict})"
            runs += [(label, True, "all", False, 1), (label, True, "test", False, 1),
                     (label + ", with assignment", True, "test", True, 1)]
        run_rows(loaded, artifact, runs, record)
        if kind == "alignment":
            # The alignment weights fitted on this task's own seed links (tofu reason --fit-on-seeds).
            fitted = LoadedModel(copy.deepcopy(loaded.model), copy.deepcopy(loaded.manifest))
            start = time.perf_counter()
            fit_evidence(fitted, [artifact], device)
            fit_seconds = time.perf_counter() - start
            hits = validate_bootstrap(fitted, artifact, device)
            verdict = "auto takes it" if best_bootstrap_rounds(hits) == 1 else "auto skips it"
            label = f"{setting}, weights fitted on its seed links ({fit_seconds:.0f} s)"
            booted = f"{label}, bootstrap 1 (held-out train links H@1 {hits[1]:.3f}, {hits[0]:.3f} without: {verdict})"
            run_rows(fitted, artifact, [(label, True, "all", False, 0), (label, True, "test", False, 0),
                                        (label + ", with assignment", True, "test", True, 0),
                                        (booted, True, "all", False, 1), (booted, True, "test", False, 1),
                                        (booted + ", with assignment", True, "test", True, 1)], record)
        if args.finetune_steps and artifact.name not in trained_on:
            tuned = load_model(checkpoint, device)
            job = matching_job(artifact, tuned.model, device)
            start = time.perf_counter()
            train(tuned.model, [], TrainConfig(max_steps=args.finetune_steps, eval_every=args.finetune_steps),
                  args.work / "finetuned" / artifact.name, device, jobs=[job])
            _, metrics = evaluate_task(tuned, artifact, "test", device)
            record(artifact, f"fine-tuned ({args.finetune_steps} steps on its train split)", ALL_TARGETS[kind],
                   metrics, time.perf_counter() - start)
    write_tables(rows, args.work, "none (--baseline-only)" if loaded is None else checkpoint,
                 time.perf_counter() - started, tokenize_seconds)


def run_rows(loaded, artifact, runs, record) -> None:
    """Rank the artifact's test split once per ``(label, routing, candidates, assignment, bootstrap)`` run
    and record each; the evidence of each bootstrap count is built once, by its first row (``runs``
    grouped by bootstrap count)."""
    from reasoning_stage.reasoning import artifact_task, evaluate_task, matching_problem

    kind = artifact_task(artifact)
    device = next(loaded.model.parameters()).device
    problems = {}
    for label, routing, candidates, assignment, bootstrap in runs:
        start = time.perf_counter()
        if bootstrap not in problems:
            problems.clear()   # runs come grouped by bootstrap count: one evidence in memory at a time
            problems[bootstrap] = matching_problem(loaded, artifact, "test", device, bootstrap=bootstrap)
        _, metrics = evaluate_task(loaded, artifact, "test", device, routing=routing, candidates=candidates,
                                   assignment=assignment, problem=problems[bootstrap])
        record(artifact, label, ALL_TARGETS[kind] if candidates == "all" else TEST_TARGETS, metrics,
               time.perf_counter() - start)


def name_baseline_rows(artifact) -> list[tuple[str, str, dict[str, float], float]]:
    """``(setting, protocol, metrics, seconds)`` of the TF-IDF name baseline on the artifact's test split:
    linking against every KB entity; alignment against every graph-2 entity, against the test
    counterparts, and against the test counterparts with a global assignment."""
    import numpy as np

    from benchmarks.name_baseline import matching_names, tfidf_assignment, tfidf_ranks
    from reasoning_stage.reasoning import artifact_task, task_pairs

    pairs = task_pairs(artifact, "test")
    kind = artifact_task(artifact)
    sources, targets = matching_names(artifact)
    out = []
    protocols = [(ALL_TARGETS[kind], None)]
    if kind == "alignment":
        protocols.append((TEST_TARGETS, np.unique(pairs[:, 1])))
    for protocol, candidates in protocols:
        start = time.perf_counter()
        metrics = tfidf_ranks(sources, targets, pairs, candidates).metrics()
        out.append((BASELINE, protocol, metrics, time.perf_counter() - start))
    if kind == "alignment":
        start = time.perf_counter()
        ranks, hungarian = tfidf_assignment(sources, targets, pairs)
        out.append((f"{BASELINE}, with assignment (Sinkhorn; Hungarian H@1 {hungarian:.3f})", TEST_TARGETS,
                    ranks.metrics(), time.perf_counter() - start))
    return out


def write_tables(rows, work: Path, checkpoint: Path, total_seconds: float, tokenize_seconds: float) -> None:
    from artifacts.atomic import atomic_write_bytes, atomic_write_csv

    atomic_write_csv(work / "multitask.csv", rows)
    header = ("| task | dataset | setting | candidates | queries | Hits@1 | Hits@10 | MRR | seconds "
              "| published peers (H@1) |\n"
              "|---|---|---|---|---|---|---|---|---|---|\n")
    body = "".join(f"| {r['task']} | {r['dataset']} | {r['setting']} | {r['protocol']} | {r['queries']:,} | "
                   f"{r['hits@1']:.3f} | {r['hits@10']:.3f} | {r['mrr']:.3f} | {r['seconds']:.1f} | "
                   f"{r['published']} |\n" for r in rows)
    footer = ("\nRanks count ties against the answer. Linking peers rank larger KBs (not directly comparable); "
              "DBP15K peers rank the test counterparts.\n"
              f"\nCheckpoint `{checkpoint}`; {platform.processor() or platform.machine()}, "
              f"{os.cpu_count()} CPUs; tokenizing {tokenize_seconds:.0f} s, total {total_seconds:.0f} s.\n")
    atomic_write_bytes(work / "multitask.md", (header + body + footer).encode("utf-8"))
    print(header + body + footer)


if __name__ == "__main__":
    main()
