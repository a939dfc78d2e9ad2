"""Space on the remote and in trash/: `prune`, `trash.keep_days` and `devices forget`, with
the real rclone against a local folder and a loopback S3 server.

prune spares objects younger than an hour (a push uploads its objects before its manifest).
Tests that need older objects either age them on a local remote's disk (os.utime: the age
rclone reports is the file's), or call the action with a shorter grace period.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import time
from pathlib import Path

import pytest
import yaml
from conftest import Device, joined, put, remote_bytes, stamped, tree
from servers import Server

from claude_sync import crypto
from claude_sync.actions import prune as prune_action
from claude_sync.actions.devices import only_copies
from claude_sync.files import size_text
from claude_sync.keys import object_name
from claude_sync.remote import _seconds, object_path
from claude_sync.versions import Segment, Version, VersionVector
from claude_sync.workspace import Workspace, load_workspace

HOUR = 60 * 60


# helpers ---------------------------------------------------------------------------


def workspace(device: Device, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    for name, value in device.environment().items():
        monkeypatch.setenv(name, value)
    return load_workspace(device.sync_home)


def prune_now(
    device: Device, monkeypatch: pytest.MonkeyPatch, dry_run: bool = False
) -> prune_action.Pruned:
    """Prune as `device` with no grace period: every object no view names goes."""
    return prune_action.prune(workspace(device, monkeypatch), dry_run, grace_seconds=0)


def objects(server: Server) -> dict[str, Path]:
    """Object name -> its file in the server's folder (local or behind S3)."""
    return {
        path.name[: -len(".age")]: path
        for path in server.data_dir.rglob("*.age")
        if path.parent.parent.name == "objects"
    }


def object_of(device: Device, plaintext: bytes, monkeypatch: pytest.MonkeyPatch) -> str:
    ws = workspace(device, monkeypatch)
    return object_name(ws.name_key, hashlib.sha256(plaintext).hexdigest())


def age_objects(server: Server, seconds: int) -> None:
    """Date every object on a local remote `seconds` earlier than now."""
    assert server.kind == "local"
    when = time.time() - seconds
    for path in objects(server).values():
        os.utime(path, (when, when))


def upload_without_manifest(
    device: Device, data: bytes, monkeypatch: pytest.MonkeyPatch, encrypted_ago: int = 0
) -> str:
    """What a push in flight has done: its object is on the remote, its manifest not yet.
    `encrypted_ago`: seconds since the push encrypted it (a long push)."""
    ws = workspace(device, monkeypatch)
    name = object_name(ws.name_key, hashlib.sha256(data).hexdigest())
    staging = device.home / "in-flight"
    encrypted = staging / object_path(name)
    encrypted.parent.mkdir(parents=True)
    encrypted.write_bytes(crypto.encrypt_bytes(data, ws.recipient))
    when = time.time() - encrypted_ago
    os.utime(encrypted, (when, when))
    ws.remote.upload_objects(staging, [name])
    return name


def device_id(device: Device) -> str:
    return yaml.safe_load((device.sync_home / "config.yaml").read_text())["device"]["id"]


def journal_of(server: Server, device: Device) -> Path:
    return server.data_dir / "journal" / device_id(device)


def set_keep_days(device: Device, value: object) -> None:
    config = device.sync_home / "config.yaml"
    document = yaml.safe_load(config.read_text())
    document["trash"] = {"keep_days": value}
    config.write_text(yaml.safe_dump(document))


def trash_folder(device: Device, days_ago: float, suffix: str = "") -> Path:
    """trash/<time><suffix>/ named as keep_in_trash names it, `days_ago` days back."""
    when = datetime.datetime.now() - datetime.timedelta(days=days_ago)
    folder = device.sync_home / "trash" / (when.strftime("%Y%m%d-%H%M%S") + suffix)
    (folder / "agents").mkdir(parents=True)
    (folder / "agents" / "old.md").write_text("replaced by a pull\n")
    return folder


def one_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


# pure parts -------------------------------------------------------------------------------


def version(content: str, deleted: bool = False, **vector: int) -> Version:
    if deleted:
        return Version("", 0, 0, VersionVector.of(vector), "x", deleted=True)
    sha256 = hashlib.sha256(content.encode()).hexdigest()
    size = len(content)
    return Version(sha256, size, 0, VersionVector.of(vector), "x", False, (Segment(sha256, size),))


def test_only_copies_are_live_versions_no_other_device_holds_or_superseded() -> None:
    retired = {
        "same.md": version("one", a=1),
        "superseded.md": version("old", a=1),
        "deleted-since.md": version("old", a=1),
        "same-bytes-made-apart.md": version("equal", a=1),
        "newer-here.md": version("newer", a=2),
        "concurrent.md": version("mine", a=1),
        "only-here.md": version("alone", a=1),
        "its-deletion.md": version("", deleted=True, a=2),
    }
    other = {
        "same.md": version("one", a=1),
        "superseded.md": version("new", a=1, b=1),
        "deleted-since.md": version("", deleted=True, a=1, b=1),
        "same-bytes-made-apart.md": version("equal", b=1),
        "newer-here.md": version("older", a=1),
        "concurrent.md": version("theirs", b=1),
        "its-deletion.md": version("kept", a=1),
    }
    assert only_copies(retired, [other]) == ["concurrent.md", "newer-here.md", "only-here.md"]
    assert only_copies(retired, [other, {"only-here.md": version("alone", a=1)}]) == [
        "concurrent.md",
        "newer-here.md",
    ]


def test_remote_times_are_read_to_the_nanosecond_and_unknown_ones_never_age() -> None:
    assert _seconds("2020-01-01T00:00:00Z") == 1577836800
    assert _seconds("2020-01-01T01:00:00.5+01:00") == 1577836800.5
    assert abs(_seconds("2020-01-01T00:00:00.123456789Z") - 1577836800.123456789) < 1e-6
    assert _seconds("2999-01-01T00:00:00Z") > time.time() + 900 * 365 * 24 * HOUR
    assert _seconds("yesterday") == float("inf")


# prune -------------------------------------------------------------------------------


def test_prune_deletes_a_replaced_object_and_every_device_still_pulls(
    local_or_s3_server: Server, make_device, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = local_or_s3_server
    a, b = (joined(make_device(name), server) for name in "ab")
    put(a, "settings.json", '{"theme": "first"}\n', 0)
    put(a, "agents/helper.md", "# helper\n", 1)
    put(a, "projects/-p/s.jsonl", '{"n": 1}\n', 2)
    a.ok("push")
    b.ok("pull")
    put(a, "settings.json", '{"theme": "second"}\n', 10)
    a.ok("push")
    b.ok("pull")
    old = object_of(a, b'{"theme": "first"}\n', monkeypatch)
    before = objects(server)
    assert len(before) == 4 and old in before
    size = before[old].stat().st_size

    result = prune_now(a, monkeypatch)

    assert (result.deleted, result.size, result.young) == (1, size, 0)
    assert set(objects(server)) == set(before) - {old}
    assert "Already up to date" in b.ok("pull")
    c = joined(make_device("c"), server)
    c.ok("pull")
    assert stamped(c.claude) == stamped(a.claude)
    assert c.read("settings.json") == b'{"theme": "second"}\n'
    assert "No problems" in b.ok("verify", "--deep")
    assert "Nothing to prune" in a.ok("prune")


def test_an_object_younger_than_the_grace_period_survives(
    local_or_s3_server: Server, make_device, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = local_or_s3_server
    a = joined(make_device("a"), server)
    put(a, "CLAUDE.md", "# notes\n", 0)
    a.ok("push")
    in_flight = upload_without_manifest(a, b"# notes, on their way\n", monkeypatch)

    output = a.ok("prune")

    assert "Nothing to prune; 1 unused object kept, younger than 60 minutes" in output
    assert in_flight in objects(server)
    # Its age alone spared it: with no grace period it goes.
    assert prune_now(a, monkeypatch).deleted == 1
    assert in_flight not in objects(server)
    assert "No problems" in a.ok("verify", "--deep")


def test_prune_goes_by_the_remote_age_of_each_object(
    local_server: Server, make_device, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = joined(make_device("a"), local_server)
    put(a, "CLAUDE.md", "# first\n", 0)
    a.ok("push")
    put(a, "CLAUDE.md", "# second\n", 10)
    a.ok("push")
    replaced = object_of(a, b"# first\n", monkeypatch)
    age_objects(local_server, 2 * HOUR)
    # A long push: encrypted two hours ago, sent now. Its age counts from the sending.
    in_flight = upload_without_manifest(a, b"# third, on its way\n", monkeypatch, 2 * HOUR)

    output = a.ok("prune")

    assert "✓ Pruned 1 object" in output and "1 unused object kept" in output, output
    assert replaced not in objects(local_server)
    assert in_flight in objects(local_server)
    assert a.read("CLAUDE.md") == b"# second\n"
    assert "No problems" in a.ok("verify", "--deep")


def test_dry_run_counts_and_deletes_nothing(
    local_server: Server, make_device, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = joined(make_device("a"), local_server)
    put(a, "CLAUDE.md", "# first\n" * 500, 0)
    put(a, "agents/gone.md", "# deleted later\n", 1)
    a.ok("push")
    put(a, "CLAUDE.md", "# second\n", 10)
    (a.claude / "agents" / "gone.md").unlink()
    a.ok("push")
    age_objects(local_server, 2 * HOUR)
    replaced = (b"# first\n" * 500, b"# deleted later\n")
    unused = {object_of(a, data, monkeypatch) for data in replaced}
    size = sum(objects(local_server)[name].stat().st_size for name in unused)
    before = list(remote_bytes(local_server))

    output = a.ok("prune", "--dry-run")

    assert output.strip() == f"(dry run) prune would delete 2 objects ({size_text(size)})"
    assert list(remote_bytes(local_server)) == before
    assert a.ok("prune").strip() == f"✓ Pruned 2 objects ({size_text(size)})"
    assert set(objects(local_server)) == {object_of(a, b"# second\n", monkeypatch)}


def test_prune_refuses_when_a_manifest_cannot_be_read(
    local_server: Server, make_device, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = (joined(make_device(name), local_server) for name in "ab")
    put(a, "CLAUDE.md", "# first\n", 0)
    a.ok("push")
    put(a, "CLAUDE.md", "# second\n", 10)
    a.ok("push")
    put(b, "agents/b.md", "# from b\n", 20)
    b.ok("push")
    age_objects(local_server, 2 * HOUR)
    newest = sorted(journal_of(local_server, b).iterdir())[-1]
    newest.write_bytes(b"age-encryption.org/v1\nnot an entry\n")
    before = list(remote_bytes(local_server))

    result = a.run("prune")

    assert result.exit_code == 1, result.output
    line = one_line(result)
    assert line.startswith("Error: nothing pruned") and f"journal/{device_id(b)}/" in line
    assert list(remote_bytes(local_server)) == before


# what a push publishes after a prune ------------------------------------------------------


def test_a_file_grown_from_a_pruned_version_is_sent_whole(
    local_server: Server, make_device, monkeypatch: pytest.MonkeyPatch
) -> None:
    """B pulled A's CLAUDE.md, A replaced it, prune deleted the old object; B's version
    grown from the old one must not name that object."""
    a, b = (joined(make_device(name), local_server) for name in "ab")
    put(a, "CLAUDE.md", "# one\n", 0)
    a.ok("push")
    b.ok("pull")
    put(a, "CLAUDE.md", "# rewritten on a\n", 10)
    a.ok("push")
    assert prune_now(a, monkeypatch).deleted == 1

    put(b, "CLAUDE.md", "# one\n# two, on b\n", 20)
    b.ok("push")

    assert "No problems" in a.ok("verify", "--deep")
    a.ok("pull", exit_code=3)  # both changed CLAUDE.md: the later (b's) wins, a's is a copy
    assert a.read("CLAUDE.md") == b"# one\n# two, on b\n"


def test_a_push_does_not_publish_a_pulled_version_pruned_since(
    local_server: Server, make_device, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = (joined(make_device(name), local_server) for name in "ab")
    put(a, "settings.json", '{"v": 1}\n', 0)
    a.ok("push")
    b.ok("pull")
    put(a, "settings.json", '{"v": 2}\n', 10)
    a.ok("push")
    assert prune_now(a, monkeypatch).deleted == 1

    put(b, "agents/b.md", "# made on b\n", 20)  # pushed before B pulls settings.json again
    b.ok("push")

    assert "No problems" in a.ok("verify", "--deep")
    assert "Already up to date" not in b.ok("pull")
    assert b.read("settings.json") == b'{"v": 2}\n'
    c = joined(make_device("c"), local_server)
    c.ok("pull")
    assert stamped(c.claude) == stamped(b.claude)


# trash.keep_days ------------------------------------------------------------------------


def test_a_pull_removes_trash_folders_older_than_keep_days(
    local_server: Server, make_device
) -> None:
    a = joined(make_device("a"), local_server)
    old = trash_folder(a, 31)
    old_second = trash_folder(a, 40, "-2")
    young = trash_folder(a, 29)
    recent = trash_folder(a, 0.01)
    other = a.sync_home / "trash" / "kept-by-hand"
    other.mkdir()

    a.ok("pull", "--dry-run")
    assert all(folder.exists() for folder in (old, old_second, young, recent))
    output = a.ok("pull")

    assert not old.exists() and not old_second.exists()
    assert young.exists() and recent.exists() and other.exists()
    assert "removed 2 folders of" in output and "older than 30 days" in output, output

    set_keep_days(a, 10)
    put(a, "CLAUDE.md", "# notes\n", 0)
    a.ok("push")
    assert not young.exists()
    assert recent.exists() and other.exists()
    set_keep_days(a, 0)
    a.ok("push")
    assert not recent.exists() and other.exists()


def test_a_replaced_file_stays_in_trash_until_keep_days_have_passed(
    local_server: Server, make_device
) -> None:
    a, b = (joined(make_device(name), local_server) for name in "ab")
    set_keep_days(b, 0)
    put(a, "CLAUDE.md", "# first\n", 0)
    a.ok("push")
    put(b, "CLAUDE.md", "# b's own, older\n", -10)
    b.ok("pull")  # b has no record of its copy: the remote's replaces it, into trash/
    kept = tree(b.sync_home / "trash")
    assert list(kept.values()) == [b"# b's own, older\n"], kept
    b.ok("pull")
    assert tree(b.sync_home / "trash") == {}


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (-1, "`trash.keep_days` must be a number of days, 0 or more"),
        ("soon", "`trash.keep_days` must be a int"),
    ],
)
def test_keep_days_is_a_non_negative_integer(
    local_server: Server, make_device, value: object, words: str
) -> None:
    a = joined(make_device("a"), local_server)
    set_keep_days(a, value)
    result = a.run("pull")
    assert result.exit_code == 2, result.output
    assert words in one_line(result)


def test_a_misspelt_trash_key_is_refused(local_server: Server, make_device) -> None:
    a = joined(make_device("a"), local_server)
    config = a.sync_home / "config.yaml"
    config.write_text(config.read_text() + "trash: {keep_day: 3}\n")
    result = a.run("push")
    assert result.exit_code == 2, result.output
    assert "did you mean `trash.keep_days`" in one_line(result)


# devices forget ---------------------------------------------------------------------------


def test_devices_forget_waits_until_another_device_holds_every_file(
    local_server: Server, make_device, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = (joined(make_device(name), local_server) for name in "ab")
    put(a, "settings.json", '{"theme": "a"}\n', 0)
    put(a, "agents/helper.md", "# helper\n", 1)
    a.ok("push")
    put(b, "CLAUDE.md", "# b\n", 2)
    b.ok("push")

    refused = b.run("devices", "forget", "a")
    assert refused.exit_code == 1, refused.output
    line = one_line(refused)
    assert "a [" in line and "only copy of 2 files" in line
    assert "agents/helper.md" in line and "settings.json" in line
    assert journal_of(local_server, a).exists()

    b.ok("pull")
    output = b.ok("devices", "forget", a_id := device_id(a))
    assert f"Forgot a [{a_id}]" in output
    assert not journal_of(local_server, a).exists()
    assert [line.split(":")[0] for line in b.ok("devices").splitlines()] == ["b (this device)"]

    # Nothing of what a pushed is lost: b published its copies before a's view went.
    prune_now(b, monkeypatch)
    c = joined(make_device("c"), local_server)
    c.ok("pull")
    assert stamped(c.claude) == stamped(b.claude)
    assert c.read("settings.json") == b'{"theme": "a"}\n'
    assert "No problems" in b.ok("verify", "--deep")

    # The forgotten device is told so, and joins again once its state is gone.
    put(a, "CLAUDE.md", "# a again\n", 30)
    for command in ("push", "pull"):
        result = a.run(command)
        assert result.exit_code == 1, result.output
        assert "devices forget" in one_line(result) and "state.sqlite" in one_line(result)
    (a.sync_home / "state.sqlite").unlink()
    a.ok("pull", exit_code=3)  # its newer CLAUDE.md meets b's as a conflict
    a.ok("push")
    assert "a (this device)" in a.ok("devices")


def test_devices_forget_of_a_superseded_device_needs_no_pull(
    local_server: Server, make_device, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = (joined(make_device(name), local_server) for name in "ab")
    put(a, "CLAUDE.md", "# from a\n", 0)
    a.ok("push")
    b.ok("pull")
    put(b, "CLAUDE.md", "# edited on b\n", 10)
    b.ok("push")
    a_only = object_of(a, b"# from a\n", monkeypatch)

    assert "Forgot a" in b.ok("devices", "forget", "a")
    assert prune_now(b, monkeypatch).deleted == 1
    assert a_only not in objects(local_server)


def test_devices_forget_refuses_this_device_and_unknown_names(
    local_server: Server, make_device
) -> None:
    a, b = (joined(make_device(name), local_server) for name in "ab")
    for device in (a, b):
        put(device, f"agents/{device.name}.md", "#\n", 0)
        device.ok("push")
    for name in ("a", device_id(a)):
        result = a.run("devices", "forget", name)
        assert result.exit_code == 1, result.output
        assert "is this device" in one_line(result) and "on another one" in one_line(result)
    result = a.run("devices", "forget", "nobody")
    assert result.exit_code == 2, result.output
    assert "no device 'nobody'" in one_line(result)
    assert journal_of(local_server, a).exists() and journal_of(local_server, b).exists()
