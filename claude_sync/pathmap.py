"""Paths: what is synced, how remote paths are validated, and how projects move.

Remote paths are POSIX, relative, normalised, inside the synced tree. A project folder is
named after its key on the remote and after this device's path for that key here (see
`projects`): `projects/-home-ann-code-app` is `projects/~-code-app` on the remote, and a
device whose home is /Users/ann materialises it as `projects/-Users-ann-code-app`.
"""

from __future__ import annotations

import fnmatch
import itertools
import os
import re
import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import RemoteFormatError
from .moves import Move, final_folder, merge_moves
from .projects import (
    GIT_MARKER,
    HOME_MARKER,
    Layout,
    Project,
    RecordedPaths,
    encode_project,
    history_projects,
    real_path,
    recorded_path,
    remote_folder,
)

DEFAULT_INCLUDE = (
    "projects/**",
    "history.jsonl",
    "plans/",
    "CLAUDE.md",
    "settings.json",
    "agents/",
    "commands/",
    "skills/",
    "rules/",
    "output-styles/",
    "workflows/",
    "agent-memory/",
    "keybindings.json",
    "themes/",
)
DENIED_TOP_LEVEL = frozenset(
    {"ide", "session-env", "sessions", "shell-snapshots", "debug", "statsig", "backups", "cache"}
)
DENIED_NAMES = frozenset({".credentials.json"})
TEMPORARY_PREFIX = ".claude-sync-tmp-"
TEMPORARY_NAME = re.compile(r"^\.claude-sync-tmp-\d+-[0-9a-f]{8}$")


# The last part of this process's temporary names: counted from a random start, not drawn
# for each name (a pull names one for each of thousands of files, and a draw is a call into
# the kernel); the pid in the name tells processes apart.
_TEMPORARY_NUMBERS = itertools.count(int.from_bytes(os.urandom(4), "big"))


def temporary_name() -> str:
    """A short name for a file being written: the target's own name may be near the limit."""
    return f"{TEMPORARY_PREFIX}{os.getpid()}-{next(_TEMPORARY_NUMBERS) % 2**32:08x}"


# <name>.conflict-<YYYYMMDD-HHMMSS>-<device>; copies made before the extension moved inside
# the name (<stem>.conflict-...-<device>.<ext>) are recognised too.
CONFLICT_COPY = re.compile(r"\.conflict-\d{8}-\d{6}-[A-Za-z0-9_-]+(\.[^/.]*)?$")


def original_of(copy: str) -> str:
    """The path a conflict copy's name was made from."""
    match = CONFLICT_COPY.search(copy)
    assert match is not None
    return copy[: match.start()] + (match.group(1) or "")


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    if pattern.endswith("/"):
        pattern += "**"
    parts = []
    for token in re.split(r"(\*\*/?|\*|\?)", pattern):
        if token in ("**", "**/"):
            parts.append(".*")
        elif token == "*":
            parts.append("[^/]*")
        elif token == "?":
            parts.append("[^/]")
        else:
            parts.append(re.escape(token))
    return re.compile("".join(parts) + "(/.*)?", re.DOTALL)


def _whole_folders_regex(pattern: str) -> re.Pattern[str]:
    """The folders below which `pattern` matches every path: those it matches itself (see
    `_pattern_regex`), and for `X/` or `X/**` also those X matches, as todos for `todos/`."""
    if pattern.endswith("/**"):
        return _pattern_regex(pattern.removesuffix("/**"))
    return _pattern_regex(pattern.removesuffix("/"))


def _literal_start(pattern: str) -> str:
    """What every path a pattern matches begins with: the pattern up to its first wildcard."""
    return re.split(r"[*?]", pattern)[0]


def unmatched_patterns(patterns: Iterable[str], paths: Iterable[str]) -> list[str]:
    """The patterns that match none of `paths`. A path is tried against a pattern only
    when it starts with the pattern's literal beginning, and the loop ends once every
    pattern has matched: cheap next to the walk that listed the paths."""
    remaining = {
        pattern: (_literal_start(pattern), _pattern_regex(pattern)) for pattern in patterns
    }
    for path in paths:
        if not remaining:
            break
        for pattern, (prefix, regex) in list(remaining.items()):
            if path.startswith(prefix) and regex.fullmatch(path):
                del remaining[pattern]
    return list(remaining)


def _may_match_below(start: str, folder: str) -> bool:
    """Whether a pattern whose matches all begin with `start` may match some path below
    `folder`: one of the two is the beginning of the other."""
    return start.startswith(folder + "/") or (folder + "/").startswith(start)


def _denied_part(part: str) -> bool:
    return part in DENIED_NAMES or part.startswith(TEMPORARY_PREFIX)


@dataclass
class Rules:
    """Which relative paths are synced: the deny list, then excludes, then includes.

    The patterns are matched once per folder, not once per file: every pattern that matches
    a folder matches everything below it (see `_pattern_regex`), so in a folder that an
    exclude matches no file is synced, and in one an include matches, that no exclude can
    reach, every file is, but for a denied name. Only in the other folders (the top of the
    tree, and those an exclude may reach into) is each file matched on its own.
    """

    include: tuple[str, ...]
    exclude: tuple[str, ...]

    def __post_init__(self) -> None:
        self._include = [_pattern_regex(p) for p in self.include]
        self._exclude = [_pattern_regex(p) for p in self.exclude]
        self._include_folders = [_whole_folders_regex(p) for p in self.include]
        self._exclude_folders = [_whole_folders_regex(p) for p in self.exclude]
        self._include_starts = [_literal_start(p) for p in self.include]
        self._exclude_starts = [_literal_start(p) for p in self.exclude]
        self._folders: dict[str, bool | None] = {}  # folder -> folder_decision(folder)
        self._tops: dict[str, bool] = {}  # top folder -> may_enter(top)

    @classmethod
    def from_config(cls, include: list[str], exclude: list[str]) -> Rules:
        return cls(DEFAULT_INCLUDE + tuple(include), tuple(exclude))

    def synced(self, path: str) -> bool:
        """Whether `path` is synced; a conflict copy is synced when its original is."""
        folder, _, name = path.rpartition("/")
        whole = self.decided(folder)
        if whole is None:
            return self.path_synced(path)
        return whole and self.name_synced(name)

    def name_synced(self, name: str) -> bool:
        """Whether a file named `name` is synced in a folder decided True."""
        if ".conflict-" in name and CONFLICT_COPY.search(name):
            name = original_of(name)
        return name not in DENIED_NAMES and not name.startswith(TEMPORARY_PREFIX)

    def folder_decision(self, folder: str) -> bool | None:
        """True when every file directly or deeper below `folder` is synced unless its own
        name is denied (a conflict copy's: its original's), False when none is, None when
        it depends on the file."""
        if not folder:
            return None  # the top: each file there is matched by its own name
        parent, _, name = folder.rpartition("/")
        above = self.decided(parent)
        if above is not None:  # what holds for all below the parent holds for all below this
            return above and not _denied_part(name)
        parts = folder.split("/")
        if parts[0] in DENIED_TOP_LEVEL or any(map(_denied_part, parts)):
            return False
        if any(regex.fullmatch(folder) for regex in self._exclude_folders):
            return False
        if any(_may_match_below(start, folder) for start in self._exclude_starts):
            return None
        if any(regex.fullmatch(folder) for regex in self._include_folders):
            return True
        if any(_may_match_below(start, folder) for start in self._include_starts):
            return None
        return False

    def decided(self, folder: str) -> bool | None:
        """`folder_decision`, made once for each folder."""
        if folder not in self._folders:
            self._folders[folder] = self.folder_decision(folder)
        return self._folders[folder]

    def path_synced(self, path: str) -> bool:
        """`synced`, decided for `path` alone, every pattern matched against it."""
        if CONFLICT_COPY.search(path):
            path = original_of(path)
        parts = path.split("/")
        if parts[0] in DENIED_TOP_LEVEL or any(part in DENIED_NAMES for part in parts):
            return False
        if any(part.startswith(TEMPORARY_PREFIX) for part in parts):
            return False
        if any(regex.fullmatch(path) for regex in self._exclude):
            return False
        return any(regex.fullmatch(path) for regex in self._include)

    def may_enter(self, folder: str) -> bool:
        """Whether a walk should look inside `folder` (a relative folder path): only its
        top folder decides (and a denied name of its own), so each top is matched once."""
        top, _, rest = folder.partition("/")
        if rest and rest.rpartition("/")[2] in DENIED_NAMES:
            return False
        if top not in self._tops:
            self._tops[top] = (
                top not in DENIED_TOP_LEVEL
                and top not in DENIED_NAMES
                and any(
                    p.startswith(top + "/") or p == top or fnmatch.fnmatch(top, p.split("/")[0])
                    for p in self.include
                )
            )
        return self._tops[top]


def is_utf8(name: str) -> bool:
    """Whether a name read from the file system is valid UTF-8 (Python keeps the bytes of
    one that is not as lone surrogates, which no manifest, terminal or log can carry)."""
    if name.isascii():
        return True
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


WINDOWS_DRIVE = re.compile(r"[A-Za-z]:")


def is_safe_path(path: str) -> bool:
    """A relative, normalised POSIX path in UTF-8 with no way out of the tree, on any system.
    (A path with no empty, `.` or `..` part that does not start with `/` is normalised.)"""
    if not path or path[0] == "/" or "\\" in path or "\x00" in path or not is_utf8(path):
        return False
    parts = path.split("/")
    return (
        "" not in parts and "." not in parts and ".." not in parts and not WINDOWS_DRIVE.match(path)
    )


def validate_remote_path(path: object) -> str:
    """Return `path` if it is a safe relative POSIX path; raise naming it otherwise."""
    if not isinstance(path, str) or not is_safe_path(path):
        raise RemoteFormatError(f"names an unsafe path {path!r}: refused")
    return path


HISTORY = "history.jsonl"


def is_append_only(path: str) -> bool:
    """Files Claude Code only ever appends to: transcripts and history.jsonl. A version of
    one that is a byte-prefix of another is that one's past, never a conflict."""
    return path == HISTORY or (is_transcript(path) and path.endswith(".jsonl"))


def is_transcript(path: str) -> bool:
    """Session files Claude Code sweeps itself (a transcript, its session's folder): their
    local disappearance is not a deletion. A conflict copy is not one: see
    `is_swept_with_session`."""
    parts = path.split("/")
    return (
        parts[0] == "projects"
        and len(parts) >= 3
        and parts[2] != "memory"
        and not CONFLICT_COPY.search(path)
    )


def is_swept_with_session(path: str) -> bool:
    """Whether Claude Code's cleanup removes `path` with a session: a session file, or a
    conflict copy of one (it lies in the session's folder, or beside its transcript). Such
    a file missing here is swept, not deleted, unless `claude-sync conflicts` settled it
    (`Entry.settled`)."""
    return is_transcript(original_of(path) if CONFLICT_COPY.search(path) else path)


def session_of(path: str) -> str | None:
    """The id of the session a remote or local path belongs to: its transcript
    `projects/<folder>/<id>.jsonl`, anything in its folder `projects/<folder>/<id>/`, or a
    conflict copy of either; None for any other path."""
    if not is_swept_with_session(path):
        return None
    parts = path.split("/")
    if len(parts) > 3:
        return parts[2]
    name = original_of(parts[2]) if CONFLICT_COPY.search(parts[2]) else parts[2]
    return name[: -len(".jsonl")] if name.endswith(".jsonl") else None


def _session_entry(name: str) -> bool:
    """Whether an entry of a project folder is a session's (its transcript, its folder, or
    a conflict copy of either): everything but `memory/`."""
    return _original_name(name) != "memory"


def _session_id(name: str) -> str:
    name = _original_name(name)
    return name[: -len(".jsonl")] if name.endswith(".jsonl") else name


def _original_name(name: str) -> str:
    """The name a conflict copy's name was made from; any other name as it is. (Looked for
    in every entry of every project folder: the text test first, the pattern only then.)"""
    return original_of(name) if ".conflict-" in name and CONFLICT_COPY.search(name) else name


def _sessions_synced(paths: Iterable[str], moves: Mapping[str, Move]) -> dict[str, set[str]]:
    """Session id -> the remote folders (after `moves`) that `paths` hold its files in."""
    synced: dict[str, set[str]] = {}
    for path in paths:
        parts = path.split("/", 3)
        if len(parts) > 2 and parts[0] == "projects" and _session_entry(parts[2]):
            remote = final_folder(moves, parts[1])
            synced.setdefault(_session_id(parts[2]), set()).add(remote)
    return synced


def _unclaimed(name: str, owner: str, claims: Mapping[str, str]) -> str:
    """`name`, or `name.2`, `name.3`... : the first that `claims` gives to nobody but
    `owner`."""
    candidate, number = name, 1
    while claims.get(candidate, owner) != owner:
        number += 1
        candidate = f"{name}.{number}"
    return candidate


class PathMap:
    """Local relative paths <-> remote paths, for one device. Only the project folder (the
    second part of a path under projects/) differs: see `projects` for why and how.

    A mapping, once used, is fixed for the run, so what the scan named a file is what the
    pull writes to. Two local folders here with one key (a repository and its worktree)
    share its remote folder: each session stays in the folder that has it (`_place`), and
    an entry both have (`memory/`) keeps the second folder's own remote folder. Two remote
    folders never share a local folder: the second one asked for takes `<name>.2`, a name
    Claude Code never makes (a collision of its lossy names)."""

    def __init__(
        self,
        layout: Layout,
        claude: Path | None = None,
        known: Mapping[str, Project] | None = None,
        moves: Mapping[str, Move] | None = None,
        rekey: bool = False,
        synced_paths: Collection[str] = (),
        numbered: Mapping[str, str] | None = None,
        recorded: Mapping[str, list] | None = None,
    ) -> None:
        self.layout = layout
        self.recorded = RecordedPaths(recorded)  # what transcripts record, kept in the state
        self.home_folder = encode_project(layout.home)
        self.moves: dict[str, Move] = dict(moves or {})
        self.projects: dict[str, Project] = {}  # remote folder -> project
        self._before_moves: dict[str, Project] = {}  # a moved remote folder -> its project
        for remote, project in (known or {}).items():
            table = self._before_moves if remote in self.moves else self.projects
            table[remote] = project
        self.made_moves = False  # a project's key changed here: see `_rekeyed`
        self._remote_of: dict[str, str] = {}  # local folder -> remote folder
        self._real_paths: dict[str, str] = {}  # see `_real_path`
        self._local_of: dict[str, str] = {}  # remote folder -> local folder
        self._derived: set[str] = set()  # remote folders whose project was read here
        # More local folders for one key (a repository and its worktree): each session
        # stays in the folder that has it; the key's own folder takes new ones.
        self._also: dict[str, str] = {}  # another local folder -> the remote folder
        self._placed: dict[tuple[str, str], str] = {}  # (remote folder, entry) -> folder
        self._foreign: dict[str, str] = {}  # a folder here for another layout -> remote
        # Two projects in one folder (Claude Code's names for their paths are equal): the
        # sessions of the second keep its remote folder (see `_split`).
        self._session_remote: dict[tuple[str, str], str] = {}  # (folder, entry) -> remote
        self._partners: dict[str, str] = {}  # the second project's remote folder -> folder
        self._numbered: dict[str, str] = {}  # remote folder -> its `<name>.N` folder here
        self._bound: dict[tuple[str, str], str] = {}  # (folder, entry) -> remote, as mapped
        self._materialised: dict[str, str] | None = None
        self._history: dict[str, str] | None = None
        self._claude = claude
        if claude is not None:
            self._derive(claude / "projects", rekey, numbered or {})
            self._split(claude / "projects", synced_paths)

    def _derive(self, projects: Path, rekey: bool, numbered: Mapping[str, str]) -> None:
        """Each local project folder's remote folder. One synced before keeps the one it
        was synced under, unless this device's layout changed since and gives the path it
        was recorded at another key (see `_rekeyed`). Any other takes its key from a path
        Claude Code recorded in it that names this very folder (a transcript from another
        device records that device's path)."""
        try:
            folders = sorted(entry.name for entry in os.scandir(projects) if entry.is_dir())
        except OSError:
            return
        synced: dict[str, str] = {}
        tables = {**self._before_moves, **self.projects}
        for remote, project in sorted(self.projects.items()) + sorted(self._before_moves.items()):
            for name in (encode_project(project.path), self.layout.folder_of(project.key)):
                synced.setdefault(name, remote)
        for remote, folder in sorted(numbered.items()):
            remote = final_folder(self.moves, remote)
            if folder in folders and remote not in self._local_of:
                self._remote_of[folder], self._local_of[remote] = remote, folder
                self._numbered[remote] = folder
        for folder in folders:
            remote = synced.get(folder)
            if folder in self._remote_of:
                continue
            if remote is not None:
                project = tables[remote]
                if rekey:
                    remote, project = self._rekeyed(folder, remote, project)
                named = project.path
                if not self._is_named(folder, named):
                    named = self.layout.path_of(project.key)
                self._take(folder, remote, project, named)
                continue
            for recorded in self.recorded.folder_paths(projects, folder):
                if self._is_named(folder, recorded):
                    key = self.layout.key_of(recorded)
                    self._take(folder, remote_folder(key), Project(key, recorded), recorded)
                    break
        self._place(projects)

    def _is_named(self, folder: str, path: str) -> bool:
        """Whether `folder` is Claude Code's name for a project at `path`, as written or as
        its real path here."""
        return folder in (encode_project(path), encode_project(self._real_path(path)))

    def _real_path(self, path: str) -> str:
        """`real_path`, looked up once a run: the hundreds of sessions in one folder record
        the same few paths."""
        real = self._real_paths.get(path)
        if real is None:
            real = self._real_paths[path] = real_path(path)
        return real

    def _rekeyed(self, folder: str, remote: str, project: Project) -> tuple[str, Project]:
        """The remote folder and project of a synced folder whose recorded path is here and
        has another key by this device's changed layout (`path_map`, `projects.key`): the
        remote folder moves to the new key's (see `moves`), so that every device follows.
        Without a change, the folder and project as synced."""
        path = project.path
        named = self._is_named(folder, path)
        if remote in self.moves or not named or not os.path.isdir(path):
            return remote, project
        key = self.layout.key_of(path)
        target = final_folder(self.moves, remote_folder(key))
        if key == project.key or target == remote:
            return remote, project
        self.moves = merge_moves(self.moves, {remote: Move(target, time.time_ns())})
        self.projects.pop(remote, None)
        self.made_moves = True
        return target, Project(key, path)

    def _take(self, folder: str, remote: str, project: Project, named: str | None) -> None:
        """Map `folder`, the folder Claude Code uses for the path `named`, to `remote` (after
        its moves). A folder for a path that is not here, which this device's layout now
        puts in another folder (a `path_map` set, or a key changed, after a pull), gives
        way to that one (see `placeholders`). When another folder here has the remote
        folder already, the one Claude Code uses here for the key's path is the key's own
        (it takes new sessions), and the other keeps its sessions (see `_place`); a folder
        named after a git-keyed remote folder while no checkout was known gives way to the
        checkout's."""
        moved = final_folder(self.moves, remote)
        if moved != remote:
            remote, project = moved, self.projects.get(moved, project)
        if (
            named is not None
            and not os.path.isdir(named)
            and folder != self.layout.folder_of(project.key)
        ):
            self._foreign[folder] = remote
            self.projects.setdefault(remote, project)
            return
        holder = self._local_of.get(remote)
        placeholder = project.key.startswith(GIT_MARKER) and remote in (folder, holder)
        if holder is not None and holder != folder:
            if placeholder and folder == remote:
                return  # its files move into the holder's (see `placeholders`)
            if placeholder:
                del self._remote_of[holder]
            elif self._own(folder, project.key) and not self._own(holder, project.key):
                del self._remote_of[holder]
                self._also[holder] = remote
            else:
                self._also[folder] = remote
                return
        self._remote_of[folder], self._local_of[remote] = remote, folder
        self.projects[remote] = project
        self._derived.add(remote)

    def _own(self, folder: str, key: str) -> bool:
        """Whether `folder` is the one Claude Code uses here for `key`'s path."""
        return folder == self.layout.folder_of(key)

    def _place(self, projects: Path) -> None:
        """Give each session (each entry of a project folder) of a remote folder that more
        local folders share to the one folder that has it: the key's own folder first."""
        shared = set(self._also.values())
        own = [self._local_of[remote] for remote in sorted(shared) if remote in self._local_of]
        for folder in [*own, *sorted(self._also)]:
            remote = self._remote_of.get(folder) or self._also[folder]
            try:
                names = sorted(entry.name for entry in os.scandir(projects / folder))
            except OSError:
                continue
            for name in names:
                self._placed.setdefault((remote, name), folder)

    def _split(self, projects: Path, synced_paths: Collection[str]) -> None:
        """Sessions in one local folder that belong to two projects: Claude Code's names
        of `/home/ann-work/app` and `/home/ann/work/app` are equal, and it keeps both
        projects' sessions in that folder. A session synced under another project whose
        key Claude Code keeps in this folder stays there; a new one goes to the project of
        the path its transcript records."""
        synced: dict[str, set[str]] | None = None  # session id -> remote folders
        for folder, own in sorted(self._remote_of.items()):
            if folder in self._numbered.values() or own not in self.projects:
                continue
            try:
                names = sorted(os.listdir(projects / folder))
            except OSError:
                continue
            for name in names:
                if not _session_entry(name):
                    continue
                # A session synced under the folder's own project, as most are, stays there:
                # only another needs every synced path looked at.
                if f"projects/{own}/{_session_id(name)}.jsonl" in synced_paths:
                    continue
                if synced is None:
                    synced = _sessions_synced(synced_paths, self.moves)
                remote = self._session_project(projects / folder, folder, own, name, synced)
                if remote != own:
                    self._session_remote[folder, name] = remote
                    self._partners[remote] = folder

    def _session_project(
        self, folder_path: Path, folder: str, own: str, name: str, synced: dict[str, set[str]]
    ) -> str:
        """The remote folder of session entry `name` of `folder` (whose project is `own`)."""
        remotes = synced.get(_session_id(name), set())
        if own in remotes:
            return own
        for remote in sorted(remotes):
            project = self.projects.get(remote)
            if project is not None and self.layout.folder_of(project.key) == folder:
                return remote
        if remotes:
            return own
        recorded = recorded_path(folder_path / (_session_id(name) + ".jsonl"))
        if recorded is None or not self._is_named(folder, recorded):
            return own
        own_path = self.projects[own].path
        if recorded == own_path or self._real_path(recorded) == self._real_path(own_path):
            return own  # the folder's own project, whatever key this layout gives it now
        key = self.layout.key_of(recorded)
        if key == self.projects[own].key:
            return own
        remote = final_folder(self.moves, remote_folder(key))
        self.projects.setdefault(remote, Project(key, recorded))
        return remote

    def _partner_folder(self, remote: str) -> str | None:
        """The folder here that holds the sessions of `remote`, a project whose folder
        another project's sessions have here already (see `_split`)."""
        if remote in self._partners:
            return self._partners[remote]
        project = self.projects.get(remote)
        if project is None or remote in self._local_of:
            return None
        folder = self.layout.folder_of(project.key)
        holder = self._remote_of.get(folder)
        if holder is None or holder == remote or folder in self._also:
            return None
        self._partners[remote] = folder
        return folder

    def numbered(self) -> dict[str, str]:
        """Remote folder -> the `<name>.N` folder it was given here: kept in the state, so
        that the next run maps that folder back to it."""
        return dict(self._numbered)

    def learn(self, published: Iterable[tuple[str, Project]]) -> None:
        """Take in the project tables other devices published (what this device read from
        its own folders stays); where tables disagree, the least key wins on every device."""
        for remote, project in published:
            if remote in self._derived or remote in self.moves:
                continue
            current = self.projects.get(remote)
            if current is None or (project.key, project.path) < (current.key, current.path):
                self.projects[remote] = project
        self._materialised = None

    def to_remote(self, local: str) -> str:
        if not local.startswith("projects/"):
            return local  # only a project folder has another name here
        parts = local.split("/")
        entry = (parts[1], parts[2]) if parts[0] == "projects" and len(parts) > 2 else None
        if entry in self._session_remote:
            parts[1] = self._session_remote[entry]
        elif parts[0] == "projects" and len(parts) > 2 and parts[1] in self._also:
            parts[1] = self._entry_remote(parts[1], parts[2])
        elif parts[0] == "projects" and len(parts) > 1:
            parts[1] = self.remote_folder_of(parts[1])
        if entry is not None:
            self._bound.setdefault(entry, parts[1])
        return "/".join(parts)

    def to_local(self, remote: str) -> str:
        parts = remote.split("/")
        if parts[0] == "projects" and len(parts) > 2 and (parts[1], parts[2]) in self._placed:
            parts[1] = self._placed[parts[1], parts[2]]
        elif (
            parts[0] == "projects"
            and len(parts) > 2
            and _session_entry(parts[2])
            and (shared := self._partner_folder(parts[1])) is not None
            and self._bound.setdefault((shared, parts[2]), parts[1]) == parts[1]
        ):
            self._session_remote[shared, parts[2]] = parts[1]
            parts[1] = shared
        elif parts[0] == "projects" and len(parts) > 1:
            parts[1] = self.local_folder_of(parts[1])
            if len(parts) > 2:
                self._bound.setdefault((parts[1], parts[2]), remote.split("/")[1])
        return "/".join(parts)

    def _entry_remote(self, folder: str, name: str) -> str:
        """The remote folder of entry `name` of a folder that shares its key with another:
        the key's, unless that folder has an entry of this name too (both have `memory/`);
        then this folder's own."""
        remote = self._also[folder]
        if self._placed.setdefault((remote, name), folder) == folder:
            return remote
        return self.remote_folder_of(folder)

    def remote_folder_of(self, folder: str) -> str:
        remote = self._remote_of.get(folder) or self._foreign.get(folder)
        if remote is None:
            guess = folder if folder in self._also else self._guess_remote(folder)
            remote = _unclaimed(final_folder(self.moves, guess), folder, self._local_of)
            self._local_of[remote], self._remote_of[folder] = folder, remote
        return remote

    def local_folder_of(self, remote: str) -> str:
        folder = self._local_of.get(remote)
        if folder is None:
            project = self.projects.get(remote)
            if project is not None:
                folder = self.layout.folder_of(project.key)
            elif remote.startswith(HOME_MARKER):
                folder = self.home_folder + remote[len(HOME_MARKER) :]
            else:
                folder = remote
            natural, folder = folder, _unclaimed(folder, remote, self._remote_of)
            self._remote_of[folder], self._local_of[remote] = remote, folder
            if folder != natural:
                self._numbered[remote] = folder
        return folder

    def _guess_remote(self, folder: str) -> str:
        """A folder with no path recorded in it: the project this device materialised
        there, else the project history.jsonl names for it, else by its name alone."""
        if self._materialised is None:
            self._materialised = {}
            for remote, project in sorted(self.projects.items(), reverse=True):
                self._materialised[self.layout.folder_of(project.key)] = remote
        if folder in self._materialised:
            return self._materialised[folder]
        if self._history is None:
            self._history = (
                history_projects(self._claude / HISTORY) if self._claude is not None else {}
            )
        if folder in self._history:
            key = self.layout.key_of(self._history[folder])
            self.projects.setdefault(remote_folder(key), Project(key, self._history[folder]))
            return remote_folder(key)
        if folder == self.home_folder or folder.startswith(self.home_folder + "-"):
            return HOME_MARKER + folder[len(self.home_folder) :]
        return folder

    def placeholders(self) -> list[tuple[str, str]]:
        """(folder, its project's own folder) for each folder whose files belong in another
        here: one that held a git-keyed project while no checkout of it was known, now that
        Claude Code has run in one; one made for a path that is not here and that this
        device's layout now puts in another folder (a `path_map` set after a pull)."""
        if self._claude is None:
            return []
        waiting = [
            (remote, self._local_of[remote])
            for remote in sorted(self._derived)
            if self.projects[remote].key.startswith(GIT_MARKER)
            and remote != self._local_of[remote]
            and (self._claude / "projects" / remote).is_dir()
        ]
        for folder, remote in sorted(self._foreign.items()):
            waiting.append((folder, self.local_folder_of(remote)))
        return waiting

    def published(self, paths: Iterable[str]) -> dict[str, Project]:
        """The projects of the remote folders `paths` lie in: the table a journal entry carries."""
        folders = {path.split("/")[1] for path in paths if path.startswith("projects/")}
        return {remote: self.projects[remote] for remote in sorted(folders & set(self.projects))}
