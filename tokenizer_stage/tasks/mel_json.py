"""What the JSON linking layouts (WikiMEL, Richpedia-MEL) share: the KB of ``qid2ne.json`` (+
``qid2abs.json``) and samples of ``sentence``, ``mentions`` and ``answer``. JSON files have no useful line
numbers, so errors read ``FILE: sample KEY: reason``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tokenizer_stage.kg_reader.errors import KGFormatError
from tokenizer_stage.kg_reader.files import ReadContext
from tokenizer_stage.kg_reader.model import Text
from tokenizer_stage.tasks.common import kb_graph, merge_sources, read_json, text_for
from tokenizer_stage.tasks.model import LinkingTask, Mention


def _sample_error(path: Path, key: str, reason: str) -> KGFormatError:
    return KGFormatError(f"sample {key}: {reason}", path)


def read_json_kb(ctx: ReadContext, folder: Path) -> dict[str, Text]:
    """KB = the ids of qid2ne.json, descriptions from qid2abs.json when present."""
    ne_path = folder / "qid2ne.json"
    names = read_json(ctx, ne_path)
    if not isinstance(names, dict):
        raise KGFormatError("expected a JSON object {entity id: name}", ne_path)
    descs: dict[str, Any] = {}
    abs_path = folder / "qid2abs.json"
    if abs_path.is_file():
        descs = read_json(ctx, abs_path)
        if not isinstance(descs, dict):
            raise KGFormatError("expected a JSON object {entity id: description}", abs_path)
    for p, table in ((ne_path, names), (abs_path, descs)):
        for key, value in table.items():
            if not isinstance(value, str):
                raise KGFormatError(f"entry {key}: expected a string, got {type(value).__name__}", p)
    if not names:
        raise KGFormatError("no KB entities", ne_path)
    extra = len(set(descs) - set(names))
    if extra:
        ctx.warn(f"{abs_path}: ignored {extra} description(s) for ids not in qid2ne.json")
    return {q: text_for(q, n, descs.get(q)) for q, n in names.items()}


def _sample_mentions(path: Path, key: str, sample: Any, kb_ids: set[str]) -> tuple[str, list[tuple[int, str, str | None]]]:
    """(sentence, [(index, mention, gold)]) of one sample; mentions/answer may be parallel lists or single strings."""
    if not isinstance(sample, dict):
        raise _sample_error(path, key, "expected an object with 'sentence', 'mentions', 'answer'")
    if "mentions" not in sample:
        raise _sample_error(path, key, "missing 'mentions'")
    sentence = sample.get("sentence") or ""
    if not isinstance(sentence, str):
        raise _sample_error(path, key, "'sentence' must be a string")
    ments, answers = sample["mentions"], sample.get("answer")
    if isinstance(ments, str):
        ments = [ments]
        answers = [answers]
    if not isinstance(ments, list) or not all(isinstance(m, str) for m in ments):
        raise _sample_error(path, key, "'mentions' must be a string or a list of strings")
    if answers is None:
        answers = [None] * len(ments)  # unlabelled sample
    if not isinstance(answers, list) or len(answers) != len(ments):
        raise _sample_error(path, key, f"'answer' must list one entity per mention ({len(ments)} mention(s))")
    out: list[tuple[int, str, str | None]] = []
    for i, (m, a) in enumerate(zip(ments, answers)):
        if a is not None and not isinstance(a, str):
            raise _sample_error(path, key, f"answer {i} must be an entity id string, got {a!r}")
        gold = a.strip() if a else None
        if gold and gold not in kb_ids:
            raise _sample_error(path, key, f"gold entity {gold!r} of mention {i} ({m!r}) is not in the KB (qid2ne.json)")
        out.append((i, m.strip(), gold or None))
    return sentence, out


def mentions_of(ctx: ReadContext, path: Path, keys: list[str], samples: dict[str, Any], kb_ids: set[str],
                 seen: dict[str, str], split: str, blanks: list[str]) -> list[Mention]:
    """Mentions of the samples ``keys`` in ``split``; blank ones go to ``blanks``, unlabelled ones are noted."""
    out: list[Mention] = []
    unlabelled: list[str] = []
    for key in keys:
        sentence, items = _sample_mentions(path, key, samples[key], kb_ids)
        for i, text, gold in items:
            mid = f"{key}:{i}"
            if mid in seen:
                raise _sample_error(path, key, f"mention id {mid!r} occurs in split {seen[mid]!r} and again in {split!r}")
            seen[mid] = split
            if not text:
                blanks.append(mid)  # real data has these (Richpedia-MEL Q79179): drop, do not fail the whole task
                continue
            out.append(Mention(mid, text, sentence, gold))
            if gold is None:
                unlabelled.append(mid)
    if unlabelled:   # kept for predictions; a missing answer would otherwise drop a query silently
        shown = ", ".join(unlabelled[:5]) + (", ..." if len(unlabelled) > 5 else "")
        ctx.warn(f"{path}: {len(unlabelled)} mention(s) of split {split!r} have no answer: predicted, not scored "
                 f"or trained on ({shown})")
    return out


def warn_blanks(ctx: ReadContext, path: Path, blanks: list[str]) -> None:
    """Note the mentions dropped for their empty text."""
    if blanks:
        shown = ", ".join(blanks[:5]) + (", ..." if len(blanks) > 5 else "")
        ctx.warn(f"{path}: dropped {len(blanks)} mention(s) with empty text ({shown})")


def json_task(folder: Path, name: str | None, layout: str, ctx: ReadContext, kb_ctx: ReadContext, text: dict[str, Text],
               mentions: dict[str, list[Mention]], where: Path) -> LinkingTask:
    """The LinkingTask of a JSON layout (its KB has no triples); no mention at all is an error."""
    if not any(mentions.values()):
        raise KGFormatError("no mentions", where)
    task_name = name or folder.name
    kb = kb_graph(task_name, folder, layout, text, {}, kb_ctx, None)
    return LinkingTask(
        name=task_name,
        root=folder,
        layout=layout,
        kb=kb,
        mentions=mentions,
        source_files=merge_sources(ctx.sources, kb.source_files),
        warnings=kb.warnings + ctx.warnings,
    )
