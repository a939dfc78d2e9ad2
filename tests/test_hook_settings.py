"""`install` / `uninstall`: our hooks merged into Claude Code's settings.json and taken out
again, everything else kept; hook stdin parsing."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

import pytest
from conftest import Device

from claude_sync.hook_settings import (
    PULL_COMMAND,
    PUSH_COMMAND,
    installed_hooks,
    with_ours,
    without_ours,
)
from claude_sync.hooks import HookInput, parse_hook_input

THEIRS = {
    "model": "opus",
    "permissions": {"allow": ["Bash(ls:*)"]},
    "hooks": {
        "SessionStart": [
            {"matcher": "startup", "hooks": [{"type": "command", "command": "echo start"}]}
        ],
        "Stop": [{"hooks": [{"type": "command", "command": "notify-send done", "timeout": 3}]}],
        "PreToolUse": [
            {"matcher": "Bash", "hooks": [{"type": "command", "command": "./check.sh"}]}
        ],
    },
}


def test_install_adds_ours_beside_theirs_and_uninstall_restores_exactly() -> None:
    installed = with_ours(THEIRS, on_stop=True, pull_timeout=5)
    assert installed_hooks(installed) == {
        "SessionStart": PULL_COMMAND,
        "SessionEnd": PUSH_COMMAND,
        "Stop": PUSH_COMMAND,
    }
    assert installed["model"] == "opus" and installed["permissions"] == THEIRS["permissions"]
    assert installed["hooks"]["SessionStart"][0] == THEIRS["hooks"]["SessionStart"][0]
    assert installed["hooks"]["PreToolUse"] == THEIRS["hooks"]["PreToolUse"]
    ours = installed["hooks"]["SessionStart"][1]["hooks"][0]
    assert ours == {"type": "command", "command": PULL_COMMAND, "timeout": 10}
    assert without_ours(installed) == THEIRS


def test_install_is_idempotent_and_follows_on_stop() -> None:
    once = with_ours(THEIRS, on_stop=False, pull_timeout=5)
    assert with_ours(once, on_stop=False, pull_timeout=5) == once
    with_stop = with_ours(once, on_stop=True, pull_timeout=5)
    assert "Stop" in installed_hooks(with_stop)
    assert len(with_stop["hooks"]["SessionEnd"]) == 1
    assert "Stop" not in installed_hooks(with_ours(with_stop, on_stop=False, pull_timeout=5))
    assert (
        with_ours(once, on_stop=False, pull_timeout=9)["hooks"]["SessionStart"][1]["hooks"][0][
            "timeout"
        ]
        == 14
    )


def test_uninstall_keeps_other_hooks_in_a_group_we_share() -> None:
    shared = {
        "hooks": {
            "SessionEnd": [
                {
                    "hooks": [
                        {"type": "command", "command": "echo bye"},
                        {"type": "command", "command": PUSH_COMMAND, "timeout": 5},
                    ]
                }
            ]
        }
    }
    assert without_ours(shared) == {
        "hooks": {"SessionEnd": [{"hooks": [{"type": "command", "command": "echo bye"}]}]}
    }
    assert without_ours({"hooks": {}}) == {"hooks": {}}  # not ours to remove
    assert without_ours({}) == {}


def test_install_and_uninstall_through_the_cli(make_device) -> None:
    device: Device = make_device("a")
    settings = device.write("settings.json", json.dumps(THEIRS, indent=4))
    settings.chmod(0o640)
    assert "installed" in device.ok("install", "--on-stop")
    document = json.loads(settings.read_text())
    assert set(installed_hooks(document)) == {"SessionStart", "SessionEnd", "Stop"}
    assert stat.S_IMODE(settings.stat().st_mode) == 0o640
    assert "already installed" in device.ok("install", "--on-stop")
    assert "removed" in device.ok("uninstall")
    assert json.loads(settings.read_text()) == THEIRS
    assert "no claude-sync hooks" in device.ok("uninstall")
    assert not list(device.claude.glob(".settings.json.*"))


def test_install_creates_a_private_settings_file(make_device) -> None:
    device: Device = make_device("a")
    device.ok("install")
    settings = device.claude / "settings.json"
    assert stat.S_IMODE(settings.stat().st_mode) == 0o600
    assert set(installed_hooks(json.loads(settings.read_text()))) == {
        "SessionStart",
        "SessionEnd",
    }


@pytest.mark.parametrize(
    "content",
    ['{"model": "opus",', "[1, 2]", '{"hooks": []}', '{"hooks": {"Stop": {}}}', "\x00\x01"],
)
def test_a_malformed_settings_file_is_refused_and_left_alone(make_device, content: str) -> None:
    device: Device = make_device("a")
    settings = device.write("settings.json", content)
    for command in ("install", "uninstall"):
        result = device.run(command)
        assert result.exit_code == 2, result.output
        assert "settings.json" in result.output and "left unchanged" in result.output
        assert len(result.output.strip().splitlines()) == 1
        assert settings.read_text() == content


def test_hook_input_is_parsed_tolerantly() -> None:
    full = {
        "session_id": "s1",
        "transcript_path": "/h/.claude/projects/-h-app/s1.jsonl",
        "cwd": "/h/app",
        "hook_event_name": "SessionStart",
        "source": "resume",
        "extra": {"nested": True},
    }
    assert parse_hook_input(json.dumps(full)) == HookInput("s1", "SessionStart", "resume", None)
    assert parse_hook_input('{"session_id": 7, "reason": "exit"}') == HookInput(reason="exit")
    for junk in ("", "   ", "not json", "[1]", "null", '"text"'):
        assert parse_hook_input(junk) == HookInput()


def test_hook_commands_are_silent_where_claude_sync_is_missing(tmp_path: Path) -> None:
    """settings.json travels to devices without claude-sync: the hooks must do nothing there."""
    for command in (PULL_COMMAND, PUSH_COMMAND):
        done = subprocess.run(
            ["/bin/sh", "-c", command],
            env={"PATH": str(tmp_path)},
            input=b'{"session_id": "x"}',
            capture_output=True,
            check=False,
        )
        assert (done.returncode, done.stdout, done.stderr) == (0, b"", b"")


def test_hooks_with_commands_that_are_not_text_are_kept_not_fatal() -> None:
    odd = {"hooks": {"Stop": [{"hooks": [{"type": "command", "command": ["a", "b"]}]}]}}
    installed = with_ours(odd, on_stop=False, pull_timeout=5)
    assert installed["hooks"]["Stop"] == odd["hooks"]["Stop"]
    assert without_ours(installed) == odd


def test_a_linked_settings_file_is_written_through_the_link(make_device, tmp_path: Path) -> None:
    device: Device = make_device("a")
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    (dotfiles / "settings.json").write_text('{"model": "opus"}')
    device.claude.mkdir()
    (device.claude / "settings.json").symlink_to(dotfiles / "settings.json")
    device.ok("install")
    assert (device.claude / "settings.json").is_symlink()
    assert "SessionStart" in installed_hooks(json.loads((dotfiles / "settings.json").read_text()))


def test_a_read_only_settings_file_is_refused(make_device) -> None:
    device: Device = make_device("a")
    settings = device.write("settings.json", '{"model": "opus"}')
    settings.chmod(0o444)
    result = device.run("install")
    assert result.exit_code == 2 and "read-only" in result.output
    assert settings.read_text() == '{"model": "opus"}'
