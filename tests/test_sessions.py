"""Sessions kept after Claude Code forgets them, listed, restored; narrow pushes and pulls.
Through the CLI, real files, a real remote (issue 9, points 4 and 5)."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import time
from pathlib import Path

import pytest
from conftest import T0, Device, copies, joined, put
from servers import Server

from claude_sync.cli_output import when_iso
from claude_sync.projects import encode_project


def test_conflict_copy_swept_with_its_session_stays_but_settling_one_deletes_it(
    local_server: Server, make_device
) -> None:
    a, b, c = (joined(make_device(name), local_server) for name in "abc")
    put(a, "projects/-p/s.jsonl", '{"n": 1}\n', 1)
    put(a, "projects/-p/s/tool-results/r.txt", "one\n", 2)
    a.ok("push")
    b.ok("pull")
    put(a, "projects/-p/s/tool-results/r.txt", "from a\n", 10)
    put(b, "projects/-p/s/tool-results/r.txt", "from b\n", 11)
    a.ok("push")
    b.ok("pull", exit_code=3)
    [copy] = copies(b.claude)
    assert copy.startswith("projects/-p/s/tool-results/")
    b.ok("push")
    a.ok("pull", exit_code=3)
    c.ok("pull", exit_code=3)
    assert copies(a.claude) == copies(c.claude) == [copy]
    # Claude Code's cleanup takes the session on A, the copy with it: nothing deleted elsewhere.
    shutil.rmtree(a.claude / "projects/-p/s")
    (a.claude / "projects/-p/s.jsonl").unlink()
    a.ok("push")
    b.ok("pull", exit_code=3)
    c.ok("pull", exit_code=3)
    assert copies(b.claude) == copies(c.claude) == [copy]
    a.ok("pull")
    assert not (a.claude / "projects/-p/s").exists()
    # Settling it on B (keep the local side) deletes the copy on every device.
    b.ok("conflicts", "--keep", "local")
    assert copies(b.claude) == []
    b.ok("push")
    c.ok("pull")
    assert copies(c.claude) == []
    assert c.read("projects/-p/s/tool-results/r.txt") == b"from b\n"


# sessions and restore ----------------------------------------------------------------


def user(cwd: Path, text: str) -> str:
    row = {"type": "user", "cwd": str(cwd), "message": {"role": "user", "content": text}}
    return json.dumps(row) + "\n"


def reply(cwd: Path, text: str) -> str:
    content = [{"type": "text", "text": text}]
    return (
        json.dumps({"type": "assistant", "cwd": str(cwd), "message": {"content": content}}) + "\n"
    )


def transcript(cwd: Path, prompt: str) -> str:
    meta = {"type": "user", "isMeta": True, "cwd": str(cwd), "message": {"content": "caveat"}}
    return json.dumps({"type": "summary"}) + "\n" + json.dumps(meta) + "\n" + user(cwd, prompt)


def folder_of(path: Path) -> str:
    return encode_project(os.path.realpath(path))


def listed(device: Device, *args: str) -> dict[str, dict]:
    rows = json.loads(device.ok("sessions", "--json", *args))
    return {row["id"]: row for row in rows}


def test_sessions_lists_here_and_kept_on_the_remote_and_restore_brings_one_back(
    local_server: Server, make_device, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = joined(make_device("a"), local_server)
    app, lib = a.home / "code" / "app", a.home / "code" / "lib"
    app.mkdir(parents=True)
    lib.mkdir(parents=True)
    long_prompt = "fix the login bug\nthat appears  when the password has a tab\tin it " * 3
    put(a, f"projects/{folder_of(app)}/s1.jsonl", transcript(app, long_prompt), 100)
    put(a, f"projects/{folder_of(app)}/s1/tool-results/r.txt", "x" * 1000, 101)
    put(a, f"projects/{folder_of(app)}/s2.jsonl", transcript(app, "add tests"), 200)
    content = [{"type": "text", "text": "explain the cache"}]
    first = {"type": "user", "cwd": str(lib), "message": {"content": content}}
    put(a, f"projects/{folder_of(lib)}/s3.jsonl", json.dumps(first) + "\n", 300)
    put(a, "CLAUDE.md", "# notes\n", 300)  # files outside projects/ are no session
    put(a, "history.jsonl", '{"display": "x"}\n', 300)
    a.ok("push")
    # Claude Code's cleanup sweeps s1 and its folder; the push keeps them on the remote.
    shutil.rmtree(a.claude / "projects" / folder_of(app) / "s1")
    (a.claude / "projects" / folder_of(app) / "s1.jsonl").unlink()
    a.ok("push")

    rows = listed(a, "--project", str(app))
    assert list(rows) == ["s2", "s1"]  # newest first, only that project
    assert rows["s2"] == {
        "id": "s2",
        "project": "~/code/app",
        "prompt": "add tests",
        "size": len(transcript(app, "add tests")),
        "last_change": when_iso((T0 + 200) * 10**9),
        "devices": ["a"],
        "remote_only": False,
    }
    assert rows["s1"]["remote_only"] is True and rows["s1"]["prompt"] is None
    assert rows["s1"]["size"] == len(transcript(app, long_prompt)) + 1000
    assert rows["s1"]["last_change"] == when_iso((T0 + 101) * 10**9)
    every = listed(a, "--all")
    assert list(every) == ["s3", "s2", "s1"]
    assert every["s3"]["prompt"] == "explain the cache"
    assert every["s3"]["project"] == "~/code/lib"
    monkeypatch.chdir(lib)  # default: the current directory's project
    assert list(listed(a)) == ["s3"]
    text = a.ok("sessions", "--project", str(app))
    assert "s1" in text and "only on the remote" in text and "add tests" in text

    output = a.ok("restore", "--session", "s1")
    assert "Restored 1 session" in output and "claude --resume s1" in output
    restored = a.claude / "projects" / folder_of(app) / "s1.jsonl"
    assert restored.read_text() == transcript(app, long_prompt)
    assert (restored.parent / "s1/tool-results/r.txt").read_text() == "x" * 1000
    for path in (restored, restored.parent / "s1/tool-results/r.txt"):
        assert path.stat().st_mtime > time.time() - 60  # fresh: the next cleanup spares it
    assert listed(a, "--project", str(app))["s1"]["remote_only"] is False
    text = a.ok("sessions", "--project", str(app))
    assert "fix the login bug that appears when the password has a tab…" in text
    assert "in it" not in text and "only on the remote" not in text  # one short line only
    assert "Nothing to push" in a.ok("push")
    assert "Already up to date" in a.ok("pull")
    assert restored.read_text() == transcript(app, long_prompt)
    assert "Nothing to restore" in a.ok("restore", "--session", "s1")
    assert a.run("restore", "--session", "nope").exit_code == 1


def test_restore_by_date_and_by_project(local_server: Server, make_device) -> None:
    a = joined(make_device("a"), local_server)
    app = a.home / "app"
    app.mkdir()
    day = 24 * 3600
    put(a, f"projects/{folder_of(app)}/old.jsonl", transcript(app, "old"), 0)
    put(a, f"projects/{folder_of(app)}/new.jsonl", transcript(app, "new"), 60 * day)
    a.ok("push")
    for name in ("old", "new"):
        (a.claude / "projects" / folder_of(app) / f"{name}.jsonl").unlink()
    a.ok("push")
    since = datetime.date.fromtimestamp(T0 + 30 * day).isoformat()
    assert "Restored 1 session" in a.ok("restore", "--since", since)
    assert (a.claude / "projects" / folder_of(app) / "new.jsonl").exists()
    assert not (a.claude / "projects" / folder_of(app) / "old.jsonl").exists()
    assert "Restored 1 session" in a.ok("restore", "--project", str(app))
    assert (a.claude / "projects" / folder_of(app) / "old.jsonl").read_text() == transcript(
        app, "old"
    )
    assert "Nothing to push" in a.ok("push")
    assert a.run("restore").exit_code == 2


def test_a_restore_that_brings_back_a_conflict_copy_exits_3(
    local_server: Server, make_device
) -> None:
    """A conflict copy restored with its session is a conflict left to settle."""
    a = joined(make_device("a"), local_server)
    put(a, "projects/-p/s.jsonl", '{"n": 1}\n', 1)
    put(a, "projects/-p/s/tool-results/r.txt.conflict-20261130-100000-b", "from b\n", 2)
    a.ok("push", exit_code=0)
    shutil.rmtree(a.claude / "projects/-p")  # Claude Code's cleanup
    a.ok("sync")
    result = a.run("restore", "--session", "s")
    assert result.exit_code == 3, result.output
    assert "1 conflict to settle" in result.output
    assert a.read("projects/-p/s/tool-results/r.txt.conflict-20261130-100000-b") == b"from b\n"
