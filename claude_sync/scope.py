"""Narrow runs: which remote paths a push or pull considers, and whose versions.

A narrow run plans over fewer paths and leaves every other one exactly as it was: its state,
its local file, its entry in this device's manifest. It is the same planner over a filter,
so a narrow run decides for each path it considers what a full run would decide there (or,
with `device`, what a run that saw only that device's manifest would).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import ConfigError
from .pathmap import HISTORY, session_of
from .projects import encode_project
from .versions import Version

if TYPE_CHECKING:
    from .remote_view import RemoteView
    from .session import Session


@dataclass(frozen=True)
class Scope:
    """What a run considers; a field left None does not narrow it, and the fields given
    narrow it together.

    session_id: that session's transcript and folder (in any project), and history.jsonl,
        whose lines resuming the session needs.
    folder: one project, by its remote folder.
    device: only the versions that device (by id) published.
    paths: exactly these remote paths.
    """

    session_id: str | None = None
    folder: str | None = None
    device: str | None = None
    paths: frozenset[str] | None = None

    def includes(self, path: str) -> bool:
        parts = path.split("/")
        return (
            (self.session_id is None or path == HISTORY or session_of(path) == self.session_id)
            and (self.folder is None or parts[:2] == ["projects", self.folder])
            and (self.paths is None or path in self.paths)
        )

    def views(self, view: RemoteView) -> list[Mapping[str, Version]]:
        """The device views whose versions the run weighs: every device's, or `device`'s."""
        if self.device is None:
            return [manifest.files for manifest in view.manifests.values()]
        return [view.manifests[self.device].files]


EVERYTHING = Scope()


def session_scope(session_id: str) -> Scope:
    """A run over one session; its id names a file, so it holds no `/`."""
    if not session_id or "/" in session_id or session_id in (".", ".."):
        raise ConfigError(f"--session {session_id!r} is not a session id")
    return Scope(session_id=session_id)


def project_folder(session: Session, project: str) -> str:
    """The remote folder of the project at `project` (a path on this device), found as
    Claude Code names its folder here, then through the project tables synced; ConfigError
    when no file of it is here or on the remote (a typo narrows a run to nothing)."""
    view = session.remote()  # the tables other devices published: a project only they have
    folder = session.paths.remote_folder_of(encode_project(os.path.realpath(project)))
    known = {*session.all_paths(), *view.versions()}
    if not any(path.startswith(f"projects/{folder}/") for path in known):
        raise ConfigError(
            f"no project at {project} here or on the remote (`claude-sync projects` lists them)"
        )
    return folder


def check_session_known(session: Session, session_id: str) -> None:
    """ConfigError when no file of session `session_id` is here or in the state."""
    if not any(session_of(path) == session_id for path in session.all_paths()):
        raise ConfigError(
            f"no session {session_id} here (`claude-sync sessions` lists this project's)"
        )


def device_id(view: RemoteView, name: str) -> str:
    """The id of the device `name` names, by name or id as `claude-sync devices` shows
    them; ConfigError listing the known devices when it names none, or several."""
    found = [
        device
        for device, manifest in view.manifests.items()
        if name in (device, manifest.device_name)
    ]
    if len(found) == 1:
        return found[0]
    known = ", ".join(
        f"{manifest.device_name} [{device}]"
        for device, manifest in sorted(view.manifests.items(), key=lambda kv: kv[1].device_name)
    )
    if found:
        raise ConfigError(f"several devices are named {name!r}: give its id ({known})")
    raise ConfigError(f"no device {name!r} on the remote; known: {known or 'none yet'}")
