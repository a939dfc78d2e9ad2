"""A scan of a tree with many folders walks every other one of them in a forked process
(`scan._scan_split`): what it finds is what a walk in one process finds."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
from conftest import Device, joined, put, tree
from servers import Server

from claude_sync import scan
from claude_sync.locations import sync_home
from claude_sync.session import Session
from claude_sync.workspace import load_workspace

SPLIT = scan.SPLIT_FOLDERS
FOLDERS = SPLIT + 6  # folders on one level: enough to share


@pytest.fixture
def forks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The processes forked while the test runs (os.fork itself, counted)."""
    started: list[int] = []
    fork = os.fork

    def counted_fork() -> int:
        pid = fork()
        if pid:
            started.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", counted_fork)
    return started


def many_folders(device: Device) -> None:
    for i in range(FOLDERS):
        put(device, f"agents/team{i:03}/a.md", f"a {i}\n", i)
        put(device, f"agents/team{i:03}/deep/b.md", f"b {i}\n", i)


def scanned(device: Device, split_folders: int, monkeypatch: pytest.MonkeyPatch) -> scan.Scan:
    """The device's Claude folder scanned as a push scans it, sharing the folders of a
    level only once it holds `split_folders`."""
    monkeypatch.setenv("HOME", str(device.home))
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(device.claude))
    monkeypatch.setenv("CLAUDE_SYNC_HOME", str(device.sync_home))
    monkeypatch.setattr(scan, "SPLIT_FOLDERS", split_folders)
    ws = load_workspace(sync_home())
    session = Session(ws, lambda event: None, defer_hashes=True, scan_later=True)
    return scan.scan(ws.claude, session.rules, session.paths, session.state, True)


def test_a_push_and_pull_of_many_folders_walk_in_two_processes_and_sync_every_file(
    local_server: Server, make_device, forks: list[int]
) -> None:
    a, b = joined(make_device("a"), local_server), joined(make_device("b"), local_server)
    many_folders(a)
    assert f"{2 * FOLDERS} uploaded" in a.ok("push")
    assert forks
    b.ok("pull")
    assert tree(b.claude) == tree(a.claude)
    put(a, "agents/team000/a.md", "A 0\n", 500)  # the same size: hashed as it is scanned
    put(a, "agents/team001/deep/b.md", "b 1, longer\n", 500)
    (a.claude / "agents/team002/a.md").unlink()
    forks.clear()
    result = a.ok("push")
    assert "2 uploaded" in result and "1 deleted" in result
    assert forks
    b.ok("pull")
    assert tree(b.claude) == tree(a.claude)


def test_what_each_half_finds_is_what_one_walk_finds(
    local_server: Server, make_device, forks: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    a = joined(make_device("a"), local_server)
    many_folders(a)
    a.ok("push")
    forks.clear()
    for i in (3, 40):  # one file changed, one with a name that cannot be synced, one link
        put(a, f"agents/team{i:03}/a.md", f"A {i}\n", 600)
        os.mkdir(os.path.join(bytes(a.claude), f"agents/team{i:03}/deep/\xff".encode("latin-1")))
        (a.claude / f"agents/team{i:03}/dev").symlink_to("/dev/null")
        put(a, f"agents/team{i:03}/.claude-sync-tmp-1-0000000{i % 10}", "left\n", 600)
    one = scanned(a, 10**9, monkeypatch)
    assert not forks
    for i in (3, 40):  # removed by the first scan
        put(a, f"agents/team{i:03}/.claude-sync-tmp-1-0000000{i % 10}", "left\n", 600)
    two = scanned(a, SPLIT, monkeypatch)
    assert forks
    assert two.files == one.files and two.differing == one.differing
    assert two.differing == {"agents/team003/a.md", "agents/team040/a.md"}
    assert sorted(two.warnings) == sorted(one.warnings) and len(one.warnings) == 4
    assert not list(a.claude.glob("agents/*/.claude-sync-tmp-*"))


def test_when_the_second_process_fails_its_folders_are_walked_in_the_first(
    local_server: Server, make_device, forks: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    a = joined(make_device("a"), local_server)
    many_folders(a)

    def broken_dump(*args: object, **kwargs: object) -> None:
        raise OSError("the second process could not send what it found")

    monkeypatch.setattr(pickle, "dump", broken_dump)  # called in the forked process alone
    found = scanned(a, SPLIT, monkeypatch)
    assert forks
    assert len(found.files) == 2 * FOLDERS and not found.warnings


def test_a_folder_reached_in_both_processes_is_walked_under_one_path(
    local_server: Server, make_device, forks: list[int], tmp_path: Path
) -> None:
    a, b = joined(make_device("a"), local_server), joined(make_device("b"), local_server)
    many_folders(a)
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "s.md").write_text("shared\n")
    for i in range(0, FOLDERS, 7):  # in both halves, whichever way they are dealt
        (a.claude / f"agents/team{i:03}/linked").symlink_to(shared, target_is_directory=True)
    result = a.run("push")
    assert result.exit_code == 0, result.output
    assert forks
    linked = len(range(0, FOLDERS, 7))
    assert result.output.count("a folder reached twice (a link loop)") == linked - 1
    b.ok("pull")
    copies = [path for path in tree(b.claude) if path.endswith("/linked/s.md")]
    assert len(copies) == 1 and b.read(copies[0]) == b"shared\n"
