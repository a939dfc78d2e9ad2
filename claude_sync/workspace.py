"""A workspace: one CLAUDE_SYNC_HOME with its config, key, rclone and remote, loaded."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from pyrage import x25519

from .config import Config, load_config
from .keys import metadata_key, object_name_key, read_key_file
from .locations import claude_dir
from .rclone import Rclone, find_rclone
from .remote import Remote

KEY_FILE = "age-key.txt"
RCLONE_CONFIG = "rclone.conf"


@dataclass
class Workspace:
    """What a command works with: the folders, the settings, the key and the remote."""

    home: Path
    claude: Path
    config: Config
    identity: x25519.Identity
    remote: Remote

    @functools.cached_property
    def recipient(self) -> x25519.Recipient:
        return self.identity.to_public()

    @functools.cached_property
    def name_key(self) -> bytes:
        return object_name_key(self.identity)

    @functools.cached_property
    def metadata_key(self) -> bytes:
        return metadata_key(self.identity)

    @functools.cached_property
    def staging(self) -> Path:
        return self.home / "staging"

    @functools.cached_property
    def cache(self) -> Path:
        return self.home / "cache"

    @functools.cached_property
    def remote_mirror(self) -> Path:
        """The remote's marker and journal as the last run mirrored them (`fetch_remote_view`)."""
        return self.cache / "remote"

    @functools.cached_property
    def trash(self) -> Path:
        return self.home / "trash"


def rclone_for(config: Config) -> Rclone:
    binary = find_rclone(config.rclone_binary)
    return Rclone(binary, config.rclone_config, config.timeout, transfers=config.transfers)


def load_workspace(home: Path) -> Workspace:
    config = load_config(home)
    identity = read_key_file(home / KEY_FILE)
    remote = Remote(rclone_for(config), config.remote_root)
    return Workspace(home, claude_dir(), config, identity, remote)
