"""`ftray registry ...`: versions, aliases, pulls and upkeep of the model registry."""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from ftray.cli.base import JSON_OPTION, cli, emit, print_table, stdout
from ftray.errors import FtrayError
from ftray.results import MODEL_CARD, card_as_readme


def open_registry(ctx: click.Context) -> Any:
    from registry import Registry

    return Registry.open(ctx.obj["registry_uri"])


@cli.group("registry")
@click.option(
    "--uri",
    default=None,
    metavar="URI",
    help="s3://bucket/prefix or a directory (default: $FTRAY_REGISTRY, ~/.ftray/registry).",
)
@click.pass_context
def registry_group(ctx: click.Context, uri: str | None) -> None:
    """Versions, aliases and files of registered models."""
    ctx.obj["registry_uri"] = uri


@registry_group.command("list")
@JSON_OPTION
@click.pass_context
def list_models(ctx: click.Context, as_json: bool) -> None:
    """Registered models with their aliases."""
    registry = open_registry(ctx)
    models = [{"name": name, "aliases": registry.aliases(name)} for name in registry.models()]

    def render(rows: list[dict]) -> None:
        table = Table("model", "aliases", title=registry.uri)
        for row in rows:
            table.add_row(
                row["name"], ", ".join(f"{a} -> {v}" for a, v in sorted(row["aliases"].items()))
            )
        print_table(table)

    emit({"registry": registry.uri, "models": models}, as_json, lambda r: render(r["models"]))


@registry_group.command()
@click.argument("name")
@JSON_OPTION
@click.pass_context
def versions(ctx: click.Context, name: str, as_json: bool) -> None:
    """Every version of NAME."""
    registry = open_registry(ctx)
    rows = [summary(m) for m in registry.versions(name)]
    if not rows:
        from ftray.errors import FtrayError

        raise FtrayError(f"unknown model {name!r} in {registry.uri}")

    def render(rows: list[dict]) -> None:
        table = Table("version", "kind", "task", "size", "metric", "base", "created", title=name)
        for row in rows:
            table.add_row(
                str(row["version"]),
                row["kind"],
                row["task"] or "",
                human_bytes(row["size"]),
                row["headline"],
                row["base"] or "",
                row["created"][:19],
            )
        print_table(table)

    emit(rows, as_json, render)


def summary(manifest: Any) -> dict[str, Any]:
    metrics = manifest.metrics or {}
    headline = next(
        (f"{k} {metrics[k]:.4f}" for k in ("f1", "perplexity", "accuracy") if k in metrics), ""
    )
    base = (manifest.base or {}).get("ref") or (manifest.base or {}).get("name")
    return {
        "ref": manifest.ref,
        "version": manifest.version,
        "kind": manifest.kind,
        "task": manifest.task,
        "size": manifest.size,
        "headline": headline,
        "base": base,
        "created": manifest.created,
    }


def human_bytes(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


@registry_group.command()
@click.argument("ref")
@click.option("--card", is_flag=True, help="Print the version's model card (MODEL_CARD.md).")
@JSON_OPTION
@click.pass_context
def show(ctx: click.Context, ref: str, card: bool, as_json: bool) -> None:
    """The manifest REF (NAME:VERSION or NAME@ALIAS) resolves to, and its recorded evaluations."""
    registry = open_registry(ctx)
    manifest = registry.resolve(ref)
    if card:
        if MODEL_CARD not in manifest.files:
            raise FtrayError(
                f"{manifest.ref} has no model card (ftray writes one for what it trains)"
            )
        click.echo(registry.read_file(manifest.ref, MODEL_CARD).decode(), nl=False)
        return
    evaluations = registry.evaluations(manifest.ref)

    def render(data: dict) -> None:
        stdout.print(
            f"[bold]{manifest.ref}[/] ({data['kind']}, {data['task']}) "
            f"{human_bytes(manifest.size)} in {len(data['files'])} files"
        )
        for key in ("base", "labels", "metrics", "test_metrics", "lineage", "created"):
            if data.get(key):
                stdout.print(f"  {key}: {headline_metrics(data[key])}")
        for record in evaluations:
            scores = headline_metrics(record["metrics"])
            stdout.print(
                f"  evaluated {record['evaluated_at'][:19]} on {record['data']} "
                f"({record['rows']} rows, sha256 {record['data_sha256'][:12]}): {scores}"
            )

    emit({**asdict(manifest), "evaluations": evaluations}, as_json, render)


def headline_metrics(value: Any) -> Any:
    """A metrics dict without its per-class and per-slice tables (those are in --json)."""
    if not isinstance(value, dict) or not ({"accuracy", "f1", "val_loss"} & set(value)):
        return value
    return {
        k: round(v, 4) if isinstance(v, float) else v
        for k, v in value.items()
        if k not in ("per_class", "slices", "history")
    }


@registry_group.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--name", required=True, help="Model name to register under.")
@click.option(
    "--kind",
    default=None,
    help="A strategy's kind (full, partial, adapter, prompt or a plugin's), or base. "
    "Default: the strategy that trained it, else detected from the directory.",
)
@click.option(
    "--alias", "aliases", multiple=True, help="Point this alias at the new version (repeatable)."
)
@click.option(
    "--base",
    default="register",
    show_default=True,
    help="For adapter/prompt/partial: register | reference | a registry ref.",
)
@JSON_OPTION
@click.pass_context
def push(
    ctx: click.Context,
    directory: str,
    name: str,
    kind: str | None,
    aliases: tuple[str, ...],
    base: str,
    as_json: bool,
) -> None:
    """Register DIRECTORY (an ftray output, a transformers model or a PEFT adapter) as NAME."""
    from ftray.artefacts import register_output
    from ftray.strategies import get_strategy

    registry = open_registry(ctx)
    if kind is not None and kind != "base":
        get_strategy(kind)  # an unknown kind fails here, by name
    if kind == "base":
        manifest = registry.register(directory, name, "base", aliases=aliases)
    else:
        manifest = register_output(registry, directory, name, kind=kind, aliases=aliases, base=base)
    result = {
        **summary(manifest),
        "aliases": list(aliases),
        "bytes_uploaded": registry.bytes_uploaded,
    }
    emit(
        result,
        as_json,
        lambda r: stdout.print(
            f"registered [bold]{r['ref']}[/] ({r['kind']}, {human_bytes(r['size'])}; "
            f"{human_bytes(r['bytes_uploaded'])} uploaded)"
        ),
    )


@registry_group.command()
@click.argument("ref")
@click.argument("directory", type=click.Path(file_okay=False))
@JSON_OPTION
@click.pass_context
def pull(ctx: click.Context, ref: str, directory: str, as_json: bool) -> None:
    """Download REF into DIRECTORY (absent or empty), checking every file's sha256; its model
    card is also written as README.md."""
    registry = open_registry(ctx)
    manifest = registry.pull(ref, directory)
    card_as_readme(Path(directory))
    result = {
        **summary(manifest),
        "directory": directory,
        "bytes_downloaded": registry.bytes_downloaded,
    }
    emit(
        result,
        as_json,
        lambda r: stdout.print(
            f"pulled [bold]{r['ref']}[/] into {directory} "
            f"({human_bytes(r['bytes_downloaded'])} downloaded)"
        ),
    )


@registry_group.command()
@click.argument("ref")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option(
    "--merge",
    is_flag=True,
    help="Fold an adapter or partial version into its base: a plain transformers model.",
)
@JSON_OPTION
@click.pass_context
def export(ctx: click.Context, ref: str, directory: str, merge: bool, as_json: bool) -> None:
    """Write REF into DIRECTORY for tools without ftray: as stored (an adapter is a PEFT
    directory), or merged into its base; the model card becomes README.md."""
    from ftray.export import export_version

    done = export_version(open_registry(ctx), ref, directory, merge=merge)
    emit(
        asdict(done),
        as_json,
        lambda r: stdout.print(
            f"exported [bold]{r['ref']}[/] {'merged ' if merge else ''}into {directory} "
            f"({len(r['files'])} files)"
        ),
    )


@registry_group.command()
@click.argument("name")
@click.argument("alias")
@click.argument("version", type=int)
@JSON_OPTION
@click.pass_context
def alias(ctx: click.Context, name: str, alias: str, version: int, as_json: bool) -> None:
    """Point NAME@ALIAS at VERSION."""
    document = open_registry(ctx).set_alias(name, alias, version)
    emit(
        {"name": name, "alias": alias, **document},
        as_json,
        lambda r: stdout.print(f"{name}@{alias} -> {r['version']}"),
    )


@registry_group.command()
@click.argument("name")
@click.argument("alias")
@JSON_OPTION
@click.pass_context
def rollback(ctx: click.Context, name: str, alias: str, as_json: bool) -> None:
    """Move NAME@ALIAS back to where it pointed before its last move."""
    document = open_registry(ctx).rollback(name, alias)
    emit(
        {"name": name, "alias": alias, **document},
        as_json,
        lambda r: stdout.print(f"{name}@{alias} rolled back to {r['version']}"),
    )


@registry_group.command()
@click.argument("ref", required=False)
@JSON_OPTION
@click.pass_context
def verify(ctx: click.Context, ref: str | None, as_json: bool) -> None:
    """Check stored files against their sha256 (one version, or everything); exit 1 on damage."""
    report = open_registry(ctx).verify(ref)

    def render(r: dict) -> None:
        stdout.print(f"checked {r['versions']} versions, {r['blobs']} blobs")
        for problem in r["problems"]:
            stdout.print(f"[red]{problem}[/]")

    emit(report, as_json, render)
    if report["problems"]:
        sys.exit(1)


@registry_group.command()
@click.option("--dry-run", is_flag=True, help="List what would be deleted.")
@click.option(
    "--grace",
    type=float,
    default=3600.0,
    show_default=True,
    help="Keep unreferenced blobs younger than this many seconds (uploads in flight).",
)
@click.option(
    "--pending-ttl",
    type=float,
    default=24 * 3600.0,
    show_default=True,
    help="Take a registration that has been in flight this many seconds for dead.",
)
@JSON_OPTION
@click.pass_context
def gc(ctx: click.Context, dry_run: bool, grace: float, pending_ttl: float, as_json: bool) -> None:
    """Delete blobs that no version references."""
    report = open_registry(ctx).gc(dry_run=dry_run, grace_s=grace, pending_ttl_s=pending_ttl)
    gone = report.get("deleted", report.get("would_delete", []))
    emit(
        report,
        as_json,
        lambda r: stdout.print(
            f"{'would delete' if dry_run else 'deleted'} {len(gone)} blobs "
            f"({human_bytes(r['bytes'])}); "
            f"{r['kept_in_grace']} unreferenced kept within the grace period"
        ),
    )
