"""Migrating a format-1 remote, written by the last format-1 release, to format 2.

tests/data/format1 holds what that release wrote (tests/data/format1/make.sh made it): a
local remote and the homes of its two devices, laptop (a) and desktop (b), made under
/tmp/f1; each test copies it and points the homes at the copy.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest
from conftest import Device, tree

from claude_sync.keys import KDF_SALT
from claude_sync.remote import Remote

FIXTURE = Path(__file__).parent / "data" / "format1"
FIXTURE_PASSPHRASE = "format one fixture passphrase"
MADE_UNDER = "/tmp/f1"


def format1(tmp_path: Path) -> tuple[Path, Device, Device]:
    """The fixture's remote and its two devices, copied under tmp_path."""
    root = tmp_path / "f1"
    shutil.copytree(FIXTURE, root, symlinks=True)
    for home in ("a", "b"):
        config = root / home / ".claude-sync" / "config.yaml"
        config.write_text(config.read_text().replace(MADE_UNDER, str(root)))
        state = root / home / ".claude-sync" / "state.json"
        old_root = f'"remote_root":"claude-sync:{MADE_UNDER}/remote"'
        state.write_text(
            state.read_text().replace(old_root, old_root.replace(MADE_UNDER, str(root)))
        )
    return root / "remote", Device("a", root / "a"), Device("b", root / "b")


def run(device: Device, *args: str, exit_code: int = 0) -> str:
    return device.ok(*args, exit_code=exit_code, CLAUDE_SYNC_PASSPHRASE=FIXTURE_PASSPHRASE)


def test_a_format1_remote_is_refused_until_migrated(tmp_path: Path) -> None:
    _, a, _ = format1(tmp_path)
    a.write("commands/new.md", "to push\n")
    for command in ("pull", "push", "sync", "verify", "devices"):
        result = a.run(command)
        assert result.exit_code == 1, result.output
        assert "the remote uses format 1: run `claude-sync migrate`" in result.output


def test_migration_keeps_every_device_and_file(tmp_path: Path, make_device) -> None:
    remote, a, b = format1(tmp_path)
    before_a, before_b = tree(a.claude), tree(b.claude)
    output = run(a, "migrate")
    assert "laptop: " in output and "desktop: " in output
    assert "✓ Migrated to format 2: 2 devices moved to the journal" in output
    assert not (remote / "manifests").exists()
    marker = json.loads((remote / "CLAUDE-SYNC.json").read_text())
    assert marker["format"] == 2
    assert base64.b64decode(marker["kdf"]["salt"]) == KDF_SALT
    assert len(list((remote / "journal").iterdir())) == 2

    # desktop made the last change; laptop had not pulled it yet
    assert "Pull complete: 1 downloaded" in run(a, "pull")
    assert a.read("CLAUDE.md") == b"# notes\nfrom the desktop\n"
    assert "Already up to date" in run(b, "pull")
    assert "Nothing to push" in run(a, "push") and "Nothing to push" in run(b, "push")
    assert tree(b.claude) == before_b
    assert tree(a.claude) == before_b
    assert before_a != before_b

    a.write("commands/new.md", "after the migration\n")
    assert "1 uploaded" in run(a, "push")
    run(b, "pull")
    assert b.read("commands/new.md") == b"after the migration\n"

    c = make_device("c")
    init = ["init", "--local", str(remote), "--device-name", "c", "--yes"]
    assert "joined the existing remote" in run(c, *init)
    run(c, "pull")
    assert tree(c.claude) == tree(b.claude)
    doctor = c.run("doctor", CLAUDE_SYNC_PASSPHRASE=FIXTURE_PASSPHRASE).output
    assert "! remote format: format 2, migrated from format 1" in doctor
    assert "✓ The remote is in format 2 already" in run(c, "migrate")


@pytest.mark.parametrize("step", ["write_entry", "write_marker", "delete_manifests"])
def test_an_interrupted_migration_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    """Interrupted at each step (as by a kill: the call that would happen next never
    does), migrate run again finishes the job, and every device syncs."""
    remote, a, b = format1(tmp_path)
    from claude_sync.actions import migrate as migrate_action

    owner = migrate_action if step == "write_entry" else Remote
    real = getattr(owner, step)
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(step)
        if len(calls) == (2 if step == "write_entry" else 1):
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    with monkeypatch.context() as patched:
        patched.setattr(owner, step, interrupted)
        assert a.run("migrate", CLAUDE_SYNC_PASSPHRASE=FIXTURE_PASSPHRASE).exit_code != 0
    output = run(b, "migrate")
    if step == "delete_manifests":
        assert "removed manifests/, left by an interrupted migration" in output
    else:
        assert "✓ Migrated to format 2" in output
    assert not (remote / "manifests").exists()
    assert {len(list(p.iterdir())) for p in (remote / "journal").iterdir()} == {1}
    run(a, "sync")
    run(b, "sync")
    assert tree(a.claude) == tree(b.claude)
    assert a.read("CLAUDE.md") == b"# notes\nfrom the desktop\n"
    assert "Nothing to push" in run(a, "push")
