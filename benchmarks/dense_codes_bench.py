"""How much of a name survives the dense codes: name-to-mention cosine Hits@1 on WikiMEL, raw pooled
vectors against vectors decoded from product codes of M bytes.

The product quantizers are fitted as ``tofu`` fits them (names and whole texts of the recipe's
training graphs, never WikiMEL); each WikiMEL test mention's pooled vector ranks every KB entity's name
vector by cosine (ties against the answer). Prints one row per M and writes ``dense_codes.md``.

    python benchmarks/dense_codes_bench.py [--data PATH] [--work DIR] [--subquantizers 48,96,192]
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def hits_at_1(queries, candidates, gold) -> float:
    import numpy as np

    hits = 0
    for start in range(0, len(queries), 1024):
        scores = queries[start:start + 1024] @ candidates.T
        answer = scores[np.arange(len(scores)), gold[start:start + 1024]]
        hits += int(((scores >= answer[:, None]).sum(1) == 1).sum())
    return hits / len(queries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("TOFU_DATA", REPO.parent / "shared" / "data")))
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "dense_codes")
    parser.add_argument("--recipe", type=Path, default=REPO / "recipes" / "pretrain.toml")
    parser.add_argument("--subquantizers", default="48,96,192")
    parser.add_argument("--fit-vectors", type=Path, default=None,
                        help="a .npy of fit vectors saved by an earlier run (skips encoding the recipe's graphs)")
    args = parser.parse_args()

    import numpy as np
    from tqdm import tqdm

    from artifacts.codebooks import DENSE_TEXT
    from pipeline.pretrain import read_recipe, tokenizer_config, write_graph_folders
    from tokenizer_stage.kg_reader import read_kg
    from tokenizer_stage.quantize import product_codes
    from tokenizer_stage.tasks import read_task
    from tokenizer_stage.text_identity import pooled_vectors
    from tokenizer_stage.tokenize import dense_codebook, dense_fit_vectors, text_fields

    recipe = read_recipe(args.recipe)
    config = tokenizer_config(recipe)
    graphs = [read_kg(d) for d in write_graph_folders(recipe, args.data, args.work)]
    started = time.perf_counter()
    if args.fit_vectors:
        fit_vectors, used = np.load(args.fit_vectors), [g.name for g in graphs]
    else:
        fit_vectors, used = dense_fit_vectors(graphs, config, tqdm)
        np.save(args.work / "fit_vectors.npy", fit_vectors)
    print(f"fit sample: {len(fit_vectors)} vectors from {len(used)} graphs ({time.perf_counter() - started:.0f} s)")

    task = read_task(args.data / "linking" / "WikiMEL")
    names, _ = text_fields(task.kb.entities, task.kb.entity_text)
    index = {label: i for i, label in enumerate(task.kb.entities)}
    mentions = [m for m in task.mentions["test"] if m.entity is not None and index[m.entity] in names]
    owners = sorted(names)
    row_of = {o: r for r, o in enumerate(owners)}
    timer = [0.0]
    kb = pooled_vectors(names, config.text_encoder, tqdm, "WikiMEL KB names", timer)
    asked = pooled_vectors({i: m.text for i, m in enumerate(mentions)}, config.text_encoder, tqdm, "mentions", timer)
    kb_raw = np.stack([kb[o] for o in owners])
    mention_raw = np.stack([asked[i] for i in range(len(mentions))])
    gold = np.array([row_of[index[m.entity]] for m in mentions])
    raw = hits_at_1(mention_raw, kb_raw, gold)
    lines = ["| bytes per vector (M) | Hits@1 raw | Hits@1 decoded | difference |", "|---|---|---|---|"]
    for m in (int(x) for x in args.subquantizers.split(",")):
        book = dense_codebook(fit_vectors, used, dataclasses.replace(config, dense_subquantizers=m))
        decode = lambda v: book.decode(product_codes(v, book.centroids, m))   # noqa: E731
        decoded = hits_at_1(decode(mention_raw), decode(kb_raw), gold)
        lines.append(f"| {m} | {raw:.4f} | {decoded:.4f} | {decoded - raw:+.4f} |")
        print(lines[-1], flush=True)
    text = (f"WikiMEL test mentions with a named gold entity: {len(mentions):,}; KB names: {len(owners):,}; "
            f"{DENSE_TEXT} fitted on {len(fit_vectors):,} vectors of {', '.join(used)}.\n\n" + "\n".join(lines) + "\n")
    args.work.mkdir(parents=True, exist_ok=True)
    (args.work / "dense_codes.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
