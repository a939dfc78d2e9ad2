"""Paths: what is synced, how remote paths are validated, and how projects move.

Remote paths are POSIX, relative, normalised, inside the synced tree. Claude Code names a
project folder after its absolute path (`realpath`, every character outside [A-Za-z0-9]
becomes `-`). On the remote a project under the home folder is stored home-relative:
`projects/-home-ann-code-app` is `projects/~-code-app`, and a device whose home is
/Users/ann materialises it as `projects/-Users-ann-code-app`.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .errors import RemoteFormatError

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


def temporary_name() -> str:
    """A short name for a file being written: the target's own name may be near the limit."""
    return f"{TEMPORARY_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"


HOME_MARKER = "~"
# <name>.conflict-<YYYYMMDD-HHMMSS>-<device>; copies made before the extension moved inside
# the name (<stem>.conflict-...-<device>.<ext>) are recognised too.
CONFLICT_COPY = re.compile(r"\.conflict-\d{8}-\d{6}-[A-Za-z0-9_-]+(\.[^/.]*)?$")


def original_of(copy: str) -> str:
    """The path a conflict copy's name was made from."""
    match = CONFLICT_COPY.search(copy)
    assert match is not None
    return copy[: match.start()] + (match.group(1) or "")


def encode_project(path: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "-", path)


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


def unmatched_patterns(patterns: Iterable[str], paths: Iterable[str]) -> list[str]:
    """The patterns that match none of `paths`. A path is tried against a pattern only
    when it starts with the pattern's literal beginning, and the loop ends once every
    pattern has matched: cheap next to the walk that listed the paths."""
    remaining = {
        pattern: (re.split(r"[*?]", pattern)[0], _pattern_regex(pattern)) for pattern in patterns
    }
    for path in paths:
        if not remaining:
            break
        for pattern, (prefix, regex) in list(remaining.items()):
            if path.startswith(prefix) and regex.fullmatch(path):
                del remaining[pattern]
    return list(remaining)


@dataclass
class Rules:
    """Which relative paths are synced: the deny list, then excludes, then includes."""

    include: tuple[str, ...]
    exclude: tuple[str, ...]

    def __post_init__(self) -> None:
        self._include = [_pattern_regex(p) for p in self.include]
        self._exclude = [_pattern_regex(p) for p in self.exclude]

    @classmethod
    def from_config(cls, include: list[str], exclude: list[str]) -> Rules:
        return cls(DEFAULT_INCLUDE + tuple(include), tuple(exclude))

    def synced(self, path: str) -> bool:
        """Whether `path` is synced; a conflict copy is synced when its original is."""
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
        """Whether a walk should look inside `folder` (a relative folder path)."""
        top = folder.split("/")[0]
        if top in DENIED_TOP_LEVEL or folder.split("/")[-1] in DENIED_NAMES:
            return False
        return any(
            p.startswith(top + "/") or p == top or fnmatch.fnmatch(top, p.split("/")[0])
            for p in self.include
        )


def is_utf8(name: str) -> bool:
    """Whether a name read from the file system is valid UTF-8 (Python keeps the bytes of
    one that is not as lone surrogates, which no manifest, terminal or log can carry)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_safe_path(path: str) -> bool:
    """A relative, normalised POSIX path in UTF-8 with no way out of the tree, on any system."""
    return not (
        not path
        or not is_utf8(path)
        or path.startswith("/")
        or "\\" in path
        or "\x00" in path
        or posixpath.normpath(path) != path
        or any(part in ("", ".", "..") for part in path.split("/"))
        or re.match(r"^[A-Za-z]:", path) is not None
    )


def validate_remote_path(path: object) -> str:
    """Return `path` if it is a safe relative POSIX path; raise naming it otherwise."""
    if not isinstance(path, str) or not is_safe_path(path):
        raise RemoteFormatError(f"manifest names an unsafe path {path!r}: refused")
    return path


HISTORY = "history.jsonl"


def is_append_only(path: str) -> bool:
    """Files Claude Code only ever appends to: transcripts and history.jsonl. A version of
    one that is a byte-prefix of another is that one's past, never a conflict."""
    return path == HISTORY or (is_transcript(path) and path.endswith(".jsonl"))


def is_transcript(path: str) -> bool:
    """Session files Claude Code sweeps itself: their local disappearance is not a deletion.

    A conflict copy is not one: deleting it settles the conflict on every device."""
    parts = path.split("/")
    return (
        parts[0] == "projects"
        and len(parts) >= 3
        and parts[2] != "memory"
        and not CONFLICT_COPY.search(path)
    )


class PathMap:
    """Local relative paths <-> remote paths, for one device's home folder."""

    def __init__(self, home: Path) -> None:
        self.home_prefix = encode_project(os.path.realpath(home))

    def to_remote(self, local: str) -> str:
        parts = local.split("/")
        if parts[0] == "projects" and len(parts) > 1:
            folder = parts[1]
            if folder == self.home_prefix or folder.startswith(self.home_prefix + "-"):
                parts[1] = HOME_MARKER + folder[len(self.home_prefix) :]
        return "/".join(parts)

    def to_local(self, remote: str) -> str:
        parts = remote.split("/")
        if parts[0] == "projects" and len(parts) > 1 and parts[1].startswith(HOME_MARKER):
            parts[1] = self.home_prefix + parts[1][len(HOME_MARKER) :]
        return "/".join(parts)
