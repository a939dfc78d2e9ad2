"""A pull costs what changed: with no new journal entries it decodes none. Two devices on
a local-folder remote, real files, the real rclone; the work a pull does is counted by
wrapping the functions that do it, never timed."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from conftest import Device, joined, put
from servers import Server

from claude_sync import journal, remote_view


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """How many entries a run decodes."""
    calls: Counter = Counter()

    def decode_entry(*args, **kwargs):
        calls["entries"] += 1
        return journal.decode_entry(*args, **kwargs)

    monkeypatch.setattr(remote_view, "decode_entry", decode_entry)
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


def test_a_pull_with_no_new_entries_decodes_none(
    local_server: Server, make_device, counted: Counter
) -> None:
    a, b = settled_pair(local_server, make_device)
    put(a, "CLAUDE.md", "two\n", 10)
    a.ok("push")
    b.ok("pull")
    counted.clear()
    assert "Already up to date" in b.ok("pull")
    assert counted["entries"] == 0


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
