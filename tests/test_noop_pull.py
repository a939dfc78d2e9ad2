"""A pull costs what changed: with no new journal entries it decodes none, and it decides
only the paths that changed here or in new entries. Two devices on a local-folder remote,
real files, the real rclone; the work a pull does is counted by wrapping the functions
that do it, never timed."""

from __future__ import annotations

import json
import os
import sqlite3
from collections import Counter
from contextlib import closing
from pathlib import Path

import pytest
import yaml
from conftest import Device, joined, journal_folder, put
from servers import Server

from claude_sync import journal, manifest, remote_view, state
from claude_sync.actions import pull as pull_action
from claude_sync.actions import push as push_action
from claude_sync.projects import encode_project


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """How many entries a run decodes, and how many state bases it parses."""
    calls: Counter = Counter()

    def decode_entry(*args, **kwargs):
        calls["entries"] += 1
        return journal.decode_entry(*args, **kwargs)

    def base_from_json(*args, **kwargs):
        calls["bases"] += 1
        return manifest.version_from_json(*args, **kwargs)

    monkeypatch.setattr(remote_view, "decode_entry", decode_entry)
    monkeypatch.setattr(state, "version_from_json", base_from_json)
    return calls


def settled_pair(server: Server, make_device) -> tuple[Device, Device]:
    """A pushed a few files, B pulled them all."""
    a, b = (joined(make_device(name), server) for name in "ab")
    for at, name in enumerate(["CLAUDE.md", "agents/x.md", "settings.json", "rules/r.md"]):
        put(a, name, f"{name} one\n", at)
    a.ok("push")
    b.ok("pull")
    return a, b


def cached_plaintexts(device: Device) -> list[Path]:
    return sorted((device.sync_home / "cache" / "journal").rglob("*.json"))


def test_a_pull_with_no_new_entries_decodes_none_and_parses_no_base(
    local_server: Server, make_device, counted: Counter
) -> None:
    a, b = settled_pair(local_server, make_device)
    put(a, "CLAUDE.md", "two\n", 10)
    a.ok("push")
    b.ok("pull")
    counted.clear()
    assert "Already up to date" in b.ok("pull")
    assert counted == Counter()


def test_a_local_change_is_decided_alone(
    local_server: Server, make_device, counted: Counter
) -> None:
    """A file changed here is decided (its base parsed), and nothing else."""
    a, b = settled_pair(local_server, make_device)
    put(b, "agents/x.md", "edited on b\n", 20)
    counted.clear()
    b.ok("pull")
    assert counted == Counter(bases=1)
    assert b.read("agents/x.md") == b"edited on b\n"


def test_a_pull_after_another_device_pushed_decodes_only_the_new_entry(
    local_server: Server, make_device, counted: Counter
) -> None:
    a, b = settled_pair(local_server, make_device)
    put(a, "CLAUDE.md", "two\n", 10)
    a.ok("push")
    counted.clear()
    assert "1 downloaded" in b.ok("pull")
    assert b.read("CLAUDE.md") == b"two\n"
    assert counted["entries"] == 1
    put(a, "rules/r.md", "gone soon\n", 11)
    a.ok("push")
    (a.claude / "rules" / "r.md").unlink()
    a.ok("push")
    b.ok("pull")
    assert not (b.claude / "rules" / "r.md").exists()
    assert b.read("agents/x.md") == b"agents/x.md one\n"


def test_a_tampered_cached_entry_is_refused(local_server: Server, make_device) -> None:
    a, b = settled_pair(local_server, make_device)
    b.ok("pull")
    [cached] = cached_plaintexts(b)
    text = cached.read_text()
    tampered = text.replace('"name":"a"', '"name":"z"')
    assert tampered != text
    cached.write_text(tampered)
    result = b.run("pull")
    assert result.exit_code == 1
    assert "fails its authentication (forged, or altered): refused" in result.output
    assert b.read("CLAUDE.md") == b"CLAUDE.md one\n"


def test_a_damaged_view_cache_is_made_anew(local_server: Server, make_device) -> None:
    a, b = settled_pair(local_server, make_device)
    (b.sync_home / "cache" / "views.sqlite").write_bytes(b"not a database")
    put(a, "CLAUDE.md", "two\n", 10)
    a.ok("push")
    b.ok("pull")
    assert b.read("CLAUDE.md") == b"two\n"


@pytest.mark.parametrize(
    "damage",
    [
        "UPDATE devices SET header = 'not json'",
        "UPDATE devices SET header = '{\"names\": 1}'",
        "UPDATE files SET version = 'not json'",
        "UPDATE files SET version = '{\"sha256\": 5}'",
        "UPDATE entries SET paths = '[1'",
    ],
)
def test_damaged_rows_in_the_view_cache_are_decoded_anew(
    local_server: Server, make_device, damage: str
) -> None:
    """Rows another program wrote into views.sqlite are not claude-sync's: the views are
    decoded again from the entries, the cache made anew, and the pull goes on."""
    a, b = settled_pair(local_server, make_device)
    put(a, "CLAUDE.md", "two\n", 10)
    a.ok("push")
    with closing(sqlite3.connect(b.sync_home / "cache" / "views.sqlite")) as db, db:
        db.execute(damage)
    b.ok("pull")
    assert b.read("CLAUDE.md") == b"two\n"
    assert b.read("agents/x.md") == b"agents/x.md one\n"


def test_a_damaged_version_in_the_view_cache_is_named_and_the_next_run_decodes_anew(
    local_server: Server, make_device
) -> None:
    a, b = settled_pair(local_server, make_device)
    with closing(sqlite3.connect(b.sync_home / "cache" / "views.sqlite")) as db, db:
        db.execute("UPDATE files SET version = 'not json' WHERE path = 'CLAUDE.md'")
    put(b, "CLAUDE.md", "b's edit\n", 20)  # so that the pull decides CLAUDE.md
    failed = b.run("pull")
    assert failed.exit_code == 1
    assert "views.sqlite: the version of CLAUDE.md is damaged" in failed.output
    b.ok("push")
    assert b.read("CLAUDE.md") == b"b's edit\n"
    a.ok("pull")
    assert a.read("CLAUDE.md") == b"b's edit\n"


def test_a_path_that_could_not_be_written_is_written_by_the_next_pull(
    local_server: Server, make_device, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The next pull sees no new entry and no local change, and still writes it."""
    a, b = settled_pair(local_server, make_device)
    put(a, "agents/x.md", "two\n", 10)
    put(a, "CLAUDE.md", "two\n", 10)
    a.ok("push")
    write_file = pull_action.write_file

    def failing(source, target, *args, **kwargs):
        if target.name == "x.md":
            raise PermissionError(13, "Permission denied")
        return write_file(source, target, *args, **kwargs)

    monkeypatch.setattr(pull_action, "write_file", failing)
    assert "agents/x.md: cannot be written" in b.ok("pull")
    assert b.read("agents/x.md") == b"agents/x.md one\n"
    monkeypatch.setattr(pull_action, "write_file", write_file)
    b.ok("pull")
    assert b.read("agents/x.md") == b"two\n"


def test_a_narrow_pull_leaves_the_rest_to_the_next_pull(local_server: Server, make_device) -> None:
    a, b = settled_pair(local_server, make_device)
    app = a.home / "app"
    transcript = f"projects/{encode_project(os.path.realpath(app))}/s.jsonl"
    put(a, transcript, json.dumps({"cwd": str(app), "uuid": "1"}) + "\n", 10)
    put(a, "CLAUDE.md", "two\n", 10)
    a.ok("push")
    b.ok("pull", "--project", str(b.home / "app"))
    assert b.read("CLAUDE.md") == b"CLAUDE.md one\n"
    b.ok("pull")
    assert b.read("CLAUDE.md") == b"two\n"


def include_todos(device: Device) -> None:
    config = device.sync_home / "config.yaml"
    document = yaml.safe_load(config.read_text())
    document["sync"]["include"] = ["todos/"]
    config.write_text(yaml.safe_dump(document))


def test_a_newly_included_folder_is_pulled_with_no_new_entry(
    local_server: Server, make_device
) -> None:
    a, b = settled_pair(local_server, make_device)
    include_todos(a)
    put(a, "todos/t.json", "[]\n", 10)
    a.ok("push")
    b.ok("pull")
    assert not (b.claude / "todos").exists()
    include_todos(b)
    b.ok("pull")
    assert b.read("todos/t.json") == b"[]\n"


def test_verify_checks_every_entry_afresh(
    local_server: Server, make_device, counted: Counter
) -> None:
    a, b = settled_pair(local_server, make_device)
    put(a, "CLAUDE.md", "two\n", 10)
    a.ok("push")
    b.ok("pull")
    counted.clear()
    b.ok("verify")
    assert counted["entries"] == 2


def kept_view(device: Device, device_id: str) -> tuple[dict, dict, dict]:
    """What cache/views.sqlite keeps of `device_id`'s view: its header (but the stats of the
    plaintexts), its versions and its entries' paths."""
    with closing(sqlite3.connect(device.sync_home / "cache" / "views.sqlite")) as db:
        (header,) = db.execute("SELECT header FROM devices WHERE device = ?", (device_id,))
        files = dict(db.execute("SELECT path, version FROM files WHERE device = ?", (device_id,)))
        entries = dict(db.execute("SELECT name, paths FROM entries WHERE device = ?", (device_id,)))
    held = json.loads(header[0])
    del held["stats"]
    return held, {p: json.loads(v) for p, v in files.items()}, entries


def assert_kept_as_decoded(device: Device) -> None:
    """The view a push kept of its own entries is the view decoded anew from them."""
    device_id = yaml.safe_load((device.sync_home / "config.yaml").read_text())["device"]["id"]
    kept = kept_view(device, device_id)
    (device.sync_home / "cache" / "views.sqlite").unlink()
    device.ok("pull")
    assert kept == kept_view(device, device_id)


def test_a_device_never_decodes_the_entries_it_wrote(
    local_server: Server, make_device, counted: Counter
) -> None:
    """A push keeps its own entry in the view cache as it writes it: a snapshot (the first
    push) and a delta after it are decoded by the other device only."""
    a, b = (joined(make_device(name), local_server) for name in "ab")
    put(a, "CLAUDE.md", "one\n", 0)
    a.ok("push")  # a snapshot
    counted.clear()
    assert "Already up to date" in a.ok("pull")
    put(a, "CLAUDE.md", "two\n", 10)
    put(a, "agents/y.md", "y\n", 10)
    a.ok("push")  # a delta on top of it
    assert "Already up to date" in a.ok("pull")
    assert counted["entries"] == 0
    assert_kept_as_decoded(a)
    b.ok("pull")
    assert counted["entries"] == 2
    assert b.read("CLAUDE.md") == b"two\n"
    put(b, "agents/x.md", "from b\n", 20)
    b.ok("push")
    counted.clear()
    a.ok("pull")
    assert counted["entries"] == 1  # b's snapshot, and only that
    assert a.read("agents/x.md") == b"from b\n"
    a.ok("verify")


def test_a_snapshot_that_replaces_a_devices_entries_is_kept_as_its_whole_view(
    local_server: Server, make_device, counted: Counter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(push_action, "SNAPSHOT_AFTER", 1)
    a, b = (joined(make_device(name), local_server) for name in "ab")
    for at, text in enumerate(["one\n", "two\n", "three\n"]):
        put(a, "CLAUDE.md", text, at * 10)
        a.ok("push")  # a snapshot, a delta, then a snapshot that replaces both
    assert len(list(journal_folder(local_server, a).iterdir())) == 1
    counted.clear()
    assert "Already up to date" in a.ok("pull")
    assert counted["entries"] == 0
    assert_kept_as_decoded(a)
    b.ok("pull")
    assert b.read("CLAUDE.md") == b"three\n"
    a.ok("verify")
