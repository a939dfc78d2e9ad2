"""Regression tests for edge cases found in review: odd names, a missing Claude folder,
exclusions, a wiped remote, long names, conflicts settled in bulk, file modes, quiet output,
lost state, files vanishing mid-push, same-second conflict copies and secrets from the
environment.

Each test drives the real CLI (or, for the vanishing file, an action with a listener) as
several devices against a real remote through real rclone.
"""

from __future__ import annotations

import datetime
import errno
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import (
    RCLONE,
    T0,
    Device,
    copies,
    joined,
    published_files,
    put,
    remote_bytes,
    stamped,
    tree,
)
from servers import Server, server_env, start_server

from claude_sync.actions import push as push_action
from claude_sync.locations import sync_home
from claude_sync.session import Event
from claude_sync.workspace import load_workspace

SECOND = 10**9


# helpers ---------------------------------------------------------------------


def utc_stamp(seconds: int) -> str:
    return f"{datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc):%Y%m%d-%H%M%S}"


def remote_snapshot(server: Server) -> dict[str, tuple[bytes, int]]:
    return {
        path.relative_to(server.data_dir).as_posix(): (data, path.stat().st_mtime_ns)
        for path, data in remote_bytes(server)
    }


def trashed(device: Device) -> dict[str, bytes]:
    """trash-relative path -> bytes of everything in `device`'s trash."""
    return tree(device.sync_home / "trash")


# 1. a name with a backslash is skipped with a warning ------------------------------


def test_backslash_name_is_skipped_with_a_warning(local_server: Server, make_device) -> None:
    a = joined(make_device("a"), local_server)
    b = joined(make_device("b"), local_server)
    put(a, "agents/back\\slash.md", "odd name\n", 0)
    put(a, "agents/plain.md", "plain\n", 1)
    result = a.run("push")
    assert result.exit_code == 0, result.output
    assert "1 uploaded" in result.output
    [warning] = [line for line in result.stderr.splitlines() if "back" in line]
    assert warning.startswith("! ") and "agents/back" in warning and "slash.md" in warning
    assert "cannot be synced" in warning

    assert sorted(published_files(local_server, a)) == ["agents/plain.md"]
    b.ok("pull")
    assert tree(b.claude) == {"agents/plain.md": b"plain\n"}
    assert "No problems" in b.ok("verify")
    assert "No problems" in a.ok("verify")
    # The file stays on A, untouched, and is never taken for a change or a deletion.
    assert a.read("agents/back\\slash.md") == b"odd name\n"
    assert "Nothing to push" in a.ok("push")
    assert "Already up to date" in a.ok("pull")
    assert a.read("agents/back\\slash.md") == b"odd name\n"


# 2. a Claude folder that went missing pushes nothing ----------------------------------


def test_push_from_a_missing_claude_folder_is_refused(local_server: Server, make_device) -> None:
    a = joined(make_device("a"), local_server)
    b = joined(make_device("b"), local_server)
    put(a, "settings.json", "{}\n", 0)
    put(a, "agents/x.md", "x\n", 1)
    put(a, "CLAUDE.md", "# me\n", 2)
    a.ok("push")
    b.ok("pull")
    before_remote = remote_snapshot(local_server)
    before_b = stamped(b.claude)

    a.claude.rename(a.home / "claude-moved-away")
    result = a.run("push")
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "missing" in lines[0] and str(a.claude) in lines[0]
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert remote_snapshot(local_server) == before_remote

    assert "Already up to date" in b.ok("pull")
    assert stamped(b.claude) == before_b


# 3. an exclusion added on B never deletes on A ---------------------------------------


def test_exclusion_on_one_device_deletes_nothing_elsewhere(
    local_server: Server, make_device
) -> None:
    a = joined(make_device("a"), local_server)
    b = joined(make_device("b"), local_server)
    put(a, "settings.json", '{"theme": "dark"}\n', 0)
    put(a, "CLAUDE.md", "# notes\n", 1)
    a.ok("push")
    b.ok("pull")
    assert b.read("settings.json") == b'{"theme": "dark"}\n'

    config_path = b.sync_home / "config.yaml"
    document = yaml.safe_load(config_path.read_text())
    document.setdefault("sync", {})["exclude"] = ["settings.json"]
    config_path.write_text(yaml.safe_dump(document))
    put(b, "CLAUDE.md", "# notes, edited on b\n", 10)
    b.ok("push")
    assert "settings.json" not in published_files(local_server, b)

    output = a.ok("pull")
    assert "settings.json" not in output
    assert a.read("settings.json") == b'{"theme": "dark"}\n'
    assert a.read("CLAUDE.md") == b"# notes, edited on b\n"
    assert not any(path.endswith("settings.json") for path in trashed(a))
    # B keeps its now unsynced copy too, and A's next push is quiet about it.
    assert b.read("settings.json") == b'{"theme": "dark"}\n'
    assert "Nothing to push" in a.ok("push")
    assert "Already up to date" in a.ok("pull")
    assert a.read("settings.json") == b'{"theme": "dark"}\n'


# 4. a wiped remote, re-initialised, gets everything again ----------------------------


def test_reinit_on_a_wiped_remote_reuploads_everything(local_server: Server, make_device) -> None:
    a = joined(make_device("a"), local_server)
    put(a, "settings.json", "{}\n", 0)
    put(a, "agents/x.md", "agent x\n", 1)
    put(a, "projects/-p/s.jsonl", '{"n": 1}\n' * 20, 2)
    a.ok("push")

    shutil.rmtree(local_server.data_dir)
    # A missing folder may be an unmounted disk: init makes a new remote only in a folder
    # that is there (test_messages covers the refusal).
    local_server.data_dir.mkdir()
    output = a.ok("init", "--local", str(local_server.data_dir), "--force", "--yes")
    assert "initialised a new remote" in output
    pushed = a.ok("push")
    assert "3 uploaded" in pushed, pushed

    c = joined(make_device("c"), local_server)
    c.ok("pull")
    assert stamped(c.claude) == stamped(a.claude)
    assert copies(c.claude) == []
    assert "No problems" in a.ok("verify", "--deep")
    assert "No problems" in c.ok("verify", "--deep")


# 5. a 240-byte name syncs, and its conflict copy fits in 255 bytes --------------------

LONG = "agents/" + "a" * 237 + ".md"  # a 240-byte file name


def test_long_name_syncs_and_its_conflict_copy_fits(local_server: Server, make_device) -> None:
    assert len(LONG.split("/")[-1].encode()) == 240
    a = joined(make_device("a"), local_server)
    b = joined(make_device("b"), local_server)
    put(a, LONG, "v0\n", 0)
    a.ok("push")
    result = b.run("pull")
    assert result.exit_code == 0, result.output
    assert b.read(LONG) == b"v0\n"
    assert stamped(b.claude) == stamped(a.claude)

    put(a, LONG, "edited on a\n", 10)
    put(b, LONG, "edited on b, longer\n", 20)
    a.ok("push")
    result = b.run("pull")
    assert result.exit_code == 3, result.output
    assert "⚠ Conflict" in result.output
    assert b.read(LONG) == b"edited on b, longer\n"
    [copy] = copies(b.claude)
    assert len(Path(copy).name.encode()) <= 255
    assert copy.startswith("agents/aaaa") and copy.endswith(".conflict-" + copy[-17:-2] + "-a")
    assert b.read(copy) == b"edited on a\n"
    # The copy travels to A, whose file system takes the name too.
    b.ok("push")
    a.ok("pull", exit_code=3)
    assert a.read(copy) == b"edited on a\n"


# 6. two conflict copies settled with --keep remote -----------------------------------


def test_keep_remote_with_two_copies_of_one_file(local_server: Server, make_device) -> None:
    a, b, c = (joined(make_device(name), local_server) for name in ("a", "b", "c"))
    put(a, "CLAUDE.md", "base\n", 0)
    a.ok("push")
    b.ok("pull")
    c.ok("pull")
    put(a, "CLAUDE.md", "from a\n", 10)
    put(b, "CLAUDE.md", "from b, longer\n", 20)
    put(c, "CLAUDE.md", "from c, the longest\n", 30)
    a.ok("push")
    b.ok("push")
    pulled = c.ok("pull", exit_code=3)
    assert pulled.count("⚠ Conflict") == 2, pulled
    assert len(copies(c.claude)) == 2
    assert c.read("CLAUDE.md") == b"from c, the longest\n"

    result = c.run("conflicts", "--keep", "remote")
    assert result.exit_code == 0, result.output
    assert result.exception is None
    assert "Traceback" not in result.output
    assert result.output.count("kept remote") == 2
    assert copies(c.claude) == []
    assert c.read("CLAUDE.md") in (b"from a\n", b"from b, longer\n")
    kept = list(trashed(c).values())
    assert b"from c, the longest\n" in kept
    # Nothing is lost: every side is either in place or in the trash.
    assert {c.read("CLAUDE.md"), *kept} >= {b"from a\n", b"from b, longer\n"}


# 7. a private settings.json stays private after a pull ---------------------------------


def test_pull_keeps_the_mode_of_the_replaced_file(local_server: Server, make_device) -> None:
    a = joined(make_device("a"), local_server)
    b = joined(make_device("b"), local_server)
    put(a, "settings.json", '{"v": 1}\n', 0)
    a.ok("push")
    b.ok("pull")
    (b.claude / "settings.json").chmod(0o600)
    put(a, "settings.json", '{"v": 2}\n', 10)
    a.ok("push")
    assert "1 downloaded" in b.ok("pull")
    assert b.read("settings.json") == b'{"v": 2}\n'
    assert stat.S_IMODE((b.claude / "settings.json").stat().st_mode) == 0o600


# 8. -q hides progress but never a conflict ----------------------------------------------


def test_quiet_pull_shows_conflicts_only(local_server: Server, make_device) -> None:
    a = joined(make_device("a"), local_server)
    b = joined(make_device("b"), local_server)
    put(a, "settings.json", "v0\n", 0)
    put(a, "CLAUDE.md", "# notes\n", 1)
    a.ok("push")
    assert b.ok("pull", "-q") == ""  # two downloads, nothing printed
    assert b.read("CLAUDE.md") == b"# notes\n"
    assert b.ok("pull", "-q") == ""  # already up to date, nothing printed

    put(a, "settings.json", "edited on a\n", 10)
    put(a, "CLAUDE.md", "# notes, from a\n", 11)
    put(b, "settings.json", "edited on b, longer\n", 20)
    a.ok("push")
    output = b.ok("pull", "-q", exit_code=3)
    conflict, pending = output.splitlines()
    assert conflict.startswith("⚠ Conflict: settings.json (saved as settings.json.conflict-")
    assert pending.startswith("⚠ 1 conflict to settle: settings.json.conflict-")
    assert b.read("CLAUDE.md") == b"# notes, from a\n"


# 9. a user's file that merely looks like ours ----------------------------------------

NOTES = "agents/.claude-sync-notes.md"


def test_users_claude_sync_named_file_is_synced_and_kept(local_server: Server, make_device) -> None:
    a = joined(make_device("a"), local_server)
    b = joined(make_device("b"), local_server)
    put(a, NOTES, "my notes\n", 0)
    a.ok("status")
    assert a.read(NOTES) == b"my notes\n"
    assert "1 uploaded" in a.ok("push")
    assert a.read(NOTES) == b"my notes\n"
    a.ok("status", "--remote")
    a.ok("pull")
    assert a.read(NOTES) == b"my notes\n"
    b.ok("pull")
    assert b.read(NOTES) == b"my notes\n"
    a.ok("sync")
    assert a.read(NOTES) == b"my notes\n"


# 10. a lost state neither re-uploads nor conflicts -------------------------------


def _lost_state(local_server: Server, make_device) -> tuple[Device, Device]:
    """A and B share four files (one first published by B); B loses its state and
    pushes. Returns (a, b)."""
    a = joined(make_device("a"), local_server)
    b = joined(make_device("b"), local_server)
    put(a, "settings.json", "{}\n", 0)
    put(a, "CLAUDE.md", "# shared\n", 1)
    put(a, "agents/x.md", "agent x\n", 2)
    a.ok("push")
    put(b, "rules/from-b.md", "from b\n", 3)
    b.ok("push")
    b.ok("pull")
    a.ok("pull")
    assert (
        sorted(tree(a.claude))
        == sorted(tree(b.claude))
        == [
            "CLAUDE.md",
            "agents/x.md",
            "rules/from-b.md",
            "settings.json",
        ]
    )
    assert tree(a.claude) == tree(b.claude)

    (b.sync_home / "state.sqlite").unlink()
    pushed = b.ok("push")
    assert "Nothing to push" in pushed, pushed
    assert "uploaded" not in pushed, pushed
    for name in tree(b.claude):
        assert name not in pushed, pushed
    return a, b


def test_lost_state_then_remote_edit_is_no_conflict(local_server: Server, make_device) -> None:
    a, b = _lost_state(local_server, make_device)
    put(a, "CLAUDE.md", "# shared, edited on a\n", 10)
    a.ok("push")
    pulled = b.ok("pull")
    assert "Conflict" not in pulled, pulled
    assert b.read("CLAUDE.md") == b"# shared, edited on a\n"
    assert copies(b.claude) == []
    a.ok("pull")
    assert copies(a.claude) == []


def test_lost_state_push_keeps_this_devices_versions(local_server: Server, make_device) -> None:
    a, b = _lost_state(local_server, make_device)
    assert "rules/from-b.md" in published_files(local_server, b)
    c = joined(make_device("c"), local_server)
    c.ok("pull")
    assert tree(c.claude) == tree(a.claude) == tree(b.claude)


def test_a_device_that_lost_its_state_never_outranks_what_it_has_not_seen(
    local_server: Server, make_device
) -> None:
    """B falls behind (A edits CLAUDE.md twice and deletes agents/x.md), then loses its
    state: its stale copies yield to the newer versions (kept in trash/), the deleted
    file stays deleted, and nothing of B's old copies comes back anywhere."""
    a, b = _lost_state(local_server, make_device)
    put(a, "CLAUDE.md", "# shared, edited on a\n", 10)
    a.ok("push")
    put(a, "CLAUDE.md", "# shared, edited on a twice\n", 11)
    (a.claude / "agents" / "x.md").unlink()
    a.ok("push")
    (b.sync_home / "state.sqlite").unlink()
    for command in ("push", "sync"):  # a push first must publish nothing stale
        result = b.run(command)
        assert result.exit_code == 0, result.output
        assert "Conflict" not in result.output, result.output
    assert "CLAUDE.md: no record of what this copy was based on" in result.output
    assert b.read("CLAUDE.md") == b"# shared, edited on a twice\n"
    assert not (b.claude / "agents" / "x.md").exists()
    trashed = tree(b.sync_home / "trash")
    assert b"# shared\n" in trashed.values() and b"agent x\n" in trashed.values()
    c = joined(make_device("c"), local_server)
    for device in (a, c):
        device.ok("pull")
        assert device.read("CLAUDE.md") == b"# shared, edited on a twice\n"
        assert not (device.claude / "agents" / "x.md").exists()
        assert copies(device.claude) == []


def test_a_file_made_on_two_syncing_devices_meets_as_a_conflict(
    local_server: Server, make_device
) -> None:
    """Devices that have synced before each make CLAUDE.md: the one made here is new, not a
    stale copy of unknown base, so it stays and the other side is kept beside it, whichever
    is older; history.jsonl made on both merges without a warning."""
    a = joined(make_device("a"), local_server)
    b = joined(make_device("b"), local_server)
    put(a, "agents/x.md", "agent x\n", 0)
    a.ok("sync")
    b.ok("sync")
    put(b, "CLAUDE.md", "# made on b, first\n", 10)
    put(b, "history.jsonl", '{"display": "b", "timestamp": 1}\n', 10)
    put(a, "CLAUDE.md", "# made on a, later\n", 20)
    put(a, "history.jsonl", '{"display": "a", "timestamp": 2}\n', 20)
    a.ok("push")
    result = b.run("sync")
    assert result.exit_code == 3, result.output
    assert "no record of what" not in result.output, result.output
    assert b.read("CLAUDE.md") == b"# made on b, first\n"
    [copy] = copies(b.claude)
    assert b.read(copy) == b"# made on a, later\n"
    assert len(b.read("history.jsonl").splitlines()) == 2


def test_a_joining_device_keeps_its_newer_copy_as_a_conflict_copy(
    local_server: Server, make_device
) -> None:
    """A device joins with its own settings.json, newer than the remote's: with no base it
    does not outrank the remote's version, and its copy is kept beside it, on every device;
    history.jsonl, append-only, merges."""
    a = joined(make_device("a"), local_server)
    put(a, "settings.json", '{"from": "a"}\n', 1)
    put(a, "history.jsonl", '{"display": "on a", "timestamp": 1}\n', 1)
    a.ok("push")
    b = make_device("b")
    put(b, "settings.json", '{"from": "b, made later"}\n', 50)
    put(b, "history.jsonl", '{"display": "on b", "timestamp": 2}\n', 50)
    joined(b, local_server)
    synced = b.ok("sync", exit_code=3)
    assert "settings.json: no record" not in synced  # it is no stale copy: none in trash/
    assert b.read("settings.json") == b'{"from": "a"}\n'
    [copy] = copies(b.claude)
    assert b.read(copy) == b'{"from": "b, made later"}\n'
    assert b.read("history.jsonl").count(b"display") == 2
    a.ok("pull", exit_code=3)
    assert a.read("settings.json") == b'{"from": "a"}\n' and a.read(copy) == b.read(copy)
    assert a.read("history.jsonl") == b.read("history.jsonl")


# 11. a file that vanishes while a push encrypts ----------------------------------------


def test_file_vanishing_during_push_is_skipped(
    local_server: Server, make_device, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through an action with a listener: the first upload event deletes the next file,
    after the scan saw it and before it is opened for encryption. No mock, real rclone."""
    a = joined(make_device("a"), local_server)
    put(a, "agents/1-first.md", "first\n", 0)
    doomed = put(a, "agents/2-doomed.md", "doomed\n", 1)
    put(a, "agents/3-last.md", "last\n", 2)
    for name, value in a.environment().items():
        monkeypatch.setenv(name, value)
    events: list[Event] = []

    def listen(event: Event) -> None:
        events.append(event)
        if event.kind == "upload" and event.path == "agents/1-first.md":
            doomed.unlink()

    summary = push_action.push(load_workspace(sync_home()), listen)
    assert summary.uploaded == 2
    warnings = [e for e in events if e.kind == "warning"]
    assert [e.path for e in warnings] == ["agents/2-doomed.md"]
    assert "vanished" in warnings[0].detail
    assert sorted(published_files(local_server, a)) == ["agents/1-first.md", "agents/3-last.md"]
    assert "Nothing to push" in a.ok("push")

    b = joined(make_device("b"), local_server)
    b.ok("pull")
    assert tree(b.claude) == {"agents/1-first.md": b"first\n", "agents/3-last.md": b"last\n"}


# 12. two versions of one device in one second: two distinct copies --------------------


def test_same_second_versions_get_distinct_copies(local_server: Server, make_device) -> None:
    a = joined(make_device("a"), local_server)
    b = joined(make_device("b"), local_server)
    put(a, "settings.json", "v0\n", 0)
    a.ok("push")
    b.ok("pull")
    put(a, "settings.json", "local change on a\n", 200)

    put(b, "settings.json", "b first\n", 100, ns=100_000_000)
    b.ok("push")
    assert "⚠ Conflict" in a.ok("pull", exit_code=3)
    put(b, "settings.json", "b second, same second\n", 100, ns=700_000_000)
    b.ok("push")
    assert "⚠ Conflict" in a.ok("pull", exit_code=3)

    stamp = utc_stamp(T0 + 100)
    first, second = f"settings.json.conflict-{stamp}-b", f"settings.json.conflict-{stamp}-b-2"
    assert sorted(copies(a.claude)) == sorted([first, second])
    assert a.read(first) == b"b first\n"
    assert a.read(second) == b"b second, same second\n"
    assert a.read("settings.json") == b"local change on a\n"


# 13. a template secret from CLAUDE_SYNC_FIELD_<NAME> -----------------------------------


@pytest.fixture
def webdav_server(tmp_path: Path) -> Iterator[Server]:
    started = start_server("webdav", tmp_path / "server-webdav", RCLONE)
    yield started
    started.stop()


def test_init_reads_a_secret_field_from_the_environment(
    webdav_server: Server, make_device, tmp_path: Path
) -> None:
    args = list(webdav_server.provider_args)
    index = next(i for i, arg in enumerate(args) if arg.startswith("pass="))
    password = args[index].split("=", 1)[1]
    del args[index - 1 : index + 1]
    assert not any(arg.startswith("pass=") for arg in args)

    a = make_device("a")
    output = a.ok("init", *args, "--device-name", "a", "--yes", CLAUDE_SYNC_FIELD_PASS=password)
    assert "initialised a new remote" in output
    text = (a.sync_home / "rclone.conf").read_text()
    assert password not in text
    [obscured] = [
        line.split("=", 1)[1].strip() for line in text.splitlines() if line.startswith("pass")
    ]
    assert obscured
    revealed = subprocess.run(
        [RCLONE, "reveal", "--", obscured],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
        env=server_env(tmp_path / "reveal-home"),
    ).stdout.strip()
    assert revealed == password
    # The stored credentials really work.
    put(a, "settings.json", "{}\n", 0)
    assert "1 uploaded" in a.ok("push")


# 14. a CLAUDE_SYNC_HOME copied to a second machine ------------------------------


def test_a_copied_home_is_refused_before_it_touches_anything(local_server: Server, make_device):
    a = joined(make_device("a"), local_server)
    a.write("agents/a.md", "from a\n")
    a.write("settings.json", "{}\n")
    a.ok("push")
    b = make_device("b")
    shutil.copytree(a.sync_home, b.sync_home)
    b.write("agents/b.md", "only on b\n")
    a.write("agents/a.md", "from a, edited\n")
    a.ok("push")
    before = stamped(b.claude)
    remote_before = dict(remote_bytes(local_server))

    for command in ("push", "pull"):
        result = b.run(command)
        assert result.exit_code != 0
        assert "another machine writes as this device (a)" in result.output
        assert "Traceback" not in result.output
    assert stamped(b.claude) == before
    assert dict(remote_bytes(local_server)) == remote_before
    assert a.read("agents/a.md") == b"from a, edited\n"
    a.ok("pull")
    assert a.read("agents/a.md") == b"from a, edited\n"
    assert a.read("settings.json") == b"{}\n"


def unreadable(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """os.scandir of `folder` fails as a chmod 000 folder does (root reads anything, so the
    failure is made, not provoked)."""
    real = os.scandir

    def scandir(path=".", *args, **kwargs):
        if isinstance(path, (str, os.PathLike)) and Path(path) == folder:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "scandir", scandir)


def test_an_unreadable_folder_is_unknown_not_deleted(
    local_server: Server, make_device, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = joined(make_device("a"), local_server), joined(make_device("b"), local_server)
    put(a, "CLAUDE.md", "v1\n", 1)
    put(a, "agents/x.md", "x1\n", 1)
    put(a, "agents/y.md", "y1\n", 1)
    a.ok("push")
    b.ok("pull")
    put(a, "agents/x.md", "x2\n", 2)
    put(a, "CLAUDE.md", "v2\n", 2)
    a.ok("push")
    with monkeypatch.context() as patched:
        unreadable(patched, b.claude / "agents")
        result = b.run("sync")
        assert result.exit_code == 0, result.output
        assert "agents/: cannot be read (Permission denied)" in result.output
        assert b.read("CLAUDE.md") == b"v2\n"  # the rest is pulled
        assert b.read("agents/x.md") == b"x1\n"  # nothing written below it
    a.ok("pull")
    assert a.read("agents/y.md") == b"y1\n"  # no tombstone went out
    assert a.read("agents/x.md") == b"x2\n"
    b.ok("pull")
    assert b.read("agents/x.md") == b"x2\n"


# 16. names that are not UTF-8, mtimes past the year 9999 -----------------------------------


def test_a_name_that_is_not_utf8_is_skipped_with_a_warning(
    local_server: Server, make_device
) -> None:
    a, b = joined(make_device("a"), local_server), joined(make_device("b"), local_server)
    put(a, "agents/ok.md", "fine\n", 1)
    for name in (b"agents/caf\xe9.md", b"agents/d\xe9j\xe0/inside.md"):
        path = os.fsencode(a.claude) + b"/" + name
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(b"a Latin-1 name\n")
    for command in ("push", "status", "sync"):
        result = a.run(command)
        assert result.exit_code == 0, result.output
        assert "agents/caf\\udce9.md': a name that cannot be synced safely" in result.output
        assert "agents/d\\udce9j\\udce0/': a name that cannot be synced safely" in result.output
    b.ok("pull")
    assert tree(b.claude) == {"agents/ok.md": b"fine\n"}


def test_a_conflict_with_an_mtime_past_the_year_9999_is_named_and_kept(
    local_server: Server, make_device
) -> None:
    """tmpfs keeps such an mtime (ext4 clamps it to 2446), so A's Claude folder is one."""
    a, b = make_device("a"), joined(make_device("b"), local_server)
    a.claude.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(a.claude)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.decode().strip()}")
    try:
        joined(a, local_server)
        put(a, "CLAUDE.md", "v0\n", 0)
        a.ok("push")
        b.ok("pull")
        far = 260_000_000_000 * 10**9  # the year 10209
        path = a.write("CLAUDE.md", "edited on a, far in the future\n")
        os.utime(path, ns=(far, far))
        a.ok("push")
        put(b, "CLAUDE.md", "edited on b\n", 10)
        result = b.run("pull")
        assert result.exit_code == 3, result.output
        [copy] = copies(b.claude)
        assert copy.startswith("CLAUDE.md.conflict-99991231-235959-a"), copy
        assert b.read(copy) == b"edited on a, far in the future\n"
        b.ok("sync", exit_code=3)
        a.ok("pull", exit_code=3)
        assert a.read(copy) == b"edited on a, far in the future\n"
    finally:
        subprocess.run(["umount", "-l", str(a.claude)], check=False)


# 17. symbolic links the user made are followed ---------------------------------------------


def test_links_into_a_dotfiles_folder_and_another_disk_are_followed(
    local_server: Server, make_device, tmp_path: Path
) -> None:
    """CLAUDE.md and agents/ live in a dotfiles repository, projects/ on a bigger disk: a
    pull writes into what the links point at and leaves the links; a push reads through."""
    a, b = joined(make_device("a"), local_server), joined(make_device("b"), local_server)
    dotfiles, disk = tmp_path / "dotfiles", tmp_path / "big-disk" / "projects"
    (dotfiles / "agents").mkdir(parents=True)
    disk.mkdir(parents=True)
    (dotfiles / "CLAUDE.md").write_text("# mine\n")
    b.claude.mkdir()
    (b.claude / "CLAUDE.md").symlink_to(dotfiles / "CLAUDE.md")
    (b.claude / "agents").symlink_to(dotfiles / "agents", target_is_directory=True)
    (b.claude / "projects").symlink_to(disk, target_is_directory=True)
    (disk / "-p").mkdir()
    (disk / "-p" / "from-b.jsonl").write_text('{"n": "b"}\n')
    assert "2 uploaded" in b.ok("push")  # CLAUDE.md and the transcript on the other disk

    a.ok("pull")
    assert a.read("projects/-p/from-b.jsonl") == b'{"n": "b"}\n'
    put(a, "CLAUDE.md", "# edited on a\n", 10)
    put(a, "agents/reviewer.md", "reviews\n", 11)
    put(a, "projects/-p/from-a.jsonl", '{"n": "a"}\n', 12)
    a.ok("push")
    result = b.run("sync")
    assert result.exit_code == 0, result.output
    for link in ("CLAUDE.md", "agents", "projects"):
        assert (b.claude / link).is_symlink(), link
    assert (dotfiles / "CLAUDE.md").read_text() == "# edited on a\n"
    assert (dotfiles / "agents" / "reviewer.md").read_text() == "reviews\n"
    assert (disk / "-p" / "from-a.jsonl").read_text() == '{"n": "a"}\n'
    assert "Already up to date" in b.ok("pull") and "Nothing to push" in b.ok("push")


def test_a_link_to_nothing_usable_is_skipped_and_blocks_nothing(
    local_server: Server, make_device, tmp_path: Path
) -> None:
    """A loop, a link to a special file, a dangling link: each named in a warning; what it
    held is neither deleted elsewhere nor written through; every other file syncs."""
    a, b = joined(make_device("a"), local_server), joined(make_device("b"), local_server)
    put(a, "CLAUDE.md", "v1\n", 1)
    put(a, "commands/deploy.md", "deploy v1\n", 1)
    put(a, "rules/style.md", "style v1\n", 1)
    a.ok("push")
    b.ok("pull")
    (b.claude / "agents").mkdir()
    (b.claude / "agents" / "loop").symlink_to(b.claude / "agents", target_is_directory=True)
    (b.claude / "rules" / "style.md").unlink()
    (b.claude / "rules" / "style.md").symlink_to("/dev/null")
    shutil.rmtree(b.claude / "commands")
    (b.claude / "commands").symlink_to(tmp_path / "unmounted", target_is_directory=True)
    put(a, "CLAUDE.md", "v2\n", 2)
    put(a, "commands/deploy.md", "deploy v2\n", 2)
    put(a, "rules/style.md", "style v2\n", 2)
    a.ok("push")
    result = b.run("sync")
    assert result.exit_code == 0, result.output
    assert "agents/loop: a folder reached twice (a link loop)" in result.output
    assert "rules/style.md: a symbolic link to a special file" in result.output
    assert "commands: a symbolic link to nothing usable" in result.output
    assert b.read("CLAUDE.md") == b"v2\n"
    assert not (tmp_path / "unmounted").exists()
    assert os.readlink(b.claude / "rules" / "style.md") == "/dev/null"
    a.ok("pull")
    assert a.read("commands/deploy.md") == b"deploy v2\n"  # no tombstone from b
    assert a.read("rules/style.md") == b"style v2\n"


@pytest.mark.parametrize("link_first", [True, False], ids=["link first", "folder first"])
def test_a_folder_reached_through_a_link_and_as_itself_is_sent_once(
    local_server: Server, make_device, link_first: bool
) -> None:
    """A link at the top to a folder deeper down is met first; a link deeper down to a
    folder at the top, last. Either way the folder met second is named in a warning, and its
    file is sent once, under the path met first."""
    a, b = joined(make_device("a"), local_server), joined(make_device("b"), local_server)
    if link_first:
        put(a, "agents/team/real/x.md", "x\n", 1)
        (a.claude / "commands").symlink_to(a.claude / "agents/team/real", target_is_directory=True)
        second = "agents/team/real"
    else:
        put(a, "commands/x.md", "x\n", 1)
        (a.claude / "agents/team").mkdir(parents=True)
        (a.claude / "agents/team/alias").symlink_to(a.claude / "commands", target_is_directory=True)
        second = "agents/team/alias"
    result = a.run("push")
    assert result.exit_code == 0, result.output
    assert f"{second}: a folder reached twice (a link loop)" in result.output
    assert "1 uploaded" in result.output
    b.ok("pull")
    assert tree(b.claude) == {"commands/x.md": b"x\n"}


def test_a_folder_bind_mounted_inside_itself_is_walked_once_more_and_no_further(
    local_server: Server, make_device
) -> None:
    """A folder reached twice with no link: the mount's listed inode number is that of the
    folder it covers, so the files right in it are walked once more (and sent under it too,
    where a walk that took every folder's stat would send nothing); the folders in it are
    known as those walked already."""
    a, b = joined(make_device("a"), local_server), joined(make_device("b"), local_server)
    put(a, "agents/x.md", "x\n", 1)
    put(a, "agents/inner/y.md", "y\n", 1)
    mount = a.claude / "agents" / "again"
    mount.mkdir()
    done = subprocess.run(["mount", "--bind", str(a.claude / "agents"), str(mount)], check=False)
    if done.returncode != 0:
        pytest.skip("bind mounts need root and a mount namespace that allows them")
    try:
        result = a.run("push")
    finally:
        subprocess.run(["umount", str(mount)], check=True)
    assert result.exit_code == 0, result.output
    assert "agents/again/inner: a folder reached twice" in result.output
    b.ok("pull")
    assert tree(b.claude) == {
        "agents/x.md": b"x\n",
        "agents/inner/y.md": b"y\n",
        "agents/again/x.md": b"x\n",
    }


# 18. a file that became a folder, a folder that became a file ------------------------------


@pytest.mark.parametrize("direction", ["file to folder", "folder to file"])
def test_the_other_device_converges_to_the_new_shape(
    local_server: Server, make_device, direction: str
) -> None:
    a, b = joined(make_device("a"), local_server), joined(make_device("b"), local_server)
    file_shape = {"commands/deploy": b"one command\n"}
    folder_shape = {"commands/deploy/prod.md": b"prod\n", "commands/deploy/test.md": b"test\n"}
    old, new = (file_shape, folder_shape)
    if direction == "folder to file":
        old, new = new, old
    for at, (relative, data) in enumerate(old.items()):
        put(a, relative, data, at)
    for relative in ("CLAUDE.md", "settings.json", "agents/x.md"):  # the guard stays calm
        put(a, relative, "v1\n", 5)
    a.ok("push")
    b.ok("pull")
    shutil.rmtree(a.claude / "commands")
    for at, (relative, data) in enumerate(new.items(), 10):
        put(a, relative, data, at)
    a.ok("push")
    result = b.run("pull")
    assert result.exit_code == 0, result.output
    assert tree(b.claude / "commands") == {
        relative.removeprefix("commands/"): data for relative, data in new.items()
    }
    trashed = tree(b.sync_home / "trash")
    for relative, data in old.items():
        assert any(path.endswith(relative) and kept == data for path, kept in trashed.items())
    assert "Nothing to push" in b.ok("push")
    assert "Already up to date" in b.ok("pull")
    assert "Already up to date" in a.ok("pull")


def test_a_conflict_below_a_linked_folder_is_listed_and_settled(
    local_server: Server, make_device, tmp_path: Path
) -> None:
    a, b = joined(make_device("a"), local_server), joined(make_device("b"), local_server)
    dotfiles = tmp_path / "dotfiles" / "agents"
    dotfiles.mkdir(parents=True)
    b.claude.mkdir()
    (b.claude / "agents").symlink_to(dotfiles, target_is_directory=True)
    put(a, "agents/r.md", "from a\n", 1)
    a.ok("push")
    put(b, "agents/r.md", "from b, later\n", 2)
    b.ok("pull", exit_code=3)
    listed = b.ok("conflicts")
    assert "agents/r.md: other side saved as agents/r.md.conflict-" in listed, listed
    b.ok("conflicts", "--keep", "local")
    assert [p.name for p in dotfiles.iterdir()] == ["r.md"]
    b.ok("sync")


# 15. a stray file in journal/ ---------------------------------------------------


def test_a_stray_file_in_the_journal_is_ignored_with_a_warning(
    local_server: Server, make_device
) -> None:
    """A Dropbox or Syncthing conflict copy of an entry, a macOS `._` file, a file that is
    no device's folder: every device goes on pushing and pulling, says what it ignores,
    and verify lists it without failing."""
    a, b = (joined(make_device(name), local_server) for name in "ab")
    put(a, "settings.json", "{}\n", 1)
    a.ok("push")
    [folder] = (local_server.data_dir / "journal").iterdir()
    [own] = folder.iterdir()
    strays = [
        f"{folder.name}/{own.stem} (conflicted copy 2026-11-30).age",
        f"{folder.name}/{own.stem}.sync-conflict-20261130-101010-ABCDEFG.age",
        f"{folder.name}/._{own.name}",
        ".DS_Store",
    ]
    shutil.copy(own, folder.parent / strays[0])
    shutil.copy(own, folder.parent / strays[1])
    (folder.parent / strays[2]).write_bytes(b"\x00\x05\x16\x07 resource fork")
    (folder.parent / strays[3]).write_bytes(b"\x00\x00\x00\x01Bud1")
    output = b.ok("pull")
    assert b.read("settings.json") == b"{}\n"
    for name in strays:
        assert f"journal/{name} on the remote is not an entry claude-sync wrote" in output
    put(b, "settings.json", '{"b": 1}\n', 2)
    b.ok("push")
    a.ok("pull")
    assert a.read("settings.json") == b'{"b": 1}\n'
    objects = local_server.data_dir / "objects"
    [object_file] = [p for p in objects.rglob("*.age")][:1]
    odd = [
        object_file.with_name(f"{object_file.stem} (conflicted copy).age"),
        objects / f"._{object_file.name}",
    ]
    for path in odd:
        shutil.copy(object_file, path)
    output = a.ok("verify", "--deep")
    for name in strays:
        assert f"· journal/{name}: not written by claude-sync" in output
    for path in odd:
        relative = path.relative_to(local_server.data_dir).as_posix()
        assert f"· {relative}: not written by claude-sync" in output
    assert "✓ No problems" in output


def cannot_write(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make `path` read-only. Root may write to a read-only file; there, opening it for
    writing in this process fails as it would for its owner."""
    path.chmod(0o444)
    if os.geteuid() != 0:
        return
    real_open = os.open

    def open_as_its_owner(file, flags, *args, **kwargs):
        if os.fspath(file) == str(path) and flags & (os.O_WRONLY | os.O_RDWR):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(file))
        return real_open(file, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_as_its_owner)


def test_a_read_only_transcript_grown_elsewhere_is_replaced_by_the_grown_file(
    local_server: Server, make_device, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pull cannot append to it: it writes the file's bytes and the new ones beside it,
    read-only as it was, and renames that over it (the old file is not kept in trash/: the
    new one holds every byte of it)."""
    a, b = (joined(make_device(name), local_server) for name in "ab")
    path = "projects/-p/s.jsonl"
    put(a, path, '{"n": 1}\n', 0)
    a.ok("push")
    b.ok("pull")
    grown = '{"n": 1}\n{"n": 2}\n'
    put(a, path, grown, 10)
    a.ok("push")
    cannot_write(b.claude / path, monkeypatch)
    output = b.ok("pull")
    assert "changed during the pull" not in output
    assert b.read(path) == grown.encode()
    assert stat.S_IMODE((b.claude / path).stat().st_mode) == 0o444
    assert tree(b.sync_home / "trash") == {}
    assert "Already up to date" in b.ok("pull")
