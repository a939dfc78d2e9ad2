"""The line merges of diverged append-only files: history.jsonl and transcripts."""

from __future__ import annotations

import json
import random
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claude_sync import merges
from claude_sync.merges import merge_lines

TRANSCRIPT = "projects/~-code-app/0b6c9c1e-5f7e-4a53-9c6f-1f0d6f7e2a10.jsonl"


def history_line(display: str, timestamp: int) -> bytes:
    return (json.dumps({"display": display, "timestamp": timestamp}) + "\n").encode()


def turn(uuid: str, parent: str | None, second: int, text: str = "") -> bytes:
    line = {
        "parentUuid": parent,
        "uuid": uuid,
        "timestamp": f"2026-11-30T10:{second // 60:02d}:{second % 60:02d}.000Z",
        "message": {"content": text or uuid},
    }
    return (json.dumps(line) + "\n").encode()


def merged(tmp_path: Path, path: str, *versions: bytes) -> bytes:
    files = []
    for number, data in enumerate(versions):
        file = tmp_path / f"version-{number}"
        file.write_bytes(data)
        files.append(file)
    out = tmp_path / "merged"
    size = merge_lines(path, files, out)
    assert size == out.stat().st_size
    return out.read_bytes()


def test_history_is_a_multiset_union_in_timestamp_order(tmp_path: Path) -> None:
    one, two, three = (history_line(name, stamp) for name, stamp in [("x", 1), ("y", 2), ("z", 3)])
    ten = history_line("t", 10)
    first = one + two + two + three + ten
    second = one + one + two + b"\n"
    assert merged(tmp_path, "history.jsonl", first, second) == one + one + two + two + three + ten
    assert merged(tmp_path, "history.jsonl", first) == first
    unstamped = b"not json\n"
    assert merged(tmp_path, "history.jsonl", unstamped + one + unstamped, second) == (
        unstamped + unstamped + one + one + two
    )


def test_two_continuations_of_one_session_keep_both_branches(tmp_path: Path) -> None:
    shared = turn("u1", None, 1) + turn("a1", "u1", 2)
    on_a = shared + turn("u2a", "a1", 10, "from a") + turn("a2a", "u2a", 11)
    on_b = shared + turn("u2b", "a1", 5, "from b") + turn("a2b", "u2b", 12)
    result = merged(tmp_path, TRANSCRIPT, on_a, on_b)
    assert result == (
        shared + turn("u2b", "a1", 5, "from b") + turn("u2a", "a1", 10, "from a")
    ) + turn("a2a", "u2a", 11) + turn("a2b", "u2b", 12)
    parents = {
        json.loads(line)["uuid"]: json.loads(line)["parentUuid"] for line in result.splitlines()
    }
    assert parents["a2a"] == "u2a" and parents["a2b"] == "u2b"  # both leaves reach the root


def test_the_shared_start_is_found_across_blocks(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(merges, "BLOCK", 7)
    shared = b"".join(turn(f"s{n}", None, n) for n in range(20))
    on_a, on_b = shared + turn("a", None, 30), shared + turn("b", None, 29)
    assert merged(tmp_path, TRANSCRIPT, on_a, on_b) == shared + turn("b", None, 29) + turn(
        "a", None, 30
    )


def test_a_last_line_without_its_newline_is_kept(tmp_path: Path) -> None:
    shared = turn("s", None, 1)
    result = merged(tmp_path, TRANSCRIPT, shared + b'{"uuid": "x"}', shared + turn("b", "s", 2))
    assert result == shared + b'{"uuid": "x"}\n' + turn("b", "s", 2)


lines = st.lists(
    st.builds(
        lambda uuid, second: turn(f"u{uuid}", None, second),
        st.integers(0, 12),
        st.integers(0, 5),
    )
    | st.sampled_from([b'{"type": "summary"}\n', b"not json\n"]),
    max_size=8,
)


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(lines, min_size=1, max_size=4), lines, st.randoms())
def test_transcript_merge_properties(
    tmp_path: Path, tails: list[list[bytes]], start: list[bytes], shuffler: random.Random
) -> None:
    versions = [b"".join(start + tail) for tail in tails]
    result = merged(tmp_path, TRANSCRIPT, *versions)
    # Every line of every version is there, as often as the version that has it most.
    for version in versions:
        for line in set(version.splitlines()):
            assert result.splitlines().count(line) >= version.splitlines().count(line)
    assert result.startswith(b"".join(start))
    # The same whatever the order the versions come in.
    shuffled = versions[:]
    shuffler.shuffle(shuffled)
    assert merged(tmp_path, TRANSCRIPT, *shuffled) == result
    # Merging the merge with any of its inputs, or with itself, changes nothing.
    assert merged(tmp_path, TRANSCRIPT, result, result) == result
    for version in versions:
        assert merged(tmp_path, TRANSCRIPT, result, version) == result
