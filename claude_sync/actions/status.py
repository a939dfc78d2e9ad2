"""status: what a push would send, and what a pull would bring."""

from __future__ import annotations

from dataclasses import dataclass

from ..plan import (
    Adopt,
    Download,
    Resolve,
    Tombstone,
    Trash,
    Upload,
)
from ..session import Listener, Session
from ..workspace import Workspace
from .pull import plan_pull
from .push import plan_push


@dataclass
class Status:
    device_id: str
    device_name: str
    remote: str
    last_push: str | None
    last_pull: str | None
    to_push: list[tuple[str, str, int]]
    to_pull: list[tuple[str, str, str]] | None
    conflicts: list[str]


def status(ws: Workspace, listen: Listener, with_remote: bool) -> Status:
    session = Session(ws, listen)
    to_push = []
    for action in plan_push(session, {}):
        path = action.path
        if isinstance(action, Upload):
            to_push.append((session.paths.to_local(path), "upload", action.local.size))
        elif isinstance(action, Tombstone):
            to_push.append((session.paths.to_local(path), "delete", 0))
    to_pull = None
    if not with_remote:
        session.warn_unmatched_includes()
    else:
        view = session.remote()
        session.warn_unmatched_includes(view)
        to_pull = []
        for action in plan_pull(session):
            if isinstance(action, Adopt):
                continue
            kind = {Download: "download", Trash: "delete", Resolve: "conflict"}[type(action)]
            versions = action.options if isinstance(action, Resolve) else (action.version,)
            devices = ", ".join(sorted({view.device_name(v.device) for v in versions}))
            to_pull.append((session.paths.to_local(action.path), kind, devices))
    return Status(
        session.device,
        ws.config.device_name,
        ws.config.remote_root,
        session.state.last_push,
        session.state.last_pull,
        to_push,
        to_pull,
        session.pending_conflicts([]),
    )
