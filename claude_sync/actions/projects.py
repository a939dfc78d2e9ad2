"""projects: every project synced, by key, with where it lives on this device."""

from __future__ import annotations

from dataclasses import dataclass

from ..pathmap import CONFLICT_COPY
from ..session import Listener, Session
from ..workspace import Workspace


@dataclass
class ProjectRow:
    key: str  # the canonical key; the remote folder name when no device recorded one
    folder: str  # its folder under projects/ on this device
    here: bool  # whether that folder exists
    sessions: int  # session transcripts, here or on the remote
    last_change_ns: int  # the newest mtime of any of its files
    devices: list[str]  # the devices that made its versions


def is_session(parts: list[str]) -> bool:
    """Whether a path, split, is a session's transcript: projects/<folder>/<id>.jsonl."""
    return len(parts) == 3 and parts[2].endswith(".jsonl") and not CONFLICT_COPY.search(parts[2])


def projects(ws: Workspace, listen: Listener) -> list[ProjectRow]:
    session = Session(ws, listen)
    view = session.remote()
    rows: dict[str, ProjectRow] = {}

    def row(remote_folder: str) -> ProjectRow:
        if remote_folder not in rows:
            project = session.paths.projects.get(remote_folder)
            folder = session.paths.local_folder_of(remote_folder)
            rows[remote_folder] = ProjectRow(
                key=project.key if project else remote_folder,
                folder=folder,
                here=(ws.claude / "projects" / folder).is_dir(),
                sessions=0,
                last_change_ns=0,
                devices=[],
            )
        return rows[remote_folder]

    sessions: dict[str, set[str]] = {}
    for path, versions in view.versions().items():
        parts = path.split("/")
        live = [version for version in versions if not version.deleted]
        if parts[0] != "projects" or len(parts) < 3 or not live:
            continue
        found = row(parts[1])
        found.last_change_ns = max(found.last_change_ns, *(v.mtime_ns for v in live))
        names = {view.device_name(version.device) for version in live}
        found.devices = sorted(set(found.devices) | names)
        if is_session(parts):
            sessions.setdefault(parts[1], set()).add(parts[2])
    for path, local in session.local.items():
        parts = path.split("/")
        if parts[0] != "projects" or len(parts) < 3:
            continue
        found = row(parts[1])
        found.last_change_ns = max(found.last_change_ns, local.mtime_ns)
        if is_session(parts):
            sessions.setdefault(parts[1], set()).add(parts[2])
    for remote_folder, names in sessions.items():
        rows[remote_folder].sessions = len(names)
    return sorted(rows.values(), key=lambda found: found.last_change_ns, reverse=True)
