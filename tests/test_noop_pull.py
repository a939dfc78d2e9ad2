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

from claude_sync import journal, manifest, pathmap, remote_view, scan, state
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
    """A file changed here is decided (its base parsed) with the path of the new entry,
    and nothing else."""
    a, b = settled_pair(local_server, make_device)
    put(b, "agents/x.md", "edited on b\n", 20)
    put(a, "rules/r.md", "rules two\n", 21)
    a.ok("push")
    counted.clear()
    assert "1 downloaded" in b.ok("pull")
    assert counted == Counter(entries=1, bases=2)
    assert b.read("agents/x.md") == b"edited on b\n"
    assert b.read("rules/r.md") == b"rules two\n"


@pytest.fixture
def walks(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The Claude folders a run walks (a scan, or a listing of conflict copies)."""
    walked: list[Path] = []

    class RecordedWalker(scan.FolderWalker):
        def __init__(self, claude: Path, *args, **kwargs) -> None:
            walked.append(claude)
            super().__init__(claude, *args, **kwargs)

    monkeypatch.setattr(scan, "FolderWalker", RecordedWalker)
    return walked


def test_a_pull_with_nothing_new_does_not_scan_and_a_local_change_waits_for_a_push(
    local_server: Server, make_device, walks: list[Path]
) -> None:
    a, b = settled_pair(local_server, make_device)
    put(b, "agents/x.md", "edited on b\n", 20)
    (b.claude / "rules" / "r.md").unlink()
    walks.clear()
    assert "Already up to date" in b.ok("pull")
    assert walks == []
    assert b.read("agents/x.md") == b"edited on b\n"
    assert "1 uploaded" in b.ok("push")
    a.ok("pull")
    assert a.read("agents/x.md") == b"edited on b\n"
    assert not (a.claude / "rules" / "r.md").exists()


def test_a_pull_after_one_with_nothing_new_still_meets_a_local_change_as_a_conflict(
    local_server: Server, make_device, walks: list[Path]
) -> None:
    a, b = settled_pair(local_server, make_device)
    put(b, "agents/x.md", "edited on b\n", 20)
    b.ok("pull")
    put(a, "agents/x.md", "edited on a\n", 30)
    a.ok("push")
    walks.clear()
    assert "1 conflict to settle" in b.ok("pull", exit_code=3)
    assert walks == [b.claude]
    assert b.read("agents/x.md") == b"edited on b\n"
    [copy] = [p for p in (b.claude / "agents").iterdir() if ".conflict-" in p.name]
    assert copy.read_bytes() == b"edited on a\n"


def test_the_pull_after_a_push_here_does_not_scan(
    local_server: Server, make_device, walks: list[Path]
) -> None:
    """The entry a push writes names this device's bases: nothing in it for a pull to
    decide. Another device's entry is."""
    a, b = settled_pair(local_server, make_device)
    put(b, "agents/x.md", "edited on b\n", 20)
    b.ok("push")
    walks.clear()
    assert "Already up to date" in b.ok("pull")
    assert walks == []
    assert "1 downloaded" in a.ok("pull")
    put(a, "CLAUDE.md", "edited on a\n", 30)
    a.ok("push")
    walks.clear()
    assert "1 downloaded" in b.ok("pull")
    assert walks == [b.claude] and b.read("CLAUDE.md") == b"edited on a\n"


def meta(device: Device, name: str) -> object:
    with closing(sqlite3.connect(device.sync_home / "state.sqlite")) as db:
        [(value,)] = db.execute("SELECT value FROM meta WHERE name = ?", (name,))
    return json.loads(value)


@pytest.mark.parametrize("recorded", ["none", "another view"])
def test_a_pull_scans_when_the_conflict_copies_of_the_settled_view_are_not_known(
    local_server: Server, make_device, walks: list[Path], recorded: str
) -> None:
    """As after an earlier version, which kept none, or settled over another view."""
    a, b = settled_pair(local_server, make_device)
    put(a, "CLAUDE.md", "two\n", 10)
    a.ok("push")
    b.ok("pull")
    with closing(sqlite3.connect(b.sync_home / "state.sqlite")) as db, db:
        if recorded == "none":
            db.execute("DELETE FROM meta WHERE name = 'settled_conflicts'")
        else:
            value = json.dumps({"view": {}, "copies": []})
            db.execute("UPDATE meta SET value = ? WHERE name = 'settled_conflicts'", (value,))
    walks.clear()
    b.ok("pull")
    assert walks == [b.claude]
    assert meta(b, "settled_conflicts") == {"view": meta(b, "settled_view")["view"], "copies": []}
    walks.clear()
    b.ok("pull")
    assert walks == []


def test_a_dry_run_with_nothing_new_changes_nothing(
    local_server: Server, make_device, walks: list[Path]
) -> None:
    a, b = settled_pair(local_server, make_device)
    put(b, "agents/x.md", "edited on b\n", 20)
    before = meta(b, "last_pull")
    walks.clear()
    b.ok("pull", "--dry-run")
    assert walks == [] and meta(b, "last_pull") == before
    assert b.read("agents/x.md") == b"edited on b\n"


def test_a_pull_with_nothing_new_names_the_conflict_copies_still_there(
    local_server: Server, make_device, walks: list[Path]
) -> None:
    """The copies a pull made and no push has sent yet are known to the next pull,
    which does not scan; one settled since is not named."""
    a, b = settled_pair(local_server, make_device)
    put(b, "agents/x.md", "edited on b\n", 20)
    put(b, "CLAUDE.md", "claude on b\n", 21)
    put(a, "agents/x.md", "edited on a\n", 30)
    put(a, "CLAUDE.md", "claude on a\n", 31)
    a.ok("push")
    assert "2 conflicts to settle" in b.ok("pull", exit_code=3)
    walks.clear()
    again = b.ok("pull", exit_code=3)
    assert "2 conflicts to settle" in again and walks == []
    [copy] = [p for p in (b.claude / "agents").iterdir() if ".conflict-" in p.name]
    copy.unlink()
    walks.clear()
    once_more = b.ok("pull", exit_code=3)
    assert "1 conflict to settle: CLAUDE.md.conflict-" in once_more and walks == []
    b.ok("conflicts", "--keep", "local")
    walks.clear()
    assert "conflict" not in b.ok("pull") and walks == []


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
    put(b, "CLAUDE.md", "b's edit\n", 20)  # so that the push decides CLAUDE.md
    failed = b.run("push")
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


def test_a_folder_synced_by_default_since_an_upgrade_is_pulled_with_no_new_entry(
    local_server: Server, make_device, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What this claude-sync syncs by default decides the paths as the config does: a
    file another device synced is taken, and one made here meets it as a conflict."""
    a, b = settled_pair(local_server, make_device)
    include_todos(a)
    put(a, "todos/t.json", "[1]\n", 10)
    put(a, "todos/u.json", "[]\n", 10)
    a.ok("push")
    b.ok("pull")
    put(b, "todos/t.json", "[2]\n", 20)
    monkeypatch.setattr(pathmap, "DEFAULT_INCLUDE", (*pathmap.DEFAULT_INCLUDE, "todos/"))
    assert "1 conflict to settle" in b.ok("pull", exit_code=3)
    assert b.read("todos/u.json") == b"[]\n"
    assert b.read("todos/t.json") == b"[2]\n"
    [copy] = [p for p in (b.claude / "todos").iterdir() if ".conflict-" in p.name]
    assert copy.read_bytes() == b"[1]\n"


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
