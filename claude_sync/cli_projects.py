"""Commands about projects and sessions: projects."""

from __future__ import annotations

import json

import click

from .cli_output import table_lines, when_iso, when_text
from .locations import sync_home
from .lock import locked


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def projects(as_json: bool) -> None:
    """Every synced project: its key, its folder here, sessions, last change, devices.

    A project's key is where it lives relative to the home folder (`~/work/app`), through
    `path_map`, or its absolute path; each device keeps it under the folder Claude Code
    uses for that path there.

    \b
    claude-sync projects
    claude-sync projects --json
    """
    from .actions import projects as projects_action  # kept off the other commands' start-up
    from .workspace import load_workspace

    ws = load_workspace(sync_home())
    warnings: list[str] = []
    with locked(ws.home):
        rows = projects_action.projects(ws, lambda event: warnings.append(event.detail))
    if as_json:
        document = [
            {
                "key": row.key,
                "folder": row.folder,
                "here": row.here,
                "sessions": row.sessions,
                "last_change": when_iso(row.last_change_ns),
                "devices": row.devices,
            }
            for row in rows
        ]
        click.echo(json.dumps(document, indent=2))
        return
    for warning in warnings:
        click.echo(f"! {warning}", err=True)
    if not rows:
        click.echo("No projects synced yet.")
        return
    table = [("KEY", "SESSIONS", "LAST CHANGE", "DEVICES", "FOLDER HERE")]
    for row in rows:
        table.append(
            (
                row.key,
                str(row.sessions),
                when_text(row.last_change_ns),
                ", ".join(row.devices) or "-",
                f"projects/{row.folder}" + ("" if row.here else " (not here yet)"),
            )
        )
    for line in table_lines(table):
        click.echo(line)
