"""conflicts: list conflict copies and settle them."""

from __future__ import annotations

import os
from pathlib import Path

from .. import pathmap
from ..claude_folder import keep_in_trash
from ..pathmap import CONFLICT_COPY, PathMap, Rules
from ..projects import Layout
from ..scan import hash_with_stat, walk
from ..session import path_map
from ..state import load_state, save_state
from ..workspace import Workspace


def conflict_copies(claude: Path, rules: Rules) -> list[Path]:
    """Every conflict copy in the Claude folder, found as the scan finds files (through the
    user's symbolic links), so that what a pull counts is what this lists."""
    walked = walk(claude, rules, PathMap(Layout.of(Path.home(), {})))
    return sorted(
        claude / local for local, _, _ in walked.files.values() if CONFLICT_COPY.search(local)
    )


def original_of(copy: Path) -> Path:
    return copy.with_name(pathmap.original_of(copy.name))


def keep_side(ws: Workspace, copy: Path, keep: str) -> None:
    """Settle one conflict: `local` moves the copy to trash/, `remote` puts it in place.

    Either way the copy's entry is marked settled, so the next push sends its tombstone
    even under a session's folder, where a missing copy is otherwise Claude Code's cleanup.
    When the kept copy is the version this device last adopted (the usual case: the other
    side of a conflict met at pull), the state records it, so the next push uploads
    nothing; otherwise the next scan reads the file again, and the next push sends it.
    """
    original = original_of(copy)
    state, _ = load_state(ws.home, ws.config.device_id, ws.config.remote_root)
    paths = path_map(ws, state)
    settled = state.files.get(paths.to_remote(copy.relative_to(ws.claude).as_posix()))
    changed = settled is not None
    if settled is not None:
        settled.settled = True
    if keep == "local":
        keep_in_trash(ws.trash, copy.relative_to(ws.claude).as_posix(), copy, move=True)
    else:
        if original.exists():
            keep_in_trash(ws.trash, original.relative_to(ws.claude).as_posix(), original)
        os.replace(copy, original)
        # The copy carries the loser's old mtime; the choice is made now, and must rank as
        # the newest against any concurrent version (which ties break on mtime).
        os.utime(original)
        entry = state.files.get(paths.to_remote(original.relative_to(ws.claude).as_posix()))
        if entry is not None and not entry.base.deleted:
            kept = hash_with_stat(original)
            if (kept.sha256, kept.size) == (entry.base.sha256, entry.base.size):
                entry.size, entry.mtime_ns = kept.size, kept.mtime_ns
            else:  # the kept copy may carry the very size and mtime recorded: read it again
                entry.size = entry.mtime_ns = None
            changed = True
    if changed:
        save_state(ws.home, state)
