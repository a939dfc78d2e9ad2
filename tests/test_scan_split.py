"""A scan of a tree whose level holds many entries (folders, or files of a folder) takes
every other one of them, with all below it, in a forked process (`scan._scan_split`): what
it finds is what a walk in one process finds."""

from __future__ import annotations

import gc
import os
import pickle
import threading
from collections import deque
from pathlib import Path

import pytest
from conftest import Device, joined, put, tree
from servers import Server

from claude_sync import scan
from claude_sync.locations import sync_home
from claude_sync.pathmap import PathMap
from claude_sync.session import Session
from claude_sync.workspace import load_workspace

SPLIT_ENTRIES = scan.SPLIT_ENTRIES
FOLDERS = SPLIT_ENTRIES // 2 + 6  # folders of two entries on one level: enough to share


@pytest.fixture
def forks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The processes forked while the test runs (os.fork itself, counted), on a machine
    taken to have two cores whatever this one has."""
    started: list[int] = []
    fork = os.fork

    def counted_fork() -> int:
        pid = fork()
        if pid:
            started.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", counted_fork)
    monkeypatch.setattr(scan, "cores", lambda: 2)
    assert threading.active_count() == 1, "a thread runs in the tests: no scan forks"
    return started


@pytest.fixture
def taken(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many files each result of a forked process that was used held (`_take_theirs`)."""
    counts: list[int] = []
    take_theirs = scan._take_theirs

    def counted(part: scan.ScannedFiles, same: dict, changed: dict) -> None:
        counts.append(len(same) + len(changed))
        take_theirs(part, same, changed)

    monkeypatch.setattr(scan, "_take_theirs", counted)
    return counts


@pytest.fixture
def named_elsewhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A file that lists each path PathMap.to_remote is asked for by any process but this
    one: a forked scan must name nothing (the PathMap decides names first-come)."""
    record = tmp_path / "named-elsewhere"
    this_process = os.getpid()
    to_remote = PathMap.to_remote

    def recorded(self: PathMap, local: str) -> str:
        if os.getpid() != this_process:
            with open(record, "a") as out:
                out.write(local + "\n")
        return to_remote(self, local)

    monkeypatch.setattr(PathMap, "to_remote", recorded)
    return record


def many_folders(device: Device) -> None:
    for i in range(FOLDERS):
        put(device, f"agents/team{i:03}/a.md", f"a {i}\n", i)
        put(device, f"agents/team{i:03}/deep/b.md", f"b {i}\n", i)


def scanned(device: Device, cores: int, monkeypatch: pytest.MonkeyPatch) -> scan.Scan:
    """The device's Claude folder scanned as a push scans it, on a machine of `cores`
    cores: with one, all in this process."""
    monkeypatch.setenv("HOME", str(device.home))
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(device.claude))
    monkeypatch.setenv("CLAUDE_SYNC_HOME", str(device.sync_home))
    monkeypatch.setattr(scan, "cores", lambda: cores)
    ws = load_workspace(sync_home())
    session = Session(ws, lambda event: None, defer_hashes=True, scan_later=True)
    return scan.scan(ws.claude, session.rules, session.paths, session.state, True)


def assert_same(one: scan.Scan, two: scan.Scan) -> None:
    assert two.files == one.files
    assert two.differing == one.differing
    assert sorted(two.warnings) == sorted(one.warnings)
    assert sorted(two.unknown) == sorted(one.unknown)


def test_a_push_and_pull_of_many_folders_walk_in_two_processes_and_sync_every_file(
    local_server: Server,
    make_device,
    forks: list[int],
    taken: list[int],
    named_elsewhere: Path,
) -> None:
    a, b = joined(make_device("a"), local_server), joined(make_device("b"), local_server)
    many_folders(a)
    for i in range(FOLDERS):  # a level of project folders: each names its entries
        put(a, f"projects/-home-ann-p{i:03}/s{i}.jsonl", f'{{"n": {i}}}\n', i)
        put(a, f"projects/-home-ann-p{i:03}/s{i}/subagents/t.jsonl", f'{{"t": {i}}}\n', i)
    assert f"{4 * FOLDERS} uploaded" in a.ok("push")
    assert forks and sum(taken) >= FOLDERS  # about half of the files
    assert not named_elsewhere.exists()
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
    local_server: Server,
    make_device,
    forks: list[int],
    taken: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Files changed, touched with the same bytes, unreadable, with names that cannot be
    synced, links to special files, temporaries, unreadable folders: spread over every
    folder of the level, so that each half has its share."""
    a = joined(make_device("a"), local_server)
    many_folders(a)
    a.ok("push")
    forks.clear()
    for i in range(FOLDERS):
        put(a, f"agents/team{i:03}/a.md", f"a {i}\n", 600)  # touched: hashed, found equal
        if i % 5 == 0:
            put(a, f"agents/team{i:03}/a.md", f"A {i}\n", 600)
        if i % 7 == 0:
            bad = os.path.join(bytes(a.claude), f"agents/team{i:03}/\xff".encode("latin-1"))
            os.mkdir(bad)
            (a.claude / f"agents/team{i:03}/dev").symlink_to("/dev/null")
        if i % 4 == 0:
            put(a, f"agents/team{i:03}/deep/b.md", f"b {i}\n", 600)
    hash_with_stat, scandir = scan.hash_with_stat, os.scandir

    def unreadable_file(path: Path) -> scan.LocalFile:
        if path.name == "b.md" and int(path.parent.parent.name[4:]) % 8 == 0:
            raise PermissionError(13, "Permission denied")
        return hash_with_stat(path)

    def unreadable_folder(path: str | Path):
        name = os.fspath(path)
        if name.endswith("/deep") and int(name[-8:-5]) % 3 == 0:
            raise PermissionError(13, "Permission denied")
        return scandir(path)

    monkeypatch.setattr(scan, "hash_with_stat", unreadable_file)
    monkeypatch.setattr(os, "scandir", unreadable_folder)  # the forked process's too

    def temporaries() -> None:  # each scan removes them
        for i in range(0, FOLDERS, 6):
            put(a, f"agents/team{i:03}/.claude-sync-tmp-1-0000000{i % 10}", "left\n", 600)

    temporaries()
    one = scanned(a, 1, monkeypatch)
    assert not forks
    temporaries()
    taken.clear()
    two = scanned(a, 2, monkeypatch)
    assert forks and taken
    assert_same(one, two)
    assert two.differing == {f"agents/team{i:03}/a.md" for i in range(0, FOLDERS, 5)}
    assert len(two.unknown) == len(range(0, FOLDERS, 7)) + len(range(0, FOLDERS, 3))
    unreadable = [i for i in range(0, FOLDERS, 8) if i % 3]  # in folders that can be read
    assert sum("b.md: cannot be read" in w for w in two.warnings) == len(unreadable)
    assert not list(a.claude.glob("agents/*/.claude-sync-tmp-*"))


@pytest.mark.parametrize("failing", ["the second process", "the fork"])
def test_when_no_second_process_walks_this_one_walks_all(
    local_server: Server,
    make_device,
    forks: list[int],
    monkeypatch: pytest.MonkeyPatch,
    failing: str,
) -> None:
    a = joined(make_device("a"), local_server)
    many_folders(a)
    one = scanned(a, 1, monkeypatch)
    if failing == "the second process":

        def broken_dump(*args: object, **kwargs: object) -> None:
            raise OSError("the second process could not send what it found")

        monkeypatch.setattr(pickle, "dump", broken_dump)  # called in that process alone
    else:

        def no_fork() -> int:
            raise BlockingIOError(11, "Resource temporarily unavailable")

        monkeypatch.setattr(os, "fork", no_fork)
    gc.collect()  # what earlier tests left to close: this one counts its own descriptors
    open_before = sorted(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else []
    two = scanned(a, 2, monkeypatch)
    assert bool(forks) == (failing == "the second process")
    assert_same(one, two)
    assert len(two.files) == 2 * FOLDERS and not two.warnings
    if open_before:
        gc.collect()
        assert sorted(os.listdir("/proc/self/fd")) == open_before


def test_a_folder_reached_in_both_halves_is_kept_where_one_walk_keeps_it(
    local_server: Server,
    make_device,
    forks: list[int],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    a, b = joined(make_device("a"), local_server), joined(make_device("b"), local_server)
    many_folders(a)
    shared = tmp_path / "shared"
    (shared / "inner").mkdir(parents=True)
    (shared / "s.md").write_text("shared\n")
    (shared / "inner" / "i.md").write_text("inner\n")
    for i in range(0, FOLDERS, 7):  # in both halves, whichever way they are dealt
        (a.claude / f"agents/team{i:03}/linked").symlink_to(shared, target_is_directory=True)
    one = scanned(a, 1, monkeypatch)
    assert not forks
    two = scanned(a, 2, monkeypatch)
    assert forks
    assert_same(one, two)
    result = a.run("push")
    assert result.exit_code == 0, result.output
    linked = len(range(0, FOLDERS, 7))
    assert result.output.count("a folder reached twice (a link loop)") == linked - 1
    b.ok("pull")
    copies = [path for path in tree(b.claude) if "/linked/" in path]
    assert len(copies) == 2 and {b.read(path) for path in copies} == {b"shared\n", b"inner\n"}


def test_a_scan_does_not_fork_while_another_thread_runs(
    local_server: Server, make_device, forks: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    a = joined(make_device("a"), local_server)
    many_folders(a)
    one = scanned(a, 1, monkeypatch)
    done = threading.Event()
    waiting = threading.Thread(target=done.wait)
    waiting.start()
    try:
        two = scanned(a, 2, monkeypatch)
    finally:
        done.set()
        waiting.join()
    assert not forks
    assert_same(one, two)


@pytest.mark.parametrize("split_entries", [1, SPLIT_ENTRIES])
def test_the_files_of_one_folder_are_shared(
    local_server: Server,
    make_device,
    forks: list[int],
    taken: list[int],
    named_elsewhere: Path,
    monkeypatch: pytest.MonkeyPatch,
    split_entries: int,
) -> None:
    """A tree of a few folders, each of many files (a folder of plans, a project folder of
    many transcripts, whose names this process decides): its files are dealt out. With a
    threshold of one entry, the top itself is the level shared."""
    monkeypatch.setattr(scan, "SPLIT_ENTRIES", split_entries)
    a, b = joined(make_device("a"), local_server), joined(make_device("b"), local_server)
    count = SPLIT_ENTRIES + 6  # in plans/, on the level split, with projects/
    for i in range(count):
        put(a, f"plans/p{i:04}.md", f"plan {i}\n", i)
        put(a, f"projects/-home-ann-app/s{i:04}.jsonl", f'{{"n": {i}}}\n', i)
    assert f"{2 * count} uploaded" in a.ok("push")
    assert forks
    forks.clear()
    for i in range(0, count, 9):
        put(a, f"plans/p{i:04}.md", f"plan {i}, changed\n", 600)
        put(a, f"projects/-home-ann-app/s{i:04}.jsonl", f'{{"n": {i}}}\n{{"m": 1}}\n', 600)
    one = scanned(a, 1, monkeypatch)
    assert not forks
    taken.clear()
    two = scanned(a, 2, monkeypatch)
    assert forks and sum(taken) >= count // 2  # half of a folder's files, or more
    assert not named_elsewhere.exists()
    assert_same(one, two)
    assert len(two.files) == 2 * count
    changed = {f"plans/p{i:04}.md" for i in range(0, count, 9)}
    assert {path for path in two.differing if path.startswith("plans/")} == changed
    assert len(two.differing) == 2 * len(changed)
    a.ok("push")
    b.ok("pull")
    assert tree(b.claude) == tree(a.claude)


def test_dealing_takes_every_entry_once_every_other_across_listings() -> None:
    listings = deque(
        [
            scan.Listing("plans", ["p1", "p2", "p3"], None, "plans/"),
            scan.Listing("projects/x", ["s4", "s5"], ["projects/r/s4", "projects/r/s5"], None),
            scan.Listing("todos", ["t6", "t7", "t8", "t9"], None, "todos/"),
        ]
    )
    mine, theirs = scan._deal(listings)
    assert not listings
    assert [entry for part in mine for entry in part.entries] == ["p1", "p3", "s5", "t7", "t9"]
    assert [entry for part in theirs for entry in part.entries] == ["p2", "s4", "t6", "t8"]
    assert [listing.remotes for listing in mine] == [None, ["projects/r/s5"], None]
    assert [listing.remotes for listing in theirs] == [None, ["projects/r/s4"], None]
    assert [listing.prefix for listing in theirs] == ["plans/", None, "todos/"]
