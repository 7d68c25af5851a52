"""The ``tofu`` command. Heavy libraries (torch, faiss, dask) are imported inside commands."""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

import click

from artifacts.version import CODE_VERSION


class _Friendly(click.Group):
    """Known input errors become one clear line and exit code 1, never a traceback."""

    def invoke(self, ctx: click.Context):
        from artifacts.errors import ArtifactError
        from tokenizer_stage.encoders import EncoderError
        from tokenizer_stage.kg_reader import KGFormatError
        from tokenizer_stage.tokenize import CodebookMismatchError

        try:
            return super().invoke(ctx)
        except (KGFormatError, ArtifactError, EncoderError, CodebookMismatchError, FileNotFoundError) as err:
            raise click.ClickException(str(err)) from err


@click.group(cls=_Friendly)
@click.version_option(CODE_VERSION, prog_name="tofu")
def main() -> None:
    """TOFU: tokenize multimodal knowledge graphs, then reason over them zero-shot."""


@main.command()
@click.argument("graphs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "out_root", type=click.Path(path_type=Path), default=Path("tofu_artifacts"),
              show_default=True, help="Artifact root: graph NAME is written to ROOT/NAME/.")
@click.option("--codebooks", type=click.Path(path_type=Path), default=None,
              help="Use this codebook set (default: ROOT/codebooks, fitted on first use).")
@click.option("--refit-codebooks", is_flag=True, help="Fit new codebooks on these graphs (redoes every graph).")
@click.option("--force", is_flag=True, help="Redo graphs even when their artifacts are up to date.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Local Dask workers (default: min(graphs, CPUs); 1 runs in-process).")
@click.option("--scheduler", default=None, help="Address of an existing Dask distributed scheduler.")
@click.option("--text-encoder", default="minilm", show_default=True,
              help="'minilm' (shipped) or a local transformers model folder.")
@click.option("--image-encoder", default="efficientnet-lite0", show_default=True,
              help="'efficientnet-lite0' (shipped) or a local transformers vision model folder.")
@click.option("--no-text", is_flag=True, help="Skip text tokens.")
@click.option("--no-images", is_flag=True, help="Skip image tokens.")
@click.option("--tokens-per-entity", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--text-codebook-size", type=click.IntRange(min=2), default=512, show_default=True)
@click.option("--image-codebook-size", type=click.IntRange(min=2), default=256, show_default=True)
@click.option("--structure-codebook-size", type=click.IntRange(min=2), default=64, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--device", default=None, help="torch device for the encoders (default: cuda if present).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bars.")
def tokenize(graphs, out_root, codebooks, refit_codebooks, force, workers, scheduler, text_encoder,
             image_encoder, no_text, no_images, tokens_per_entity, text_codebook_size,
             image_codebook_size, structure_codebook_size, batch_size, device, seed, quiet) -> None:
    """Turn knowledge-graph folders into Parquet token tables (stage one).

    GRAPHS are KG folders, or folders holding KG folders. Graphs whose sources,
    encoders and codebooks are unchanged since the last run are skipped.
    """
    from pipeline.orchestrate import GraphFailure, discover_graph_dirs, tokenize_many
    from tokenizer_stage.encoders import EncoderSpec
    from tokenizer_stage.tokenize import TokenizerConfig

    config = TokenizerConfig(
        text_encoder=EncoderSpec("text", text_encoder, batch_size=batch_size, device=device),
        image_encoder=EncoderSpec("image", image_encoder, batch_size=max(1, batch_size // 2), device=device),
        text_codebook_size=text_codebook_size, image_codebook_size=image_codebook_size,
        structure_codebook_size=structure_codebook_size, tokens_per_entity=tokens_per_entity,
        use_text=not no_text, use_images=not no_images, seed=seed)
    graph_dirs = discover_graph_dirs(graphs)
    names = [d.name for d in graph_dirs]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise click.ClickException(f"two graphs would both be written to {out_root}/{dupes[0]}: "
                                   f"{', '.join(str(d) for d in graph_dirs if d.name in dupes)}")
    click.echo(f"tokenizing {len(graph_dirs)} graph(s) into {out_root}", err=True)

    def announce(result):
        if isinstance(result, GraphFailure):
            click.echo(f"  {result.name}: FAILED: {result.error}", err=True)
        elif result.status == "skipped":
            click.echo(f"  {result.name}: up to date, skipped", err=True)
        else:
            click.echo(f"  {result.name}: tokenized in {result.seconds:.1f}s", err=True)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore" if quiet else "default")
        results, facts = tokenize_many(graph_dirs, out_root, config, codebooks=codebooks,
                                       refit_codebooks=refit_codebooks, force=force, workers=workers,
                                       scheduler=scheduler, progress=not quiet, on_result=announce)
    click.echo(f"codebooks: {facts['codebooks']} ({facts['codebook_state']}, id {facts['codebook_id']}); "
               f"executor: {facts['executor']}; {facts['seconds']:.1f}s")
    click.echo(summary_table(results))
    failures = [r for r in results if isinstance(r, GraphFailure)]
    if failures:
        raise click.ClickException(f"{len(failures)} of {len(results)} graph(s) failed; "
                                   "their artifacts were not written")


@main.command()
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--people", type=click.IntRange(min=5), default=60, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def example(folder: Path, people: int, seed: int) -> None:
    """Write the built-in example graph (texts and drawn images) to FOLDER."""
    from pipeline.example import write_example_graph

    write_example_graph(folder, people=people, seed=seed)
    click.echo(f"example graph written to {folder}")


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
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda row: "  ".join(str(x).ljust(w) if i < 2 else str(x).rjust(w)  # noqa: E731
                                 for i, (x, w) in enumerate(zip(row, widths)))
    return "\n".join([line(header), line(tuple("-" * w for w in widths))] + [line(r) for r in rows])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
