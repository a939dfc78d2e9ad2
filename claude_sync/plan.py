"""The sync semantics, pure: local scan x state x remote manifests -> actions. No I/O.

Per path three versions meet: local (on disk), base (the state: what this device last
synced) and the remote versions (one per device manifest that names the path).

- Remote versions whose vector is <= base's are old news: nothing to do.
- Local unchanged and something newer: settle over the published versions (every device's
  manifest) alone, so that every device settles alike: one dominant version is taken
  (download, or trash on a tombstone); concurrent ones go to `resolve`.
- Local changed, nothing newer remotely: upload (a push's job).
- Local changed and something newer: identical contents are adopted; otherwise `resolve`
  decides, after the pull has fetched their bytes, so that a byte-prefix can be recognised:
  identical contents merge, in an append-only file (a transcript, history.jsonl) a version
  that is a prefix of another gives way to the longer one (in any other file it is a
  truncation: an edit), deletions give way to contents, diverged transcripts and
  history.jsonl are merged by lines (see `merges`), and any other difference is a real
  conflict. In a real conflict a local change wins on its
  own device (the others are saved beside it, the next push supersedes them); among remote
  versions every device picks the same winner: the latest mtime, then the device id, then
  the hash. What a pull settles between different contents (and a local change that matched
  the other side) is published by the next push as a new version of this device, which
  supersedes what it settled on every device; settling identical contents needs no new
  version, so devices that settle alike do not publish back and forth.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .pathmap import is_append_only, is_swept_with_session
from .scan import LocalFile, differs
from .state import Entry
from .versions import Version, VersionVector, maximal, merge_all


@dataclass(frozen=True)
class Adopt:
    """Local already holds this version's content: only record it as the base.

    publish: the local file was changed here and happens to match; the next push publishes
    it as this device's version (see `Entry.publish`).
    """

    path: str
    version: Version
    publish: bool = False


@dataclass(frozen=True)
class Download:
    """The remote's version won: bring it into the local file."""

    path: str
    version: Version


@dataclass(frozen=True)
class Trash:
    """A tombstone won: move the local file to trash/."""

    path: str
    version: Version


@dataclass(frozen=True)
class Resolve:
    """Concurrent versions; `pending` is the local change, if any, with its would-be vector."""

    path: str
    options: tuple[Version, ...]
    pending: Version | None
    pending_yields: bool = False  # the local change has no known base: it never wins


@dataclass(frozen=True)
class Upload:
    """The local file won: send it as a new version."""

    path: str
    local: LocalFile
    base: Version | None
    vector: VersionVector


@dataclass(frozen=True)
class Tombstone:
    """The local file was deleted: publish its deletion."""

    path: str
    base: Version
    vector: VersionVector


@dataclass(frozen=True)
class Publish:
    """No new bytes, but a base settled here becomes this device's version on the remote."""

    path: str
    base: Version
    vector: VersionVector


@dataclass(frozen=True)
class Sweep:
    """A session file (or a conflict copy of one) Claude Code removed locally: keep it on
    the remote, stop tracking it."""

    path: str


PullAction = Adopt | Download | Trash | Resolve
PushAction = Upload | Tombstone | Publish | Sweep | Adopt


def _base(entry: Entry | None) -> Version | None:
    return entry.base if entry is not None else None


def _same_as_local(version: Version, local: LocalFile | None) -> bool:
    if local is None:
        return version.deleted
    return not version.deleted and (version.sha256, version.size) == (local.sha256, local.size)


def local_changed(path: str, local: LocalFile | None, entry: Entry | None) -> bool:
    if local is not None:
        return differs(local, entry)
    if entry is None or entry.base_deleted or entry.swept:
        return False
    # Claude Code's cleanup is no deletion; `claude-sync conflicts` settling a copy is.
    return not is_swept_with_session(path) or entry.settled


def own_counter(remote: list[Version], device: str) -> int:
    return max((version.vector.get(device) for version in remote), default=0)


def pending_version(
    path: str, local: LocalFile | None, entry: Entry | None, remote: list[Version], device: str
) -> Version:
    """The version a push of the local state would create."""
    base = _base(entry)
    vector = (base.vector if base else VersionVector()).bump(device, own_counter(remote, device))
    if local is None:
        return Version("", 0, 0, vector, device, deleted=True)
    return Version(local.sha256, local.size, local.mtime_ns, vector, device)


def _already_remote(local: LocalFile | None, remote: list[Version]) -> Version | None:
    """With no state for a path, the remote versions holding the local bytes, as one base."""
    same = [version for version in remote if _same_as_local(version, local)]
    if local is None or not same:
        return None
    return same[0].with_vector(merge_all(version.vector for version in same))


def _take(path: str, winner: Version, local: LocalFile | None) -> PullAction:
    if _same_as_local(winner, local):
        return Adopt(path, winner)
    if winner.deleted:
        return Trash(path, winner)
    return Download(path, winner)


def decide_pull(
    path: str,
    local: LocalFile | None,
    entry: Entry | None,
    remote: list[Version],
    device: str,
    state_known: bool = False,
) -> PullAction | None:
    """What a pull does for `path`. `state_known`: the state records earlier syncs, so a
    local file it has no entry for was made here since (a file made on two devices meets
    as a conflict); otherwise this device does not know its base (see `_without_base`)."""
    base = _base(entry)
    inferred = None if base is not None else _already_remote(local, remote)
    if inferred is not None:
        base, entry = inferred, Entry(inferred)
    newer = [version for version in remote if base is None or not version.vector <= base.vector]
    if not newer:
        return Adopt(path, inferred) if inferred is not None else None
    if base is None and local is not None and not is_append_only(path) and not state_known:
        return _without_base(path, local, remote, device)
    if not local_changed(path, local, entry):
        return _settle(path, local, base, remote)
    options = maximal(newer)
    pending = pending_version(path, local, entry, remote, device)
    if all(option.same_content(pending) for option in options):
        vectors = [o.vector for o in options] + [pending.vector]
        winner = max(options, key=remote_rank).with_vector(merge_all(vectors))
        # Only when the published versions still disagree could others settle elsewhere.
        settled = all(version.same_content(pending) for version in maximal(remote))
        return Adopt(path, winner, publish=not settled)
    return Resolve(path, tuple(options), pending)


def _without_base(
    path: str, local: LocalFile, remote: list[Version], device: str
) -> PullAction | None:
    """A local copy whose base this device does not know (the state lost, a device
    joining with files of its own) never outranks what the remote holds: one no newer than
    the remote's newest version is taken for stale and yields as an unchanged file would
    (kept in trash/); a newer one may be an edit, and is kept as a conflict copy beside the
    remote's version. (Append-only files need neither: their versions merge.)"""
    newest = max(maximal(remote), key=remote_rank)
    if local.mtime_ns <= newest.mtime_ns:
        return _settle(path, local, None, remote)
    pending = pending_version(path, local, None, remote, device)
    return Resolve(path, tuple(maximal(remote)), pending, pending_yields=True)


def _settle(
    path: str, local: LocalFile | None, base: Version | None, remote: list[Version]
) -> PullAction:
    """Local unchanged and something newer: settle over the published versions only, so
    that every device settles alike."""
    options = maximal(remote)
    if len(options) == 1 or all(o.same_content(options[0]) for o in options):
        winner = max(options, key=remote_rank)
        seen = [o.vector for o in options] + ([base.vector] if base is not None else [])
        return _take(path, winner.with_vector(merge_all(seen)), local)
    return Resolve(path, tuple(options), None)


def decide_push(
    path: str, local: LocalFile | None, entry: Entry | None, remote: list[Version], device: str
) -> PushAction | None:
    if not local_changed(path, local, entry):
        if local is None and entry is not None and not entry.swept and not entry.base_deleted:
            return Sweep(path)
        if entry is not None and entry.publish:
            if any(not version.vector <= entry.base.vector for version in remote):
                # Something newer arrived since the pull settled (another device's choice,
                # `conflicts --keep`): publishing the settlement now would compete with it.
                # The next pull settles again, and publishes if it must.
                return None
            vector = entry.base.vector.bump(device, own_counter(remote, device))
            return Publish(path, entry.base, vector)
        return None
    inferred = None if entry is not None else _already_remote(local, remote)
    if inferred is not None:  # already on the remote (a lost state): record, send nothing
        return Adopt(path, inferred)
    if entry is None and remote:  # no base: a pull settles it (see decide_pull)
        return None
    pending = pending_version(path, local, entry, remote, device)
    if local is None:
        assert entry is not None
        return Tombstone(path, entry.base, pending.vector)
    return Upload(path, local, _base(entry), pending.vector)


def remote_rank(version: Version) -> tuple[bool, int, str, str]:
    return (not version.deleted, version.mtime_ns, version.device, version.sha256)


@dataclass(frozen=True)
class Resolution:
    """What `resolve` decided for one path.

    winner: the version to keep in place (None: merge `merged_inputs` line by line).
    losers: versions to save beside it as conflict copies.
    vector: every vector seen, the pending one included (base for the next push).
    keep_local: the winner is the local change, which the next push uploads.
    """

    winner: Version | None
    losers: tuple[Version, ...]
    vector: VersionVector
    keep_local: bool
    merged_inputs: tuple[Version, ...] = ()


def resolve(
    path: str,
    options: tuple[Version, ...],
    pending: Version | None,
    is_prefix: Callable[[Version, Version], bool],
    pending_yields: bool = False,
) -> Resolution:
    """Decide between concurrent versions; is_prefix(a, b): a's bytes are a prefix of b's.
    With `pending_yields` the local change never wins: at most it is a conflict copy."""
    everything = list(options) + ([pending] if pending is not None else [])
    vector = merge_all(version.vector for version in everything)
    live = [version for version in everything if not version.deleted]
    if not live:
        return Resolution(max(options, key=remote_rank), (), vector, keep_local=False)
    distinct: list[Version] = []
    for version in sorted(live, key=lambda v: (v is not pending, remote_rank(v)), reverse=False):
        if not any(version.same_content(kept) for kept in distinct):
            distinct.append(version)
    # Only an append-only file grows by appends alone: elsewhere a shorter prefix (a
    # truncated CLAUDE.md, an emptied settings.json) is an edit of its own.
    survivors = [
        version
        for version in distinct
        if not is_append_only(path)
        or not any(other.size > version.size and is_prefix(version, other) for other in distinct)
    ]
    if pending_yields:  # the pending version was never published: its vector says nothing
        others = [version for version in survivors if version is not pending]
        winner = max(others or options, key=remote_rank)
        losers = tuple(version for version in survivors if version is not winner)
        return Resolution(winner, losers, merge_all(v.vector for v in options), keep_local=False)
    if len(survivors) == 1:
        winner = survivors[0]
        return Resolution(winner, (), vector, keep_local=winner is pending)
    if is_append_only(path):
        return Resolution(None, (), vector, keep_local=True, merged_inputs=tuple(survivors))
    if pending is not None and pending in survivors:
        winner = pending
    else:
        winner = max(survivors, key=remote_rank)
    losers = tuple(version for version in survivors if version is not winner)
    return Resolution(winner, losers, vector, keep_local=winner is pending)
