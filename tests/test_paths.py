"""Paths: remote path validation, what is synced, and how project folders move between homes."""

from __future__ import annotations

import itertools
import os
import posixpath
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claude_sync import pathmap
from claude_sync.claude_folder import conflict_name
from claude_sync.errors import RemoteFormatError
from claude_sync.pathmap import (
    TEMPORARY_NAME,
    PathMap,
    Rules,
    is_transcript,
    original_of,
    temporary_name,
    validate_remote_path,
)
from claude_sync.projects import Layout, encode_project

CHEAP = settings(
    max_examples=200,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

DEFAULT = Rules.from_config([], [])
EVERYTHING = Rules.from_config(["**"], [])


# validate_remote_path ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "settings.json",
        "history.jsonl",
        "projects/~-code-app/0b1c.jsonl",
        "projects/-opt-work/memory/notes.md",
        "agents/x.md",
        "skills/a/b.md",
        ".hidden",
        "a..b/c",
        "...",
    ],
)
def test_validate_accepts_normal_relative_paths(path: str) -> None:
    assert validate_remote_path(path) == path


@pytest.mark.parametrize(
    "path",
    [
        "",
        "/abs",
        "/",
        "../x",
        "..",
        ".",
        "a/../b",
        "a/..",
        "a//b",
        "a/",
        "./a",
        "a/.",
        "a\\b",
        "C:/x",
        "c:x",
        "a\x00b",
        None,
        3,
        b"settings.json",
    ],
)
def test_validate_rejects_unsafe_paths(path: object) -> None:
    with pytest.raises(RemoteFormatError):
        validate_remote_path(path)


@CHEAP
@given(st.text(alphabet="ab./\\:C\x00~", max_size=12))
def test_accepted_paths_are_normalised_relative_and_inside(path: str) -> None:
    try:
        accepted = validate_remote_path(path)
    except RemoteFormatError:
        return
    assert accepted == path
    assert posixpath.normpath(accepted) == accepted
    assert not posixpath.isabs(accepted)
    assert "\\" not in accepted and "\x00" not in accepted
    assert all(part not in ("", ".", "..") for part in accepted.split("/"))
    assert not (accepted[:1].isalpha() and accepted[1:2] == ":")


segment = st.text(alphabet="abz09._-~ ", min_size=1, max_size=6).filter(
    lambda s: s not in (".", "..")
)


@CHEAP
@given(st.lists(segment, min_size=1, max_size=4))
def test_joined_clean_segments_are_accepted(parts: list[str]) -> None:
    path = "/".join(parts)
    assert validate_remote_path(path) == path


# Rules ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "projects/-home-ann-code-app/0b1c.jsonl",
        "projects/~-code-app/0b1c/subagents/agent-1.jsonl",
        "projects/~-code-app/memory/MEMORY.md",
        "history.jsonl",
        "settings.json",
        "CLAUDE.md",
        "agents/x.md",
        "skills/a/b.md",
        "commands/c.md",
        "plans/p.md",
        "keybindings.json",
        "themes/dark.json",
    ],
)
def test_default_rules_sync(path: str) -> None:
    assert DEFAULT.synced(path)


DENIED = [
    ".credentials.json",
    "projects/p/.credentials.json",
    "agents/deep/down/.credentials.json",
    "ide/x",
    "ide/1234.lock",
    "session-env/x",
    "sessions/x",
    "shell-snapshots/x",
    "debug/x",
    "statsig/x",
    "backups/x",
    "cache/x",
]


@pytest.mark.parametrize("path", DENIED)
@pytest.mark.parametrize("include", [[], ["**"], ["ide/", "debug/**", "*", "**/*"]])
def test_deny_list_is_never_synced(path: str, include: list[str]) -> None:
    assert not Rules.from_config(include, []).synced(path)


@pytest.mark.parametrize("folder", ["ide", "session-env", "sessions", "debug", "statsig"])
def test_walk_never_enters_denied_folders(folder: str) -> None:
    assert not EVERYTHING.may_enter(folder)


@pytest.mark.parametrize("path", ["file-history/x", "plugins/x", "settings.local.json"])
def test_excluded_by_default(path: str) -> None:
    assert not DEFAULT.synced(path)


@pytest.mark.parametrize(
    ("include", "path"),
    [
        (["file-history/"], "file-history/x"),
        (["plugins/**"], "plugins/x"),
        (["settings.local.json"], "settings.local.json"),
    ],
)
def test_default_exclusions_are_opt_in(include: list[str], path: str) -> None:
    assert Rules.from_config(include, []).synced(path)


@pytest.mark.parametrize(
    ("exclude", "path"),
    [
        (["projects/-opt-secret/**"], "projects/-opt-secret/s.jsonl"),
        (["agents/private.md"], "agents/private.md"),
        (["skills/"], "skills/a/b.md"),
        (["settings.json"], "settings.json"),
        (["**/*.jsonl"], "projects/~-code-app/s.jsonl"),
    ],
)
def test_user_exclude_wins_over_include(exclude: list[str], path: str) -> None:
    assert DEFAULT.synced(path)
    assert not Rules.from_config([], exclude).synced(path)
    assert not Rules.from_config([path], exclude).synced(path)


@pytest.mark.parametrize(
    "path",
    [
        "settings.conflict-20260101-120000-laptop.json",
        "agents/x.conflict-20260101-120000-my_mac-2.md",
        "projects/~-code-app/s.conflict-20260101-120000-laptop.jsonl",
        "CLAUDE.conflict-20260101-120000-laptop.md",
    ],
)
def test_conflict_copies_of_synced_files_are_synced(path: str) -> None:
    assert DEFAULT.synced(path)


@pytest.mark.parametrize(
    "path",
    [
        ".credentials.conflict-20260101-120000-laptop.json",
        "settings.local.conflict-20260101-120000-laptop.json",
        "ide/x.conflict-20260101-120000-laptop.json",
    ],
)
def test_conflict_copies_of_unsynced_files_are_not_synced(path: str) -> None:
    assert not DEFAULT.synced(path)


synced_path = st.builds(
    lambda folder, name, ext: f"{folder}/{name}{ext}",
    st.sampled_from(["agents", "skills/a", "commands", "projects/~-code-app", "rules/x/y"]),
    st.text(alphabet="abc_-", min_size=1, max_size=5),
    st.sampled_from(["", ".md", ".json", ".jsonl", ".tar.gz"]),
) | st.sampled_from(["settings.json", "history.jsonl", "CLAUDE.md", "keybindings.json"])


@CHEAP
@given(
    synced_path,
    st.integers(min_value=0, max_value=4_000_000_000 * 10**9),
    st.text(max_size=12),
)
def test_conflict_name_of_a_synced_file_is_synced(path: str, when_ns: int, device: str) -> None:
    assert DEFAULT.synced(path)
    copy = conflict_name(path, when_ns, device)
    assert copy != path
    assert copy.rpartition("/")[0] == path.rpartition("/")[0]
    assert DEFAULT.synced(copy)
    assert validate_remote_path(copy) == copy
    assert original_of(copy) == path or len(copy.encode()) > 200  # a long name is cut


@pytest.mark.parametrize(
    ("path", "copy"),
    [
        ("CLAUDE.md", "CLAUDE.md.conflict-20261130-120000-laptop"),
        ("commands/deploy.md", "commands/deploy.md.conflict-20261130-120000-laptop"),
        ("agents/x.md", "agents/x.md.conflict-20261130-120000-laptop"),
        ("skills/s/SKILL.md", "skills/s/SKILL.md.conflict-20261130-120000-laptop"),
        ("Makefile", "Makefile.conflict-20261130-120000-laptop"),
    ],
)
def test_a_conflict_copy_keeps_the_extension_inside_its_name(path: str, copy: str) -> None:
    """Claude Code loads commands, agents and skills by extension: a copy must not have one."""
    assert conflict_name(path, 1_796_040_000 * 10**9, "laptop") == copy
    assert not copy.endswith((".md", ".json", ".jsonl"))
    assert original_of(copy) == path


@pytest.mark.parametrize(
    ("copy", "path"),
    [
        ("CLAUDE.conflict-20260101-120000-laptop.md", "CLAUDE.md"),
        ("agents/x.conflict-20260101-120000-my_mac-2.md", "agents/x.md"),
        ("settings.json.conflict-20260101-120000-laptop-2", "settings.json"),
    ],
)
def test_copies_under_the_old_and_the_new_name_are_recognised(copy: str, path: str) -> None:
    assert original_of(copy) == path


def test_temporary_files_are_not_synced() -> None:
    name = temporary_name()
    assert TEMPORARY_NAME.match(name)
    assert not DEFAULT.synced(f"agents/{name}")
    assert not EVERYTHING.synced(f"projects/p/{name}")


def test_temporary_names_are_each_new_and_temporary_past_the_last_number(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """They are counted, from a random start that may be near the end of 8 hex digits."""
    monkeypatch.setattr(pathmap, "_TEMPORARY_NUMBERS", itertools.count(2**32 - 2))
    names = [temporary_name() for _ in range(1000)]
    assert len(set(names)) == len(names)
    assert all(TEMPORARY_NAME.match(name) for name in names)
    assert names[2].endswith(f"{os.getpid()}-00000000")


def test_a_users_file_that_only_looks_temporary_is_synced() -> None:
    assert DEFAULT.synced("agents/.claude-sync-notes.md")
    assert not TEMPORARY_NAME.match(".claude-sync-tmp-notes.md")


# Whole folders: the same decision as file by file --------------------------------------

pattern_part = st.sampled_from(["a", "b", "projects", "*", "**", "?", "a*", "*.md", "x?md"])
pattern = st.builds(
    lambda parts, folder: "/".join(parts) + ("/" if folder else ""),
    st.lists(pattern_part, min_size=1, max_size=3),
    st.booleans(),
)
path_part = st.sampled_from(
    [
        "a",
        "b",
        "projects",
        "x.md",
        "xymd",
        "ide",
        ".credentials.json",
        ".claude-sync-tmp-1-0123abcd",
        "x.md.conflict-20260101-120000-dev",
        ".credentials.conflict-20260101-120000-dev.json",
        ".conflict-20260101-120000-dev",
    ]
)
folder_path = st.lists(path_part, max_size=3).map("/".join)


@settings(CHEAP, max_examples=1000)
@given(
    st.lists(pattern, max_size=3),
    st.lists(pattern, max_size=2),
    st.booleans(),
    st.lists(folder_path, min_size=1, max_size=4),
    st.lists(path_part, min_size=1, max_size=4),
)
def test_deciding_per_folder_matches_deciding_per_file(
    include: list[str], exclude: list[str], defaults: bool, folders: list[str], names: list[str]
) -> None:
    rules = (
        Rules.from_config(include, exclude) if defaults else Rules(tuple(include), tuple(exclude))
    )
    for folder in folders:  # the first file of a folder decides it; the others reuse that
        for name in names:
            path = f"{folder}/{name}" if folder else name
            assert rules.synced(path) == rules.path_synced(path), path


@pytest.mark.parametrize(
    ("include", "exclude", "folder", "decision"),
    [
        ([], [], "projects/-home-ann-app/0b1c/subagents", True),
        ([], [], "todos", False),
        ([], [], "ide/x", False),
        ([], [], "projects/p/.claude-sync-tmp-1-0123abcd", False),
        (["file-history/"], [], "file-history/0b1c", True),
        (["todos/"], [], "todos", True),  # `todos/` matches all that is below todos/
        ([], ["agents/"], "agents", False),
        (["todos/**"], [], "todos", True),
        (["todos/*.json"], [], "todos", None),
        ([], ["projects/-opt-secret/"], "projects/-opt-secret/memory", False),
        ([], ["projects/-opt-secret/"], "projects/-home-ann-app", True),
        ([], ["projects/*/memory/"], "projects/-home-ann-app", None),
        ([], ["**/*.tmp"], "agents", None),
        ([], [], "", None),
    ],
)
def test_a_folder_is_decided_whole_when_the_patterns_allow(
    include: list[str], exclude: list[str], folder: str, decision: bool | None
) -> None:
    assert Rules.from_config(include, exclude).folder_decision(folder) is decision


def test_is_transcript() -> None:
    assert is_transcript("projects/~-code-app/s.jsonl")
    assert is_transcript("projects/~-code-app/s/subagents/a.jsonl")
    assert not is_transcript("projects/~-code-app/memory/MEMORY.md")
    assert not is_transcript("projects/README.md")
    assert not is_transcript("settings.json")
    assert not is_transcript("history.jsonl")


# PathMap ----------------------------------------------------------------------------------


def test_encode_project() -> None:
    assert encode_project("/home/ann/code/my.app") == "-home-ann-code-my-app"
    assert encode_project("/Users/ann/code/app_2") == "-Users-ann-code-app-2"
    assert encode_project("C:\\Users\\ann") == "C--Users-ann"


@pytest.fixture
def homes(tmp_path: Path) -> tuple[Path, Path]:
    linux = tmp_path / "home" / "ann"
    mac = tmp_path / "Users" / "ann"
    linux.mkdir(parents=True)
    mac.mkdir(parents=True)
    return linux, mac


def local_project(home: Path, relative: str) -> str:
    return encode_project(os.path.realpath(home) + ("/" + relative if relative else ""))


def test_project_under_home_round_trips(homes: tuple[Path, Path]) -> None:
    linux, _ = homes
    paths = PathMap(Layout.of(linux, {}))
    local = f"projects/{local_project(linux, 'code/app')}/0b1c.jsonl"
    remote = paths.to_remote(local)
    assert remote == "projects/~-code-app/0b1c.jsonl"
    assert paths.to_local(remote) == local
    home_itself = f"projects/{local_project(linux, '')}/s.jsonl"
    assert paths.to_remote(home_itself) == "projects/~/s.jsonl"
    assert paths.to_local("projects/~/s.jsonl") == home_itself


def test_project_outside_home_is_unchanged(homes: tuple[Path, Path]) -> None:
    linux, _ = homes
    paths = PathMap(Layout.of(linux, {}))
    for local in ("projects/-opt-work-app/s.jsonl", "projects/-tmp/s.jsonl", "settings.json"):
        assert paths.to_remote(local) == local
        assert paths.to_local(local) == local
    # a sibling whose name merely starts with the home's name is not under the home
    sibling = f"projects/{local_project(linux, '')}x-code/s.jsonl"
    assert paths.to_remote(sibling) == sibling


def test_two_homes_materialise_their_own_encoding(homes: tuple[Path, Path]) -> None:
    linux, mac = homes
    on_linux, on_mac = PathMap(Layout.of(linux, {})), PathMap(Layout.of(mac, {}))
    from_linux = on_linux.to_remote(f"projects/{local_project(linux, 'code/app')}/s.jsonl")
    from_mac = on_mac.to_remote(f"projects/{local_project(mac, 'code/app')}/s.jsonl")
    assert from_linux == from_mac == "projects/~-code-app/s.jsonl"
    assert on_mac.to_local(from_linux) == f"projects/{local_project(mac, 'code/app')}/s.jsonl"
    assert on_linux.to_local(from_mac) == f"projects/{local_project(linux, 'code/app')}/s.jsonl"
    assert local_project(linux, "code/app") != local_project(mac, "code/app")


absolute = st.lists(
    st.text(alphabet="abZ09._- ", min_size=1, max_size=6), min_size=0, max_size=4
).map(lambda parts: "/" + "/".join(parts))
tail = st.lists(st.text(alphabet="ab0.-_", min_size=1, max_size=6), min_size=0, max_size=3)


@CHEAP
@given(absolute, tail)
def test_pathmap_round_trip_for_any_project(
    homes: tuple[Path, Path], project: str, rest: list[str]
) -> None:
    for home in homes:
        paths = PathMap(Layout.of(home, {}))
        for folder in (encode_project(project), local_project(home, project.lstrip("/"))):
            local = "/".join(["projects", folder, *rest])
            remote = paths.to_remote(local)
            assert paths.to_local(remote) == local
            assert remote.split("/")[2:] == local.split("/")[2:]


@CHEAP
@given(st.lists(st.text(alphabet="ab0.-_ ", min_size=1, max_size=6), min_size=1, max_size=3))
def test_home_relative_projects_move_between_homes(
    homes: tuple[Path, Path], relative: list[str]
) -> None:
    linux, mac = homes
    on_linux, on_mac = PathMap(Layout.of(linux, {})), PathMap(Layout.of(mac, {}))
    sub = "/".join(relative)
    remote = on_linux.to_remote(f"projects/{local_project(linux, sub)}/s.jsonl")
    assert remote.split("/")[1].startswith("~")
    assert on_mac.to_local(remote) == f"projects/{local_project(mac, sub)}/s.jsonl"
    assert on_mac.to_remote(on_mac.to_local(remote)) == remote
