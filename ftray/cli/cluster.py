"""`ftray submit` and `ftray jobs ...`: ftray commands as jobs on a Ray cluster."""

from __future__ import annotations

import datetime
import os
import sys
from typing import Any

import click
from rich.table import Table

from ftray.cli.base import JSON_OPTION, SET_OPTION, cli, emit, print_table, stdout

CLUSTER_OPTION = click.option(
    "--address",
    required=True,
    default=lambda: os.environ.get("RAY_ADDRESS"),
    metavar="URL",
    help="The head node's dashboard, e.g. http://HEAD:8265 (default: $RAY_ADDRESS).",
)


@cli.command()
@click.argument("job", type=click.Path(dir_okay=False))
@CLUSTER_OPTION
@click.option(
    "--command",
    type=click.Choice(["train", "tune", "compare"]),
    default="train",
    show_default=True,
)
@SET_OPTION
@click.option(
    "--env",
    multiple=True,
    metavar="NAME",
    help="Pass this environment variable to the job (repeatable); Ray stores its value with "
    "the job, visible through the dashboard's job API.",
)
@click.option(
    "--secret-file",
    "secret_files",
    multiple=True,
    metavar="NAME=PATH",
    help="Set NAME in every process of the job from PATH, a file on every node (a mounted "
    "secret); only the path is sent (repeatable).",
)
@click.option("--pip", multiple=True, metavar="REQ", help="Install this requirement for the job.")
@click.option("--wait", is_flag=True, help="Stream the job's logs; exit with its outcome.")
@JSON_OPTION
@click.pass_context
def submit(
    ctx: click.Context,
    job: str,
    address: str,
    command: str,
    overrides: tuple[str, ...],
    env: tuple[str, ...],
    secret_files: tuple[str, ...],
    pip: tuple[str, ...],
    wait: bool,
    as_json: bool,
) -> None:
    """Submit `ftray COMMAND JOB` to the Ray cluster at --address, with JOB's data."""
    from ftray import submit as jobs
    from ftray.secrets import SECRET_LIKE

    for name in env:
        if SECRET_LIKE.search(name):
            click.echo(
                f"ftray: warning: --env {name}: Ray stores its value with the job, readable "
                "through the dashboard's job API; prefer --secret-file or an instance role",
                err=True,
            )
    submitted = jobs.submit(
        job,
        address,
        command=command,
        overrides=overrides,
        env=env,
        secret_files=secret_files,
        pip=pip,
        verbose=ctx.obj["verbose"],  # `ftray --verbose submit` runs the job verbosely too
    )
    click.echo(f"submitted {submitted['job_id']} to {submitted['address']}", err=True)
    if not wait:
        emit(submitted, as_json, lambda r: stdout.print(r["job_id"]))
        return
    final = jobs.follow(address, submitted["job_id"], out=sys.stderr if as_json else sys.stdout)
    emit(final, as_json, render_job)
    sys.exit(0 if final["status"] == "SUCCEEDED" else 1)


@cli.group("jobs")
def jobs_group() -> None:
    """Jobs on a Ray cluster: list, status, logs, stop."""


@jobs_group.command("list")
@CLUSTER_OPTION
@JSON_OPTION
def list_jobs(address: str, as_json: bool) -> None:
    """Every job the cluster knows, oldest first."""
    from ftray import submit as jobs

    emit(jobs.list_jobs(address), as_json, render_jobs)


@jobs_group.command("status")
@click.argument("job_id")
@CLUSTER_OPTION
@JSON_OPTION
def job_status(job_id: str, address: str, as_json: bool) -> None:
    """One job's status."""
    from ftray import submit as jobs

    emit(jobs.status(address, job_id), as_json, render_job)


@jobs_group.command("logs")
@click.argument("job_id")
@CLUSTER_OPTION
@click.option("--follow", "-f", is_flag=True, help="Stream until the job ends.")
def job_logs(job_id: str, address: str, follow: bool) -> None:
    """A job's logs (its driver's output)."""
    from ftray import submit as jobs

    if follow:
        jobs.follow(address, job_id)
    else:
        click.echo(jobs.logs(address, job_id), nl=False)


@jobs_group.command("stop")
@click.argument("job_id")
@CLUSTER_OPTION
@JSON_OPTION
def job_stop(job_id: str, address: str, as_json: bool) -> None:
    """Ask the cluster to stop a job."""
    from ftray import submit as jobs

    emit(jobs.stop(address, job_id), as_json, render_job)


def _when(ms: int | None) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S") if ms else "-"


def render_job(job: dict[str, Any]) -> None:
    stdout.print(f"[bold]{job['job_id']}[/] {job['status']}  {job['entrypoint']}")
    if job["message"]:
        stdout.print(f"  {job['message']}")


def render_jobs(rows: list[dict[str, Any]]) -> None:
    table = Table("job", "status", "started", "ended", "entrypoint")
    for row in rows:
        table.add_row(
            row["job_id"],
            row["status"],
            _when(row["start_time"]),
            _when(row["end_time"]),
            row["entrypoint"],
        )
    print_table(table)
