"""A pull while Claude Code writes: no byte written by someone else during a pull is lost.

Invariant: every byte that was in a synced file at any moment of a pull ends in that file or
in the sync home's `trash/`, and a pull that put late bytes in the trash says so.

Two devices share a remote through the real rclone: a local folder, then the loopback S3
server. Device B holds a
transcript and history.jsonl; device A's version grows the transcript (append), rewrites it
(replace), or both edit history.jsonl (merge). B's pull then runs again and again from the
same starting point, and each time a line is appended to B's file at another moment:

- in the rclone wrapper (CLAUDE_SYNC_RCLONE), when it sees the objects being copied (on
  S3: from a local folder the objects are read in place, and nothing is copied);
- inside the pull process, at the n-th operating-system call that touches the file (stat,
  open, write, fsync, utime, link, rename, unlink... by path or by descriptor): either
  just before the call, or by a writer that opened the file before the call and writes
  right after it (a writer whose descriptor outlives a rename).

After each trial the file and the trash must hold every line B ever had, and the state must
never record a file as its base when the bytes on disk differ.
"""

from __future__ import annotations

import builtins
import errno
import hashlib
import json
import os
import shlex
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import Result
from conftest import RCLONE, Device, joined, put, state_files, tree
from servers import Server

from claude_sync import claude_folder
from claude_sync.actions import pull as pull_action
from claude_sync.pathmap import DEFAULT_INCLUDE, TEMPORARY_PREFIX, PathMap, Rules
from claude_sync.projects import Layout, encode_project
from claude_sync.scan import LocalFile, scan
from claude_sync.state import State
from claude_sync.workspace import load_workspace

HOOKED = (
    "stat",
    "lstat",
    "fstat",
    "open",
    "write",
    "fsync",
    "utime",
    "replace",
    "rename",
    "link",
    "unlink",
    "chmod",
    "truncate",
    "ftruncate",
)
MAX_TOUCHES = 80  # a bound on the calls a single pull makes on one file
# Calls on a file descriptor are told apart through /proc (Linux).
needs_proc = pytest.mark.skipif(
    not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd to follow descriptors"
)


# the Claude folder ---------------------------------------------------------------------------


def transcript(device: Device) -> str:
    """A transcript in a project under the device's home (stored home-relative)."""
    return f"projects/{encode_project(os.path.realpath(device.home))}-code-app/s.jsonl"


def transcript_lines(tag: str, start: int, count: int) -> bytes:
    return b"".join(
        (
            json.dumps({"type": "user", "uuid": f"{tag}-{n}", "text": f"{tag} line {n} " * 8})
            + "\n"
        ).encode()
        for n in range(start, start + count)
    )


def history_line(display: str, timestamp: int) -> bytes:
    return (json.dumps({"display": display, "timestamp": timestamp}) + "\n").encode()


def lines(data: bytes) -> set[bytes]:
    return set(data.splitlines(keepends=True))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def temporaries(device: Device) -> list[str]:
    return sorted(
        p.relative_to(device.claude).as_posix() for p in device.claude.rglob(f"{TEMPORARY_PREFIX}*")
    )


def warnings(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("! ")]


# B's folders, reset before every trial --------------------------------------------------------


@dataclass
class Snapshot:
    """A copy of a device's Claude folder and sync home (mtimes kept) to start trials from."""

    device: Device
    folder: Path

    def take(self) -> Snapshot:
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        for name in (".claude", ".claude-sync"):
            shutil.copytree(self.device.home / name, self.folder / name, symlinks=True)
        return self

    def restore(self) -> None:
        for name in (".claude", ".claude-sync"):
            shutil.rmtree(self.device.home / name)
            shutil.copytree(self.folder / name, self.device.home / name, symlinks=True)


# appending at the n-th call that touches the file ----------------------------------------------


@dataclass
class Toucher:
    """Appends `line` to `target` at the `at`-th call (0-based) of the pull that touches it.

    mode "before": the line is appended (open, write, close) just before that call.
    mode "straddle": the file is opened for appending just before the call and the line is
    written right after it, through that descriptor (which still names the old file when
    the call replaced it).
    """

    target: Path
    at: int | None = None
    mode: str = "before"
    line: bytes = b""
    count: int = 0
    fired: str | None = None
    calls: list[str] = field(default_factory=list)
    busy: bool = False

    def __post_init__(self) -> None:
        self.names = {str(self.target), os.path.realpath(self.target)}
        self.real_open = builtins.open
        self.real_readlink = os.readlink

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for name in HOOKED:
            if hasattr(os, name):
                monkeypatch.setattr(os, name, self._wrap(name, getattr(os, name)))
        monkeypatch.setattr(builtins, "open", self._wrap("open()", builtins.open))

    def arm(self, at: int, mode: str, line: bytes) -> None:
        self.at, self.mode, self.line = at, mode, line
        self.count, self.fired, self.calls = 0, None, []

    def disarm(self) -> str | None:
        self.at = None
        return self.fired

    def _touches(self, args: tuple) -> bool:
        for argument in args[:2]:
            if isinstance(argument, int) and not isinstance(argument, bool) and argument > 2:
                try:
                    name = self.real_readlink(f"/proc/self/fd/{argument}")
                except OSError:
                    continue
                if name.removesuffix(" (deleted)") in self.names:
                    return True
            elif isinstance(argument, (str, os.PathLike)):
                try:
                    name = os.path.abspath(os.fspath(argument))
                except TypeError:
                    continue
                if name in self.names:
                    return True
        return False

    def _wrap(self, name: str, real: Callable) -> Callable:
        def hooked(*args, **kwargs):
            if self.at is None or self.busy or not self._touches(args):
                return real(*args, **kwargs)
            index = self.count
            self.count += 1
            self.calls.append(name)
            if index != self.at:
                return real(*args, **kwargs)
            self.busy = True
            try:
                self.fired = f"{self.mode} call {index} ({name})"
                if self.mode == "before":
                    with self.real_open(self.target, "ab") as handle:
                        handle.write(self.line)
                    return real(*args, **kwargs)
                with self.real_open(self.target, "ab") as handle:
                    try:
                        return real(*args, **kwargs)
                    finally:
                        handle.write(self.line)
                        handle.flush()
            finally:
                self.busy = False

        return hooked


# appending when rclone fetches the objects -----------------------------------------------------

APPENDING_RCLONE = r"""#!/bin/bash
# The real rclone; first appends a line to a file when it is asked to copy the objects.
folder=@FOLDER@
if [ "$1" = "copy" ] && [ -f "$folder/target" ]; then
  cat "$folder/line" >> "$(cat "$folder/target")"
  rm -f "$folder/target"
  echo fired > "$folder/fired"
fi
exec @REAL@ "$@"
"""


class AppendingRclone:
    def __init__(self, folder: Path) -> None:
        folder.mkdir()
        self.folder = folder
        script = folder / "rclone"
        script.write_text(
            APPENDING_RCLONE.replace("@REAL@", shlex.quote(RCLONE)).replace(
                "@FOLDER@", shlex.quote(str(folder))
            )
        )
        script.chmod(0o755)
        self.environment = {"CLAUDE_SYNC_RCLONE": str(script)}

    def arm(self, target: Path, line: bytes) -> None:
        (self.folder / "fired").unlink(missing_ok=True)
        (self.folder / "line").write_bytes(line)
        (self.folder / "target").write_text(str(target))

    def fired(self) -> bool:
        return (self.folder / "fired").exists()


# checks ------------------------------------------------------------------------------------------


def trash_lines(device: Device) -> set[bytes]:
    kept: set[bytes] = set()
    for data in tree(device.sync_home / "trash").values():
        kept |= lines(data)
    return kept


def check_state_honest(device: Device, context: str) -> None:
    """A file whose size and mtime match its state entry holds that entry's bytes: the state
    never takes bytes someone else wrote for the version it recorded."""
    paths = PathMap(Layout.of(device.home, {}))
    for remote, entry in state_files(device).items():
        if entry.get("size") is None or entry["base"].get("deleted"):
            continue
        file = device.claude / paths.to_local(remote)
        try:
            info = file.stat()
        except FileNotFoundError:
            continue
        if (info.st_size, info.st_mtime_ns) == (entry["size"], entry["mtime_ns"]):
            assert sha256(file.read_bytes()) == entry["base"]["sha256"], (
                f"the state records {remote} as unchanged, but its bytes are not the base's; "
                f"{context}"
            )


def check_trial(
    device: Device, relative: str, had: bytes, line: bytes, result: Result, context: str
) -> str:
    """The invariant after one trial; returns where the late line ended."""
    context = f"{context}; output:\n{result.output}"
    assert result.exit_code == 0, f"the pull failed; {context}"
    assert "Traceback" not in result.output, context
    now = device.read(relative)
    in_trash = trash_lines(device)
    for kept in sorted(lines(had) | {line}):
        assert kept in lines(now) or kept in in_trash, (
            f"lost {kept[:60]!r}: neither in {relative} nor in trash/; {context}"
        )
    assert not temporaries(device), f"temporaries left: {temporaries(device)}; {context}"
    check_state_honest(device, context)
    if line in lines(now):
        return "file"
    name = relative.rsplit("/", 1)[-1]
    reported = [w for w in warnings(result.output) if name in w and "trash" in w]
    assert reported, f"the late line went to trash/ with no warning naming it; {context}"
    return "trash"


def run_trials(
    device: Device,
    relative: str,
    snapshot: Snapshot,
    toucher: Toucher,
    rclone: AppendingRclone,
    label: str,
) -> dict[str, int]:
    """Every trial from `snapshot`: the wrapper, then each call x mode; returns the count of
    late lines that ended in the file and in the trash, and of extensions that raced."""
    had = snapshot.folder.joinpath(".claude", relative).read_bytes()
    ended = {"file": 0, "trash": 0, "raced": 0}

    def line_for(tag: str) -> bytes:
        return (json.dumps({"type": "user", "uuid": f"late-{label}-{tag}"}) + "\n").encode()

    if load_workspace(device.sync_home).remote.folder_here is None:
        snapshot.restore()
        line = line_for("rclone")
        rclone.arm(device.claude / relative, line)
        result = device.run("pull", **rclone.environment)
        assert rclone.fired(), f"{label}: the rclone wrapper never saw the objects copied"
        ended[check_trial(device, relative, had, line, result, f"{label}, in rclone copy")] += 1

    for mode in ("before", "straddle"):
        for at in range(MAX_TOUCHES):
            snapshot.restore()
            line = line_for(f"{mode}-{at}")
            toucher.arm(at, mode, line)
            try:
                result = device.run("pull")
            finally:
                fired = toucher.disarm()
            if fired is None:
                assert at > 3, f"{label}: the pull touched {relative} only {at} times"
                break
            context = f"{label}, {fired}; calls: {' '.join(toucher.calls)}"
            ended[check_trial(device, relative, had, line, result, context)] += 1
            ended["raced"] += any("extended" in w for w in warnings(result.output))
        else:
            raise AssertionError(f"{label}: more than {MAX_TOUCHES} calls touched {relative}")
    return ended


@pytest.fixture
def pair(make_device, local_or_s3_server: Server) -> tuple[Device, Device]:
    """A and B in step: a transcript and history.jsonl on both."""
    a = joined(make_device("a"), local_or_s3_server)
    b = joined(make_device("b"), local_or_s3_server)
    put(a, transcript(a), transcript_lines("start", 0, 30), 0)
    put(a, "history.jsonl", history_line("one", 1_000) + history_line("two", 2_000), 1)
    a.ok("push")
    b.ok("pull")
    assert b.read(transcript(b)) == a.read(transcript(a))
    return a, b


def trial_tools(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, b: Device, relative: str
) -> tuple[Snapshot, Toucher, AppendingRclone]:
    snapshot = Snapshot(b, tmp_path / "snapshot-b").take()
    toucher = Toucher(b.claude / relative)
    toucher.install(monkeypatch)
    return snapshot, toucher, AppendingRclone(tmp_path / "appending-rclone")


# the tests ------------------------------------------------------------------------------------


@needs_proc
def test_append_during_a_pull_that_extends_a_transcript(
    pair: tuple[Device, Device], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = pair
    put(a, transcript(a), a.read(transcript(a)) + transcript_lines("more", 30, 5), 10)
    a.ok("push")
    relative = transcript(b)
    snapshot, toucher, rclone = trial_tools(tmp_path, monkeypatch, b, relative)
    ended = run_trials(b, relative, snapshot, toucher, rclone, "append")
    print(f"append: {ended}")
    assert ended["raced"] > 0  # some trials appended while the pull extended the file
    # With nobody writing, the pull extends the file to A's version.
    snapshot.restore()
    b.ok("pull")
    assert b.read(relative) == a.read(transcript(a))
    assert tree(b.sync_home / "trash") == {}


@needs_proc
def test_append_during_a_pull_that_replaces_a_transcript(
    pair: tuple[Device, Device], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = pair
    put(a, transcript(a), transcript_lines("rewritten", 0, 40), 10)
    a.ok("push")
    relative = transcript(b)
    snapshot, toucher, rclone = trial_tools(tmp_path, monkeypatch, b, relative)
    ended = run_trials(b, relative, snapshot, toucher, rclone, "replace")
    print(f"replace: {ended}")
    assert ended["trash"] > 0  # some trials hit the window after the check
    snapshot.restore()
    b.ok("pull")
    assert b.read(relative) == a.read(transcript(a))


@needs_proc
@pytest.mark.parametrize("stamp", [4_000, 1_500], ids=["appended", "inserted"])
def test_append_during_a_pull_that_merges_history(
    pair: tuple[Device, Device], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stamp: int
) -> None:
    """A's line sorts after B's (the merge extends B's file) or inside it (it replaces it)."""
    a, b = pair
    put(a, "history.jsonl", a.read("history.jsonl") + history_line("from a", stamp), 10)
    a.ok("push")
    put(b, "history.jsonl", b.read("history.jsonl") + history_line("from b", 3_000), 20)
    snapshot, toucher, rclone = trial_tools(tmp_path, monkeypatch, b, "history.jsonl")
    ended = run_trials(b, "history.jsonl", snapshot, toucher, rclone, f"merge-{stamp}")
    print(f"merge {stamp}: {ended}")
    if stamp < 3_000:
        assert ended["trash"] > 0  # some trials hit the window after the check
    snapshot.restore()
    b.ok("pull")
    expected = [
        history_line("one", 1_000),
        history_line("two", 2_000),
        history_line("from b", 3_000),
        history_line("from a", stamp),
    ]
    assert b.read("history.jsonl") == b"".join(
        sorted(expected, key=lambda line: json.loads(line)["timestamp"])
    )


def test_history_merge_keeps_duplicates_and_mode(pair: tuple[Device, Device]) -> None:
    a, b = pair
    put(a, "history.jsonl", a.read("history.jsonl") + history_line("from a", 5_000), 10)
    a.ok("push")
    again = history_line("again", 3_000)
    put(b, "history.jsonl", b.read("history.jsonl") + again + again, 20)
    (b.claude / "history.jsonl").chmod(0o600)
    b.ok("pull")
    merged = b.read("history.jsonl")
    assert merged == (
        history_line("one", 1_000)
        + history_line("two", 2_000)
        + again
        + again
        + history_line("from a", 5_000)
    )
    assert stat.S_IMODE((b.claude / "history.jsonl").stat().st_mode) == 0o600
    # The merge travels: A ends with the same lines, duplicates included, once settled.
    b.ok("push")
    a.ok("pull")
    assert a.read("history.jsonl") == merged


def save_over_once(target: Path, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """The first time a write into the Claude folder checks that a file is still the one it
    holds (`_same_file`), a new file is saved over `target`, as Claude Code saves some
    files (a rename over them). Returns a list that holds True once it was."""
    real_same_file = claude_folder._same_file
    saved: list[bool] = []

    def save_over_it_once(one: os.stat_result, other: os.stat_result) -> bool:
        answer = real_same_file(one, other)
        if not saved:
            saved.append(True)
            scratch = target.with_name("editor-save.tmp")
            scratch.write_bytes(b"saved by Claude Code in the window\n")
            os.replace(scratch, target)
        return answer

    monkeypatch.setattr(claude_folder, "_same_file", save_over_it_once)
    return saved


@pytest.mark.parametrize("change", ["replace", "delete"])
def test_a_file_replaced_by_someone_just_before_the_pull_takes_it_out_is_kept(
    pair: tuple[Device, Device], monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    """Claude Code saves some files by renaming a new one over them. One that lands between
    the pull's last check and its own rename (or removal) is swapped out, not lost."""
    a, b = pair
    if change == "replace":
        put(a, "CLAUDE.md", "from a, v1\n", 5)
        a.ok("push")
        b.ok("pull")
        put(a, "CLAUDE.md", "from a, v2\n", 6)
    else:
        put(a, "CLAUDE.md", "from a, v1\n", 5)
        a.ok("push")
        b.ok("pull")
        (a.claude / "CLAUDE.md").unlink()
    a.ok("push")
    saved = save_over_once(b.claude / "CLAUDE.md", monkeypatch)
    result = b.run("pull")
    assert result.exit_code == 0, result.output
    assert saved
    kept = [data for data in tree(b.sync_home / "trash").values()]
    assert b"saved by Claude Code in the window\n" in kept
    assert "kept in" in result.output
    assert not temporaries(b)


def test_a_file_swapped_out_where_trash_cannot_take_it_stays_where_the_pull_says(
    pair: tuple[Device, Device], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file saved over the target just before the pull's swap lands at the temporary's
    name; when trash/ cannot take it (a full disk), it stays there, not removed with the
    temporary, and the pull says where it is."""
    a, b = pair
    put(a, "CLAUDE.md", "from a, v1\n", 5)
    a.ok("push")
    b.ok("pull")
    put(a, "CLAUDE.md", "from a, v2\n", 6)
    a.ok("push")
    saved = save_over_once(b.claude / "CLAUDE.md", monkeypatch)
    real_keep = claude_folder.keep_in_trash

    def trash_full_for_moves(trash: Path, relative: str, file: Path, move: bool = False) -> Path:
        if move:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(trash))
        return real_keep(trash, relative, file, move)

    monkeypatch.setattr(claude_folder, "keep_in_trash", trash_full_for_moves)
    result = b.run("pull")
    assert result.exit_code == 0, result.output
    assert saved
    assert b.read("CLAUDE.md") == b"from a, v2\n"
    [left] = temporaries(b)
    assert (b.claude / left).read_bytes() == b"saved by Claude Code in the window\n"
    assert f"kept in {b.claude / left}" in " ".join(result.output.split())


# the stat recorded is the one the hash came from -------------------------------------------


@dataclass
class EditingRules(Rules):
    """The default rules, but the moment the walk has taken `path`'s stat, the file is
    rewritten: an edit between the walk and the hash."""

    path: str = ""
    edit: bytes = b""

    def synced(self, path: str) -> bool:
        if path == self.path and self.edit:
            file = Path(os.environ["CLAUDE_CONFIG_DIR"]) / path
            file.write_bytes(self.edit)
            os.utime(file, ns=(T0_NS + 10**9, T0_NS + 10**9))
            self.edit = b""
        return super().synced(path)


T0_NS = 1_700_000_000 * 10**9


def test_the_scan_records_the_stat_of_the_bytes_it_hashed(tmp_path: Path) -> None:
    """Else a device that joins with a file the remote holds adopts it with the stat of an
    older version: an edit is never pushed, and every later pull refuses the file."""
    claude = Path(os.environ["CLAUDE_CONFIG_DIR"])
    file = claude / "CLAUDE.md"
    file.parent.mkdir(parents=True)
    file.write_bytes(b"as on the remote\n")
    os.utime(file, ns=(T0_NS, T0_NS))
    edited = b"edited while the scan ran\n"
    rules = EditingRules(DEFAULT_INCLUDE, (), path="CLAUDE.md", edit=edited)
    scanned = scan(claude, rules, PathMap(Layout.of(Path.home(), {})), State("device", "remote"))
    info = file.stat()
    assert scanned.files["CLAUDE.md"] == LocalFile(
        hashlib.sha256(edited).hexdigest(), info.st_size, info.st_mtime_ns
    )


@pytest.mark.parametrize("rename", ["renameat2", "hard link", "neither"])
def test_a_file_created_where_a_pull_creates_one_is_kept(
    make_device, local_server: Server, monkeypatch: pytest.MonkeyPatch, rename: str
) -> None:
    """Between the scan and the rename, Claude Code creates the file a pull brings: the
    pull leaves it (never renames over it) and says so; the next pull settles the two."""
    a, b = joined(make_device("a"), local_server), joined(make_device("b"), local_server)
    a.write("agents/new.md", "a's agent")
    a.ok("push")
    if rename != "renameat2":  # a system without it: the hard link does the same
        monkeypatch.setattr(claude_folder, "_renameat2", lambda: None)
    if rename == "neither":  # a file system without hard links (FAT): a look, then a rename

        def no_link(*args: object, **kwargs: object) -> None:
            raise PermissionError(errno.EPERM, "Operation not permitted")

        monkeypatch.setattr(os, "link", no_link)
    sync_disks = pull_action.sync_disks

    def created_meanwhile() -> None:
        b.write("agents/new.md", "b's agent, written meanwhile")
        sync_disks()

    monkeypatch.setattr(pull_action, "sync_disks", created_meanwhile)
    output = b.ok("pull")
    assert "changed during the pull" in output
    assert b.read("agents/new.md") == b"b's agent, written meanwhile"
    assert not [p for p in (b.claude / "agents").iterdir() if p.name.startswith(TEMPORARY_PREFIX)]
    monkeypatch.setattr(pull_action, "sync_disks", sync_disks)
    b.ok("pull", exit_code=3)
    copies = sorted(p.read_text() for p in (b.claude / "agents").iterdir())
    assert copies == ["a's agent", "b's agent, written meanwhile"]
