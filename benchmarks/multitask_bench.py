"""Alignment and linking table of a checkpoint (default: the shipped one).

Tokenizes the four tasks from ../shared/data with --codebooks (default: the shipped set, which the
shipped checkpoint reads; pass the matching set with any other --checkpoint)
and writes ``multitask.csv`` and ``multitask.md`` into --work:

- alignment: DBP15K zh_en (translated names; 30% of the gold pairs train,
  70% test) and DB15K <-> MKG-W (the 2,246 ent_links pairs with both
  entities present; 30% / 70%); each test entity of graph 1 ranks every
  entity of graph 2;
- linking: WikiMEL and Richpedia-MEL test mentions rank every KB entity.

Rows: the checkpoint as it is ("zero-shot" when the checkpoint never trained
on that dataset, per its manifest; else "trained in checkpoint"), the same
with routing off (the link-prediction route for every task), and, with
--finetune-steps, a row after fine-tuning a copy on the dataset's own train
split ("fine-tuned").

    python benchmarks/multitask_bench.py [--data PATH] [--work DIR] [--checkpoint CKPT]
        [--tasks DBP15K-zh_en,DB15K-MKG-W,WikiMEL,RichpediaMEL] [--finetune-steps 200]
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

# Published figures beside ours (../shared/REFERENCE.md): MIMIC, Hits@1 in %. REFERENCE.md names MCLEA and
# MEAformer as the alignment peers but gives no figures for DBP15K zh_en or DB15K <-> MKG-W.
PUBLISHED = {"WikiMEL": "MIMIC H@1 87.98", "RichpediaMEL": "MIMIC H@1 81.02",
             "zh_en": "MCLEA, MEAformer (no figure in REFERENCE.md)", "DB15K-MKG-W": "–"}


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
    args = parser.parse_args()

    import torch

    from artifacts.shipped import shipped_checkpoint, shipped_codebooks
    from pipeline.orchestrate import tokenize_many
    from reasoning_stage.allocator import retain_freed_memory
    from reasoning_stage.reasoning import artifact_task, evaluate_task, load_model, read_artifacts
    from reasoning_stage.training import TrainConfig, matching_job, train
    from tokenizer_stage.tokenize import TokenizerConfig

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
    loaded = load_model(checkpoint, device)
    trained_on = {t["name"] for t in loaded.manifest.get("training", {}).get("tasks", [])}
    rows = []

    def record(artifact, label, metrics, seconds):
        rows.append({"task": artifact_task(artifact), "dataset": artifact.name, "setting": label,
                     "queries": int(metrics["queries"]), "hits@1": round(metrics["hits@1"], 4),
                     "hits@10": round(metrics["hits@10"], 4), "mrr": round(metrics["mrr"], 4),
                     "seconds": round(seconds, 1), "published": PUBLISHED.get(artifact.name, "–")})
        print(rows[-1], flush=True)

    for artifact in artifacts:
        setting = "trained in checkpoint" if artifact.name in trained_on else "zero-shot"
        for routing in (True, False):
            start = time.perf_counter()
            _, metrics = evaluate_task(loaded, artifact, "test", device, routing=routing)
            record(artifact, setting + ("" if routing else ", routing off"), metrics, time.perf_counter() - start)
        if args.finetune_steps and artifact.name not in trained_on:
            tuned = load_model(checkpoint, device)
            job = matching_job(artifact, tuned.model, device)
            start = time.perf_counter()
            train(tuned.model, [], TrainConfig(max_steps=args.finetune_steps, eval_every=args.finetune_steps),
                  args.work / "finetuned" / artifact.name, device, jobs=[job])
            _, metrics = evaluate_task(tuned, artifact, "test", device)
            record(artifact, f"fine-tuned ({args.finetune_steps} steps on its train split)", metrics,
                   time.perf_counter() - start)
    write_tables(rows, args.work, checkpoint, time.perf_counter() - started, tokenize_seconds)


def write_tables(rows, work: Path, checkpoint: Path, total_seconds: float, tokenize_seconds: float) -> None:
    from artifacts.atomic import atomic_write_bytes, atomic_write_csv

    atomic_write_csv(work / "multitask.csv", rows)
    header = "| task | dataset | setting | queries | Hits@1 | Hits@10 | MRR | published peers |\n|---|---|---|---|---|---|---|---|\n"
    body = "".join(f"| {r['task']} | {r['dataset']} | {r['setting']} | {r['queries']:,} | {r['hits@1']:.3f} | "
                   f"{r['hits@10']:.3f} | {r['mrr']:.3f} | {r['published']} |\n" for r in rows)
    footer = (f"\nCheckpoint `{checkpoint}`; {platform.processor() or platform.machine()}, "
              f"{os.cpu_count()} CPUs; tokenizing {tokenize_seconds:.0f} s, total {total_seconds:.0f} s.\n")
    atomic_write_bytes(work / "multitask.md", (header + body + footer).encode("utf-8"))
    print(header + body + footer)


if __name__ == "__main__":
    main()
