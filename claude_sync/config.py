"""Where things live, and config.yaml: read, validated, written.

config.yaml (in CLAUDE_SYNC_HOME, default ~/.claude-sync):

    version: 1
    device: {id: 9f2c..., name: laptop}
    remote:
      root: "claude-sync:bucket/claude-sync"  # an rclone remote path
      rclone_config: /home/me/.claude-sync/rclone.conf  # null: rclone's own default config
      provider: s3                             # the template used; null for a user's own remote
    key: {mode: passphrase}                    # or random
    rclone: {binary: null, timeout: 30, transfers: 8}  # timeout: seconds to wait for an
                                               # unreachable remote; transfers: files sent at once
    sync: {include: [...], exclude: [...]}     # on top of the defaults and the deny list
    hooks: {pull_timeout: 5}                   # seconds a hook-run pull may take in all
    trash: {keep_days: 30}                     # days trash/<time>/ folders are kept
    path_map: {/srv: ~/work}                   # local prefix -> canonical prefix of projects
    projects: {key: path, git: [~/src/app]}    # key: git keys every repository by its origin
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__
from .errors import ConfigError
from .files import write_private

CONFIG_VERSION = 1
# config.yaml's document as last parsed, as JSON (see `_document`), in CLAUDE_SYNC_HOME.
PARSED_CONFIG = "cache/config.json"
# Every key config.yaml may hold: section -> its keys (None for a plain value). A key
# outside this is a typo to report, not a setting to drop silently.
KNOWN_KEYS: dict[str, tuple[str, ...] | None] = {
    "version": None,
    "device": ("id", "name"),
    "remote": ("root", "rclone_config", "provider"),
    "key": ("mode",),
    "rclone": ("binary", "timeout", "transfers"),
    "sync": ("include", "exclude"),
    "hooks": ("pull_timeout",),
    "trash": ("keep_days",),
    "path_map": None,
    "projects": ("key", "git"),
}


@dataclass
class Config:
    """This device's settings, as config.yaml holds them."""

    device_id: str
    device_name: str
    remote_root: str
    rclone_config: str | None
    provider: str | None
    key_mode: str = "passphrase"
    rclone_binary: str | None = None
    timeout: int = 30
    transfers: int = 8  # files rclone sends or fetches at once
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    hook_pull_timeout: int = 5
    trash_keep_days: int = 30  # a push or pull removes trash/<time>/ folders older than this
    path_map: dict[str, str] = field(default_factory=dict)
    project_key: str = "path"  # or git: a project in a repository is keyed by its origin
    git_projects: list[str] = field(default_factory=list)  # keyed by git whatever project_key

    def to_yaml(self) -> str:
        document = {
            "version": CONFIG_VERSION,
            "device": {"id": self.device_id, "name": self.device_name},
            "remote": {
                "root": self.remote_root,
                "rclone_config": self.rclone_config,
                "provider": self.provider,
            },
            "key": {"mode": self.key_mode},
            "rclone": {
                "binary": self.rclone_binary,
                "timeout": self.timeout,
                "transfers": self.transfers,
            },
            "sync": {"include": self.include, "exclude": self.exclude},
            "hooks": {"pull_timeout": self.hook_pull_timeout},
            "trash": {"keep_days": self.trash_keep_days},
            "path_map": self.path_map,
            "projects": {"key": self.project_key, "git": self.git_projects},
        }
        import yaml  # init only: kept off the start-up path (see `_document`)

        return yaml.safe_dump(document, sort_keys=False)


def new_device_id() -> str:
    return os.urandom(8).hex()


def default_device_name() -> str:
    import socket  # init only: kept off the start-up path

    return socket.gethostname().split(".")[0] or "device"


def _section(document: dict, name: str, path: Path) -> dict:
    value = document.get(name, {})
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: `{name}` must be a mapping")
    return value


def _typed(section: dict, key: str, kind: type, where: str, path: Path, required: bool = False):
    value = section.get(key)
    if value is None:
        if required:
            raise ConfigError(f"{path}: `{where}.{key}` is missing")
        return None
    if kind is list:
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ConfigError(f"{path}: `{where}.{key}` must be a list of strings")
        return value
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ConfigError(f"{path}: `{where}.{key}` must be a {kind.__name__}")
    return value


def _reject_unknown_keys(document: dict, path: Path) -> None:
    """Raise for the first key KNOWN_KEYS does not list, naming the nearest known key:
    first in its own section, else anywhere (`include` at the top is `sync.include`)."""
    leaves = {key: f"{section}.{key}" for section, keys in KNOWN_KEYS.items() for key in keys or ()}
    for section, value in document.items():
        if section not in KNOWN_KEYS:
            top = {name: name for name in KNOWN_KEYS}
            raise _unknown(str(section), path, str(section), [top | leaves])
        keys = KNOWN_KEYS[section]
        if keys and isinstance(value, dict):
            for key in value:
                if key not in keys:
                    own = {name: f"{section}.{name}" for name in keys}
                    raise _unknown(f"{section}.{key}", path, str(key), [own, leaves])


def _unknown(name: str, path: Path, word: str, tries: list[dict[str, str]]) -> ConfigError:
    """The error for the unknown key `name`; `tries` map candidate words to the key they
    stand for, the closest match in the first that has one is suggested."""
    import difflib  # a mistake's path only: kept off the start-up path

    for candidates in tries:
        nearest = difflib.get_close_matches(word, list(candidates), n=1)
        if nearest:
            return ConfigError(
                f"unknown key `{name}` in {path} (did you mean `{candidates[nearest[0]]}`?)"
            )
    return ConfigError(f"unknown key `{name}` in {path}")


def parse_yaml(text: str, path: Path) -> object:
    """The YAML document in text; a syntax error becomes one line saying where."""
    import yaml

    # libyaml's loader, where PyYAML was built with it, reads config.yaml about 8 times as
    # fast; it builds the same objects.
    try:
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        pass  # read again below: the pure-Python loader names the offending character
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}{where}: {problem}") from None


def load_config(home: Path) -> Config:
    path = home / "config.yaml"
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path} not found: run `claude-sync init` first") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read {path}: {error}") from None
    document = _document(text, path, home / PARSED_CONFIG)
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    if document.get("version") != CONFIG_VERSION:
        raise ConfigError(f"{path}: unsupported `version` {document.get('version')!r}")
    _reject_unknown_keys(document, path)
    device = _section(document, "device", path)
    remote = _section(document, "remote", path)
    key = _section(document, "key", path)
    rclone = _section(document, "rclone", path)
    sync = _section(document, "sync", path)
    hooks = _section(document, "hooks", path)
    trash = _section(document, "trash", path)
    projects = _section(document, "projects", path)
    project_key = _typed(projects, "key", str, "projects", path) or "path"
    if project_key not in ("path", "git"):
        raise ConfigError(f"{path}: `projects.key` must be path or git")
    git_projects = _typed(projects, "git", list, "projects", path) or []
    for prefix in git_projects:
        if not _is_prefix(prefix):
            raise ConfigError(
                f"{path}: `projects.git` entry {prefix!r} must be a path starting with / or ~"
            )
    key_mode = _typed(key, "mode", str, "key", path) or "passphrase"
    if key_mode not in ("passphrase", "random"):
        raise ConfigError(f"{path}: `key.mode` must be passphrase or random")
    timeout = _typed(rclone, "timeout", int, "rclone", path) or 30
    if timeout <= 0:
        raise ConfigError(f"{path}: `rclone.timeout` must be a positive number of seconds")
    transfers = _typed(rclone, "transfers", int, "rclone", path)
    transfers = 8 if transfers is None else transfers
    if transfers <= 0:
        raise ConfigError(f"{path}: `rclone.transfers` must be a positive number of files")
    pull_timeout = _typed(hooks, "pull_timeout", int, "hooks", path) or 5
    if pull_timeout <= 0:
        raise ConfigError(f"{path}: `hooks.pull_timeout` must be a positive number of seconds")
    keep_days = _typed(trash, "keep_days", int, "trash", path)
    if keep_days is not None and keep_days < 0:
        raise ConfigError(f"{path}: `trash.keep_days` must be a number of days, 0 or more")
    return Config(
        device_id=_typed(device, "id", str, "device", path, required=True),
        device_name=_typed(device, "name", str, "device", path, required=True),
        remote_root=_typed(remote, "root", str, "remote", path, required=True),
        rclone_config=_typed(remote, "rclone_config", str, "remote", path),
        provider=_typed(remote, "provider", str, "remote", path),
        key_mode=key_mode,
        rclone_binary=_typed(rclone, "binary", str, "rclone", path),
        timeout=timeout,
        transfers=transfers,
        include=_typed(sync, "include", list, "sync", path) or [],
        exclude=_typed(sync, "exclude", list, "sync", path) or [],
        hook_pull_timeout=pull_timeout,
        trash_keep_days=30 if keep_days is None else keep_days,
        path_map=_path_map(document.get("path_map"), path),
        project_key=project_key,
        git_projects=git_projects,
    )


def _document(text: str, path: Path, parsed: Path) -> object:
    """The YAML document in config.yaml's `text`. Importing PyYAML is about a fifth of the
    start of every run, hooks included, and the text seldom changes: the document of the
    text last parsed is kept in `parsed` as JSON, with the text's hash, and used while the
    text is the same. The document is kept, not the Config made from it, so `load_config`
    checks it all the same."""
    sha256 = hashlib.sha256(text.encode()).hexdigest()
    try:
        kept = json.loads(parsed.read_bytes())
    except (OSError, ValueError):
        kept = None
    if isinstance(kept, dict) and kept.get("of") == [sha256, __version__]:
        return kept.get("document")
    document = parse_yaml(text, path)
    try:
        encoded = json.dumps({"of": [sha256, __version__], "document": document})
    except (TypeError, ValueError):  # a YAML date, say, which JSON cannot hold
        return document
    # Kept only where JSON gives the very document back (not so for a key that is no string);
    # a home that cannot be written to has it parsed each time.
    if json.loads(encoded)["document"] == document:
        with contextlib.suppress(OSError):
            write_private(parsed, encoded)
    return document


def _is_prefix(text: object) -> bool:
    return isinstance(text, str) and (
        text.startswith(("/", "~/"))
        or text == "~"
        or re.match(r"^[A-Za-z]:[\\/]", text) is not None
    )


def _path_map(value: object, path: Path) -> dict[str, str]:
    """`path_map`: local prefix -> canonical prefix, each absolute or under `~`."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: `path_map` must be a mapping of local prefix: canonical prefix")
    for local, canonical in value.items():
        if not _is_prefix(local) or not _is_prefix(canonical):
            raise ConfigError(
                f"{path}: `path_map` entry {local!r}: {canonical!r} must map a path starting "
                "with / or ~ to another (e.g. `/srv: ~/work`)"
            )
    return dict(value)
