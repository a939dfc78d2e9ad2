"""Projects: one identity per project across machines whose homes and layouts differ.

Claude Code keeps a project's sessions in `projects/<folder>`, the folder named after the
real path of the directory it ran in (`encode_project`). The name is lossy and differs per
machine, so the remote names a project folder after its *key* instead:

    key                          remote folder          from a recorded path
    ~/work/app                   ~-work-app             under this device's home folder
    /srv/app                     -srv-app               anywhere else (absolute)
    C:/work/app                  C--work-app            a Windows path outside the home
    git:github.com/ann/app/sub   git-github-com-ann-app-sub   with `projects.key: git`

`path_map` (config.yaml, local prefix -> canonical prefix, e.g. `/srv: ~/work`) is applied
first, both ways: a path under a local prefix takes the canonical prefix in its key, and a
key under a canonical prefix is materialised under the local one.

With `projects.key: git` (or for the folders `projects.git` lists) a project inside a git
checkout with an `origin` is keyed by that URL, normalised (host and path, no user, no
`.git`), plus the path inside the repository: one project wherever it is checked out. A
device with no checkout of it known keeps it in a folder named after the remote folder
(`git-...`), where `claude --resume ID` still finds its sessions; once Claude Code has run
in a checkout of it here, that folder's files move into the checkout's folder.

A local folder's key comes from the path Claude Code recorded (`cwd`) on a transcript line
in it, taking the first one that names this very folder (a transcript that came from
another device records that device's path); else from `project` in history.jsonl; else the
folder name (`~` for the encoded home folder). Each device writes its table of remote folder
-> (key, recorded path) into its journal entries, so every device materialises each remote folder
under the folder Claude Code would use for that key's path here.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import posixpath
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

HOME_MARKER = "~"
GIT_MARKER = "git:"
MAX_FOLDER = 200  # Claude Code cuts a longer encoded name and appends a hash of the path
FIRST_LINES = 64  # transcript lines read looking for a recorded `cwd`
FIRST_BYTES = 1 << 20
ENCODED = re.compile(r"^[A-Za-z0-9-]+$")


def _utf16_units(text: str) -> list[int]:
    data = text.encode("utf-16-le", "surrogatepass")
    return [int.from_bytes(data[i : i + 2], "little") for i in range(0, len(data), 2)]


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, digit = divmod(number, 36)
        text = digits[digit] + text
        if not number:
            return text


def _path_hash(path: str) -> str:
    """Claude Code's: the 32-bit Java string hash of the path's UTF-16 code units, its
    absolute value in base 36."""
    value = 0
    for unit in _utf16_units(path):
        value = (value * 31 + unit) & 0xFFFFFFFF
    if value >= 1 << 31:
        value -= 1 << 32
    return _base36(abs(value))


# A run asks for the names of the same few paths thousands of times.
@functools.lru_cache(maxsize=4096)
def encode_project(path: str) -> str:
    """The folder name Claude Code gives a project at `path` (its real path): every UTF-16
    code unit outside [A-Za-z0-9] becomes `-`; a name over 200 units is cut to 200 and
    followed by `-` and a hash of the path (checked against Claude Code 2.1.328)."""
    units = _utf16_units(path)
    encoded = "".join(
        chr(unit) if chr(unit).isascii() and chr(unit).isalnum() else "-" for unit in units
    )
    if len(encoded) <= MAX_FOLDER:
        return encoded
    return f"{encoded[:MAX_FOLDER]}-{_path_hash(path)}"


def _is_windows(path: str) -> bool:
    return re.match(r"^[A-Za-z]:[\\/]", path) is not None


def _normal(path: str) -> str:
    """A recorded path in one spelling: Windows separators as `/`, no trailing `/`."""
    if _is_windows(path):
        path = path.replace("\\", "/")
        return path[0].upper() + path[1:].rstrip("/") if len(path) > 3 else path[0].upper() + ":/"
    return posixpath.normpath(path) if path.startswith("/") else path


def _under(path: str, prefix: str) -> str | None:
    """`path` relative to `prefix` ("" for the prefix itself), or None when outside it."""
    if prefix in ("/", ""):
        return path.lstrip("/") if path.startswith("/") else None
    if path == prefix:
        return ""
    if path.startswith(prefix.rstrip("/") + "/"):
        return path[len(prefix.rstrip("/")) + 1 :]
    return None


def _join(prefix: str, rest: str) -> str:
    return prefix if not rest else f"{prefix.rstrip('/')}/{rest}"


@dataclass(frozen=True)
class Layout:
    """How this device's paths meet the canonical keys: its home folder and path map."""

    home: str  # its real path
    path_map: tuple[tuple[str, str], ...] = ()  # (local prefix, canonical prefix), longest first
    spelled: str = ""  # the home folder as given, when a link leads to it
    git_everywhere: bool = False  # `projects.key: git`
    git_prefixes: tuple[str, ...] = ()  # `projects.git`: keyed by git below these

    @classmethod
    def of(
        cls,
        home: Path,
        path_map: Mapping[str, str],
        git_everywhere: bool = False,
        git_prefixes: Iterable[str] = (),
    ) -> Layout:
        home_text = os.path.realpath(home)
        pairs = [
            (_normal(_expand(local, home_text)), _canonical(canonical))
            for local, canonical in path_map.items()
        ]
        pairs.sort(key=lambda pair: len(pair[0]), reverse=True)
        prefixes = tuple(real_path(_normal(_expand(p, home_text))) for p in git_prefixes)
        return cls(
            home_text, tuple(pairs), _normal(os.path.abspath(home)), git_everywhere, prefixes
        )

    def homes(self) -> list[str]:
        """The home folder as a recorded path may spell it (after and before links)."""
        return list(dict.fromkeys([self.home, self.spelled or self.home]))

    def key_of(self, recorded: str) -> str:
        """The canonical key of a path Claude Code recorded on this device."""
        path = _normal(recorded)
        if self.git_everywhere or any(_under(path, p) is not None for p in self.git_prefixes):
            key = git_key(path)
            if key is not None:
                return key
        for local, canonical in self.path_map:
            rest = _under(path, local)
            if rest is not None:
                return _join(canonical, rest)
        for home in self.homes():
            rest = _under(path, home)
            if rest is not None:
                return _join(HOME_MARKER, rest)
        return path

    def path_of(self, key: str) -> str | None:
        """The path on this device a key stands for (its real path, as Claude Code names
        folders after real paths); None for a git key, whose checkout only a folder of
        Claude Code's here can tell."""
        if key.startswith(GIT_MARKER):
            return None
        for local, canonical in sorted(self.path_map, key=lambda p: len(p[1]), reverse=True):
            rest = _under(key, canonical)
            if rest is not None:
                return real_path(_join(local, rest))
        rest = _under(key, HOME_MARKER)
        if rest is not None:
            return real_path(_join(self.home, rest))
        return real_path(key)

    def folder_of(self, key: str) -> str:
        """The folder under projects/ Claude Code would use here for `key` (for a git key
        with no checkout known, one named after the remote folder)."""
        path = self.path_of(key)
        return remote_folder(key) if path is None else encode_project(path)


def _expand(prefix: str, home: str) -> str:
    if prefix == HOME_MARKER or prefix.startswith(HOME_MARKER + "/"):
        return home + prefix[1:]
    return prefix


def _canonical(prefix: str) -> str:
    prefix = prefix.rstrip("/") or "/"
    if prefix == HOME_MARKER or prefix.startswith(HOME_MARKER + "/"):
        return prefix
    return _normal(prefix)


def real_path(path: str) -> str:
    """A path's real path on this machine (a Windows path is left as it is)."""
    return path if _is_windows(path) else os.path.realpath(path)


def remote_folder(key: str) -> str:
    """The folder under projects/ on the remote for a key."""
    if key.startswith(GIT_MARKER):
        return "git-" + encode_project(key[len(GIT_MARKER) :])
    rest = _under(key, HOME_MARKER)
    if rest is not None:
        return HOME_MARKER + ("" if not rest else encode_project("/" + rest))
    if _is_windows(key):
        return encode_project(key.replace("/", "\\"))
    return encode_project(key)


def is_key(text: object) -> bool:
    """Whether `text` has a key's shape: `~`, `~/...`, `/...`, `X:/...` or `git:...`."""
    if not isinstance(text, str) or not 0 < len(text) <= 4096 or "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return (
        text == HOME_MARKER
        or text.startswith(("~/", "/"))
        or re.match(r"^[A-Z]:/", text) is not None
        or (text.startswith(GIT_MARKER) and len(text) > len(GIT_MARKER))
    )


@dataclass(frozen=True)
class Project:
    """A project as a device publishes it: its key and the path it was recorded at."""

    key: str
    path: str


def recorded_path(transcript: Path) -> str | None:
    """The first `cwd` recorded in the first lines (and first MiB) of a transcript."""
    read = 0
    try:
        with transcript.open("rb") as file:
            for line in itertools.islice(file, FIRST_LINES):
                read += len(line)
                if read > FIRST_BYTES:
                    return None
                if b'"cwd"' not in line:  # most lines: no need to parse them
                    continue
                try:
                    cwd = json.loads(line).get("cwd")
                except (ValueError, AttributeError, UnicodeDecodeError):
                    continue
                if isinstance(cwd, str) and cwd:
                    return cwd
    except OSError:
        return None
    return None


def history_projects(history: Path) -> dict[str, str]:
    """Folder name -> path, from the `project` of each history.jsonl line."""
    found: dict[str, str] = {}
    try:
        with history.open("rb") as file:
            for line in file:
                try:
                    project = json.loads(line).get("project")
                except (ValueError, AttributeError, UnicodeDecodeError):
                    continue
                if isinstance(project, str) and project:
                    found.setdefault(encode_project(project), project)
    except OSError:
        pass
    return found


class RecordedPaths:
    """The path each transcript records (`recorded_path`), remembered from run to run by
    the transcript's inode, size and mtime: Claude Code only appends to a transcript, and a
    pull replaces one by renaming another over it, so a transcript whose stat is unchanged
    records what it recorded before. A folder whose transcripts name no path is then not
    read again on every run.

    `known` is what an earlier run kept: "<folder>/<name>" -> [inode, size, mtime_ns,
    path or None]; `seen` what this one looked at, for the next.
    """

    def __init__(self, known: Mapping[str, list] | None = None) -> None:
        self._known = known or {}
        self.seen: dict[str, list] = {}

    def folder_paths(self, projects: Path, folder: str) -> Iterable[str]:
        """The paths recorded by the transcripts in one project folder, in name order."""
        try:
            entries = [
                entry for entry in os.scandir(projects / folder) if entry.name.endswith(".jsonl")
            ]
        except OSError:
            return
        for entry in sorted(entries, key=lambda entry: entry.name):
            try:
                info = entry.stat()
            except OSError:
                continue
            stamp = [info.st_ino, info.st_size, info.st_mtime_ns]
            key = f"{folder}/{entry.name}"
            known = self._known.get(key)
            path = (
                known[3]
                if known is not None and known[:3] == stamp
                else recorded_path(Path(entry.path))
            )
            self.seen[key] = [*stamp, path]
            if path is not None:
                yield path


def git_key(path: str) -> str | None:
    """`git:<origin, normalised>[/<path inside the repository>]` for a path in a git
    checkout with an origin (read from its files: no git process per project)."""
    current = real_path(path)
    while True:
        config = _git_config(current)
        if config is not None:
            url = _origin(config)
            if url is None:
                return None
            inside = os.path.relpath(real_path(path), current).replace(os.sep, "/")
            return GIT_MARKER + url + ("" if inside == "." else "/" + inside)
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


def _git_config(folder: str) -> str | None:
    """The config file of the repository whose work tree is `folder`, if it is one."""
    dot_git = os.path.join(folder, ".git")
    if os.path.isdir(dot_git):
        return os.path.join(dot_git, "config")
    if not os.path.isfile(dot_git):
        return None
    try:  # a worktree or submodule: "gitdir: <path>"
        with open(dot_git, encoding="utf-8") as file:
            line = file.readline().strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not line.startswith("gitdir:"):
        return None
    git_dir = os.path.join(folder, line[len("gitdir:") :].strip())
    try:
        with open(os.path.join(git_dir, "commondir"), encoding="utf-8") as file:
            git_dir = os.path.join(git_dir, file.readline().strip())
    except (OSError, UnicodeDecodeError):
        pass
    return os.path.join(git_dir, "config")


def _origin(config: str) -> str | None:
    import configparser  # a project seen for the first time only: kept off the start-up path

    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read(config, encoding="utf-8")
        url = parser.get('remote "origin"', "url", fallback=None)
    except (configparser.Error, OSError, UnicodeDecodeError):
        return None
    return normal_url(url) if url else None


def normal_url(url: str) -> str | None:
    """An origin URL as `host/path` (or the path of a local one): no scheme, user,
    password or port, no trailing `.git` or `/`, the host in lower case, so that one
    repository cloned over https and over ssh is one project."""
    url = url.strip()
    scp = re.match(r"^(?:[^@/]+@)?([^/:]+):(?!//)(.*)$", url)
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", url):
        parts = urllib.parse.urlsplit(url)
        host, path = (parts.hostname or "") if parts.scheme != "file" else "", parts.path
    elif scp and not _is_windows(url):
        host, path = scp.group(1), scp.group(2)
    else:
        host, path = "", url
    path = path.strip("/")
    if path.endswith(".git"):
        path = path[: -len(".git")].rstrip("/")
    if not path:
        return None
    return f"{host.lower()}/{path}" if host else "/" + path
