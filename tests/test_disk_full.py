"""A full disk: one line naming the folder and the space needed, staging cleaned, nothing
partial, and everything there once space is freed.

The small disks are real tmpfs mounts (mounting needs root, as in CI); the disk fills up
mid-run by a filler that takes the free space the moment the run starts writing staging.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Device, joined, tree
from servers import Server

CLI = str(Path(sys.executable).parent / "claude-sync")
MB = 1024 * 1024


@pytest.fixture
def small_disks() -> Iterator[list[Path]]:
    """mount(folder, megabytes): a tmpfs of that size at `folder`; unmounted at the end."""
    mounted: list[Path] = []

    def mount(folder: Path, megabytes: int) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m,mode=0700", "tmpfs", str(folder)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in reversed(mounted):
        subprocess.run(["umount", "-l", str(folder)], check=False)


def resize(folder: Path, megabytes: int) -> None:
    subprocess.run(["mount", "-o", f"remount,size={megabytes}m", str(folder)], check=True)


class Filler(threading.Thread):
    """Takes all free space of `disk` as soon as `trigger` exists; `free()` gives it back."""

    def __init__(self, disk: Path, trigger: Path) -> None:
        super().__init__(daemon=True)
        self.disk, self.trigger = disk, trigger
        self.filler = disk / "filler"
        self.filled = threading.Event()
        self.cancelled = threading.Event()

    def run(self) -> None:
        while not self.trigger.exists():
            if self.cancelled.wait(0.0005):
                return
        with open(self.filler, "wb") as handle:
            chunk = b"\0" * MB
            try:
                while True:
                    handle.write(chunk)
                    handle.flush()
            except OSError:
                pass
        self.filled.set()

    def free(self) -> None:
        self.cancelled.set()
        self.join(timeout=30)
        self.filler.unlink(missing_ok=True)


def run_cli(device: Device, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, **device.environment()}
    return subprocess.run([CLI, *args], env=environment, capture_output=True, text=True)


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def random_files(device: Device, count: int, size: int, name: str = "a") -> dict[str, bytes]:
    files = {f"agents/{name}{index:03}.md": os.urandom(size) for index in range(count)}
    for relative, data in files.items():
        device.write(relative, data)
    return files


def temporaries(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if p.name.startswith(".claude-sync")]


def test_a_push_that_does_not_fit_in_staging_is_refused_before_it_starts(
    local_server: Server, make_device, small_disks
) -> None:
    a = make_device("a")
    small_disks(a.sync_home, 2)
    joined(a, local_server)
    random_files(a, 3, MB)
    done = run_cli(a, "push")
    assert done.returncode == 1
    line = one_line(done.stderr)
    assert f"not enough space for the push in {a.sync_home / 'staging'}" in line, line
    assert "it needs about 4.0 MB" in line, line
    assert not (a.sync_home / "staging" / "push").exists()
    assert not (local_server.data_dir / "objects").exists()
    resize(a.sync_home, 16)
    assert "3 uploaded" in a.ok("push")


def test_a_disk_that_fills_during_a_push_stops_it_cleanly(
    local_server: Server, make_device, small_disks
) -> None:
    a, b = make_device("a"), joined(make_device("b"), local_server)
    small_disks(a.sync_home, 24)
    joined(a, local_server)
    files = random_files(a, 40, 256 * 1024)
    filler = Filler(a.sync_home, a.sync_home / "staging" / "push")
    filler.start()
    try:
        done = run_cli(a, "push")
    finally:
        filler.free()
    assert filler.filled.is_set()
    assert done.returncode == 1, done.stdout + done.stderr
    line = one_line(done.stderr)
    assert f"the disk holding {a.sync_home / 'staging'} is full" in line, line
    assert not (a.sync_home / "staging" / "push").exists()
    assert "40 uploaded" in a.ok("push")
    b.ok("pull")
    assert tree(b.claude) == files


def test_a_pull_into_a_full_claude_folder_is_refused_before_it_starts(
    local_server: Server, make_device, small_disks
) -> None:
    a, b = joined(make_device("a"), local_server), make_device("b")
    small_disks(b.claude, 2)
    joined(b, local_server)
    files = random_files(a, 3, MB)
    a.ok("push")
    done = run_cli(b, "pull")
    assert done.returncode == 1
    line = one_line(done.stderr)
    assert f"not enough space for the pull in {b.claude}" in line, line
    assert tree(b.claude) == {}
    resize(b.claude, 16)
    b.ok("pull")
    assert tree(b.claude) == files


def test_a_claude_folder_that_fills_during_a_pull_keeps_every_file_whole(
    local_server: Server, make_device, small_disks
) -> None:
    """Half the files are new, half grow by an append: each is old or new, never cut."""
    a, b = joined(make_device("a"), local_server), make_device("b")
    small_disks(b.claude, 24)
    joined(b, local_server)
    files = random_files(a, 20, 256 * 1024)
    a.ok("push")
    b.ok("pull")
    old = dict(files)
    for relative in list(files)[:10]:
        files[relative] += b"\n" + os.urandom(256 * 1024)
        a.write(relative, files[relative])
    files.update(random_files(a, 30, 256 * 1024, name="new"))
    a.ok("push")
    # staging/pull/files appears once the free-space check passed and the download is in
    filler = Filler(b.claude, b.sync_home / "staging" / "pull" / "files")
    filler.start()
    try:
        done = run_cli(b, "pull")
        filler.free()
        after = tree(b.claude)
    finally:
        filler.free()
    assert filler.filled.is_set()
    assert done.returncode == 1, done.stdout + done.stderr
    line = one_line(done.stderr)
    assert "is full" in line and "free some space" in line, line
    for relative, data in after.items():
        assert data in (old.get(relative), files[relative]), f"{relative} is cut"
    assert temporaries(b.claude) == []
    assert not (b.sync_home / "staging" / "pull").exists()
    b.ok("pull")
    assert tree(b.claude) == files
    shutil.rmtree(b.sync_home / "trash", ignore_errors=True)


def test_a_grown_transcript_is_pulled_without_room_for_its_whole_size(
    local_server: Server, make_device, small_disks
) -> None:
    """Only the bytes it grew by are fetched and written: its prefix is read, never copied
    (staging here has room for the new bytes, not for the file)."""
    a, b = joined(make_device("a"), local_server), make_device("b")
    small_disks(b.sync_home, 32)
    joined(b, local_server)
    transcript = "projects/-p/s.jsonl"
    body = os.urandom(8 * MB)
    a.write(transcript, body)
    a.ok("push")
    b.ok("pull")
    inode = (b.claude / transcript).stat().st_ino
    resize(b.sync_home, 2)
    a.write(transcript, body + os.urandom(100 * 1024))
    a.ok("push")
    b.ok("pull")
    assert b.read(transcript) == a.read(transcript)
    assert (b.claude / transcript).stat().st_ino == inode
