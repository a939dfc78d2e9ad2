"""sessions and restore: every session, here or kept on the remote after Claude Code's
cleanup swept it here; and bringing swept sessions back.

A session is its transcript `projects/<folder>/<id>.jsonl` and its folder
`projects/<folder>/<id>/`. A file counts as on the remote when the version every device
settles on (live beats deleted) is live there.
"""

from __future__ import annotations

import itertools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ClaudeSyncError
from ..pathmap import session_of
from ..plan import remote_rank
from ..scope import Scope, project_folder
from ..session import Listener, Session, Summary
from ..versions import maximal
from ..workspace import Workspace
from .pull import pull_over

PROMPT_LINES = 256  # transcript lines read looking for the first prompt
PROMPT_WIDTH = 60


@dataclass
class SessionRow:
    id: str
    project: str  # the project's key; its remote folder when no device recorded one
    folder: str  # its remote folder
    prompt: str | None  # the first prompt, shortened; None when not here to read
    size: int  # bytes, transcript and folder
    last_change_ns: int  # the newest mtime of any of its files
    devices: list[str]  # the devices that made its versions on the remote
    remote_only: bool  # its transcript is not here
    archived: list[str] = field(default_factory=list)  # remote paths on the remote, not here


def first_prompt(transcript: Path) -> str | None:
    """The first thing the user wrote in a session, on one line and shortened: the first
    user line whose content is text (not a tool result, not one Claude Code added)."""
    try:
        with transcript.open("rb") as file:
            for line in itertools.islice(file, PROMPT_LINES):
                text = _prompt_of(line)
                if text:
                    return shorten(text)
    except OSError:
        return None
    return None


def _prompt_of(line: bytes) -> str | None:
    try:
        row = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(row, dict) or row.get("type") != "user" or row.get("isMeta"):
        return None
    message = row.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return content.strip()
    if isinstance(content, list):
        for block in content:
            if isinstance(block, dict) and block.get("type") == "text":
                text = block.get("text")
                return text.strip() if isinstance(text, str) else None
    return None


def shorten(text: str) -> str:
    """One printable line of at most PROMPT_WIDTH characters."""
    line = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return line if len(line) <= PROMPT_WIDTH else line[: PROMPT_WIDTH - 1].rstrip() + "…"


def session_rows(session: Session, folder: str | None) -> list[SessionRow]:
    """Every session in the project at remote `folder` (None: in every project), newest
    first. A session only on the remote shows no prompt: reading it would mean fetching it."""
    view = session.remote()
    rows: dict[tuple[str, str], SessionRow] = {}

    def row(path: str) -> SessionRow | None:
        session_id = session_of(path)
        if session_id is None:
            return None
        where = path.split("/")[1]
        if folder is not None and where != folder:
            return None
        if (where, session_id) not in rows:
            project = session.paths.projects.get(where)
            rows[where, session_id] = SessionRow(
                session_id, project.key if project else where, where, None, 0, 0, [], True
            )
        return rows[where, session_id]

    for path, local in session.local.items():
        found = row(path)
        if found is not None:
            found.size += local.size
            found.last_change_ns = max(found.last_change_ns, local.mtime_ns)
    for path, versions in view.versions().items():
        found = row(path)
        live = [version for version in versions if not version.deleted]
        if found is None or max(maximal(versions), key=remote_rank).deleted:
            continue
        found.devices = sorted({*found.devices, *(view.device_name(v.device) for v in live)})
        if path not in session.local:
            newest = max(live, key=remote_rank)
            found.size += newest.size
            found.last_change_ns = max(found.last_change_ns, newest.mtime_ns)
            found.archived.append(path)
    listed = []
    for (where, session_id), found in rows.items():
        transcript = f"projects/{where}/{session_id}.jsonl"
        if transcript in session.local:
            found.remote_only = False
            found.prompt = first_prompt(session.ws.claude / session.paths.to_local(transcript))
        elif transcript not in found.archived:
            continue  # a folder whose transcript is gone everywhere: no session to resume
        listed.append(found)
    return sorted(listed, key=lambda found: (found.last_change_ns, found.id), reverse=True)


def sessions(ws: Workspace, listen: Listener, project: str | None, every: bool) -> list[SessionRow]:
    """The sessions of the project at `project` (default: the current directory's), or
    with `every` of every project."""
    session = Session(ws, listen)
    folder = None if every else project_folder(session, project or os.getcwd())
    return session_rows(session, folder)


@dataclass
class Restored:
    sessions: list[SessionRow]
    summary: Summary


def restore(
    ws: Workspace,
    listen: Listener,
    session_id: str | None = None,
    project: str | None = None,
    since_ns: int | None = None,
) -> Restored:
    """Bring back the sessions kept on the remote that the selectors given all match (a
    session id; a project's path here; a last change at or after `since_ns`).

    Each file is downloaded again with the current time as its mtime, so Claude Code's next
    cleanup does not take it at once; the state forgets that it was swept and records what
    was written, so the next push sends nothing and the next pull keeps it."""
    session = Session(ws, listen)
    folder = project_folder(session, project) if project is not None else None
    matching = [
        found
        for found in session_rows(session, folder)
        if (session_id is None or found.id == session_id)
        and (since_ns is None or found.last_change_ns >= since_ns)
    ]
    if session_id is not None and not matching:
        raise ClaudeSyncError(f"no session {session_id} here or on the remote")
    chosen = [found for found in matching if found.archived]
    paths = frozenset(path for found in chosen for path in found.archived)
    for path in paths:
        # A file kept on the remote but not here: with no base, the pull takes the remote's.
        session.state.files.pop(path, None)
    summary = pull_over(session, Scope(paths=paths), fresh=True) if paths else Summary()
    return Restored(chosen, summary)
