"""The real Claude Code CLI on two devices, offline, synced by claude-sync through a local remote.

Device A installs the hooks and talks in ~/code/app; device B (another HOME) continues that
session through `claude-sync continue` in its own ~/code/app; A continues after B through the
wrapper. The model is FakeAnthropic, so the test sees exactly what each CLI sent: B's request
must carry A's turns, and the transcript must stay one linear chain on both devices.

Needs the CLI (tests/claude_code.py finds it: $CLAUDE_SYNC_TEST_CLAUDE, else `claude` on PATH);
without it the test is skipped, saying why. .ci/run installs the pinned version.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from claude_code import (
    TIMEOUT,
    ClaudeCode,
    claude_environment,
    message_texts,
    read_jsonl,
)
from conftest import PASSPHRASE, Device, joined
from fake_anthropic import FakeAnthropic
from servers import Server, silenced

from claude_sync.projects import encode_project

CLI = str(Path(sys.executable).parent / "claude-sync")
BACKGROUND_WAIT = 30.0  # seconds a SessionEnd push may take in the background
CHAINED = ("user", "assistant", "attachment")  # transcript lines with uuid and parentUuid


def sync_environment(device: Device) -> dict[str, str]:
    """What claude-sync needs besides HOME, CLAUDE_CONFIG_DIR and PATH (claude_environment)."""
    return {
        "CLAUDE_SYNC_HOME": str(device.sync_home),
        "CLAUDE_SYNC_PASSPHRASE": PASSPHRASE,
    }


def app_folder(device: Device) -> Path:
    folder = device.home / "code" / "app"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def project_folder(device: Device) -> Path:
    """Where Claude Code keeps the transcripts of the device's ~/code/app."""
    return device.claude / "projects" / encode_project(os.path.realpath(app_folder(device)))


def wrapped(
    device: Device, api: FakeAnthropic, claude: str, *args: str
) -> subprocess.CompletedProcess[str]:
    """`claude-sync ARGS` as `device`, a subprocess, its Claude Code talking to `api`."""
    argv = [CLI, *args]
    if api.netns is not None:  # the child claude must reach the fake
        argv = ["nsenter", f"--net={api.netns}", "--", *argv]
    environment = claude_environment(
        device.home, api.url, CLAUDE_SYNC_CLAUDE=claude, **sync_environment(device)
    )
    return subprocess.run(
        argv,
        cwd=app_folder(device),
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=2 * TIMEOUT,  # a pull, Claude Code, a push
        check=False,
    )


def succeeded(result: subprocess.CompletedProcess[str], what: str) -> None:
    assert result.returncode == 0, (
        f"{what} exited {result.returncode}\n--- stdout\n{result.stdout}\n"
        f"--- stderr\n{result.stderr}"
    )


def last_run(device: Device, kind: str) -> dict[str, Any] | None:
    try:
        return json.loads((device.sync_home / "logs" / f"last-{kind}.json").read_text())
    except FileNotFoundError:
        return None


def background_busy(device: Device) -> bool:
    """A push was requested and not yet taken, or a background runner holds its lock."""
    if (device.sync_home / "push-requested").exists():
        return True
    lock = device.sync_home / "background.lock"
    if not lock.exists():
        return False
    fd = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also releases the lock we may have taken
    return False


def wait_background_push(device: Device, since: float) -> dict[str, Any]:
    """Wait (bounded) for the background push a SessionEnd hook asked for after `since` (a
    time.time()) to finish; its record, which must say ok."""
    record = device.sync_home / "logs" / "last-background-push.json"
    deadline = time.monotonic() + BACKGROUND_WAIT
    while time.monotonic() < deadline:
        if not background_busy(device) and record.exists() and record.stat().st_mtime >= since:
            run = json.loads(record.read_text())
            assert run["outcome"] == "ok", f"background push on {device.name}: {run}"
            return run
        time.sleep(0.1)
    log = device.sync_home / "logs" / "claude-sync.log"
    pytest.fail(
        f"no background push on {device.name} within {BACKGROUND_WAIT:.0f}s; hook-push: "
        f"{last_run(device, 'hook-push')}; log:\n{log.read_text() if log.exists() else '-'}"
    )


def assert_request_holds(body: dict[str, Any], expected: tuple[str, ...], what: str) -> None:
    """Every expected text is in the request's messages."""
    texts = message_texts(body)
    for text in expected:
        assert any(text in line for line in texts), f"{what}: no {text!r} in {short(texts)}"


def assert_wrapper_pushed(device: Device) -> None:
    """The wrapper pushed after Claude Code; the SessionEnd hook (settings.json travels, so
    B has the hooks too) left that push to it."""
    pushed = last_run(device, "push")
    assert pushed and pushed["outcome"] == "ok", f"wrapper push on {device.name}: {pushed}"
    handed = last_run(device, "hook-push")
    assert handed and "skipped" in handed["detail"], f"SessionEnd hook: {handed}"


def chain(path: Path) -> list[dict[str, Any]]:
    """The transcript's chained lines (user, assistant, attachment), in file order."""
    return [line for line in read_jsonl(path) if line.get("type") in CHAINED]


def assert_linear(path: Path) -> None:
    """Every chained line's parentUuid is the uuid of the chained line before it."""
    previous = None
    for number, line in enumerate(chain(path)):
        assert line.get("parentUuid") == previous, (
            f"{path.name}: chained line {number} ({line['type']}) has parentUuid "
            f"{line.get('parentUuid')}, expected {previous}: the conversation forked"
        )
        previous = line["uuid"]


def short(texts: list[str]) -> list[str]:
    """The texts, each cut to one line of at most 80 characters, for failure messages."""
    return [" ".join(text.split())[:80] for text in texts]


def leaks(body: dict[str, Any], needle: str) -> list[str]:
    """Excerpts of a request body around each occurrence of `needle`."""
    dumped = json.dumps(body)
    found, start = [], dumped.find(needle)
    while start >= 0:
        found.append(dumped[max(0, start - 60) : start + len(needle) + 60])
        start = dumped.find(needle, start + 1)
    return found


def requests_since(api: FakeAnthropic, count: int) -> list[dict[str, Any]]:
    bodies = api.messages()[count:]
    assert bodies, "Claude Code made no model request"
    return bodies


def test_a_session_moves_between_devices_and_back(
    claude_binary: str, local_server: Server, make_device
) -> None:
    started = time.monotonic()
    a = joined(make_device("a"), local_server)
    b = joined(make_device("b"), local_server)
    a.ok("install")
    timings = {"init A and B": time.monotonic() - started}

    with FakeAnthropic(reply="first answer from A", isolate=True) as api:
        # A: plain `claude -p`, synced only by the hooks install added.
        started, since = time.monotonic(), time.time()
        device_a = ClaudeCode(claude_binary, a.home, api, sync_environment(a))
        result = device_a.run("-p", "hello", cwd=app_folder(a))
        succeeded(result, "A: claude -p hello")
        assert "first answer from A" in result.stdout
        timings["A claude -p (hooks)"] = time.monotonic() - started

        pulled = last_run(a, "hook-pull")
        assert pulled and pulled["outcome"] == "ok", f"SessionStart pull on A: {pulled}"
        handed = last_run(a, "hook-push")
        assert handed and handed["outcome"] == "ok", f"SessionEnd hook on A: {handed}"
        started = time.monotonic()
        wait_background_push(a, since)
        timings["A background push"] = time.monotonic() - started

        transcripts = sorted(project_folder(a).glob("*.jsonl"))
        assert len(transcripts) == 1, transcripts
        a_transcript = transcripts[0]
        after_a = a_transcript.read_bytes()
        session = a_transcript.stem
        b_transcript = project_folder(b) / f"{session}.jsonl"

        # B: another HOME continues A's session through the wrapper.
        api.reply = "answer from B"
        seen = len(api.messages())
        started = time.monotonic()
        result = wrapped(b, api, claude_binary, "continue", "-p", "again")
        timings["B claude-sync continue"] = time.monotonic() - started
        succeeded(result, "B: claude-sync continue -p again")
        assert "answer from B" in result.stdout
        assert_request_holds(
            requests_since(api, seen)[-1],
            ("hello", "first answer from A", "again"),
            "B's request: claude-sync did not bring A's session",
        )
        assert sorted(project_folder(b).glob("*.jsonl")) == [b_transcript], (
            "B did not continue A's session in its own ~/code/app"
        )
        after_b = b_transcript.read_bytes()
        assert after_b.startswith(after_a), "B's copy of A's turns differs from A's"
        assert_wrapper_pushed(b)

        # A again, after B, through the wrapper: A's turn follows B's.
        api.reply = "answer from A after B"
        seen = len(api.messages())
        started = time.monotonic()
        result = wrapped(a, api, claude_binary, "continue", "-p", "third")
        timings["A claude-sync continue"] = time.monotonic() - started
        succeeded(result, "A: claude-sync continue -p third")
        assert_request_holds(
            requests_since(api, seen)[-1],
            ("hello", "first answer from A", "again", "answer from B", "third"),
            "A's request: B's turn did not come back",
        )
        assert_wrapper_pushed(a)

        # Nothing claude-sync wrote reached the model (SessionStart's stdout would).
        # Claude Code injects "SessionStart:startup hook success: <stdout>" for a non-empty
        # stdout and nothing for an empty one (measured on 2.1.328).
        for body in api.messages():
            leaked = leaks(body, "claude-sync") + leaks(body, "hook success")
            assert not leaked, f"a hook's stdout reached the model: {leaked}"

    assert sorted(project_folder(a).glob("*.jsonl")) == [a_transcript]
    final = a_transcript.read_bytes()
    assert final.startswith(after_b), "A's pull rewrote the turns B had added"
    assert_linear(a_transcript)
    lines = chain(a_transcript)
    prompts = [line["message"]["content"] for line in lines if line["type"] == "user"]
    assert prompts == ["hello", "again", "third"]
    replies = [
        block["text"]
        for line in lines
        if line["type"] == "assistant"
        for block in line["message"]["content"]
        if block.get("type") == "text"
    ]
    assert replies == ["first answer from A", "answer from B", "answer from A after B"]

    started = time.monotonic()
    b.ok("pull")
    timings["B pull"] = time.monotonic() - started
    assert b_transcript.read_bytes() == final, "B's transcript differs from A's after a pull"

    # C, a device that has never pulled, resumes the session by its id.
    c = joined(make_device("c"), local_server)
    with FakeAnthropic(reply="answer from C", isolate=True) as api:
        started = time.monotonic()
        result = wrapped(c, api, claude_binary, "resume", session, "-p", "fourth")
        timings["C claude-sync resume"] = time.monotonic() - started
        succeeded(result, "C: claude-sync resume ID -p fourth")
        assert_request_holds(
            api.messages()[-1],
            ("hello", "answer from B", "answer from A after B", "fourth"),
            "C's request: resume did not fetch the session first",
        )
    print(" ".join(f"{name}: {seconds:.1f}s;" for name, seconds in timings.items()))


def first_model_call_after(api: FakeAnthropic, started: float) -> float:
    """Seconds from `started` to the first model call Claude Code made after it."""
    calls = [
        r.received
        for r in api.requests
        if r.method == "POST" and r.path.split("?")[0] == "/v1/messages" and r.received > started
    ]
    assert calls, "Claude Code made no model call"
    return min(calls) - started


def test_a_remote_that_never_answers_delays_claude_by_the_deadline_at_most(
    claude_binary: str, s3_server: Server, make_device
) -> None:
    """SessionStart's pull gives up at hooks.pull_timeout (5 s): Claude Code starts at most
    that (and a second) later than with a remote that answers. The hooks must reach the
    S3 server on this machine's loopback, so the fake is not isolated here."""
    a = joined(make_device("a"), s3_server)
    a.ok("install")
    with FakeAnthropic(reply="hi") as api:
        device = ClaudeCode(claude_binary, a.home, api, sync_environment(a))
        started, since = time.monotonic(), time.time()
        succeeded(device.run("-p", "hello", cwd=app_folder(a)), "claude -p, remote up")
        answering = first_model_call_after(api, started)
        wait_background_push(a, since)  # else the next SessionStart finds the lock held
        with silenced(s3_server):
            started = time.monotonic()
            result = device.run("-p", "again", cwd=app_folder(a))
            succeeded(result, "claude -p, remote silent")
            silent = first_model_call_after(api, started)
        for body in api.messages():
            assert not leaks(body, "claude-sync") + leaks(body, "hook success")
    pulled = last_run(a, "hook-pull")
    assert pulled and pulled["outcome"] == "failed", pulled
    assert "did not answer" in pulled["detail"], pulled
    print(f"first model call: {answering:.2f}s (remote up), {silent:.2f}s (remote silent)")
    assert silent - answering < 5 + 1, f"{silent:.2f}s against {answering:.2f}s"
