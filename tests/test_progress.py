"""Progress during transfers: rclone's stats read as it copies, the line drawn from them, and
where it goes (stderr, on a terminal, never with -q or in hook mode).

rclone is the real binary throughout; RCLONE_BWLIMIT (rclone reads its flags from the
environment) makes a copy of a few MB last a few seconds, so that stats come before its end.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import RCLONE, Device, joined, put
from servers import Server

from claude_sync.cli_output import Printer, duration_text, transfer_line
from claude_sync.errors import RcloneError
from claude_sync.rclone import BatchedProgress, Rclone, TransferStats, parse_stats
from claude_sync.session import Event

CLAUDE_SYNC = str(Path(sys.executable).parent / "claude-sync")
MB = 1024 * 1024
CLEAR = "\r\x1b[K"  # back to the line's start, and clear it
SLOW = {"RCLONE_BWLIMIT": "1M"}  # a few MB then take a few seconds

# Two lines of `rclone copy --use-json-log --log-level NOTICE --stats 1s --stats-log-level
# NOTICE --bwlimit 2M` (rclone v1.75.2): one before rclone knew the rate, and a notice.
STATS_LINE = (
    '{"time":"2026-11-30T18:43:55.145899161Z","level":"notice","msg":"\\nTransferred:   \\t'
    "    2.055 MiB / 4.768 MiB, 43%, 0 B/s, ETA -\\nChecks:                 0 / 0, -, Listed 2"
    "\\nTransferred:            0 / 2, 0%\\nElapsed time:         1.0s\\nTransferring:\\n * "
    "                             objects/aa/a.age: 37% / 2.861 MiB, 0 B/s, -\\n *         "
    '                     objects/aa/b.age: 52% / 1.907 MiB, 0 B/s, -\\n\\n","stats":{"bytes'
    '":2154496,"checks":0,"deletedDirs":0,"deletes":0,"elapsedTime":1.002991828,"errors":0,"'
    'eta":null,"fatalError":false,"listed":2,"renames":0,"retryError":false,"serverSideCopies'
    '":0,"serverSideCopyBytes":0,"serverSideMoveBytes":0,"serverSideMoves":0,"speed":0,"total'
    'Bytes":5000000,"totalChecks":0,"totalTransfers":2,"transferTime":1.001816672,"transferri'
    'ng":[{"bytes":1110016,"dstFs":"rtest/dst","eta":null,"group":"global_stats","name":"obje'
    'cts/aa/a.age","percentage":37,"size":3000000,"speed":1108563.5035608958,"speedAvg":0,"sr'
    'cFs":"rtest/src"}],"transfers":0},"source":"accounting/stats.go:549"}\n'
)
NOTICE_LINE = (
    '{"time":"2026-11-30T18:43:54.139754877Z","level":"notice","msg":"Config file \\"/root/.c'
    'onfig/rclone/rclone.conf\\" not found - using defaults","source":"config/config.go:374"}\n'
)


def files_to_copy(folder: Path, sizes: dict[str, int]) -> Path:
    """`folder`/source holding random files of `sizes`, and the list rclone copies them by."""
    for name, size in sizes.items():
        (folder / "source" / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / "source" / name).write_bytes(os.urandom(size))
    listed = folder / "list"
    listed.write_text("".join(f"{name}\n" for name in sizes))
    return listed


# parsing rclone's stats --------------------------------------------------------------------


def test_a_stats_line_is_read_and_any_other_line_is_not() -> None:
    assert parse_stats(STATS_LINE.encode()) == TransferStats(2154496, 5000000, 0.0, None)
    with_eta = json.loads(STATS_LINE)
    with_eta["stats"].update(bytes=4224128, speed=2110319.45, eta=3)
    assert parse_stats(json.dumps(with_eta).encode()) == TransferStats(
        4224128, 5000000, 2110319.45, 3.0
    )
    assert parse_stats(NOTICE_LINE.encode()) is None
    assert parse_stats(b"2026/11/30 18:43:54 ERROR : not JSON\n") is None
    assert parse_stats(b"\xff\xfe\n") is None


def test_rclone_tells_the_bytes_done_as_it_copies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes = {"objects/aa/one.age": 2 * MB, "objects/bb/two.age": MB}
    listed = files_to_copy(tmp_path, sizes)
    monkeypatch.setenv("RCLONE_BWLIMIT", SLOW["RCLONE_BWLIMIT"])
    told: list[TransferStats | None] = []
    Rclone(RCLONE, None).copy_files(
        str(tmp_path / "source"), str(tmp_path / "copy"), listed, progress=told.append
    )
    assert told[-1] is None  # the end: a line drawn can be taken away
    stats = told[:-1]
    assert stats and None not in stats
    assert {s.total_bytes for s in stats} == {3 * MB}
    done = [s.bytes for s in stats if s is not None]  # (all of them)
    assert done == sorted(done)
    assert done[0] < 3 * MB  # told while it ran, not only at its end
    assert done[-1] == 3 * MB
    assert any(s is not None and s.speed > 0 for s in stats)
    for name in sizes:
        assert (tmp_path / "copy" / name).read_bytes() == (tmp_path / "source" / name).read_bytes()


def test_a_failed_copy_with_progress_still_says_why(tmp_path: Path) -> None:
    listed = files_to_copy(tmp_path, {"objects/aa/one.age": 1000})
    (tmp_path / "not-a-folder").write_text("a file where a folder should be\n")
    told: list[TransferStats | None] = []
    with pytest.raises(RcloneError) as raised:
        Rclone(RCLONE, None).copy_files(
            str(tmp_path / "source"), str(tmp_path / "not-a-folder"), listed, progress=told.append
        )
    assert "not a directory" in str(raised.value)
    assert told[-1] is None


def test_a_copy_with_progress_still_gives_up_at_the_run_s_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    listed = files_to_copy(tmp_path, {"objects/aa/one.age": 4 * MB})  # at least 4 s
    monkeypatch.setenv("RCLONE_BWLIMIT", SLOW["RCLONE_BWLIMIT"])
    told: list[TransferStats | None] = []
    rclone = Rclone(RCLONE, None, give_up_at=time.monotonic() + 1.5)
    with pytest.raises(RcloneError, match="gave up after"):
        rclone.copy_files(
            str(tmp_path / "source"), str(tmp_path / "copy"), listed, progress=told.append
        )
    assert told[-1] is None


def test_a_progress_callback_that_fails_is_raised_after_the_copy(tmp_path: Path) -> None:
    listed = files_to_copy(tmp_path, {"objects/aa/one.age": 1000})

    def broken(stats: TransferStats | None) -> None:
        raise ValueError("a bug in the display")

    with pytest.raises(ValueError, match="a bug in the display"):
        Rclone(RCLONE, None).copy_files(
            str(tmp_path / "source"), str(tmp_path / "copy"), listed, progress=broken
        )
    assert (tmp_path / "copy" / "objects/aa/one.age").stat().st_size == 1000


# the line ----------------------------------------------------------------------------------


def test_the_line_shows_bytes_done_rate_and_time_left() -> None:
    stats = TransferStats(412 * MB, int(1.6 * 1024 * MB), 48 * MB, 25)
    assert transfer_line(stats) == "  412.0 MB / 1.6 GB  48.0 MB/s  25 s left"
    # before rclone has measured the rate or can tell the time left
    assert transfer_line(TransferStats(MB, 4 * MB, 0.0, None)) == "  1.0 MB / 4.0 MB"
    assert transfer_line(TransferStats(0, 900, 0.0, None)) == "  0 B / 900 B"


def test_time_left_in_the_two_largest_units() -> None:
    assert duration_text(0) == "0 s"
    assert duration_text(24.2) == "25 s"
    assert duration_text(250) == "4 min 10 s"
    assert duration_text(3900) == "1 h 5 min"


def test_the_printer_draws_in_place_on_a_terminal_only(capsys: pytest.CaptureFixture) -> None:
    stats = TransferStats(MB, 4 * MB, MB, 3)
    printer = Printer(quiet=False, verbose=False)
    printer.terminal = True  # what sys.stderr.isatty() says when run in a terminal
    printer.progress(stats)
    printer.progress(stats)
    printer(Event("download", "CLAUDE.md", 10, 1, 1))
    printer.progress(stats)
    printer.progress(None)
    written = capsys.readouterr()
    line = CLEAR + "  1.0 MB / 4.0 MB  1.0 MB/s  3 s left"
    assert written.err == line + line + CLEAR + line + CLEAR
    assert written.out == "↓ [1/1] CLAUDE.md (10 B)\n"

    quiet_on_a_terminal = Printer(quiet=True, verbose=False)
    quiet_on_a_terminal.terminal = True
    not_on_a_terminal = Printer(quiet=False, verbose=False)
    not_on_a_terminal.terminal = False
    for printer in (quiet_on_a_terminal, not_on_a_terminal):
        printer.progress(stats)
        printer.progress(None)
        assert capsys.readouterr() == ("", "")


# the command line --------------------------------------------------------------------------


PROGRESS = re.compile(r"\r\x1b\[K  (\S+ \w+) / (\S+ \w+)")


def run_on_terminal(device: Device, *args: str, interrupt: bool = False) -> tuple[int, str, str]:
    """Run claude-sync as `device` with stderr on a real terminal (a pty), as a person
    does, and stdout in a file; its exit code, stdout and what the terminal got. With
    `interrupt`, Ctrl-C (SIGINT) once a progress line is on the terminal."""
    primary, secondary = os.openpty()
    with tempfile.TemporaryFile() as stdout:
        process = subprocess.Popen(
            [CLAUDE_SYNC, *args],
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=secondary,
            env={**os.environ, **device.environment(**SLOW)},
            # As a terminal's foreground command has it, even when these tests run in the
            # background of a shell, which starts them with Ctrl-C ignored.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        os.close(secondary)
        terminal = b""
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # EIO: nothing holds the terminal's other end any more
                break
            if not chunk:
                break
            terminal += chunk
            if interrupt and PROGRESS.search(terminal.decode(errors="replace")):
                process.send_signal(signal.SIGINT)
                interrupt = False
        os.close(primary)
        code = process.wait(timeout=120)
        stdout.seek(0)
        return code, stdout.read().decode(), terminal.decode()


def test_push_and_pull_show_progress_on_a_terminal(make_device, s3_server: Server) -> None:
    """Over S3, where bytes take time (into a folder on the same disk a push renames)."""
    a, b = joined(make_device("a"), s3_server), joined(make_device("b"), s3_server)
    put(a, "projects/-p/big.jsonl", os.urandom(3 * MB), 1)
    for device, command in ((a, "push"), (b, "pull")):
        code, stdout, terminal = run_on_terminal(device, command)
        assert code == 0, terminal
        shown = PROGRESS.findall(terminal)
        assert shown, terminal
        assert shown[0][0] != shown[0][1]  # some bytes still to go
        assert shown[-1][0] == shown[-1][1]  # then all of them
        assert terminal.endswith(CLEAR)  # taken away at the end
        assert "big.jsonl" in stdout and "\r" not in stdout and " / " not in stdout
    assert b.read("projects/-p/big.jsonl") == a.read("projects/-p/big.jsonl")


def test_an_interrupted_transfer_takes_its_line_away_before_saying_so(
    make_device, s3_server: Server
) -> None:
    device = joined(make_device("a"), s3_server)
    put(device, "projects/-p/big.jsonl", os.urandom(4 * MB), 1)
    code, _, terminal = run_on_terminal(device, "push", interrupt=True)
    assert code == 128 + signal.SIGINT, terminal
    shown, said = terminal.rsplit(CLEAR, 1)
    assert PROGRESS.search(shown), terminal
    assert said.startswith("Interrupted (SIGINT)"), terminal


def test_quiet_shows_no_progress_even_on_a_terminal(make_device, local_server: Server) -> None:
    a, b = joined(make_device("a"), local_server), joined(make_device("b"), local_server)
    put(a, "projects/-p/big.jsonl", os.urandom(3 * MB // 2), 1)
    for device, command in ((a, "push"), (b, "pull")):
        assert run_on_terminal(device, command, "-q") == (0, "", "")
    assert b.read("projects/-p/big.jsonl") == a.read("projects/-p/big.jsonl")


def test_no_progress_when_stderr_is_no_terminal(make_device, local_server: Server) -> None:
    a, b = joined(make_device("a"), local_server), joined(make_device("b"), local_server)
    put(a, "projects/-p/big.jsonl", os.urandom(3 * MB // 2), 1)
    pushed = a.run("push", **SLOW)
    assert pushed.exit_code == 0, pushed.output
    assert "↑ [1/1] projects/-p/big.jsonl" in pushed.stdout
    assert "\r" not in pushed.output and "\x1b" not in pushed.output
    pulled = b.run("pull", **SLOW)
    assert pulled.exit_code == 0, pulled.output
    assert "\r" not in pulled.output and "\x1b" not in pulled.output
    assert b.read("projects/-p/big.jsonl") == a.read("projects/-p/big.jsonl")


def test_quiet_and_hook_mode_print_nothing_on_stdout(make_device, local_server: Server) -> None:
    a, b = joined(make_device("a"), local_server), joined(make_device("b"), local_server)
    put(a, "projects/-p/one.jsonl", os.urandom(MB), 1)
    pushed = a.run("push", "-q")
    assert (pushed.exit_code, pushed.stdout, pushed.stderr) == (0, "", "")

    put(a, "projects/-p/two.jsonl", os.urandom(MB), 2)
    (a.sync_home / "push-requested").write_text("test\n")
    background = a.run("background-push")  # what `push --hook` starts, here in-process
    assert (background.exit_code, background.stdout, background.stderr) == (0, "", "")

    put(a, "projects/-p/three.jsonl", os.urandom(MB), 3)
    hooked = a.run("push", "--hook")  # hands the push to a background run, which sends it
    assert (hooked.exit_code, hooked.stdout, hooked.stderr) == (0, "", "")
    log = a.sync_home / "logs" / "claude-sync.log"
    give_up = time.monotonic() + 60
    while log.read_text().count("background-push: ok") < 2:
        assert time.monotonic() < give_up, f"the background push did not end:\n{log.read_text()}"
        time.sleep(0.1)

    pulled = b.run("pull", "--hook")
    assert (pulled.exit_code, pulled.stdout, pulled.stderr) == (0, "", "")
    for name in ("one", "two", "three"):
        path = f"projects/-p/{name}.jsonl"
        assert b.read(path) == a.read(path)


def test_a_transfer_of_many_small_files_is_drawn_a_few_times_a_second_and_at_its_end() -> None:
    """A pull read in place tells of each file it decrypts: 100,000 small files must not be
    100,000 lines drawn on the terminal."""
    told: list[TransferStats | None] = []
    shown = BatchedProgress(told.append, 10_000)
    for _ in range(10_000):
        shown.sent(1)
    shown.end()
    drawn = [stats for stats in told if stats is not None]
    assert 1 <= len(drawn) < 100
    assert drawn[-1].bytes == 10_000 and told[-1] is None
