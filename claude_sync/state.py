"""state.json: per path, what this device last synced, and the file's stat at that moment.

    {"version": 1, "device_id": "...", "remote_root": "...",
     "last_push": "<iso>", "last_pull": "<iso>",
     "files": {"<remote path>": {"base": <manifest entry>, "size": 12, "mtime_ns": 17...,
                                  "swept": false, "publish": false, "settled": false}},
     "projects": {"<remote folder>": {"key": "~/code/app", "path": "/home/ann/code/app"}},
     "moves": {"<remote folder>": {"to": "<remote folder>", "at": 17...}},
     "publish_moves": false, "layout": "<path_map and projects settings, as JSON>",
     "numbered": {"<remote folder>": "<local folder>.2"},
     "journal_seen": {"<device id>": 41}, "own_seq": 17}

`base` is the version this device last pushed or adopted. `size`/`mtime_ns` are the local
file's stat when it matched `base`, so an unchanged file is not read again, but only when
that mtime is older than state.json's own (git's racily-clean rule: a file written in the
same clock tick as the state may have changed again unseen). `swept` marks a
transcript Claude Code removed locally: kept on the remote, not downloaded again.
`publish` marks a base that a pull settled between different contents, or where a local
edit matched the other side: the next push publishes it as a new version of this device,
even with no file to send, so that every device ends with this one outcome. `settled`
marks a conflict copy `claude-sync conflicts` removed: under a session, where a missing copy
is otherwise taken for Claude Code's cleanup, the next push still sends its tombstone.
The file is replaced atomically; an unreadable one is set aside and rebuilt by comparing hashes.
`projects` is the project table (see `projects`) as last synced: a project folder with no
path recorded in it keeps its key between runs. `rebuilding` marks a state made anew (no
state.json: a device joining, or one that lost it) until a whole pull has settled every
path: until then a local file with no entry has no known base and never outranks the
remote; after it, such a file was made here, and meets the remote's as a conflict.
`moves` are the project folders renamed on the remote (see `moves`); `publish_moves` marks
one made here that no manifest of this device carries yet. `layout` is what of this
device's config decided keys (`path_map`, `projects`) when last saved: a change re-keys.
`numbered` names the remote folders materialised here as `<name>.N`, because another had
their folder name here first. `journal_seen` is the highest journal entry read of each
device (a lower end later means the remote was rolled back); `own_seq` the last entry this
home wrote.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ClaudeSyncError
from .files import write_private
from .manifest import (
    moves_from_json,
    moves_to_json,
    projects_from_json,
    projects_to_json,
    version_from_json,
    version_to_json,
)
from .moves import Move
from .projects import Project
from .versions import Version

STATE_VERSION = 1


@dataclass
class Entry:
    base: Version
    size: int | None = None
    mtime_ns: int | None = None
    swept: bool = False
    publish: bool = False
    settled: bool = False


@dataclass
class State:
    device_id: str
    remote_root: str
    files: dict[str, Entry] = field(default_factory=dict)
    last_push: str | None = None
    last_pull: str | None = None
    saved_ns: int = 0  # the mtime of state.json as loaded: when these stats were recorded
    projects: dict[str, Project] = field(default_factory=dict)
    rebuilding: bool = False  # made anew (no state.json, or an unusable one): see below
    moves: dict[str, Move] = field(default_factory=dict)
    publish_moves: bool = False
    layout: str = ""  # what of this device's layout gave the keys last synced
    numbered: dict[str, str] = field(default_factory=dict)  # remote folder -> `<name>.N`
    journal_seen: dict[str, int] = field(default_factory=dict)  # device -> highest entry
    own_seq: int = 0  # the last entry this home wrote


def load_state(path: Path, device_id: str, remote_root: str) -> tuple[State, str | None]:
    """The state, and a warning when the file was unusable and set aside."""
    try:
        with open(path, "rb") as handle:
            saved_ns = os.fstat(handle.fileno()).st_mtime_ns
            document = json.loads(handle.read())
        if document.get("version") != STATE_VERSION:
            raise ValueError("unknown version")
        if document.get("device_id") != device_id or document.get("remote_root") != remote_root:
            return State(device_id, remote_root, rebuilding=True), None
        files = {
            name: Entry(
                base=version_from_json(name, raw["base"]),
                size=raw.get("size"),
                mtime_ns=raw.get("mtime_ns"),
                swept=bool(raw.get("swept", False)),
                publish=bool(raw.get("publish", False)),
                settled=bool(raw.get("settled", False)),
            )
            for name, raw in document["files"].items()
        }
        return State(
            device_id,
            remote_root,
            files,
            document.get("last_push"),
            document.get("last_pull"),
            saved_ns,
            projects_from_json(document.get("projects", {})),
            bool(document.get("rebuilding", False)),
            moves_from_json(document.get("moves", {})),
            bool(document.get("publish_moves", False)),
            str(document.get("layout", "")),
            _numbered(document.get("numbered", {})),
            _journal_seen(document.get("journal_seen", {})),
            int(document.get("own_seq", 0)),
        ), None
    except FileNotFoundError:
        return State(device_id, remote_root, rebuilding=True), None
    except (ValueError, KeyError, TypeError, AttributeError, ClaudeSyncError, OSError):
        aside = path.with_name("state.json.corrupt")
        path.replace(aside)
        warning = (
            f"{path} was unreadable (moved to {aside.name}); rebuilding it by comparing "
            "hashes: a copy older than the remote's version is kept in trash/, a newer one "
            "as a conflict copy"
        )
        return State(device_id, remote_root, rebuilding=True), warning


def save_state(path: Path, state: State) -> None:
    document = {
        "version": STATE_VERSION,
        "device_id": state.device_id,
        "remote_root": state.remote_root,
        "last_push": state.last_push,
        "last_pull": state.last_pull,
        "files": {
            name: {
                "base": version_to_json(entry.base),
                "size": entry.size,
                "mtime_ns": entry.mtime_ns,
                "swept": entry.swept,
                "publish": entry.publish,
                "settled": entry.settled,
            }
            for name, entry in sorted(state.files.items())
        },
        "projects": projects_to_json(state.projects),
        "rebuilding": state.rebuilding,
        "moves": moves_to_json(state.moves),
        "publish_moves": state.publish_moves,
        "layout": state.layout,
        "numbered": state.numbered,
        "journal_seen": state.journal_seen,
        "own_seq": state.own_seq,
    }
    write_private(path, json.dumps(document, separators=(",", ":")))


def _numbered(raw: object) -> dict[str, str]:
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and "/" not in k + v for k, v in raw.items()
    ):
        raise ValueError("numbered")
    return dict(raw)


def _journal_seen(raw: object) -> dict[str, int]:
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, int) for k, v in raw.items()
    ):
        raise ValueError("journal_seen")
    return dict(raw)
