"""PNG charts of evaluation results, drawn with matplotlib (imported only when a chart is drawn)."""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from artifacts.atomic import atomic_write_bytes

WIDTH_INCHES, DPI = 12.0, 100
MAX_RELATIONS = 30      # the most-asked relations, when a graph has more
# Rank bins of the histogram: (label, lowest rank, highest rank or None for no limit).
RANK_BINS = (("1", 1, 1), ("2-3", 2, 3), ("4-10", 4, 10), ("11-100", 11, 100), (">100", 101, None))
DIRECTIONS = (("tail", "tail queries (h, r, ?)", "tab:blue"), ("head", "head queries (?, r, t)", "tab:orange"))
# PNG text key under which a chart records the values it plots.
VALUES_KEY = "tofu.values"


def chart_size(relations: int) -> tuple[int, int]:
    """Pixel (width, height) of an evaluation chart with this many relation rows (at most MAX_RELATIONS)."""
    return int(WIDTH_INCHES * DPI), int(round(_height_inches(min(relations, MAX_RELATIONS)) * DPI))


def _height_inches(relations: int) -> float:
    return max(4.0, 1.4 + 0.45 * relations)


def rank_counts(ranks: Sequence[int]) -> dict[str, int]:
    """How many ranks fall in each of RANK_BINS."""
    return {label: sum(1 for r in ranks if r >= low and (high is None or r <= high)) for label, low, high in RANK_BINS}


def evaluation_chart(path: Path, title: str, per_relation: Mapping[str, Mapping[str, float]],
                     ranks: Mapping[str, Sequence[int]]) -> Path:
    """Two panels written atomically as PNG: filtered MRR per relation, tail and head queries side by
    side (``per_relation``: label -> ``tail_mrr``, ``tail_queries``, ``head_mrr``, ``head_queries``), and
    the distribution of the answers' ranks per direction (``ranks``: "tail" / "head" -> ranks).

    The plotted values are recorded in the PNG's ``tofu.values`` text chunk (JSON).
    """
    import io

    import numpy as np
    from matplotlib.figure import Figure

    shown = sorted(per_relation, key=lambda r: -sum(per_relation[r].get(f"{d}_queries", 0) for d, _, _ in DIRECTIONS))
    shown = sorted(shown[:MAX_RELATIONS], key=lambda r: (-_mean_mrr(per_relation[r]), r))
    counts = {d: rank_counts(ranks.get(d, ())) for d, _, _ in DIRECTIONS}
    figure = Figure(figsize=(WIDTH_INCHES, _height_inches(len(shown))), dpi=DPI, layout="constrained")
    bars, histogram = figure.subplots(1, 2, width_ratios=(3, 2))
    figure.suptitle(title)
    rows = np.arange(len(shown))
    height = 0.38
    for offset, (direction, label, colour) in zip((-height / 2, height / 2), DIRECTIONS):
        values = [per_relation[r].get(f"{direction}_mrr", 0.0) for r in shown]
        asked = [per_relation[r].get(f"{direction}_queries", 0) for r in shown]
        drawn = bars.barh(rows + offset, values, height, label=label, color=colour)
        bars.bar_label(drawn, labels=[f"{v:.3f} (n={n})" if n else "" for v, n in zip(values, asked)],
                       padding=3, fontsize=8)
    bars.set_yticks(rows, [_short(r) for r in shown])
    bars.set_ylim(max(len(shown), 3) - 0.5, -0.5)   # best first, top down; a few relations keep thin bars
    bars.set_xlim(0, 1.25)   # room for the value labels
    bars.set_xticks(np.linspace(0, 1, 6))
    bars.set_xlabel("filtered MRR (pessimistic ties)")
    more = len(per_relation) - len(shown)
    bars.set_title("MRR per relation" + (f" ({len(shown)} most-asked of {len(per_relation)})" if more else ""))
    bars.legend(loc="lower right", fontsize=8)
    bins = np.arange(len(RANK_BINS))
    for offset, (direction, label, colour) in zip((-height / 2, height / 2), DIRECTIONS):
        total = max(1, sum(counts[direction].values()))
        shares = [100.0 * counts[direction][b] / total for b, _, _ in RANK_BINS]
        histogram.bar(bins + offset, shares, height, label=f"{label}: {sum(counts[direction].values())}",
                      color=colour)
    histogram.set_xticks(bins, [b for b, _, _ in RANK_BINS])
    histogram.set_xlabel("rank of the true answer")
    histogram.set_ylabel("% of queries")
    histogram.set_ylim(0, 120)   # room for the legend above the bars
    histogram.set_yticks(np.linspace(0, 100, 6))
    histogram.set_title("where the answers rank")
    histogram.legend(loc="upper center", fontsize=8)
    values = {"per_relation": {r: dict(per_relation[r]) for r in shown}, "rank_counts": counts}
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={VALUES_KEY: json.dumps(values, sort_keys=True)})
    atomic_write_bytes(Path(path), buffer.getvalue())
    return Path(path)


def _mean_mrr(record: Mapping[str, float]) -> float:
    """MRR over both directions of one relation."""
    asked = sum(record.get(f"{d}_queries", 0) for d, _, _ in DIRECTIONS)
    return sum(record.get(f"{d}_mrr", 0.0) * record.get(f"{d}_queries", 0) for d, _, _ in DIRECTIONS) / max(asked, 1)


def _short(label: str, limit: int = 40) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"
