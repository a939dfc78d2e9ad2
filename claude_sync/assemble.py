"""Assembling pulled files in staging from downloaded objects, every byte verified."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from . import crypto
from .errors import ClaudeSyncError, DamagedObject, RemoteFormatError
from .remote import object_path
from .scan import read_prefix
from .session import Session
from .versions import Version


@dataclass(frozen=True)
class Needed:
    """A version whose bytes a pull needs; the first `reused` segments are already local."""

    path: str
    version: Version
    reused: int = 0
    reused_sha256: str = ""


class Assembler:
    """Builds files in staging from downloaded objects, verifying every segment and the whole.

    Every file a pull needs is assembled and verified here before anything in the Claude
    folder changes, so a corrupt, truncated, swapped or missing object (DamagedObject)
    changes nothing of the paths that need it.
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
                        source, TeeWriter(out, whole), self.session.ws.identity
                    )
                except FileNotFoundError:
                    raise DamagedObject(
                        path, object_path(name), "is missing on the remote"
                    ) from None
                except RemoteFormatError as error:
                    raise DamagedObject(
                        path, object_path(name), f"is corrupt or tampered ({error})"
                    ) from None
                if (digest.sha256, digest.size) != (segment.sha256, segment.size):
                    raise DamagedObject(
                        path, object_path(name), "does not match its hash (swapped or tampered)"
                    )
        if (whole.hexdigest(), destination.stat().st_size) != key:
            raise RemoteFormatError(f"{path} does not match its recorded hash: refused")
        self.assembled[key] = destination


class TeeWriter:
    def __init__(self, target: BinaryIO, digest) -> None:
        self._target = target
        self._digest = digest

    def write(self, data: bytes) -> int:
        self._digest.update(data)
        return self._target.write(data)

    def flush(self) -> None:
        self._target.flush()
