"""The real Claude Code CLI on two devices whose project layouts differ.

A works in /srv/app and maps `/srv` to `~/work` (path_map); B works in ~/work/app. Each
resumes the other's session in its own folder; both then continue one session before
syncing, and each ends with one transcript holding both branches, no conflict copy.
Needs the CLI, as tests/test_claude_code.py does (skipped without it, saying why).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from claude_code import ClaudeCode, message_texts, read_jsonl
from conftest import Device, copies, joined
from fake_anthropic import FakeAnthropic
from servers import Server
from test_claude_code import succeeded, sync_environment

from claude_sync.projects import encode_project


def transcripts(device: Device, place: Path) -> list[Path]:
    folder = device.claude / "projects" / encode_project(os.path.realpath(place))
    return sorted(folder.glob("*.jsonl"))


def prompts(path: Path) -> list[str]:
    return [
        line["message"]["content"]
        for line in read_jsonl(path)
        if line.get("type") == "user" and isinstance(line["message"]["content"], str)
    ]


def test_sessions_move_between_layouts_and_branches_merge(
    claude_binary: str, local_or_s3_server: Server, make_device, tmp_path: Path
) -> None:
    a, b = (joined(make_device(name), local_or_s3_server) for name in "ab")
    srv = tmp_path / "srv"
    on_a, on_b = srv / "app", b.home / "work" / "app"
    for place in (on_a, on_b):
        place.mkdir(parents=True)
    config = a.sync_home / "config.yaml"
    config.write_text(config.read_text() + f"path_map: {{{json.dumps(str(srv))}: ~/work}}\n")

    with FakeAnthropic(reply="answer", isolate=True) as api:
        claude_a = ClaudeCode(claude_binary, a.home, api, sync_environment(a))
        claude_b = ClaudeCode(claude_binary, b.home, api, sync_environment(b))
        succeeded(claude_a.run("-p", "hello from srv", cwd=on_a), "A: claude -p")
        a.ok("push")
        b.ok("pull")
        [session] = transcripts(b, on_b)  # in B's own ~/work/app folder
        seen = len(api.messages())
        succeeded(claude_b.run("--continue", "-p", "again on b", cwd=on_b), "B: --continue")
        texts = message_texts(api.messages()[seen])
        assert any("hello from srv" in text for text in texts), texts
        assert transcripts(b, on_b) == [session]
        b.ok("push")
        a.ok("pull")
        [on_a_session] = transcripts(a, on_a)
        assert on_a_session.name == session.name
        assert prompts(on_a_session) == ["hello from srv", "again on b"]

        # Both continue the same session before either syncs.
        succeeded(claude_a.run("--continue", "-p", "branch a", cwd=on_a), "A: --continue")
        succeeded(claude_b.run("--continue", "-p", "branch b", cwd=on_b), "B: --continue")
        a.ok("push")
        assert "Conflict" not in b.ok("sync")
        a.ok("pull")
        for device, place in ((a, on_a), (b, on_b)):
            [merged] = transcripts(device, place)
            assert sorted(prompts(merged)) == [
                "again on b",
                "branch a",
                "branch b",
                "hello from srv",
            ]
            assert copies(device.claude) == []
        assert on_a_session.read_bytes() == session.read_bytes()
        # Both branches hang off the shared turns: each leaf's chain reaches the root.
        lines = {line["uuid"]: line for line in read_jsonl(session) if "uuid" in line}
        for prompt in ("branch a", "branch b"):
            [leaf] = [
                u for u, line in lines.items() if line.get("message", {}).get("content") == prompt
            ]
            while lines[leaf].get("parentUuid"):
                leaf = lines[leaf]["parentUuid"]
            assert lines[leaf]["message"]["content"] == "hello from srv"
        # Claude Code resumes the merged session on either device.
        seen = len(api.messages())
        succeeded(claude_a.run("--continue", "-p", "after the merge", cwd=on_a), "A: after")
        texts = message_texts(api.messages()[seen])
        assert any("hello from srv" in text for text in texts), texts


def test_long_and_unusual_paths_get_claude_codes_own_folder_names(
    claude_binary: str, tmp_path: Path
) -> None:
    """Over 200 UTF-16 units Claude Code cuts the name and appends a hash of the path."""
    home = tmp_path / "cli-home"
    home.mkdir()
    places = [
        tmp_path / ("long.segment name/" * 14),
        tmp_path / "café déjà" / ("x" * 190),
        tmp_path / "short é😀 dir",
    ]
    with FakeAnthropic(isolate=True) as api:
        claude = ClaudeCode(claude_binary, home, api)
        for place in places:
            place.mkdir(parents=True)
            succeeded(claude.run("-p", "hi", cwd=place), f"claude -p in {place}")
    made = sorted(folder.name for folder in (home / ".claude" / "projects").iterdir())
    assert made == sorted(encode_project(os.path.realpath(place)) for place in places)
    assert any(len(name) > 200 for name in made)


def test_resume_finds_a_session_in_a_folder_named_for_its_repository(
    claude_binary: str, local_server: Server, make_device, tmp_path: Path
) -> None:
    """A git-keyed project with no checkout known here arrives as projects/git-...:
    `claude --resume ID` finds its sessions there, from any directory."""
    a, b = (joined(make_device(name), local_server) for name in "ab")
    checkout = a.home / "src" / "app"
    checkout.mkdir(parents=True)
    for command in (["init", "-q"], ["remote", "add", "origin", "git@github.com:ann/app"]):
        subprocess.run(["git", *command], cwd=checkout, check=True)
    for device in (a, b):
        config = device.sync_home / "config.yaml"
        config.write_text(config.read_text() + "projects: {key: git}\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with FakeAnthropic(isolate=True) as api:
        claude_a = ClaudeCode(claude_binary, a.home, api, sync_environment(a))
        succeeded(claude_a.run("-p", "hello from a", cwd=checkout), "A: claude -p")
        a.ok("push")
        b.ok("pull")
        [session] = (b.claude / "projects" / "git-github-com-ann-app").glob("*.jsonl")
        claude_b = ClaudeCode(claude_binary, b.home, api, sync_environment(b))
        seen = len(api.messages())
        resumed = claude_b.run("--resume", session.stem, "-p", "again", cwd=elsewhere)
        succeeded(resumed, "B: claude --resume ID")
        texts = message_texts(api.messages()[seen])
        assert any("hello from a" in text for text in texts), texts


def test_an_exported_session_resumes_after_import_elsewhere(
    claude_binary: str, local_server: Server, make_device, tmp_path: Path
) -> None:
    """Export on A, import on B into another directory: Claude Code resumes it there."""
    a, b = (joined(make_device(name), local_server) for name in "ab")
    on_a, on_b = a.home / "code" / "app", tmp_path / "elsewhere" / "app"
    for place in (on_a, on_b):
        place.mkdir(parents=True)
    with FakeAnthropic(isolate=True) as api:
        claude_a = ClaudeCode(claude_binary, a.home, api, sync_environment(a))
        succeeded(claude_a.run("-p", "hello before export", cwd=on_a), "A: claude -p")
        [transcript] = transcripts(a, on_a)
        exported = tmp_path / "session.age"
        b_key = b.ok("key", "show").strip().split()[-1]
        a.ok("export", transcript.stem, "-o", str(exported), "--to", b_key)
        b.ok("import", str(exported), "--cwd", str(on_b))
        assert [path.name for path in transcripts(b, on_b)] == [transcript.name]
        claude_b = ClaudeCode(claude_binary, b.home, api, sync_environment(b))
        seen = len(api.messages())
        succeeded(claude_b.run("--continue", "-p", "after import", cwd=on_b), "B: --continue")
        texts = message_texts(api.messages()[seen])
        assert any("hello before export" in text for text in texts), texts


def test_a_swept_session_is_restored_and_resumes(
    claude_binary: str, local_server: Server, make_device
) -> None:
    """Claude Code's cleanup removes a session here; the remote kept it; restore brings it
    back with a fresh mtime, and Claude Code resumes it."""
    a = joined(make_device("a"), local_server)
    place = a.home / "code" / "app"
    place.mkdir(parents=True)
    with FakeAnthropic(isolate=True) as api:
        claude = ClaudeCode(claude_binary, a.home, api, sync_environment(a))
        succeeded(claude.run("-p", "an old session", cwd=place), "claude -p")
        [transcript] = transcripts(a, place)
        a.ok("push")
        kept = transcript.read_bytes()
        transcript.unlink()  # what cleanupPeriodDays does
        a.ok("sync")
        assert not transcript.exists()  # swept: not downloaded again
        listed = json.loads(a.ok("sessions", "--json", "--project", str(place)))
        assert [(row["id"], row["remote_only"]) for row in listed] == [(transcript.stem, True)]
        before = time.time()
        a.ok("restore", "--session", transcript.stem)
        assert transcript.read_bytes() == kept
        assert transcript.stat().st_mtime >= before - 1
        seen = len(api.messages())
        resumed = claude.run("--resume", transcript.stem, "-p", "back again", cwd=place)
        succeeded(resumed, "claude --resume ID after restore")
        texts = message_texts(api.messages()[seen])
        assert any("an old session" in text for text in texts), texts


def test_a_path_map_set_after_syncing_brings_sessions_where_claude_code_looks(
    claude_binary: str, local_server: Server, make_device, tmp_path: Path
) -> None:
    """A synced /srv/app and B ~/work/app as two projects before A mapped /srv to ~/work:
    after the move, B resumes A's session from its own ~/work/app."""
    a, b = (joined(make_device(name), local_server) for name in "ab")
    srv = tmp_path / "srv"
    on_a, on_b = srv / "app", b.home / "work" / "app"
    for place in (on_a, on_b):
        place.mkdir(parents=True)
    with FakeAnthropic(reply="answer", isolate=True) as api:
        claude_a = ClaudeCode(claude_binary, a.home, api, sync_environment(a))
        claude_b = ClaudeCode(claude_binary, b.home, api, sync_environment(b))
        succeeded(claude_a.run("-p", "hello from srv", cwd=on_a), "A: claude -p")
        [from_a] = transcripts(a, on_a)
        a.ok("push")
        succeeded(claude_b.run("-p", "hello from b", cwd=on_b), "B: claude -p")
        b.ok("sync")
        config = a.sync_home / "config.yaml"
        config.write_text(config.read_text() + f"path_map: {{{json.dumps(str(srv))}: ~/work}}\n")
        assert "on the remote is now projects/~-work-app" in a.ok("sync")
        on_a.rmdir()  # B is another machine: it has no /srv/app
        b.ok("sync")
        names = [p.name for p in transcripts(b, on_b)]
        assert from_a.name in names and len(names) == 2
        seen = len(api.messages())
        resumed = claude_b.run("--resume", from_a.stem, "-p", "continued on b", cwd=on_b)
        succeeded(resumed, "B: claude --resume ID in ~/work/app")
        texts = message_texts(api.messages()[seen])
        assert any("hello from srv" in text for text in texts), texts
