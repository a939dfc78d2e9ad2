"""The remote: where things live on it, and the calls that read and write them.

Format 2:

    <root>/CLAUDE-SYNC.json           plaintext {"format": 2, "kdf": {"salt": "<base64>"}},
                                      nothing secret: the passphrase KDF's salt
    <root>/keycheck.age               age(KEYCHECK_TEXT), no zstd, so the stock age CLI
                                      reads it: a wrong key fails at init
    <root>/objects/<aa>/<name>.age    content objects, immutable, <aa> = name[:2]
    <root>/journal/<device-id>/<seq>-<random>.age
                                      each device's entries, immutable (see `journal`)

Write order for a new remote: keycheck.age, then CLAUDE-SYNC.json, so a remote with the
marker always has its keycheck. For a push: every object first, the journal entry last;
after a snapshot, the device's own entries below it are deleted.

Format 1 had `manifests/<device-id>.age` (one per device, overwritten by each push) in
place of the journal, and the fixed salt; `claude-sync migrate` turns it into format 2.
Deletions: `prune` deletes the objects no device's view names (none uploaded lately: a
push may be between its objects and its journal entry); `devices forget` deletes one
device's journal.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime
import errno
import functools
import json
import math
import os
import re
import shutil
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pyrage import x25519

from .errors import ClaudeSyncError, KeyFileError, RemoteFolderMissing, RemoteFormatError
from .files import NO_SPACE, disk_full, private_folder
from .keys import KDF_SALT
from .rclone import Progress, Rclone, RcloneCall, RemoteNotFound

FORMAT = 2
MARKER = "CLAUDE-SYNC.json"
KEYCHECK = "keycheck.age"
KEYCHECK_TEXT = b"claude-sync keycheck v1\n"
OBJECTS = "objects"
JOURNAL = "journal"
OBJECT_NAME = re.compile(r"^[0-9a-f]{64}$")
MANIFESTS = "manifests"  # format 1


def object_path(name: str) -> str:
    """An object's path below the root, e.g. objects/3f/3f9a....age."""
    return f"{OBJECTS}/{name[:2]}/{name}.age"


@dataclass(frozen=True)
class Marker:
    """What CLAUDE-SYNC.json says: the format, and the salt a passphrase is derived with."""

    format: int
    salt: bytes

    def to_bytes(self) -> bytes:
        salt = base64.b64encode(self.salt).decode()
        return json.dumps({"format": self.format, "kdf": {"salt": salt}}).encode() + b"\n"


def parse_marker(raw: bytes) -> Marker:
    """CLAUDE-SYNC.json, checked: format 1 (the fixed salt) or 2 (its own salt)."""
    try:
        document = json.loads(raw)
        found = document["format"]
    except (ValueError, KeyError, TypeError):
        raise RemoteFormatError(f"{MARKER} on the remote is not valid") from None
    if found == 1:
        return Marker(1, KDF_SALT)
    if found != FORMAT:
        raise RemoteFormatError(
            f"the remote uses format {found!r}; this claude-sync reads format {FORMAT} "
            "(upgrade claude-sync)"
        )
    try:
        salt = base64.b64decode(document["kdf"]["salt"], validate=True)
    except (KeyError, TypeError, binascii.Error):
        raise RemoteFormatError(f"{MARKER} on the remote has no valid kdf salt") from None
    if not 16 <= len(salt) <= 64:
        raise RemoteFormatError(f"{MARKER} on the remote has no valid kdf salt")
    return Marker(FORMAT, salt)


def check_current(marker: Marker) -> None:
    """Raise unless the remote is in the format this code syncs with."""
    if marker.format == 1:
        raise RemoteFormatError(
            "the remote uses format 1: run `claude-sync migrate` once, from any device, "
            "to upgrade it (older claude-sync releases then ask to be upgraded)"
        )


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
    import configparser  # a local remote's check only: kept off the start-up path

    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read(config_file)
    except (configparser.Error, OSError, UnicodeDecodeError):
        return None  # rclone reports a config it cannot read itself
    if not parser.has_section(name) or parser[name].get("type", "").strip() != "local":
        return None
    return Path(path).expanduser()


def put_in_folder(file: Path, folder: Path, relative: str) -> bool:
    """Move `file` to `relative` below the remote's `folder` on this machine, as rclone's
    move would: by a rename, so that it appears whole, in one step. False when that would
    cross file systems (EXDEV: the caller sends it with rclone); any other failure is one
    line that names the folder. A folder gone (an unmounted disk) is not made anew, for a
    later mount to hide what went into it."""
    target = folder / relative
    try:
        try:
            os.replace(file, target)
        except FileNotFoundError:
            if not folder.is_dir():
                raise RemoteFolderMissing(folder) from None
            private_folder(target.parent)
            os.replace(file, target)
    except OSError as error:
        if error.errno == errno.EXDEV:
            return False
        raise _folder_error(folder, error) from None
    return True


def _folder_error(folder: Path, error: OSError) -> ClaudeSyncError:
    """The one line for a failed change to the remote's folder on this machine."""
    if error.errno in NO_SPACE:
        return disk_full(error, folder, "upload")
    return ClaudeSyncError(f"cannot write to the remote folder {folder}: {error.strerror}")


def missing_folder(root: str, rclone_config: str | None) -> Path | None:
    """The local folder `root` names, when it does not exist."""
    folder = local_folder(root, rclone_config)
    return folder if folder is not None and not folder.exists() else None


class Remote:
    """The sync root on one rclone remote."""

    def __init__(self, rclone: Rclone, root: str) -> None:
        self.rclone = rclone
        self.root = root
        self._mirroring: tuple[Path, RcloneCall] | None = None  # see `mirroring_early`

    @functools.cached_property
    def folder_here(self) -> Path | None:
        """The remote's folder, when it is a local one named by its absolute path (see
        `local_folder`): a push and a pull read and write the journal and the objects there
        in place, where rclone would only copy each once more (see `metadata`,
        `_put_here`)."""
        folder = local_folder(self.root, self.rclone.config_file)
        written = Path(self.root.partition(":")[2])  # as rclone reads it: `~` is no home
        return folder if folder is not None and written.is_absolute() else None

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

    def read_marker(self) -> Marker | None:
        """CLAUDE-SYNC.json, or None on a remote not yet initialised."""
        try:
            raw = self.rclone.cat(self.path(MARKER))
        except RemoteNotFound:
            return None
        # On S3, `rclone cat` of a missing key succeeds with no output: the marker is never empty.
        return parse_marker(raw) if raw else None

    def initialize(self, identity: x25519.Identity, salt: bytes) -> bool:
        """Create the root; on a new remote write the keycheck and a format-2 marker with
        `salt` (the one `identity` was derived with, if from a passphrase); else check the
        key. Returns True when the remote was new."""
        # Reading first gives rclone's clearest error for an unreachable remote.
        if self.read_marker() is None:
            self.rclone.mkdir(self.root)
            from .crypto import encrypt_bytes  # see check_key

            keycheck = encrypt_bytes(KEYCHECK_TEXT, identity.to_public(), compress=False)
            self.rclone.rcat(self.path(KEYCHECK), keycheck)
            self.write_marker(Marker(FORMAT, salt))
            return True
        self.check_key(identity)
        return False

    def write_marker(self, marker: Marker) -> None:
        self.rclone.rcat(self.path(MARKER), marker.to_bytes())

    def check_key(self, identity: x25519.Identity) -> None:
        # Imported here, not above: a run that sends and fetches nothing (a no-op push)
        # needs neither age nor zstd.
        from .crypto import decrypt_bytes

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

    def mirror_metadata(self, folder: Path, manifests: bool = False) -> Marker:
        """Make `folder` hold exactly the remote's marker and journal (with `manifests`:
        format 1's manifests too, which change in place: mirror those into a new folder),
        in one rclone call; return the marker. Journal entries are
        immutable and uniquely named, so a name present here is never fetched again, and
        an entry this device wrote and put here itself is never fetched at all. A mirror
        into `folder` started by `mirroring_early` is waited for, not run again.

        The call is bounded in total by rclone's timeout, retries included: a remote that
        accepts connections and never answers costs that long, not three times as long."""
        started, self._mirroring = self._mirroring, None
        try:
            if started is not None and started[0] == folder and not manifests:
                started[1].finish()
            else:
                if started is not None:
                    started[1].stop()
                self._start_mirror(folder, manifests).finish()
        except RemoteNotFound:
            shutil.rmtree(folder)
            folder.mkdir(mode=0o700)
        return self._marker_in(folder)

    def metadata(self, mirror: Path) -> tuple[Marker, Path]:
        """The marker, and a folder whose journal/ is the remote's journal as it is now: a
        remote in a folder on this machine (`folder_here`) is read where it is, as its
        objects are; any other is mirrored into `mirror` first (`mirror_metadata`). Read in
        place, an entry listed may be gone by the time it is read (deleted below its
        device's new snapshot): the reader lists again."""
        here = self.folder_here
        if here is None:
            return self.mirror_metadata(mirror), mirror
        return self._marker_in(here), here

    def _marker_in(self, folder: Path) -> Marker:
        marker = folder / MARKER
        try:
            raw = marker.read_bytes() if stat.S_ISREG(os.stat(marker).st_mode) else None
        except FileNotFoundError:
            raw = None
        except OSError as error:
            raise ClaudeSyncError(f"cannot read {marker}: {error.strerror}") from None
        if raw is None:
            self.check_folder()
            raise RemoteFormatError(
                f"{self.root} is not a claude-sync remote (no {MARKER}): run `claude-sync init`"
            )
        return parse_marker(raw)

    @contextlib.contextmanager
    def mirroring_early(self, folder: Path) -> Iterator[None]:
        """Start `mirror_metadata(folder)` now, for the run inside to wait for when it
        reads the remote: rclone's start and its listing overlap the run's own start
        (imports, the state, the scan). Stopped at the end if the run never read it. A
        remote read in place (see `metadata`) has nothing to mirror."""
        if self.folder_here is not None:
            yield
            return
        self._mirroring = (folder, self._start_mirror(folder, manifests=False))
        try:
            yield
        finally:
            started, self._mirroring = self._mirroring, None
            if started is not None:
                started[1].stop()

    def _start_mirror(self, folder: Path, manifests: bool) -> RcloneCall:
        private_folder(folder)
        wanted = [f"/{MARKER}", f"/{JOURNAL}/**", *([f"/{MANIFESTS}/*.age"] if manifests else [])]
        return self.rclone.start_mirror(self.root, str(folder), wanted)

    def delete_manifests(self) -> None:
        """Remove format 1's manifests/ (after a migration wrote the marker)."""
        with contextlib.suppress(RemoteNotFound):
            self.rclone.run(["purge", self.path(MANIFESTS)], bounded=True)

    def upload_entry(self, device_id: str, name: str, encrypted: Path) -> None:
        """Send the entry `encrypted` as `name` of `device_id` (to a folder on this machine,
        it is renamed there: see `_put_here`)."""
        relative = f"{JOURNAL}/{device_id}/{name}"
        if self._put_here(encrypted.parent, [(encrypted.name, relative)]):
            self.rclone.copyto(str(encrypted), self.path(relative))

    def delete_entries(self, device_id: str, names: list[str], staging: Path) -> None:
        """Delete entries of `device_id`, in one rclone call (in place, one by one, from a
        folder on this machine)."""
        here = self.folder_here
        if here is not None:
            for name in names:
                try:
                    (here / JOURNAL / device_id / name).unlink(missing_ok=True)
                except OSError as error:
                    raise _folder_error(here, error) from None
            return
        list_file = staging / "delete-list"
        list_file.write_text("".join(f"{name}\n" for name in names))
        self.rclone.delete_files(self.path(f"{JOURNAL}/{device_id}"), list_file)

    def upload_objects(
        self,
        staging: Path,
        names: list[str],
        replace: bool = False,
        progress: Progress | None = None,
    ) -> None:
        """Send staging/objects/<aa>/<name>.age for every name, in one rclone call (told to
        `progress` as it goes), or, to a folder on this machine, by a rename each (see
        `_put_here`); each leaves staging as it is sent. Objects are immutable; only
        `replace` (a repair of corrupt ones) writes over one there (a rename in place
        writes over one only with the same plaintext: a name is its plaintext's).

        Each is dated now first: rclone gives a file on the remote its local time, and the
        grace period `prune` gives new objects (a push sends them before its journal entry
        names them) must count from the sending, not from the encryption."""
        now = time.time()
        for name in names:
            os.utime(staging / object_path(name), (now, now))
        left = self._put_here(staging, [(object_path(name),) * 2 for name in names])
        if not left:
            return
        list_file = staging / "upload-list"
        list_file.write_text("".join(relative + "\n" for _, relative in left))
        self.rclone.move_files(
            str(staging), self.root, list_file, ignore_times=replace, progress=progress
        )

    def _put_here(self, source: Path, files: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """Move each (file below `source`, path below the root) into the remote's folder
        when it is on this machine (`folder_here`, see `put_in_folder`). What is left (all
        of it for another remote, the rest once the folder proves to be on another file
        system) goes through rclone."""
        here = self.folder_here
        if here is None:
            return files
        for index, (name, relative) in enumerate(files):
            if not put_in_folder(source / name, here, relative):
                return files[index:]
        return []

    def download_objects(
        self, staging: Path, names: list[str], progress: Progress | None = None
    ) -> None:
        """Fetch the objects into staging/objects/<aa>/<name>.age, in one rclone call (told
        to `progress` as it goes)."""
        list_file = staging / "download-list"
        list_file.write_text("".join(object_path(name) + "\n" for name in names))
        self.rclone.copy_files(self.root, str(staging), list_file, progress=progress)

    def delete_journal(self, device_id: str) -> None:
        """Remove a device's journal: what it published is no longer part of the remote."""
        with contextlib.suppress(RemoteNotFound):
            self.rclone.run(["purge", self.path(f"{JOURNAL}/{device_id}")], bounded=True)

    def list_objects(self, strays: list[str] | None = None) -> dict[str, RemoteObject]:
        """Every object on the remote, with its size and age, in one listing. A name that
        is no object's (a sync client's copy, a macOS `._` file) is left out, never taken
        for one, and put in `strays` when given."""
        try:
            entries = self.rclone.list_files(self.path(OBJECTS))
        except RemoteNotFound:
            return {}
        found = {}
        for entry in entries:
            name = entry["Name"][: -len(".age")]
            if OBJECT_NAME.match(name) and entry["Path"] == f"{name[:2]}/{name}.age":
                found[name] = RemoteObject(entry["Size"], _seconds(entry["ModTime"]))
            elif strays is not None:
                strays.append(f"{OBJECTS}/{entry['Path']}")
        return found

    def delete_objects(self, staging: Path, names: list[str]) -> None:
        """Delete objects/<aa>/<name>.age for every name, in one rclone call that can touch
        nothing outside objects/."""
        list_file = staging / "delete-list"
        below = [object_path(name).removeprefix(f"{OBJECTS}/") for name in names]
        list_file.write_text("".join(path + "\n" for path in below))
        self.rclone.delete_files(self.path(OBJECTS), list_file)


@dataclass(frozen=True)
class RemoteObject:
    """An object in the remote's objects/ folder, as a listing shows it."""

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
