"""Moves: project folders renamed on the remote, when a project's key changed.

A project synced under one key keeps its sessions' paths in that key's remote folder. When
the key of that project changes on the device that has it (`path_map` or `projects.key`
set after its first sync), the device records a move, `old remote folder -> new one`, and
every device publishes the moves it knows in its journal entries:

    "moves": {"-srv-app": {"to": "~-work-app", "at": 1764500000000000000}}

A device reads every path under a moved folder as the same path under the folder it moved
to: in the state, in its scan and in every device's view, so a file keeps its versions
and nothing is uploaded again. Once every device has written a snapshot, no view names the
old folder.

Moves from all devices are taken oldest first (by `at`, then by names); a move into a
folder drops any move out of it, so a key set back again returns to its old folder and no
chain of moves ever loops.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Move:
    """A project folder's move: its files are now under remote folder `to`."""

    to: str
    at: int  # nanoseconds since the epoch, on the device that made it


def merge_moves(*tables: Mapping[str, Move]) -> dict[str, Move]:
    """The moves of several tables as one, the same on every device (see above)."""
    every = sorted(
        ((move.at, source, move.to) for table in tables for source, move in table.items()),
    )
    merged: dict[str, Move] = {}
    for at, source, target in every:
        merged.pop(target, None)
        if source != target:
            merged[source] = Move(target, at)
    return merged


def final_folder(moves: Mapping[str, Move], folder: str) -> str:
    """Where the remote folder `folder` lives now, after every move out of it."""
    seen = {folder}
    while folder in moves:
        folder = moves[folder].to
        if folder in seen:  # merge_moves makes none; a table from elsewhere might
            break
        seen.add(folder)
    return folder


def moved_path(moves: Mapping[str, Move], path: str) -> str:
    """A remote path read through the moves: `projects/<old>/...` -> `projects/<new>/...`."""
    parts = path.split("/", 2)
    if len(parts) < 2 or parts[0] != "projects" or parts[1] not in moves:
        return path
    parts[1] = final_folder(moves, parts[1])
    return "/".join(parts)


def moved_paths(moves: Mapping[str, Move], items: Mapping[str, T]) -> dict[str, T]:
    """`items` keyed by moved paths. Where a path and a moved one meet, the one already
    under its folder stays: a device that had both had two files, and keeps the second
    (the other is in the first folder's local files, or on its way to trash/)."""
    result: dict[str, T] = {}
    for path, item in items.items():
        if moved_path(moves, path) == path:
            result[path] = item
    for path, item in items.items():
        result.setdefault(moved_path(moves, path), item)
    return result
