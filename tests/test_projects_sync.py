"""Projects between devices whose homes and layouts differ, through a real remote."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import Device, joined, put
from servers import Server

from claude_sync.projects import encode_project


def line(cwd: str, uuid: str, text: str = "") -> str:
    row = {"type": "user", "cwd": cwd, "uuid": uuid, "message": {"content": text or uuid}}
    return json.dumps(row) + "\n"


def folder_of(path: Path | str) -> str:
    return encode_project(os.path.realpath(path))


def with_path_map(device: Device, path_map: dict[str, str]) -> None:
    config = device.sync_home / "config.yaml"
    mapping = ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in path_map.items())
    config.write_text(config.read_text() + f"path_map: {{{mapping}}}\n")


@pytest.fixture
def layouts(tmp_path: Path, make_device) -> dict[str, Path]:
    """Ann's machine: a project next to her home folder, one under /srv. Bob's: ~/work."""
    places = {
        "sibling": tmp_path / "device-a-work" / "app",  # next to A's home, not in it
        "srv": tmp_path / "srv" / "app",
        "bobs": tmp_path / "device-b" / "work" / "app",
    }
    for place in (places["sibling"], places["srv"]):
        place.mkdir(parents=True)
    return places  # Bob's is made once his device exists


def test_projects_keep_their_identity_across_homes_and_layouts(
    local_or_s3_server: Server, make_device, layouts: dict[str, Path], tmp_path: Path
) -> None:
    a, b = (joined(make_device(name), local_or_s3_server) for name in "ab")
    layouts["bobs"].mkdir(parents=True)
    with_path_map(a, {str(tmp_path / "srv"): "~/work"})
    sibling, srv, bobs = (os.path.realpath(layouts[k]) for k in ("sibling", "srv", "bobs"))
    put(a, f"projects/{folder_of(sibling)}/s1.jsonl", line(sibling, "a1"), 1)
    put(a, f"projects/{folder_of(srv)}/s2.jsonl", line(srv, "a2"), 2)
    a.ok("push")
    b.ok("pull")
    # Next to A's home is not under it: B keeps the absolute name, as Claude Code would.
    assert b.read(f"projects/{folder_of(sibling)}/s1.jsonl") == line(sibling, "a1").encode()
    # /srv/app is ~/work/app by A's path_map: on B it is under B's ~/work/app.
    assert b.read(f"projects/{folder_of(bobs)}/s2.jsonl") == line(srv, "a2").encode()
    assert sorted(p.name for p in (b.claude / "projects").iterdir()) == sorted(
        [folder_of(sibling), folder_of(bobs)]
    )
    # B continues the session in its own ~/work/app, and starts one of its own there.
    put(
        b,
        f"projects/{folder_of(bobs)}/s2.jsonl",
        line(srv, "a2") + line(bobs, "b2", "from b"),
        10,
    )
    put(b, f"projects/{folder_of(bobs)}/s3.jsonl", line(bobs, "b3"), 11)
    b.ok("push")
    a.ok("pull")
    assert (
        a.read(f"projects/{folder_of(srv)}/s2.jsonl")
        == (line(srv, "a2") + line(bobs, "b2", "from b")).encode()
    )
    assert a.read(f"projects/{folder_of(srv)}/s3.jsonl") == line(bobs, "b3").encode()
    assert "Nothing to push" in a.ok("push")
    listed = json.loads(b.ok("projects", "--json"))
    by_key = {row["key"]: row for row in listed}
    assert by_key["~/work/app"]["folder"] == folder_of(bobs)
    assert by_key["~/work/app"]["sessions"] == 2
    assert by_key["~/work/app"]["devices"] == ["a", "b"]
    assert by_key[sibling]["folder"] == folder_of(sibling)
    text = b.ok("projects")
    assert "~/work/app" in text and f"projects/{folder_of(bobs)}" in text


def test_a_project_folder_with_no_transcript_stays_in_its_project(
    local_server: Server, make_device, layouts: dict[str, Path], tmp_path: Path
) -> None:
    """Memory under a mapped project: B has only the memory, no transcript recording its
    path; its edit goes back to the same project, not to a new one."""
    a, b = (joined(make_device(name), local_server) for name in "ab")
    layouts["bobs"].mkdir(parents=True)
    with_path_map(a, {str(tmp_path / "srv"): "~/work"})
    srv, bobs = (os.path.realpath(layouts[k]) for k in ("srv", "bobs"))
    put(a, f"projects/{folder_of(srv)}/s.jsonl", line(srv, "a1"), 1)
    put(a, f"projects/{folder_of(srv)}/memory/MEMORY.md", "one\n", 2)
    a.ok("push")
    b.ok("pull")
    (b.claude / "projects" / folder_of(bobs) / "s.jsonl").unlink()  # swept by Claude Code
    put(b, f"projects/{folder_of(bobs)}/memory/MEMORY.md", "one\ntwo\n", 10)
    b.ok("sync")
    a.ok("pull")
    assert a.read(f"projects/{folder_of(srv)}/memory/MEMORY.md") == b"one\ntwo\n"
    assert sorted(p.name for p in (a.claude / "projects").iterdir()) == [folder_of(srv)]


def checkout(place: Path, origin: str) -> Path:
    place.mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=place, check=True)
    subprocess.run(["git", "remote", "add", "origin", origin], cwd=place, check=True)
    return place


def with_git_keys(device: Device) -> None:
    config = device.sync_home / "config.yaml"
    config.write_text(config.read_text() + "projects: {key: git}\n")


def test_one_repository_checked_out_in_different_places_is_one_project(
    local_or_s3_server: Server, make_device, tmp_path: Path
) -> None:
    a, b = (joined(make_device(name), local_or_s3_server) for name in "ab")
    for device in (a, b):
        with_git_keys(device)
    on_a = os.path.realpath(checkout(a.home / "src" / "app", "git@github.com:ann/app.git"))
    on_b = os.path.realpath(checkout(tmp_path / "srv" / "code", "https://github.com/ann/app"))
    put(a, f"projects/{folder_of(on_a)}/s1.jsonl", line(on_a, "a1"), 1)
    a.ok("push")
    b.ok("pull")
    # B has not run Claude Code in its checkout yet: a folder named for the repository.
    assert b.read("projects/git-github-com-ann-app/s1.jsonl") == line(on_a, "a1").encode()
    # Once it has, that folder's sessions move into the checkout's own folder.
    put(b, f"projects/{folder_of(on_b)}/s2.jsonl", line(on_b, "b2"), 10)
    moved = f"· moved 1 file of projects/git-github-com-ann-app into projects/{folder_of(on_b)}"
    assert moved in b.ok("sync").splitlines()[0]
    assert not (b.claude / "projects" / "git-github-com-ann-app").exists()
    assert b.read(f"projects/{folder_of(on_b)}/s1.jsonl") == line(on_a, "a1").encode()
    assert "Nothing to push" in b.ok("push")
    a.ok("pull")
    assert a.read(f"projects/{folder_of(on_a)}/s2.jsonl") == line(on_b, "b2").encode()
    assert sorted(p.name for p in (a.claude / "projects").iterdir()) == [folder_of(on_a)]
    keys = [row["key"] for row in json.loads(a.ok("projects", "--json"))]
    assert keys == ["git:github.com/ann/app"]


def test_a_path_map_added_after_syncing_does_not_split_a_project(
    local_server: Server, make_device, layouts: dict[str, Path], tmp_path: Path
) -> None:
    """A adds `path_map: {/srv: ~/work}` after syncing /srv/app, which B (here, on the
    same disk) has too: both devices' turns meet in one transcript, in /srv/app's folder on
    both, with no loop of "changed during the pull"."""
    a, b = (joined(make_device(name), local_server) for name in "ab")
    srv = os.path.realpath(layouts["srv"])
    session = f"projects/{folder_of(srv)}/s.jsonl"
    put(a, session, line(srv, "a1"), 1)
    a.ok("push")
    b.ok("pull")
    assert b.read(session) == line(srv, "a1").encode()
    with_path_map(a, {str(tmp_path / "srv"): "~/work"})
    put(a, session, line(srv, "a1") + line(srv, "a2"), 10)
    put(b, session, line(srv, "a1") + line(srv, "b2"), 11)
    a.ok("sync")
    b.ok("sync")
    output = a.ok("sync")
    assert "changed during the pull" not in output
    merged = sorted([line(srv, "a1"), line(srv, "a2"), line(srv, "b2")])
    for device in (a, b):
        assert sorted(device.read(session).decode().splitlines(keepends=True)) == merged
        assert [p.name for p in (device.claude / "projects").iterdir()] == [folder_of(srv)]


def test_a_repository_and_its_worktree_share_their_sessions_with_one_checkout(
    local_server: Server, make_device, tmp_path: Path
) -> None:
    """A works in a checkout and in its worktree, B in one checkout: B has both sessions in
    its folder; what B adds to the worktree's session comes back into A's worktree folder."""
    a, b = (joined(make_device(name), local_server) for name in "ab")
    for device in (a, b):
        with_git_keys(device)
    main = checkout(a.home / "src" / "app", "git@github.com:ann/app.git")
    identity = ["-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", *identity, "commit", "-q", "--allow-empty", "-m", "x"], cwd=main)
    worktree = a.home / "wt"
    subprocess.run(["git", "worktree", "add", "-q", str(worktree)], cwd=main, check=True)
    on_b = os.path.realpath(checkout(b.home / "app", "https://github.com/ann/app"))
    main, worktree = os.path.realpath(main), os.path.realpath(worktree)
    put(a, f"projects/{folder_of(main)}/s1.jsonl", line(main, "a1"), 1)
    put(a, f"projects/{folder_of(worktree)}/s2.jsonl", line(worktree, "a2"), 2)
    put(b, f"projects/{folder_of(on_b)}/s3.jsonl", line(on_b, "b3"), 3)
    a.ok("push")
    b.ok("sync")
    assert sorted(p.name for p in (b.claude / "projects" / folder_of(on_b)).iterdir()) == [
        "s1.jsonl",
        "s2.jsonl",
        "s3.jsonl",
    ]
    put(b, f"projects/{folder_of(on_b)}/s2.jsonl", line(worktree, "a2") + line(on_b, "b2"), 10)
    b.ok("push")
    a.ok("pull")
    assert (
        a.read(f"projects/{folder_of(worktree)}/s2.jsonl")
        == (line(worktree, "a2") + line(on_b, "b2")).encode()
    )
    assert sorted(p.name for p in (a.claude / "projects" / folder_of(main)).iterdir()) == [
        "s1.jsonl",
        "s3.jsonl",
    ]
    assert "Nothing to push" in a.ok("push")


def test_a_path_map_added_after_syncing_moves_the_project_for_every_device(
    local_or_s3_server: Server, make_device, layouts: dict[str, Path], tmp_path: Path
) -> None:
    """A's /srv/app and B's ~/work/app were synced as two projects; A then maps /srv to
    ~/work. The project moves to ~/work/app on the remote: A's sessions land in B's own
    folder, B's in A's, nothing is uploaded again and no conflict is made."""
    a, b = (joined(make_device(name), local_or_s3_server) for name in "ab")
    layouts["bobs"].mkdir(parents=True)
    srv, bobs = (os.path.realpath(layouts[k]) for k in ("srv", "bobs"))
    put(a, f"projects/{folder_of(srv)}/s1.jsonl", line(srv, "a1"), 1)
    put(a, f"projects/{folder_of(srv)}/memory/MEMORY.md", "a's notes\n", 2)
    a.ok("push")
    put(b, f"projects/{folder_of(bobs)}/s2.jsonl", line(bobs, "b2"), 3)
    b.ok("sync")
    assert b.read(f"projects/{folder_of(srv)}/s1.jsonl") == line(srv, "a1").encode()

    with_path_map(a, {str(tmp_path / "srv"): "~/work"})
    output = a.ok("sync")
    moved = f"projects/{folder_of(srv)} on the remote is now projects/~-work-app (~/work/app)"
    assert moved in output
    assert "Pull complete: 1 downloaded, 0 deleted, 0 conflicts" in output
    assert "Push complete: published 1 project move" in output
    assert a.read(f"projects/{folder_of(srv)}/s2.jsonl") == line(bobs, "b2").encode()
    shutil.rmtree(layouts["srv"])  # B is another machine: it has no /srv/app

    output = b.ok("sync")
    print(output)
    assert f"into projects/{folder_of(bobs)}" in output
    assert "1 conflict" not in output
    assert sorted(p.name for p in (b.claude / "projects").iterdir()) == [folder_of(bobs)]
    assert sorted(p.name for p in (b.claude / "projects" / folder_of(bobs)).iterdir()) == [
        "memory",
        "s1.jsonl",
        "s2.jsonl",
    ]
    for device in (a, b):
        assert "Nothing to push" in device.ok("push")
        keys = [row["key"] for row in json.loads(device.ok("projects", "--json"))]
        assert keys == ["~/work/app"]
    put(b, f"projects/{folder_of(bobs)}/memory/MEMORY.md", "a's notes\nb's too\n", 20)
    b.ok("push")
    a.ok("pull")
    assert a.read(f"projects/{folder_of(srv)}/memory/MEMORY.md") == b"a's notes\nb's too\n"


def test_a_path_map_set_after_a_pull_brings_the_project_into_this_devices_folder(
    local_server: Server, make_device, layouts: dict[str, Path], tmp_path: Path
) -> None:
    """B pulled A's /srv/app before mapping its ~/work to /srv: the folder B made for
    /srv/app (a path B does not have) moves into B's ~/work/app folder, and B's turns there
    go back into A's session."""
    a, b = (joined(make_device(name), local_server) for name in "ab")
    layouts["bobs"].mkdir(parents=True)
    srv, bobs = (os.path.realpath(layouts[k]) for k in ("srv", "bobs"))
    put(a, f"projects/{folder_of(srv)}/s1.jsonl", line(srv, "a1"), 1)
    a.ok("push")
    b.ok("pull")
    layouts["srv"].rmdir()  # B is another machine: it has no /srv/app
    with_path_map(b, {"~/work": str(tmp_path / "srv")})
    output = b.ok("pull")
    assert f"moved 1 file of projects/{folder_of(srv)} into projects/{folder_of(bobs)}" in output
    assert sorted(p.name for p in (b.claude / "projects").iterdir()) == [folder_of(bobs)]
    put(b, f"projects/{folder_of(bobs)}/s1.jsonl", line(srv, "a1") + line(bobs, "b1"), 10)
    output = b.ok("push")
    assert "1 uploaded" in output and "on the remote is now" not in output
    a.ok("pull")
    assert (
        a.read(f"projects/{folder_of(srv)}/s1.jsonl")
        == (line(srv, "a1") + line(bobs, "b1")).encode()
    )


def test_git_keys_set_after_syncing_make_one_project_of_two_checkouts(
    local_server: Server, make_device, tmp_path: Path
) -> None:
    a, b = (joined(make_device(name), local_server) for name in "ab")
    on_a = os.path.realpath(checkout(a.home / "src" / "app", "git@github.com:ann/app.git"))
    on_b = os.path.realpath(checkout(b.home / "code" / "app", "https://github.com/ann/app"))
    put(a, f"projects/{folder_of(on_a)}/s1.jsonl", line(on_a, "a1"), 1)
    put(b, f"projects/{folder_of(on_b)}/s2.jsonl", line(on_b, "b2"), 2)
    a.ok("push")
    b.ok("sync")
    a.ok("pull")
    for device in (a, b):
        with_git_keys(device)
    a.ok("sync")
    b.ok("sync")
    a.ok("sync")
    for device, own in ((a, on_a), (b, on_b)):
        assert sorted(p.name for p in (device.claude / "projects").iterdir()) == [folder_of(own)]
        assert sorted(p.name for p in (device.claude / "projects" / folder_of(own)).iterdir()) == [
            "s1.jsonl",
            "s2.jsonl",
        ]
        keys = [row["key"] for row in json.loads(device.ok("projects", "--json"))]
        assert keys == ["git:github.com/ann/app"]
        assert "Nothing to push" in device.ok("push")


def test_two_projects_in_one_claude_code_folder_keep_their_own_keys(
    local_or_s3_server: Server, make_device, layouts: dict[str, Path]
) -> None:
    """Claude Code keeps A's ~/work/app and A's /…/device-a-work/app (next to A's home) in
    one folder, their names being equal. Each session keeps its own project's key: on B the
    ~/work/app one is in B's ~/work/app folder, the other under its absolute path; what B
    adds comes back into A's one folder, and memory B keeps for ~/work/app reaches A too."""
    a, b = (joined(make_device(name), local_or_s3_server) for name in "ab")
    home_work = a.home / "work" / "app"
    home_work.mkdir(parents=True)
    layouts["bobs"].mkdir(parents=True)
    sibling, mine, bobs = (
        os.path.realpath(p) for p in (layouts["sibling"], home_work, layouts["bobs"])
    )
    shared = folder_of(sibling)
    assert folder_of(mine) == shared  # Claude Code's names meet
    put(a, f"projects/{shared}/s1.jsonl", line(sibling, "a1"), 1)
    put(a, f"projects/{shared}/s2.jsonl", line(mine, "a2"), 2)
    put(a, f"projects/{shared}/s2/subagents/agent-1.jsonl", line(mine, "a2-agent"), 3)
    put(a, f"projects/{shared}/memory/MEMORY.md", "a's notes\n", 4)
    a.ok("push")
    b.ok("pull")
    assert sorted(p.name for p in (b.claude / "projects" / folder_of(bobs)).iterdir()) == [
        "s2",
        "s2.jsonl",
    ]
    assert sorted(p.name for p in (b.claude / "projects" / shared).iterdir()) == [
        "memory",
        "s1.jsonl",
    ]
    put(b, f"projects/{folder_of(bobs)}/s2.jsonl", line(mine, "a2") + line(bobs, "b2"), 10)
    put(b, f"projects/{folder_of(bobs)}/s3.jsonl", line(bobs, "b3"), 11)
    put(b, f"projects/{folder_of(bobs)}/memory/MEMORY.md", "b's notes\n", 12)
    b.ok("push")
    output = a.ok("pull")
    assert "conflict copy" not in output
    assert a.read(f"projects/{shared}/s2.jsonl") == (line(mine, "a2") + line(bobs, "b2")).encode()
    assert a.read(f"projects/{shared}/s3.jsonl") == line(bobs, "b3").encode()
    assert a.read(f"projects/{shared}/memory/MEMORY.md") == b"a's notes\n"
    assert a.read(f"projects/{shared}.2/memory/MEMORY.md") == b"b's notes\n"
    for device in (a, b):
        assert "Nothing to push" in device.ok("sync")
    keys = sorted(row["key"] for row in json.loads(b.ok("projects", "--json")))
    assert keys == sorted([sibling, "~/work/app"])
