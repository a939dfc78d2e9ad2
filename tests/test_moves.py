"""Moves of project folders on the remote: one table on every device, never a loop."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from claude_sync.errors import RemoteFormatError
from claude_sync.manifest import moves_from_json, moves_to_json
from claude_sync.moves import Move, final_folder, merge_moves, moved_path, moved_paths


def test_a_path_under_a_moved_folder_reads_as_under_the_new_one() -> None:
    moves = {"-srv-app": Move("~-work-app", 1)}
    assert moved_path(moves, "projects/-srv-app/s.jsonl") == "projects/~-work-app/s.jsonl"
    assert moved_path(moves, "projects/-srv-app") == "projects/~-work-app"
    assert moved_path(moves, "projects/-srv-apps/s.jsonl") == "projects/-srv-apps/s.jsonl"
    assert moved_path(moves, "-srv-app/s.jsonl") == "-srv-app/s.jsonl"


def test_moves_follow_on_and_a_key_set_back_returns_to_its_folder() -> None:
    there = merge_moves({"a": Move("b", 1)}, {"b": Move("c", 2)})
    assert final_folder(there, "a") == final_folder(there, "b") == "c"
    back = merge_moves(there, {"c": Move("a", 3)})
    assert final_folder(back, "c") == final_folder(back, "b") == "a"
    assert "a" not in back


def test_the_newest_move_of_a_folder_wins() -> None:
    merged = merge_moves({"a": Move("b", 2)}, {"a": Move("c", 1)})
    assert merged == {"a": Move("b", 2)}


folders = st.sampled_from(["a", "b", "c", "d", "e"])
tables = st.dictionaries(folders, st.builds(Move, folders, st.integers(0, 5)), max_size=5)


@given(st.lists(tables, max_size=4))
def test_merged_moves_never_loop_and_do_not_depend_on_order(given_tables: list) -> None:
    merged = merge_moves(*given_tables)
    assert merged == merge_moves(*reversed(given_tables))
    for folder in merged:
        seen, current = {folder}, folder
        while current in merged:
            current = merged[current].to
            assert current not in seen
            seen.add(current)


def test_where_a_path_and_a_moved_one_meet_the_one_in_place_stays() -> None:
    moves = {"old": Move("new", 1)}
    items = {"projects/old/m.md": "moved", "projects/new/m.md": "in place", "x": "other"}
    assert moved_paths(moves, items) == {"projects/new/m.md": "in place", "x": "other"}


def test_a_moves_table_round_trips_and_bad_ones_are_refused() -> None:
    moves = {"-srv-app": Move("~-work-app", 17)}
    assert moves_from_json(moves_to_json(moves)) == moves
    for bad in (
        [],
        {"../x": {"to": "a", "at": 1}},
        {"a": {"to": "b/c", "at": 1}},
        {"a": {"to": "..", "at": 1}},
        {"a": {"to": "C:x", "at": 1}},
        {"a": {"to": "b", "at": "1"}},
        {"a": {"to": "b", "at": True}},
        {"a": "b"},
    ):
        with pytest.raises(RemoteFormatError):
            moves_from_json(bad)
