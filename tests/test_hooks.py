"""Hook mode, the background push, the wrapper around Claude Code, and signals.

Hook-mode commands run as real subprocesses, as Claude Code runs them, so their stdout is
the bytes Claude Code would hand to the model.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import RCLONE, Device, joined, put
from servers import Server, silenced

from claude_sync.background import REQUEST, request_push, run_requested
from claude_sync.pathmap import encode_project

BIN = Path(sys.executable).parent
CLI = str(BIN / "claude-sync")
SESSION = "0f3c5b2e-8a41-4d6e-9c7b-2f1e0a9d8c76"


def transcript(device: Device, session: str = SESSION) -> str:
    return f"projects/{encode_project(os.path.realpath(device.home))}-code-app/{session}.jsonl"


def hook_input(device: Device, event: str, session: str = SESSION) -> bytes:
    return json.dumps(
        {
            "session_id": session,
            "transcript_path": str(device.claude / transcript(device, session)),
            "cwd": str(device.home / "code" / "app"),
            "hook_event_name": event,
            "source": "resume",
            "unknown_field": [1, 2],
        }
    ).encode()


def run_cli(
    device: Device,
    *args: str,
    stdin: bytes = b"",
    timeout: float = 60,
    cwd: Path | None = None,
    **extra: str,
) -> subprocess.CompletedProcess[bytes]:
    environment = {**os.environ, **device.environment(**extra)}
    environment["PATH"] = str(BIN) + os.pathsep + environment.get("PATH", "")
    return subprocess.run(
        [CLI, *args],
        input=stdin,
        env=environment,
        capture_output=True,
        timeout=timeout,
        check=False,
        cwd=cwd,
    )


def pull_hook(device: Device, **extra: str) -> subprocess.CompletedProcess[bytes]:
    done = run_cli(device, "pull", "--hook", stdin=hook_input(device, "SessionStart"), **extra)
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"", done.stdout
    assert len(done.stderr.decode().splitlines()) <= 1, done.stderr
    return done


def last_run(device: Device, kind: str) -> dict:
    return json.loads((device.sync_home / "logs" / f"last-{kind}.json").read_text())


def wait_for(condition, seconds: float = 30.0) -> None:
    give_up = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < give_up, "timed out waiting"
        time.sleep(0.05)


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


# hook mode ---------------------------------------------------------------------------------


def test_pull_hook_holds_back_the_opened_session_and_says_how_to_get_it(
    make_device, local_server: Server
) -> None:
    a, b = joined(make_device("a"), local_server), joined(make_device("b"), local_server)
    put(a, transcript(a), '{"uuid": "1"}\n', 1)
    put(a, transcript(a, "other-session"), '{"uuid": "x"}\n', 1)
    put(a, "CLAUDE.md", "v1\n", 1)
    a.ok("push")
    b.ok("pull")
    put(a, transcript(a), '{"uuid": "1"}\n{"uuid": "2"}\n', 2)
    put(a, transcript(a, "other-session"), '{"uuid": "x"}\n{"uuid": "y"}\n', 2)
    put(a, "CLAUDE.md", "v2\n", 2)
    a.ok("push")

    done = pull_hook(b)
    assert f"claude-sync resume {SESSION}" in done.stderr.decode()
    assert b.read(transcript(b)) == b'{"uuid": "1"}\n'
    assert b.read(transcript(b, "other-session")) == a.read(transcript(a, "other-session"))
    assert b.read("CLAUDE.md") == b"v2\n"
    assert last_run(b, "hook-pull")["outcome"] == "ok"
    assert "held back" in last_run(b, "hook-pull")["detail"]

    b.ok("pull")
    assert b.read(transcript(b)) == a.read(transcript(a))


def test_hook_mode_writes_nothing_to_stdout_whatever_happens(
    make_device, local_server: Server
) -> None:
    a, b = joined(make_device("a"), local_server), joined(make_device("b"), local_server)
    put(a, "CLAUDE.md", "a1\n", 1)
    a.ok("push")
    pull_hook(b)  # ok, with a download
    assert b.read("CLAUDE.md") == b"a1\n"

    put(a, "CLAUDE.md", "a2\n", 2)
    a.ok("push")
    put(b, "CLAUDE.md", "b2\n", 3)
    pull_hook(b)  # a conflict
    assert "conflict" in (b.sync_home / "logs" / "claude-sync.log").read_text()

    config = b.sync_home / "config.yaml"
    config.write_text(config.read_text() + "rclone: [broken\n")
    done = pull_hook(b)  # an error
    assert b"config.yaml" in done.stderr
    assert last_run(b, "hook-pull")["outcome"] == "failed"

    stranger = make_device("c")  # not set up at all
    pull_hook(stranger)
    done = run_cli(stranger, "push", "--hook", stdin=hook_input(stranger, "SessionEnd"))
    assert (done.returncode, done.stdout) == (0, b"")
    assert b"claude-sync init" in done.stderr

    local_server.stop()
    (local_server.data_dir).rename(local_server.data_dir.with_name("gone"))
    pull_hook(a)  # the remote is gone


def test_pull_hook_gives_up_at_its_deadline_against_a_remote_that_never_answers(
    make_device, s3_server: Server
) -> None:
    device = joined(make_device("a"), s3_server)
    with silenced(s3_server):
        started = time.monotonic()
        done = pull_hook(device)
        elapsed = time.monotonic() - started
    assert elapsed < 5 + 3, f"took {elapsed:.1f} s"
    assert b"gave up" in done.stderr or b"did not answer" in done.stderr, done.stderr
    assert last_run(device, "hook-pull")["outcome"] == "failed"
    assert not (device.sync_home / "staging" / "pull").exists()


def rclones_of(device: Device) -> list[int]:
    """Live processes whose command line names this device's claude-sync folder."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if str(device.sync_home).encode() in command and alive(int(entry.name)):
                found.append(int(entry.name))
    return found


def test_an_interactive_run_waits_for_a_silent_remote_no_longer_than_its_timeout(
    make_device, s3_server: Server, tmp_path: Path
) -> None:
    """rclone.timeout bounds the wait for the manifests in total, retries included."""
    device = joined(make_device("a"), s3_server)
    config = device.sync_home / "config.yaml"
    config.write_text(config.read_text().replace("timeout: 30", "timeout: 2"))
    (device.claude / "plans").mkdir(parents=True)
    claude = fake_claude(tmp_path, device, exit_code=0)
    with silenced(s3_server):
        started = time.monotonic()
        done = run_cli(device, "claude", "-p", "hi", CLAUDE_SYNC_CLAUDE=str(claude))
        elapsed = time.monotonic() - started
    assert done.returncode == 0
    assert (tmp_path / "arguments").read_text() == "-p hi\n"
    assert b"pull failed, starting Claude Code anyway" in done.stderr
    assert b"did not answer" in done.stderr
    assert elapsed < 2 * (2 + 3), f"took {elapsed:.1f} s"  # the pull, then the push


def test_the_deadline_leaves_no_rclone_behind(make_device, s3_server: Server) -> None:
    device = joined(make_device("a"), s3_server)
    with silenced(s3_server):
        pull_hook(device, CLAUDE_SYNC_TEST_MARK=str(device.sync_home))
        assert rclones_of(device) == []


# signals -----------------------------------------------------------------------------------


def slow_rclone(folder: Path, command: str) -> Path:
    """An rclone that sleeps (as the process rclone would be) before `command` runs."""
    script = folder / "slow-rclone"
    script.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = "{command}" ]; then touch "{folder}/started"; exec sleep 60; fi\n'
        f'exec "{RCLONE}" "$@"\n'
    )
    script.chmod(0o755)
    return script


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_mid_push_stops_rclone_and_cleans_staging(
    make_device, s3_server: Server, tmp_path: Path, number: int
) -> None:
    """On the S3 server: a push to a local folder runs no rclone."""
    device = joined(make_device("a"), s3_server)
    put(device, "CLAUDE.md", "hello\n", 1)
    wrapper = slow_rclone(tmp_path, "move")
    environment = {**os.environ, **device.environment(CLAUDE_SYNC_RCLONE=str(wrapper))}
    process = subprocess.Popen(
        [CLI, "push"], env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    wait_for(lambda: (tmp_path / "started").exists())
    sleeper = children_of(process.pid)
    assert sleeper, "rclone was not started"
    process.send_signal(number)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 128 + number
    assert stderr.decode().strip().splitlines() == [
        f"Interrupted ({signal.Signals(number).name}): no file in the Claude folder was left "
        "half-written."
    ]
    assert not any(alive(pid) for pid in sleeper)
    assert not (device.sync_home / "staging" / "push").exists()
    assert "To push:   1 file\n" in device.ok("status")


def test_sigterm_mid_pull_stops_rclone(make_device, s3_server: Server) -> None:
    device = joined(make_device("a"), s3_server)
    with silenced(s3_server):
        environment = {**os.environ, **device.environment()}
        process = subprocess.Popen(
            [CLI, "pull"], env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        wait_for(lambda: bool(rclones_of(device)))
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
        assert process.returncode == 128 + signal.SIGTERM
        assert rclones_of(device) == []
        assert not (device.sync_home / "staging" / "pull").exists()


# output discipline ---------------------------------------------------------------------------


def test_quiet_prints_nothing_to_stdout_even_for_a_conflict(
    make_device, local_server: Server
) -> None:
    a, b = joined(make_device("a"), local_server), joined(make_device("b"), local_server)
    put(a, "CLAUDE.md", "a\n", 1)
    a.ok("push")
    put(b, "CLAUDE.md", "b\n", 2)
    done = run_cli(b, "pull", "-q")
    assert done.returncode == 3, done.stderr
    assert done.stdout == b""
    assert b"Conflict: CLAUDE.md" in done.stderr
    done = run_cli(b, "push", "-q")
    assert (done.returncode, done.stdout) == (0, b"")


def test_the_pull_hook_names_the_conflicts_an_earlier_pull_left(
    make_device, local_server: Server
) -> None:
    """A SessionStart with nothing new on the remote still tells of them (on stderr)."""
    a, b = joined(make_device("a"), local_server), joined(make_device("b"), local_server)
    put(a, "CLAUDE.md", "a\n", 1)
    a.ok("push")
    put(b, "CLAUDE.md", "b\n", 2)
    b.ok("pull", exit_code=3)
    done = pull_hook(b)
    assert "1 conflict to settle; run `claude-sync conflicts`" in done.stderr.decode()
    assert "1 conflict to settle" in last_run(b, "hook-pull")["detail"]


# the background push -----------------------------------------------------------------------


def test_requests_during_a_push_are_coalesced_into_exactly_one_more(tmp_path: Path) -> None:
    pushes: list[int] = []
    second_runner: list[int] = []

    def push() -> None:
        pushes.append(len(pushes))
        if len(pushes) == 1:
            for _ in range(3):
                (tmp_path / REQUEST).write_text("again\n")
                second_runner.append(run_requested(tmp_path, lambda: pushes.append(-1)))

    (tmp_path / REQUEST).write_text("first\n")
    assert run_requested(tmp_path, push) == 2
    assert pushes == [0, 1]
    assert second_runner == [0, 0, 0]  # the lock was held: those runners left at once
    assert not (tmp_path / REQUEST).exists()
    assert run_requested(tmp_path, push) == 0


def test_push_hook_hands_the_push_to_the_background(
    make_device, s3_server: Server, tmp_path: Path
) -> None:
    """On the S3 server, whose rclone is slowed down: a push to a local folder runs none."""
    a, b = joined(make_device("a"), s3_server), joined(make_device("b"), s3_server)
    put(a, "CLAUDE.md", "one\n", 1)
    wrapper = tmp_path / "marking-rclone"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = move ]; then touch "{tmp_path}/copying"; sleep 1; fi\n'
        f'exec "{RCLONE}" "$@"\n'
    )
    wrapper.chmod(0o755)
    slow = {"CLAUDE_SYNC_RCLONE": str(wrapper)}
    done = run_cli(a, "push", "--hook", stdin=hook_input(a, "SessionEnd"), **slow)
    assert (done.returncode, done.stdout, done.stderr) == (0, b"", b"")
    assert last_run(a, "hook-push")["outcome"] == "ok"
    wait_for(lambda: (tmp_path / "copying").exists())
    put(a, "CLAUDE.md", "two\n", 2)
    for _ in range(3):  # while the first push runs
        run_cli(a, "push", "--hook", stdin=hook_input(a, "Stop"), **slow)
    log = a.sync_home / "logs" / "claude-sync.log"
    wait_for(lambda: log.read_text().count("background-push: ok") == 2)
    time.sleep(1.5)
    assert log.read_text().count("background-push: ok") == 2
    assert not (a.sync_home / REQUEST).exists()
    b.ok("pull")
    assert b.read("CLAUDE.md") == b"two\n"
    status = a.ok("status")
    assert "background-push" in status and "hook-push" in status


def test_a_failed_background_push_is_reported_until_a_push_succeeds(
    make_device, local_server: Server
) -> None:
    device = joined(make_device("a"), local_server)
    put(device, "CLAUDE.md", "one\n", 1)
    run_cli(
        device,
        "push",
        "--hook",
        stdin=hook_input(device, "SessionEnd"),
        CLAUDE_SYNC_RCLONE="/nonexistent/rclone",
    )
    wait_for(lambda: (device.sync_home / "logs" / "last-background-push.json").exists())
    assert last_run(device, "background-push")["outcome"] == "failed"
    for command in ("status", "pull"):
        result = device.run(command)
        assert "the background push at" in result.stderr, command
        assert "/nonexistent/rclone" in result.stderr
    device.ok("push")
    assert "background push" not in device.run("status").stderr


# the wrapper -------------------------------------------------------------------------------


def fake_claude(folder: Path, device: Device, exit_code: int) -> Path:
    """A `claude` that records its arguments and what it found, writes a file, and exits."""
    script = folder / "claude"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$@" > "{folder}/arguments"\n'
        f'cat "{device.claude}/CLAUDE.md" > "{folder}/seen" 2>/dev/null\n'
        f'echo "$CLAUDE_SYNC_WRAPPED" > "{folder}/wrapped"\n'
        f'echo "from the session" > "{device.claude}/plans/made-in-session.md"\n'
        "echo claude says hi\n"
        f"exit {exit_code}\n"
    )
    script.chmod(0o755)
    return script


def a_pushed_b_ready(make_device, server: Server) -> tuple[Device, Device]:
    """A and B on `server`: A has pushed CLAUDE.md; B has the folder its fake session writes."""
    a, b = joined(make_device("a"), server), joined(make_device("b"), server)
    put(a, "CLAUDE.md", "from a\n", 1)
    a.ok("push")
    (b.claude / "plans").mkdir(parents=True)
    return a, b


def test_the_wrapper_pulls_runs_claude_and_pushes(
    make_device, local_server: Server, tmp_path: Path
) -> None:
    a, b = a_pushed_b_ready(make_device, local_server)
    claude = fake_claude(tmp_path, b, exit_code=3)

    done = run_cli(b, "resume", SESSION, "-p", "again", CLAUDE_SYNC_CLAUDE=str(claude))
    assert done.returncode == 3, done.stderr
    assert done.stdout == b"claude says hi\n"
    assert (tmp_path / "arguments").read_text() == f"--resume {SESSION} -p again\n"
    assert (tmp_path / "seen").read_text() == "from a\n"  # pulled before Claude Code ran
    assert (tmp_path / "wrapped").read_text() == f"{claude}\n"
    a.ok("pull")
    assert a.read("plans/made-in-session.md") == b"from the session\n"  # pushed after

    run_cli(b, "continue", "--model", "x", CLAUDE_SYNC_CLAUDE=str(claude))
    assert (tmp_path / "arguments").read_text() == "--continue --model x\n"


def test_the_wrapper_starts_claude_when_the_remote_is_down(
    make_device, local_server: Server, tmp_path: Path
) -> None:
    device = joined(make_device("a"), local_server)
    (device.claude / "plans").mkdir(parents=True)
    local_server.data_dir.rename(tmp_path / "gone")
    claude = fake_claude(tmp_path, device, exit_code=0)
    done = run_cli(device, "claude", "-p", "hi", CLAUDE_SYNC_CLAUDE=str(claude))
    assert done.returncode == 0
    assert (tmp_path / "arguments").read_text() == "-p hi\n"
    assert b"pull failed, starting Claude Code anyway" in done.stderr
    assert b"the push goes on in the background" in done.stderr
    wait_for(lambda: (device.sync_home / "logs" / "last-background-push.json").exists())
    assert last_run(device, "background-push")["outcome"] == "failed"
    assert "the background push at" in device.run("status").stderr


def test_the_background_runner_ignores_a_claude_sync_folder_in_the_project(
    make_device, local_server: Server, tmp_path: Path
) -> None:
    """Hooks run in the user's project; `python -m` would import a claude_sync/ found there."""
    device = joined(make_device("a"), local_server)
    put(device, "CLAUDE.md", "one\n", 1)
    project = tmp_path / "project"
    (project / "claude_sync").mkdir(parents=True)
    (project / "claude_sync" / "__init__.py").write_text("")
    (project / "claude_sync" / "__main__.py").write_text(
        f"open({str(tmp_path / 'hijacked')!r}, 'w').close()\n"
    )
    run_cli(device, "push", "--hook", stdin=hook_input(device, "SessionEnd"), cwd=project)
    wait_for(lambda: (device.sync_home / "logs" / "last-background-push.json").exists())
    assert last_run(device, "background-push")["outcome"] == "ok"
    assert not (tmp_path / "hijacked").exists()


def test_hook_mode_exits_0_when_its_folder_cannot_be_written(make_device, tmp_path: Path) -> None:
    device = make_device("a")
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    for args in (("pull", "--hook"), ("push", "--hook")):
        done = run_cli(device, *args, stdin=b"{}", CLAUDE_SYNC_HOME=str(not_a_folder))
        assert (done.returncode, done.stdout) == (0, b""), done.stderr
        assert len(done.stderr.splitlines()) == 1, done.stderr


def test_a_claude_on_path_that_calls_the_wrapper_is_refused_not_looped(
    make_device, local_server: Server, tmp_path: Path
) -> None:
    device = joined(make_device("a"), local_server)
    loop = tmp_path / "claude"
    loop.write_text(f'#!/bin/sh\nexec "{CLI}" claude "$@"\n')
    loop.chmod(0o755)
    done = run_cli(device, "claude", "-p", "x", timeout=30, CLAUDE_SYNC_CLAUDE=str(loop))
    assert done.returncode == 2
    assert b"already runs around" in done.stderr


def test_help_and_unknown_options_reach_claude_code(
    make_device, local_server: Server, tmp_path: Path
) -> None:
    device = joined(make_device("a"), local_server)
    (device.claude / "plans").mkdir(parents=True)
    claude = fake_claude(tmp_path, device, exit_code=0)
    run_cli(device, "claude", "--help", CLAUDE_SYNC_CLAUDE=str(claude))
    assert (tmp_path / "arguments").read_text() == "--help\n"
    run_cli(device, "claude", "--model", "x", "-p", "--verbose", CLAUDE_SYNC_CLAUDE=str(claude))
    assert (tmp_path / "arguments").read_text() == "--model x -p --verbose\n"


def test_a_wrapper_whose_terminal_is_gone_still_runs_claude_and_pushes(
    make_device, local_server: Server, tmp_path: Path
) -> None:
    a, b = a_pushed_b_ready(make_device, local_server)
    claude = fake_claude(tmp_path, b, exit_code=4)
    environment = {**os.environ, **b.environment(CLAUDE_SYNC_CLAUDE=str(claude))}
    process = subprocess.Popen(
        [CLI, "claude"], env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert process.stderr is not None
    process.stderr.close()  # every line claude-sync writes now fails: EPIPE
    assert process.wait(timeout=60) == 4
    assert (tmp_path / "arguments").exists()
    wait_for(lambda: (b.sync_home / "logs" / "last-background-push.json").exists())
    assert last_run(b, "background-push")["outcome"] == "ok"
    a.ok("pull")
    assert a.read("plans/made-in-session.md") == b"from the session\n"


def test_no_runner_is_started_while_one_runs(tmp_path: Path) -> None:
    """Each runner started costs the hook a Python start-up: a request while one runs only
    leaves the request, which the running one takes."""
    (tmp_path / "background.lock").touch()
    fd = os.open(tmp_path / "background.lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    before = set(children_of(os.getpid()))
    try:
        for _ in range(3):
            request_push(tmp_path, "test")
        assert set(children_of(os.getpid())) == before
        assert (tmp_path / REQUEST).exists()
    finally:
        os.close(fd)
    pushes: list[int] = []
    assert run_requested(tmp_path, lambda: pushes.append(1)) == 1
