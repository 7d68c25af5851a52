"""One way in to training: ``tofu train``, ``tofu pretrain`` and scripts all call :func:`train_model`.

As PyKEEN's ``pipeline()`` serves its command line and its scripts, this function takes what the
artifacts and the configs say and does the rest: the codebook check, the model (new, or from a
checkpoint with ``init`` / ``resume`` and its shape kept), the alignment and linking jobs and the run.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

# ModelConfig fields a run from a checkpoint keeps, and the `tofu train` option of each.
MODEL_SHAPE_FIELDS = {"dim": "dim", "entity_layers": "layers", "relation_layers": "relation-layers",
                      "messages": "messages", "modalities": "modalities", "link_strengths": "link-strengths",
                      "pair_links": "pair-links"}


class TrainSetupError(ValueError):
    """What was asked cannot be trained (no artifact of the task, a shape a checkpoint cannot take);
    ``option`` names the command-line option at fault, when one is."""

    def __init__(self, message: str, option: str | None = None):
        super().__init__(message)
        self.option = option


def select_task_artifacts(tables: Sequence[Any], tasks: Sequence[Any], wanted: set[str] | None,
                          task_weights: dict[str, float] | None) -> tuple[list[Any], list[Any]]:
    """The token tables and task artifacts of the ``wanted`` tasks (None: every task present); refuses
    a selection that leaves nothing, or task weights for a task no artifact holds."""
    from reasoning_stage.reasoning import artifact_task

    everything = ({"link_prediction"} if tables else set()) | {artifact_task(a) for a in tasks}
    if wanted is not None:
        tables = tables if "link_prediction" in wanted else []
        tasks = [a for a in tasks if artifact_task(a) in wanted]
    if not tables and not tasks:
        raise TrainSetupError(f"no artifact of the asked task(s) {sorted(wanted or everything)} among ARTIFACT...")
    present = ({"link_prediction"} if tables else set()) | {artifact_task(a) for a in tasks}
    absent = sorted(t for t, w in (task_weights or {}).items() if w > 0 and t not in present)
    if absent:
        left_out = [t for t in absent if t in everything]
        raise TrainSetupError(f"no artifact here holds {', '.join(absent)} (present: {', '.join(sorted(present))})"
                              + (f"; --task leaves out {', '.join(left_out)}" if left_out else ""),
                              option="--task-weights")
    return list(tables), list(tasks)


def train_model(tables: Sequence[Any], tasks: Sequence[Any], checkpoint: Path, config: Any, base: Any, device: Any, *,
                init: Path | None = None, resume: Path | None = None, shape_asked: Iterable[str] = (),
                progress: Callable | None = None, log: Callable[[dict[str, Any]], None] | None = None,
                announce: Callable[[str], None] | None = None) -> Path:
    """Train on token tables (link prediction) and alignment / linking task artifacts; returns ``checkpoint``.

    ``config`` is a :class:`reasoning_stage.training.TrainConfig`, ``base`` the
    :class:`reasoning_stage.models.ModelConfig` asked for (its token vocabularies are taken from the
    artifacts). ``init`` starts from a checkpoint's model and weights, ``resume`` continues its run;
    either keeps the checkpoint's shape, and ``shape_asked`` (fields of :data:`MODEL_SHAPE_FIELDS`
    given explicitly) that disagree with it are refused. ``base.content_match`` adds the content match
    to an ``init`` model at zero. Seed torch before calling: the new model's weights are drawn here.
    """
    import torch

    from artifacts.compatibility import require_codebook_id
    from reasoning_stage.models import TofuModel, with_content_match
    from reasoning_stage.reasoning import load_model, task_tables_of
    from reasoning_stage.config import check_train_config
    from reasoning_stage.training import matching_job, model_config_for, train

    if init is not None and resume is not None:
        raise TrainSetupError("--init starts a new run from a checkpoint's weights, --resume continues one: "
                              "give one of them")
    check_train_config(config)
    tables, tasks = list(tables), list(tasks)
    # Codebooks agree before any model or task is built from them.
    require_codebook_id(tables + tasks, (tables or tasks)[0].codebook_id)
    asked = model_config_for(tables[0] if tables else task_tables_of(tasks[0]), base)
    if init is not None or resume is not None:
        initial = load_model(init or resume, torch.device("cpu"))
        require_codebook_id(tables + tasks, initial.codebook_id)
        model = initial.model
        clash = [f"{_asked(MODEL_SHAPE_FIELDS[f], getattr(asked, f))} "
                 f"(the checkpoint has {_shown(getattr(model.config, f))})"
                 for f in MODEL_SHAPE_FIELDS if f in set(shape_asked) and getattr(asked, f) != getattr(model.config, f)]
        if clash:
            raise TrainSetupError(f"{'; '.join(clash)}: --{'init' if init else 'resume'} keeps the checkpoint's "
                                  "model shape")
        if base.content_match and not model.config.content_match:
            if resume is not None:
                raise TrainSetupError("--content-match changes the model: use it with --init, not --resume")
            try:
                model = with_content_match(model)
            except ValueError as err:
                raise TrainSetupError(f"--content-match: {init}: {err}") from None
    else:
        if base.content_match and not base.modalities:
            raise TrainSetupError("--content-match needs content modalities (--modalities is empty)")
        model = TofuModel(asked)
    jobs = [matching_job(a, model, device) for a in tasks]  # the same held-out pairs whatever the seed
    if announce is not None:
        announce(f"training on {len(tables)} graph(s) and {len(jobs)} task(s): "
                 f"{', '.join([t.name for t in tables] + [j.name for j in jobs])}; "
                 f"{model.num_parameters():,} parameters")
    train(model, tables, config, Path(checkpoint), device, resume_from=resume, progress=progress, log=log, jobs=jobs)
    return Path(checkpoint)


def _asked(option: str, value: Any) -> str:
    """The command-line words that ask for ``value``: ``--dim 64``, ``--pair-links``, ``--no-pair-links``."""
    if isinstance(value, bool):
        return f"--{'' if value else 'no-'}{option}"
    return f"--{option} {_shown(value)}"


def _shown(value: Any) -> str:
    return (",".join(str(v) for v in value) or repr("")) if isinstance(value, tuple) else str(value)
