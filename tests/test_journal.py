"""Format 2's journal: authenticated entries, rollback and copied homes, through a real
remote."""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil

import pytest
from conftest import RCLONE, joined, put, remote_bytes
from hypothesis import given, settings
from hypothesis import strategies as st
from servers import Server, start_server

from claude_sync import crypto
from claude_sync.journal import (
    DELTA,
    SNAPSHOT,
    JournalEntry,
    decode_entry,
    encode_entry,
    entry_name,
)
from claude_sync.keys import read_key_file
from claude_sync.versions import Segment, Version, VersionVector


def journal_of(server: Server, device) -> list:
    config = (device.sync_home / "config.yaml").read_text()
    device_id = config.split("id: ", 1)[1].split()[0]
    return sorted((server.data_dir / "journal" / device_id).iterdir())


def test_entries_are_deltas_and_a_snapshot_starts_each_journal(
    local_server: Server, make_device
) -> None:
    a, b = (joined(make_device(name), local_server) for name in "ab")
    for index in range(5):
        put(a, f"agents/{index}.md", f"agent {index}\n", index)
    a.ok("push")
    [first] = journal_of(local_server, a)
    put(a, "agents/0.md", "changed\n", 10)
    a.ok("push")
    identity = read_key_file(a.sync_home / "age-key.txt")
    entries = [
        json.loads(crypto.decrypt_bytes(p.read_bytes(), identity))
        for p in journal_of(local_server, a)
    ]
    assert [(e["seq"], e["kind"], len(e["files"])) for e in entries] == [
        (1, SNAPSHOT, 5),
        (2, DELTA, 1),
    ]
    assert journal_of(local_server, a)[0] == first
    b.ok("pull")
    assert b.read("agents/0.md") == b"changed\n"
    # Once the deltas name more paths than the snapshot holds, a snapshot replaces them.
    for index in range(5):
        put(a, f"agents/{index}.md", f"round two {index}\n", 20 + index)
        a.ok("push")
    kinds = [
        json.loads(crypto.decrypt_bytes(p.read_bytes(), identity))["kind"]
        for p in journal_of(local_server, a)
    ]
    assert kinds[0] == SNAPSHOT and len(kinds) < 7
    b.ok("pull")
    assert b.read("agents/4.md") == b"round two 4\n"


def forged_entry(server: Server, device, key: bytes, seq: int) -> None:
    """An entry deleting CLAUDE.md, MAC'd with `key`, encrypted to the (public) recipient."""
    identity = read_key_file(device.sync_home / "age-key.txt")
    [folder] = (server.data_dir / "journal").iterdir()
    tombstone = Version("", 0, 2 * 10**18, VersionVector.of({folder.name: 99}), folder.name, True)
    entry = JournalEntry(folder.name, "a", seq, DELTA, "", "x", 0, {"CLAUDE.md": tombstone})
    data = crypto.encrypt_bytes(encode_entry(entry, key), identity.to_public())
    (folder / entry_name(seq)).write_bytes(data)


@pytest.mark.parametrize("key", ["public", "none"])
def test_an_entry_forged_with_the_public_key_alone_is_refused(
    local_server: Server, make_device, key: str
) -> None:
    a, b = (joined(make_device(name), local_server) for name in "ab")
    put(a, "CLAUDE.md", "mine\n", 1)
    a.ok("push")
    b.ok("pull")
    public = str(read_key_file(a.sync_home / "age-key.txt").to_public()).encode()
    forged_entry(local_server, a, public if key == "public" else b"", 2)
    for device in (a, b):
        result = device.run("pull")
        assert result.exit_code == 1
        assert "fails its authentication (forged, or altered): refused" in result.output
        assert device.read("CLAUDE.md") == b"mine\n"


def rolled_back(server: Server, make_device) -> tuple:
    """A pushed CLAUDE.md "one", then "two", which B pulled; then the remote's journal was
    restored from a backup taken between the two."""
    a, b = (joined(make_device(name), server) for name in "ab")
    put(a, "CLAUDE.md", "one\n", 1)
    a.ok("push")
    saved = server.data_dir.parent / "saved"
    shutil.copytree(server.data_dir / "journal", saved)
    put(a, "CLAUDE.md", "two\n", 2)
    a.ok("push")
    b.ok("pull")
    shutil.rmtree(server.data_dir / "journal")
    shutil.copytree(saved, server.data_dir / "journal")
    return a, b


def test_a_rolled_back_journal_is_refused(local_server: Server, make_device) -> None:
    a, b = rolled_back(local_server, make_device)
    restored = dict(remote_bytes(local_server))
    for device in (a, b):
        result = device.run("pull")
        assert result.exit_code == 1
        assert "the remote was rolled back for device a" in result.output
        assert "run `claude-sync push --all` on a" in result.output
    assert b.read("CLAUDE.md") == b"two\n"
    assert dict(remote_bytes(local_server)) == restored  # nothing was written over it


def test_the_machine_a_home_was_copied_from_is_never_the_one_locked_out(
    local_server: Server, make_device
) -> None:
    """The copy pushes first; the original goes on; the copy is then told to stop, and
    what it pushed meanwhile reaches the original."""
    a = joined(make_device("a"), local_server)
    put(a, "settings.json", "{}\n", 1)
    a.ok("push")
    b = make_device("b")
    shutil.copytree(a.sync_home, b.sync_home)
    put(b, "agents/b.md", "only on the copy\n", 2)
    b.ok("push")
    put(a, "agents/a.md", "on the original\n", 3)
    a.ok("sync")
    assert a.read("agents/b.md") == b"only on the copy\n"
    result = b.run("pull")
    assert result.exit_code == 1
    assert "another machine writes as this device (a) and this home is the later copy" in (
        result.output
    )
    put(a, "agents/a.md", "on the original, again\n", 4)
    a.ok("sync")
    assert a.read("agents/a.md") == b"on the original, again\n"


def test_push_all_is_the_way_back_after_a_rollback(local_server: Server, make_device) -> None:
    a, b = rolled_back(local_server, make_device)
    assert b.run("pull").exit_code == 1
    a.ok("push", "--all")
    assert "Already up to date" in b.ok("pull")
    assert a.read("CLAUDE.md") == b.read("CLAUDE.md") == b"two\n"
    put(b, "CLAUDE.md", "three\n", 3)
    b.ok("push")
    a.ok("pull")
    assert a.read("CLAUDE.md") == b"three\n"


@pytest.fixture
def webdav_server(tmp_path):
    started = start_server("webdav", tmp_path / "server-webdav", RCLONE)
    yield started
    started.stop()


def test_same_second_same_size_pushes_on_webdav_are_never_lost(
    webdav_server: Server, make_device
) -> None:
    """WebDAV keeps 1 s modification times: format 1 lost a manifest written in the same
    second with the same size as the one before. Entries have new names."""
    a, b = (joined(make_device(name), webdav_server) for name in "ab")
    for turn in range(6):
        a.write("settings.json", f'{{"turn": {turn}}}\n')  # the same size every time
        assert "1 uploaded" in a.ok("push")
        b.ok("pull")
        assert b.read("settings.json") == f'{{"turn": {turn}}}\n'.encode()


def test_a_replayed_older_entry_changes_nothing(local_server: Server, make_device) -> None:
    """An entry deleted below a snapshot, put back (a storage provider replaying an old
    write), is below the device's newest snapshot: no device reads it."""
    a, b = (joined(make_device(name), local_server) for name in "ab")
    put(a, "CLAUDE.md", "one\n", 1)
    a.ok("push")
    [first] = journal_of(local_server, a)
    old = first.read_bytes()
    for turn in range(2, 5):  # deltas outgrow the one-path snapshot: a new snapshot
        put(a, "CLAUDE.md", f"v{turn}\n", turn)
        a.ok("push")
    assert first not in journal_of(local_server, a)
    b.ok("pull")
    first.write_bytes(old)
    assert "Already up to date" in b.ok("pull")
    assert b.read("CLAUDE.md") == b"v4\n"
    c = joined(make_device("c"), local_server)
    c.ok("pull")
    assert c.read("CLAUDE.md") == b"v4\n"


@settings(max_examples=60, deadline=None)
@given(
    names=st.lists(st.text("abé中 _-'\"\u2028", min_size=1, max_size=12), max_size=6, unique=True),
    name=st.text(max_size=8),
)
def test_an_entry_is_the_canonical_json_of_its_fields_and_mac(names: list[str], name: str) -> None:
    """The entry is serialized once with its MAC; what is stored must be exactly the
    canonical JSON of the whole, MAC included, and the MAC that of the rest."""
    key = b"k" * 32
    segments = (Segment("cd" * 32, 3),)
    version = Version("ab" * 32, 3, 5, VersionVector.of({"d": 1}), "d", False, segments, 0o644)
    files = {f"agents/{one}.md": version for one in names}
    entry = JournalEntry("d", name, 7, DELTA, "now", "i", 1, files)
    data = encode_entry(entry, key)
    document = json.loads(data)
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert data == canonical.encode()
    mac = document.pop("mac")
    unsigned = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert mac == hmac.new(key, unsigned.encode(), hashlib.sha256).hexdigest()
    assert decode_entry(data, key, "d", 7).files == entry.files
