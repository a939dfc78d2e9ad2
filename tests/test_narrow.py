"""Narrow runs through the CLI, real files, a real remote: push --session, pull --project,
pull --device (issue 9, point 5)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from conftest import Device, joined, published_files, put, tree
from servers import Server

from claude_sync.projects import encode_project


def line(cwd: Path, text: str) -> str:
    return json.dumps({"type": "user", "cwd": str(cwd), "message": {"content": text}}) + "\n"


def folder_of(path: Path) -> str:
    return encode_project(os.path.realpath(path))


def append(device: Device, relative: str, data: str, at: int) -> None:
    put(device, relative, device.read(relative) + data.encode(), at)


def test_push_session_sends_only_that_session_and_history(
    local_server: Server, make_device
) -> None:
    a, b = (joined(make_device(name), local_server) for name in "ab")
    app = a.home / "app"
    s1, s2 = (f"projects/{folder_of(app)}/{name}" for name in ("s1", "s2"))
    put(a, f"{s1}.jsonl", line(app, "one"), 1)
    put(a, f"{s1}/tool-results/r.txt", "r1\n", 2)
    put(a, f"{s2}.jsonl", line(app, "two"), 3)
    put(a, "history.jsonl", '{"display": "one"}\n', 4)
    put(a, "settings.json", "{}\n", 5)
    put(a, "agents/x.md", "agent x\n", 6)
    put(a, "agents/y.md", "agent y\n", 7)
    a.ok("push")
    b.ok("pull")
    put(b, "agents/y.md", "agent y, from b\n", 8)
    b.ok("push")
    a.ok("pull")  # A's state takes B's agents/y.md; its manifest still names its own
    before = tree(b.claude)
    published = published_files(local_server, a)

    append(a, f"{s1}.jsonl", line(app, "one more"), 10)
    put(a, f"{s1}/tool-results/r.txt", "r1 changed\n", 11)
    put(a, f"{s1}/subagents/agent-1.jsonl", line(app, "sub"), 12)
    append(a, "history.jsonl", '{"display": "one more"}\n', 13)
    append(a, f"{s2}.jsonl", line(app, "two more"), 14)
    put(a, "settings.json", '{"model": "x"}\n', 15)
    (a.claude / "agents/x.md").unlink()
    output = a.ok("push", "--session", "s1")
    assert "4 uploaded, 0 deleted" in output
    now = published_files(local_server, a)
    outside = [path for path in published if "/s1" not in path and path != "history.jsonl"]
    assert {path: now[path] for path in outside} == {path: published[path] for path in outside}
    b.ok("pull")
    after = tree(b.claude)
    b_s1 = f"projects/{folder_of(b.home / 'app')}/s1"
    assert after[f"{b_s1}.jsonl"] == (line(app, "one") + line(app, "one more")).encode()
    assert after[f"{b_s1}/tool-results/r.txt"] == b"r1 changed\n"
    assert after[f"{b_s1}/subagents/agent-1.jsonl"] == line(app, "sub").encode()
    assert after["history.jsonl"] == b'{"display": "one"}\n{"display": "one more"}\n'
    unchanged = {
        path: data
        for path, data in before.items()
        if not path.startswith(b_s1) and "history" not in path
    }
    assert {path: after[path] for path in unchanged} == unchanged  # s2, settings, agents/x.md

    status = json.loads(a.ok("status", "--json"))
    assert sorted(row["path"] for row in status["to_push"]) == [
        "agents/x.md",
        f"{s2}.jsonl",
        "settings.json",
    ]
    a.ok("push")
    b.ok("pull")
    assert b.read("settings.json") == b'{"model": "x"}\n'
    assert not (b.claude / "agents/x.md").exists()


def test_pull_project_takes_only_that_project(local_server: Server, make_device) -> None:
    a, b = (joined(make_device(name), local_server) for name in "ab")
    app, lib = a.home / "code" / "app", a.home / "code" / "lib"
    put(a, f"projects/{folder_of(app)}/s1.jsonl", line(app, "one"), 1)
    put(a, f"projects/{folder_of(app)}/memory/MEMORY.md", "notes\n", 2)
    put(a, f"projects/{folder_of(lib)}/s2.jsonl", line(lib, "two"), 3)
    put(a, "settings.json", "{}\n", 4)
    a.ok("push")
    # B's home differs: ~/code/app is its own folder there.
    bs_app = b.home / "code" / "app"
    b.ok("pull", "--project", str(bs_app))
    assert sorted(tree(b.claude)) == [
        f"projects/{folder_of(bs_app)}/memory/MEMORY.md",
        f"projects/{folder_of(bs_app)}/s1.jsonl",
    ]
    b.ok("pull")
    assert b.read(f"projects/{folder_of(b.home / 'code' / 'lib')}/s2.jsonl")
    assert b.read("settings.json") == b"{}\n"


def test_pull_device_takes_only_what_that_device_published(
    local_server: Server, make_device
) -> None:
    a, b, c = (joined(make_device(name), local_server) for name in "abc")
    put(a, "agents/a.md", "from a\n", 1)
    put(b, "agents/b.md", "from b\n", 2)
    a.ok("push")
    b.ok("push")
    c.ok("pull", "--device", "a")
    assert sorted(tree(c.claude)) == ["agents/a.md"]
    b_id = re.search(r"^b: .*\[(\S+)\]$", c.ok("devices"), re.MULTILINE).group(1)
    c.ok("pull", "--device", b_id)
    assert c.read("agents/b.md") == b"from b\n"
    assert "Already up to date" in c.ok("pull")

    result = c.run("pull", "--device", "nope")
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"Error: no device 'nope' on the remote; known: a [{a_id(c)}], b [{b_id}]"
    ]


def a_id(device: Device) -> str:
    return re.search(r"^a: .*\[(\S+)\]$", device.ok("devices"), re.MULTILINE).group(1)


def test_a_narrow_run_that_names_nothing_is_one_clear_error(
    local_server: Server, make_device, tmp_path: Path
) -> None:
    """A typo in --session or --project must not pass for "nothing to do"."""
    a = joined(make_device("a"), local_server)
    put(a, "projects/-x/s1.jsonl", '{"type": "user"}\n', 1)
    a.ok("push")
    result = a.run("push", "--session", "nosuch")
    assert result.exit_code == 2, result.output
    assert "no session nosuch here" in result.output
    (tmp_path / "elsewhere").mkdir()
    result = a.run("pull", "--project", str(tmp_path / "elsewhere"))
    assert result.exit_code == 2, result.output
    assert f"no project at {tmp_path / 'elsewhere'} here or on the remote" in result.output
