"""prune: delete the objects no device's view names, in the manner of `restic prune`.

Objects are immutable and shared (equal contents are one object), so a replaced or deleted
file leaves its old objects behind, and the remote only grows. prune reads every device's
view, lists objects/ once, and deletes each object no version of any view names, except
those younger than GRACE_SECONDS: a push uploads its objects before the journal entry that names
them, so a young unnamed object may belong to a push still under way. Ages are the
remote's modification times: the server's upload time on S3, elsewhere the time the pushing
machine gave the object as it sent it (a clock an hour behind shortens the grace). A view
that cannot be read stops prune before anything is deleted: what that device needs would be
unknown.

What it cannot see: a push that began before a prune and reuses an object another device's
view named when that push started, and stopped naming since (the two devices pushed the
same bytes within the minutes of the prune). `verify` names such an object as missing.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass

from ..errors import ClaudeSyncError, RemoteFormatError
from ..files import private_folder
from ..keys import object_name
from ..remote_view import fetch_remote_view
from ..workspace import Workspace

GRACE_SECONDS = 60 * 60  # longer than a push takes from its first object to its entry


@dataclass
class Pruned:
    deleted: int = 0  # objects deleted (in a dry run: that would be)
    size: int = 0  # their bytes on the remote
    young: int = 0  # objects no view names, kept: younger than the grace period


def prune(ws: Workspace, dry_run: bool = False, grace_seconds: int = GRACE_SECONDS) -> Pruned:
    """Delete every object no device's view names and the remote dates more than
    `grace_seconds` ago; with `dry_run`, only count them."""
    try:
        view = fetch_remote_view(ws)
    except RemoteFormatError as error:
        raise ClaudeSyncError(
            f"nothing pruned (it must read every device's view): {error}"
        ) from None
    named = {object_name(ws.name_key, sha256) for sha256 in view.known_segments()}
    unnamed = {name: found for name, found in ws.remote.list_objects().items() if name not in named}
    cutoff = time.time() - grace_seconds
    doomed = sorted(name for name, found in unnamed.items() if found.modified < cutoff)
    result = Pruned(len(doomed), sum(unnamed[name].size for name in doomed))
    result.young = len(unnamed) - len(doomed)
    if doomed and not dry_run:
        folder = ws.staging / "prune"
        shutil.rmtree(folder, ignore_errors=True)
        private_folder(folder)
        try:
            ws.remote.delete_objects(folder, doomed)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return result
