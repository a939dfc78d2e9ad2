"""Commands about single sessions: export, import."""

from __future__ import annotations

import os
from pathlib import Path

import click

from .actions import export as export_action
from .files import size_text
from .locations import sync_home
from .lock import locked
from .workspace import load_workspace


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
