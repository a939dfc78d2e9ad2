"""End-to-end sync between devices: real rclone, real servers, every device its own folders.

Each test drives the `claude-sync` CLI as several devices (own HOME, CLAUDE_CONFIG_DIR and
CLAUDE_SYNC_HOME) against one remote, and checks bytes, mtimes, presence and exit codes.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml
from conftest import (
    PASSPHRASE,
    RCLONE,
    T0,
    Device,
    copies,
    joined,
    put,
    remote_bytes,
    stamped,
    state_files,
    tree,
)
from servers import Server

from claude_sync import crypto
from claude_sync.keys import read_key_file

CLAUDE_SYNC = str(Path(sys.executable).parent / "claude-sync")


# helpers ---------------------------------------------------------------------


def append(device: Device, relative: str, data: str, at: int) -> None:
    put(device, relative, device.read(relative) + data.encode(), at)


def stamp_names(seconds: int) -> set[str]:
    """A conflict copy's time stamp for an mtime, in UTC or local time."""
    utc = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    local = datetime.datetime.fromtimestamp(seconds)
    return {f"{utc:%Y%m%d-%H%M%S}", f"{local:%Y%m%d-%H%M%S}"}


def quiet(output: str) -> bool:
    return "Already up to date" in output and "Nothing to push" in output


def sync_until_quiet(devices: list[Device], rounds: int = 5) -> None:
    """Sync each device in turn until none has anything to do; conflicts may stay (exit 3)."""
    for _ in range(rounds):
        results = [device.run("sync") for device in devices]
        assert all(r.exit_code in (0, 3) for r in results), [r.output for r in results]
        outputs = [result.output for result in results]
        if all(quiet(output) for output in outputs):
            return
    raise AssertionError(f"still not quiet after {rounds} rounds of sync:\n" + "\n".join(outputs))


def server_of(request: pytest.FixtureRequest, kind: str) -> Server:
    return request.getfixturevalue(f"{kind}_server")


def logging_rclone(tmp_path: Path, log: Path, name: str = "rclone-logger.sh") -> str:
    """A wrapper that records each rclone argv (one argument a line, then ---) and runs rclone."""
    script = tmp_path / name
    script.write_text(
        "#!/bin/sh\n"
        f'for argument in "$@"; do printf \'%s\\n\' "$argument" >> "{log}"; done\n'
        f'echo --- >> "{log}"\n'
        f'exec "{RCLONE}" "$@"\n'
    )
    script.chmod(0o755)
    log.touch()
    return str(script)


def decrypt_remote(server: Server, device: Device) -> list[tuple[str, bytes]]:
    """(remote path, plaintext) of every object and journal entry, with `device`'s key."""
    identity = read_key_file(device.sync_home / "age-key.txt")
    found = []
    for path, data in remote_bytes(server):
        if path.name.endswith(".age") and path.name != "keycheck.age":
            relative = path.relative_to(server.data_dir).as_posix()
            found.append((relative, crypto.decrypt_bytes(data, identity)))
    return found


# 1. the basics, on every kind of server -----------------------------------------


def test_push_pull_keeps_bytes_and_mtimes(server: Server, make_device) -> None:
    a = joined(make_device("a"), server)
    b = joined(make_device("b"), server)
    put(a, "settings.json", '{"theme": "dark"}\n', 10)
    put(a, "agents/reviewer.md", "# reviewer\n", 20)
    put(a, "projects/-x/s.jsonl", '{"n": 1}\n' * 50, 30)
    put(a, "history.jsonl", '{"display": "hi", "timestamp": 1}\n', 40)
    assert "4 uploaded" in a.ok("push")
    assert "4 downloaded" in b.ok("pull")
    assert stamped(b.claude) == stamped(a.claude)

    put(a, "settings.json", '{"theme": "light"}\n', 50)
    append(a, "projects/-x/s.jsonl", '{"n": 2}\n', 60)
    a.ok("push")
    b.ok("pull")
    assert stamped(b.claude) == stamped(a.claude)
    assert b.read("settings.json") == b'{"theme": "light"}\n'

    c = joined(make_device("c"), server)
    c.claude.mkdir()
    c.ok("pull")
    assert stamped(c.claude) == stamped(a.claude)
    assert copies(c.claude) == []


def test_init_on_a_fresh_s3_remote(s3_server: Server, make_device) -> None:
    a = make_device("a")
    result = a.run("init", *s3_server.provider_args, "--device-name", "a", "--yes")
    assert result.exit_code == 0, result.output
    assert "initialised a new remote" in result.output
    marker = s3_server.data_dir / "bucket" / "claude-sync" / "CLAUDE-SYNC.json"
    document = json.loads(marker.read_text())
    assert document["format"] == 2
    assert len(base64.b64decode(document["kdf"]["salt"])) == 16


# 2. a real conflict ---------------------------------------------------------------


def _conflicting_settings(local_server: Server, make_device) -> tuple[Device, Device, str]:
    """A and B edit settings.json differently; A pushes, B pulls. Returns the copy's name."""
    a = joined(make_device("a"), local_server)
    b = joined(make_device("b"), local_server)
    put(a, "settings.json", "v0\n", 0)
    put(a, "CLAUDE.md", "# notes\n", 1)
    a.ok("push")
    b.ok("pull")
    put(a, "settings.json", "edited on A\n", 100)
    put(b, "settings.json", "edited on B, longer\n", 200)
    a.ok("push")
    result = b.run("pull")
    assert result.exit_code == 3, result.output
    assert "⚠ Conflict" in result.output
    assert "1 conflict to settle: settings.json.conflict-" in result.output
    assert b.read("settings.json") == b"edited on B, longer\n"
    expected = {f"settings.json.conflict-{stamp}-a" for stamp in stamp_names(T0 + 100)}
    found = copies(b.claude)
    assert len(found) == 1 and found[0] in expected, (found, expected)
    [copy] = found
    assert b.read(copy) == b"edited on A\n"
    assert b.read("CLAUDE.md") == b"# notes\n"
    return a, b, copy


def test_conflict_keep_remote_then_nothing_to_push(local_server: Server, make_device) -> None:
    a, b, copy = _conflicting_settings(local_server, make_device)
    b.ok("conflicts", "--keep", "remote")
    assert b.read("settings.json") == b"edited on A\n"
    assert copies(b.claude) == []
    assert "Nothing to push" in b.ok("push")
    a.ok("pull")
    assert a.read("settings.json") == b"edited on A\n"
    assert copies(a.claude) == []


def test_pending_conflicts_are_shown_until_settled_on_every_device(
    local_server: Server, make_device
) -> None:
    a, b, copy = _conflicting_settings(local_server, make_device)
    assert f"Conflicts: 1 to settle (run `claude-sync conflicts`)\n  ⚠ {copy}" in b.ok("status")
    assert json.loads(b.ok("status", "--json"))["conflicts"] == [copy]
    doctor = b.run("doctor").output
    assert "! conflicts: 1 conflict to settle (fix: `claude-sync conflicts`)" in doctor
    quiet = b.run("sync", "-q")
    assert quiet.exit_code == 3 and "1 conflict to settle" in quiet.output, quiet.output
    received = a.run("pull")  # the device that receives the copy is told too
    assert received.exit_code == 3 and f"to settle: {copy}" in received.output, received.output
    assert json.loads(a.ok("status", "--json"))["conflicts"] == [copy]

    a.ok("conflicts", "--keep", "local")
    assert "Conflicts" not in a.ok("status")
    assert "✓ conflicts: none to settle" in a.run("doctor").output
    a.ok("sync")
    b.ok("pull")
    assert copies(b.claude) == [] and json.loads(b.ok("status", "--json"))["conflicts"] == []


def test_conflict_keep_local_then_other_device_takes_it(local_server: Server, make_device) -> None:
    a, b, copy = _conflicting_settings(local_server, make_device)
    b.ok("conflicts", "--keep", "local")
    assert b.read("settings.json") == b"edited on B, longer\n"
    assert copies(b.claude) == []
    assert "1 uploaded" in b.ok("push")
    a.ok("pull")
    assert a.read("settings.json") == b"edited on B, longer\n"
    assert copies(a.claude) == []
    assert "Nothing to push" in a.ok("push")


@pytest.mark.parametrize(("path", "shorter"), [("CLAUDE.md", "# notes\n"), ("settings.json", "")])
def test_a_truncation_meets_a_concurrent_append_as_a_conflict(
    local_server: Server, make_device, path: str, shorter: str
) -> None:
    """Only transcripts and history.jsonl grow by appends alone; elsewhere the shorter
    version is an edit, not the longer one's past."""
    a, b = joined(make_device("a"), local_server), joined(make_device("b"), local_server)
    put(a, path, "# notes\nline two\n", 1)
    a.ok("push")
    b.ok("pull")
    put(a, path, shorter, 10)
    a.ok("push")
    put(b, path, "# notes\nline two\nline three\n", 20)
    b.ok("pull", exit_code=3)
    assert b.read(path) == b"# notes\nline two\nline three\n"
    [copy] = copies(b.claude)
    assert b.read(copy) == shorter.encode()


# 3. append-only transcripts: the longer one wins ------------------------------------

TRANSCRIPT = "projects/-x/s.jsonl"


def _shared_transcript(local_server: Server, make_device) -> tuple[Device, Device]:
    a = joined(make_device("a"), local_server)
    b = joined(make_device("b"), local_server)
    put(a, TRANSCRIPT, '{"line": 0}\n', 0)
    a.ok("push")
    b.ok("pull")
    assert b.read(TRANSCRIPT) == b'{"line": 0}\n'
    return a, b


def test_local_longer_transcript_wins_without_conflict(local_server: Server, make_device) -> None:
    a, b = _shared_transcript(local_server, make_device)
    append(a, TRANSCRIPT, '{"line": "X"}\n', 10)
    a.ok("push")
    append(b, TRANSCRIPT, '{"line": "X"}\n{"line": "Y"}\n', 20)
    longer = b.read(TRANSCRIPT)
    output = b.ok("pull")
    assert "Conflict" not in output
    assert copies(b.claude) == []
    assert b.read(TRANSCRIPT) == longer
    b.ok("push")
    a.ok("pull")
    assert a.read(TRANSCRIPT) == longer
    assert copies(a.claude) == []


def test_remote_longer_transcript_wins_without_conflict(local_server: Server, make_device) -> None:
    a, b = _shared_transcript(local_server, make_device)
    append(a, TRANSCRIPT, '{"line": "X"}\n{"line": "Y"}\n', 10)
    longer = a.read(TRANSCRIPT)
    a.ok("push")
    append(b, TRANSCRIPT, '{"line": "X"}\n', 20)
    output = b.ok("pull")
    assert "Conflict" not in output
    assert copies(b.claude) == []
    assert b.read(TRANSCRIPT) == longer
    assert "Nothing to push" in b.ok("push")


def test_two_continuations_of_one_session_merge_into_one_transcript(
    local_server: Server, make_device
) -> None:
    """Both devices continue one session before syncing: each ends with one transcript that
    holds both branches (Claude Code links lines by parentUuid), and no conflict copy."""
    a, b = _shared_transcript(local_server, make_device)
    turn_a = '{"uuid": "a1", "timestamp": "2026-11-30T10:00:02.000Z"}\n'
    turn_b = '{"uuid": "b1", "timestamp": "2026-11-30T10:00:01.000Z"}\n'
    append(a, TRANSCRIPT, turn_a, 10)
    append(b, TRANSCRIPT, turn_b, 20)
    a.ok("sync")
    output = b.ok("sync")
    assert "Conflict" not in output
    a.ok("sync")
    both = ('{"line": 0}\n' + turn_b + turn_a).encode()
    for device in (a, b):
        assert device.read(TRANSCRIPT) == both
        assert copies(device.claude) == []
    assert "Nothing to push" in b.ok("push")


# 4. the same edit on both sides ----------------------------------------------------


def test_identical_edits_are_no_conflict(local_server: Server, make_device) -> None:
    a = joined(make_device("a"), local_server)
    b = joined(make_device("b"), local_server)
    put(a, "settings.json", "v0\n", 0)
    a.ok("push")
    b.ok("pull")
    put(a, "settings.json", "same edit\n", 10)
    put(b, "settings.json", "same edit\n", 20)
    a.ok("push")
    output = b.ok("pull")
    assert "Conflict" not in output
    assert copies(b.claude) == []
    assert b.read("settings.json") == b"same edit\n"
    assert "Nothing to push" in b.ok("push")


# 5. deletions --------------------------------------------------------------------


def test_deleted_config_is_trashed_but_swept_transcript_stays(
    local_server: Server, make_device
) -> None:
    a = joined(make_device("a"), local_server)
    b = joined(make_device("b"), local_server)
    put(a, "agents/x.md", "agent x\n", 0)
    put(a, "agents/y.md", "agent y\n", 1)
    put(a, "settings.json", "{}\n", 2)
    put(a, "CLAUDE.md", "# me\n", 3)
    put(a, "projects/-p/t.jsonl", '{"t": 1}\n', 4)
    a.ok("push")
    b.ok("pull")
    assert b.read("agents/x.md") == b"agent x\n"

    (a.claude / "agents/x.md").unlink()
    (a.claude / "projects/-p/t.jsonl").unlink()
    a.ok("push")
    b.ok("pull")
    assert not (b.claude / "agents/x.md").exists()
    trashed = [p for p in (b.sync_home / "trash").rglob("x.md") if p.is_file()]
    assert [p.read_bytes() for p in trashed] == [b"agent x\n"]
    assert trashed[0].relative_to(b.sync_home / "trash").parts[1:] == ("agents", "x.md")
    assert b.read("agents/y.md") == b"agent y\n"
    # The transcript Claude Code swept on A stays on B and is not brought back to A.
    assert b.read("projects/-p/t.jsonl") == b'{"t": 1}\n'
    a.ok("pull")
    assert not (a.claude / "projects/-p/t.jsonl").exists()
    assert not (a.claude / "agents/x.md").exists()
    a.ok("pull")
    assert not (a.claude / "projects/-p/t.jsonl").exists()
    # The remote still has it: a new device gets it.
    c = joined(make_device("c"), local_server)
    c.ok("pull")
    assert c.read("projects/-p/t.jsonl") == b'{"t": 1}\n'
    assert not (c.claude / "agents/x.md").exists()


# 6. three devices, one file, three edits -------------------------------------------


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_three_concurrent_edits_converge(kind: str, request, make_device) -> None:
    server = server_of(request, kind)
    devices = [joined(make_device(name), server) for name in ("a", "b", "c")]
    a = devices[0]
    put(a, "settings.json", "base\n", 0)
    put(a, "CLAUDE.md", "# shared\n", 1)
    a.ok("push")
    for device in devices[1:]:
        device.ok("pull")
    edits = {}
    for offset, device in enumerate(devices, 1):
        edits[device.name] = f"edit from {device.name}\n".encode() * offset
        put(device, "settings.json", edits[device.name], 100 * offset)
        device.ok("push")
    sync_until_quiet(devices)

    trees = [tree(device.claude) for device in devices]
    assert sorted(trees[0]) == sorted(trees[1]) == sorted(trees[2])
    assert trees[0] == trees[1] == trees[2]
    for device, files in zip(devices, trees, strict=True):
        contents = {data for name, data in files.items() if name.startswith("settings")}
        assert set(edits.values()) <= contents, f"{device.name} lost an edit: {sorted(files)}"
        assert files["CLAUDE.md"] == b"# shared\n"
    assert len(copies(a.claude)) == 2


# 7. history.jsonl is merged -------------------------------------------------------


def _line(display: str, timestamp: int) -> str:
    return json.dumps({"display": display, "timestamp": timestamp}) + "\n"


def test_history_is_merged_by_timestamp(local_server: Server, make_device) -> None:
    a = joined(make_device("a"), local_server)
    b = joined(make_device("b"), local_server)
    put(a, "history.jsonl", _line("first", 1_000), 0)
    a.ok("push")
    b.ok("pull")
    append(a, "history.jsonl", _line("from a, later", 3_000) + _line("a last", 5_000), 10)
    append(b, "history.jsonl", _line("from b, earlier", 2_000) + _line("b", 4_000), 20)
    a.ok("push")
    b.ok("push")
    sync_until_quiet([a, b])
    expected = (
        _line("first", 1_000)
        + _line("from b, earlier", 2_000)
        + _line("from a, later", 3_000)
        + _line("b", 4_000)
        + _line("a last", 5_000)
    ).encode()
    assert a.read("history.jsonl") == expected
    assert b.read("history.jsonl") == expected
    assert copies(a.claude) == copies(b.claude) == []


# 8. the remote holds no plaintext --------------------------------------------------


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_remote_holds_no_plaintext(kind: str, request, make_device) -> None:
    server = server_of(request, kind)
    a = joined(make_device("a"), server)
    canary = "PLAINTEXT-CANARY-123"
    put(a, "projects/-secretproj/CANARY-NAME.jsonl", f'{{"text": "{canary}"}}\n' * 20, 0)
    put(a, "agents/SECRETAGENT.md", f"# {canary} agent\n", 1)
    put(a, "settings.json", canary, 2)
    a.ok("push")
    needles = ["PLAINTEXT-CANARY", "CANARY-NAME", "secretproj", "SECRETAGENT", "projects"]
    needles += ["agents", "settings", ".jsonl"]
    scanned = 0
    for path, data in remote_bytes(server):
        scanned += 1
        relative = path.relative_to(server.data_dir).as_posix()
        for needle in needles:
            assert needle.lower() not in relative.lower(), f"{needle!r} in the name {relative}"
            assert needle.encode() not in data, f"{needle!r} in the bytes of {relative}"
    assert scanned >= 5  # marker, keycheck, a manifest, objects
    # ...and the data really is there, encrypted: B gets it back.
    b = joined(make_device("b"), server)
    b.ok("pull")
    assert tree(b.claude) == tree(a.claude)


# 9. rclone calls: none for a no-op push, never a secret on argv ---------------------


def test_noop_push_runs_no_rclone_and_argv_holds_no_secret(
    s3_server: Server, make_device, tmp_path: Path
) -> None:
    log = tmp_path / "rclone-argv.log"
    wrapper = logging_rclone(tmp_path, log)
    a = make_device("a")
    a.ok(
        "init", *s3_server.provider_args, "--device-name", "a", "--yes", CLAUDE_SYNC_RCLONE=wrapper
    )
    put(a, "settings.json", "{}\n", 0)
    put(a, "projects/-x/s.jsonl", "line\n", 1)
    a.ok("push", CLAUDE_SYNC_RCLONE=wrapper)
    after_first = log.read_text()
    assert after_first.count("---\n") >= 2  # the wrapper really was used
    assert "Nothing to push" in a.ok("push", CLAUDE_SYNC_RCLONE=wrapper)
    assert log.read_text() == after_first

    b = make_device("b")
    b.ok(
        "init", *s3_server.provider_args, "--device-name", "b", "--yes", CLAUDE_SYNC_RCLONE=wrapper
    )
    b.ok("pull", CLAUDE_SYNC_RCLONE=wrapper)
    assert b.read("settings.json") == b"{}\n"
    append(b, "projects/-x/s.jsonl", "more\n", 2)
    b.ok("sync", CLAUDE_SYNC_RCLONE=wrapper)
    a.ok("pull", CLAUDE_SYNC_RCLONE=wrapper)
    assert a.read("projects/-x/s.jsonl") == b"line\nmore\n"

    s3_secret = next(
        arg.split("=", 1)[1]
        for arg in s3_server.provider_args
        if arg.startswith("secret_access_key=")
    )
    secret_key = (a.sync_home / "age-key.txt").read_text()
    [key_line] = [line for line in secret_key.splitlines() if line.startswith("AGE-SECRET-KEY-")]
    argv_text = log.read_text()
    assert argv_text.count("---\n") >= 6
    for secret in (PASSPHRASE, "AGE-SECRET-KEY", key_line, key_line[20:], s3_secret):
        assert secret not in argv_text, f"a secret reached rclone's argv: {secret[:12]}..."


# 10. --dry-run changes nothing -------------------------------------------------------


def _snapshot(device: Device, server: Server) -> tuple:
    state = device.sync_home / "state.sqlite"
    remote = {
        path.relative_to(server.data_dir).as_posix(): (data, path.stat().st_mtime_ns)
        for path, data in remote_bytes(server)
    }
    return stamped(device.claude), state.read_bytes() if state.exists() else None, remote


def test_dry_run_changes_nothing(local_server: Server, make_device) -> None:
    a = joined(make_device("a"), local_server)
    b = joined(make_device("b"), local_server)
    put(a, "settings.json", "v0\n", 0)
    put(a, "agents/gone.md", "to delete\n", 1)
    put(a, "agents/kept.md", "kept\n", 2)
    a.ok("push")
    b.ok("pull")
    # Remote changes for B to pull, and local changes for B to push (one a conflict).
    put(a, "settings.json", "from a\n", 10)
    put(a, "CLAUDE.md", "new on a\n", 11)
    (a.claude / "agents/gone.md").unlink()
    a.ok("push")
    put(b, "settings.json", "from b\n", 20)
    put(b, "rules/new.md", "new on b\n", 21)
    (b.claude / "agents/kept.md").unlink()
    assert (b.sync_home / "state.sqlite").exists()

    before = _snapshot(b, local_server)
    pushed = b.ok("push", "--dry-run")
    assert "rules/new.md" in pushed and "dry run" in pushed
    pulled = b.ok("pull", "--dry-run")
    assert "CLAUDE.md" in pulled and "agents/gone.md" in pulled and "dry run" in pulled
    synced = b.ok("sync", "--dry-run")
    assert "dry run" in synced
    assert _snapshot(b, local_server) == before


# 11. status and devices ----------------------------------------------------------


def test_status_and_devices(local_server: Server, make_device, tmp_path: Path) -> None:
    a = joined(make_device("a"), local_server)
    b = joined(make_device("b"), local_server)
    put(a, "settings.json", "{}\n", 0)
    put(a, "agents/helper.md", "# helper\n", 1)

    # Offline: an rclone that fails and logs shows that status does not need it.
    log = tmp_path / "offline.log"
    broken = tmp_path / "broken-rclone.sh"
    broken.write_text(f'#!/bin/sh\necho "$@" >> "{log}"\nexit 1\n')
    broken.chmod(0o755)
    output = a.ok("status", CLAUDE_SYNC_RCLONE=str(broken))
    assert "To push:   2 files" in output
    assert "↑ settings.json" in output and "↑ agents/helper.md" in output
    assert not log.exists()

    a.ok("push")
    assert "To push:   0 files" in a.ok("status", CLAUDE_SYNC_RCLONE=str(broken))
    document = json.loads(b.ok("status", "--remote", "--json"))
    assert document["device"]["name"] == "b"
    assert document["to_push"] == []
    assert sorted((e["path"], e["action"], e["from"]) for e in document["to_pull"]) == [
        ("agents/helper.md", "download", "a"),
        ("settings.json", "download", "a"),
    ]
    b.ok("pull")
    assert json.loads(b.ok("status", "--remote", "--json"))["to_pull"] == []

    put(b, "CLAUDE.md", "# b\n", 2)
    b.ok("push")
    listing = a.ok("devices")
    lines = listing.splitlines()
    assert any(line.startswith("a (this device):") and "2 files" in line for line in lines)
    assert any(line.startswith("b:") and "3 files" in line for line in lines), listing


# 12. two pushes at once ------------------------------------------------------------


def test_two_pushes_at_once(local_server: Server, make_device) -> None:
    a = joined(make_device("a"), local_server)
    for index in range(40):
        put(a, f"projects/-x/session-{index}.jsonl", f'{{"i": {index}}}\n' * 200, index)
    put(a, "settings.json", "concurrent\n", 100)
    environment = {**os.environ, **a.environment()}
    results: list[subprocess.CompletedProcess[str]] = []

    def run() -> None:
        results.append(
            subprocess.run(
                [CLAUDE_SYNC, "push"], env=environment, capture_output=True, text=True, timeout=120
            )
        )

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 2
    for result in results:
        locked_out = result.returncode != 0 and "another claude-sync run" in result.stderr
        assert result.returncode == 0 or locked_out, result.stdout + result.stderr
    assert any(result.returncode == 0 for result in results)
    assert "settings.json" in state_files(a)
    assert "Nothing to push" in a.ok("push")

    b = joined(make_device("b"), local_server)
    b.ok("pull")
    assert tree(b.claude) == tree(a.claude)


# 13. projects move between homes --------------------------------------------------


def encode(path: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "-", path)


def test_project_folder_follows_the_home(local_server: Server, make_device) -> None:
    a = joined(make_device("a"), local_server)
    b = joined(make_device("b"), local_server)
    folder_a = encode(os.path.realpath(a.home) + "/code/app")
    folder_b = encode(os.path.realpath(b.home) + "/code/app")
    assert folder_a != folder_b
    put(a, f"projects/{folder_a}/s.jsonl", '{"hello": "app"}\n', 0)
    put(a, f"projects/{folder_a}/memory/MEMORY.md", "remember\n", 1)
    a.ok("push")
    b.ok("pull")
    assert b.read(f"projects/{folder_b}/s.jsonl") == b'{"hello": "app"}\n'
    assert b.read(f"projects/{folder_b}/memory/MEMORY.md") == b"remember\n"
    assert sorted(p.name for p in (b.claude / "projects").iterdir()) == [folder_b]

    append(b, f"projects/{folder_b}/s.jsonl", '{"from": "b"}\n', 10)
    b.ok("push")
    a.ok("pull")
    assert a.read(f"projects/{folder_a}/s.jsonl") == b'{"hello": "app"}\n{"from": "b"}\n'
    assert sorted(p.name for p in (a.claude / "projects").iterdir()) == [folder_a]


# 14. credentials never leave -------------------------------------------------------


def _include_everything(device: Device) -> None:
    path = device.sync_home / "config.yaml"
    document = yaml.safe_load(path.read_text())
    document.setdefault("sync", {})["include"] = ["**"]
    path.write_text(yaml.safe_dump(document))


def test_credentials_and_ide_never_leave(local_server: Server, make_device) -> None:
    a = joined(make_device("a"), local_server)
    b = joined(make_device("b"), local_server)
    _include_everything(a)
    _include_everything(b)
    secret = "CREDENTIAL-CANARY-42"
    put(a, ".credentials.json", json.dumps({"token": secret}), 0)
    put(a, "ide/12345.lock", json.dumps({"authToken": secret}), 1)
    put(a, "projects/-x/.credentials.json", secret, 2)
    put(a, "extra/notes.txt", "included by **\n", 3)
    put(a, "settings.json", "{}\n", 4)
    a.ok("push")

    plaintexts = decrypt_remote(local_server, a)
    assert len(plaintexts) >= 3  # one journal entry, two objects
    for where, plain in plaintexts:
        assert secret.encode() not in plain, f"a credential reached the remote in {where}"
    [entry] = [plain for where, plain in plaintexts if where.startswith("journal/")]
    files = json.loads(entry)["files"]
    assert sorted(files) == ["extra/notes.txt", "settings.json"]

    b.ok("pull")
    assert tree(b.claude) == {"extra/notes.txt": b"included by **\n", "settings.json": b"{}\n"}


def test_a_push_that_deletes_most_files_stops_unless_forced(
    local_server: Server, make_device
) -> None:
    a = joined(make_device("a"), local_server)
    for name in ("CLAUDE.md", "agents/x.md", "agents/y.md", "commands/z.md"):
        put(a, name, f"{name}\n", 1)
    a.ok("push")
    for name in ("agents/x.md", "agents/y.md", "commands/z.md"):
        (a.claude / name).unlink()
    result = a.run("push")
    assert result.exit_code == 1
    assert "would delete 3 of the 4 files" in result.output
    assert "--force" in result.output
    a.ok("push", "--force")


def test_removing_conflict_copies_never_trips_the_deletion_guard(
    local_server: Server, make_device
) -> None:
    """Settling conflicts removes copies: that is not the mass deletion the guard is for."""
    a = joined(make_device("a"), local_server)
    put(a, "CLAUDE.md", "kept\n", 1)
    copies = [f"CLAUDE.conflict-20261130-10000{n}-b.md" for n in range(3)]
    for number, copy in enumerate(copies):
        put(a, copy, f"other side {number}\n", 2)
    a.ok("push")
    for copy in copies:
        (a.claude / copy).unlink()
    assert "3 deleted" in a.ok("sync")


def test_short_help_and_singular_counts(local_server: Server, make_device) -> None:
    a = joined(make_device("a"), local_server)
    assert "Usage: main [OPTIONS] COMMAND" in a.ok("-h")  # CliRunner names it main
    assert "Usage: main push" in a.ok("push", "-h")
    put(a, "CLAUDE.md", "one\n", 1)
    assert "To push:   1 file\n" in a.ok("status")
    assert "a push would send 1 change\n" in a.ok("push", "--dry-run")


def test_keep_remote_is_pushed_even_when_its_size_and_mtime_match_the_state(
    local_server: Server, make_device
) -> None:
    """Both sides edited in the same second to the same size: after `conflicts --keep
    remote` the kept file looks unchanged by size and mtime, yet it must be sent."""
    a, b = joined(make_device("a"), local_server), joined(make_device("b"), local_server)
    put(a, "CLAUDE.md", "v0\n", 1)
    a.ok("push")
    b.ok("pull")
    put(a, "CLAUDE.md", "aaa\n", 5)
    a.ok("push")
    put(b, "CLAUDE.md", "bbb\n", 5)
    b.ok("pull", exit_code=3)
    b.ok("push")
    b.ok("conflicts", "--keep", "remote")
    assert b.read("CLAUDE.md") == b"aaa\n"
    b.ok("push")
    a.ok("pull")
    assert a.read("CLAUDE.md") == b.read("CLAUDE.md") == b"aaa\n"
    assert "To push:   0 files" in b.ok("status")


def test_an_entry_not_older_than_the_state_is_hashed_again(
    local_server: Server, make_device
) -> None:
    """git's racily-clean rule: a size and mtime recorded no earlier than the state's own
    write prove nothing (the file may change again within the same clock tick)."""
    a, b = joined(make_device("a"), local_server), joined(make_device("b"), local_server)
    future = 4_000_000_000 - T0  # an mtime after any state write in this test
    put(a, "CLAUDE.md", "one\n", future)
    a.ok("push")
    put(a, "CLAUDE.md", "two\n", future)  # same size, same mtime
    assert "1 uploaded" in a.ok("push")
    b.ok("pull")
    assert b.read("CLAUDE.md") == b"two\n"


def test_keep_remote_is_not_undone_by_a_settlement_published_after_it(
    local_server: Server, make_device
) -> None:
    """A and B each push an edit without pulling (hooks: push at a session's end): two
    concurrent versions. A pulls and settles on B's (the newer mtime); its push is pending.
    B pulls, keeps A's (`--keep remote`) and pushes. A's push must not publish its older
    settlement over B's choice: both end with A's."""
    a, b = (joined(make_device(name), local_server) for name in "ab")
    put(a, "CLAUDE.md", "v0\n", 1)
    a.ok("push")
    b.ok("pull")
    put(a, "CLAUDE.md", "from a\n", 10)
    a.ok("push")
    put(b, "CLAUDE.md", "from b\n", 20)
    b.ok("push")
    a.ok("pull", exit_code=3)  # settles on B's, A's kept as a copy; publish pending
    b.ok("pull", exit_code=3)
    b.ok("conflicts", "--keep", "remote")
    assert b.read("CLAUDE.md") == b"from a\n"
    b.ok("push")
    a.ok("push")  # before the fix: publishes "from b", concurrent with B's choice, newer
    for _ in range(3):
        for device in (a, b):
            assert device.run("sync").exit_code in (0, 3)
    assert {d.name: d.read("CLAUDE.md") for d in (a, b)} == {"a": b"from a\n", "b": b"from a\n"}


@pytest.mark.parametrize("same_size", [False, True])
def test_keep_remote_before_the_next_push_is_what_every_device_ends_with(
    local_server: Server, make_device, same_size: bool
) -> None:
    """A and C edit concurrently; B, unchanged, settles on C's (the newer) and keeps A's
    beside it; B then keeps A's (`--keep remote`) before pushing: A's is what all three end
    with, not C's, which B had been about to publish."""
    a, b, c = (joined(make_device(name), local_server) for name in "abc")
    put(a, "CLAUDE.md", "v0\n", 1)
    a.ok("push")
    b.ok("pull")
    c.ok("pull")
    put(a, "CLAUDE.md", "from a\n", 10)
    a.ok("push")
    put(c, "CLAUDE.md", "from c\n" if same_size else "from c, longer\n", 20)
    c.ok("push")
    b.ok("pull", exit_code=3)
    assert b.read("CLAUDE.md") == (b"from c\n" if same_size else b"from c, longer\n")
    b.ok("conflicts", "--keep", "remote")
    assert b.read("CLAUDE.md") == b"from a\n"
    b.ok("sync")
    for device in (a, b, c):
        device.run("sync")
    for device in (a, b, c):
        device.run("sync")
        assert device.read("CLAUDE.md") == b"from a\n", device.name
