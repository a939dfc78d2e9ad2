"""What `claude-sync init` does: render the remote, test it for real, then write the home.

Nothing is written into the home until the remote has answered and accepted the key, so a
failed init (wrong passphrase, unreachable remote) leaves an existing setup as it was.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pyrage import x25519

from .config import Config, load_config, new_device_id
from .errors import ClaudeSyncError, ConfigError, RemoteFolderMissing
from .files import write_private
from .keys import derive_identity, new_salt, write_key_file
from .rclone import Rclone, find_rclone
from .remote import Remote, local_folder, missing_folder
from .state import LEGACY_FILE, STATE_FILE
from .templates import Template, render, resolve_values
from .workspace import KEY_FILE, RCLONE_CONFIG


@dataclass
class InitRequest:
    home: Path
    identity: x25519.Identity | None  # None: derived from `passphrase` with the remote's salt
    passphrase: str | None
    key_mode: str
    device_name: str
    template: Template | None = None
    values: dict[str, str] | None = None
    remote_root: str | None = None
    rclone_config: str | None = None
    force: bool = False


@dataclass
class InitResult:
    config: Config
    new_remote: bool
    created_bucket: str | None = None


def existing_setup(home: Path) -> bool:
    return (home / "config.yaml").exists() or (home / KEY_FILE).exists()


def _ensure_bucket(rclone: Rclone, root: str) -> str | None:
    """Create the S3 bucket holding `root` when it is missing; its name if it was created.

    S3 templates write no_check_bucket, so no later call checks or creates the bucket: an
    object-only token (R2's bucket-scoped ones) cannot, and an endpoint that answers a
    CreateBucket for an existing bucket with 409 BucketAlreadyExists fails every call that
    tries (rclone's AWS provider does not ignore that answer)."""
    remote_name, _, path = root.partition(":")
    bucket = path.strip("/").split("/")[0]
    if rclone.exists(f"{remote_name}:{bucket}"):
        return None
    rclone.make_bucket(f"{remote_name}:{bucket}")
    return bucket


def missing_remote_folder(home: Path) -> Path | None:
    """The existing setup's remote folder, when it is a local folder that is gone."""
    try:
        config = load_config(home)
    except ClaudeSyncError:
        return None
    return missing_folder(config.remote_root, config.rclone_config)


def initialize(request: InitRequest) -> InitResult:
    home = request.home
    if existing_setup(home) and not request.force:
        raise ConfigError(f"{home} is already set up: use --force to replace it")
    previous: Config | None = None
    if existing_setup(home):
        try:
            previous = load_config(home)
        except ClaudeSyncError:
            previous = None
    binary = find_rclone()
    with tempfile.TemporaryDirectory(prefix="claude-sync-init-") as scratch:
        if request.template is not None:
            rclone_text, root = render(
                request.template,
                resolve_values(request.template, request.values or {}),
                Rclone(binary, None).obscure,
            )
            scratch_config = Path(scratch) / RCLONE_CONFIG
            write_private(scratch_config, rclone_text)
            test_config: str | None = str(scratch_config)
        else:
            if not request.remote_root or ":" not in request.remote_root:
                raise ConfigError("--remote takes NAME:PATH, e.g. myremote:claude-sync")
            root, rclone_text, test_config = request.remote_root, None, request.rclone_config
            if test_config and not Path(test_config).is_file():
                raise ConfigError(f"rclone config {test_config} not found")
        gone = missing_folder(previous.remote_root, previous.rclone_config) if previous else None
        new_folder = local_folder(root, test_config)
        if gone is not None and new_folder is not None and new_folder.resolve() == gone.resolve():
            # Making it would put an empty remote where a disk is not mounted.
            raise RemoteFolderMissing(
                gone, "mount it; to start a new remote there, create the folder first"
            )
        rclone = Rclone(binary, test_config, timeout=Config.timeout)
        created_bucket = None
        if request.template is not None and request.template.remote["type"] == "s3":
            created_bucket = _ensure_bucket(rclone, root)
        remote = Remote(rclone, root)
        marker = remote.read_marker()
        salt = marker.salt if marker is not None else new_salt()
        identity = request.identity
        if identity is None:
            assert request.passphrase is not None
            identity = derive_identity(request.passphrase, salt)
        new_remote = remote.initialize(identity, salt)

        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        home.chmod(0o700)
        if rclone_text is not None:
            rclone_config: str | None = str(home / RCLONE_CONFIG)
            write_private(home / RCLONE_CONFIG, rclone_text)
        else:
            rclone_config = (
                str(Path(request.rclone_config).resolve()) if request.rclone_config else None
            )
            (home / RCLONE_CONFIG).unlink(missing_ok=True)
    config = Config(
        device_id=previous.device_id if previous else new_device_id(),
        device_name=request.device_name,
        remote_root=root,
        rclone_config=rclone_config,
        provider=request.template.name if request.template else None,
        key_mode=request.key_mode,
    )
    write_key_file(home / KEY_FILE, identity)
    write_private(home / "config.yaml", config.to_yaml())
    if previous is None or previous.remote_root != root or new_remote:
        for stale in (STATE_FILE, f"{STATE_FILE}-journal", LEGACY_FILE, "cache", "staging"):
            target = home / stale
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
    load_config(home)  # read back as each run reads it: its parsed copy is kept for them
    return InitResult(config, new_remote, created_bucket)
