"""Commands about sessions: sessions, restore (kept after Claude Code forgets them),
export, import (one session as one encrypted file). Each imports its action in its body,
so that the CLI's other commands do not load them."""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path

import click

from .cli_output import Printer, count, exit_after_pull, table_lines, when_iso, when_text
from .errors import ConfigError
from .files import size_text
from .locations import sync_home
from .lock import locked


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
    from .actions import sessions as sessions_action
    from .workspace import load_workspace

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
                "last_change": when_iso(row.last_change_ns),
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
    for line in table_lines(table):
        click.echo(line)


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
    from .actions import sessions as sessions_action
    from .workspace import load_workspace

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
    exit_after_pull(restored.summary)


@click.command()
@click.argument("session_id")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The file to write (default: ./SESSION_ID.claude-session.age).",
)
@click.option(
    "--to",
    "recipient",
    metavar="RECIPIENT",
    help="An age public key (age1...) to encrypt to (default: this device's key).",
)
def export(session_id: str, output: Path | None, recipient: str | None) -> None:
    """Write one session (transcript and its folder) as one encrypted file.

    The file is encrypted to this device's key, or with --to to a colleague's public key
    (theirs from `claude-sync key show`); `claude-sync import` installs it there.

    \b
    claude-sync export 0b6f3c1e-... -o session.age
    claude-sync export 0b6f3c1e-... --to age1ql3z7hjy54pw3hyww5...  # a colleague's key
    """
    from .actions import export as export_action
    from .workspace import load_workspace

    ws = load_workspace(sync_home())
    done = export_action.export_session(ws, session_id, output, recipient)
    for skipped in done.skipped:
        click.echo(f"! left out {skipped}: not a regular file or folder", err=True)
    to = "this device's key" if recipient is None else recipient
    click.echo(
        f"✓ Exported session {done.header.session} (project {done.header.project_key}, "
        f"{done.files} files, {size_text(done.size)}) to {done.path}, encrypted to {to}."
    )


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--cwd",
    type=click.Path(exists=True, file_okay=False),
    help="The project's folder on this machine (default: the current directory).",
)
@click.option(
    "--overwrite", is_flag=True, help="Replace a different session with this id (kept in trash/)."
)
def import_(file: Path, cwd: str | None, overwrite: bool) -> None:
    """Install a session from `claude-sync export` under the project for --cwd.

    Claude Code then resumes it there (`claude --resume ID`); the next `claude-sync push`
    sends it like any new session.

    \b
    claude-sync import session.age --cwd ~/code/app
    claude-sync import session.age --overwrite
    """
    from .actions import export as export_action
    from .workspace import load_workspace

    ws = load_workspace(sync_home())
    with locked(ws.home):
        done = export_action.import_session(ws, file, cwd or os.getcwd(), overwrite)
    header = done.header
    origin = f"from {header.device}, project {header.project_key}, exported {header.created}"
    if done.outcome == "identical":
        click.echo(f"Session {header.session} is here already, identical: nothing to do.")
        return
    click.echo(f"✓ Imported session {header.session} ({origin}) into projects/{done.folder}.")
    for kept in done.trashed:
        click.echo(f"  the one it replaced is kept in {kept}")
    click.echo(f"Resume it with `claude --resume {header.session}` in that folder.")
