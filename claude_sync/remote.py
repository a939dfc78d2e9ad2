"""Remote format 1: where things live on the remote, and the calls that read and write them.

    <root>/CLAUDE-SYNC.json           plaintext {"format": 1}, nothing secret
    <root>/keycheck.age               age(KEYCHECK_TEXT), no zstd, so the stock age CLI
                                      reads it: a wrong key fails at init
    <root>/objects/<aa>/<name>.age    content objects, immutable, <aa> = name[:2]
    <root>/manifests/<device-id>.age  one per device, written only by that device

Write order for a new remote: keycheck.age, then CLAUDE-SYNC.json, so a remote with the
marker always has its keycheck. For a push: every object first, the manifest last.
Deletions: `prune` deletes the objects no manifest names (none uploaded lately: a push may
be between its objects and its manifest); `devices forget` deletes one device's manifest.
"""

from __future__ import annotations

import configparser
import datetime
import json
import math
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from pyrage import x25519

from .crypto import decrypt_bytes, encrypt_bytes
from .errors import KeyFileError, RemoteFolderMissing, RemoteFormatError
from .files import private_folder
from .rclone import Rclone, RemoteNotFound

FORMAT = 1
MARKER = "CLAUDE-SYNC.json"
KEYCHECK = "keycheck.age"
KEYCHECK_TEXT = b"claude-sync keycheck v1\n"
OBJECTS = "objects"
MANIFESTS = "manifests"


def object_path(name: str) -> str:
    """An object's path below the root, e.g. objects/3f/3f9a....age."""
    return f"{OBJECTS}/{name[:2]}/{name}.age"


def parse_marker(raw: bytes) -> int:
    """The format number in CLAUDE-SYNC.json; raise unless it is the one this code reads."""
    try:
        found = json.loads(raw)["format"]
    except (ValueError, KeyError, TypeError):
        raise RemoteFormatError(f"{MARKER} on the remote is not valid") from None
    if found != FORMAT:
        raise RemoteFormatError(
            f"the remote uses format {found!r}; this claude-sync reads format {FORMAT} "
            "(upgrade claude-sync)"
        )
    return found


def local_folder(root: str, rclone_config: str | None) -> Path | None:
    """The folder on this machine that `root` names when its rclone remote is of type
    local, else None. rclone treats a missing local folder as an empty remote; this tells
    an unmounted disk or a moved folder from a remote that was never set up."""
    name, colon, path = root.partition(":")
    if not colon:
        return None
    config_file = rclone_config or os.environ.get("RCLONE_CONFIG")
    if not config_file:
        xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        config_file = str(Path(xdg) / "rclone" / "rclone.conf")
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read(config_file)
    except (configparser.Error, OSError, UnicodeDecodeError):
        return None  # rclone reports a config it cannot read itself
    if not parser.has_section(name) or parser[name].get("type", "").strip() != "local":
        return None
    return Path(path).expanduser()


def missing_folder(root: str, rclone_config: str | None) -> Path | None:
    """The local folder `root` names, when it does not exist."""
    folder = local_folder(root, rclone_config)
    return folder if folder is not None and not folder.exists() else None


class Remote:
    """The sync root on one rclone remote."""

    def __init__(self, rclone: Rclone, root: str) -> None:
        self.rclone = rclone
        self.root = root

    def path(self, relative: str = "") -> str:
        if not relative:
            return self.root
        if self.root.endswith(":"):
            return self.root + relative
        return self.root.rstrip("/") + "/" + relative

    def check_folder(self) -> None:
        """Raise RemoteFolderMissing when the remote is a local folder that is gone."""
        folder = missing_folder(self.root, self.rclone.config_file)
        if folder is not None:
            raise RemoteFolderMissing(folder)

    def read_format(self) -> int | None:
        """The format number in CLAUDE-SYNC.json, or None on a remote not yet initialised."""
        try:
            raw = self.rclone.cat(self.path(MARKER))
        except RemoteNotFound:
            return None
        # On S3, `rclone cat` of a missing key succeeds with no output: the marker is never empty.
        return parse_marker(raw) if raw else None

    def initialize(self, identity: x25519.Identity) -> bool:
        """Create the root; on a new remote write the keycheck and marker; else check the key.

        Returns True when the remote was new.
        """
        # Reading first gives rclone's clearest error for an unreachable remote.
        if self.read_format() is None:
            self.rclone.mkdir(self.root)
            keycheck = encrypt_bytes(KEYCHECK_TEXT, identity.to_public(), compress=False)
            self.rclone.rcat(self.path(KEYCHECK), keycheck)
            marker = json.dumps({"format": FORMAT}).encode() + b"\n"
            self.rclone.rcat(self.path(MARKER), marker)
            return True
        self.check_key(identity)
        return False

    def check_key(self, identity: x25519.Identity) -> None:
        try:
            encrypted = self.rclone.cat(self.path(KEYCHECK))
        except RemoteNotFound:
            encrypted = b""
        if not encrypted:
            raise RemoteFormatError(f"{KEYCHECK} is missing on the remote")
        try:
            matches = decrypt_bytes(encrypted, identity, compressed=False) == KEYCHECK_TEXT
        except RemoteFormatError:
            matches = False
        if not matches:
            raise KeyFileError(
                "the key does not match this remote: it was set up with a different "
                "passphrase or key"
            )

    def mirror_metadata(self, folder: Path) -> None:
        """Make `folder` hold exactly the remote's marker and encrypted manifests, in one
        rclone call (unchanged files are not transferred again); check the format.

        The call is bounded in total by rclone's timeout, retries included: a remote that
        accepts connections and never answers costs that long, not three times as long."""
        private_folder(folder)
        wanted = [f"/{MARKER}", f"/{MANIFESTS}/*.age"]
        try:
            self.rclone.mirror(self.root, str(folder), wanted)
        except RemoteNotFound:
            shutil.rmtree(folder)
            folder.mkdir(mode=0o700)
        marker = folder / MARKER
        if not marker.exists():
            self.check_folder()
            raise RemoteFormatError(
                f"{self.root} is not a claude-sync remote (no {MARKER}): run `claude-sync init`"
            )
        parse_marker(marker.read_bytes())

    def upload_objects(self, staging: Path, names: list[str]) -> None:
        """Send staging/objects/<aa>/<name>.age for every name, in one rclone call.

        Each is dated now first: rclone gives a file on the remote its local time, and the
        grace period `prune` gives new objects (a push sends them before its manifest names
        them) must count from the sending, not from the encryption."""
        now = time.time()
        for name in names:
            os.utime(staging / object_path(name), (now, now))
        list_file = staging / "upload-list"
        list_file.write_text("".join(object_path(name) + "\n" for name in names))
        self.rclone.copy_files(str(staging), self.root, list_file)

    def download_objects(self, staging: Path, names: list[str]) -> None:
        """Fetch the objects into staging/objects/<aa>/<name>.age, in one rclone call."""
        list_file = staging / "download-list"
        list_file.write_text("".join(object_path(name) + "\n" for name in names))
        self.rclone.copy_files(self.root, str(staging), list_file)

    def upload_manifest(self, device_id: str, encrypted: Path) -> None:
        self.rclone.copyto(str(encrypted), self.path(f"{MANIFESTS}/{device_id}.age"))

    def delete_manifest(self, device_id: str) -> None:
        """Remove a device's manifest: what it published is no longer part of the remote."""
        self.rclone.delete_file(self.path(f"{MANIFESTS}/{device_id}.age"))

    def list_objects(self) -> dict[str, RemoteObject]:
        """Every object on the remote, with its size and age, in one listing."""
        try:
            entries = self.rclone.list_files(self.path(OBJECTS))
        except RemoteNotFound:
            return {}
        return {
            entry["Name"][: -len(".age")]: RemoteObject(entry["Size"], _seconds(entry["ModTime"]))
            for entry in entries
            if entry["Name"].endswith(".age")
        }

    def delete_objects(self, staging: Path, names: list[str]) -> None:
        """Delete objects/<aa>/<name>.age for every name, in one rclone call that can touch
        nothing outside objects/."""
        list_file = staging / "delete-list"
        below = [object_path(name).removeprefix(f"{OBJECTS}/") for name in names]
        list_file.write_text("".join(path + "\n" for path in below))
        self.rclone.delete_files(self.path(OBJECTS), list_file)


@dataclass(frozen=True)
class RemoteObject:
    size: int
    modified: float  # seconds since the epoch, as the remote dates it


_RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def _seconds(text: str) -> float:
    """A time as rclone writes it (RFC 3339, up to nanoseconds) in seconds since the epoch;
    one it cannot read counts as the future: such an object never looks old."""
    found = _RFC3339.match(text)
    if found is None:
        return math.inf
    zone = "+00:00" if found[3] == "Z" else found[3]
    return datetime.datetime.fromisoformat(found[1] + zone).timestamp() + float(found[2] or 0)
