"""A run of one action over a workspace: the state, the local scan, the remote view, events."""

from __future__ import annotations

import itertools
import json
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .claude_folder import empty_trash, move_folder_into
from .config import Config
from .errors import ClaudeSyncError
from .keys import object_name
from .moves import merge_moves, moved_path, moved_paths
from .pathmap import CONFLICT_COPY, DEFAULT_INCLUDE, PathMap, Rules, unmatched_patterns
from .projects import Layout, Project
from .scan import UNHASHED, LocalFile, follow_link, hash_with_stat, scan
from .state import STATE_FILE, Entry, State, load_state, save_state
from .versions import Version
from .workspace import Workspace

if TYPE_CHECKING:
    from .remote_view import RemoteView


def _file_type(path: Path) -> int | None:
    """What is at `path` (its S_IFMT bits; a link not followed), None when nothing is, 0
    when that cannot be told."""
    try:
        return stat.S_IFMT(os.lstat(path).st_mode)
    except FileNotFoundError:
        return None
    except OSError:
        return 0


class Unwritable(ClaudeSyncError):
    """A path a pull must not write through (a link to nothing usable): skipped, warned."""


@dataclass(frozen=True)
class Event:
    """Something worth telling the user; the CLI decides how (or whether) to show it."""

    kind: str  # upload, download, delete, conflict, warning, detail, note (a line of its own)
    path: str = ""
    size: int = 0
    index: int = 0
    total: int = 0
    detail: str = ""


Listener = Callable[[Event], None]


@dataclass
class Summary:
    """What a push or pull did, for the lines printed at its end."""

    uploaded: int = 0
    published: int = 0
    moves: int = 0  # project moves made here, published
    downloaded: int = 0
    deleted: int = 0
    conflicts: int = 0
    planned: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    deferred: bool = False
    pending: list[str] = field(default_factory=list)  # conflict copies in the folder after a pull
    refused: list[str] = field(default_factory=list)  # paths left: a needed object is damaged
    checked: int = 0  # push --all: the objects this device's view names, looked for on the remote
    resent: int = 0  # push --all: those missing there, sent again from this device's bytes
    unrestorable: list[str] = field(default_factory=list)  # push --all: paths whose bytes are gone


class Session:
    """One run of push or pull over a workspace (the lock is taken by the caller)."""

    def __init__(
        self,
        workspace: Workspace,
        listen: Listener,
        accept_rollback: bool = False,
        defer_hashes: bool = False,
        scan_later: bool = False,
    ) -> None:
        self.ws = workspace
        # `push --all`: this device republishes its whole view after a rollback
        self.accept_rollback = accept_rollback
        self.config = workspace.config
        self.device = workspace.config.device_id
        self.rules = Rules.from_config(self.config.include, self.config.exclude)
        self.state_path = workspace.home / STATE_FILE
        self.state, warning = load_state(workspace.home, self.device, self.config.remote_root)
        # Whether the state records earlier syncs: a file it has no entry for is then new.
        self.state_known = not self.state.rebuilding
        self._listener = listen
        self._defer_hashes = defer_hashes  # a push's scan: see `scan`
        self._folders: dict[str, Path] = {}  # local folder -> its real path (see `target`)
        self._targets: dict[str, Path] = {}  # remote path -> `target`
        self._absent_folders: set[str] = set()  # local folders `target` found missing
        self._absent: set[str] = set()  # remote paths `target` found no file at
        self.folders_seen: set[str] = set()  # local folders a pull found are folders: `make_way`
        # With `scan_later` the Claude folder is scanned only when `scan_folder` is called (a
        # pull that finds nothing new on the remote needs no scan: see `actions.pull`).
        self.scanned = False
        self._scan_later = scan_later
        self._open(self.state.projects)
        if warning:
            self.listen(Event("warning", detail=warning))
        self._remote: RemoteView | None = None
        # Paths a pull planned an action for and left as they were: it settles nothing.
        self.left: set[str] = set()

    def listen(self, event: Event) -> None:
        """Tell the listener `event`, its path as the user knows it (a local path)."""
        self._listener(
            Event(
                event.kind,
                self.paths.to_local(event.path),
                event.size,
                event.index,
                event.total,
                event.detail,
            )
        )

    def _open(self, known: dict[str, Project]) -> None:
        """Map this device's project folders (moving what belongs in another folder here),
        read every path through the moves known, and scan the Claude folder."""
        ws = self.ws
        self._targets.clear()  # the paths are mapped anew
        self._folders.clear()
        self._absent_folders.clear()
        self._absent.clear()
        layout = device_layout(self.config)
        changed = bool(self.state.layout) and self.state.layout != layout_fingerprint(layout)
        self.paths = PathMap(
            layout,
            ws.claude,
            known,
            self.state.moves,
            rekey=changed,
            synced_paths=self.state.files,
            numbered=self.state.numbered,
            recorded=self.state.recorded,
        )
        if self.paths.made_moves:
            for source, move in sorted(self.paths.moves.items()):
                if source not in self.state.moves:
                    self.listen(
                        Event(
                            "note",
                            detail=f"projects/{source} on the remote is now projects/{move.to} "
                            f"({self.paths.projects[move.to].key}): its key changed here",
                        )
                    )
            self.state.moves, self.state.publish_moves = self.paths.moves, True
        moves = self.state.moves
        # Once every path has moved (the first run that knows the moves), none is rewritten.
        if moves and any(moved_path(moves, path) != path for path in self.state.files):
            moved = moved_paths(moves, self.state.files)
            self.state.files.clear()
            self.state.files.update(moved)
        for placeholder, own in self.paths.placeholders():
            moved = move_folder_into(
                ws.claude / "projects" / placeholder,
                ws.claude / "projects" / own,
                ws.trash,
                f"projects/{placeholder}",
            )
            self.listen(
                Event(
                    "note",
                    detail=f"moved {moved} {'file' if moved == 1 else 'files'} of "
                    f"projects/{placeholder} into projects/{own}, where Claude Code keeps "
                    "that project's sessions here",
                )
            )
        if self.scanned or not self._scan_later:
            self.scan_folder()

    def scan_folder(self) -> None:
        """Scan the Claude folder through the current path map (see `scan.scan`)."""
        scanned = scan(self.ws.claude, self.rules, self.paths, self.state, self._defer_hashes)
        self.local = scanned.files
        self.differing = scanned.differing  # see `Scan.differing`
        self.unknown = scanned.unknown  # folders that could not be read: left as they are
        self.scanned = True
        for message in scanned.warnings:
            self.listen(Event("warning", detail=message))
        added = [p for p in dict.fromkeys(self.config.include) if p not in DEFAULT_INCLUDE]
        self._unmatched = unmatched_patterns(added, itertools.chain(self.local, self.state.files))

    # remote ------------------------------------------------------------------

    def remote(self) -> RemoteView:
        if self._remote is None:
            # Imported here, not above: a run with nothing to send reads no remote.
            from .remote_view import fetch_remote_view

            self.use_remote(fetch_remote_view(self.ws))
        assert self._remote is not None
        return self._remote

    def use_remote(self, view: RemoteView) -> None:
        """Read the remote through `view`: check its journal, learn its projects, and read
        every path through the moves it publishes. `remote()` fetches the whole remote;
        `verify --repair` hands the views it could read."""
        self._remote = view
        for name in view.strays:
            self.listen(
                Event(
                    "warning",
                    detail=f"{name} on the remote is not an entry claude-sync wrote "
                    "(a sync client's copy?): ignored",
                )
            )
        self.check_journal(view)
        manifests = view.manifests.values()
        self.paths.learn(
            (folder, project)
            for manifest in manifests
            for folder, project in manifest.projects.items()
        )
        moves = merge_moves(self.state.moves, *(manifest.moves for manifest in manifests))
        if moves != self.state.moves:
            self.state.moves = moves
            self._open(self.paths.projects)
        if moves:
            for manifest in manifests:
                manifest.files = moved_paths(moves, manifest.files)

    def check_journal(self, view: RemoteView) -> None:
        """Refuse a journal that went back, and a copy of this home writing as this device.

        A device's entries only grow: an end below the highest entry seen here means the
        remote was restored from an older state, which would bring back what was since
        deleted or changed. A device with no entries left was forgotten. Entries of this
        device written by another home instance (see `instance`) after this one's last
        mean two machines write as one device: the younger instance (the copy) stops."""
        for device_id, seen in sorted(self.state.journal_seen.items()):
            last = view.last_seq(device_id)
            if last and last < seen and not (device_id == self.device and self.accept_rollback):
                name = view.device_name(device_id)
                raise ClaudeSyncError(
                    f"the remote was rolled back for device {name}: its journal ends at entry "
                    f"{last}, and entry {seen} was seen here. If the remote was restored from "
                    f"a backup on purpose, run `claude-sync push --all` on {name}; otherwise "
                    "restore the remote's journal/ folder"
                )
        from .instance import load_instance  # see `remote`

        instance = load_instance(self.ws.home)
        foreign = [
            entry
            for entry in view.entries.get(self.device, [])
            if entry.seq > self.state.own_seq and entry.instance_id != instance.id
        ]
        if self.state.own_seq and any(e.instance_created < instance.created for e in foreign):
            raise ClaudeSyncError(
                f"another machine writes as this device ({self.config.device_name}) and this "
                f"home is the later copy (was {self.ws.home} copied?): move "
                f"{self.ws.home}/config.yaml aside and run `claude-sync init --force` to give "
                "this machine its own id"
            )
        if self.state.own_seq and self.device not in view.entries and not self.accept_rollback:
            # Pushing on would publish this state's versions, whose objects `prune` may
            # have deleted since the device was forgotten.
            raise ClaudeSyncError(
                f"this device ({self.config.device_name}) pushed last at "
                f"{self.state.last_push}, but the remote holds nothing it pushed: it was "
                "retired with `claude-sync devices forget`, or the remote was reset; to "
                f"sync here again, remove {self.state_path} (the files here are then "
                "compared with the remote's, as on a new device), or run `claude-sync push "
                "--all` if the remote lost its journal"
            )
        for device_id in view.entries:
            seen = self.state.journal_seen.get(device_id, 0)
            self.state.journal_seen[device_id] = max(seen, view.last_seq(device_id))
        for device_id in set(self.state.journal_seen) - set(view.entries):
            del self.state.journal_seen[device_id]  # forgotten: no entries left

    def warn_unmatched_includes(self, remote: RemoteView | None = None) -> None:
        """Name each pattern the user added to sync.include that matches no file here, in
        the state, or on the `remote`: a typo there syncs nothing, silently otherwise."""
        # Lazily: with every pattern matched already, no remote path is looked at.
        remote_paths = (
            path
            for manifest in (remote.manifests if remote else {}).values()
            for path in manifest.files
        )
        for pattern in unmatched_patterns(self._unmatched, remote_paths):
            self.listen(
                Event(
                    "warning",
                    detail=f"`sync.include` pattern `{pattern}` in "
                    f"{self.ws.home / 'config.yaml'} matches no file, here or synced (a typo?)",
                )
            )

    def empty_trash(self) -> None:
        """Remove the trash/ folders older than `trash.keep_days`: every push and pull does,
        before it moves anything there, so trash/ does not grow without end."""
        removed = empty_trash(self.ws.trash, self.config.trash_keep_days)
        if removed:
            self.listen(
                Event(
                    "note",
                    detail=f"removed {removed} {'folder' if removed == 1 else 'folders'} "
                    f"of {self.ws.trash} older than {self.config.trash_keep_days} days "
                    "(trash.keep_days)",
                )
            )

    def object_name(self, sha256: str) -> str:
        return object_name(self.ws.name_key, sha256)

    # local paths -------------------------------------------------------------

    def target(self, path: str) -> Path:
        """The file a remote path is read from and written to. Symbolic links the user made
        in the Claude folder (CLAUDE.md into a dotfiles repository, projects/ on another
        disk) are followed: a pull writes into what a link points at, never over the link.
        Raises Unwritable for a link to nothing, to a special file, or to what another
        user owns. A folder is resolved once per run (a pull writes thousands of files
        into a few hundred folders), and so is a path: a pull asks for each of its files
        as it plans, assembles and applies it."""
        known = self._targets.get(path)
        if known is not None:
            return known
        self._targets[path] = file = self._target(path)
        return file

    def found_absent(self, path: str) -> bool:
        """Whether `target` found no file at `path` (nor its folder) when it resolved it: a
        pull making a temporary to rename there need not look there again for a mode to
        keep."""
        return path in self._absent

    def _target(self, path: str) -> Path:
        local = self.paths.to_local(path)
        folder, _, name = local.rpartition("/")
        file = self._resolve(local, folder) / name
        # Nothing is in a folder that is not there
        kind = None if folder in self._absent_folders else _file_type(file)
        if kind is None:
            self._absent.add(path)
            return file
        if kind == stat.S_IFLNK:
            followed, why = follow_link(file)  # the scan's rule, so both agree
            if followed is None:
                raise Unwritable(f"{local}: {self.ws.claude / local} is {why}; left as it is")
            return Path(os.path.realpath(file))
        return file

    def _resolve(self, local: str, folder: str) -> Path:
        """The real path of `folder` (of the Claude folder, "" for itself), every link on
        the way checked as `target` says; `local` is the path it is resolved for. Each
        folder is resolved once a run, from its parent's real path: a folder that is not a
        link is its parent's real path and its name."""
        resolved = self._folders.get(folder)
        if resolved is not None:
            return resolved
        if not folder:
            resolved = Path(os.path.realpath(self.ws.claude))
        else:
            parent, _, name = folder.rpartition("/")
            resolved = self._resolve(local, parent) / name
            kind = None if parent in self._absent_folders else _file_type(resolved)
            if kind is None:
                self._absent_folders.add(folder)
            elif kind == stat.S_IFLNK:
                followed, why = follow_link(resolved)
                if followed is None:
                    raise Unwritable(f"{local}: {self.ws.claude / folder} is {why}; left as it is")
                resolved = Path(os.path.realpath(resolved))
        self._folders[folder] = resolved
        return resolved

    def unchanged_since_scan(self, path: str, file: Path) -> bool:
        seen = self.local.get(path)
        try:
            info = file.stat(follow_symlinks=False)
        except FileNotFoundError:
            return seen is None
        return seen is not None and (info.st_size, info.st_mtime_ns) == (
            seen.size,
            seen.mtime_ns,
        )

    def record(self, path: str, base: Version, file: Path | None) -> None:
        size = mtime_ns = None
        if file is not None and not base.deleted:
            info = file.stat()
            size, mtime_ns = info.st_size, info.st_mtime_ns
        self.state.files[path] = Entry(base, size, mtime_ns)

    def pending_conflicts(self, created: list[str]) -> list[str]:
        """The conflict copies in the Claude folder now, as local paths: those the scan
        found (if it ran) or the state records, and `created` (made since the scan, or known
        otherwise), that still exist."""
        found = self.local if self.scanned else ()
        known = {
            self.paths.to_local(path)
            for path in itertools.chain(found, self.state.files)
            if CONFLICT_COPY.search(path)
        }
        return sorted(p for p in known | set(created) if (self.ws.claude / p).is_file())

    def save(self) -> None:
        self.state.projects = self.paths.published(self.state.files)
        self.state.layout = layout_fingerprint(self.paths.layout)
        self.state.numbered = self.paths.numbered()
        self.state.recorded = self.paths.recorded.seen
        save_state(self.ws.home, self.state)

    def hash_deferred(self, remote: dict[str, list[Version]]) -> None:
        """Hash the files the scan left UNHASHED that a remote version of the same size
        could equal: whether the bytes are already there decides what a push does."""
        for path, local in list(self.local.items()):
            if local.sha256 != UNHASHED:
                continue
            if any(v.size == local.size for v in remote.get(path, []) if not v.deleted):
                try:
                    self.local[path] = hash_with_stat(self.ws.claude / self.paths.to_local(path))
                except OSError:
                    # Gone or unreadable since the scan: as a scan would have found it then
                    # (the scan's warning for an unreadable file comes with the next run).
                    del self.local[path]
                    self.differing.discard(path)
                    entry = self.state.files.get(path)
                    if entry is not None and not entry.base.deleted:
                        self.local[path] = LocalFile(entry.base.sha256, entry.base.size, 0)

    def all_paths(self) -> set[str]:
        """Every synced path here or in the state. The scan found synced paths only, so the
        rules decide only on the state's others."""
        outside = self.state.files.outside(self.local)
        return set(self.local).union(path for path in outside if self.rules.synced(path))

    def unsettled(self) -> set[str]:
        """The paths a push may act on: a local file not known to equal its base, a synced
        path of the state with no local file, a base to publish. Any other path's file is its
        base with nothing to publish, which a push leaves as it is whatever the remote holds
        (see `decide_push`)."""
        local, synced = self.local, self.rules.synced
        paths = set(self.differing)
        paths.update(
            path for path in self.state.files.publishing() if path in local or synced(path)
        )
        paths.update(path for path in self.state.files.outside(local) if synced(path))
        return paths

    def forget_unsynced(self) -> bool:
        """Stop tracking paths the rules no longer sync (never a deletion elsewhere)."""
        unsynced = [
            path for path in self.state.files.outside(self.local) if not self.rules.synced(path)
        ]
        for path in unsynced:
            del self.state.files[path]
        return bool(unsynced)


def device_layout(config: Config) -> Layout:
    """This device's paths: its home folder, its `path_map` and its `projects` settings."""
    return Layout.of(Path.home(), config.path_map, config.project_key == "git", config.git_projects)


def path_map(ws: Workspace, state: State) -> PathMap:
    """This device's paths as last synced (a key changes only in a push or pull)."""
    return PathMap(
        device_layout(ws.config),
        ws.claude,
        state.projects,
        state.moves,
        synced_paths=state.files,
        numbered=state.numbered,
        recorded=state.recorded,
    )


def layout_fingerprint(layout: Layout) -> str:
    """What of the layout decides keys beyond the home folder: a change to it re-keys."""
    return json.dumps([layout.path_map, layout.git_everywhere, layout.git_prefixes])
