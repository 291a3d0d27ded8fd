"""The `ftray` command: a thin layer over the Python API.

Every command takes `--json` (its result as one JSON object on stdout), exits 0 on success, and
on bad input prints one line, `ftray: error: ...`, and exits non-zero (2 for usage errors).
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

import click
from rich.console import Console

from ftray.errors import USER_ERRORS
from ftray.secrets import load_secret_files

stdout = Console()


def print_table(table: Any) -> None:
    """A rich table on stdout whose cells wrap long values (paths, URLs, ids) onto more lines
    instead of cutting them with an ellipsis, so that nothing is lost on an 80-column terminal."""
    for column in table.columns:
        column.overflow = "fold"
    stdout.print(table)


JSON_OPTION = click.option(
    "--json", "as_json", is_flag=True, help="Print the result as one JSON object."
)
SET_OPTION = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a job-spec field (repeatable).",
)
ADDRESS_OPTION = click.option(
    "--address",
    default=None,
    metavar="RAY_ADDR",
    help="Ray cluster to join (default: a local Ray).",
)


def _json_default(value: Any) -> Any:
    """What json.dumps cannot write itself: a typed result (pydantic model) as its JSON data,
    anything else (paths, timestamps) as its string."""
    return value.model_dump(mode="json") if hasattr(value, "model_dump") else str(value)


def emit(result: Any, as_json: bool, render: Callable[[Any], None]) -> None:
    if as_json:
        click.echo(json.dumps(result, default=_json_default))
    else:
        render(result)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--verbose", is_flag=True, help="Show Ray's logs and full tracebacks.")
@click.version_option(package_name="ftray")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """Fine-tune models on Ray, register them, serve them."""
    ctx.obj = {"verbose": verbose}
    if verbose:
        os.environ["FTRAY_VERBOSE"] = "1"
    load_secret_files()  # a submitted job's `--secret-file`s (a no-op elsewhere)


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the command and turns every failure into one line and an exit code."""
    try:
        code = cli.main(args=argv, prog_name="ftray", standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        fail(exc.format_message(), exc.exit_code)
    except (click.Abort, KeyboardInterrupt):
        fail("interrupted", 130)
    except USER_ERRORS as exc:
        fail(str(exc), 1)
    except Exception as exc:  # a bug: still one line, the traceback on request
        if os.environ.get("FTRAY_VERBOSE"):
            traceback.print_exc()
        fail(
            f"{type(exc).__name__}: {exc} (rerun with --verbose for the traceback)".splitlines()[0],
            1,
        )


def fail(message: str, code: int) -> None:
    click.echo(f"ftray: error: {message}", err=True)
    sys.exit(code)
