"""File modes across devices: a manifest entry records the file's permission bits where it
was written; a pull gives them to a file it creates, and leaves a file it replaces with the
mode it has here. Real rclone, real servers, every device its own folders."""

from __future__ import annotations

import os

from conftest import Device, append_entry, copies, joined, newest_entry, put, state_files
from servers import Server

from claude_sync.manifest import version_from_json, version_to_json
from claude_sync.versions import Segment, Version, VersionVector

SHA = "ab" * 32


def mode_of(device: Device, relative: str) -> int:
    return (device.claude / relative).stat().st_mode & 0o777


def put_mode(device: Device, relative: str, data: str, at: int, mode: int) -> None:
    os.chmod(put(device, relative, data, at), mode)


def test_an_entry_records_the_mode_and_older_entries_have_none() -> None:
    vector = VersionVector.of({"dev1": 1})
    live = Version(SHA, 3, 5, vector, "dev1", segments=(Segment(SHA, 3),), mode=0o600)
    assert version_to_json(live)["mode"] == 0o600
    assert version_from_json("settings.json", version_to_json(live)) == live
    older = version_to_json(live)
    del older["mode"]
    assert version_from_json("settings.json", older).mode is None
    tombstone = Version("", 0, 5, vector, "dev1", deleted=True)
    assert "mode" not in version_to_json(tombstone)
    assert version_from_json("settings.json", version_to_json(tombstone)) == tombstone


def test_a_created_file_takes_the_mode_it_had_where_it_was_written(
    local_or_s3_server: Server, make_device
) -> None:
    a = joined(make_device("a"), local_or_s3_server)
    b = joined(make_device("b"), local_or_s3_server)
    put_mode(a, "settings.json", '{"apiKeyHelper": "x"}\n', 10, 0o600)
    put_mode(a, "commands/deploy.sh", "#!/bin/sh\necho deploy\n", 20, 0o755)
    put_mode(a, "CLAUDE.md", "# notes\n", 30, 0o644)
    assert "3 uploaded" in a.ok("push")
    files = newest_entry(local_or_s3_server, a)["files"]
    assert {path: entry["mode"] for path, entry in files.items()} == {
        "settings.json": 0o600,
        "commands/deploy.sh": 0o755,
        "CLAUDE.md": 0o644,
    }

    assert "3 downloaded" in b.ok("pull")
    assert mode_of(b, "settings.json") == 0o600
    assert mode_of(b, "commands/deploy.sh") == 0o755
    assert mode_of(b, "CLAUDE.md") == 0o644
    assert state_files(b)["settings.json"]["base"]["mode"] == 0o600


def test_a_replaced_file_keeps_its_mode_here_and_a_chmod_alone_sends_nothing(
    local_server: Server, make_device
) -> None:
    a = joined(make_device("a"), local_server)
    b = joined(make_device("b"), local_server)
    put_mode(a, "settings.json", '{"theme": "dark"}\n', 10, 0o644)
    put_mode(a, "CLAUDE.md", "# one\n", 20, 0o644)
    a.ok("push")
    b.ok("pull")
    assert mode_of(b, "settings.json") == 0o644

    os.chmod(a.claude / "settings.json", 0o600)
    assert "Nothing to push" in a.ok("push")
    assert newest_entry(local_server, a)["files"]["settings.json"]["mode"] == 0o644

    put(a, "settings.json", '{"theme": "light"}\n', 30)  # new bytes: the mode read with them
    put(a, "CLAUDE.md", "# two\n", 40)
    os.chmod(b.claude / "CLAUDE.md", 0o600)
    a.ok("push")
    files = newest_entry(local_server, a)["files"]
    assert (files["settings.json"]["mode"], files["CLAUDE.md"]["mode"]) == (0o600, 0o644)
    assert "2 downloaded" in b.ok("pull")
    assert b.read("settings.json") == b'{"theme": "light"}\n'
    assert b.read("CLAUDE.md") == b"# two\n"
    assert mode_of(b, "settings.json") == 0o644  # the user's choice here stays
    assert mode_of(b, "CLAUDE.md") == 0o600


def test_a_conflict_copy_is_no_wider_than_either_side(local_server: Server, make_device) -> None:
    a = joined(make_device("a"), local_server)
    b = joined(make_device("b"), local_server)
    for relative in ("settings.json", "agents/x.md", "CLAUDE.md"):
        put_mode(a, relative, "one\n", 10, 0o644)
    a.ok("push")
    b.ok("pull")

    put_mode(a, "settings.json", "a\n", 20, 0o600)  # private on A
    put(a, "agents/x.md", "a\n", 20)
    put(a, "CLAUDE.md", "a\n", 20)
    a.ok("push")
    put(b, "settings.json", "b\n", 30)
    put_mode(b, "agents/x.md", "b\n", 30, 0o600)  # private on B
    put(b, "CLAUDE.md", "b\n", 30)
    b.ok("pull", exit_code=3)

    modes = {copy.partition(".conflict-")[0]: mode_of(b, copy) for copy in copies(b.claude)}
    assert modes == {"settings.json": 0o600, "agents/x.md": 0o600, "CLAUDE.md": 0o644}
    for relative in ("settings.json", "agents/x.md", "CLAUDE.md"):
        assert b.read(relative) == b"b\n"  # the change made here stays, with its mode
    assert mode_of(b, "settings.json") == 0o644
    assert mode_of(b, "agents/x.md") == 0o600


def test_an_entry_from_an_older_manifest_is_created_as_before(
    local_server: Server, make_device
) -> None:
    a = joined(make_device("a"), local_server)
    b = joined(make_device("b"), local_server)
    put_mode(a, "settings.json", "{}\n", 10, 0o644)
    put_mode(a, "plans/p.md", "plan\n", 20, 0o644)
    a.ok("push")
    document = newest_entry(local_server, a)
    del document["files"]["plans/p.md"]["mode"]  # written before modes were recorded
    append_entry(local_server, a, document)

    assert "2 downloaded" in b.ok("pull")
    assert mode_of(b, "settings.json") == 0o644
    assert mode_of(b, "plans/p.md") == 0o600  # as before: private, as all a run creates
    assert "mode" not in state_files(b)["plans/p.md"]["base"]


def test_a_malformed_mode_is_refused_in_one_line(local_server: Server, make_device) -> None:
    a = joined(make_device("a"), local_server)
    b = joined(make_device("b"), local_server)
    put_mode(a, "settings.json", "{}\n", 10, 0o600)
    a.ok("push")
    document = newest_entry(local_server, a)
    for bad in ["0600", True, -1, 0o1000, 1.5, [384]]:
        document["files"]["settings.json"]["mode"] = bad
        append_entry(local_server, a, document)
        result = b.run("pull")
        assert result.exit_code == 1, (bad, result.output)
        assert "Traceback" not in result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1, (bad, result.output)
        assert "'settings.json' is invalid: mode" in lines[0], (bad, lines[0])
        assert not (b.claude / "settings.json").exists()
