"""Zero-shot table of a checkpoint (default: the shipped one) on GraIL, InGram and the MMKG graphs.

Tokenizes each test graph with the checkpoint's codebooks (entity texts and
images where ../shared/data has them), evaluates it without any training on
it, and writes ``zero_shot.csv`` and ``zero_shot.md`` into --work:

- the 12 GraIL ``_ind`` graphs: the ``_ind`` folder alone is the graph; its
  valid and test files together are the test queries, ranked over its
  train.txt graph (ULTRA's protocol);
- the 9 InGram graphs: test queries ranked over msg.txt;
- on every graph, first a no-training baseline on the same queries: each
  candidate scored by how often it answers the query's relation in the
  inference graph (ties broken by its degree);
- DB15K, MKG-W, MKG-Y: test queries over the train graph, the checkpoint
  zero-shot, and after fine-tuning on the train split, for --finetune-steps
  or for --finetune-minutes (a seeded sample of test triples when
  --mmkg-triples is set: these graphs are slow to rank on 2 CPU cores). --carve N moves N train triples to the validation split, on which the
  zero-shot and the fine-tuned model are compared (the label says which wins);
  --embedding-minutes M then fits a graph-own ComplEx embedding (``tofu reason
  --embedding-minutes``) and ranks with it alone (a trained baseline) and added
  to the chosen model (to the zero-shot one with --finetune-steps 0 and no --finetune-minutes);
- with --ablation: the same checkpoint with token modalities hidden at
  inference (structure only / + text / + image / all).

Each MRR comes with a 95% bootstrap interval over the graph's distinct queries
(``Ranks.mrr_interval``): on a small graph such as nell_v1_ind, where 42 of
the 402 queries are one repeated head query, it shows how far the figure could
move on another draw of test triples.

    python benchmarks/zero_shot_bench.py [--data PATH] [--work DIR] [--checkpoint CKPT]
        [--groups grail,ingram,mmkg] [--mmkg-triples 500] [--finetune-steps 50] [--ablation]
    python benchmarks/zero_shot_bench.py --groups mmkg --carve 500 --finetune-minutes 15 --mmkg-triples 0
    python benchmarks/zero_shot_bench.py --groups mmkg --carve 500 --finetune-minutes 10 --embedding-minutes 5 \
        --mmkg-triples 0
    python benchmarks/zero_shot_bench.py --groups mmkg --carve 500 --finetune-steps 0 --embedding-minutes 15 \
        --mmkg-triples 0
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
sys.path.insert(0, str(REPO / "benchmarks"))


GRAIL = [f"{family}_v{v}" for family in ("fb237", "WN18RR", "nell") for v in (1, 2, 3, 4)]
INGRAM = ["NL-0", "NL-25", "NL-50", "NL-75", "NL-100", "WK-25", "WK-50", "WK-75", "WK-100"]
MMKG = ["DB15K", "MKG-W", "MKG-Y"]
GROUP_GRAPHS = {"grail": GRAIL, "ingram": INGRAM, "mmkg": MMKG}

# ULTRA's code + ultra_3g checkpoint measured on this machine kind (../shared/REFERENCE.md): MRR, Hits@10.
ULTRA_HERE = {
    "fb237_v1_ind": (0.486, 0.657), "fb237_v2_ind": (0.501, 0.695), "fb237_v3_ind": (0.482, 0.644),
    "fb237_v4_ind": (0.477, 0.671), "WN18RR_v1_ind": (0.593, 0.779), "WN18RR_v2_ind": (0.620, 0.752),
    "WN18RR_v3_ind": (0.371, 0.494), "WN18RR_v4_ind": (0.484, 0.687), "nell_v1_ind": (0.726, 0.863),
    "nell_v2_ind": (0.525, 0.719), "nell_v3_ind": (0.511, 0.687), "nell_v4_ind": (0.490, 0.701),
    "NL-25": (0.387, 0.538), "WK-50": (0.158, 0.296),
}
# Published, transductive (trained on the graph), MRR: from ../shared/REFERENCE.md (marked unverified there).
PUBLISHED_MMKG = {"DB15K": {"MyGO": 0.3772, "TOFU paper": 0.3901},
                  "MKG-W": {"MyGO": 0.3610, "TOFU paper": 0.404},
                  "MKG-Y": {"MyGO": 0.3844, "TOFU paper": 0.4372}}
ABLATIONS = {"structure only": ("text", "image"), "+ text": ("image",), "+ image": ("text",), "all": ()}


def zero_shot_label(group: str, name: str) -> str:
    """The artifact name of a test graph: a GraIL graph's ``_ind`` folder is the graph."""
    return f"{name}_ind" if group == "grail" else name


def zero_shot_splits(group: str) -> list[str]:
    """The query splits ranked on a test graph: a GraIL ``_ind`` graph's valid and test files together
    (ULTRA's protocol), the test split elsewhere."""
    return ["valid", "test"] if group == "grail" else ["test"]


def graph_folder(work: Path, data: Path, group: str, name: str, carve: int = 0) -> tuple[Path, list[str]]:
    """Write a kg.toml for one test graph; return (folder, splits to evaluate). ``carve`` > 0: an MMKG
    graph's validation split is that many train triples (:func:`carved_openke`)."""
    from tokenize_bench import grail_files

    from tokenizer_stage.kg_reader import write_kg_toml

    label = zero_shot_label(group, name)
    if group == "grail":
        files = grail_files(data, label)
    elif group == "mmkg" and carve:
        files = {"source": carved_openke(data / group / name, work / "carved" / name, carve)}
    else:
        files = {"source": data / group / name}
    folder = write_kg_toml(work / "graphs" / label, label, files)
    return folder, zero_shot_splits(group)


def carved_openke(source: Path, target: Path, count: int, seed: int = 0) -> Path:
    """An OpenKE folder in ``target``: ``source``'s graph with ``count`` seeded train triples moved to
    its valid split (the source's own valid split is dropped: DB15K's repeats train triples), test
    unchanged. A carved triple whose head or tail would lose its last train triple stays in train."""
    import numpy as np

    def triples(path: Path) -> np.ndarray:
        rows = path.read_text(encoding="utf-8").split("\n")[1:]
        return np.array([[int(x) for x in row.split()] for row in rows if row.strip()], dtype=np.int64)

    def write(path: Path, rows: np.ndarray) -> None:
        path.write_text(f"{len(rows)}\n" + "".join(f"{h} {t} {r}\n" for h, t, r in rows), encoding="utf-8")

    train = triples(source / "train2id.txt")
    degree = np.bincount(train[:, :2].ravel(), minlength=int(train[:, :2].max()) + 1)
    carved = []
    for index in np.random.default_rng(seed).permutation(len(train)):
        if len(carved) == count:
            break
        h, t = train[index, 0], train[index, 1]
        if degree[h] > 1 and degree[t] > 1 and h != t:
            degree[h] -= 1
            degree[t] -= 1
            carved.append(index)
    keep = np.ones(len(train), dtype=bool)
    keep[carved] = False
    target.mkdir(parents=True, exist_ok=True)
    for name in ("entity2id.txt", "relation2id.txt", "test2id.txt"):
        (target / name).write_bytes((source / name).read_bytes())
    write(target / "train2id.txt", train[keep])
    write(target / "valid2id.txt", train[np.sort(carved)])
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("TOFU_DATA", REPO.parent / "shared" / "data")))
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "zero_shot")
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: the shipped checkpoint")
    parser.add_argument("--codebooks", type=Path, default=None, help="default: the shipped codebooks")
    parser.add_argument("--groups", default="grail,ingram,mmkg")
    parser.add_argument("--graphs", default=None, help="only these graphs (names as in the table, e.g. NL-25)")
    parser.add_argument("--mmkg-triples", type=int, default=500, help="sampled test triples per MMKG graph (0: all)")
    parser.add_argument("--finetune-steps", type=int, default=50, help="MMKG fine-tune steps (0: skip)")
    parser.add_argument("--finetune-minutes", type=float, default=0.0,
                        help="MMKG fine-tune by time instead: this budget per graph (cosine rate), as many steps as fit")
    parser.add_argument("--carve", type=int, default=0,
                        help="MMKG: move this many train triples to the valid split and choose between the zero-shot "
                             "and the fine-tuned model on them (DB15K's own valid split repeats train)")
    parser.add_argument("--embedding-minutes", type=float, default=0.0,
                        help="MMKG: also fit a graph-own ComplEx embedding for this many minutes after the "
                             "fine-tune, if any (count it in the budget: --finetune-minutes 10 --embedding-minutes 5 "
                             "is 15 minutes), "
                             "rank with it alone and added to the chosen model (weight chosen on the valid split)")
    parser.add_argument("--embedding-n3", type=float, default=None,
                        help="MMKG: the embedding's N3 weight (default: GraphEmbeddingConfig's)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="queries per evaluation batch (default: by graph size, as `tofu reason`)")
    parser.add_argument("--tokenize-only", action="store_true", help="stop after tokenizing (e.g. before training ends)")
    parser.add_argument("--ablation", action="store_true", help="also evaluate with token modalities hidden")
    parser.add_argument("--ablation-graphs", default="fb237_v1_ind,WN18RR_v1_ind,WN18RR_v2_ind,nell_v1_ind")
    args = parser.parse_args()
    if not args.data.is_dir():
        sys.exit(f"no benchmark data at {args.data}; pass --data or set TOFU_DATA")

    import torch

    from artifacts.shipped import shipped_checkpoint, shipped_codebooks
    from artifacts.token_tables import read_token_tables
    from pipeline.orchestrate import tokenize_many
    from reasoning_stage.allocator import retain_freed_memory
    from reasoning_stage.evaluation import evaluate_graph, frequency_baseline
    from reasoning_stage.graph_embedding import embedding_ranks
    from reasoning_stage.reasoning import load_model, with_graph_embedding
    from reasoning_stage.training import fine_tune_config, train
    from tokenizer_stage.config import TokenizerConfig

    retain_freed_memory()
    torch.set_num_threads(os.cpu_count() or 1)
    checkpoint = args.checkpoint or shipped_checkpoint()
    codebooks = args.codebooks or shipped_codebooks()
    if codebooks is None or (checkpoint is None and not args.tokenize_only):
        sys.exit("no shipped model in this installation: pass --checkpoint and --codebooks")
    device = torch.device("cpu")
    groups = [g for g in args.groups.split(",") if g]
    if not groups or set(groups) - set(GROUP_GRAPHS):
        parser.error(f"--groups: choose from {', '.join(GROUP_GRAPHS)}, got {args.groups!r}")
    wanted = set(args.graphs.split(",")) if args.graphs else None
    known = {zero_shot_label(group, name) for group in groups for name in GROUP_GRAPHS[group]}
    if wanted is not None and wanted - known:
        parser.error(f"--graphs: no graph {', '.join(sorted(wanted - known))} in --groups {args.groups}; "
                     f"names as in the table: {', '.join(sorted(known))}")
    jobs = []
    for group in groups:
        for name in GROUP_GRAPHS[group]:
            folder, splits = graph_folder(args.work, args.data, group, name, args.carve)
            if wanted is None or folder.name in wanted:
                jobs.append((group, folder, splits))

    started = time.perf_counter()
    results, _ = tokenize_many([f for _, f, _ in jobs], args.work / "artifacts", TokenizerConfig(),
                               codebooks=codebooks, workers=1, progress=False)
    failed = [r for r in results if hasattr(r, "error")]
    if failed:
        sys.exit("tokenizing failed: " + "; ".join(f"{r.name}: {r.error}" for r in failed))
    tokenize_seconds = time.perf_counter() - started
    print(f"tokenized {len(jobs)} graphs in {tokenize_seconds:.0f}s", flush=True)
    if args.tokenize_only:
        return

    loaded = load_model(checkpoint, device)
    rows = []

    def record(group, graph, setting, ranks, seconds, triples_note=""):
        m = ranks.metrics()
        ultra = ULTRA_HERE.get(graph)
        low, high = ranks.mrr_interval()
        row = {"group": group, "graph": graph, "setting": setting, "queries": int(m["queries"]),
               "mrr": round(m["mrr"], 4), "mrr_low": round(low, 4), "mrr_high": round(high, 4),
               "hits@1": round(m["hits@1"], 4), "hits@10": round(m["hits@10"], 4),
               "ultra_here_mrr": ultra[0] if ultra else "", "seconds": round(seconds, 1), "note": triples_note}
        rows.append(row)
        print(f"{group:7s} {graph:15s} {setting:22s} q={row['queries']:6d} MRR {row['mrr']:.3f} "
              f"H@1 {row['hits@1']:.3f} H@10 {row['hits@10']:.3f}  ULTRA here {row['ultra_here_mrr']}  "
              f"{seconds:.0f}s", flush=True)

    for group, folder, splits in jobs:
        tables = read_token_tables(args.work / "artifacts" / folder.name)
        sample = args.mmkg_triples if group == "mmkg" and args.mmkg_triples else None
        note = f"{sample} sampled test triples" if sample else ""
        start = time.perf_counter()
        record(group, folder.name, "relation frequency, no training",
               frequency_baseline(tables, splits, max_triples=sample), time.perf_counter() - start, note)
        start = time.perf_counter()
        ranks = evaluate_graph(loaded.model, tables, splits, device, batch_size=args.batch_size, max_triples=sample)
        record(group, folder.name, "zero-shot", ranks, time.perf_counter() - start, note)
        if args.ablation and folder.name in args.ablation_graphs.split(","):
            for setting, hidden in ABLATIONS.items():
                if not hidden:
                    continue
                start = time.perf_counter()
                ranks = evaluate_graph(loaded.model, tables, splits, device, batch_size=args.batch_size,
                                       drop_modalities=hidden)
                record("ablation", folder.name, setting, ranks, time.perf_counter() - start)
        base = loaded   # the reasoner the embedding joins: the fine-tuned one where the carved split prefers it
        if group == "mmkg" and (args.finetune_minutes or args.finetune_steps):
            if args.finetune_minutes:   # a time budget: as many steps as fit, the cosine rate over the budget
                budget = dict(max_steps=10**9, max_seconds=60.0 * args.finetune_minutes, lr_schedule="cosine",
                              eval_every=10**9)
            else:
                budget = dict(max_steps=args.finetune_steps, eval_every=args.finetune_steps)
            tuned = load_model(checkpoint, device)
            start = time.perf_counter()
            history = train(tuned.model, [tables], fine_tune_config(tuned.manifest, eval_triples=20, **budget),
                            args.work / "finetuned" / folder.name, device)
            setting = (f"fine-tuned {args.finetune_minutes:g} min ({history[-1]['step']} steps)"
                       if args.finetune_minutes else f"fine-tuned {args.finetune_steps} steps")
            if args.carve:   # the choice reads the carved train triples only, never test
                valid = {name: evaluate_graph(model, tables, ["valid"], device, batch_size=args.batch_size).metrics()["mrr"]
                         for name, model in (("zero-shot", loaded.model), ("fine-tuned", tuned.model))}
                chosen = max(valid, key=valid.get)
                setting += (f"; carved valid MRR {valid['zero-shot']:.3f} zero-shot, {valid['fine-tuned']:.3f} "
                            f"fine-tuned: {chosen} chosen")
            ranks = evaluate_graph(tuned.model, tables, splits, device, batch_size=args.batch_size, max_triples=sample)
            record(group, folder.name, setting, ranks, time.perf_counter() - start, note)
            base = loaded if args.carve and chosen == "zero-shot" else tuned
        if group == "mmkg" and args.embedding_minutes:
            start = time.perf_counter()
            settings = embedding_settings(args)
            combined, embedding, fit = with_graph_embedding(base, tables, device, settings, held_out=splits)
            fitted = f"ComplEx {settings.minutes:g} min ({fit['run']['epochs']} epochs, N3 {settings.n3_weight:g})"
            record(group, folder.name, f"{fitted} alone",
                   embedding_ranks(embedding, tables, splits, max_triples=sample),
                   time.perf_counter() - start, note)
            chosen_on = (f"weight {fit['weight']:g} chosen on {fit['chosen_on']} ("
                         + ", ".join(f"{w}: {m:.3f}" for w, m in fit.get("validation_mrr", {}).items()) + ")"
                         if fit["chosen_on"] else f"weight {fit['weight']:g}, no valid split")
            start = time.perf_counter()
            ranks = evaluate_graph(combined.model, tables, splits, device, batch_size=args.batch_size,
                                   max_triples=sample)
            record(group, folder.name, f"{'zero-shot' if base is loaded else 'fine-tuned'} + {fitted}; "
                   f"{chosen_on}", ranks, time.perf_counter() - start, note)

    write_tables(rows, args, checkpoint, time.perf_counter() - started, tokenize_seconds)


def embedding_settings(args) -> "GraphEmbeddingConfig":
    """The graph embedding's settings: its time budget, and its N3 weight where one is given."""
    from reasoning_stage.graph_embedding import GraphEmbeddingConfig

    given = {} if args.embedding_n3 is None else {"n3_weight": args.embedding_n3}
    return GraphEmbeddingConfig(minutes=args.embedding_minutes, **given)


def write_tables(rows, args, checkpoint, total_seconds, tokenize_seconds) -> None:
    from artifacts.atomic import atomic_write_bytes, atomic_write_csv

    atomic_write_csv(args.work / "zero_shot.csv", rows)
    md = ["| group | graph | setting | queries | MRR | MRR 95% | Hits@1 | Hits@10 | ULTRA 3g here (MRR) "
          "| published (MRR) | s |",
          "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        published = ", ".join(f"{k} {v:.3f}" for k, v in PUBLISHED_MMKG.get(r["graph"], {}).items())
        md.append(f"| {r['group']} | {r['graph']} | {r['setting']}{' (' + r['note'] + ')' if r['note'] else ''} "
                  f"| {r['queries']} | {r['mrr']:.3f} | {r['mrr_low']:.3f}–{r['mrr_high']:.3f} "
                  f"| {r['hits@1']:.3f} | {r['hits@10']:.3f} "
                  f"| {r['ultra_here_mrr']} | {published} | {r['seconds']} |")
    md.append("")
    for group in ("grail", "ingram", "mmkg"):
        for setting in sorted({r["setting"] for r in rows if r["group"] == group}):
            picked = [r for r in rows if r["group"] == group and r["setting"] == setting]
            if picked:
                mean = sum(r["mrr"] for r in picked) / len(picked)
                ultra = [r["ultra_here_mrr"] for r in picked if r["ultra_here_mrr"] != ""]
                ultra_note = (f"; ULTRA 3g here on the same {len(ultra)}: {sum(ultra) / len(ultra):.3f}"
                              if len(ultra) == len(picked) else "")
                md.append(f"- {group} {setting}: average MRR {mean:.3f} over {len(picked)} graphs{ultra_note}")
    md.append(f"\nCheckpoint {checkpoint}; {os.cpu_count()} CPU(s), {platform.processor() or platform.machine()}, "
              f"no GPU; tokenizing {tokenize_seconds:.0f}s, whole run {total_seconds / 60:.1f} min.")
    atomic_write_bytes(args.work / "zero_shot.md", ("\n".join(md) + "\n").encode())
    print("\n".join(md))
    print(f"\nwritten: {args.work / 'zero_shot.csv'}, {args.work / 'zero_shot.md'}")


if __name__ == "__main__":
    main()
