"""verify: check the remote invariant, in the manner of `restic check`; with `repair`, send
again each damaged object from a file on this device that still holds its bytes."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field

from .. import crypto
from ..errors import RemoteFormatError
from ..files import check_free_space, private_folder
from ..keys import object_name
from ..remote import object_path
from ..remote_view import RemoteView, fetch_remote_view
from ..session import Listener, Session
from ..versions import Segment
from ..workspace import Workspace
from .push import holders, stage_from_here


@dataclass
class Verification:
    manifests: int = 0
    objects: int = 0
    problems: list[str] = field(default_factory=list)
    strays: list[str] = field(default_factory=list)  # names in journal/ that are not ours
    restored: list[str] = field(default_factory=list)  # repair: objects sent again, from where
    unrestorable: list[str] = field(default_factory=list)  # repair: objects no file here holds
    left: int = 0  # problems not repaired


def verify(ws: Workspace, deep: bool, repair: bool, listen: Listener) -> Verification:
    """Check the remote invariant: every journal entry is authentic, and every object
    every device's view names exists (and, deep, decrypts to the hash it is named for), in
    the manner of `restic check`. A damaged object fails every pull of the paths that need
    it, on every device, until someone sends it again: with `repair` (which reads every
    object, as `deep` does, to find the corrupt ones) this device does so for each one a
    local file still holds the bytes of. `listen` hears the warnings of the scan a repair
    makes."""
    result = Verification()
    wanted: dict[str, tuple[str, str, Segment]] = {}
    try:
        view = fetch_remote_view(ws, result.problems)
    except RemoteFormatError as error:
        result.problems.append(str(error))
        result.left = len(result.problems)
        return result
    result.strays = view.strays
    for device_id, manifest in sorted(view.manifests.items()):
        for path, version in manifest.files.items():
            for segment in version.segments:
                name = object_name(ws.name_key, segment.sha256)
                wanted.setdefault(name, (device_id, path, segment))
    result.manifests = len(view.manifests)
    present = ws.remote.list_objects(result.strays)
    result.objects = len(wanted)
    damaged: set[str] = set()
    for name, (device_id, path, _) in sorted(wanted.items()):
        if name not in present:
            damaged.add(name)
            result.problems.append(
                f"{object_path(name)} is missing (named by {path} in journal/{device_id}/)"
            )
    if deep or repair:
        damaged |= _read_objects(ws, wanted, present, result)
    result.left = len(result.problems)
    if repair and damaged:
        _repair(ws, view, damaged, listen, result)
        result.left -= len(result.restored)
    return result


def _read_objects(
    ws: Workspace,
    wanted: dict[str, tuple[str, str, Segment]],
    present: dict[str, int],
    result: Verification,
) -> set[str]:
    """Download and decrypt every wanted object there; the names of the corrupt ones."""
    corrupt: set[str] = set()
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
                    digest = crypto.decrypt_stream(folder / object_path(name), sink, ws.identity)
            except (RemoteFormatError, FileNotFoundError) as error:
                corrupt.add(name)
                result.problems.append(f"{object_path(name)} ({path}): {error}")
                continue
            if (digest.sha256, digest.size) != (segment.sha256, segment.size):
                corrupt.add(name)
                result.problems.append(
                    f"{object_path(name)} ({path}) does not decrypt to the hash it is named for"
                )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return corrupt


def _repair(
    ws: Workspace, view: RemoteView, damaged: set[str], listen: Listener, result: Verification
) -> None:
    """Send again every damaged object whose bytes a file here holds (over a corrupt one:
    its name is its content's, so the right bytes are the only ones it may have); name
    the rest, with each path and the device whose version needs it."""
    session = Session(ws, listen)
    session.use_remote(view)
    every = holders(
        session,
        ((path, version) for path, versions in view.versions().items() for version in versions),
    )
    # A name can have no holder left: read through a move, a path may give way to another.
    found = {name: every.get(name, []) for name in damaged}
    staging = ws.staging / "repair"
    shutil.rmtree(staging, ignore_errors=True)
    private_folder(staging)
    try:
        size = sum(places[0].segment.size for places in found.values() if places)
        check_free_space({staging: size}, "repair")
        staged = stage_from_here(session, sorted(damaged), found, staging)
        if staged:
            ws.remote.upload_objects(staging, sorted(staged), replace=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for name, holder in sorted(staged.items()):
        result.restored.append(
            f"{object_path(name)} sent again from {session.paths.to_local(holder.path)}"
        )
    for name in sorted(damaged - staged.keys()):
        for path, device in sorted({(holder.path, holder.device) for holder in found[name]}):
            result.unrestorable.append(
                f"{object_path(name)} of {session.paths.to_local(path)} (the version from "
                f"{view.device_name(device)}): no file on this device holds its bytes"
            )
