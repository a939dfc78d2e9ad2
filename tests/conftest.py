"""Shared fixtures: every test gets its own HOME, Claude folder and CLAUDE_SYNC_HOME.

A `Device` is one machine: its own HOME, CLAUDE_CONFIG_DIR and CLAUDE_SYNC_HOME. Commands run
through click's CliRunner with that environment, against real rclone and real servers.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from claude_code import SKIP_REASON, find_claude
from click.testing import CliRunner, Result
from servers import KINDS, Server, start_server

from claude_sync import crypto
from claude_sync.cli import main
from claude_sync.keys import metadata_key, read_key_file
from claude_sync.pathmap import CONFLICT_COPY
from claude_sync.state import STATE_FILE

PASSPHRASE = "correct horse battery staple"
T0 = 1_700_000_000  # a fixed epoch second; tests add offsets so mtimes are distinct
RCLONE = str(Path(sys.executable).parent / "rclone")


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(home / ".claude"))
    monkeypatch.setenv("CLAUDE_SYNC_HOME", str(home / ".claude-sync"))
    for name in ("CLAUDE_SYNC_PASSPHRASE", "CLAUDE_SYNC_RCLONE", "RCLONE_CONFIG"):
        monkeypatch.delenv(name, raising=False)


@dataclass
class Device:
    name: str
    home: Path

    @property
    def claude(self) -> Path:
        return self.home / ".claude"

    @property
    def sync_home(self) -> Path:
        return self.home / ".claude-sync"

    def environment(self, **extra: str) -> dict[str, str]:
        environment = {
            "HOME": str(self.home),
            "CLAUDE_CONFIG_DIR": str(self.claude),
            "CLAUDE_SYNC_HOME": str(self.sync_home),
            "CLAUDE_SYNC_PASSPHRASE": PASSPHRASE,
        }
        environment.update(extra)
        return environment

    def run(self, *args: str, input: str | None = None, **extra: str) -> Result:
        """Run `claude-sync ARGS` as this device; the result has exit_code and output."""
        runner = CliRunner()
        return runner.invoke(main, list(args), env=self.environment(**extra), input=input)

    def ok(self, *args: str, exit_code: int = 0, **extra: str) -> str:
        """Run, expect `exit_code` (3: conflicts left to settle), return the output."""
        result = self.run(*args, **extra)
        assert result.exit_code == exit_code, f"{args} exit {result.exit_code}:\n{result.output}"
        return result.output

    def write(self, relative: str, data: str | bytes) -> Path:
        path = self.claude / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            data = data.encode()
        path.write_bytes(data)
        return path

    def read(self, relative: str) -> bytes:
        return (self.claude / relative).read_bytes()


@pytest.fixture
def claude_binary() -> str:
    """The real Claude Code CLI (tests/claude_code.py finds it); the test is skipped,
    saying why, without it."""
    binary = find_claude()
    if binary is None:
        print(f"SKIPPED: {SKIP_REASON}")
        pytest.skip(SKIP_REASON)
    return binary


@pytest.fixture
def make_device(tmp_path: Path):
    """make_device(name) -> a Device with its own folders (not yet initialised)."""

    def make(name: str) -> Device:
        home = tmp_path / f"device-{name}"
        home.mkdir()
        return Device(name, home)

    return make


@pytest.fixture(params=KINDS)
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    """A real storage server on loopback, one test per kind."""
    started = start_server(request.param, tmp_path / f"server-{request.param}", RCLONE)
    yield started
    started.stop()


@pytest.fixture
def local_server(tmp_path: Path) -> Iterator[Server]:
    started = start_server("local", tmp_path / "server-local", RCLONE)
    yield started
    started.stop()


@pytest.fixture(params=["local", "s3"])
def local_or_s3_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    """A local folder, then a loopback S3 server: the two the project tests cover."""
    started = start_server(request.param, tmp_path / f"server-{request.param}", RCLONE)
    yield started
    started.stop()


@pytest.fixture
def s3_server(tmp_path: Path) -> Iterator[Server]:
    started = start_server("s3", tmp_path / "server-s3", RCLONE)
    yield started
    started.stop()


def joined(device: Device, server: Server, *more: str) -> Device:
    """Initialise `device` on `server` with the shared passphrase."""
    device.ok("init", *server.provider_args, "--device-name", device.name, "--yes", *more)
    return device


def remote_bytes(server: Server) -> Iterator[tuple[Path, bytes]]:
    for path in sorted(server.data_dir.rglob("*")):
        if path.is_file():
            yield path, path.read_bytes()


def put(device: Device, relative: str, data: str | bytes, at: int, ns: int = 0) -> Path:
    """Write a file on `device` with mtime T0 + at seconds (+ ns): deterministic ordering."""
    path = device.write(relative, data)
    when = (T0 + at) * 10**9 + ns
    os.utime(path, ns=(when, when))
    return path


def tree(folder: Path) -> dict[str, bytes]:
    """relative POSIX path -> bytes for every regular file below folder (links not followed)."""
    if not folder.exists():
        return {}
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }


def stamped(folder: Path) -> dict[str, tuple[bytes, int]]:
    """relative path -> (bytes, st_mtime_ns)."""
    return {
        relative: (data, (folder / relative).stat().st_mtime_ns)
        for relative, data in tree(folder).items()
    }


def copies(folder: Path) -> list[str]:
    """The conflict copies below folder."""
    return sorted(relative for relative in tree(folder) if CONFLICT_COPY.search(relative))


def journal_folder(server: Server, device: Device) -> Path:
    """`device`'s journal where the server keeps it (an S3 server: under the bucket)."""
    config = yaml.safe_load((device.sync_home / "config.yaml").read_text())
    (found,) = server.data_dir.rglob(f"journal/{config['device']['id']}")
    return found


def newest_entry(server: Server, device: Device) -> dict:
    """The plaintext of `device`'s newest journal entry."""
    identity = read_key_file(device.sync_home / "age-key.txt")
    newest = sorted(journal_folder(server, device).iterdir())[-1]
    return json.loads(crypto.decrypt_bytes(newest.read_bytes(), identity))


def append_entry(server: Server, device: Device, document: dict) -> None:
    """Write `document` as `device`'s next journal entry, authenticated with its key: what a
    device gone wrong (one holding the key) could publish."""
    identity = read_key_file(device.sync_home / "age-key.txt")
    folder = journal_folder(server, device)
    seq = max(int(p.name.split("-")[0]) for p in folder.iterdir()) + 1
    document = {key: value for key, value in document.items() if key != "mac"} | {"seq": seq}
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    document["mac"] = hmac.new(metadata_key(identity), canonical.encode(), "sha256").hexdigest()
    data = crypto.encrypt_bytes(json.dumps(document).encode(), identity.to_public())
    (folder / f"{seq:012d}-{secrets.token_hex(4)}.age").write_bytes(data)


def state_files(device: Device) -> dict[str, dict]:
    """The entries of `device`'s state, read from its store as they were saved: path ->
    {"base": <version, as a journal entry writes it>, "size": ..., "mtime_ns": ...}."""
    with closing(sqlite3.connect(device.sync_home / STATE_FILE)) as db:
        rows = db.execute("SELECT path, base, size, mtime_ns FROM files").fetchall()
    return {
        path: {"base": json.loads(base), "size": size, "mtime_ns": mtime_ns}
        for path, base, size, mtime_ns in rows
    }


def published_files(server: Server, device: Device) -> dict[str, dict]:
    """The decrypted `files` of `device`'s view on the remote: its newest snapshot entry
    with each later delta applied."""
    identity = read_key_file(device.sync_home / "age-key.txt")
    entries = [
        json.loads(crypto.decrypt_bytes(path.read_bytes(), identity))
        for path in sorted(journal_folder(server, device).iterdir())
    ]
    start = max(i for i, entry in enumerate(entries) if entry["kind"] == "snapshot")
    files: dict[str, dict] = {}
    for entry in entries[start:]:
        files.update(entry["files"])
    return files
