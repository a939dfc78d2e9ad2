"""`claude-sync doctor`: one line per check, exit 0 when all is well, 1 with a fix hint if not."""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import yaml
from click.testing import CliRunner, Result
from conftest import Device
from servers import Server

from claude_sync.cli import main
from claude_sync.keys import random_identity, read_key_file, write_key_file

CHECKS = [
    "rclone",
    "config",
    "key",
    "remote",
    "key matches remote",
    "remote format",
    "hooks",
    "hook command",
    "Claude Code folder",
    "conflicts",
]
BIN = str(Path(sys.executable).parent)
LINE = re.compile(r"^(?P<mark>[✓✗!]) (?P<what>[A-Za-z ]+?): (?P<detail>.+)$")


def doctor(device: Device, **extra: str) -> tuple[int, dict[str, tuple[str, str]]]:
    """Exit code, and check name -> (mark, detail) for every line doctor printed."""
    result: Result = CliRunner().invoke(main, ["doctor"], env=device.environment(**extra))
    # Exit codes come through sys.exit; any other exception is a crash with a traceback.
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert result.stderr == ""
    checks: dict[str, tuple[str, str]] = {}
    for line in result.stdout.splitlines():
        match = LINE.match(line)
        assert match, f"not a check line: {line!r}"
        assert match["what"] not in checks, f"{match['what']} reported twice"
        checks[match["what"]] = (match["mark"], match["detail"])
    return result.exit_code, checks


def init(device: Device, server: Server) -> None:
    """Set the device up on the server (a random key: doctor does not care, Argon2 is slow)."""
    device.ok("init", *server.provider_args, "--device-name", device.name, "--yes", "--random-key")


def assert_failed_with_hint(checks: dict[str, tuple[str, str]], what: str) -> str:
    mark, detail = checks[what]
    assert mark == "✗", (what, detail)
    assert "(fix: " in detail, detail
    return detail


def test_missing_claude_folder_is_only_a_warning(local_server: Server, make_device) -> None:
    device = make_device("a")
    init(device, local_server)
    assert not device.claude.exists()
    code, checks = doctor(device)
    assert code == 0
    assert checks["Claude Code folder"][0] == "!"
    warnings = [what for what, (mark, _) in checks.items() if mark != "✓"]
    assert warnings == ["hooks", "Claude Code folder"]
    assert checks["hooks"][0] == "!"


def test_key_replaced_by_another_key(local_server: Server, make_device) -> None:
    device = make_device("a")
    init(device, local_server)
    write_key_file(device.sync_home / "age-key.txt", random_identity())

    code, checks = doctor(device)
    assert code == 1
    assert checks["key"][0] == "✓"  # a valid key, just not this remote's
    assert checks["remote"][0] == "✓"
    detail = assert_failed_with_hint(checks, "key matches remote")
    assert "does not match" in detail


def test_missing_key_file(local_server: Server, make_device) -> None:
    device = make_device("a")
    init(device, local_server)
    (device.sync_home / "age-key.txt").unlink()
    code, checks = doctor(device)
    assert code == 1
    assert "missing" in assert_failed_with_hint(checks, "key")
    assert "key matches remote" not in checks  # nothing to match with


def test_binary_garbage_key_file(local_server: Server, make_device) -> None:
    device = make_device("a")
    init(device, local_server)
    (device.sync_home / "age-key.txt").write_bytes(b"\xff\xfe\x00\x80garbage")
    code, checks = doctor(device)
    assert code == 1
    assert_failed_with_hint(checks, "key")


def test_malformed_config_names_the_line(local_server: Server, make_device) -> None:
    device = make_device("a")
    init(device, local_server)
    config = device.sync_home / "config.yaml"
    lines = config.read_text().splitlines()
    lines.insert(4, "oops: this: is not yaml")  # becomes line 5
    config.write_text("\n".join(lines) + "\n")

    code, checks = doctor(device)
    assert code == 1
    detail = assert_failed_with_hint(checks, "config")
    assert str(config) in detail
    assert "line 5," in detail
    assert "remote" not in checks  # no config, no remote to check
    assert checks["key"][0] == "✓"


def test_config_with_a_wrong_type_names_the_setting(local_server: Server, make_device) -> None:
    device = make_device("a")
    init(device, local_server)
    config = device.sync_home / "config.yaml"
    document = yaml.safe_load(config.read_text())
    document["rclone"]["timeout"] = "soon"
    config.write_text(yaml.safe_dump(document))
    code, checks = doctor(device)
    assert code == 1
    assert "rclone.timeout" in assert_failed_with_hint(checks, "config")


def test_doctor_passes_after_init_and_fails_when_the_remote_is_gone(
    server: Server, make_device
) -> None:
    """All green after init; then the local folder deleted, or the server stopped."""
    device = make_device("a")
    init(device, server)
    device.claude.mkdir()
    device.ok("install")

    code, checks = doctor(device, PATH=BIN + os.pathsep + os.environ["PATH"])
    assert code == 0
    assert list(checks) == CHECKS
    assert all(mark == "✓" for mark, _ in checks.values()), checks
    key = read_key_file(device.sync_home / "age-key.txt")
    assert checks["key"][1] == str(key.to_public())
    assert "(device a)" in checks["config"][1]
    assert "rclone v" in checks["rclone"][1]

    if server.kind == "s3":
        return  # rclone retries a refused S3 endpoint for ~20 s; test_init covers that case
    if server.kind == "local":
        shutil.rmtree(server.data_dir)
    else:
        server.stop()
    code, checks = doctor(device)
    assert code == 1
    detail = assert_failed_with_hint(checks, "remote")
    if server.kind != "local":
        assert "refused the connection" in detail
    assert "key matches remote" not in checks
    assert checks["config"][0] == checks["key"][0] == "✓"


def test_generated_rclone_conf_deleted(local_server: Server, make_device) -> None:
    device = make_device("a")
    init(device, local_server)
    (device.sync_home / "rclone.conf").unlink()
    code, checks = doctor(device)
    assert code == 1
    assert "not defined in the rclone config" in assert_failed_with_hint(checks, "remote")


def test_nothing_set_up(make_device) -> None:
    device = make_device("a")
    code, checks = doctor(device)
    assert code == 1
    assert "claude-sync init" in assert_failed_with_hint(checks, "config")
    assert_failed_with_hint(checks, "key")
    assert checks["rclone"][0] == "✓"
    assert "remote" not in checks


def test_rclone_missing(local_server: Server, make_device) -> None:
    device = make_device("a")
    init(device, local_server)
    code, checks = doctor(device, CLAUDE_SYNC_RCLONE="/nonexistent")
    assert code == 1
    assert "/nonexistent" in assert_failed_with_hint(checks, "rclone")
    assert_failed_with_hint(checks, "remote")


def test_rclone_check_uses_the_configured_binary(
    local_server: Server, make_device, tmp_path: Path
) -> None:
    device = make_device("a")
    init(device, local_server)
    mine = tmp_path / "bin" / "rclone"
    mine.parent.mkdir()
    mine.symlink_to(Path(sys.executable).parent / "rclone")
    config = device.sync_home / "config.yaml"
    document = yaml.safe_load(config.read_text())
    document["rclone"]["binary"] = str(mine)
    config.write_text(yaml.safe_dump(document))

    code, checks = doctor(device)
    assert code == 0
    assert f"({mine})" in checks["rclone"][1]


def test_doctor_names_another_claude_sync_that_the_hooks_would_run(
    local_server: Server, make_device, tmp_path: Path
) -> None:
    device = make_device("a")
    init(device, local_server)
    device.claude.mkdir()
    device.ok("install")
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "claude-sync").write_text("#!/bin/sh\nexit 0\n")
    (other / "claude-sync").chmod(0o755)
    code, checks = doctor(device, PATH=f"{other}{os.pathsep}{BIN}")
    assert code == 1
    assert str(other / "claude-sync") in assert_failed_with_hint(checks, "hook command")

    code, checks = doctor(device, PATH=str(other.parent / "nowhere"))
    assert "not on PATH" in assert_failed_with_hint(checks, "hook command")


def test_doctor_says_when_the_hook_timeout_no_longer_follows_the_config(
    local_server: Server, make_device
) -> None:
    device = make_device("a")
    init(device, local_server)
    device.claude.mkdir()
    device.ok("install")
    config = device.sync_home / "config.yaml"
    document = yaml.safe_load(config.read_text())
    document["hooks"] = {"pull_timeout": 9}
    config.write_text(yaml.safe_dump(document))
    _, checks = doctor(device, PATH=BIN + os.pathsep + os.environ["PATH"])
    mark, detail = checks["hooks"]
    assert mark == "!" and "claude-sync install" in detail
    device.ok("install")
    _, checks = doctor(device, PATH=BIN + os.pathsep + os.environ["PATH"])
    assert checks["hooks"][0] == "✓"
