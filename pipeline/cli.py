"""The ``tofu`` command. Heavy libraries (torch, faiss, dask) are imported inside commands."""
from __future__ import annotations

import math
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import click

from artifacts.manifest import MANIFEST_NAME
from artifacts.version import CODE_VERSION
from pipeline.defaults import SCHEDULER_TIMEOUT, model_default, train_default
from pipeline.example import EXAMPLE_PEOPLE, EXAMPLE_SEED
from reasoning_stage.config import EVAL_BATCH_MAX, EVAL_BATCH_MIN, EVIDENCE_FIT_STEPS, LOSSES, LR_SCHEDULES, TrainConfig
from tokenizer_stage.config import encoder_default, tokenizer_default

if TYPE_CHECKING:  # torch-free at import: the CLI imports heavy libraries inside commands
    from reasoning_stage.evaluation import Ranks


# Accepted spellings of --task -> the model's task names.
TASK_NAMES = {"link_prediction": "link_prediction", "lp": "link_prediction", "align": "alignment",
              "alignment": "alignment", "link": "linking", "linking": "linking"}
TASK_CHOICES = tuple(TASK_NAMES)
DEVICE_HELP = "torch device: cpu, cuda or cuda:N (default: cuda if present, else cpu)."
QUIET_HELP = "No progress bars (warnings and errors still print)."


def bootstrap_rounds(ctx: click.Context, param: click.Parameter, value: str) -> int | str:
    """``--bootstrap``: a count of rounds, or ``auto``."""
    if value == "auto":
        return value
    try:
        rounds = int(value)
    except ValueError:
        rounds = -1
    if rounds < 0:
        raise click.BadParameter(f"{value!r} is neither a count of rounds (0, 1, ...) nor 'auto'")
    return rounds


def train_option_message(message: str) -> str:
    """A TrainConfig check's message with the field it starts with named as ``tofu train``'s option."""
    options = {"learning_rate": "lr", "max_seconds": "max_minutes", "task_weights": "task_weights"}
    field = "max_seconds" if message.startswith("the time budget") else message.split(" ", 1)[0].rstrip(":")
    if field in TrainConfig.__dataclass_fields__:
        return f"--{options.get(field, field).replace('_', '-')}: {message}"
    return message


def model_option_message(message: str, options: dict[str, str]) -> str:
    """A ModelConfig check's message with the field it names first given as ``tofu train``'s option
    (``options``: field -> option name)."""
    field = message.removeprefix("unknown ").split(" ", 1)[0].rstrip(":")
    return f"--{options[field]}: {message}" if field in options else message


def _thresholds(text: str) -> tuple[float, ...]:
    """``'0.05,0.3'`` -> ``(0.05, 0.3)`` for ``--link-strengths`` (ModelConfig checks the values)."""
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of numbers",
                                 param_hint="--link-strengths") from None


def parse_task_weights(text: str | None) -> dict[str, float] | None:
    """``'link_prediction=2,alignment=1'`` -> ``{"link_prediction": 2.0, "alignment": 1.0}``."""
    if not text:
        return None
    weights = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        if name.strip() not in TASK_NAMES:
            raise click.BadParameter(f"unknown task {name.strip()!r} (choose from {', '.join(TASK_CHOICES)})",
                                     param_hint="--task-weights")
        task = TASK_NAMES[name.strip()]
        if task in weights:
            raise click.BadParameter(f"{task} is given twice", param_hint="--task-weights")
        try:
            weight = float(value)
        except ValueError:
            raise click.BadParameter(f"{part!r} is not TASK=NUMBER", param_hint="--task-weights") from None
        if not math.isfinite(weight) or weight < 0:
            raise click.BadParameter(f"{part!r}: a weight must be a finite number of at least 0",
                                     param_hint="--task-weights")
        weights[task] = weight
    return weights


class _FiniteFloat(click.FloatRange):
    """A ``click.FloatRange`` that also refuses nan and inf (``float()`` reads both)."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


class _Friendly(click.Group):
    """Known input errors become one clear line and exit code 1, never a traceback."""

    def invoke(self, ctx: click.Context):
        from artifacts.errors import ArtifactError
        from tokenizer_stage.config import EncoderError
        from tokenizer_stage.kg_reader import KGFormatError
        from pipeline.orchestrate import ClusterError
        from pipeline.pretrain import RecipeError

        known = (KGFormatError, ArtifactError, EncoderError, RecipeError, ClusterError)
        try:
            from reasoning_stage.reasoning import PredictionInputError
            from reasoning_stage.training import TrainingInputError

            known = known + (PredictionInputError, TrainingInputError)
        except ImportError:  # torch_scatter missing: tokenize still works
            pass
        try:
            return super().invoke(ctx)
        except known as err:
            raise click.ClickException(str(err)) from err
        except OSError as err:
            if err.filename and err.strerror:   # a path that cannot be read or written: the path, then why
                raise click.ClickException(f"{err.filename}: {err.strerror}") from err
            if isinstance(err, FileNotFoundError):   # TOFU's own, which say what is missing and what to do
                raise click.ClickException(str(err)) from err
            raise   # not about a path the user gave: a bug or the system's, with its traceback


def _file_above(path: Path) -> Path | None:
    """The nearest existing path above ``path`` when it is a file, where a folder would have to be."""
    above = next((p for p in path.parents if p.exists()), None)
    return above if above is not None and not above.is_dir() else None


def _check_output_folder(folder: Path, option: str = "--output", names: str = "a folder") -> None:
    """Before any work: ``folder`` is a folder or can become one (no file where a folder above it must be)."""
    if folder.exists() and not folder.is_dir():
        raise click.ClickException(f"{folder}: exists and is not a folder ({option} names {names})")
    above = _file_above(folder)
    if above is not None:
        raise click.ClickException(f"{folder}: {above} is a file, not a folder ({option} names {names})")


def _check_file_target(path: Path, option: str) -> None:
    """A file to write: not a folder, and no file where a folder above it must be."""
    if path.is_dir():
        raise click.BadParameter(f"{path}: is a folder; give a file name (e.g. {path / 'ranks.png'})",
                                 param_hint=option)
    above = _file_above(path)
    if above is not None:
        raise click.BadParameter(f"{path}: {above} is a file, not a folder", param_hint=option)


def _make_output_folder(folder: Path) -> None:
    _check_output_folder(folder)
    folder.mkdir(parents=True, exist_ok=True)


@click.group(cls=_Friendly)
@click.version_option(CODE_VERSION, prog_name="tofu")
def main() -> None:
    """TOFU: tokenize multimodal knowledge graphs, then reason over them zero-shot."""


@main.command(short_help="Turn KG folders into Parquet token tables (stage one).")
@click.argument("graphs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "out_root", type=click.Path(path_type=Path), default=Path("tofu_artifacts"),
              show_default=True, help="Artifact root: graph NAME is written to ROOT/NAME/.")
@click.option("--codebooks", type=click.Path(path_type=Path), default=None,
              help="Use this codebook set (default: ROOT/codebooks; on first use the shipped set when it suits "
                   "the encoders and sizes, else fitted on these graphs).")
@click.option("--refit-codebooks", is_flag=True,
              help="Fit new codebooks on these graphs (redoes them; other artifacts in the root must be tokenized "
                   "again too).")
@click.option("--force", is_flag=True, help="Redo graphs even when their artifacts are up to date.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Local Dask workers (default: min(graphs, CPUs); 1 runs in-process).")
@click.option("--scheduler", default=None, help="Address of an existing Dask distributed scheduler.")
@click.option("--scheduler-timeout", type=_FiniteFloat(min=0, min_open=True), default=SCHEDULER_TIMEOUT,
              show_default=True,
              help="Seconds to wait for the scheduler to answer, and for a worker while the cluster has none; "
                   "then fail.")
@click.option("--text-encoder", default=tokenizer_default("text_encoder"), show_default=True,
              help="'minilm' (shipped) or a local transformers model folder.")
@click.option("--image-encoder", default=tokenizer_default("image_encoder"), show_default=True,
              help="'efficientnet-lite0' (shipped) or a local transformers vision model folder.")
@click.option("--no-text", is_flag=True, help="Skip text tokens.")
@click.option("--no-images", is_flag=True, help="Skip image tokens.")
@click.option("--tokens-per-entity", type=click.IntRange(min=1), default=tokenizer_default("tokens_per_entity"),
              show_default=True,
              help="Most frequent codes kept per entity and modality.")
@click.option("--text-codebook-size", type=click.IntRange(min=2), default=tokenizer_default("text_codebook_size"),
              show_default=True,
              help="Text codes when codebooks are fitted (frozen codebooks keep theirs).")
@click.option("--image-codebook-size", type=click.IntRange(min=2), default=tokenizer_default("image_codebook_size"),
              show_default=True,
              help="Image codes when codebooks are fitted.")
@click.option("--structure-codebook-size", type=click.IntRange(min=2),
              default=tokenizer_default("structure_codebook_size"), show_default=True,
              help="Structure codes when codebooks are fitted.")
@click.option("--batch-size", type=click.IntRange(min=1), default=encoder_default("batch_size"), show_default=True,
              help="Texts encoded together (images: half as many).")
@click.option("--device", default=None, help="torch device for the encoders (default: cuda if present).")
@click.option("--seed", type=int, default=tokenizer_default("seed"), show_default=True,
              help="Seed of codebook fitting (its sample and k-means).")
@click.option("--quiet", is_flag=True, help=QUIET_HELP)
def tokenize(graphs, out_root, codebooks, refit_codebooks, force, workers, scheduler, scheduler_timeout, text_encoder,
             image_encoder, no_text, no_images, tokens_per_entity, text_codebook_size,
             image_codebook_size, structure_codebook_size, batch_size, device, seed, quiet) -> None:
    """Turn knowledge-graph folders into Parquet token tables (stage one).

    GRAPHS are KG folders, folders holding KG folders, single triples files
    (.tsv, .txt, .csv: all of it the train split; a kg.toml [split] cuts one),
    or alignment and linking task folders (README: "Task folders").
    Graphs whose sources, encoders and codebooks are unchanged since the last
    run are skipped.
    """
    from artifacts.compatibility import other_codebook_artifacts
    from artifacts.root import artifact_name_error, stale_artifacts
    from pipeline.orchestrate import GraphFailure, discover_graph_dirs, tokenize_many
    from tokenizer_stage.config import EncoderSpec, image_batch_size
    from tokenizer_stage.naming import artifact_name
    from tokenizer_stage.config import TokenizerConfig

    if device is not None:
        _device(device)   # an unusable device is refused before codebooks are copied or anything encoded
    config = TokenizerConfig(
        text_encoder=EncoderSpec("text", text_encoder, batch_size=batch_size, device=device),
        image_encoder=EncoderSpec("image", image_encoder, batch_size=image_batch_size(batch_size), device=device),
        text_codebook_size=text_codebook_size, image_codebook_size=image_codebook_size,
        structure_codebook_size=structure_codebook_size, tokens_per_entity=tokens_per_entity,
        use_text=not no_text, use_images=not no_images, seed=seed)
    skipped: list[tuple[Path, str]] = []
    graph_dirs = discover_graph_dirs(graphs, skipped)
    for folder, reason in skipped:
        click.echo(f"  skipped {folder}: {reason}", err=True)
    names = [artifact_name(d) for d in graph_dirs]   # ROOT/<name>: checked before anything is written
    for folder, name in zip(graph_dirs, names):
        error = artifact_name_error(name)
        if error:
            raise click.ClickException(f"{folder}: {error}")
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise click.ClickException(f"two graphs would both be written to {out_root}/{dupes[0]}: "
                                   f"{', '.join(str(d) for d, n in zip(graph_dirs, names) if n in dupes)}")
    _check_output_folder(out_root, "--out", "the artifact root")
    if not refit_codebooks:
        _check_frozen_codebook_sizes(Path(codebooks) if codebooks else None, out_root)
    click.echo(f"tokenizing {len(graph_dirs)} graph or task folder(s) into {out_root}", err=True)

    def announce(result):
        if isinstance(result, GraphFailure):
            click.echo(f"  {result.name}: FAILED: {result.error}", err=True)
        elif result.status == "skipped":
            click.echo(f"  {result.name}: up to date, skipped", err=True)
        else:
            click.echo(f"  {result.name}: tokenized in {result.seconds:.1f}s", err=True)
            for note in result.warnings:  # data warnings print with --quiet too: only bars are hidden
                click.echo(f"  warning: {note}", err=True)

    with warnings.catch_warnings():
        # Each graph's warnings come back in its summary and are printed once, above.
        warnings.simplefilter("ignore")
        results, facts = tokenize_many(graph_dirs, out_root, config, codebooks=codebooks,
                                       refit_codebooks=refit_codebooks, force=force, workers=workers,
                                       scheduler=scheduler, progress=not quiet, on_result=announce,
                                       scheduler_timeout=scheduler_timeout)
    if not facts["root_removed"]:
        click.echo(f"codebooks: {facts['codebooks']} ({facts['codebook_state']}, id {facts['codebook_id']}); "
                   f"executor: {facts['executor']}; {facts['seconds']:.1f}s")
    for note in facts["codebook_notes"]:
        click.echo(f"  warning: {note}", err=True)
    click.echo(summary_table(results))
    failures = [r for r in results if isinstance(r, GraphFailure)]
    # A failed graph's earlier artifact (if any) stays; the error below names it.
    kept = [out_root / f.name for f in failures if (out_root / f.name / MANIFEST_NAME).is_file()]
    for folder, reason in stale_artifacts(out_root, artifact_name):
        if folder not in kept:
            click.echo(f"  note: {folder} {reason}; delete the artifact to leave it out of `tofu train / reason "
                       "ROOT`", err=True)
    other_books = other_codebook_artifacts(out_root, facts["codebook_id"])
    if other_books:
        click.echo(f"  note: {', '.join(map(str, other_books))}: made with other codebooks than {out_root}'s "
                   f"(id {facts['codebook_id']}), so no model reads them together with the rest; tokenize their "
                   "folders again into this root", err=True)
    if failures:
        raise click.ClickException(
            f"{len(failures)} of {len(results)} graph(s) failed; their artifacts were not written"
            + (f" ({', '.join(map(str, kept))}: still the artifacts of an earlier run, from the earlier input)"
               if kept else "")
            + (f"; {out_root}, which this run made, is removed" if facts["root_removed"] else ""))


def _check_frozen_codebook_sizes(codebooks: Path | None, out_root: Path) -> None:
    """A codebook size given on the command line must match the frozen set that will be used: frozen
    codebooks are never refitted silently, and ignoring the option silently would mislead."""
    from click.core import ParameterSource

    from artifacts.codebooks import CodebookSet, codebooks_exist
    from artifacts.compatibility import frozen_size_conflict
    from artifacts.root import codebook_folder

    location = codebook_folder(out_root, codebooks)
    if not codebooks_exist(location):
        return
    ctx = click.get_current_context()
    given = {modality: ctx.params[f"{modality}_codebook_size"] for modality in ("text", "image", "structure")
             if ctx.get_parameter_source(f"{modality}_codebook_size") == ParameterSource.COMMANDLINE}
    conflict = frozen_size_conflict(CodebookSet.load(location), given)
    if conflict:
        modality, asked, then = conflict
        raise click.BadParameter(
            f"{asked}, but the frozen set in {location} was fitted with {then} {modality} codes; drop the "
            "option, or add --refit-codebooks to fit new codebooks (the graphs given are tokenized again; "
            "other artifacts in the root must be too)", param_hint=f"--{modality}-codebook-size")


@main.command(short_help="Write the built-in example graph to FOLDER.")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--people", type=click.IntRange(min=5), default=EXAMPLE_PEOPLE, show_default=True,
              help="People in the graph (with their cities, countries and colours).")
@click.option("--seed", type=int, default=EXAMPLE_SEED, show_default=True,
              help="Seed of the people, their facts and pictures.")
def example(folder: Path, people: int, seed: int) -> None:
    """Write the built-in example graph (texts and drawn images) to FOLDER.

    FOLDER must be new, empty, or an earlier example graph (which is rewritten).
    """
    from pipeline.example import write_example_graph

    _check_output_folder(folder, "FOLDER", "the example graph's folder")

    try:
        write_example_graph(folder, people=people, seed=seed)
    except FileExistsError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"example graph written to {folder}")


def _device(requested: str | None):
    import torch

    try:
        device = torch.device(requested or ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError as err:
        raise click.BadParameter(str(err).splitlines()[0], param_hint="--device") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise click.BadParameter(f"{requested}: this torch sees no CUDA device", param_hint="--device")
    if device.type not in ("cpu", "cuda"):   # torch_scatter and the sparse kernels run on these two
        raise click.BadParameter(f"{requested}: TOFU runs on cpu or cuda", param_hint="--device")
    return device


def _check_checkpoint_target(folder: Path) -> None:
    """Refuse to write a checkpoint over a file or over a folder of other things (it is replaced whole)."""
    for parent in folder.parents:
        if parent.exists() and not parent.is_dir():
            raise click.BadParameter(f"{parent} is a file, not a folder", param_hint="--out")
    if folder.exists() and not folder.is_dir():
        raise click.BadParameter(f"{folder} is a file; name a checkpoint folder", param_hint="--out")
    if folder.is_dir() and any(folder.iterdir()):
        from artifacts.checkpoint import KIND
        from artifacts.manifest import peek_manifest

        kind = (peek_manifest(folder) or {}).get("kind")
        if kind != KIND:
            raise click.BadParameter(f"{folder} holds files and is not a checkpoint"
                                     + (f" (a {kind} artifact)" if kind else "") + "; it would be replaced whole",
                                     param_hint="--out")


@main.command(short_help="Train the reasoner on tokenized graphs and tasks.")
@click.argument("artifacts_", metavar="ARTIFACT...", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "checkpoint", required=True, type=click.Path(path_type=Path),
              help="Checkpoint folder to write (a new folder, or a checkpoint to replace).")
@click.option("--max-steps", type=int, default=train_default("max_steps"), show_default=True,
              help="Training steps (a resumed run counts the checkpoint's steps too).")
@click.option("--batch-size", type=int, default=train_default("batch_size"), show_default=True,
              help="Query triples per link-prediction step.")
@click.option("--loss", type=click.Choice(LOSSES), default=train_default("loss"),
              show_default=True,
              help="adversarial: BCE against --negatives drawn negatives, weighted self-adversarially; "
                   "softmax: cross-entropy against every entity that is not a known answer; both: their sum.")
@click.option("--negatives", type=int, default=train_default("negatives"), show_default=True,
              help="Negatives per query of the adversarial loss.")
@click.option("--batch-relations", type=int, default=train_default("batch_relations"),
              show_default=True,
              help="Draw each link-prediction batch from this many relations' triples (0: from all triples). "
                   "Its queries then come in runs the model computes far cheaper on sparse graphs.")
@click.option("--edge-dropout", type=float, default=train_default("edge_dropout"),
              show_default=True,
              help="Each link-prediction step also hides a share of the graph's triples, drawn from [0, this], "
                   "so the model meets sparser graphs (hidden triples stay known answers).")
@click.option("--graph-sampling-power", type=float, default=train_default("graph_sampling_power"),
              show_default=True,
              help="Draw each link-prediction step's graph with probability proportional to its training "
                   "triples to this power (1: by size, 0: every graph alike).")
@click.option("--weight-average", type=float, default=train_default("weight_average"),
              show_default=True,
              help="Keep a moving average of the weights with this decay (e.g. 0.995) and validate and save it "
                   "instead of the last step's weights (0: off).")
@click.option("--lr", type=float, default=train_default("learning_rate"), show_default=True, help="AdamW learning rate (the schedule's peak).")
@click.option("--dim", type=click.IntRange(min=2), default=model_default("dim"), show_default=True,
              help="Width of the model's entity, relation and token vectors.")
@click.option("--layers", type=click.IntRange(min=1), default=model_default("entity_layers"), show_default=True, help="Entity GNN layers.")
@click.option("--relation-layers", type=click.IntRange(min=1), default=model_default("relation_layers"),
              show_default=True,
              help="Relation-graph GNN layers.")
@click.option("--messages", default=",".join(model_default("messages")), show_default=True,
              help="Message functions to mix (comma-separated): distmult, transe, rotate.")
@click.option("--modalities", default=",".join(model_default("modalities")), show_default=True,
              help="Token modalities to read ('' for structure-only, ULTRA-shaped).")
@click.option("--link-strengths", default=",".join(str(t) for t in model_default("link_strengths")), show_default=True,
              help="Cosine thresholds (comma-separated, ascending) that split each kind of relation-graph link "
                   "by how many entities the two relations share ('' keeps ULTRA's four link types).")
@click.option("--pair-links/--no-pair-links", default=model_default("pair_links"), show_default=True,
              help="Add a fifth kind of relation-graph link: relations that hold on a same (head, tail) pair "
                   "(a relation so linked to its own inverse is symmetric).")
@click.option("--content-match", is_flag=True,
              help="Add a relation-conditioned match of the head's content features with each candidate's to "
                   "the scores (with --init: added to that model at zero, so it starts where the model was).")
@click.option("--eval-every", type=int, default=train_default("eval_every"), show_default=True,
              help="Validate, log and save the checkpoint every this many steps.")
@click.option("--resume", "resume", type=click.Path(path_type=Path), default=None,
              help="Continue from this checkpoint (its model, weights, optimizer and step; up to --max-steps).")
@click.option("--init", "init", type=click.Path(path_type=Path), default=None,
              help="Start from this checkpoint's model and weights (a new run: fresh optimizer and step count).")
@click.option("--task", "tasks", multiple=True, type=click.Choice(TASK_CHOICES), default=None,
              help="Train only these tasks (repeatable; default: every task the ARTIFACTs hold).")
@click.option("--task-weights", default=None,
              help="Share of steps per task, e.g. 'link_prediction=2,alignment=1,linking=1'.")
@click.option("--max-minutes", type=float, default=None, help="Stop after this many minutes of training.")
@click.option("--lr-schedule", type=click.Choice(LR_SCHEDULES), default=train_default("lr_schedule"),
              show_default=True,
              help="cosine: decay the learning rate to a tenth over --max-steps or --max-minutes, "
                   "whichever runs out first.")
@click.option("--seed", type=int, default=train_default("seed"), show_default=True,
              help="Seed of the weights, the batches and edge dropout.")
@click.option("--device", default=None, help=DEVICE_HELP)
@click.option("--quiet", is_flag=True, help=QUIET_HELP)
def train(artifacts_, checkpoint, max_steps, batch_size, loss, negatives, batch_relations, edge_dropout,
          graph_sampling_power, weight_average, lr, dim, layers, relation_layers, messages,
          modalities, link_strengths, pair_links, content_match, eval_every, resume, init, tasks, task_weights, max_minutes, lr_schedule, seed, device,
          quiet) -> None:
    """Train the reasoner on tokenized graphs (link prediction) and on alignment / linking task artifacts.

    Every step is a batch of one task from one graph or task; tasks are mixed by --task-weights.
    The defaults of the loss, batches, edge dropout, messages and schedule are the shipped recipe's
    (recipes/pretrain.toml).
    """
    import torch

    from artifacts.root import artifact_folders
    from pipeline.progress import make_progress
    from pipeline.training_run import MODEL_SHAPE_FIELDS, TrainSetupError, select_task_artifacts, train_model
    from reasoning_stage.allocator import retain_freed_memory
    from reasoning_stage.config import ModelConfig
    from reasoning_stage.reasoning import read_artifacts
    from reasoning_stage.config import TrainConfig, check_train_config
    from artifacts.outputs import checkpoint_log_path, log_to_file

    retain_freed_memory()
    ctx = click.get_current_context()
    if init is not None and resume is not None:
        raise click.UsageError("--init starts a new run from a checkpoint's weights, --resume continues one: "
                               "give one of them")
    _check_checkpoint_target(checkpoint)
    dev = _device(device)
    config = TrainConfig(max_steps=max_steps, batch_size=batch_size, loss=loss, negatives=negatives,
                         batch_relations=batch_relations, edge_dropout=edge_dropout,
                         graph_sampling_power=graph_sampling_power, weight_average=weight_average,
                         learning_rate=lr,
                         eval_every=eval_every, seed=seed, task_weights=parse_task_weights(task_weights),
                         lr_schedule=lr_schedule,
                         max_seconds=None if max_minutes is None else 60.0 * max_minutes)
    try:
        check_train_config(config)
    except ValueError as err:
        raise click.UsageError(train_option_message(str(err))) from None
    try:
        base = ModelConfig(dim=dim, entity_layers=layers, relation_layers=relation_layers,
                           messages=tuple(m for m in messages.split(",") if m),
                           modalities=tuple(m for m in modalities.split(",") if m), content_match=content_match,
                           link_strengths=_thresholds(link_strengths), pair_links=pair_links)
    except ValueError as err:
        raise click.UsageError(model_option_message(str(err), MODEL_SHAPE_FIELDS)) from None
    torch.manual_seed(seed)
    tables, tasks_found = read_artifacts(artifact_folders(artifacts_))
    shape_asked = [field for field, option in MODEL_SHAPE_FIELDS.items()
                   if ctx.get_parameter_source(option.replace("-", "_")) == click.core.ParameterSource.COMMANDLINE]
    log_path = checkpoint_log_path(checkpoint)
    try:
        tables, tasks_found = select_task_artifacts(tables, tasks_found, {TASK_NAMES[t] for t in tasks} or None,
                                                    config.task_weights)
        write_log = log_to_file(log_path, fresh=resume is None)

        def log(record):
            write_log(record)
            click.echo("  " + "  ".join(f"{k}={v}" for k, v in record.items()), err=True)

        train_model(tables, tasks_found, checkpoint, config, base, dev, init=init, resume=resume,
                    shape_asked=shape_asked, progress=make_progress(not quiet), log=log,
                    announce=lambda line: click.echo(line, err=True))
    except TrainSetupError as err:
        if err.option:
            raise click.BadParameter(str(err), param_hint=err.option) from None
        raise click.UsageError(str(err)) from None
    click.echo(f"checkpoint written to {checkpoint} (log: {log_path})")


@main.command(short_help="Tokenize and train from a recipe; --ship installs it.")
@click.argument("recipe", type=click.Path(path_type=Path))
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Benchmark data folder the recipe's paths are relative to (default: $TOFU_DATA, ../shared/data).")
@click.option("--work", type=click.Path(path_type=Path), default=Path("runs/pretrain"), show_default=True,
              help="Folder for the graphs' kg.toml, artifacts, codebooks and the checkpoint.")
@click.option("--max-minutes", type=_FiniteFloat(min=0, min_open=True), default=None,
              help="Override the recipe's training budget.")
@click.option("--without", "without", multiple=True, metavar="GLOB",
              help="Leave out the recipe's graphs whose name matches (repeatable), e.g. --without 'nell_*' "
                   "for a checkpoint that never saw NELL.")
@click.option("--ship", is_flag=True, help="Install the result as the packaged model (artifacts/shipped/).")
@click.option("--device", default=None, help=DEVICE_HELP)
@click.option("--quiet", is_flag=True, help=QUIET_HELP)
def pretrain(recipe, data, work, max_minutes, without, ship, device, quiet) -> None:
    """Run a pretraining RECIPE (TOML): tokenize its graphs, train, optionally ship the model."""
    import os

    from artifacts.shipped import ship as install
    from pipeline.pretrain import read_recipe, run_recipe, without_graphs
    from reasoning_stage.allocator import retain_freed_memory
    from artifacts.outputs import log_to_file, recipe_log_path
    from artifacts.root import codebook_folder

    retain_freed_memory()
    parsed = read_recipe(recipe)
    if without:
        parsed = without_graphs(parsed, list(without))
    data = data or Path(os.environ.get("TOFU_DATA", "../shared/data"))
    if not data.is_dir():
        raise click.UsageError(f"data folder {data} not found; pass --data or set TOFU_DATA")
    _check_output_folder(work, "--work", "the recipe's work folder")
    checkpoint = work / "checkpoint"
    log_path = recipe_log_path(work)
    write_log = log_to_file(log_path, fresh=True)   # each run trains anew into work/checkpoint

    def log(record):
        write_log(record)
        click.echo("  " + "  ".join(f"{k}={v}" for k, v in record.items()), err=True)

    run_recipe(parsed, data, work, checkpoint, _device(device), max_minutes, progress=not quiet, log=log)
    click.echo(f"checkpoint written to {checkpoint} (log: {log_path})")
    if ship:
        click.echo(f"shipped to {install(checkpoint, codebook_folder(work / 'artifacts'))}")


@main.command("fit-evidence", short_help="Learn how names, descriptions and seed links count, per task.")
@click.argument("artifacts_", metavar="TASK_ARTIFACT...", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None,
              help="Checkpoint to start from (default: the shipped one).")
@click.option("--out", "output", required=True, type=click.Path(path_type=Path),
              help="Folder of the new checkpoint (everything but the evidence weights as in --checkpoint).")
@click.option("--steps", type=click.IntRange(min=1), default=EVIDENCE_FIT_STEPS, show_default=True,
              help="Optimiser steps over the precomputed channels.")
@click.option("--device", default=None, help="torch device (default: cuda if present).")
def fit_evidence(artifacts_, checkpoint, output, steps, device) -> None:
    """Fit the per-task evidence weights of a checkpoint on the train splits of alignment and linking
    TASK_ARTIFACTs: the model's own score against lexical (TF-IDF) and decoded-vector name and
    description similarity and, for alignment, anchors through the seed links. Nothing else changes, so
    link prediction scores stay exactly as they were. An alignment's train links are split 70/30 into
    anchors and pairs to learn from."""
    from artifacts.checkpoint import save_checkpoint
    from artifacts.shipped import shipped_checkpoint
    from reasoning_stage.config import TASKS
    from reasoning_stage.models import evidence_weights
    from artifacts.compatibility import require_codebook_id
    from artifacts.root import artifact_folders
    from reasoning_stage.reasoning import fit_evidence as fit, load_model, read_artifacts

    _check_checkpoint_target(output)
    checkpoint = checkpoint or shipped_checkpoint()
    if checkpoint is None:
        raise click.UsageError("no --checkpoint given and no shipped checkpoint installed")
    _, tasks = read_artifacts(artifact_folders(artifacts_))
    if not tasks:
        raise click.UsageError("no alignment or linking task among the artifacts given")
    dev = _device(device)
    loaded = load_model(checkpoint, dev)
    require_codebook_id(tasks, loaded.codebook_id)   # every task, before any evidence is computed
    losses = fit(loaded, tasks, dev, steps=steps)
    training = dict(loaded.manifest.get("training", {}))
    training["evidence"] = evidence_record(training.get("evidence"), tasks, losses, steps, loaded.manifest.get("lexicon"))
    save_checkpoint(output, loaded.model.state_dict(), loaded.manifest["model"], loaded.manifest["codebook_id"],
                    training)
    click.echo(f"evidence weights written to {output}")
    for name, loss in sorted(losses.items()):
        click.echo(f"  {name}: final training loss {loss:.4f}")
    for task, row in zip(TASKS, evidence_weights(loaded.model)):
        click.echo(f"  {task}: " + ", ".join(f"{channel} {weight:.2f}" for channel, weight in row))


def evidence_record(earlier: dict | None, tasks, losses: dict[str, float], steps: int, lexicon) -> dict:
    """The checkpoint's record of its evidence fits, per matching task: a fit replaces the record of the
    tasks it fitted (each task's weights are its own) and keeps the others' (an older, flat record whole)."""
    from reasoning_stage.reasoning import artifact_task

    by_task = dict((earlier or {}).get("by_task", {}))
    for kind in {artifact_task(t) for t in tasks}:
        by_task[kind] = {"datasets": {t.name: round(losses[t.name], 4) for t in tasks if artifact_task(t) == kind},
                         "steps": steps}
    record = {"by_task": dict(sorted(by_task.items())), "lexicon": lexicon}
    if earlier and "by_task" not in earlier:
        record["earlier_fit"] = earlier
    elif earlier and "earlier_fit" in earlier:
        record["earlier_fit"] = earlier["earlier_fit"]
    return record


@main.command(short_help="Install a checkpoint as the packaged model.")
@click.argument("checkpoint", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("codebooks", type=click.Path(exists=True, file_okay=False, path_type=Path))
def ship(checkpoint: Path, codebooks: Path) -> None:
    """Install CHECKPOINT and its CODEBOOKS as the packaged model (artifacts/shipped/).

    The packaged model is replaced whole, in one step, with no copy of the old one kept: copy
    artifacts/shipped/ first to keep it. The codebooks must be the ones the checkpoint was trained with.
    """
    from artifacts.shipped import ship as install

    click.echo(f"shipped to {install(checkpoint, codebooks)}")


@main.command(short_help="Evaluate a model, or predict answers (stage two).")
@click.argument("artifacts_", metavar="ARTIFACT...", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None,
              help="Checkpoint folder (default: the pretrained model shipped with TOFU).")
@click.option("--split", default="test", show_default=True,
              help="Split(s) to evaluate, comma-separated (e.g. GraIL's ULTRA protocol: ind_valid,test).")
@click.option("--output", type=click.Path(path_type=Path), default=Path("tofu_results"), show_default=True,
              help="Folder for metrics.csv / metrics.json, predictions and fine-tuned checkpoints.")
@click.option("--predict", "predict_file", type=click.Path(exists=True, dir_okay=False, allow_dash=True,
                                                           path_type=Path), default=None,
              help="TSV of queries 'head<TAB>relation<TAB>?' or '?<TAB>relation<TAB>tail' (labels; '-' reads "
                   "standard input), answered over the graph of the one --split given (a GraIL artifact: train "
                   "for X, test for X_ind); written to OUTPUT/predictions_<graph>_<split>.tsv.")
@click.option("--query", "query_texts", multiple=True, metavar="'HEAD<TAB>RELATION<TAB>?'",
              help="One query on the command line, as a --predict row ('?' for the asked side; the three "
                   "fields may be separated by spaces when no label holds one); repeatable.")
@click.option("--exclude-known", is_flag=True,
              help="--predict / --query: leave out answers the artifact's triple sets already hold (each "
                   "answer's 'known' column names them).")
@click.option("--top-k", type=click.IntRange(min=1), default=10, show_default=True,
              help="Answers per query (--predict, --query) or candidates per query (--predict-top-k); at most "
                   "the graph's entities.")
@click.option("--finetune-epochs", type=click.IntRange(min=0), default=0, show_default=True,
              help="Fine-tune on each graph's train split first (transductive setting), for metrics and "
                   "--predict alike; the tuned checkpoint is kept in OUTPUT/finetuned_<graph>.")
@click.option("--embedding-minutes", type=_FiniteFloat(min=0), default=0.0, show_default=True,
              help="Also fit a ComplEx embedding of each graph's own ids on its train split for this many "
                   "minutes and add its scores (transductive setting: test triples about entities train "
                   "already holds). Its weight is chosen on the valid split when that is not evaluated; the "
                   "embedding is kept in OUTPUT/graph_embedding_<graph>.")
@click.option("--graph-embedding", "graph_embedding", type=click.Path(path_type=Path), default=None,
              help="Add a graph embedding kept by an earlier --embedding-minutes run (OUTPUT/graph_embedding_<graph>) "
                   "at its recorded weight; one ARTIFACT, the token tables it was fitted on.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Distinct (entity, relation) queries scored together in evaluation "
                   f"[default: by graph size, {EVAL_BATCH_MIN}-{EVAL_BATCH_MAX}: more on smaller graphs].")
@click.option("--plot", "plot_file", type=click.Path(path_type=Path), default=None,
              help="Write a PNG of the first graph's results: MRR per relation (tail and head queries) and "
                   "where the answers rank.")
@click.option("--task", "task", type=click.Choice(TASK_CHOICES), default="link_prediction", show_default=True,
              help="link_prediction on token tables; align / link on alignment or linking task artifacts.")
@click.option("--predict-top-k", "predict_top_k", is_flag=True,
              help="align / link: write the --top-k candidates of every query of --split to "
                   "predictions_<task>_<split>.tsv (the task's name: its artifact folder's name as tokenized).")
@click.option("--no-routing", is_flag=True,
              help="align / link: embed with the link-prediction route (one representation for every task).")
@click.option("--candidates", type=click.Choice(["all", "test"]), default="all", show_default=True,
              help="align: rank every graph-2 entity, or only the split's gold counterparts (as alignment papers do).")
@click.option("--assignment", is_flag=True,
              help="align: rank after a global one-to-one (Sinkhorn) normalisation of the split's score matrix; "
                   "its confident pairs join the seed links as anchors and it ranks once more.")
@click.option("--bootstrap", default="0", show_default=True, callback=bootstrap_rounds, metavar="N|auto",
              help="align: rounds of pseudo-seed links added to the seed links before ranking: each round keeps "
                   "the unlinked entity pairs that are each other's best match with a margin above the median "
                   "(no gold label read). 'auto': 0 or 1, whichever ranks held-out train links better (30%, "
                   "the other 70% as anchors). Helps where names agree (DBP15K), hurts where they do not.")
@click.option("--fit-on-seeds", is_flag=True,
              help="align: before ranking, fit the alignment evidence weights (and nothing else) on the task's "
                   "own train links, 70% as anchors and 30% to learn from; the checkpoint file is not changed. "
                   "For graphs unlike those the weights were fitted on (DB15K <-> MKG-W: no names on one side).")
@click.option("--shortlist", type=click.IntRange(min=1), default=None,
              help="align / link, --predict-top-k: score only the N best candidates of each name and text "
                   "channel (FAISS and subword postings), for knowledge bases of 100k+ entities.")
@click.option("--device", default=None, help=DEVICE_HELP)
@click.option("--quiet", is_flag=True, help=QUIET_HELP)
def reason(artifacts_, checkpoint, split, output, predict_file, query_texts, exclude_known, top_k, finetune_epochs,
           embedding_minutes, graph_embedding, batch_size, plot_file, task, predict_top_k, no_routing, candidates,
           assignment, bootstrap, fit_on_seeds, shortlist, device, quiet) -> None:
    """Evaluate a checkpoint on tokenized graphs or tasks, or predict answers (stage two).

    With --task link_prediction (default): filtered ranking of head and tail
    queries. With --task align / link: each graph-1 entity (or mention) of
    --split ranks every entity of graph 2 (or of the knowledge base).
    """
    import copy
    import time
    from dataclasses import asdict

    from artifacts.metrics import write_metrics
    from artifacts.outputs import predictions_path, write_predictions
    from pipeline.progress import make_progress
    from reasoning_stage.reasoning import (LoadedModel, check_splits, evaluate, load_model, parse_prediction_queries,
                                           per_relation_metrics, predict)
    from reasoning_stage.allocator import retain_freed_memory
    from artifacts.compatibility import require_codebook_id
    from reasoning_stage.training import fine_tune_config, train as run_training
    from artifacts.graph_embedding import save_graph_embedding
    from reasoning_stage.graph_embedding import GraphEmbeddingConfig
    from reasoning_stage.reasoning import with_graph_embedding, with_saved_graph_embedding

    retain_freed_memory()
    _check_output_folder(output)  # before any work
    if plot_file is not None:
        _check_file_target(plot_file, "--plot")
    if checkpoint is None:
        from artifacts.shipped import shipped_checkpoint

        checkpoint = shipped_checkpoint()
        if checkpoint is None:
            raise click.UsageError("no --checkpoint given and this installation ships no pretrained model "
                                   "(tofu pretrain recipes/pretrain.toml --ship makes one)")
    dev = _device(device)
    splits = _parse_splits(split)
    task = TASK_NAMES[task]
    predicting = predict_file is not None or bool(query_texts)
    if predict_file is not None and query_texts:
        raise click.UsageError("give the queries with --predict FILE or with --query, not both")
    if predicting and task != "link_prediction":
        raise click.UsageError("--predict and --query answer link-prediction queries; with --task align / link "
                               "use --predict-top-k")
    if predicting and len(splits) > 1:
        raise click.UsageError("--predict and --query answer over one split's graph: give one --split")
    if exclude_known and not predicting:
        raise click.UsageError("--exclude-known applies to --predict and --query")
    if task != "link_prediction":
        if finetune_epochs or embedding_minutes or graph_embedding or plot_file is not None:
            raise click.UsageError("--finetune-epochs, --embedding-minutes, --graph-embedding and --plot apply to "
                                   "link prediction, not --task align / link")
        if (candidates != "all" or assignment or bootstrap or fit_on_seeds) and TASK_NAMES[task] != "alignment":
            raise click.UsageError("--candidates test, --assignment, --bootstrap and --fit-on-seeds apply to "
                                   "--task align")
        if shortlist and not predict_top_k:
            raise click.UsageError("--shortlist applies to --predict-top-k (evaluation scores every candidate)")
        _reason_task(task, artifacts_, checkpoint, splits, output, top_k, predict_top_k, no_routing, dev,
                     candidates, assignment, shortlist, bootstrap, fit_on_seeds)
        return
    if predict_top_k or no_routing or candidates != "all" or assignment or bootstrap or shortlist or fit_on_seeds:
        raise click.UsageError("--predict-top-k, --no-routing, --candidates, --assignment, --bootstrap, "
                               "--fit-on-seeds and --shortlist "
                               "apply to --task align / link")
    if graph_embedding is not None and (embedding_minutes or finetune_epochs):
        raise click.UsageError("--graph-embedding adds a kept embedding to the checkpoint as it is: give it "
                               "without --embedding-minutes and --finetune-epochs (pass a fine-tuned checkpoint "
                               "with --checkpoint)")
    tables = _graph_artifacts(artifacts_)
    for t in tables:  # before any fine-tuning or output: a wrong --split fails at once
        check_splits(t, splits, need_queries=not predicting)
        for name in splits:
            if not predicting and t.splits[name]["graph"] == t.splits[name]["queries"]:
                click.echo(f"note: {t.name}: split {name!r} is ranked over its own graph, which holds every triple "
                           "it asks about; its figures say how well the model reads back edges it is shown, not "
                           "how well it predicts", err=True)
    loaded = load_model(checkpoint, dev)
    require_codebook_id(tables, loaded.codebook_id)
    if graph_embedding is not None:   # checked before OUTPUT exists
        if len(tables) != 1:
            raise click.UsageError("--graph-embedding belongs to one graph: give exactly one ARTIFACT")
        loaded, weight = with_saved_graph_embedding(loaded, tables[0], graph_embedding, dev)
        click.echo(f"{tables[0].name}: graph embedding {graph_embedding} at weight {weight:g}")
    queries = None
    if predicting:  # read before OUTPUT exists: a bad file leaves nothing behind
        if len(tables) != 1:
            raise click.UsageError("--predict and --query take exactly one ARTIFACT")
        queries = parse_prediction_queries(_query_rows(predict_file, query_texts), tables[0], splits[0],
                                           _query_source(predict_file, query_texts))
    _make_output_folder(output)

    def model_for(t) -> LoadedModel:
        # Each graph is fine-tuned from the checkpoint itself, not from another graph's tuning;
        # the tuned checkpoint stays in OUTPUT for reuse with --checkpoint.
        model = loaded
        if finetune_epochs:
            steps = max(1, finetune_epochs * len(t.queries("train")) // fine_tune_config(loaded.manifest).batch_size)
            tuned = output / f"finetuned_{t.name}"
            run_training(copy.deepcopy(loaded.model), [t], fine_tune_config(loaded.manifest, max_steps=steps,
                                                                             eval_every=steps), tuned, dev,
                         progress=make_progress(not quiet))
            model = load_model(tuned, dev)  # with the tuned checkpoint's manifest
        if embedding_minutes:
            settings = GraphEmbeddingConfig(minutes=embedding_minutes)
            model, embedding, record = with_graph_embedding(model, t, dev, settings, held_out=splits,
                                                            progress=make_progress(not quiet))
            save_graph_embedding(output / f"graph_embedding_{t.name}", dict(embedding.named_parameters()), t,
                                 record["weight"], asdict(settings), {k: v for k, v in record.items() if k != "weight"})
            where = (f"chosen on {record['chosen_on']}: MRR " + ", ".join(f"{w} {m:.3f}" for w, m in
                                                                          record["validation_mrr"].items())
                     if record["chosen_on"] else "no valid split to choose it on that is not evaluated")
            click.echo(f"{t.name}: graph embedding, {record['run']['epochs']} epochs in {record['run']['seconds']:.0f}s, "
                       f"weight {record['weight']:g} ({where})")
        return model

    if queries is not None:
        rows = predict(model_for(tables[0]), tables[0], splits[0], queries, top_k, dev, exclude_known=exclude_known)
        if not rows:
            raise click.ClickException(f"every candidate answer of the {plural(len(queries), 'query', 'queries')} is "
                                       "already known; nothing is left to propose without --exclude-known")
        path = predictions_path(output, tables[0].name, splits[0])
        write_predictions(rows, path)
        for row in rows[: min(len(rows), 3 * top_k)]:
            click.echo(f"{row['query_head']}\t{row['relation']}\t{row['query_tail']}\t#{row['rank']} "
                       f"{row['answer']} ({row['answer_name']}) {row['score']:.3f}"
                       + (f"  [known: {row['known']}]" if row["known"] else ""))
        answers = max((row["rank"] for row in rows), default=0)
        click.echo(f"{plural(len(queries), 'query', 'queries')}, top {plural(answers, 'answer')} each"
                   + (f" (the graph has {answers} candidates)" if answers < top_k and not exclude_known else "")
                   + (", known answers left out" if exclude_known else "") + f": {path}")
        return
    records = []
    for t in tables:
        model_for_graph = model_for(t)
        start = time.perf_counter()
        ranks, metrics = evaluate(model_for_graph, t, splits, dev, batch_size=batch_size,
                                  progress=make_progress(not quiet))
        seconds = time.perf_counter() - start
        per_relation = per_relation_metrics(ranks, t)
        if plot_file is not None and not records:
            title = f"{t.name}: {'+'.join(splits)}, {plural(len(ranks.pessimistic), 'ranked query', 'ranked queries')}"
            chart = (title, per_relation, {d: ranks.pessimistic[ranks.direction == d].tolist() for d in ("tail", "head")})
        records.append({"graph": t.name, "split": "+".join(splits), "task": task, **metrics_record(ranks, metrics),
                        "seconds": round(seconds, 3), "details": metrics, "per_relation": per_relation})
    click.echo(metrics_table(records))
    json_path, csv_path = write_metrics(output, checkpoint, task, records)
    click.echo(f"metrics: {csv_path}, {json_path}")
    if plot_file is not None:   # after the metrics: a plot that cannot be written loses no results
        from pipeline.plots import evaluation_chart

        evaluation_chart(plot_file, *chart)
        click.echo(f"plot: {plot_file}")


def _query_rows(predict_file: Path | None, query_texts: tuple[str, ...]):
    """``(where, line)`` of each query: a --predict file, standard input ('-') or the --query texts."""
    from reasoning_stage.reasoning import query_lines

    if query_texts:
        # Spaces separate the fields when no tab does (a tab is awkward to type in a shell).
        for text in query_texts:
            fields = text.split("\t") if "\t" in text else text.split()
            where = f"--query {text!r}"
            if "\t" not in text and len(fields) != 3:
                where += f" (split at spaces into {len(fields)} fields: a label with a space needs tabs between the fields)"
            yield where, "\t".join(fields)
        return
    with click.open_file(str(predict_file), "rb") as handle:   # '-': standard input, left open
        yield from query_lines(handle, _query_source(predict_file, query_texts))


def _query_source(predict_file: Path | None, query_texts: tuple[str, ...]) -> str:
    """How errors name where the queries come from."""
    return "--query" if query_texts else "<stdin>" if str(predict_file) == "-" else str(predict_file)


def plural(count: int, word: str, words: str | None = None) -> str:
    """``'1 query'``, ``'2 queries'``."""
    return f"{count} {word if count == 1 else (words or word + 's')}"


def _parse_splits(split: str) -> list[str]:
    """``--split`` as a list: names stripped; an empty name or one given twice is refused."""
    splits = [s.strip() for s in split.split(",")]
    if not all(splits):
        raise click.BadParameter(f"{split!r}: an empty split name; give e.g. 'test' or 'ind_valid,test'",
                                 param_hint="--split")
    if len(set(splits)) != len(splits):
        raise click.BadParameter(f"{split!r}: a split named twice (its queries would count twice)",
                                 param_hint="--split")
    return splits


def _graph_artifacts(artifacts_) -> list:
    """The token tables among ARTIFACTs for link prediction. A root may hold task artifacts beside its
    graphs: those are skipped and named; a task artifact named directly is refused with the --task to use."""
    from artifacts.root import artifact_folders
    from reasoning_stage.reasoning import artifact_task, read_artifacts

    tables, tasks_found = read_artifacts(artifact_folders(artifacts_))
    named = {Path(p).resolve() for p in artifacts_}
    for artifact in tasks_found:
        kind = artifact_task(artifact)
        hint = f"{artifact.folder}: {'an' if kind == 'alignment' else 'a'} {kind} task artifact; evaluate it " \
               f"with --task {'align' if kind == 'alignment' else 'link'}"
        if Path(artifact.folder).resolve() in named:
            raise click.UsageError(hint)
        click.echo(f"skipped {hint}", err=True)
    if not tables:
        raise click.UsageError(f"no token-table (graph) artifacts to evaluate among {', '.join(map(str, artifacts_))}"
                               + (" (the task artifacts skipped above are evaluated with --task align or --task link)"
                                  if tasks_found else ""))
    return tables


def _reason_task(task, artifacts_, checkpoint, splits, output, top_k, predict_top_k, no_routing, dev,
                 candidates="all", assignment=False, shortlist=None, bootstrap=0, fit_on_seeds=False) -> None:
    """``tofu reason --task align|link``: metrics per task artifact, optional top-k predictions."""
    import time

    from artifacts.metrics import write_metrics
    from artifacts.root import artifact_folders
    import copy

    from artifacts.outputs import predictions_path, write_predictions
    from reasoning_stage.reasoning import (LoadedModel, artifact_task, best_bootstrap_rounds, evaluate_task,
                                           fit_evidence, load_model, matching_problem, predict_task, read_artifacts,
                                           task_pairs, validate_bootstrap)
    from artifacts.compatibility import require_codebook_id

    tables, tasks = read_artifacts(artifact_folders(artifacts_))
    wrong = [str(t.folder) for t in tables] + [str(a.folder) for a in tasks if artifact_task(a) != task]
    if wrong:
        raise click.UsageError(f"--task {task} needs {task} task artifacts (tofu tokenize on a task folder); "
                               f"not: {', '.join(wrong)}")
    for artifact in tasks:  # a wrong --split fails before any work or output
        for split in splits:
            task_pairs(artifact, split)
    loaded = load_model(checkpoint, dev)
    require_codebook_id(tasks, loaded.codebook_id)   # before OUTPUT exists or any prediction is written
    _make_output_folder(output)
    records = []
    shared = loaded
    for artifact in tasks:
        loaded = shared
        if fit_on_seeds:   # each task's own weights, on a copy: the next task starts from the checkpoint's
            loaded = LoadedModel(copy.deepcopy(shared.model), copy.deepcopy(shared.manifest))
            loss = fit_evidence(loaded, [artifact], dev)[artifact.name]
            click.echo(f"{artifact.name}: evidence weights fitted on its seed links (training loss {loss:.4f})",
                       err=True)
        rounds = bootstrap
        if bootstrap == "auto":
            hits = validate_bootstrap(loaded, artifact, dev)
            rounds = best_bootstrap_rounds(hits)
            click.echo(f"{artifact.name}: --bootstrap auto chose {rounds} (held-out train links H@1 "
                       + ", ".join(f"{hits[c]:.4f} with {c}" for c in sorted(hits)) + ")", err=True)
        for split in splits:
            start = time.perf_counter()
            problem = matching_problem(loaded, artifact, split, dev, bootstrap=rounds)   # once for both uses
            ranks, metrics = evaluate_task(loaded, artifact, split, dev, routing=not no_routing,
                                           candidates=candidates, assignment=assignment, problem=problem)
            seconds = time.perf_counter() - start  # the ranking, as for graphs (not the interval)
            records.append({"graph": artifact.name, "split": split, "task": task, **metrics_record(ranks, metrics),
                            "seconds": round(seconds, 3), "routing": not no_routing, "candidates": candidates,
                            "assignment": assignment, "bootstrap": rounds, "fit_on_seeds": fit_on_seeds})
            if predict_top_k:
                rows = predict_task(loaded, artifact, split, top_k, dev, routing=not no_routing, shortlist=shortlist,
                                    problem=problem)
                if rows:
                    path = predictions_path(output, artifact.name, split)
                    write_predictions(rows, path)
                    for row in rows[: min(len(rows), 2 * top_k)]:
                        click.echo(f"{row['source']}\t#{row['rank']} {row['candidate']} "
                                   f"({row['candidate_name']}) {row['score']:.3f}")
                    shown = max(row["rank"] for row in rows)   # at most the candidates there are
                    click.echo(f"top {plural(shown, 'candidate')} per query: {path}")
    click.echo(metrics_table(records))
    json_path, csv_path = write_metrics(output, checkpoint, task, records)
    click.echo(f"metrics: {csv_path}, {json_path}")


def metrics_record(ranks: "Ranks", metrics: dict[str, float]) -> dict[str, float]:
    """The headline fields of one evaluated graph or task split, with the MRR's 95% interval over
    distinct queries (a graph's triples that ask the same entity and relation count once)."""
    low, high = ranks.mrr_interval()
    return {"queries": int(metrics["queries"]), "mrr": metrics["mrr"], "mrr_low": low, "mrr_high": high,
            "hits@1": metrics["hits@1"], "hits@3": metrics["hits@3"], "hits@10": metrics["hits@10"],
            "tie_gap_mrr": metrics["tie_gap_mrr"]}


def metrics_table(records) -> str:
    header = ("graph", "split", "queries", "MRR", "MRR 95%", "H@1", "H@3", "H@10", "tie gap")
    rows = [(r["graph"], r["split"], r["queries"], f"{r['mrr']:.4f}", f"{r['mrr_low']:.3f}-{r['mrr_high']:.3f}",
             f"{r['hits@1']:.4f}", f"{r['hits@3']:.4f}", f"{r['hits@10']:.4f}", f"{r['tie_gap_mrr']:.4f}")
            for r in records]
    return format_table(header, rows)


def format_table(header: tuple, rows: list[tuple]) -> str:
    """A plain-text table: the first two columns left-aligned (names), the rest right-aligned."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]

    def line(row) -> str:
        return "  ".join(str(x).ljust(w) if i < 2 else str(x).rjust(w) for i, (x, w) in enumerate(zip(row, widths)))

    return "\n".join([line(header), line(tuple("-" * w for w in widths))] + [line(r) for r in rows])


def summary_table(results) -> str:
    from pipeline.orchestrate import GraphFailure

    header = ("graph", "status", "entities", "relations", "triples", "struct tok", "text tok",
              "image tok", "img used", "img failed", "seconds")
    rows = []
    for r in results:
        if isinstance(r, GraphFailure):
            rows.append((r.name, "FAILED") + ("",) * (len(header) - 2))
            continue
        tokens = r.tokens or {}
        rows.append((r.name, r.status, r.entities, r.relations, r.triples, tokens.get("structure", 0),
                     tokens.get("text", 0) + tokens.get("relation_text", 0), tokens.get("image", 0),
                     r.images_used, r.images_failed, f"{r.seconds:.1f}"))
    return format_table(header, rows)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
