"""Projects: Claude Code's folder names, keys from recorded paths, path_map, the table."""

from __future__ import annotations

import hmac
import json
import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from claude_sync import projects
from claude_sync.config import load_config
from claude_sync.errors import ConfigError, RemoteFormatError
from claude_sync.journal import SNAPSHOT, JournalEntry, decode_entry, encode_entry
from claude_sync.pathmap import PathMap
from claude_sync.projects import Layout, Project, encode_project, normal_url, remote_folder

FOLDER_NAMES = Path(__file__).parent / "data" / "claude_code_folder_names.json"


@pytest.mark.parametrize(
    "vector", json.loads(FOLDER_NAMES.read_text()), ids=lambda v: str(len(v["path"]))
)
def test_folder_names_are_claude_codes(vector: dict[str, str]) -> None:
    """Names the real CLI (2.1.328) gave these paths: long ones cut at 200 and hashed,
    non-ASCII counted in UTF-16 units, as JavaScript does."""
    assert encode_project(vector["path"]) == vector["encoded"]


@pytest.mark.parametrize(
    ("path", "folder"),
    [
        ("/home/ann/code/app", "-home-ann-code-app"),
        ("/home/ann.old/x_y", "-home-ann-old-x-y"),
        ("C:\\Users\\a\\app", "C--Users-a-app"),
        ("C:\\Users\\a\\my.app", "C--Users-a-my-app"),
    ],
)
def test_folder_names_of_ordinary_and_windows_paths(path: str, folder: str) -> None:
    assert encode_project(path) == folder


@pytest.fixture
def ann(tmp_path: Path) -> Path:
    home = tmp_path / "home" / "ann"
    home.mkdir(parents=True)
    return home


def test_keys_from_recorded_paths(ann: Path) -> None:
    layout = Layout.of(ann, {})
    home = os.path.realpath(ann)
    assert layout.key_of(f"{home}/work/app") == "~/work/app"
    assert layout.key_of(home) == "~"
    # Next to the home folder, not inside it: the encoded names share a prefix, paths do not.
    assert layout.key_of(f"{home}-work/app") == f"{home}-work/app"
    assert layout.key_of(f"{home}.old/app") == f"{home}.old/app"
    assert layout.key_of("/srv/app") == "/srv/app"
    assert layout.key_of("C:\\Users\\a\\app") == "C:/Users/a/app"


def test_a_home_behind_a_link_is_still_the_home(tmp_path: Path, ann: Path) -> None:
    """Claude Code records real paths; HOME may be a link to the real home."""
    link = tmp_path / "ann-link"
    link.symlink_to(ann)
    layout = Layout.of(link, {})
    assert layout.key_of(f"{os.path.realpath(ann)}/app") == "~/app"


def test_path_map_both_ways(tmp_path: Path, ann: Path) -> None:
    srv = tmp_path / "srv"
    (srv / "app").mkdir(parents=True)
    on_a = Layout.of(ann, {str(srv): "~/work"})
    assert on_a.key_of(f"{srv}/app") == "~/work/app"
    assert on_a.key_of(str(srv)) == "~/work"
    assert on_a.path_of("~/work/app") == f"{srv}/app"
    assert on_a.folder_of("~/work/app") == encode_project(f"{srv}/app")
    # A device without the map: the same key is under its own home.
    bob = tmp_path / "home" / "bob"
    bob.mkdir(parents=True)
    on_b = Layout.of(bob, {})
    assert on_b.folder_of("~/work/app") == encode_project(f"{os.path.realpath(bob)}/work/app")
    # A map between two places under the home works too; the longest local prefix wins.
    on_c = Layout.of(ann, {"~/src": "~/work", "~/src/legacy": "/legacy"})
    home = os.path.realpath(ann)
    assert on_c.key_of(f"{home}/src/app") == "~/work/app"
    assert on_c.key_of(f"{home}/src/legacy/x") == "/legacy/x"
    assert on_c.path_of("~/work/app") == f"{home}/src/app"


def test_a_checkout_behind_a_link_is_known_by_its_real_path(tmp_path: Path, ann: Path) -> None:
    """Claude Code records the real path (`cwd`) of ~/work/app -> /data/app: its key is
    that path, unless path_map says what /data stands for."""
    real = tmp_path / "data" / "app"
    real.mkdir(parents=True)
    (ann / "work").mkdir()
    (ann / "work" / "app").symlink_to(real)
    recorded = os.path.realpath(ann / "work" / "app")
    assert Layout.of(ann, {}).key_of(recorded) == str(real)
    assert Layout.of(ann, {str(tmp_path / "data"): "~/work"}).key_of(recorded) == "~/work/app"


def test_a_checkout_behind_a_link_is_named_after_its_real_path(tmp_path: Path, ann: Path) -> None:
    """Claude Code names the folder after the real path: so does the materialisation."""
    real = tmp_path / "data" / "app"
    real.mkdir(parents=True)
    (ann / "work").mkdir()
    (ann / "work" / "app").symlink_to(real)
    assert Layout.of(ann, {}).folder_of("~/work/app") == encode_project(str(real))


@settings(max_examples=100)
@given(
    st.sampled_from(["~", "~/work/app", "/srv/app", "C:/work/app", "~/" + "x" * 300]),
)
def test_remote_folders_are_one_safe_name(key: str) -> None:
    folder = remote_folder(key)
    assert "/" not in folder and folder not in (".", "..") and len(folder) <= 210


def transcript(folder: Path, name: str, cwd: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [{"type": "summary"}, {"type": "user", "cwd": cwd, "uuid": "u1"}]
    (folder / name).write_text("".join(json.dumps(line) + "\n" for line in lines))


def test_a_folder_takes_its_key_from_the_path_recorded_in_it(tmp_path: Path, ann: Path) -> None:
    claude = ann / ".claude"
    home = os.path.realpath(ann)
    sibling = f"{home}-work/app"  # /home/ann-work/app: next to the home folder
    transcript(claude / "projects" / encode_project(sibling), "s.jsonl", sibling)
    inside = f"{home}/code/app"
    transcript(claude / "projects" / encode_project(inside), "t.jsonl", inside)
    paths = PathMap(Layout.of(ann, {}), claude)
    local_sibling = f"projects/{encode_project(sibling)}/s.jsonl"
    assert paths.to_remote(local_sibling) == f"projects/{encode_project(sibling)}/s.jsonl"
    assert paths.to_remote(f"projects/{encode_project(inside)}/t.jsonl") == (
        "projects/~-code-app/t.jsonl"
    )
    assert paths.published(["projects/~-code-app/t.jsonl"]) == {
        "~-code-app": Project("~/code/app", inside)
    }
    # On Bob's machine the sibling keeps its absolute name; the other is under his home.
    bob = tmp_path / "home" / "bob"
    bob.mkdir()
    on_b = PathMap(Layout.of(bob, {}), bob / ".claude")
    on_b.learn(paths.published([local_sibling, "projects/~-code-app/t.jsonl"]).items())
    assert on_b.to_local(paths.to_remote(local_sibling)) == local_sibling
    bobs = encode_project(f"{os.path.realpath(bob)}/code/app")
    assert on_b.to_local("projects/~-code-app/t.jsonl") == f"projects/{bobs}/t.jsonl"


def test_a_transcript_from_another_device_does_not_name_the_folder(
    tmp_path: Path, ann: Path
) -> None:
    """Bob's copy of Ann's transcript records Ann's path; his folder is his own path's."""
    bob = tmp_path / "home" / "bob"
    bob.mkdir()
    home = os.path.realpath(bob)
    folder = bob / ".claude" / "projects" / encode_project(f"{home}/work/app")
    transcript(folder, "a.jsonl", f"{os.path.realpath(ann)}/work/app")
    transcript(folder, "b.jsonl", f"{home}/work/app")
    paths = PathMap(Layout.of(bob, {}), bob / ".claude")
    assert paths.to_remote(f"projects/{folder.name}/a.jsonl") == "projects/~-work-app/a.jsonl"


def test_what_transcripts_record_is_read_once_while_they_stay_as_they_were(
    tmp_path: Path, ann: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder whose transcripts name no path of it would be read whole on every run; a
    run remembers what each recorded by its stat, and the next reads only what changed."""
    claude = ann / ".claude"
    srv = os.path.realpath(tmp_path) + "/srv/app"
    folder = claude / "projects" / encode_project(srv)
    folder.mkdir(parents=True)
    (folder / "a.jsonl").write_text('{"type": "summary"}\n')
    transcript(folder, "b.jsonl", "/elsewhere/app")
    read: list[str] = []
    recorded_path = projects.recorded_path

    def counted(path: Path) -> str | None:
        read.append(path.name)
        return recorded_path(path)

    monkeypatch.setattr(projects, "recorded_path", counted)
    layout = Layout.of(ann, {})
    first = PathMap(layout, claude)
    assert sorted(read) == ["a.jsonl", "b.jsonl"]
    assert first.to_remote(f"projects/{folder.name}/a.jsonl") == f"projects/{folder.name}/a.jsonl"
    read.clear()
    again = PathMap(layout, claude, recorded=first.recorded.seen)
    assert read == []
    # a transcript that grew is read again: it names its folder now
    with open(folder / "a.jsonl", "a") as handle:
        handle.write(json.dumps({"type": "user", "cwd": srv}) + "\n")
    third = PathMap(layout, claude, recorded=again.recorded.seen)
    assert read == ["a.jsonl"]
    assert third.projects[remote_folder(srv)] == Project(srv, srv)


def test_a_folder_with_no_transcript_keeps_the_key_it_was_given(tmp_path: Path, ann: Path) -> None:
    srv = tmp_path / "srv"
    layout = Layout.of(ann, {str(srv): "~/work"})
    known = {"~-work-app": Project("~/work/app", "/home/bob/work/app")}
    paths = PathMap(layout, ann / ".claude", known)
    local = f"projects/{encode_project(f'{srv}/app')}/memory/MEMORY.md"
    assert paths.to_local("projects/~-work-app/memory/MEMORY.md") == local
    fresh = PathMap(layout, ann / ".claude", known)  # the next run: the state's table
    assert fresh.to_remote(local) == "projects/~-work-app/memory/MEMORY.md"


def test_history_names_a_folder_that_has_no_transcript(tmp_path: Path, ann: Path) -> None:
    claude = ann / ".claude"
    sibling = f"{os.path.realpath(ann)}-work/app"
    (claude / "projects" / encode_project(sibling) / "memory").mkdir(parents=True)
    (claude / "history.jsonl").write_text(json.dumps({"display": "x", "project": sibling}) + "\n")
    paths = PathMap(Layout.of(ann, {}), claude)
    local = f"projects/{encode_project(sibling)}/memory/MEMORY.md"
    assert paths.to_remote(local) == local  # absolute, not "~-work-app"


def test_two_remote_folders_never_share_a_local_one(ann: Path) -> None:
    paths = PathMap(Layout.of(ann, {}))
    known = {
        "~-app": Project("~/app", "/home/x/app"),
        "-elsewhere": Project("~/app", "/elsewhere"),  # a forged or colliding entry
    }
    paths.learn(known.items())
    first = paths.to_local("projects/~-app/s.jsonl")
    second = paths.to_local("projects/-elsewhere/s.jsonl")
    assert first != second
    assert paths.to_remote(first) == "projects/~-app/s.jsonl"
    assert paths.to_remote(second) == "projects/-elsewhere/s.jsonl"


KEY = b"k" * 32


def entry_with(projects: dict[str, Project]) -> JournalEntry:
    return JournalEntry("dev1", "laptop", 1, SNAPSHOT, "now", "i", 0, {}, projects)


def test_an_entry_carries_the_table_and_one_without_it_still_reads() -> None:
    entry = entry_with({"~-app": Project("~/app", "/h/app")})
    assert decode_entry(encode_entry(entry, KEY), KEY, "dev1", 1).projects == entry.projects
    assert decode_entry(encode_entry(entry_with({}), KEY), KEY, "dev1", 1).projects == {}


@pytest.mark.parametrize(
    "table",
    [
        {"../x": {"key": "~/x", "path": "/x"}},
        {"a/b": {"key": "~/x", "path": "/x"}},
        {"~-x": {"key": "relative/x", "path": "/x"}},
        {"~-x": {"key": "~/x"}},
        {"~-x": "~/x"},
        [],
    ],
)
def test_a_forged_project_table_is_refused(table: object) -> None:
    """Written by a holder of the key (a device gone wrong): authentic, and still refused."""
    document = json.loads(encode_entry(entry_with({}), KEY))
    del document["mac"]
    document["projects"] = table
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    document["mac"] = hmac.new(KEY, canonical.encode(), "sha256").hexdigest()
    with pytest.raises(RemoteFormatError):
        decode_entry(json.dumps(document).encode(), KEY, "dev1", 1)


@pytest.mark.parametrize(
    "path_map",
    ["path_map: [/srv]\n", "path_map: {srv: ~/work}\n", "path_map: {/srv: work}\n"],
)
def test_a_malformed_path_map_is_one_clear_error(tmp_path: Path, path_map: str) -> None:
    config = "version: 1\ndevice: {id: d1, name: laptop}\nremote: {root: 'x:y'}\n" + path_map
    (tmp_path / "config.yaml").write_text(config)
    with pytest.raises(ConfigError, match="path_map"):
        load_config(tmp_path)


@pytest.mark.parametrize(
    ("url", "normal"),
    [
        ("git@github.com:ann/app.git", "github.com/ann/app"),
        ("https://github.com/ann/app.git", "github.com/ann/app"),
        ("https://ann:token@GitHub.com:443/ann/app/", "github.com/ann/app"),
        ("ssh://git@github.com:22/ann/app", "github.com/ann/app"),
        ("github.com:ann/app", "github.com/ann/app"),
        ("/srv/git/app.git", "/srv/git/app"),
        ("file:///srv/git/app.git", "/srv/git/app"),
        ("https://github.com/", None),
    ],
)
def test_origin_urls_are_normalised(url: str, normal: str | None) -> None:
    """One repository over https and ssh is one project; no credential enters a key."""
    assert normal_url(url) == normal


def git(*args: str, cwd: Path) -> None:
    identity = ["-c", "user.name=test", "-c", "user.email=test@example.com"]
    subprocess.run(["git", *identity, *args], cwd=cwd, check=True, capture_output=True)


def checkout(place: Path, origin: str) -> Path:
    place.mkdir(parents=True)
    git("init", "-q", cwd=place)
    git("remote", "add", "origin", origin, cwd=place)
    return place


def test_git_keys_follow_the_repository(tmp_path: Path, ann: Path) -> None:
    here = checkout(ann / "src" / "app", "git@github.com:ann/app.git")
    (here / "web").mkdir()
    there = checkout(tmp_path / "srv" / "app", "https://github.com/ann/app")
    everywhere = Layout.of(ann, {}, git_everywhere=True)
    assert everywhere.key_of(str(here)) == "git:github.com/ann/app"
    assert everywhere.key_of(str(here / "web")) == "git:github.com/ann/app/web"
    assert everywhere.key_of(str(there)) == "git:github.com/ann/app"
    assert remote_folder("git:github.com/ann/app/web") == "git-github-com-ann-app-web"
    # Only the folders `projects.git` lists, when `projects.key` is path.
    listed = Layout.of(ann, {}, git_prefixes=["~/src"])
    assert listed.key_of(str(here)) == "git:github.com/ann/app"
    assert listed.key_of(str(there)) == os.path.realpath(there)
    # No origin, or no repository: the path's key.
    bare = ann / "notes"
    bare.mkdir()
    git("init", "-q", cwd=bare)
    assert everywhere.key_of(str(bare)) == "~/notes"
    # A worktree (.git is a file) belongs to its repository.
    git("commit", "-q", "--allow-empty", "-m", "x", cwd=here)
    git("worktree", "add", "-q", str(tmp_path / "wt"), cwd=here)
    assert everywhere.key_of(str(tmp_path / "wt")) == "git:github.com/ann/app"


def test_a_synced_folder_keeps_its_key_until_a_run_rekeys_it(tmp_path: Path, ann: Path) -> None:
    """A changed path_map re-keys a synced project only in a run that says so (a sync:
    see test_projects_sync), never by a map built to read paths."""
    srv = tmp_path / "srv"
    (srv / "app").mkdir(parents=True)
    recorded = os.path.realpath(srv / "app")
    claude = ann / ".claude"
    transcript(claude / "projects" / encode_project(recorded), "s.jsonl", recorded)
    before = PathMap(Layout.of(ann, {}), claude)
    local = f"projects/{encode_project(recorded)}/s.jsonl"
    synced = before.to_remote(local)
    assert synced == f"projects/{encode_project(recorded)}/s.jsonl"
    table = before.published([synced])
    after = PathMap(Layout.of(ann, {str(srv): "~/work"}), claude, table)
    assert after.to_remote(local) == synced
    assert after.to_local(synced) == local
    # A project first synced after the change takes the mapped key.
    (srv / "lib").mkdir()
    lib = os.path.realpath(srv / "lib")
    transcript(claude / "projects" / encode_project(lib), "t.jsonl", lib)
    later = PathMap(Layout.of(ann, {str(srv): "~/work"}), claude, table)
    assert later.to_remote(f"projects/{encode_project(lib)}/t.jsonl") == (
        "projects/~-work-lib/t.jsonl"
    )


def test_a_remote_folder_named_like_a_taken_local_one_shares_it_by_session(
    tmp_path: Path, ann: Path
) -> None:
    """/home/ann-work/app and /home/ann/work/app share Claude Code's folder name, as they
    do in Claude Code: the other project's sessions come into the folder, each keeping its
    project's remote folder; its memory, which this folder's project has, comes in beside
    it, never into it."""
    claude = ann / ".claude"
    home = os.path.realpath(ann)
    folder = encode_project(f"{home}/work/app")
    transcript(claude / "projects" / folder, "mine.jsonl", f"{home}/work/app")
    paths = PathMap(Layout.of(ann, {}), claude)
    assert paths.to_remote(f"projects/{folder}/mine.jsonl") == "projects/~-work-app/mine.jsonl"
    sibling = f"{home}-work/app"
    paths.learn([(encode_project(sibling), Project(sibling, sibling))])
    theirs = paths.to_local(f"projects/{encode_project(sibling)}/theirs.jsonl")
    assert theirs == f"projects/{folder}/theirs.jsonl"
    assert paths.to_remote(theirs) == f"projects/{encode_project(sibling)}/theirs.jsonl"
    memory = paths.to_local(f"projects/{encode_project(sibling)}/memory/MEMORY.md")
    assert memory == f"projects/{folder}.2/memory/MEMORY.md"
    assert paths.to_remote(memory) == f"projects/{encode_project(sibling)}/memory/MEMORY.md"


def test_two_folders_of_one_key_each_keep_their_sessions(tmp_path: Path, ann: Path) -> None:
    """A repository and its worktree are one project: one remote folder, each session in
    the local folder that has it, a new one in the first; both have memory/, so the
    second's keeps a remote folder of its own."""
    here = checkout(ann / "src" / "app", "git@github.com:ann/app.git")
    git("commit", "-q", "--allow-empty", "-m", "x", cwd=here)
    git("worktree", "add", "-q", str(ann / "wt"), cwd=here)
    claude = ann / ".claude"
    main, tree = (encode_project(os.path.realpath(p)) for p in (here, ann / "wt"))
    transcript(claude / "projects" / main, "s1.jsonl", os.path.realpath(here))
    transcript(claude / "projects" / tree, "s2.jsonl", os.path.realpath(ann / "wt"))
    for folder in (main, tree):
        (claude / "projects" / folder / "memory").mkdir()
    paths = PathMap(Layout.of(ann, {}, git_everywhere=True), claude)
    shared = "projects/git-github-com-ann-app"
    assert paths.to_remote(f"projects/{main}/s1.jsonl") == f"{shared}/s1.jsonl"
    assert paths.to_remote(f"projects/{tree}/s2.jsonl") == f"{shared}/s2.jsonl"
    assert paths.to_local(f"{shared}/s2.jsonl") == f"projects/{tree}/s2.jsonl"
    assert paths.to_local(f"{shared}/s3.jsonl") == f"projects/{main}/s3.jsonl"
    memories = {paths.to_remote(f"projects/{f}/memory/MEMORY.md") for f in (main, tree)}
    assert f"{shared}/memory/MEMORY.md" in memories and len(memories) == 2
    for memory in memories:
        assert paths.to_remote(paths.to_local(memory)) == memory
