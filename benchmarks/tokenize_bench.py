"""Benchmark of stage one on real data (prints figures; not a test).

Tokenizes GraIL graphs from the shared benchmark data with their real entity
texts (fb237: FB15k-237 names; WN18RR: lemma + gloss) and, for WN18RR, the
ImageNet images of its entities. Codebooks are fitted first (timed apart),
then each graph is tokenized with the frozen codebooks in one process, and
the script prints per graph: entities/s, encoder-forward seconds vs total
seconds, and the process's peak RSS so far (to show it does not grow with
the number of graphs).

    python benchmarks/tokenize_bench.py [--data PATH] [--graphs fb237_v1,WN18RR_v1 ...]
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEFAULT_GRAPHS = ["fb237_v1", "fb237_v2", "fb237_v3", "fb237_v4",
                  "WN18RR_v1", "WN18RR_v2", "WN18RR_v3", "WN18RR_v4"]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def grail_files(data: Path, graph: str) -> dict[str, Path]:
    """kg.toml files of a GraIL folder: its triples, entity texts (FB15k-237, WN18RR), WN18RR images."""
    family = {"fb237": "FB15k-237", "WN18RR": "WN18RR"}.get(graph.split("_")[0])
    files = {"source": data / "grail" / graph}
    if family:
        files["entity_text"] = data / "text" / family / "entity2text.txt"
        files["relation_text"] = data / "text" / family / "relation2text.txt"
    if family == "WN18RR":
        files["images"] = data / "images" / "imagenet_wn18rr" / "mapping.tsv"
    return files


def write_kg_toml(folder: Path, data: Path, graph: str) -> Path:
    """A kg.toml that points a GraIL graph at its entity texts and images, copying nothing."""
    from tokenizer_stage.kg_reader import write_kg_toml as write

    return write(folder, graph, grail_files(data, graph))


def _fit(dirs, config, folder) -> None:
    from tokenizer_stage.tokenize import fit_codebooks

    fit_codebooks(dirs, config).save(folder)


def _child_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("TOFU_DATA", REPO.parent / "shared" / "data")))
    parser.add_argument("--graphs", default=",".join(DEFAULT_GRAPHS))
    parser.add_argument("--out", type=Path, default=None, help="artifact root (default: a temp folder)")
    args = parser.parse_args()
    if not (args.data / "grail").is_dir():
        sys.exit(f"no GraIL data under {args.data}; pass --data or set TOFU_DATA")

    import torch

    from artifacts.codebooks import CodebookSet
    from tokenizer_stage.config import TokenizerConfig
    from tokenizer_stage.tokenize import tokenize_graph

    torch.set_num_threads(os.cpu_count() or 1)
    config = TokenizerConfig()
    graphs = args.graphs.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        out = args.out or tmp / "out"
        dirs = [write_kg_toml(tmp / "graphs" / g, args.data, g) for g in graphs]
        start = time.perf_counter()
        # Fitting runs in a child process so the peak RSS printed below is the tokenize phase's own.
        ctx = multiprocessing.get_context("spawn")
        child = ctx.Process(target=_fit, args=(dirs, config, out / "codebooks"))
        child.start()
        child.join()
        if child.exitcode != 0:
            sys.exit("fitting the codebooks failed")
        fit_s = time.perf_counter() - start
        print(f"codebooks fitted in {fit_s:.1f}s on {len(dirs)} graphs: "
              + ", ".join(f"{m} {b.size}x{b.dim}" for m, b in sorted(CodebookSet.load(out / 'codebooks').codebooks.items())))
        print(f"peak RSS of the fitting process: {_child_peak_mb():.0f} MB\n")
        header = f"{'graph':<11}{'entities':>9}{'imgs':>6}{'total s':>9}{'forward s':>10}{'total/fwd':>10}{'ent/s':>8}{'peak MB':>9}"
        print(header)
        print("-" * len(header))
        sums = [0, 0.0, 0.0]
        for d in dirs:
            summary = tokenize_graph(d, out, out / "codebooks", config, force=True)
            ratio = summary.seconds / summary.forward_seconds if summary.forward_seconds else float("nan")
            sums[0] += summary.entities
            sums[1] += summary.seconds
            sums[2] += summary.forward_seconds
            print(f"{summary.name:<11}{summary.entities:>9}{summary.images_used:>6}{summary.seconds:>9.2f}"
                  f"{summary.forward_seconds:>10.2f}{ratio:>10.3f}{summary.entities / summary.seconds:>8.0f}"
                  f"{peak_rss_mb():>9.0f}", flush=True)
        print("-" * len(header))
        print(f"{'all':<11}{sums[0]:>9}{'':>6}{sums[1]:>9.2f}{sums[2]:>10.2f}{sums[1] / sums[2]:>10.3f}"
              f"{sums[0] / sums[1]:>8.0f}{peak_rss_mb():>9.0f}")
        print(f"\nmachine: {os.cpu_count()} CPU(s), torch {torch.__version__}, "
              f"device {'cuda' if torch.cuda.is_available() else 'cpu'}")


if __name__ == "__main__":
    main()
