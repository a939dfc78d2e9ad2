"""Commands about sessions kept after Claude Code forgets them: sessions, restore."""

from __future__ import annotations

import datetime
import json

import click

from .actions import sessions as sessions_action
from .cli_output import Printer, count
from .cli_projects import when_text
from .errors import ConfigError
from .files import size_text
from .locations import sync_home
from .lock import locked
from .workspace import load_workspace


@click.command()
@click.option(
    "--project",
    type=click.Path(file_okay=False),
    help="This project's sessions (its path here; default: the current directory's).",
)
@click.option("--all", "every", is_flag=True, help="The sessions of every project.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def sessions(project: str | None, every: bool, as_json: bool) -> None:
    """Sessions newest first: id, first prompt, size, last change, devices, and whether
    it is only on the remote (Claude Code's cleanup swept it here: `restore` brings it
    back). A session only on the remote shows no prompt: that would mean fetching it.

    \b
    claude-sync sessions
    claude-sync sessions --project ~/code/app
    claude-sync sessions --all --json
    """
    if project is not None and every:
        raise ConfigError("choose one of --project and --all")
    ws = load_workspace(sync_home())
    warnings: list[str] = []
    with locked(ws.home):
        rows = sessions_action.sessions(
            ws, lambda event: warnings.append(event.detail), project, every
        )
    if as_json:
        document = [
            {
                "id": row.id,
                "project": row.project,
                "prompt": row.prompt,
                "size": row.size,
                "last_change": when_text(row.last_change_ns),
                "devices": row.devices,
                "remote_only": row.remote_only,
            }
            for row in rows
        ]
        click.echo(json.dumps(document, indent=2))
        return
    for warning in warnings:
        click.echo(f"! {warning}", err=True)
    if not rows:
        click.echo("No sessions" + ("." if every else " in this project (--all: every project)."))
        return
    project_column = ("PROJECT",) if every else ()
    table = [("ID", "LAST CHANGE", "SIZE", "DEVICES", *project_column, "FIRST PROMPT")]
    for row in rows:
        prompt = "(only on the remote: `claude-sync restore`)" if row.remote_only else row.prompt
        table.append(
            (
                row.id,
                when_text(row.last_change_ns),
                size_text(row.size),
                ", ".join(row.devices) or "-",
                *((row.project,) if every else ()),
                prompt or "-",
            )
        )
    widths = [max(len(line[column]) for line in table) for column in range(len(table[0]) - 1)]
    for line in table:
        cells = [cell.ljust(width) for cell, width in zip(line, widths, strict=False)]
        click.echo("  ".join([*cells, line[-1]]).rstrip())


@click.command()
@click.option("--session", "session_id", metavar="ID", help="This session.")
@click.option("--project", type=click.Path(file_okay=False), help="Every session of this project.")
@click.option(
    "--since",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    metavar="YYYY-MM-DD",
    help="Every session changed on or after this day.",
)
@click.option("-q", "--quiet", is_flag=True, help="Print nothing on success.")
def restore(
    session_id: str | None,
    project: str | None,
    since: datetime.datetime | None,
    quiet: bool,
) -> None:
    """Bring back sessions Claude Code's cleanup swept here and the remote kept, with a
    fresh mtime (so the next cleanup does not take them at once); resume one with
    `claude --resume ID`. Options given together must all match.

    \b
    claude-sync restore --session 0b1c2d3e-...
    claude-sync restore --project ~/code/app
    claude-sync restore --since 2025-01-31
    """
    if session_id is None and project is None and since is None:
        raise ConfigError("say what to restore: --session ID, --project PATH or --since DATE")
    ws = load_workspace(sync_home())
    printer = Printer(quiet, verbose=False)
    since_ns = None if since is None else int(since.timestamp()) * 10**9  # local midnight
    with locked(ws.home):
        restored = sessions_action.restore(ws, printer, session_id, project, since_ns)
    if not restored.sessions:
        printer.done("✓ Nothing to restore: " + ("it is here" if session_id else "all are here"))
        return
    printer.done(
        f"✓ Restored {count(len(restored.sessions), 'session')} "
        f"({count(restored.summary.downloaded, 'file')} downloaded)"
    )
    for row in restored.sessions:
        printer.done(f"  claude --resume {row.id}  # {row.project}")
