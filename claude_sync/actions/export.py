"""export and import: one session as one encrypted file, to move it to a colleague or a
machine outside the remote.

The file is `age(zstd(header + tar))`, as the remote's objects are `age(zstd(bytes))`, so
the stock tools read it back: `age -d -i KEY FILE | zstd -d | tail -n +2 | tar -t`.

    header   one JSON line: {"format": 1, "session", "project_key", "device", "created"}
    tar      <id>.jsonl, then the sidecar folder <id>/ (subagents, tool results) if any:
             regular files and folders only, named relative to the project folder

Both ends stream: a transcript of gigabytes is read (and written) a chunk at a time. An
import decrypts into staging/ first, so the whole file is authenticated, and every member
checked (inside the session, no link, no device), before anything goes into the Claude
folder; then the session is written beside its place and renamed in.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import secrets
import shutil
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import pyrage
from pyrage import x25519

from .. import crypto
from ..claude_folder import keep_in_trash
from ..errors import ClaudeSyncError, ConfigError, NotForThisKey, RemoteFormatError
from ..files import NO_SPACE, disk_full, private_folder
from ..pathmap import is_safe_path, is_utf8, temporary_name
from ..projects import encode_project
from ..session import path_map
from ..state import load_state
from ..workspace import Workspace

FORMAT = 1
SESSION_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")
MAX_HEADER = 64 * 1024
NUL = b"\0"


@dataclass(frozen=True)
class Header:
    """What an export says about itself (inside the encryption: the key is metadata too)."""

    session: str
    project_key: str
    device: str
    created: str

    def line(self) -> bytes:
        document = {"format": FORMAT, **self.__dict__}
        return json.dumps(document, ensure_ascii=False).encode() + b"\n"


@dataclass(frozen=True)
class _Member:
    name: str  # in the archive, relative to the project folder
    path: Path
    folder: bool
    size: int
    mtime: int


@dataclass
class Exported:
    path: Path
    header: Header
    files: int
    size: int
    skipped: list[str] = field(default_factory=list)  # links and special files left out


@dataclass
class Imported:
    header: Header
    folder: str  # the project folder under projects/ it went into
    outcome: str  # "imported", "replaced" or "identical" (nothing done)
    trashed: list[Path] = field(default_factory=list)


def check_session_id(session_id: str) -> str:
    """A session id is a name in a path: only Claude Code's UUID characters get through."""
    if not SESSION_ID.fullmatch(session_id):
        raise ConfigError(
            f"{session_id!r} is not a session id (letters, digits and '-', as Claude Code's "
            "UUIDs): see `claude --resume` for yours"
        )
    return session_id


def parse_recipient(text: str) -> x25519.Recipient:
    try:
        return x25519.Recipient.from_str(text.strip())
    except pyrage.RecipientError:
        raise ConfigError(
            f"--to {text!r} is not an age public key (age1..., as `claude-sync key show` prints it)"
        ) from None


# export ------------------------------------------------------------------------------------


def find_session(claude: Path, session_id: str) -> Path:
    """The project folder holding `<id>.jsonl`; the latest changed one when several do."""
    projects = claude / "projects"
    try:
        folders = [Path(entry.path) for entry in os.scandir(projects) if entry.is_dir()]
    except OSError:
        folders = []
    found = [folder for folder in folders if (folder / f"{session_id}.jsonl").is_file()]
    if not found:
        raise ClaudeSyncError(
            f"no session {session_id} here: no projects/*/{session_id}.jsonl in {claude} "
            f"(`claude-sync resume {session_id}` fetches one only another machine has)"
        )
    return max(found, key=lambda folder: (folder / f"{session_id}.jsonl").stat().st_mtime_ns)


def _members(folder: Path, session_id: str) -> tuple[list[_Member], list[str]]:
    """The transcript and its sidecar folder's regular files and folders; the names of what
    was left out (links, special files, names that are not UTF-8)."""
    transcript = folder / f"{session_id}.jsonl"
    info = transcript.stat()
    members = [_Member(transcript.name, transcript, False, info.st_size, int(info.st_mtime))]
    skipped: list[str] = []

    def walk(path: Path, name: str) -> None:
        for entry in sorted(os.scandir(path), key=lambda entry: entry.name):
            member = f"{name}/{entry.name}"
            if not is_utf8(entry.name):
                skipped.append(name + "/" + entry.name.encode(errors="replace").decode())
            elif entry.is_dir(follow_symlinks=False):
                found = entry.stat(follow_symlinks=False)
                members.append(_Member(member, Path(entry.path), True, 0, int(found.st_mtime)))
                walk(Path(entry.path), member)
            elif entry.is_file(follow_symlinks=False):
                found = entry.stat(follow_symlinks=False)
                members.append(
                    _Member(member, Path(entry.path), False, found.st_size, int(found.st_mtime))
                )
            else:
                skipped.append(member)

    sidecar = folder / session_id
    if sidecar.is_dir() and not sidecar.is_symlink():
        members.append(_Member(session_id, sidecar, True, 0, int(sidecar.stat().st_mtime)))
        walk(sidecar, session_id)
    return members, skipped


def _tar_header(member: _Member) -> bytes:
    info = tarfile.TarInfo(member.name)
    info.type = tarfile.DIRTYPE if member.folder else tarfile.REGTYPE
    info.mode = 0o700 if member.folder else 0o600
    info.size = member.size
    info.mtime = member.mtime
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _exactly(member: _Member) -> Iterator[bytes]:
    """The first `size` bytes of a file that may grow meanwhile (a live transcript)."""
    left = member.size
    with open(member.path, "rb") as reading:
        while left:
            chunk = reading.read(min(crypto.CHUNK, left))
            if not chunk:
                raise ClaudeSyncError(f"{member.name} shrank while it was exported: try again")
            left -= len(chunk)
            yield chunk


def _archive(header: Header, members: list[_Member]) -> Iterator[bytes]:
    """The plaintext of an export, produced as it is read: header line, then the tar."""
    yield header.line()
    for member in members:
        yield _tar_header(member)
        if not member.folder:
            yield from _exactly(member)
            yield NUL * (-member.size % tarfile.BLOCKSIZE)
    yield NUL * (2 * tarfile.BLOCKSIZE)


class _ChunkReader:
    """A reader over produced chunks, for pyrage to pull from; keeps the error the producer
    raised (pyrage wraps it in its own, and a vanished file must stay one)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = bytearray()
        self.error: Exception | None = None

    def read(self, size: int = -1) -> bytes:
        try:
            while size < 0 or len(self._buffer) < size:
                chunk = next(self._chunks, None)
                if chunk is None:
                    break
                self._buffer += chunk
        except Exception as error:
            self.error = error
            raise
        size = len(self._buffer) if size < 0 else size
        out = bytes(self._buffer[:size])
        del self._buffer[:size]
        return out


def _project_key(ws: Workspace, folder: str) -> str:
    """The project's canonical key (as `claude-sync projects` shows it); else its remote
    folder name."""
    state, _ = load_state(ws.home, ws.config.device_id, ws.config.remote_root)
    paths = path_map(ws, state)
    remote = paths.remote_folder_of(folder)
    project = paths.projects.get(remote)
    return project.key if project is not None else remote


def export_session(
    ws: Workspace, session_id: str, output: Path | None, recipient: str | None
) -> Exported:
    """Write one session to `output` (default ./<id>.claude-session.age), encrypted to
    `recipient` (default: this device's own key)."""
    check_session_id(session_id)
    to = parse_recipient(recipient) if recipient is not None else ws.recipient
    folder = find_session(ws.claude, session_id)
    output = output or Path(f"{session_id}.claude-session.age")
    if output.exists() or output.is_symlink():
        raise ClaudeSyncError(f"{output} exists: choose another name with -o, or remove it")
    header = Header(
        session=session_id,
        project_key=_project_key(ws, folder.name),
        device=ws.config.device_name,
        created=datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
    )
    members, skipped = _members(folder, session_id)
    reader = _ChunkReader(_archive(header, members))
    temporary = output.with_name(temporary_name())
    try:
        try:
            crypto.encrypt_stream(reader, temporary, to)
        except pyrage.EncryptError:
            if reader.error is None:
                raise
            raise reader.error from None
        os.replace(temporary, output)
    except OSError as error:
        if error.errno in NO_SPACE:
            raise disk_full(error, output.parent, "export") from None
        raise ClaudeSyncError(f"the export stopped ({error}); nothing written") from None
    finally:
        temporary.unlink(missing_ok=True)
    files = [member for member in members if not member.folder]
    return Exported(output, header, len(files), sum(m.size for m in files), skipped)


# import ------------------------------------------------------------------------------------


def _refused(source: Path, why: str) -> RemoteFormatError:
    return RemoteFormatError(f"{source}: {why}; refused, nothing written")


def _read_header(reading: BinaryIO, source: Path) -> Header:
    line = reading.readline(MAX_HEADER)
    try:
        document = json.loads(line) if line.endswith(b"\n") else None
    except (ValueError, UnicodeDecodeError):
        document = None
    if not isinstance(document, dict) or "format" not in document:
        raise _refused(source, "not a claude-sync session export (no header)")
    if document.get("format") != FORMAT:
        raise _refused(
            source,
            f"export format {document.get('format')!r}, this claude-sync reads format "
            f"{FORMAT} (was it written by a newer one?)",
        )
    session, key, device, created = (
        document.get(name) for name in ("session", "project_key", "device", "created")
    )
    if not (
        isinstance(session, str)
        and SESSION_ID.fullmatch(session)
        and all(isinstance(value, str) for value in (key, device, created))
    ):
        raise _refused(source, "its header is malformed")
    return Header(session, key, device, created)


def _checked_members(
    archive: tarfile.TarFile, session_id: str, source: Path
) -> list[tarfile.TarInfo]:
    """Every member, once it is known to be a regular file or folder inside the session:
    `<id>.jsonl`, `<id>/` or below it. One that is not refuses the whole file."""
    members = archive.getmembers()
    names = [member.name for member in members]
    regular = (tarfile.REGTYPE, tarfile.AREGTYPE)
    files = {member.name for member in members if member.type in regular}
    for member in members:
        name = member.name
        is_file, is_folder = name in files, member.type == tarfile.DIRTYPE
        if not is_safe_path(name) or not (
            (name == f"{session_id}.jsonl" and is_file)
            or (name == session_id and is_folder)
            or (name.startswith(session_id + "/") and (is_file or is_folder))
        ):
            raise _refused(source, f"member {name!r} is not a file or folder of the session")
        parents = name.split("/")[:-1]
        if any("/".join(parents[: depth + 1]) in files for depth in range(len(parents))):
            raise _refused(source, f"member {name!r} lies below a file")
    if len(set(names)) != len(names):
        raise _refused(source, "a member appears twice")
    if f"{session_id}.jsonl" not in files:
        raise _refused(source, f"it holds no {session_id}.jsonl")
    return members


def _sha256(reading: BinaryIO) -> str:
    digest = hashlib.sha256()
    while chunk := reading.read(crypto.CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def _incoming(archive: tarfile.TarFile, members: list[tarfile.TarInfo]) -> dict[str, str]:
    """Member name -> SHA-256 of every file in the archive (reading it through)."""
    hashes = {}
    for member in members:
        if member.isreg():
            reading = archive.extractfile(member)
            assert reading is not None
            hashes[member.name] = _sha256(reading)
    return hashes


def _local(folder: Path, session_id: str) -> dict[str, str] | None:
    """The session's files here, as the archive names them, with their SHA-256; None when
    it is not here at all. A link or special file in its folder makes it differ."""
    transcript, sidecar = folder / f"{session_id}.jsonl", folder / session_id
    if not any(path.exists() or path.is_symlink() for path in (transcript, sidecar)):
        return None
    found: dict[str, str] = {}
    if transcript.is_file():
        with open(transcript, "rb") as reading:
            found[transcript.name] = _sha256(reading)
    if sidecar.is_dir() and not sidecar.is_symlink():
        for path in sorted(sidecar.rglob("*")):
            name = path.relative_to(folder).as_posix()
            if path.is_symlink() or not (path.is_file() or path.is_dir()):
                found[name] = "not a file or folder"
            elif path.is_file():
                with open(path, "rb") as reading:
                    found[name] = _sha256(reading)
    return found


def _write_members(archive: tarfile.TarFile, members: list[tarfile.TarInfo], into: Path) -> None:
    for member in members:
        target = into / member.name
        if member.isdir():
            private_folder(target)
            continue
        private_folder(target.parent)
        reading = archive.extractfile(member)
        assert reading is not None
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(reading, out, crypto.CHUNK)
            out.flush()
            os.fsync(out.fileno())
        os.utime(target, (member.mtime, member.mtime))


def _install(
    ws: Workspace,
    archive: tarfile.TarFile,
    members: list[tarfile.TarInfo],
    folder: Path,
    session_id: str,
) -> list[Path]:
    """Write the session beside its place, then move the old one (if any) to trash/ and the
    new one in. Returns where the old files were kept."""
    private_folder(folder)
    beside = folder / temporary_name()
    beside.mkdir(mode=0o700)
    trashed: list[Path] = []
    relative = f"projects/{folder.name}/{session_id}"
    transcript, sidecar = folder / f"{session_id}.jsonl", folder / session_id
    try:
        _write_members(archive, members, beside)
        if transcript.exists() or transcript.is_symlink():  # a link to it first: nothing moves
            trashed.append(keep_in_trash(ws.trash, relative + ".jsonl", transcript))
        if sidecar.exists() or sidecar.is_symlink():
            trashed.append(keep_in_trash(ws.trash, relative, sidecar, move=True))
        os.replace(beside / transcript.name, transcript)
        if (beside / session_id).exists():
            os.replace(beside / session_id, sidecar)
    finally:
        shutil.rmtree(beside, ignore_errors=True)
    return trashed


def _elsewhere(claude: Path, folder: Path, session_id: str) -> list[Path]:
    """The other project folders that hold session `session_id`."""
    try:
        folders = sorted(Path(entry.path) for entry in os.scandir(claude / "projects"))
    except OSError:
        return []
    return [
        other
        for other in folders
        if other.is_dir() and other != folder and _local(other, session_id) is not None
    ]


def _remove(ws: Workspace, folder: Path, session_id: str) -> list[Path]:
    """Move session `session_id` out of `folder` into trash/; where it was kept."""
    relative = f"projects/{folder.name}/{session_id}"
    kept = []
    for path, name in ((folder / f"{session_id}.jsonl", ".jsonl"), (folder / session_id, "")):
        if path.exists() or path.is_symlink():
            kept.append(keep_in_trash(ws.trash, relative + name, path, move=True))
    return kept


def _decrypt(ws: Workspace, source: Path, into: BinaryIO) -> None:
    try:
        crypto.decrypt_stream(source, into, ws.identity)
    except NotForThisKey:
        raise ClaudeSyncError(
            f"{source} was exported for another key (not this device's): ask its sender to "
            f"export it again with `--to {ws.recipient}` (`claude-sync key show`); "
            "nothing written"
        ) from None
    except RemoteFormatError as error:
        raise _refused(
            source, f"not a claude-sync export, or damaged or truncated ({error})"
        ) from None
    except FileNotFoundError:
        raise ClaudeSyncError(f"{source} does not exist") from None


def import_session(ws: Workspace, source: Path, cwd: str, overwrite: bool) -> Imported:
    """Install the session in `source` under the project folder Claude Code uses for
    `cwd`. A different session already there is replaced only when `overwrite`, and kept
    in trash/. Nothing is pushed: the next push sends it like any new session."""
    folder = ws.claude / "projects" / encode_project(os.path.realpath(cwd))
    private_folder(ws.staging)
    plain = ws.staging / f"import-{secrets.token_hex(4)}"
    try:
        with os.fdopen(os.open(plain, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600), "w+b") as data:
            _decrypt(ws, source, data)
            data.seek(0)
            header = _read_header(data, source)
            try:
                with tarfile.open(fileobj=data, mode="r:") as archive:
                    members = _checked_members(archive, header.session, source)
                    incoming = _incoming(archive, members)
                    here = _local(folder, header.session)
                    if here == incoming:
                        return Imported(header, folder.name, "identical")
                    if here is not None and not overwrite:
                        raise ClaudeSyncError(
                            f"a different session {header.session} is in projects/{folder.name} "
                            "here: --overwrite replaces it (the old one is kept in trash/); "
                            "nothing written"
                        )
                    elsewhere = _elsewhere(ws.claude, folder, header.session)
                    if elsewhere and not overwrite:
                        raise ClaudeSyncError(
                            f"session {header.session} is already in projects/"
                            f"{elsewhere[0].name} here: --overwrite moves it to projects/"
                            f"{folder.name} (the old one is kept in trash/); nothing written"
                        )
                    trashed = _install(ws, archive, members, folder, header.session)
                    for other in elsewhere:  # one session id, one place: where it went now
                        trashed += _remove(ws, other, header.session)
                    outcome = "replaced" if here is not None or elsewhere else "imported"
                    return Imported(header, folder.name, outcome, trashed)
            except tarfile.TarError as error:
                raise _refused(source, f"its archive is damaged ({error})") from None
    except OSError as error:
        if error.errno in NO_SPACE:
            raise disk_full(error, ws.claude, "import") from None
        raise ClaudeSyncError(f"the import stopped ({error})") from None
    finally:
        plain.unlink(missing_ok=True)
