"""Local damage and secrets: a broken state, config or key file, file modes, what never
leaves the device, and what never shows up in rclone's argv or in claude-sync's own files.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import stat
import sys
from contextlib import closing
from pathlib import Path

import pytest
import yaml
from click.testing import Result
from conftest import (
    PASSPHRASE,
    Device,
    joined,
    published_files,
    put,
    remote_bytes,
    state_files,
)
from servers import Server

from claude_sync import crypto
from claude_sync.keys import read_key_file

CONFLICT = ".conflict-"


def files(folder: Path) -> dict[str, bytes]:
    """relative path -> bytes of every regular file below folder (links not followed)."""
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = Path(root) / name
            if path.is_file() and not path.is_symlink():
                found[path.relative_to(folder).as_posix()] = path.read_bytes()
    return found


def conflict_copies(device: Device) -> list[str]:
    return sorted(relative for relative in files(device.claude) if CONFLICT in relative)


def one_line_failure(result: Result, *needles: str) -> str:
    """A non-zero exit with exactly one line of output, containing every needle."""
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


# 1. a bad state: a warning, never a lost local change -------------------------------------


def _corrupt(path: Path, how: str) -> None:
    if how == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        path.write_bytes(b"\xff\xfe\x00 not a database {{{ \x80\x81" * 300)
    else:  # a database, but not a state
        path.unlink()
        with closing(sqlite3.connect(path)) as db:
            db.execute("CREATE TABLE files (name TEXT)")


@pytest.mark.parametrize("how", ["truncated", "garbage", "wrong-shape"])
def test_bad_state_warns_and_loses_nothing(local_server: Server, make_device, how: str) -> None:
    a = joined(make_device("a"), local_server)
    b = joined(make_device("b"), local_server)
    put(a, "settings.json", '{"theme": "v1"}\n', 0)
    put(a, "CLAUDE.md", "# same on both sides\n", 1)
    put(a, "projects/-srv-app/s.jsonl", '{"n": 1}\n', 2)
    a.ok("push")
    b.ok("pull")

    # B edits settings.json, A pushes a different newer version, B loses its state, B pulls:
    # B cannot tell its older copy from a stale one, so A's version takes its place and
    # B's copy is kept in trash/.
    put(b, "settings.json", '{"theme": "edited on B"}\n', 100)
    put(a, "settings.json", '{"theme": "newer on A, different"}\n', 200)
    a.ok("push")
    state = b.sync_home / "state.sqlite"
    _corrupt(state, how)
    result = b.run("pull")
    assert result.exit_code == 0, result.output
    assert "state.sqlite was unreadable" in result.stderr, result.output
    assert "Traceback" not in result.output
    assert b.read("settings.json") == b'{"theme": "newer on A, different"}\n'
    assert b.read("CLAUDE.md") == b"# same on both sides\n"
    assert b.read("projects/-srv-app/s.jsonl") == b'{"n": 1}\n'
    assert conflict_copies(b) == []
    trashed = [p for p in (b.sync_home / "trash").rglob("settings.json") if p.is_file()]
    assert [p.read_bytes() for p in trashed] == [b'{"theme": "edited on B"}\n']
    assert "settings.json" in state_files(b)  # rebuilt, readable again

    # B loses its state again and pushes a new file: a warning, and nothing identical on
    # both sides becomes a conflict on A.
    put(b, "agents/new.md", "made on B\n", 300)
    _corrupt(state, how)
    result = b.run("push")
    assert result.exit_code == 0, result.output
    assert "state.sqlite was unreadable" in result.stderr, result.output
    assert "Traceback" not in result.output
    a.ok("pull")
    assert a.read("agents/new.md") == b"made on B\n"
    assert a.read("CLAUDE.md") == b"# same on both sides\n"
    assert a.read("projects/-srv-app/s.jsonl") == b'{"n": 1}\n'
    assert a.read("settings.json") == b'{"theme": "newer on A, different"}\n'
    assert conflict_copies(a) == []


# 2. a malformed config.yaml, a missing or unusable key file: one line ---------------------

COMMANDS = [
    ("pull",),
    ("push",),
    ("sync",),
    ("status",),
    ("status", "--remote"),
    ("verify",),
    ("devices",),
    ("conflicts",),
]


def test_malformed_config_is_one_line_naming_file_and_line(
    local_server: Server, make_device
) -> None:
    a = joined(make_device("a"), local_server)
    (a.sync_home / "config.yaml").write_text("remote: [unclosed\n")
    for command in COMMANDS:
        line = one_line_failure(a.run(*command), "config.yaml", "line")
        assert line.startswith("Error:"), (command, line)


def test_missing_key_file_says_what_to_do(local_server: Server, make_device) -> None:
    a = joined(make_device("a"), local_server)
    (a.sync_home / "age-key.txt").unlink()
    for command in [*COMMANDS, ("key", "show"), ("key", "export")]:
        line = one_line_failure(a.run(*command), "age-key.txt")
        assert "init" in line or "restore" in line, (command, line)


KEY_COMMANDS = [("pull",), ("push",), ("status",), ("verify",), ("key", "show")]


def test_garbage_key_file_is_one_line(local_server: Server, make_device) -> None:
    a = joined(make_device("a"), local_server)
    for garbage in (
        b"this is not a key\n",
        b"# public key: age1xyz\nAGE-SECRET-KEY-1NOTAVALIDKEY\n",
        b"",
    ):
        (a.sync_home / "age-key.txt").write_bytes(garbage)
        for command in KEY_COMMANDS:
            one_line_failure(a.run(*command), "age-key.txt")


def test_binary_garbage_key_file_is_one_line(local_server: Server, make_device) -> None:
    a = joined(make_device("a"), local_server)
    (a.sync_home / "age-key.txt").write_bytes(b"\xff\xfe\x00\x80 garbage \xc3\x28")
    for command in KEY_COMMANDS:
        one_line_failure(a.run(*command), "age-key.txt")


# 3. modes ---------------------------------------------------------------------------------


def test_private_modes(local_or_s3_server: Server, make_device) -> None:
    a = joined(make_device("a"), local_or_s3_server)
    b = joined(make_device("b"), local_or_s3_server)
    put(a, "settings.json", "{}\n", 0)
    a.ok("push")
    b.ok("pull")
    put(b, "CLAUDE.md", "# b\n", 1)
    b.ok("push")
    a.ok("pull")
    for device in (a, b):
        home = device.sync_home
        assert stat.S_IMODE(home.stat().st_mode) == 0o700
        for name in ("config.yaml", "age-key.txt", "rclone.conf", "state.sqlite"):
            assert stat.S_IMODE((home / name).stat().st_mode) == 0o600, (device.name, name)
        # everything else too, rclone's mirror of the remote's metadata included (a local
        # folder is read in place, not mirrored)
        mirrored = (home / "cache" / "remote" / "CLAUDE-SYNC.json").exists()
        assert mirrored == (local_or_s3_server.kind == "s3")
        for path in home.rglob("*"):
            wanted = 0o700 if path.is_dir() else 0o600
            assert stat.S_IMODE(path.stat().st_mode) == wanted, (device.name, path)


# 4. credentials and ide/ never leave, whatever the config says -----------------------------


def test_credentials_and_ide_never_leave_with_include_everything(
    local_server: Server, make_device
) -> None:
    a = joined(make_device("a"), local_server)
    config = a.sync_home / "config.yaml"
    document = yaml.safe_load(config.read_text())
    document["sync"]["include"] = ["**"]
    config.write_text(yaml.safe_dump(document))
    secret = "sk-ant-oat01-CANARY-TOKEN-7c1e"
    put(a, ".credentials.json", json.dumps({"claudeAiOauth": {"accessToken": secret}}), 0)
    put(a, "ide/48213.lock", json.dumps({"authToken": secret}), 1)
    put(a, "ide/nested/more.json", secret, 2)
    put(a, "projects/-srv-app/.credentials.json", secret, 3)
    put(a, "todos/list.json", "[]\n", 4)  # included only by **
    put(a, "settings.json", "{}\n", 5)
    assert "2 uploaded" in a.ok("push")

    identity = read_key_file(a.sync_home / "age-key.txt")
    paths = published_files(local_server, a)
    assert sorted(paths) == ["settings.json", "todos/list.json"]
    for path in paths:
        assert ".credentials.json" not in path and not path.startswith("ide/"), path
    objects = 0
    for path, data in remote_bytes(local_server):
        assert secret.encode() not in data, path
        if "objects" in path.parts:
            objects += 1
            plain = io.BytesIO()
            crypto.decrypt_stream(path, plain, identity)
            assert secret.encode() not in plain.getvalue(), path
    assert objects == 2


# 5. no secret, content or file name on any rclone argv --------------------------------------

NAMES = ["wombat-session-3f9e.jsonl", "quokka-notes.md", "settings.json"]
CONTENTS = ["CONTENT-numbat-first-line", "CONTENT-bilby-second", "CONTENT-dugong-settings"]


def _logging_rclone(tmp_path: Path, log: Path) -> str:
    real = Path(sys.executable).parent / "rclone"
    script = tmp_path / "rclone-argv-logger"
    script.write_text(f'#!/bin/sh\nprintf \'%s\\n\' "$*" >> "{log}"\nexec "{real}" "$@"\n')
    script.chmod(0o755)
    return str(script)


def test_no_secret_on_rclone_argv(s3_server: Server, make_device, tmp_path: Path) -> None:
    log = tmp_path / "argv.log"
    wrapper = {"CLAUDE_SYNC_RCLONE": _logging_rclone(tmp_path, log)}
    # A fresh S3 remote cannot be initialised yet (`rclone cat` of the missing marker exits 0
    # on S3: see test_sync.py::test_init_on_a_fresh_s3_remote); set it up through the local
    # backend first, so A and B join it over S3.
    make_device("seed").ok(
        "init", "--local", str(s3_server.data_dir / "bucket" / "claude-sync"), "--yes"
    )
    a, b = make_device("a"), make_device("b")
    for device in (a, b):
        device.ok(
            "init", *s3_server.provider_args, "--device-name", device.name, "--yes", **wrapper
        )
    relatives = [f"projects/-srv-app/{NAMES[0]}", f"agents/{NAMES[1]}", NAMES[2]]
    for at, (relative, content) in enumerate(zip(relatives, CONTENTS, strict=True)):
        put(a, relative, content + "\n", at)
    a.ok("push", **wrapper)
    b.ok("pull", **wrapper)
    put(b, relatives[1], CONTENTS[1] + " edited on b\n", 50)
    b.ok("push", **wrapper)
    a.ok("pull", **wrapper)
    for device in (a, b):
        device.ok("status", "--remote", **wrapper)
        device.ok("verify", "--deep", **wrapper)
    assert b.read(relatives[0]) == (CONTENTS[0] + "\n").encode()

    argv = log.read_text()
    assert argv.count("\n") > 20, argv  # every command went through the wrapper
    for verb in ("cat", "copy", "move", "copyto", "sync", "lsjson"):
        assert any(line.split(" ")[0] == verb for line in argv.splitlines()), verb
    secret = s3_server.rclone_section["secret_access_key"]
    identity = str(read_key_file(a.sync_home / "age-key.txt"))
    for forbidden in [PASSPHRASE, "AGE-SECRET-KEY", identity, secret, *CONTENTS, *NAMES]:
        assert forbidden not in argv, forbidden
    for word in ("wombat", "quokka", "numbat", "bilby", "dugong", "srv-app"):
        assert word not in argv, word


# 6. no plaintext content in claude-sync's own files -----------------------------------------


def test_no_content_in_sync_home(local_server: Server, make_device) -> None:
    a = joined(make_device("a"), local_server)
    b = joined(make_device("b"), local_server)
    relatives = [f"projects/-srv-app/{NAMES[0]}", f"agents/{NAMES[1]}", NAMES[2]]
    for at, (relative, content) in enumerate(zip(relatives, CONTENTS, strict=True)):
        put(a, relative, content + "\n", at)
    put(a, "CLAUDE.md", "CONTENT-quoll-deleted-later\n", 3)
    a.ok("push")
    b.ok("pull")
    # a conflict (both edit settings.json), an append, and a deletion that B trashes
    put(a, relatives[2], CONTENTS[2] + " CONTENT-from-a\n", 10)
    put(b, relatives[2], CONTENTS[2] + " CONTENT-from-b\n", 20)
    put(a, relatives[0], CONTENTS[0] + "\nCONTENT-appended-line\n", 11)
    (a.claude / "CLAUDE.md").unlink()
    a.ok("push")
    assert "Conflict" in b.ok("pull", exit_code=3)
    b.ok("push")
    a.ok("pull", exit_code=3)
    for device in (a, b):
        device.ok("status", "--remote")
        device.ok("verify", "--deep")
    assert (b.sync_home / "trash").is_dir()  # the test covers a trashed file

    needles = [*CONTENTS, "CONTENT-"]
    for device in (a, b):
        for relative, data in files(device.sync_home).items():
            if relative.startswith("trash/"):
                continue
            for needle in needles:
                assert needle.encode() not in data, (device.name, relative, needle)
            if relative.startswith("logs/"):
                for name in NAMES:
                    assert name.encode() not in data, (device.name, relative, name)
