"""verify: check the remote invariant, in the manner of `restic check`."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field

from .. import crypto
from ..errors import RemoteFormatError
from ..files import private_folder
from ..remote import object_path
from ..remote_view import fetch_remote_view
from ..versions import Segment
from ..workspace import Workspace


@dataclass
class Verification:
    manifests: int = 0
    objects: int = 0
    problems: list[str] = field(default_factory=list)
    strays: list[str] = field(default_factory=list)  # names in journal/ that are not ours


def verify(ws: Workspace, deep: bool) -> Verification:
    """Check the remote invariant: every object every device's view names exists (and,
    deep, decrypts to the hash it is named for), in the manner of `restic check`."""
    result = Verification()
    wanted: dict[str, tuple[str, str, Segment]] = {}
    try:
        view = fetch_remote_view(ws, result.problems)
    except RemoteFormatError as error:
        result.problems.append(str(error))
        return result
    result.strays = view.strays
    for device_id, manifest in sorted(view.manifests.items()):
        result.manifests += 1
        for path, version in manifest.files.items():
            for segment in version.segments:
                name = crypto.object_name(ws.name_key, segment.sha256)
                wanted.setdefault(name, (device_id, path, segment))
    present = ws.remote.list_objects()
    result.objects = len(wanted)
    for name, (device_id, path, _) in sorted(wanted.items()):
        if name not in present:
            result.problems.append(
                f"{object_path(name)} is missing (named by {path} in journal/{device_id}/)"
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
