"""Remote damage heals: a pull refuses only what a damaged object holds back, `verify --repair`
sends damaged objects again from a device that has the bytes, `push --all` refills a remote
that lost its objects (or its journal too).

Every test runs the real CLI as devices with their own folders against a real remote (a
local folder, and for some a loopback S3 server), and damages the remote's files on disk.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
from pathlib import Path

import yaml
from click.testing import Result
from conftest import RCLONE, Device, joined, put, tree
from servers import Server

from claude_sync.keys import object_name, object_name_key, read_key_file
from claude_sync.remote import object_path

HINT = "run `claude-sync verify --repair` on a device that has these files"


def text(tag: str, size: int = 3000) -> bytes:
    """Deterministic, poorly compressible text (objects with a real ciphertext body)."""
    rng = random.Random(tag)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789 "
    return "".join(rng.choice(alphabet) for _ in range(size)).encode()


TRANSCRIPT = "projects/-p/s.jsonl"
FIRST = {
    "CLAUDE.md": text("claude-1"),
    "settings.json": text("settings-1"),
    TRANSCRIPT: text("s-1"),
}
APPENDED = text("s-appended", 1200)
SECOND = {
    "CLAUDE.md": text("claude-2"),
    "settings.json": text("settings-2"),
    TRANSCRIPT: FIRST[TRANSCRIPT] + APPENDED,
    "agents/new.md": text("agent-new"),
}


def root(server: Server) -> Path:
    """The sync root on disk (for S3, the bucket's folder under the served one)."""
    return server.data_dir / server.remote_root


def object_file(server: Server, device: Device, plaintext: bytes) -> Path:
    """The remote file of the object holding exactly `plaintext`."""
    name_key = object_name_key(read_key_file(device.sync_home / "age-key.txt"))
    name = object_name(name_key, hashlib.sha256(plaintext).hexdigest())
    return root(server) / object_path(name)


def relative(server: Server, path: Path) -> str:
    return path.relative_to(root(server)).as_posix()


def synced_pair(server: Server, make_device) -> tuple[Device, Device]:
    """A pushed FIRST, B pulled it, A pushed SECOND (CLAUDE.md and settings.json changed,
    the transcript appended to: a second segment, a new file)."""
    a, b = joined(make_device("a"), server), joined(make_device("b"), server)
    for at, (path, data) in enumerate(FIRST.items()):
        put(a, path, data, at)
    a.ok("push")
    b.ok("pull")
    for at, (path, data) in enumerate(SECOND.items(), 100):
        put(a, path, data, at)
    assert "4 uploaded" in a.ok("push")
    return a, b


def on_remote(device: Device, *args: str, stdin: bytes | None = None) -> bytes:
    """Run `rclone ARGS` with `device`'s rclone config, `ROOT` in an argument standing for
    the sync root: files are damaged through the server, as `rclone serve s3` answers from
    listings it caches and would not see a file changed on its disk."""
    remote = yaml.safe_load((device.sync_home / "config.yaml").read_text())["remote"]
    config = ["--config", str(device.sync_home / "rclone.conf")]
    command = [RCLONE, *(arg.replace("ROOT", remote["root"]) for arg in args), *config]
    return subprocess.run(command, input=stdin, capture_output=True, check=True).stdout


def flip_body_byte(device: Device, name: str) -> None:
    """Flip one byte in the middle of object `name`'s ciphertext body, past the age header."""
    data = bytearray(on_remote(device, "cat", f"ROOT/{name}"))
    header_end = data.index(b"\n", data.index(b"\n--- ")) + 1
    data[header_end + (len(data) - header_end) // 2] ^= 0x01
    on_remote(device, "rcat", f"ROOT/{name}", stdin=bytes(data))


def lines(result: Result) -> list[str]:
    return [line for line in result.output.splitlines() if line.strip()]


def partial_pull(device: Device, victim: str, needles: tuple[str, ...], before: bytes) -> None:
    """`device` pulls: every file of SECOND but `victim` arrives; `victim` stays `before`,
    named in one line with every needle; exit 1 with the hint."""
    result = device.run("pull")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    refused = [line for line in lines(result) if line.startswith(f"! {victim}: object ")]
    assert len(refused) == 1, result.output
    for needle in (*needles, "left as it is"):
        assert needle in refused[0], (needle, result.output)
    assert HINT in lines(result)[-1], result.output
    assert device.read(victim) == before
    for path, data in SECOND.items():
        if path != victim:
            assert device.read(path) == data, (path, result.output)


def verify_repair(device: Device, exit_code: int) -> str:
    result = device.run("verify", "--repair")
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    return result.output


def test_a_missing_object_refuses_its_path_until_verify_repair_restores_it(
    local_or_s3_server: Server, make_device
) -> None:
    a, b = synced_pair(local_or_s3_server, make_device)
    missing = object_file(local_or_s3_server, a, SECOND["CLAUDE.md"])
    name = relative(local_or_s3_server, missing)
    on_remote(a, "deletefile", f"ROOT/{name}")

    partial_pull(b, "CLAUDE.md", (name, "is missing on the remote"), FIRST["CLAUDE.md"])
    # Nothing is recorded for the refused path: the next pull tries it again.
    partial_pull(b, "CLAUDE.md", (name, "is missing on the remote"), FIRST["CLAUDE.md"])

    output = verify_repair(a, 0)
    assert f"↑ {name} sent again from CLAUDE.md" in output
    assert "Repaired 1 object" in output
    assert missing.is_file()
    assert "No problems" in verify_repair(a, 0)

    b.ok("pull")
    assert tree(b.claude) == tree(a.claude) == SECOND


def test_a_corrupt_segment_of_an_appended_transcript_is_replaced(
    local_or_s3_server: Server, make_device
) -> None:
    """The transcript only grew: its new version is the old segment and one for the appended
    bytes. Its second object, corrupt, refuses the transcript alone; `verify --repair` sends
    it again from that byte range of A's file, over the corrupt one."""
    a, b = synced_pair(local_or_s3_server, make_device)
    corrupt = object_file(local_or_s3_server, a, APPENDED)
    name = relative(local_or_s3_server, corrupt)
    flip_body_byte(a, name)
    damaged = corrupt.read_bytes()

    partial_pull(b, TRANSCRIPT, (name, "is corrupt"), FIRST[TRANSCRIPT])

    output = verify_repair(a, 0)
    assert f"↑ {name} sent again from {TRANSCRIPT}" in output
    assert corrupt.read_bytes() != damaged
    b.ok("pull")
    assert tree(b.claude) == tree(a.claude) == SECOND


def test_an_object_no_device_has_is_named_as_unrestorable(
    local_server: Server, make_device
) -> None:
    a, b = synced_pair(local_server, make_device)
    lost = object_file(local_server, a, SECOND["CLAUDE.md"])
    restorable = object_file(local_server, a, SECOND["settings.json"])
    lost.unlink()
    restorable.unlink()
    (a.claude / "CLAUDE.md").unlink()  # no device has those bytes any more

    output = verify_repair(a, 1)
    assert f"↑ {relative(local_server, restorable)} sent again from settings.json" in output
    unrestorable = [line for line in output.splitlines() if line.startswith("✗ cannot restore")]
    assert unrestorable == [
        f"✗ cannot restore {relative(local_server, lost)} of CLAUDE.md (the version from a): "
        "no file on this device holds its bytes"
    ], output
    assert "1 problem left" in output and HINT in output
    assert restorable.is_file() and not lost.exists()

    # B, which never had that version, can restore nothing either; every other file arrives.
    partial_pull(b, "CLAUDE.md", ("is missing on the remote",), FIRST["CLAUDE.md"])
    assert "✗ cannot restore" in verify_repair(b, 1)


def test_a_pull_with_a_conflict_and_a_refused_path_names_both_and_exits_1(
    local_server: Server, make_device
) -> None:
    a, b = synced_pair(local_server, make_device)
    object_file(local_server, a, SECOND["CLAUDE.md"]).unlink()
    put(b, "settings.json", text("settings-b"), 200)  # an edit here meets A's: a conflict

    result = b.run("pull")
    assert result.exit_code == 1, result.output
    assert "⚠ 1 conflict to settle" in result.output
    assert HINT in lines(result)[-1]


def test_a_hook_pull_applies_the_rest_and_says_so_in_one_line(
    local_server: Server, make_device
) -> None:
    a, b = synced_pair(local_server, make_device)
    name = relative(local_server, object_file(local_server, a, SECOND["CLAUDE.md"]))
    on_remote(a, "deletefile", f"ROOT/{name}")

    result = b.run("pull", "--hook", input="")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and HINT in result.stderr, result.stderr
    assert b.read("CLAUDE.md") == FIRST["CLAUDE.md"]
    assert b.read("settings.json") == SECOND["settings.json"]
    log = (b.sync_home / "logs" / "claude-sync.log").read_text()
    assert f"warning: CLAUDE.md: object {name} is missing on the remote; left as it is" in log
    assert '"outcome": "failed"' in (b.sync_home / "logs" / "last-hook-pull.json").read_text()


def test_push_all_refills_a_remote_that_lost_its_objects(
    local_or_s3_server: Server, make_device
) -> None:
    a, b = synced_pair(local_or_s3_server, make_device)
    b.ok("pull")
    on_remote(a, "purge", "ROOT/objects")

    # A's manifest names 5: CLAUDE.md, settings.json, agents/new.md, the transcript's two.
    assert "5 objects checked, 5 sent again" in a.ok("push", "--all")
    c = joined(make_device("c"), local_or_s3_server)
    c.ok("pull")
    assert tree(c.claude) == SECOND
    assert "Already up to date" in b.ok("pull")
    assert "No problems" in b.ok("verify", "--deep")


def test_push_all_refills_a_remote_that_lost_its_objects_and_journal(
    local_server: Server, make_device
) -> None:
    """Only CLAUDE-SYNC.json and keycheck.age are left: A's push --all writes a snapshot
    and every object again; B, which had pulled, and a new device C can pull."""
    a, b = synced_pair(local_server, make_device)
    b.ok("pull")
    for folder in ("objects", "journal"):
        shutil.rmtree(root(local_server) / folder)
    assert sorted(path.name for path in root(local_server).iterdir()) == [
        "CLAUDE-SYNC.json",
        "keycheck.age",
    ]

    assert "sent again" in a.ok("push", "--all")
    assert "Already up to date" in b.ok("pull")
    c = joined(make_device("c"), local_server)
    c.ok("pull")
    assert tree(c.claude) == SECOND
    put(b, "CLAUDE.md", text("claude-b"), 300)  # and syncing goes on
    b.ok("push")
    c.ok("pull")
    assert c.read("CLAUDE.md") == text("claude-b")


def test_push_all_with_nothing_missing_sends_no_object(local_server: Server, make_device) -> None:
    a, _ = synced_pair(local_server, make_device)
    objects = {path: path.stat().st_mtime_ns for path in root(local_server).rglob("objects/**/*")}
    journal = root(local_server) / "journal"
    written = {path: path.stat().st_mtime_ns for path in journal.rglob("*.age")}

    output = a.ok("push", "--all")
    assert "0 uploaded, 0 deleted; 5 objects checked, 0 sent again" in output
    after = {path: path.stat().st_mtime_ns for path in root(local_server).rglob("objects/**/*")}
    assert after == objects
    assert {path: path.stat().st_mtime_ns for path in journal.rglob("*.age")} != written


def test_push_all_names_what_this_device_no_longer_has(local_server: Server, make_device) -> None:
    a, _ = synced_pair(local_server, make_device)
    shutil.rmtree(root(local_server) / "objects")
    (a.claude / TRANSCRIPT).unlink()  # Claude Code's cleanup: kept remotely, gone here

    result = a.run("push", "--all")
    assert result.exit_code == 1, result.output
    assert f"! {TRANSCRIPT}: object objects/" in result.output
    assert "this device does not have its bytes" in result.output
    assert HINT in lines(result)[-1]


def test_an_object_that_is_no_regular_file_in_a_local_remote_refuses_its_path(
    local_server: Server, make_device
) -> None:
    """Read in place, an object replaced by a FIFO (where reading would wait for a writer)
    is refused like a damaged one; rclone would not have copied it either."""
    a, b = synced_pair(local_server, make_device)
    fifo = object_file(local_server, a, SECOND["CLAUDE.md"])
    fifo.unlink()
    os.mkfifo(fifo)
    partial_pull(b, "CLAUDE.md", ("is not a regular file",), FIRST["CLAUDE.md"])
