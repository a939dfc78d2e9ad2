"""Big pushes and pulls: files encrypted on every core, objects sent in batches while the
rest are encrypted, a grown transcript sending and fetching only what it grew by.

Sizes here are chosen from the thresholds in `encrypting`, so that each path (the pool of
processes, zstd's own threads, the batches handed to rclone) really runs."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import sqlite3
import tempfile
import types
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
import yaml
from conftest import Device, joined, put, tree
from servers import Server
from test_disk_full import temporaries
from test_repair import flip_body_byte, object_file, relative
from test_startup import logging_rclone

from claude_sync import (
    claude_folder,
    crypto,
    encrypting,
    plan,
    scan,
    session,
    state,
    view_cache,
    workers,
)
from claude_sync.actions import pull, push
from claude_sync.pathmap import TEMPORARY_PREFIX, Rules
from claude_sync.rclone import TransferStats
from claude_sync.remote import Remote, object_path
from claude_sync.session import Event
from claude_sync.versions import Version
from claude_sync.workspace import load_workspace

WORDS = [
    "the",
    "a",
    "function",
    "file",
    "test",
    "error",
    "import",
    "value",
    "return",
    "class",
    "sync",
    "remote",
]


def text(seed: int, size: int) -> bytes:
    """`size` bytes of JSON lines that compress about as transcripts do."""
    rng = random.Random(seed)
    lines, total = [], 0
    while total < size:
        words = " ".join(rng.choices(WORDS, k=rng.randint(5, 200)))
        line = f'{{"type":"assistant","n":{rng.randrange(10**9)},"text":"{words}"}}\n'
        lines.append(line.encode())
        total += len(line)
    return b"".join(lines)[:size]


def remote_size(server: Server) -> int:
    return sum(p.stat().st_size for p in server.data_dir.rglob("*") if p.is_file())


def remote_objects(server: Server) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in server.data_dir.rglob("*.age") if "objects" in p.parts}


def set_transfers(device: Device, value: object) -> None:
    config = device.sync_home / "config.yaml"
    document = yaml.safe_load(config.read_text())
    document["rclone"]["transfers"] = value
    config.write_text(yaml.safe_dump(document))


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of 1 MiB, so that a push of a few MiB hands rclone several."""
    monkeypatch.setattr(workers, "TRANSFER_BATCH", 1 << 20)


def test_a_push_on_every_core_arrives_whole(
    local_or_s3_server: Server, make_device, small_batches: None
) -> None:
    a, b = (joined(make_device(name), local_or_s3_server) for name in "ab")
    each = workers.POOL_FROM // 4 + 1
    for index in range(6):  # past POOL_FROM in all: the pool of processes
        put(a, f"projects/-p/s{index}.jsonl", text(index, each), 0)
    put(a, "projects/-p/big.jsonl", text(99, encrypting.BIG_FILE + 5), 0)  # zstd's threads
    put(a, "projects/-p/empty.jsonl", b"", 0)
    set_transfers(a, 2)
    a.ok("push")
    assert "Nothing to push" in a.ok("push")
    b.ok("pull")
    assert tree(b.claude) == tree(a.claude)


def test_a_grown_big_transcript_sends_and_fetches_only_what_it_grew_by(
    local_server: Server, make_device
) -> None:
    a, b = (joined(make_device(name), local_server) for name in "ab")
    body = text(7, encrypting.BIG_FILE + 5)
    put(a, "projects/-p/big.jsonl", body, 0)
    for index in range(4):
        put(a, f"projects/-p/s{index}.jsonl", text(index, workers.POOL_FROM // 2), 0)
    a.ok("push")
    b.ok("pull")
    before = remote_size(local_server)
    grown = body + text(8, 100_000)
    put(a, "projects/-p/big.jsonl", grown, 10)
    a.ok("push")
    assert remote_size(local_server) - before < 150_000
    b.ok("pull")
    assert b.read("projects/-p/big.jsonl") == grown


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (0, "`rclone.transfers` must be a positive number of files"),
        ("many", "`rclone.transfers` must be a int"),
    ],
)
def test_transfers_is_a_positive_integer(
    local_server: Server, make_device, value: object, words: str
) -> None:
    a = joined(make_device("a"), local_server)
    set_transfers(a, value)
    result = a.run("push")
    assert result.exit_code == 2, result.output
    assert words in result.output


def test_a_corrupt_object_among_files_decrypted_on_every_core_refuses_its_path_alone(
    local_server: Server, make_device
) -> None:
    a, b = (joined(make_device(name), local_server) for name in "ab")
    each = workers.POOL_FROM // 3 + 1  # past POOL_FROM in all: the pool of processes
    files = {f"projects/-p/s{index}.jsonl": text(index, each) for index in range(4)}
    for path, data in files.items():
        put(a, path, data, 0)
    a.ok("push")
    victim = "projects/-p/s2.jsonl"
    flip_body_byte(a, relative(local_server, object_file(local_server, a, files[victim])))
    result = b.run("pull")
    assert result.exit_code == 1, result.output
    assert f"! {victim}: object " in result.output and "is corrupt" in result.output
    assert tree(b.claude) == {path: data for path, data in files.items() if path != victim}
    assert temporaries(b.claude) == []


def test_a_pull_that_writes_nothing_syncs_no_disk(
    make_device, local_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A whole-system sync costs as much as the disks have dirty pages, whoever wrote them:
    a pull pays it only to make its own writes durable."""
    a, b = joined(make_device("a"), local_server), joined(make_device("b"), local_server)
    a.write("CLAUDE.md", "a's notes")
    a.ok("push")
    b.ok("pull")
    syncs = []
    monkeypatch.setattr("os.sync", lambda: syncs.append(True))
    b.ok("pull")
    assert syncs == []
    a.write("CLAUDE.md", "a's notes, edited")
    a.ok("push")
    b.ok("pull")
    assert syncs and b.read("CLAUDE.md") == b"a's notes, edited"


def test_a_push_in_several_batches_shows_one_transfer_from_start_to_end(
    make_device, local_server: Server, small_batches: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A person sees the push's bytes go from none to all once, not each batch's from zero."""
    device = joined(make_device("a"), local_server)
    sizes = [3 << 19, 5 << 19, 3 << 19, 1 << 10]
    for number, size in enumerate(sizes):
        put(device, f"projects/-p/s{number}.jsonl", random.randbytes(size), 1)
    told: list[TransferStats | None] = []
    for name, value in device.environment().items():
        monkeypatch.setenv(name, value)
    push.push(load_workspace(device.sync_home), lambda event: None, progress=told.append)
    shown = [stats for stats in told if stats is not None]
    assert told[-1] is None and len(shown) == len(told) - 1  # taken away once, at the end
    assert {stats.total_bytes for stats in shown} == {sum(sizes)}
    done = [stats.bytes for stats in shown]
    assert done == sorted(done) and done[-1] == sum(sizes)


def test_a_pull_downloads_in_batches_while_the_last_one_is_decrypted(
    make_device, s3_server: Server, small_batches: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files whose objects came in an earlier batch (the same bytes as another's) are
    assembled all the same, and a person sees one transfer from none to all."""
    a, b = (joined(make_device(name), s3_server) for name in "ab")
    each = workers.POOL_FROM // 4 + 1
    for index in range(6):
        put(a, f"projects/-p/s{index}.jsonl", text(index, each), 0)
    put(a, "projects/-p/again.jsonl", text(0, each), 0)  # s0's bytes: one object for both
    a.ok("push")
    calls: list[int] = []
    download = Remote.download_objects

    def counted(self: Remote, staging, names, progress=None) -> None:
        calls.append(len(names))
        download(self, staging, names, progress=progress)

    monkeypatch.setattr(Remote, "download_objects", counted)
    for name, value in b.environment().items():
        monkeypatch.setenv(name, value)
    told: list[TransferStats | None] = []
    pull.pull(load_workspace(b.sync_home), lambda event: None, progress=told.append)
    assert tree(b.claude) == tree(a.claude)
    assert len(calls) > 2 and sum(calls) == 6  # every object once
    shown = [stats for stats in told if stats is not None]
    assert told[-1] is None and len(shown) == len(told) - 1
    assert {stats.total_bytes for stats in shown} == {7 * each}
    assert [stats.bytes for stats in shown][-1] == 7 * each


def test_a_pull_compares_its_actions_a_number_of_times_that_grows_with_them_not_faster(
    make_device, local_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Setting aside what a pull cannot write once took a comparison of every planned action
    with every kept one: a fresh pull of 100,000 files spent minutes there."""
    a, b = (joined(make_device(name), local_server) for name in "ab")
    for index in range(300):
        put(a, f"todos/t{index}.json", f"[{index}]\n", 0)
    include = yaml.safe_load((a.sync_home / "config.yaml").read_text())["sync"]["include"]
    for device in (a, b):
        config = device.sync_home / "config.yaml"
        document = yaml.safe_load(config.read_text())
        document["sync"]["include"] = [*include, "todos/"]
        config.write_text(yaml.safe_dump(document))
    a.ok("push")
    compared = []
    for kind in (plan.Adopt, plan.Download, plan.Trash, plan.Resolve):
        equal = kind.__eq__
        monkeypatch.setattr(
            kind,
            "__eq__",
            lambda self, other, equal=equal: compared.append(1) or equal(self, other),
        )
    b.ok("pull")
    assert len(list((b.claude / "todos").iterdir())) == 300
    assert len(compared) < 300


def test_objects_sent_to_a_folder_on_the_same_disk_are_renamed_not_copied(
    make_device, local_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Staging is a plain path and the remote a named one: rclone copies between two
    configs unless told it may move across them, which for 100,000 small objects is the
    difference between one rename each and a copy, a delete and an fsync each."""
    device = joined(make_device("a"), local_server)
    for name, value in device.environment().items():
        monkeypatch.setenv(name, value)
    ws = load_workspace(device.sync_home)
    staging = device.sync_home / "staging" / "push"
    names = [f"{number:02x}" * 32 for number in range(3)]
    made = {}
    for name in names:
        file = staging / object_path(name)
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(name.encode())
        made[name] = file.stat().st_ino
    ws.remote.upload_objects(staging, names)
    for name in names:
        there = local_server.data_dir / object_path(name)
        assert there.read_bytes() == name.encode()
        assert there.stat().st_ino == made[name]


def test_a_pull_looks_at_each_folder_it_writes_into_once(
    make_device, local_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whether something is in the way of a file is asked of each of its folders: once a
    run, not once for each of the thousands of files a pull writes into them."""
    a, b = (joined(make_device(name), local_server) for name in "ab")
    for index in range(40):
        put(a, f"projects/-p/s{index}.jsonl", text(index, 100), 0)
    a.ok("push")
    folder = b.claude / "projects" / "-p"
    looked: list[Path] = []
    stat = Path.stat

    def counted(self: Path, *, follow_symlinks: bool = True):
        if self == folder:
            looked.append(self)
        return stat(self, follow_symlinks=follow_symlinks)

    monkeypatch.setattr(Path, "stat", counted)
    for name, value in b.environment().items():
        monkeypatch.setenv(name, value)
    pull.pull(load_workspace(b.sync_home), lambda event: None)
    assert tree(b.claude) == tree(a.claude)
    assert len(looked) < 10  # not once for each of the 40 files


def test_a_pull_asks_whether_each_new_folder_can_be_made_once(
    make_device, local_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh pull writes into thousands of new folders below a few: each folder is
    looked at once, not once for each new folder below it."""
    a, b = (joined(make_device(name), local_server) for name in "ab")
    sessions = 30
    for index in range(sessions):
        put(a, f"projects/-p/s{index}/subagents/agent.jsonl", text(index, 100), 0)
    a.ok("push")
    looked: list[str] = []
    lexists = os.path.lexists

    def counted(path) -> bool:
        if str(path).startswith(str(b.claude)):
            looked.append(str(path))
        return lexists(path)

    monkeypatch.setattr(os.path, "lexists", counted)
    for name, value in b.environment().items():
        monkeypatch.setenv(name, value)
    pull.pull(load_workspace(b.sync_home), lambda event: None)
    assert tree(b.claude) == tree(a.claude)
    assert len(looked) == len(set(looked)) <= 2 * sessions + 3


def test_a_pull_resolves_each_file_it_writes_once(
    make_device, local_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where a file goes (is it a link the user made?) is asked once a run, though the pull
    needs it as it plans, assembles and applies the file (its folder is there: in a folder
    that is not, nothing is asked)."""
    a, b = (joined(make_device(name), local_server) for name in "ab")
    for index in range(40):
        put(a, f"projects/-p/s{index}.jsonl", text(index, 100), 0)
    a.ok("push")
    put(b, "projects/-p/b.jsonl", text(99, 100), 0)
    asked: list[str] = []
    lstat = os.lstat

    def counted(path, *args, **kwargs) -> os.stat_result:
        if os.fspath(path).endswith(".jsonl"):
            asked.append(os.fspath(path))
        return lstat(path, *args, **kwargs)

    monkeypatch.setattr(os, "lstat", counted)
    for name, value in b.environment().items():
        monkeypatch.setenv(name, value)
    pull.pull(load_workspace(b.sync_home), lambda event: None)
    monkeypatch.undo()
    assert len(asked) == 40, Counter(asked).most_common(1)
    assert tree(b.claude) == {**tree(a.claude), "projects/-p/b.jsonl": text(99, 100)}


def test_a_pull_resolves_each_folder_from_its_parent(
    make_device, local_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder that is not a link is its parent's real path and its name: no folder is
    looked at once for each folder below it, nor resolved whole (realpath) again."""
    a, b = (joined(make_device(name), local_server) for name in "ab")
    for index in range(10):
        put(a, f"agents/d{index}/e/f/g/x.md", text(index, 100), 0)
    a.ok("push")
    real = os.path.realpath
    resolved: list[str] = []

    def counted(path, *args, **kwargs):
        resolved.append(os.fspath(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(session.os.path, "realpath", counted)
    for name, value in b.environment().items():
        monkeypatch.setenv(name, value)
    pull.pull(load_workspace(b.sync_home), lambda event: None)
    assert [path for path in resolved if "/agents" in path] == []
    assert tree(b.claude) == tree(a.claude)


def test_a_push_of_one_change_parses_the_versions_of_that_path_not_of_every_path(
    make_device, local_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a push after a session costs follows what changed: the state marks the bases
    this device published, so the others are neither compared nor parsed."""
    device = joined(make_device("a"), local_server)
    for index in range(60):
        put(device, f"projects/-p/s{index}.jsonl", text(index, 200), 0)
    device.ok("push")
    put(device, "projects/-p/s0.jsonl", text(0, 300), 1)
    device.ok("push")  # the first push that reads the view of the one before from the cache
    put(device, "projects/-p/s1.jsonl", text(1, 300), 2)
    parsed: list[str] = []
    for module in (view_cache, state):
        parse = module.version_from_json

        def counted(path: str, raw: object, parse=parse) -> Version:
            parsed.append(path)
            return parse(path, raw)

        monkeypatch.setattr(module, "version_from_json", counted)
    for name, value in device.environment().items():
        monkeypatch.setenv(name, value)
    push.push(load_workspace(device.sync_home), lambda event: None)
    assert set(parsed) <= {"projects/-p/s1.jsonl"}, sorted(parsed)
    other = joined(make_device("b"), local_server)
    other.ok("pull")
    assert tree(other.claude) == tree(device.claude)


def test_a_push_decides_the_rules_for_each_file_once(
    make_device, local_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The walk keeps synced files only; the rest of the push asks the rules only about
    the paths the state has and the walk did not find (here the one deleted: once to plan,
    once to see whether the state should forget it)."""
    device = joined(make_device("a"), local_server)
    for index in range(40):
        put(device, f"commands/c{index}.md", text(index, 200), 0)
    device.ok("push")
    (device.claude / "commands/c0.md").unlink()
    asked: list[str] = []  # the names of the files asked about, by path or in their folder
    synced, name_synced = Rules.synced, Rules.name_synced

    def counted(self: Rules, path: str) -> bool:
        asked.append(path.rpartition("/")[2])
        return synced(self, path)

    def counted_name(self: Rules, name: str) -> bool:
        asked.append(name)
        return name_synced(self, name)

    monkeypatch.setattr(Rules, "synced", counted)
    monkeypatch.setattr(Rules, "name_synced", counted_name)
    for name, value in device.environment().items():
        monkeypatch.setenv(name, value)
    events: list[Event] = []
    push.push(load_workspace(device.sync_home), events.append)
    assert [event.path for event in events if event.kind == "delete"] == ["commands/c0.md"]
    times = Counter(name for name in asked if name.startswith("c"))
    assert times.pop("c0.md") <= 4  # twice by path, each of which asks by name
    assert times == Counter(f"c{index}.md" for index in range(1, 40))


def test_a_pull_makes_no_state_entry_for_the_files_it_leaves_as_they_are(
    make_device, local_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pull compares each unchanged file with its row's columns: the state makes an entry
    (and saves a comparison of it) only for the paths the pull decides."""
    a, b = (joined(make_device(name), local_server) for name in "ab")
    for index in range(40):
        put(a, f"commands/c{index}.md", text(index, 200), 0)
    a.ok("push")
    b.ok("pull")
    put(a, "commands/c0.md", text(100, 300), 1)
    a.ok("push")
    made: list[str] = []
    stored = state.Entry.stored.__func__

    def counted(cls: type[state.Entry], row: state.Row, bases: state.StoredBases) -> state.Entry:
        made.append(row[0])
        return stored(cls, row, bases)

    monkeypatch.setattr(state.Entry, "stored", classmethod(counted))
    for name, value in b.environment().items():
        monkeypatch.setenv(name, value)
    pull.pull(load_workspace(b.sync_home), lambda event: None)
    assert set(made) <= {"commands/c0.md"}, sorted(made)
    assert tree(b.claude) == tree(a.claude)


def test_a_push_decides_only_the_paths_that_changed(
    make_device, local_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file that is its base, with nothing to publish, is left as it is whatever the
    remote holds: a push plans the changed file, the deleted one and the one to publish."""
    a, b = (joined(make_device(name), local_server) for name in "ab")
    for index in range(40):
        put(a, f"commands/c{index}.md", text(index, 200), 0)
    a.ok("push")
    b.ok("pull")
    with closing(sqlite3.connect(b.sync_home / "state.sqlite")) as store, store:
        # as a pull that settled it between other devices' versions leaves it
        store.execute(
            "UPDATE files SET flags = flags | ? WHERE path = ?", (state.PUBLISH, "commands/c1.md")
        )
    put(b, "commands/c2.md", text(103, 300), 3)
    (b.claude / "commands/c3.md").unlink()
    decided: list[str] = []
    decide = push.decide_push

    def counted(path: str, *args: object) -> object:
        decided.append(path)
        return decide(path, *args)

    monkeypatch.setattr(push, "decide_push", counted)
    for name, value in b.environment().items():
        monkeypatch.setenv(name, value)
    push.push(load_workspace(b.sync_home), lambda event: None)
    assert set(decided) == {"commands/c1.md", "commands/c2.md", "commands/c3.md"}, decided
    a.ok("pull")
    assert tree(a.claude) == tree(b.claude)


def test_a_pull_from_a_local_remote_reads_the_objects_where_they_are(
    make_device, local_server: Server, small_batches: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing is copied into staging/ to be read once: the objects are decrypted from the
    remote's folder, where every one stays. A person sees them decrypted, from none to all,
    and a grown transcript's new segments among them."""
    a, b = (joined(make_device(name), local_server) for name in "ab")
    each = workers.POOL_FROM // 4 + 1
    for index in range(6):
        put(a, f"projects/-p/s{index}.jsonl", text(index, each), 0)
    put(a, "projects/-p/again.jsonl", text(0, each), 0)
    body = text(7, encrypting.BIG_FILE + 5)  # in segments: it grows by a new one
    put(a, "projects/-p/grown.jsonl", body, 0)
    a.ok("push")
    b.ok("pull")
    put(a, "projects/-p/grown.jsonl", body + text(8, 1000), 1)
    for index in range(6, 12):
        put(a, f"projects/-p/s{index}.jsonl", text(index, each), 0)
    a.ok("push")
    objects = remote_objects(local_server)
    downloads: list[int] = []
    monkeypatch.setattr(Remote, "download_objects", lambda *args, **kwargs: downloads.append(1))
    for name, value in b.environment().items():
        monkeypatch.setenv(name, value)
    told: list[TransferStats | None] = []
    pull.pull(load_workspace(b.sync_home), lambda event: None, progress=told.append)
    assert tree(b.claude) == tree(a.claude)
    assert downloads == []
    assert remote_objects(local_server) == objects
    shown = [stats for stats in told if stats is not None]
    assert told[-1] is None and len(shown) == len(told) - 1
    total = 6 * each + len(text(8, 1000))
    assert {stats.total_bytes for stats in shown} == {total}
    assert [stats.bytes for stats in shown][-1] == total


def test_a_base_to_publish_that_the_rules_no_longer_sync_is_not_planned(
    make_device, local_server: Server
) -> None:
    """`status` plans a push without forgetting unsynced paths first: a path excluded since
    its base was flagged to publish is neither an upload nor a deletion."""
    a, b = (joined(make_device(name), local_server) for name in "ab")
    put(a, "commands/c0.md", text(0, 200), 0)
    put(a, "agents/x.md", text(1, 200), 0)
    a.ok("push")
    b.ok("pull")
    with closing(sqlite3.connect(b.sync_home / "state.sqlite")) as store, store:
        store.execute(
            "UPDATE files SET flags = flags | ? WHERE path = ?", (state.PUBLISH, "agents/x.md")
        )
    config = b.sync_home / "config.yaml"
    document = yaml.safe_load(config.read_text())
    document["sync"]["exclude"] = ["agents/"]
    config.write_text(yaml.safe_dump(document))
    (b.claude / "agents/x.md").unlink()
    shown = b.ok("status")
    assert "agents/x.md" not in shown, shown


def test_only_a_local_remote_named_by_its_absolute_path_is_read_in_place(
    make_device, local_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rclone reads `~` and a relative path from its working folder, not from home: such a
    root's objects are downloaded, as rclone finds them."""
    device = joined(make_device("a"), local_server)
    for name, value in device.environment().items():
        monkeypatch.setenv(name, value)
    remote = load_workspace(device.sync_home).remote
    name, _, folder = remote.root.partition(":")
    assert remote.folder_here == Path(folder)
    for root in (f"{name}:~/remote", f"{name}:remote"):
        assert Remote(remote.rclone, root).folder_here is None, root


@pytest.fixture
def folder_elsewhere(tmp_path: Path) -> Iterator[Path]:
    """A folder on another file system than the devices' homes: /dev/shm's tmpfs."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs /dev/shm on a file system of its own")
    folder = Path(tempfile.mkdtemp(dir=shm))
    yield folder
    shutil.rmtree(folder)


def test_a_local_remote_on_another_file_system_is_written_through_rclone(
    make_device, folder_elsewhere: Path, tmp_path: Path
) -> None:
    """No rename reaches across file systems: there rclone sends the objects and the
    entries, and the folder is read in place all the same."""
    a, b = make_device("a"), make_device("b")
    for device in (a, b):
        device.ok("init", "--local", str(folder_elsewhere), "--device-name", device.name, "--yes")
    body = text(1, 50_000)
    put(a, "projects/-p/s.jsonl", body, 0)
    wrapper, log = logging_rclone(tmp_path)
    a.ok("push", CLAUDE_SYNC_RCLONE=str(wrapper))
    assert log.read_text().split() == ["move", "copyto"]
    b.ok("pull", CLAUDE_SYNC_RCLONE=str(wrapper))
    assert b.read("projects/-p/s.jsonl") == body
    assert log.read_text().split() == ["move", "copyto"]


def test_a_remote_folder_that_cannot_take_an_object_fails_in_one_line_and_loses_nothing(
    make_device, local_server: Server
) -> None:
    a, b = (joined(make_device(name), local_server) for name in "ab")
    put(a, "CLAUDE.md", "notes\n", 0)
    blocker = local_server.data_dir / "objects"
    blocker.write_text("a file where the objects' folder goes")
    result = a.run("push")
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == (
        f"Error: cannot write to the remote folder {local_server.data_dir}: Not a directory"
    )
    blocker.unlink()
    a.ok("push")
    b.ok("pull")
    assert b.read("CLAUDE.md") == b"notes\n"


def test_a_push_hashes_each_byte_it_sends_once(
    make_device, local_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new file's object holds the whole file: the object's SHA-256, taken as it is
    compressed, is the file's, not taken a second time beside it."""
    device = joined(make_device("a"), local_server)
    body = random.randbytes(3 << 20)
    put(device, "projects/-p/s.jsonl", body, 0)
    hashed: list[int] = []
    real_sha256 = hashlib.sha256

    class CountingSha256:
        def __init__(self, data: bytes = b"") -> None:
            self._hash = real_sha256(data)
            hashed.append(len(data))

        def update(self, data: bytes) -> None:
            hashed.append(len(data))
            self._hash.update(data)

        def hexdigest(self) -> str:
            return self._hash.hexdigest()

    counting = types.SimpleNamespace(sha256=CountingSha256)
    monkeypatch.setattr(encrypting, "hashlib", counting)
    monkeypatch.setattr(crypto, "hashlib", counting)
    monkeypatch.setattr(scan, "hashlib", counting)
    for name, value in device.environment().items():
        monkeypatch.setenv(name, value)
    push.push(load_workspace(device.sync_home), lambda event: None)
    assert len(body) <= sum(hashed) < len(body) + (64 << 10)
    monkeypatch.undo()
    b = joined(make_device("b"), local_server)
    b.ok("pull")
    assert b.read("projects/-p/s.jsonl") == body


def test_a_remote_folder_gone_before_the_objects_are_sent_is_not_made_anew(
    make_device, local_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unmounted disk between the journal's reading and the objects' sending: no folder
    is made in its place, for a later mount to hide."""
    device = joined(make_device("a"), local_server)
    put(device, "CLAUDE.md", "notes\n", 0)
    folder = local_server.data_dir
    real_encrypt = encrypting.encrypt_file

    def unmounted_first(*args, **kwargs) -> encrypting.Encrypted | None:
        folder.rename(folder.with_name("unmounted"))
        return real_encrypt(*args, **kwargs)

    monkeypatch.setattr(encrypting, "encrypt_file", unmounted_first)
    result = device.run("push")
    assert result.exit_code == 1
    assert result.output.splitlines()[-1].startswith(
        f"Error: the remote folder {folder} does not exist"
    )
    assert not folder.exists()


@pytest.mark.parametrize("renameat2", [True, False])
def test_a_pull_looks_once_where_it_writes_a_new_file_and_leaves_no_temporary(
    make_device, local_server: Server, monkeypatch: pytest.MonkeyPatch, renameat2: bool
) -> None:
    """Where a pull found no file (or no folder) as it planned, it does not look again for
    a mode to keep, before the rename, or for a temporary left by it: in a fresh pull of
    thousands of files each look was a system call that failed. It looks once for what
    stands in the way (a folder made there since, by this pull too)."""
    a, b = joined(make_device("a"), local_server), joined(make_device("b"), local_server)
    new = [f"agents/team{i}/x.md" for i in range(3)] + ["agents/y.md"]
    for path in new:
        a.write(path, f"{path} from a")
    a.ok("push")
    b.write("agents/b.md", "b's own")  # agents/ is there on b; agents/team*/ are not
    if not renameat2:  # a system without it: a hard link, then the temporary removed
        monkeypatch.setattr(claude_folder, "_renameat2", lambda: None)
    looked: list[str] = []
    for name in ("stat", "lstat", "unlink"):
        real = getattr(os, name)

        def recorded(path, *args, real=real, **kwargs):
            looked.append(os.fsdecode(path) if isinstance(path, str | bytes | Path) else "")
            return real(path, *args, **kwargs)

        monkeypatch.setattr(os, name, recorded)
    b.ok("pull")
    monkeypatch.undo()
    claude = os.path.realpath(b.claude)
    assert looked.count(f"{claude}/agents/y.md") == 2  # resolved, then what is in the way
    assert [looked.count(f"{claude}/{path}") for path in new[:-1]] == [1, 1, 1]
    assert {path: b.read(path) for path in new} == {path: f"{path} from a".encode() for path in new}
    assert not [p for p in b.claude.rglob(f"{TEMPORARY_PREFIX}*")]
