"""`ftray serve` and `ftray predict`: serving's commands, added to the `ftray` command through
the `ftray.commands` entry point (pyproject.toml), so ftray itself never imports serving."""

from __future__ import annotations

import json
import os
from typing import Any

import click

from ftray.cli.base import ADDRESS_OPTION, JSON_OPTION, cli, emit, stdout
from ftray.errors import FtrayError


@cli.command()
@click.argument("refs", nargs=-1, required=True)
@click.option(
    "--registry", default=None, metavar="URI", help="Default: $FTRAY_REGISTRY, ~/.ftray/registry."
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@ADDRESS_OPTION
@click.option(
    "--replicas", default=1, show_default=True, type=int, help="Model replicas (autoscaling floor)."
)
@click.option(
    "--max-replicas", default=None, type=int, help="Autoscale model replicas up to this many."
)
@click.option(
    "--num-cpus",
    default=1.0,
    show_default=True,
    type=float,
    help="CPUs (torch threads) per replica.",
)
@click.option(
    "--num-gpus",
    default=0.0,
    show_default=True,
    type=float,
    help="GPUs per replica; > 0 uses CUDA.",
)
@click.option(
    "--capacity", default=4, show_default=True, type=int, help="Versions kept loaded per replica."
)
@click.option(
    "--max-batch-size", default=16, show_default=True, type=int, help="1 turns batching off."
)
@click.option(
    "--batch-wait-ms",
    default=1.0,
    show_default=True,
    type=float,
    help="How long a batch waits to fill, under load (a lone request never waits).",
)
@click.option(
    "--poll-interval",
    "poll_interval_s",
    default=10.0,
    show_default=True,
    type=float,
    help="Seconds between alias checks.",
)
@click.option(
    "--token",
    default=lambda: os.environ.get("FTRAY_SERVE_TOKEN"),
    help="Require this bearer token (default: $FTRAY_SERVE_TOKEN).",
)
@click.pass_context
def serve(ctx: click.Context, refs: tuple[str, ...], address: str | None, **options: Any) -> None:
    """Serve registry versions REFS (NAME:VERSION or NAME@ALIAS) over HTTP until interrupted."""
    from serving.launch import replica_urls, serve_forever

    def ready(url: str) -> None:
        click.echo(f"serving {', '.join(refs)} at {url} (Ctrl-C stops)", err=True)
        direct = replica_urls(options["host"])
        if direct:
            click.echo(f"replicas answering directly: {', '.join(direct)}", err=True)

    serve_forever(
        list(refs), on_ready=ready, address=address, verbose=ctx.obj["verbose"], **options
    )


@cli.command()
@click.argument("ref")
@click.argument("inputs", nargs=-1, required=True)
@click.option(
    "--url", default="http://127.0.0.1:8000", show_default=True, help="The ftray endpoint."
)
@click.option("--token", default=lambda: os.environ.get("FTRAY_SERVE_TOKEN"), help="Bearer token.")
@click.option(
    "--local",
    is_flag=True,
    help="Answer in this process (no endpoint, no Ray); REF may also be a run's output directory.",
)
@click.option(
    "--registry", default=None, metavar="URI", help="With --local: the registry (default: local)."
)
@JSON_OPTION
def predict(
    ref: str,
    inputs: tuple[str, ...],
    url: str,
    token: str | None,
    local: bool,
    registry: str | None,
    as_json: bool,
) -> None:
    """Ask the endpoint at --url (or, with --local, this process) what model REF says about
    INPUTS."""
    if registry and not local:
        raise FtrayError("--registry: only with --local (an endpoint reads its own registry)")
    if local:
        from ftray.evaluate import predict as predict_here

        emit(predict_here(ref, inputs, registry).to_dict(), as_json, render_prediction)
        return
    from serving.client import Unreachable
    from serving.client import predict as ask

    try:
        result = ask(url, ref, list(inputs), token)
    except Unreachable as error:
        raise FtrayError(
            f"{error} (start `ftray serve {ref}`, or answer here with --local)"
        ) from None
    emit(result, as_json, render_prediction)


def render_prediction(result: dict[str, Any]) -> None:
    stdout.print(f"[bold]{result['model']}[/] ({result['task']})")
    for output in result["outputs"]:
        if "label" in output:
            scores = ", ".join(f"{k} {v:.3f}" for k, v in output["scores"].items())
            stdout.print(f"  {output['label']}  ({scores})")
        elif "entities" in output:
            spans = ", ".join(
                f"{e['text']!r} {e['type']} [{e['start']}:{e['end']}]" for e in output["entities"]
            )
            stdout.print(f"  {spans or 'no entities'}")
        else:
            stdout.print(f"  {json.dumps(output['completion'])}")
