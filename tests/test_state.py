"""The state store: what a save writes, what a load reads back, migration from state.json,
and an unusable store set aside."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sqlite3
import stat
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from claude_sync import scan as scan_module
from claude_sync.manifest import version_to_json
from claude_sync.moves import Move
from claude_sync.pathmap import DEFAULT_INCLUDE, PathMap, Rules
from claude_sync.projects import Layout, Project
from claude_sync.scan import scan
from claude_sync.state import (
    STATE_FILE,
    Changes,
    DamagedState,
    Entry,
    State,
    load_state,
    save_state,
)
from claude_sync.versions import Segment, Version, VersionVector

DEVICE, ROOT = "dev1", "remote:claude-sync"


def version(text: str, counter: int = 1, deleted: bool = False) -> Version:
    if deleted:
        return Version("", 0, 5, VersionVector.of({DEVICE: counter}), DEVICE, deleted=True)
    sha = hashlib.sha256(text.encode()).hexdigest()
    return Version(
        sha,
        len(text),
        7,
        VersionVector.of({DEVICE: counter}),
        DEVICE,
        False,
        (Segment(sha, len(text)),),
        0o600,
    )


def saved(home: Path, entries: dict[str, Entry], **fields: object) -> State:
    state = State(DEVICE, ROOT, **fields)
    state.files.update(entries)
    save_state(home, state)
    return state


def loaded(home: Path) -> State:
    state, warning = load_state(home, DEVICE, ROOT)
    assert warning is None
    return state


def rows(home: Path) -> dict[str, tuple]:
    with closing(sqlite3.connect(home / STATE_FILE)) as db:
        return {row[0]: row[1:] for row in db.execute("SELECT * FROM files")}


def as_values(state: State) -> dict[str, tuple]:
    return {
        path: (entry.base, entry.size, entry.mtime_ns, entry.swept, entry.publish, entry.settled)
        for path, entry in state.files.items()
    }


def test_a_saved_state_loads_back_whole(tmp_path: Path) -> None:
    entries = {
        "settings.json": Entry(version("{}"), 2, 1_000),
        "projects/~-app/s.jsonl": Entry(version("x", 3), swept=True),
        "agents/gone.md": Entry(version("", 2, deleted=True), publish=True, settled=True),
    }
    state = saved(
        tmp_path,
        entries,
        last_push="2026-01-01T00:00:00+00:00",
        projects={"~-app": Project("~/app", "/home/ann/app")},
        moves={"-srv-app": Move("~-app", 17)},
        publish_moves=True,
        layout="[{}, false, []]",
        numbered={"-x": "-x.2"},
        journal_seen={"dev2": 41},
        own_seq=17,
    )
    back = loaded(tmp_path)
    assert as_values(back) == as_values(state)
    assert list(back.files) == sorted(entries)
    for name in ("last_push", "last_pull", "projects", "moves", "publish_moves", "layout"):
        assert getattr(back, name) == getattr(state, name), name
    assert (back.numbered, back.journal_seen, back.own_seq) == ({"-x": "-x.2"}, {"dev2": 41}, 17)
    assert not back.rebuilding
    assert stat.S_IMODE((tmp_path / STATE_FILE).stat().st_mode) == 0o600


def test_the_settled_view_is_kept_until_an_entry_is_removed(tmp_path: Path) -> None:
    settled = {"view": {"dev2": ["000000000001-0a0b0c0d.age"]}, "config": "[]"}
    entries = {"CLAUDE.md": Entry(version("a")), "settings.json": Entry(version("{}"))}
    saved(tmp_path, entries, settled_view=settled)
    state = loaded(tmp_path)
    assert state.settled_view == settled
    state.files["agents/new.md"] = Entry(version("new"))
    save_state(tmp_path, state)
    state = loaded(tmp_path)
    assert state.settled_view == settled
    del state.files["CLAUDE.md"]  # that path has no base any more: nothing is settled
    save_state(tmp_path, state)
    assert state.settled_view is None
    assert loaded(tmp_path).settled_view is None


def test_the_conflict_copies_of_the_settled_view_are_kept(tmp_path: Path) -> None:
    view = {"dev2": ["000000000001-0a0b0c0d.age"]}
    conflicts = {"view": view, "copies": ["settings.json.conflict-20260101-000000-dev2"]}
    saved(tmp_path, {}, settled_view={"view": view, "config": "[]"}, settled_conflicts=conflicts)
    assert loaded(tmp_path).settled_conflicts == conflicts


def test_a_load_parses_no_base_until_asked(tmp_path: Path) -> None:
    saved(tmp_path, {"settings.json": Entry(version("{}"), 2, 1_000)})
    with closing(sqlite3.connect(tmp_path / STATE_FILE)) as db, db:
        db.execute("UPDATE files SET base = 'not json'")  # only the full version is damaged
    entry = loaded(tmp_path).files["settings.json"]
    assert (entry.base_sha256, entry.base_size, entry.base_deleted) == (
        version("{}").sha256,
        2,
        False,
    )
    with pytest.raises(DamagedState) as raised:
        entry.base  # noqa: B018
    message = str(raised.value)
    assert "\n" not in message and "settings.json" in message and STATE_FILE in message


def test_a_save_writes_only_what_changed(tmp_path: Path) -> None:
    paths = [f"agents/a{n}.md" for n in range(5)]
    saved(tmp_path, {path: Entry(version(path), 10, 100) for path in paths})
    before = rows(tmp_path)
    state = loaded(tmp_path)
    for path in paths:
        state.files[path]  # noqa: B018  (handed out, unchanged)
    state.files["agents/a0.md"].swept = True
    state.files["agents/a1.md"].size = None
    state.files["agents/a2.md"].base = version("new", 2)
    del state.files["agents/a3.md"]
    state.files["agents/new.md"] = Entry(version("new"))
    changes = state.files.changes()
    assert sorted(path for *_, path in changes.stats) == ["agents/a0.md", "agents/a1.md"]
    assert sorted(row[0] for row in changes.rows) == ["agents/a2.md", "agents/new.md"]
    assert changes.removed == ["agents/a3.md"]
    save_state(tmp_path, state)
    after = rows(tmp_path)
    assert after["agents/a4.md"] == before["agents/a4.md"]
    assert "agents/a3.md" not in after
    assert state.files.changes() == Changes([], [], [])  # saved: nothing left to write
    # an entry handed out before the save reads its base as stored
    assert state.files["agents/a4.md"].base == version("agents/a4.md")
    back = loaded(tmp_path)
    assert as_values(back) == as_values(state)
    assert back.files["agents/a0.md"].swept and back.files["agents/a1.md"].size is None
    assert back.files["agents/a2.md"].base == version("new", 2)


@pytest.mark.parametrize("processes", [1, 2])
def test_a_scan_compares_with_the_entries_changed_since_the_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, processes: int
) -> None:
    """A scan finds an unchanged file equal to its stored row while no entry was made; once
    one is changed or removed in the same run, it compares with what the state holds now,
    in a forked process too (a tree this small shared as a big one is)."""
    shared: list[int] = []
    if processes == 2:
        take_theirs = scan_module._take_theirs

        def counted(part: scan_module.ScannedFiles, same: dict, changed: dict) -> None:
            shared.append(len(same) + len(changed))
            take_theirs(part, same, changed)

        monkeypatch.setattr(scan_module, "_take_theirs", counted)
        monkeypatch.setattr(scan_module, "SPLIT_ENTRIES", 2)
        monkeypatch.setattr(scan_module, "cores", lambda: 2)
    claude = tmp_path / "claude"
    (claude / "agents").mkdir(parents=True)
    stats = {}
    for name in ("kept", "rebased", "removed"):
        file = claude / "agents" / f"{name}.md"
        file.write_text(name)
        os.utime(file, ns=(1_000_000_000, 1_000_000_000))
        stats[f"agents/{name}.md"] = Entry(version(name), len(name), 1_000_000_000)
    home = tmp_path / "sync-home"
    home.mkdir()
    saved(home, stats)
    rules, paths = Rules(DEFAULT_INCLUDE, ()), PathMap(Layout.of(tmp_path, {}))
    state = loaded(home)
    first = scan(claude, rules, paths, state)
    assert first.files["agents/rebased.md"].sha256 == version("rebased").sha256
    assert not first.differing
    del state.files["agents/removed.md"]
    assert scan(claude, rules, paths, state).differing == {"agents/removed.md"}
    state.files["agents/rebased.md"].base = version("settled elsewhere", 2)
    again = scan(claude, rules, paths, state)
    assert again.files["agents/kept.md"] == first.files["agents/kept.md"]
    assert again.files["agents/rebased.md"].sha256 == version("settled elsewhere", 2).sha256
    assert len(shared) == (3 if processes == 2 else 0) and all(shared)


def test_the_paths_outside_a_mapping_are_those_stored_removed_or_added_that_it_lacks(
    tmp_path: Path,
) -> None:
    paths = [f"agents/a{n}.md" for n in range(4)]
    saved(tmp_path, {path: Entry(version(path)) for path in paths})
    state = loaded(tmp_path)
    del state.files["agents/a0.md"]
    state.files["agents/new.md"] = Entry(version("new"))
    state.files["agents/seen.md"] = Entry(version("seen"))
    local = {"agents/a1.md": 1, "agents/seen.md": 2, "agents/elsewhere.md": 3}
    outside = {"agents/a2.md", "agents/a3.md", "agents/new.md"}
    assert state.files.outside(local) == outside
    assert outside == {path for path in state.files if path not in local}


def test_paths_renamed_in_place_are_saved_under_their_new_names(tmp_path: Path) -> None:
    """What `moves` does to the state: every entry taken out and put back, some renamed."""
    saved(
        tmp_path,
        {"projects/-srv-app/s.jsonl": Entry(version("s")), "CLAUDE.md": Entry(version("c"))},
    )
    state = loaded(tmp_path)
    renamed = {path.replace("-srv-app", "~-app"): entry for path, entry in state.files.items()}
    state.files.clear()
    state.files.update(renamed)
    save_state(tmp_path, state)
    assert sorted(rows(tmp_path)) == ["CLAUDE.md", "projects/~-app/s.jsonl"]
    assert loaded(tmp_path).files["projects/~-app/s.jsonl"].base == version("s")


def test_a_failed_save_leaves_the_state_as_it_was(tmp_path: Path) -> None:
    saved(tmp_path, {"settings.json": Entry(version("{}"), 2, 1_000)}, own_seq=3)
    before = (tmp_path / STATE_FILE).read_bytes()
    state = loaded(tmp_path)
    state.own_seq = 4
    state.files["CLAUDE.md"] = Entry(version("c"))
    state.files["settings.json"].size = "two"  # type: ignore[assignment]  # refused by the store
    with pytest.raises(sqlite3.IntegrityError):
        save_state(tmp_path, state)
    assert (tmp_path / STATE_FILE).read_bytes() == before
    assert not (tmp_path / f"{STATE_FILE}-journal").exists()
    back = loaded(tmp_path)
    assert back.own_seq == 3 and list(back.files) == ["settings.json"]


def test_an_mtime_past_what_sqlite_holds_is_not_kept(tmp_path: Path) -> None:
    """Past the year 2262 (a file system such as tmpfs keeps one): read again each run."""
    far = 260_000_000_000 * 10**9
    base = dataclasses.replace(version("x"), mtime_ns=far)
    state = saved(tmp_path, {"CLAUDE.md": Entry(base, 1, far)})
    state.files["CLAUDE.md"].swept = True
    save_state(tmp_path, state)
    entry = loaded(tmp_path).files["CLAUDE.md"]
    assert (entry.size, entry.mtime_ns, entry.swept) == (None, None, True)
    assert entry.base.mtime_ns == far


KILLED_BEFORE_COMMIT = """
import os, sqlite3, sys
from pathlib import Path
from claude_sync import state

class Dying(sqlite3.Connection):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        super().execute("PRAGMA cache_size = 1")  # pages reach the file before the commit

    def execute(self, sql, *args):
        if sql == "COMMIT":
            os._exit(9)
        return super().execute(sql, *args)

connect = sqlite3.connect
sqlite3.connect = lambda *args, **kwargs: connect(*args, factory=Dying, **kwargs)
home = Path(sys.argv[1])
loaded, _ = state.load_state(home, "dev1", "remote:claude-sync")
for path in list(loaded.files):
    loaded.files[path].swept = True
for n in range(2000):
    loaded.files[f"rules/r{n}.md"] = loaded.files["agents/a0.md"]
loaded.own_seq = 99
state.save_state(home, loaded)
"""


def test_a_save_killed_before_its_commit_leaves_the_state_as_it_was(tmp_path: Path) -> None:
    saved(tmp_path, {f"agents/a{n}.md": Entry(version(str(n))) for n in range(300)}, own_seq=3)
    before = as_values(loaded(tmp_path))
    killed = subprocess.run([sys.executable, "-c", KILLED_BEFORE_COMMIT, str(tmp_path)])
    assert killed.returncode == 9
    assert (tmp_path / f"{STATE_FILE}-journal").exists()  # what the save had written
    back = loaded(tmp_path)  # SQLite rolls the journal back
    assert as_values(back) == before and back.own_seq == 3


def test_the_save_time_is_on_the_clock_that_stamps_files(tmp_path: Path) -> None:
    """The racily-clean rule trusts a recorded stat only for an mtime older than the save:
    a file written after the save is never older than it."""
    before = tmp_path / "before"
    before.write_text("x")
    saved(tmp_path, {})
    after = tmp_path / "after"
    after.write_text("x")
    saved_ns = loaded(tmp_path).saved_ns
    assert before.stat().st_mtime_ns <= saved_ns <= after.stat().st_mtime_ns


def test_another_devices_store_is_not_used_and_is_replaced(tmp_path: Path) -> None:
    saved(tmp_path, {"settings.json": Entry(version("{}"))})
    state, warning = load_state(tmp_path, "dev2", ROOT)
    assert warning is None and state.rebuilding and not state.files
    state.files["CLAUDE.md"] = Entry(version("c"))
    save_state(tmp_path, state)
    assert sorted(rows(tmp_path)) == ["CLAUDE.md"]


def test_no_store_is_a_state_to_rebuild(tmp_path: Path) -> None:
    state, warning = load_state(tmp_path, DEVICE, ROOT)
    assert warning is None and state.rebuilding and not state.files and state.saved_ns == 0
    assert not (tmp_path / STATE_FILE).exists()  # a load never creates one


def test_a_first_save_cut_short_is_no_state(tmp_path: Path) -> None:
    """The store is made empty before its first transaction, which SQLite rolls back."""
    (tmp_path / STATE_FILE).touch()
    state, warning = load_state(tmp_path, DEVICE, ROOT)
    assert warning is None and state.rebuilding and not state.files
    state.files["CLAUDE.md"] = Entry(version("c"))
    save_state(tmp_path, state)
    assert list(loaded(tmp_path).files) == ["CLAUDE.md"]


def _garbage(store: Path) -> None:
    store.write_bytes(b"\x00\xff not a database " * 500)


def _truncated(store: Path) -> None:
    data = store.read_bytes()
    store.write_bytes(data[: len(data) // 2])


def _not_a_state(store: Path) -> None:
    store.unlink()
    with closing(sqlite3.connect(store)) as db:
        db.execute("CREATE TABLE t (x)")


def _newer_layout(store: Path) -> None:
    with closing(sqlite3.connect(store)) as db:
        db.execute("PRAGMA user_version = 2")


def _bad_meta(store: Path) -> None:
    with closing(sqlite3.connect(store)) as db, db:
        db.execute("UPDATE meta SET value = '\"many\"' WHERE name = 'own_seq'")


def _missing_meta(store: Path) -> None:
    with closing(sqlite3.connect(store)) as db, db:
        db.execute("DELETE FROM meta WHERE name = 'moves'")


def _bad_recorded(store: Path) -> None:
    with closing(sqlite3.connect(store)) as db, db:
        db.execute("""UPDATE meta SET value = '{"p/s.jsonl": [1, 2]}' WHERE name = 'recorded'""")


def _bad_settled_conflicts(store: Path) -> None:
    with closing(sqlite3.connect(store)) as db, db:
        db.execute(
            """UPDATE meta SET value = '{"view": {}, "copies": [7]}' """
            "WHERE name = 'settled_conflicts'"
        )


def _bad_projects(store: Path) -> None:
    with closing(sqlite3.connect(store)) as db, db:
        db.execute("UPDATE meta SET value = '{\"../x\": 1}' WHERE name = 'projects'")


@pytest.mark.parametrize(
    "damage",
    [
        _garbage,
        _truncated,
        _not_a_state,
        _newer_layout,
        _bad_meta,
        _missing_meta,
        _bad_projects,
        _bad_recorded,
        _bad_settled_conflicts,
    ],
)
def test_an_unusable_store_is_set_aside_and_rebuilt(tmp_path: Path, damage) -> None:
    saved(tmp_path, {f"agents/a{n}.md": Entry(version(str(n))) for n in range(200)})
    store = tmp_path / STATE_FILE
    damage(store)
    damaged = store.read_bytes()
    state, warning = load_state(tmp_path, DEVICE, ROOT)
    assert warning is not None and "\n" not in warning
    assert f"{store} was unreadable (moved to {STATE_FILE}.corrupt)" in warning
    assert state.rebuilding and not state.files
    assert (tmp_path / f"{STATE_FILE}.corrupt").read_bytes() == damaged
    assert not store.exists()
    state.files["CLAUDE.md"] = Entry(version("c"))
    save_state(tmp_path, state)
    assert list(loaded(tmp_path).files) == ["CLAUDE.md"]


def legacy_document(entries: dict[str, Entry], **fields: object) -> dict:
    return {
        "version": 1,
        "device_id": DEVICE,
        "remote_root": ROOT,
        "last_push": "2026-01-01T00:00:00+00:00",
        "last_pull": None,
        "files": {
            path: {
                "base": version_to_json(entry.base),
                "size": entry.size,
                "mtime_ns": entry.mtime_ns,
                "swept": entry.swept,
                "publish": entry.publish,
                "settled": entry.settled,
            }
            for path, entry in entries.items()
        },
        "projects": {"~-app": {"key": "~/app", "path": "/home/ann/app"}},
        "rebuilding": False,
        "moves": {},
        "publish_moves": False,
        "layout": "",
        "numbered": {},
        "journal_seen": {"dev2": 4},
        "own_seq": 9,
        **fields,
    }


def test_a_state_json_is_moved_into_the_store_once(tmp_path: Path) -> None:
    entries = {
        "settings.json": Entry(version("{}"), 2, 1_000),
        "projects/~-app/s.jsonl": Entry(version("s", 4), 1, 2_000, swept=True, publish=True),
    }
    legacy = tmp_path / "state.json"
    legacy.write_text(json.dumps(legacy_document(entries)))
    os.utime(legacy, ns=(1_700_000_000 * 10**9, 1_700_000_000 * 10**9))
    state = loaded(tmp_path)
    assert not legacy.exists()
    assert (tmp_path / STATE_FILE).is_file()
    back = loaded(tmp_path)
    for migrated in (state, back):
        assert {path: migrated.files[path].base for path in migrated.files} == {
            path: entry.base for path, entry in entries.items()
        }
        assert migrated.files["projects/~-app/s.jsonl"].swept
        assert migrated.projects == {"~-app": Project("~/app", "/home/ann/app")}
        assert (migrated.journal_seen, migrated.own_seq) == ({"dev2": 4}, 9)
        # the stats state.json recorded keep the time they were recorded at
        assert migrated.saved_ns == 1_700_000_000 * 10**9


def test_a_state_json_left_beside_a_store_replaces_it(tmp_path: Path) -> None:
    """Written by an earlier claude-sync run since (or left by a migration cut short)."""
    saved(tmp_path, {"old.md": Entry(version("old"))})
    (tmp_path / "state.json").write_text(
        json.dumps(legacy_document({"new.md": Entry(version("n"))}))
    )
    assert list(loaded(tmp_path).files) == ["new.md"]
    assert list(loaded(tmp_path).files) == ["new.md"]
    assert not (tmp_path / "state.json").exists()


@pytest.mark.parametrize(
    "text",
    [
        "{{{ not json",
        '{"version": 7}',
        json.dumps(legacy_document({}, files=3)),
        json.dumps(legacy_document({}, files={"a.md": {"base": {"size": -1}}})),
        json.dumps(legacy_document({}, own_seq="many")),
    ],
)
def test_an_unreadable_state_json_is_set_aside_as_before(tmp_path: Path, text: str) -> None:
    saved(tmp_path, {"old.md": Entry(version("old"))})
    legacy = tmp_path / "state.json"
    legacy.write_text(text)
    state, warning = load_state(tmp_path, DEVICE, ROOT)
    assert (
        warning is not None and "state.json was unreadable (moved to state.json.corrupt)" in warning
    )
    assert state.rebuilding and not state.files
    assert (tmp_path / "state.json.corrupt").read_text() == text
    save_state(tmp_path, state)
    assert rows(tmp_path) == {}  # the store's older bases are no longer trusted either
