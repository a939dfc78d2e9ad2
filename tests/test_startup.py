"""What a run imports: a push or a pull with nothing to do imports only what it needs.

Every `claude-sync push` and `pull` (and every hook) pays for each module it imports, so the
commands import their actions, and modules only rare paths use, in the functions that use
them. These tests see that in `sys.modules` at exit, not in a timing.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import RCLONE, Device, joined, put, tree
from servers import Server

from claude_sync import config as config_module
from claude_sync import remote_view
from claude_sync import session as session_module
from claude_sync.config import PARSED_CONFIG, load_config
from claude_sync.errors import ConfigError
from claude_sync.rclone import Rclone
from claude_sync.remote import JOURNAL, Remote

# Runs the command as the `claude-sync` script does, and writes the modules loaded at exit.
WRAPPER = """
import atexit, sys
output, arguments = sys.argv[1], sys.argv[2:]
atexit.register(lambda: open(output, "w").write("\\n".join(sorted(sys.modules))))
sys.argv = ["claude-sync", *arguments]
from claude_sync.__main__ import main
main()
"""

# Neither command needs these when there is nothing to do. (The commands run without -q:
# click's parser imports difflib for any short option, to suggest a long one.)
RARE = {
    "claude_sync.actions.conflicts",
    "claude_sync.actions.devices",
    "claude_sync.actions.export",
    "claude_sync.actions.migrate",
    "claude_sync.actions.projects",
    "claude_sync.actions.prune",
    "claude_sync.actions.sessions",
    "claude_sync.actions.status",
    "claude_sync.actions.verify",
    "claude_sync.initialize",
    "claude_sync.templates",
    "argon2",
    "concurrent.futures",
    "difflib",
    "multiprocessing",
    "pickle",  # a scan sends what it found through a pipe only when it shares a wide tree
    "yaml",  # config.yaml is read from its parsed copy while its text is unchanged
}


def modules_after(device: Device, tmp_path: Path, *args: str) -> set[str]:
    """The modules loaded when `claude-sync ARGS` exits, run as a process of its own."""
    output = tmp_path / "modules.txt"
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, str(output), *args],
        env=device.environment(),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return set(output.read_text().split())


def test_a_push_with_nothing_to_do_imports_no_pull_nor_rare_module(
    local_server: Server, make_device, tmp_path: Path
) -> None:
    a = joined(make_device("a"), local_server)
    put(a, "projects/-p/s.jsonl", '{"n": 1}\n', 0)
    a.ok("push")
    loaded = modules_after(a, tmp_path, "push")
    assert "claude_sync.actions.push" in loaded
    pull = {"claude_sync.actions.pull", "claude_sync.assemble", "claude_sync.merges"}
    # Nor what only a push that sends something uses: encryption (age and zstd), rclone,
    # the machine's name, the remote's journal and views.
    sending = {
        "claude_sync.crypto",
        "claude_sync.encrypting",
        "claude_sync.instance",
        "claude_sync.journal",
        "claude_sync.remote_view",
        "claude_sync.view_cache",
        "subprocess",
        "socket",
    }
    # Nor what only a save of the state uses (tempfile, with random).
    saving = {"tempfile", "random"}
    unneeded = sorted(loaded & (RARE | pull | sending | saving))
    assert not unneeded, f"imported without need: {', '.join(unneeded)}"


def test_a_pull_with_nothing_to_do_imports_no_push_nor_rare_module(
    local_server: Server, make_device, tmp_path: Path
) -> None:
    a, b = (joined(make_device(name), local_server) for name in "ab")
    put(a, "projects/-p/s.jsonl", '{"n": 1}\n', 0)
    a.ok("push")
    b.ok("pull")
    loaded = modules_after(b, tmp_path, "pull")
    assert "claude_sync.actions.pull" in loaded
    unneeded = sorted(loaded & (RARE | {"claude_sync.actions.push", "claude_sync.encrypting"}))
    assert not unneeded, f"imported without need: {', '.join(unneeded)}"


CONFIG = "version: 1\ndevice: {id: d1, name: laptop}\nremote: {root: 'x:y'}\n"


def counting_parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The texts config.yaml is parsed from as YAML from now on (the parser runs as ever)."""
    parsed: list[str] = []
    parse = config_module.parse_yaml

    def counting(text: str, path: Path) -> object:
        parsed.append(text)
        return parse(text, path)

    monkeypatch.setattr(config_module, "parse_yaml", counting)
    return parsed


def test_config_yaml_is_parsed_once_for_each_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second run reads the parsed copy; an edit, even one that keeps the file's size,
    is parsed again."""
    parsed = counting_parses(monkeypatch)
    (tmp_path / "config.yaml").write_text(CONFIG)
    first = load_config(tmp_path)
    assert load_config(tmp_path) == first
    assert len(parsed) == 1
    assert (tmp_path / PARSED_CONFIG).stat().st_mode & 0o777 == 0o600
    assert (tmp_path / PARSED_CONFIG).parent.stat().st_mode & 0o777 == 0o700
    (tmp_path / "config.yaml").write_text(CONFIG.replace("laptop", "laptoq"))
    assert load_config(tmp_path).device_name == "laptoq"
    assert len(parsed) == 2


def test_a_config_refused_once_is_refused_from_its_parsed_copy_too(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(CONFIG + "rclone: {timeout: soon}\n")
    for _ in range(2):
        with pytest.raises(ConfigError, match="rclone.timeout"):
            load_config(tmp_path)
    assert (tmp_path / PARSED_CONFIG).exists()


@pytest.mark.parametrize(
    "kept",
    [
        b"\xff\xfe not JSON",
        b'{"of": "something else"}',
        b"[]",
        b'{"of": ["0", "0"], "document": {}}',
    ],
)
def test_a_damaged_or_stale_parsed_copy_is_parsed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kept: bytes
) -> None:
    (tmp_path / "config.yaml").write_text(CONFIG)
    (tmp_path / "cache").mkdir()
    (tmp_path / PARSED_CONFIG).write_bytes(kept)
    parsed = counting_parses(monkeypatch)
    assert load_config(tmp_path).device_name == "laptop"
    assert load_config(tmp_path).device_name == "laptop"
    assert len(parsed) == 1  # and the copy made again


def test_a_document_json_cannot_hold_is_parsed_each_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A YAML key that is a number would come back from JSON as a string."""
    (tmp_path / "config.yaml").write_text(CONFIG + "path_map: {1: ~/work}\n")
    parsed = counting_parses(monkeypatch)
    for _ in range(2):
        with pytest.raises(ConfigError, match="path_map"):
            load_config(tmp_path)
    assert len(parsed) == 2
    assert not (tmp_path / PARSED_CONFIG).exists()


def test_a_home_where_the_parsed_copy_cannot_be_written_still_loads(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(CONFIG)
    (tmp_path / "cache").write_text("a file where the folder would be")
    assert load_config(tmp_path).device_name == "laptop"
    assert load_config(tmp_path).device_name == "laptop"


# An rclone that notes each `sync` (the mirror of the journal) in a file, then runs rclone.
NOTING_RCLONE = """#!/bin/sh
if [ "$1" = sync ]; then echo $$ >> {log}; sleep {sleep}; fi
exec {rclone} "$@"
"""


def noting_rclone(tmp_path: Path, sleep: float = 0) -> tuple[Path, Path]:
    """A wrapper of the real rclone whose `sync` writes its pid to a log, then sleeps
    `sleep` seconds; the wrapper and the log."""
    log = tmp_path / "syncs.log"
    script = tmp_path / "rclone"
    script.write_text(
        NOTING_RCLONE.format(log=shlex.quote(str(log)), sleep=sleep, rclone=shlex.quote(RCLONE))
    )
    script.chmod(0o755)
    return script, log


def test_a_pull_starts_reading_the_remote_before_it_scans_the_claude_folder(
    s3_server: Server, make_device, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rclone's start and its listing of the journal overlap the pull's imports, state
    and scan: the scan finds the mirror running already, and the pull waits for that one
    mirror instead of starting another."""
    a, b = (joined(make_device(name), s3_server) for name in "ab")
    put(a, "projects/-p/s.jsonl", '{"n": 1}\n', 0)
    a.ok("push")
    wrapper, log = noting_rclone(tmp_path)
    seen_at_scan: list[bool] = []
    real_scan = session_module.scan

    def scan_once_rclone_started(*args, **kwargs):
        give_up = time.monotonic() + 5
        while not log.exists() and time.monotonic() < give_up:
            time.sleep(0.01)  # the scan's own thread: a mirror started after it never comes
        seen_at_scan.append(log.exists())
        return real_scan(*args, **kwargs)

    monkeypatch.setattr(session_module, "scan", scan_once_rclone_started)
    b.ok("pull", CLAUDE_SYNC_RCLONE=str(wrapper))
    assert seen_at_scan == [True]
    assert len(log.read_text().split()) == 1
    assert b.read("projects/-p/s.jsonl") == b'{"n": 1}\n'


def test_a_mirror_started_early_and_never_read_is_stopped(tmp_path: Path) -> None:
    wrapper, log = noting_rclone(tmp_path, sleep=30)
    (tmp_path / "remote").mkdir()
    remote = Remote(Rclone(str(wrapper), None), str(tmp_path / "remote"))
    with pytest.raises(RuntimeError), remote.mirroring_early(tmp_path / "mirror"):
        give_up = time.monotonic() + 5
        while not log.exists() and time.monotonic() < give_up:
            time.sleep(0.01)
        raise RuntimeError("the run failed before it read the remote")
    pid = int(log.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_mirror_done_while_the_pull_scanned_for_longer_than_the_timeout_is_used(
    local_server: Server, make_device, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rclone's limit counts from its start; a mirror that finished in time is read however
    long the scan took, not taken for a remote that did not answer."""
    a, b = (joined(make_device(name), local_server) for name in "ab")
    put(a, "CLAUDE.md", "from a\n", 0)
    a.ok("push")
    config = b.sync_home / "config.yaml"
    document = yaml.safe_load(config.read_text())
    document["rclone"]["timeout"] = 1
    config.write_text(yaml.safe_dump(document))
    real_scan = session_module.scan

    def slow_scan(*args, **kwargs):
        time.sleep(1.5)  # the first scan of a big Claude folder hashes every file
        return real_scan(*args, **kwargs)

    monkeypatch.setattr(session_module, "scan", slow_scan)
    b.ok("pull")
    assert b.read("CLAUDE.md") == b"from a\n"


# An rclone that notes each of its commands in a file, then runs rclone.
LOGGING_RCLONE = """#!/bin/sh
echo "$1" >> {log}
exec {rclone} "$@"
"""


def logging_rclone(tmp_path: Path) -> tuple[Path, Path]:
    """A wrapper of the real rclone that writes each command's name to a log; the wrapper
    and the log."""
    log = tmp_path / "rclone.log"
    wrapper = tmp_path / "logging-rclone"
    wrapper.write_text(LOGGING_RCLONE.format(log=shlex.quote(str(log)), rclone=shlex.quote(RCLONE)))
    wrapper.chmod(0o755)
    return wrapper, log


def test_a_remote_in_a_local_folder_is_read_and_written_with_no_rclone(
    local_server: Server, make_device, tmp_path: Path
) -> None:
    """The journal and the objects are read and written where they are: no push or pull
    waits for an rclone to start and list the folder. The pushes write a snapshot, a
    delta, then a snapshot that deletes the entries below it."""
    a, b = (joined(make_device(name), local_server) for name in "ab")
    wrapper, log = logging_rclone(tmp_path)
    for number in range(3):
        put(a, f"projects/-p/s{number}.jsonl", f'{{"n": {number}}}\n', 0)
        a.ok("push", CLAUDE_SYNC_RCLONE=str(wrapper))
        b.ok("pull", CLAUDE_SYNC_RCLONE=str(wrapper))
        assert tree(b.claude) == tree(a.claude)
    b.ok("pull", CLAUDE_SYNC_RCLONE=str(wrapper))
    assert not log.exists(), log.read_text()
    assert len(list((local_server.data_dir / JOURNAL).glob("*/*"))) == 1


def test_a_journal_read_in_place_that_changes_meanwhile_is_listed_again(
    local_server: Server, make_device, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between the listing of a device's entries and their reading, that device writes a
    snapshot and deletes the entries below it: the pull lists again, and reads the
    snapshot."""
    a, b = (joined(make_device(name), local_server) for name in "ab")
    put(a, "CLAUDE.md", "one\n", 0)
    a.ok("push")
    put(a, "CLAUDE.md", "two\n", 1)
    a.ok("push")
    real_listing = remote_view._listing
    snapshots: list[Path] = []

    def listing_then_a_snapshot(folder: Path) -> list[os.DirEntry[str]]:
        found = real_listing(folder)
        if folder.parent.name == JOURNAL and not snapshots:
            snapshots.append(folder)
            put(a, "CLAUDE.md", "three\n", 2)
            a.ok("push", "--all")  # a snapshot: the entries listed are deleted
        return found

    monkeypatch.setattr(remote_view, "_listing", listing_then_a_snapshot)
    b.ok("pull")
    assert b.read("CLAUDE.md") == b"three\n"
    assert len(snapshots) == 1
    assert len(list(snapshots[0].iterdir())) == 1


def test_a_journal_listed_without_a_devices_snapshot_is_listed_again(
    local_server: Server, make_device, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A listing made while a device replaced its snapshot can miss both the old one and
    the new: that device's deltas alone are not its view."""
    a, b = (joined(make_device(name), local_server) for name in "ab")
    put(a, "CLAUDE.md", "in the snapshot\n", 0)
    a.ok("push")
    put(a, "settings.json", "{}\n", 0)
    a.ok("push")  # a delta
    real_listing = remote_view._listing
    listings: list[Path] = []

    def first_without_the_snapshot(folder: Path) -> list[os.DirEntry[str]]:
        found = real_listing(folder)
        if folder.parent.name == JOURNAL:
            listings.append(folder)
            if len(listings) == 1:
                return found[1:]
        return found

    monkeypatch.setattr(remote_view, "_listing", first_without_the_snapshot)
    b.ok("pull")
    assert len(listings) == 2
    assert b.read("CLAUDE.md") == b"in the snapshot\n"
    assert b.read("settings.json") == b"{}\n"


def test_a_journal_that_keeps_changing_while_it_is_read_stops_the_pull(
    local_server: Server, make_device, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = (joined(make_device(name), local_server) for name in "ab")
    put(a, "CLAUDE.md", "notes\n", 0)
    a.ok("push")

    def entries_always_gone(*args) -> None:
        raise FileNotFoundError

    monkeypatch.setattr(remote_view, "_read_device", entries_always_gone)
    result = b.run("pull")
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == (
        f"Error: the journal in {local_server.data_dir} changed while it was read, 3 times: "
        "run again"
    )
    assert not (b.claude / "CLAUDE.md").exists()
