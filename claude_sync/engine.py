"""push, pull and status as sequences of steps over a plan.

Push: scan; if nothing changed, stop (no network). Else fetch the manifests, encrypt what
changed into staging/, send every object in one rclone call, then this device's manifest,
then save state.json. Pull: fetch the manifests that changed (one rclone call), plan, fetch
every needed object in one call, assemble and verify every file in staging/ (nothing in the
Claude folder changes until all of them check out), then for each path copy it beside the
target, fsync, set the recorded mtime and rename it into place.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from . import crypto
from .errors import ClaudeSyncError, RemoteFormatError
from .files import private_folder, write_private
from .manifest import Manifest, decode_manifest, encode_manifest, now_iso
from .pathmap import CONFLICT_COPY, PathMap, Rules, is_transcript, temporary_name
from .plan import (
    Adopt,
    Download,
    Publish,
    PullAction,
    PushAction,
    Resolve,
    Sweep,
    Tombstone,
    Trash,
    Upload,
    decide_pull,
    decide_push,
    remote_rank,
    resolve,
)
from .remote import MANIFESTS, object_path
from .scan import hash_file, prefix_sha256, read_prefix, scan
from .state import Entry, load_state, save_state
from .versions import Segment, Version, VersionVector
from .workspace import Workspace

MAX_SEGMENTS = 16
STAMPS = "manifest-stamps"
MAX_NAME_BYTES = 240  # below the usual 255, leaving room for a -N suffix


@dataclass(frozen=True)
class Event:
    """Something worth telling the user; the CLI decides how (or whether) to show it."""

    kind: str  # upload, download, delete, conflict, warning, detail
    path: str = ""
    size: int = 0
    index: int = 0
    total: int = 0
    detail: str = ""


Listener = Callable[[Event], None]


@dataclass
class Summary:
    uploaded: int = 0
    published: int = 0
    downloaded: int = 0
    deleted: int = 0
    conflicts: int = 0
    planned: list[str] = field(default_factory=list)


@dataclass
class RemoteView:
    manifests: dict[str, Manifest]

    def versions(self) -> dict[str, list[Version]]:
        by_path: dict[str, list[Version]] = {}
        for manifest in self.manifests.values():
            for path, version in manifest.files.items():
                by_path.setdefault(path, []).append(version)
        return by_path

    def device_name(self, device_id: str) -> str:
        manifest = self.manifests.get(device_id)
        return manifest.device_name if manifest else device_id

    def known_segments(self) -> set[str]:
        """The SHA-256 of every segment a manifest names: objects already on the remote."""
        return {
            segment.sha256
            for manifest in self.manifests.values()
            for version in manifest.files.values()
            for segment in version.segments
        }


class Session:
    """One run of push or pull over a workspace (the lock is taken by the caller)."""

    def __init__(self, workspace: Workspace, listen: Listener) -> None:
        self.ws = workspace
        self.paths = PathMap(Path.home())
        self.listen: Listener = lambda event: listen(
            dataclasses.replace(event, path=self.paths.to_local(event.path))
        )
        self.config = workspace.config
        self.device = workspace.config.device_id
        self.rules = Rules.from_config(self.config.include, self.config.exclude)
        self.state_path = workspace.home / "state.json"
        self.state, warning = load_state(self.state_path, self.device, self.config.remote_root)
        if warning:
            self.listen(Event("warning", detail=warning))
        scanned = scan(workspace.claude, self.rules, self.paths, self.state)
        self.local = scanned.files
        for message in scanned.warnings:
            self.listen(Event("warning", detail=message))
        self._remote: RemoteView | None = None

    # remote ------------------------------------------------------------------

    def remote(self) -> RemoteView:
        if self._remote is None:
            self._remote = fetch_remote_view(self.ws)
            own = self._remote.manifests.get(self.device)
            written = self.stamps()
            if own is not None and written and own.stamp not in written:
                raise ClaudeSyncError(
                    f"manifests/{self.device}.age was written by another machine with this "
                    f"device id (was {self.ws.home} copied?): move {self.ws.home}/config.yaml "
                    "aside and run `claude-sync init --force` to give this machine its own id"
                )
        return self._remote

    def stamps(self) -> list[str]:
        """The stamps of the manifests this home wrote (the last few)."""
        try:
            return (self.ws.home / STAMPS).read_text().split()
        except FileNotFoundError:
            return []

    def new_stamp(self) -> str:
        """A stamp for the manifest about to be written, recorded before it is sent."""
        stamp = secrets.token_hex(8)
        write_private(self.ws.home / STAMPS, "\n".join([*self.stamps()[-2:], stamp]) + "\n")
        return stamp

    def object_name(self, sha256: str) -> str:
        return crypto.object_name(self.ws.name_key, sha256)

    # local paths -------------------------------------------------------------

    def target(self, path: str) -> Path:
        """The local file for a remote path, refusing any route through a symbolic link."""
        local = self.paths.to_local(path)
        current = self.ws.claude
        for part in local.split("/")[:-1]:
            current = current / part
            if current.is_symlink() or (current.exists() and not current.is_dir()):
                raise RemoteFormatError(
                    f"refusing to write {path}: {current} is a symbolic link or not a folder"
                )
        final = self.ws.claude / local
        if final.is_symlink():
            raise RemoteFormatError(f"refusing to write {path}: it is a symbolic link locally")
        return final

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

    def save(self) -> None:
        save_state(self.state_path, self.state)

    def all_paths(self) -> set[str]:
        return {path for path in set(self.local) | set(self.state.files) if self.rules.synced(path)}

    def forget_unsynced(self) -> bool:
        """Stop tracking paths the rules no longer sync (never a deletion elsewhere)."""
        unsynced = [path for path in self.state.files if not self.rules.synced(path)]
        for path in unsynced:
            del self.state.files[path]
        return bool(unsynced)


def fetch_remote_view(ws: Workspace) -> RemoteView:
    """Every device's manifest; only those whose size or mtime changed are decrypted again."""
    manifests: dict[str, Manifest] = {}
    for device_id, loaded in _load_manifests(ws):
        if isinstance(loaded, RemoteFormatError):
            raise loaded
        manifests[device_id] = loaded
    return RemoteView(manifests)


def _load_manifests(ws: Workspace) -> list[tuple[str, Manifest | RemoteFormatError]]:
    """Mirror the remote's manifests (one rclone call), then decrypt and validate each."""
    mirror = ws.cache / "remote"
    decoded_folder = ws.cache / "manifests"
    ws.remote.mirror_metadata(mirror)
    private_folder(decoded_folder)
    loaded: list[tuple[str, Manifest | RemoteFormatError]] = []
    for encrypted in sorted((mirror / MANIFESTS).glob("*.age")):
        device_id = encrypted.name[: -len(".age")]
        try:
            loaded.append((device_id, _load_manifest(ws, encrypted, decoded_folder, device_id)))
        except RemoteFormatError as error:
            loaded.append((device_id, error))
    names = {device_id for device_id, _ in loaded}
    for stale in decoded_folder.glob("*.json"):
        if stale.stem not in names:
            stale.unlink()
    return loaded


def _load_manifest(
    ws: Workspace, encrypted: Path, decoded_folder: Path, device_id: str
) -> Manifest:
    info = encrypted.stat()
    stamp = f"{info.st_size}:{info.st_mtime_ns}"
    cached = decoded_folder / f"{device_id}.json"
    if cached.exists():
        try:
            document = json.loads(cached.read_text())
            if document.get("stamp") == stamp:
                return decode_manifest(document["manifest"].encode(), device_id)
        except (ValueError, KeyError, AttributeError):
            pass
    try:
        data = crypto.decrypt_bytes(encrypted.read_bytes(), ws.identity)
    except RemoteFormatError:
        raise RemoteFormatError(
            f"manifests/{device_id}.age cannot be decrypted with this key "
            "(encrypted to a different key, or corrupted): refused"
        ) from None
    try:
        manifest = decode_manifest(data, device_id)
    except RemoteFormatError as error:
        raise RemoteFormatError(f"manifests/{device_id}.age: {error}") from None
    write_private(cached, json.dumps({"stamp": stamp, "manifest": data.decode()}))
    return manifest


# push ------------------------------------------------------------------------


class _HashingReader:
    """Passes reads through while hashing them: the whole-file hash of an appended file."""

    def __init__(self, source: BinaryIO, digest) -> None:
        self._source = source
        self._digest = digest

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        self._digest.update(data)
        return data


def _encrypt_upload(
    session: Session, action: Upload, staging: Path
) -> tuple[Version, Segment | None, Path] | None:
    """Encrypt a changed file into staging; return its version, the segment it encrypted
    (None for an empty file) and the file, or None when the file vanished meanwhile.

    A file that only grew since its base keeps the base's segments and adds one for the
    appended bytes, unless that would make more than MAX_SEGMENTS. The prefix is checked on
    the very bytes that are hashed, in one pass, so a file rewritten meanwhile is caught.
    """
    file = session.ws.claude / session.paths.to_local(action.path)
    try:
        with open(file, "rb") as handle:
            version, new_segment = _encrypt_handle(session, action, handle, staging)
    except FileNotFoundError:
        return None
    return version, new_segment, file


def _encrypt_handle(
    session: Session, action: Upload, handle: BinaryIO, staging: Path
) -> tuple[Version, Segment | None]:
    base = action.base
    info = os.fstat(handle.fileno())
    whole = hashlib.sha256()
    segments: list[Segment] = []
    if (
        base is not None
        and not base.deleted
        and base.segments
        and len(base.segments) < MAX_SEGMENTS
        and info.st_size > base.size
    ):
        prefix = hashlib.sha256()
        if read_prefix(handle, base.size, prefix.update) and prefix.hexdigest() == base.sha256:
            whole, segments = prefix, list(base.segments)
        else:
            handle.seek(0)
    temporary = staging / temporary_name()
    digest = crypto.encrypt_stream(_HashingReader(handle, whole), temporary, session.ws.recipient)
    new_segment = Segment(digest.sha256, digest.size) if digest.size else None
    if new_segment is not None:
        segments.append(new_segment)
        destination = staging / object_path(session.object_name(digest.sha256))
        private_folder(destination.parent)
        os.replace(temporary, destination)
    else:
        temporary.unlink()
    version = Version(
        whole.hexdigest(),
        sum(segment.size for segment in segments),
        info.st_mtime_ns,
        action.vector,
        session.device,
        False,
        tuple(segments),
    )
    return version, new_segment


def plan_push(session: Session, remote: dict[str, list[Version]]) -> list[PushAction]:
    """What a push would do; with no remote versions given, decided offline."""
    actions = []
    for path in sorted(session.all_paths()):
        entry, local = session.state.files.get(path), session.local.get(path)
        action = decide_push(path, local, entry, remote.get(path, []), session.device)
        if action is not None:
            actions.append(action)
    return actions


def push(ws: Workspace, listen: Listener, dry_run: bool = False, force: bool = False) -> Summary:
    session = Session(ws, listen)
    summary = Summary()
    if not ws.claude.is_dir() and any(not e.base.deleted for e in session.state.files.values()):
        raise ClaudeSyncError(
            f"the Claude folder {ws.claude} is missing, but files were synced from it: "
            "nothing pushed (is CLAUDE_CONFIG_DIR right?)"
        )
    if session.forget_unsynced() and not dry_run:
        session.save()
    offline = plan_push(session, {})
    if not offline:
        return summary
    if all(isinstance(action, Sweep) for action in offline):
        if not dry_run:
            for action in offline:
                session.state.files[action.path].swept = True
            session.save()
        return summary
    remote = session.remote().versions()
    actions = plan_push(session, remote)
    tombstones = [a for a in actions if isinstance(a, Tombstone)]
    deletable = {
        path
        for path, versions in remote.items()
        if not is_transcript(path) and any(not v.deleted for v in versions)
    }
    if len(tombstones) > 1 and 2 * len(tombstones) > len(deletable) and not force:
        raise ClaudeSyncError(
            f"this push would delete {len(tombstones)} of the {len(deletable)} files on the "
            f"remote that can be deleted; check {ws.claude}, then use --force if intended"
        )
    adopted = [a for a in actions if isinstance(a, Adopt)]
    for action in adopted:
        local = session.local[action.path]
        session.state.files[action.path] = Entry(action.version, local.size, local.mtime_ns)
    if len(adopted) == len(actions):
        if not dry_run:
            session.save()
        return summary
    uploads = [a for a in actions if isinstance(a, Upload)]
    total = len(uploads) + len(tombstones)
    if dry_run:
        for index, action in enumerate(uploads + tombstones, 1):
            kind = "upload" if isinstance(action, Upload) else "delete"
            size = action.local.size if isinstance(action, Upload) else 0
            session.listen(Event(kind, action.path, size, index, total, "dry run"))
        summary.uploaded, summary.deleted = len(uploads), len(tombstones)
        return summary

    staging = ws.staging / "push"
    if staging.exists():
        shutil.rmtree(staging)
    private_folder(staging)
    known = session.remote().known_segments()
    to_send: set[str] = set()
    updates: dict[str, tuple[Version, Path | None]] = {}
    for index, action in enumerate(uploads, 1):
        encrypted = _encrypt_upload(session, action, staging)
        if encrypted is None:
            session.listen(Event("warning", action.path, detail=f"{action.path} vanished"))
            continue
        version, new_segment, file = encrypted
        if new_segment is not None and new_segment.sha256 not in known:
            to_send.add(session.object_name(new_segment.sha256))
        updates[action.path] = (version, file)
        session.listen(Event("upload", action.path, version.size, index, total))
    for index, action in enumerate(tombstones, len(uploads) + 1):
        tombstone = Version("", 0, time.time_ns(), action.vector, session.device, deleted=True)
        updates[action.path] = (tombstone, None)
        session.listen(Event("delete", action.path, 0, index, total))
    if to_send:
        ws.remote.upload_objects(staging, sorted(to_send))
    for action in actions:
        if isinstance(action, Sweep):
            session.state.files[action.path].swept = True
        elif isinstance(action, Publish):
            entry = session.state.files[action.path]
            entry.base = dataclasses.replace(
                action.base, vector=action.vector, device=session.device
            )
            entry.publish = False
    for path, (version, file) in updates.items():
        entry = Entry(version)
        if file is not None:
            entry.size, entry.mtime_ns = session.local[path].size, session.local[path].mtime_ns
            if version.sha256 != session.local[path].sha256:
                entry.size = entry.mtime_ns = None
        session.state.files[path] = entry
    previous = session.remote().manifests.get(session.device)
    manifest = Manifest(
        session.device,
        ws.config.device_name,
        now_iso(),
        {
            **(previous.files if previous else {}),
            **{path: entry.base for path, entry in session.state.files.items()},
        },
        session.new_stamp(),
    )
    encrypted = staging / "manifest.age"
    encrypted.write_bytes(crypto.encrypt_bytes(encode_manifest(manifest), ws.recipient))
    ws.remote.upload_manifest(session.device, encrypted)
    session.state.last_push = now_iso()
    session.save()
    shutil.rmtree(staging, ignore_errors=True)
    summary.uploaded = sum(file is not None for _, file in updates.values())
    summary.published = sum(isinstance(action, Publish) for action in actions)
    summary.deleted = len(tombstones)
    return summary


# pull ------------------------------------------------------------------------


def plan_pull(session: Session) -> list[PullAction]:
    remote = session.remote().versions()
    actions: list[PullAction] = []
    for path in sorted(session.all_paths() | set(remote)):
        if not session.rules.synced(path):
            continue
        action = decide_pull(
            path,
            session.local.get(path),
            session.state.files.get(path),
            remote.get(path, []),
            session.device,
        )
        if action is not None:
            actions.append(action)
    return actions


class _Assembler:
    """Builds files in staging from downloaded objects, verifying every segment and the whole.

    Every file a pull needs is assembled and verified here before anything in the Claude
    folder changes, so a corrupt, truncated, swapped or missing object changes nothing.
    """

    def __init__(self, session: Session, downloads: Path) -> None:
        self.session = session
        self.downloads = downloads
        self.assembled: dict[tuple[str, int], Path] = {}

    def path_of(self, version: Version) -> Path:
        return self.assembled[(version.sha256, version.size)]

    def assemble(self, need: Needed) -> None:
        version = need.version
        key = (version.sha256, version.size)
        if key in self.assembled:
            return
        destination = self.downloads / "files" / str(len(self.assembled))
        destination.parent.mkdir(mode=0o700, exist_ok=True)
        whole = hashlib.sha256()
        path = need.path
        with open(destination, "wb") as out:
            if need.reused:
                held = sum(segment.size for segment in version.segments[: need.reused])
                with open(self.session.target(path), "rb") as local:
                    read = read_prefix(local, held, whole.update, out.write)
                if not read or whole.hexdigest() != need.reused_sha256:
                    raise ClaudeSyncError(f"{path} changed during the pull; run it again")
            for segment in version.segments[need.reused :]:
                name = self.session.object_name(segment.sha256)
                source = self.downloads / object_path(name)
                try:
                    digest = crypto.decrypt_stream(
                        source, _TeeWriter(out, whole), self.session.ws.identity
                    )
                except FileNotFoundError:
                    raise RemoteFormatError(
                        f"object {object_path(name)} of {path} is missing on the remote: refused"
                    ) from None
                except RemoteFormatError as error:
                    raise RemoteFormatError(
                        f"object {object_path(name)} of {path} is corrupt or tampered ({error})"
                    ) from None
                if (digest.sha256, digest.size) != (segment.sha256, segment.size):
                    raise RemoteFormatError(
                        f"object {object_path(name)} of {path} does not match its hash "
                        "(swapped or tampered): refused"
                    )
        if (whole.hexdigest(), destination.stat().st_size) != key:
            raise RemoteFormatError(f"{path} does not match its recorded hash: refused")
        self.assembled[key] = destination


class _TeeWriter:
    def __init__(self, target: BinaryIO, digest) -> None:
        self._target = target
        self._digest = digest

    def write(self, data: bytes) -> int:
        self._digest.update(data)
        return self._target.write(data)

    def flush(self) -> None:
        self._target.flush()


def _beside(source: Path, target: Path, mtime_ns: int | None) -> Path:
    """A fsynced copy of `source` in a temporary file beside `target`, ready to rename.

    It takes the mode of the file it replaces (a private settings.json stays private)."""
    private_folder(target.parent)
    temporary = target.with_name(temporary_name())
    try:
        with open(source, "rb") as reading, open(temporary, "wb") as out:
            shutil.copyfileobj(reading, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileNotFoundError):
            shutil.copymode(target, temporary, follow_symlinks=False)
        if mtime_ns is not None:
            os.utime(temporary, ns=(mtime_ns, mtime_ns))
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return temporary


def _keep_in_trash(trash: Path, relative: str, file: Path, move: bool = False) -> None:
    """Keep `file` as trash/<time>/<relative> (a hard link, or moved), never over another."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    destination = trash / stamp / relative
    number = 1
    while destination.exists() or destination.is_symlink():
        number += 1
        destination = trash / f"{stamp}-{number}" / relative
    private_folder(destination.parent)
    if move:
        os.replace(file, destination)
        return
    try:
        os.link(file, destination)
    except OSError:
        shutil.copy2(file, destination)


def _trash_copy(session: Session, path: str, file: Path) -> None:
    """Keep the current local file in trash/ before a pull replaces or deletes it."""
    _keep_in_trash(session.ws.trash, session.paths.to_local(path), file)


def conflict_name(local_path: str, when_ns: int, device_name: str) -> str:
    """<name>.conflict-<YYYYMMDD-HHMMSS>-<device>.<ext>, beside the original."""
    folder, _, name = local_path.rpartition("/")
    stem, dot, extension = name.rpartition(".")
    if not stem:
        stem, dot, extension = name, "", ""
    when = datetime.datetime.fromtimestamp(when_ns / 1e9, datetime.timezone.utc)
    device = re.sub(r"[^A-Za-z0-9_-]", "-", device_name)[:32] or "device"
    tail = f".conflict-{when:%Y%m%d-%H%M%S}-{device}{dot}{extension}"
    room = MAX_NAME_BYTES - len(tail.encode())
    stem = stem.encode()[: max(room, 1)].decode(errors="ignore") or "file"
    copy = stem + tail
    return f"{folder}/{copy}" if folder else copy


def _free_copy_name(copy: Path, source: Path) -> Path | None:
    """`copy`, or `copy` with -2, -3... after the device when another version holds the name
    (two versions from one device in one second); None when the same bytes are already there."""
    stem, dot, extension = copy.name.rpartition(".")
    if extension.startswith("conflict-"):
        stem, dot, extension = copy.name, "", ""
    candidate, number, wanted = copy, 1, hash_file(source)
    while candidate.exists():
        if hash_file(candidate) == wanted:
            return None
        number += 1
        candidate = copy.with_name(f"{stem}-{number}{dot}{extension}")
    return candidate


@dataclass(frozen=True)
class Needed:
    """A version whose bytes a pull needs; the first `reused` segments are already local."""

    path: str
    version: Version
    reused: int = 0
    reused_sha256: str = ""


def _download_need(session: Session, path: str, version: Version) -> Needed:
    """What to fetch for `version`: when the unchanged local file already holds its leading
    segments (a transcript that grew elsewhere), only the new ones."""
    entry, local = session.state.files.get(path), session.local.get(path)
    if entry is None or local is None or entry.base.deleted or not entry.base.segments:
        return Needed(path, version)
    held = entry.base.segments
    unchanged = (local.sha256, local.size) == (entry.base.sha256, entry.base.size)
    if unchanged and version.segments[: len(held)] == held and len(version.segments) > len(held):
        return Needed(path, version, len(held), entry.base.sha256)
    return Needed(path, version)


def _to_fetch(session: Session, actions: list[PullAction]) -> list[Needed]:
    """Every version whose bytes the pull needs from the remote."""
    wanted: list[Needed] = []
    for action in actions:
        if isinstance(action, Download):
            wanted.append(_download_need(session, action.path, action.version))
        elif isinstance(action, Resolve):
            local = session.local.get(action.path)
            wanted += [
                Needed(action.path, v)
                for v in action.options
                if not v.deleted
                and not (local and (v.sha256, v.size) == (local.sha256, local.size))
            ]
    return wanted


def pull(ws: Workspace, listen: Listener, dry_run: bool = False) -> Summary:
    session = Session(ws, listen)
    summary = Summary()
    actions = plan_pull(session)
    for action in actions:
        if not isinstance(action, Adopt):
            session.target(action.path)
    visible = [a for a in actions if not isinstance(a, Adopt)]
    if dry_run:
        for index, action in enumerate(visible, 1):
            kind = {Download: "download", Trash: "delete", Resolve: "conflict"}[type(action)]
            size = action.version.size if isinstance(action, Download) else 0
            session.listen(Event(kind, action.path, size, index, len(visible), "dry run"))
        summary.planned = [a.path for a in visible]
        return summary
    downloads = ws.staging / "pull"
    shutil.rmtree(downloads, ignore_errors=True)
    private_folder(downloads)
    try:
        wanted = _to_fetch(session, actions)
        names = {
            session.object_name(segment.sha256)
            for need in wanted
            for segment in need.version.segments[need.reused :]
        }
        if names:
            ws.remote.download_objects(downloads, sorted(names))
        assembler = _Assembler(session, downloads)
        for need in wanted:
            assembler.assemble(need)
        _apply_pull(session, assembler, actions, visible, summary)
    finally:
        shutil.rmtree(downloads, ignore_errors=True)
    return summary


def _apply_pull(
    session: Session,
    assembler: _Assembler,
    actions: list[PullAction],
    visible: list[PullAction],
    summary: Summary,
) -> None:
    index = 0
    try:
        for action in actions:
            if isinstance(action, Adopt):
                file = session.target(action.path) if action.path in session.local else None
                session.record(action.path, action.version, file)
                session.state.files[action.path].publish = action.publish
                continue
            index += 1
            if isinstance(action, Download):
                if _apply_download(session, assembler, action.path, action.version):
                    summary.downloaded += 1
                    session.listen(
                        Event("download", action.path, action.version.size, index, len(visible))
                    )
            elif isinstance(action, Trash):
                if _apply_trash(session, action.path, action.version):
                    summary.deleted += 1
                    session.listen(Event("delete", action.path, 0, index, len(visible)))
            else:
                _apply_resolve(session, assembler, action, summary)
    finally:
        session.state.last_pull = now_iso()
        session.save()


def _skip_changed(session: Session, path: str) -> None:
    session.listen(
        Event("warning", path, detail=f"{path} changed during the pull; left as it is for now")
    )


def _apply_download(session: Session, assembler: _Assembler, path: str, version: Version) -> bool:
    target = session.target(path)
    staged = assembler.path_of(version)
    temporary = _beside(staged, target, version.mtime_ns)
    if not session.unchanged_since_scan(path, target):
        temporary.unlink()
        _skip_changed(session, path)
        return False
    local = session.local.get(path)
    if local is not None and not (
        local.size <= version.size and prefix_sha256(staged, local.size) == local.sha256
    ):
        _trash_copy(session, path, target)
    os.replace(temporary, target)
    session.record(path, version, target)
    return True


def _apply_trash(session: Session, path: str, version: Version) -> bool:
    target = session.target(path)
    if not session.unchanged_since_scan(path, target):
        _skip_changed(session, path)
        return False
    if target.exists():
        _trash_copy(session, path, target)
        target.unlink()
    session.record(path, version, None)
    return True


def _apply_resolve(
    session: Session, assembler: _Assembler, action: Resolve, summary: Summary
) -> None:
    """Apply `resolve`, counting what it wrote into `summary`."""
    target = session.target(action.path)
    local = session.local.get(action.path)

    def content(version: Version) -> Path:
        if local is not None and (version.sha256, version.size) == (local.sha256, local.size):
            return target
        return assembler.path_of(version)

    def is_prefix(shorter: Version, longer: Version) -> bool:
        return prefix_sha256(content(longer), shorter.size) == shorter.sha256

    resolution = resolve(action.path, action.options, action.pending, is_prefix)
    if not session.unchanged_since_scan(action.path, target):
        _skip_changed(session, action.path)
        return
    for loser in resolution.losers:
        name = conflict_name(
            session.paths.to_local(action.path),
            loser.mtime_ns,
            session.ws.config.device_name
            if loser is action.pending
            else session.remote().device_name(loser.device),
        )
        copy_target = _free_copy_name(session.ws.claude / name, content(loser))
        if copy_target is None:
            continue
        name = copy_target.relative_to(session.ws.claude).as_posix()
        os.replace(_beside(content(loser), copy_target, loser.mtime_ns), copy_target)
        summary.conflicts += 1
        session.listen(Event("conflict", action.path, detail=name))
    remote_best = max(action.options, key=remote_rank)
    previous = session.state.files.get(action.path)
    base_vector = resolution.vector.merge(previous.base.vector if previous else VersionVector())
    winner = resolution.winner
    if winner is None:
        merged = _merge_history([content(v) for v in resolution.merged_inputs])
        temporary = target.with_name(temporary_name())
        temporary.write_bytes(merged)
        os.replace(temporary, target)
        session.state.files[action.path] = Entry(remote_best.with_vector(base_vector))
        summary.downloaded += 1
        session.listen(Event("download", action.path, len(merged), detail="merged"))
    elif resolution.keep_local:
        session.state.files[action.path] = Entry(remote_best.with_vector(base_vector))
    elif winner.deleted:
        if target.exists():
            _trash_copy(session, action.path, target)
            target.unlink()
        session.record(action.path, winner.with_vector(base_vector), None)
    elif local is not None and (winner.sha256, winner.size) == (local.sha256, local.size):
        session.record(action.path, winner.with_vector(base_vector), target)
    else:
        temporary = _beside(content(winner), target, winner.mtime_ns)
        if local is not None:
            _trash_copy(session, action.path, target)
        os.replace(temporary, target)
        session.record(action.path, winner.with_vector(base_vector), target)
        summary.downloaded += 1
        session.listen(Event("download", action.path, winner.size))
    if not resolution.keep_local and len(action.options) > 1:
        session.state.files[action.path].publish = True


def _merge_history(files: list[Path]) -> bytes:
    """The union of lines of every version, ordered by their `timestamp`, then as text."""
    lines: dict[bytes, tuple[float, bytes]] = {}
    for file in files:
        for line in file.read_bytes().splitlines():
            if not line.strip() or line in lines:
                continue
            try:
                stamp = float(json.loads(line).get("timestamp", 0))
            except (ValueError, AttributeError, TypeError):
                stamp = 0.0
            lines[line] = (stamp, line)
    ordered = sorted(lines.values())
    return b"".join(line + b"\n" for _, line in ordered)


# status ----------------------------------------------------------------------


@dataclass
class Status:
    device_id: str
    device_name: str
    remote: str
    last_push: str | None
    last_pull: str | None
    to_push: list[tuple[str, str, int]]
    to_pull: list[tuple[str, str, str]] | None


def status(ws: Workspace, listen: Listener, with_remote: bool) -> Status:
    session = Session(ws, listen)
    to_push = []
    for action in plan_push(session, {}):
        path = action.path
        if isinstance(action, Upload):
            to_push.append((session.paths.to_local(path), "upload", action.local.size))
        elif isinstance(action, Tombstone):
            to_push.append((session.paths.to_local(path), "delete", 0))
    to_pull = None
    if with_remote:
        view = session.remote()
        to_pull = []
        for action in plan_pull(session):
            if isinstance(action, Adopt):
                continue
            kind = {Download: "download", Trash: "delete", Resolve: "conflict"}[type(action)]
            versions = action.options if isinstance(action, Resolve) else (action.version,)
            devices = ", ".join(sorted({view.device_name(v.device) for v in versions}))
            to_pull.append((session.paths.to_local(action.path), kind, devices))
    return Status(
        session.device,
        ws.config.device_name,
        ws.config.remote_root,
        session.state.last_push,
        session.state.last_pull,
        to_push,
        to_pull,
    )


def conflict_copies(claude: Path) -> list[Path]:
    """Every conflict copy in the Claude folder."""
    return sorted(
        path
        for path in claude.rglob("*.conflict-*")
        if path.is_file() and CONFLICT_COPY.search(path.name)
    )


def original_of(copy: Path) -> Path:
    match = CONFLICT_COPY.search(copy.name)
    assert match is not None
    return copy.with_name(copy.name[: match.start()] + (match.group(1) or ""))


def keep_side(ws: Workspace, copy: Path, keep: str) -> None:
    """Settle one conflict: `local` moves the copy to trash/, `remote` puts it in place.

    When the copy is the version this device last adopted (the usual case: the other side
    of a conflict met at pull), the state records it, so the next push uploads nothing.
    """
    original = original_of(copy)
    if keep == "local":
        _keep_in_trash(ws.trash, copy.relative_to(ws.claude).as_posix(), copy, move=True)
        return
    if original.exists():
        _keep_in_trash(ws.trash, original.relative_to(ws.claude).as_posix(), original)
    os.replace(copy, original)
    paths = PathMap(Path.home())
    state_path = ws.home / "state.json"
    state, _ = load_state(state_path, ws.config.device_id, ws.config.remote_root)
    entry = state.files.get(paths.to_remote(original.relative_to(ws.claude).as_posix()))
    if entry is not None and not entry.base.deleted:
        sha256, size = hash_file(original)
        if (sha256, size) == (entry.base.sha256, entry.base.size):
            info = original.stat()
            entry.size, entry.mtime_ns = info.st_size, info.st_mtime_ns
            save_state(state_path, state)


# verify ----------------------------------------------------------------------


@dataclass
class Verification:
    manifests: int = 0
    objects: int = 0
    problems: list[str] = field(default_factory=list)


def verify(ws: Workspace, deep: bool) -> Verification:
    """Check the remote invariant: every object every manifest names exists (and, deep,
    decrypts to the hash it is named for), in the manner of `restic check`."""
    result = Verification()
    wanted: dict[str, tuple[str, str, Segment]] = {}
    for device_id, loaded in _load_manifests(ws):
        if isinstance(loaded, RemoteFormatError):
            result.problems.append(str(loaded))
            continue
        result.manifests += 1
        for path, version in loaded.files.items():
            for segment in version.segments:
                name = crypto.object_name(ws.name_key, segment.sha256)
                wanted.setdefault(name, (device_id, path, segment))
    present = ws.remote.list_objects()
    result.objects = len(wanted)
    for name, (device_id, path, _) in sorted(wanted.items()):
        if name not in present:
            result.problems.append(
                f"{object_path(name)} is missing (named by {path} in manifests/{device_id}.age)"
            )
    if deep:
        folder = ws.staging / "verify"
        shutil.rmtree(folder, ignore_errors=True)
        private_folder(folder)
        try:
            fetch = sorted(name for name in wanted if name in present)
            if fetch:
                ws.remote.download_objects(folder, fetch)
            for name in fetch:
                device_id, path, segment = wanted[name]
                try:
                    with open(os.devnull, "wb") as sink:
                        digest = crypto.decrypt_stream(
                            folder / object_path(name), sink, ws.identity
                        )
                except (RemoteFormatError, FileNotFoundError) as error:
                    result.problems.append(f"{object_path(name)} ({path}): {error}")
                    continue
                if (digest.sha256, digest.size) != (segment.sha256, segment.size):
                    result.problems.append(
                        f"{object_path(name)} ({path}) does not decrypt to the hash it is named for"
                    )
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return result
