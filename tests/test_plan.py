"""Property tests of the pure sync planner: version vectors, decide_pull/decide_push, resolve,
and a simulation of several devices syncing one path through the pure functions only."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

from hypothesis import HealthCheck, Phase, assume, currently_in_test_context, given, note, settings
from hypothesis import strategies as st

from claude_sync.pathmap import HISTORY, is_append_only
from claude_sync.plan import (
    Adopt,
    Download,
    Publish,
    Resolution,
    Resolve,
    Sweep,
    Tombstone,
    Trash,
    Upload,
    decide_pull,
    decide_push,
    local_changed,
    pending_version,
    resolve,
)
from claude_sync.scan import LocalFile
from claude_sync.state import Entry
from claude_sync.versions import Version, VersionVector, maximal, merge_all

COMMON = {
    "derandomize": True,
    "database": None,
    "deadline": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}
CHEAP = settings(max_examples=200, **COMMON)
SIMULATION = settings(max_examples=400, **COMMON)

DEVICES = ("a", "b", "c", "d")
PATH = "settings.json"
TRANSCRIPT = "projects/~-code-app/0b1c.jsonl"


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def version(
    content: bytes | None, vector: VersionVector, device: str = "a", mtime: int = 0
) -> Version:
    if content is None:
        return Version("", 0, mtime, vector, device, deleted=True)
    return Version(sha(content), len(content), mtime, vector, device)


def flagged(entry: Entry, **flags: bool) -> Entry:
    """A copy of `entry` with `flags` changed: a snapshot taken before keeps the old one."""
    values = {"swept": entry.swept, "publish": entry.publish, "settled": entry.settled, **flags}
    return Entry(entry.base, entry.size, entry.mtime_ns, **values)


def entry_values(entry: Entry | None) -> tuple | None:
    """What an entry holds, to compare two snapshots by (entries compare by identity)."""
    if entry is None:
        return None
    return (entry.base, entry.size, entry.mtime_ns, entry.swept, entry.publish, entry.settled)


def local_of(content: bytes | None, mtime: int = 0) -> LocalFile | None:
    return None if content is None else LocalFile(sha(content), len(content), mtime)


def vv(**counters: int) -> VersionVector:
    return VersionVector.of(counters)


vectors = st.dictionaries(st.sampled_from(DEVICES), st.integers(0, 4)).map(VersionVector.of)
contents = st.lists(st.sampled_from([b"a", b"b", b"\n"]), max_size=4).map(b"".join)
nonempty = vectors.filter(lambda v: v.counters)
devices = st.sampled_from(DEVICES)
mtimes = st.integers(0, 20)


# VersionVector ----------------------------------------------------------------------------


@CHEAP
@given(vectors, vectors, vectors)
def test_le_is_a_partial_order(a: VersionVector, b: VersionVector, c: VersionVector) -> None:
    assert a <= a
    if a <= b and b <= a:
        assert a == b
    if a <= b and b <= c:
        assert a <= c
    assert a.dominates(b) == (b <= a and a != b)
    assert a.concurrent(b) == (not a <= b and not b <= a)
    assert not a.dominates(a)


@CHEAP
@given(vectors, vectors, vectors)
def test_merge_is_a_join(a: VersionVector, b: VersionVector, c: VersionVector) -> None:
    assert a.merge(b) == b.merge(a)
    assert a.merge(b).merge(c) == a.merge(b.merge(c))
    assert a.merge(a) == a
    assert a <= a.merge(b) and b <= a.merge(b)
    if a <= c and b <= c:
        assert a.merge(b) <= c
    assert merge_all([a, b, c]) == a.merge(b).merge(c)
    assert merge_all([]) == VersionVector()


@CHEAP
@given(vectors, devices, st.integers(0, 6))
def test_bump_strictly_dominates(a: VersionVector, device: str, at_least: int) -> None:
    bumped = a.bump(device, at_least)
    assert bumped.dominates(a)
    assert bumped.get(device) == max(a.get(device), at_least) + 1
    assert all(bumped.get(other) == a.get(other) for other in DEVICES if other != device)


@CHEAP
@given(vectors, devices, devices)
def test_bumps_by_different_devices_are_concurrent(
    base: VersionVector, one: str, other: str
) -> None:
    assume(one != other)
    assert base.bump(one).concurrent(base.bump(other))


@CHEAP
@given(st.lists(st.tuples(vectors, contents), max_size=8))
def test_maximal(pairs: list[tuple[VersionVector, bytes]]) -> None:
    versions = [version(content, vector) for vector, content in pairs]
    kept = maximal(versions)
    assert len({v.vector for v in kept}) == len(kept)
    for v in kept:
        assert v in versions
        assert not any(o.vector.dominates(v.vector) for o in versions)
    for v in versions:
        assert any(v.vector <= k.vector for k in kept)
    assert {v.vector for v in maximal(reversed(versions))} == {v.vector for v in kept}


# decide_push ------------------------------------------------------------------------------


remote_lists = st.lists(
    st.builds(version, contents | st.none(), vectors, devices, mtimes), max_size=4
)


@CHEAP
@given(contents, vectors, devices, remote_lists, st.sampled_from([PATH, TRANSCRIPT]))
def test_push_unchanged_local_does_nothing(
    content: bytes, vector: VersionVector, device: str, remote: list[Version], path: str
) -> None:
    entry = Entry(version(content, vector, device))
    assert not local_changed(path, local_of(content, 5), entry)
    assert decide_push(path, local_of(content, 5), entry, remote, device) is None


@CHEAP
@given(contents, devices)
def test_push_new_file_without_remote(content: bytes, device: str) -> None:
    action = decide_push(PATH, local_of(content), None, [], device)
    assert isinstance(action, Upload)
    assert action.base is None
    assert action.vector == VersionVector.of({device: 1})


@CHEAP
@given(contents, devices, remote_lists)
def test_push_new_file_with_remote(content: bytes, device: str, remote: list[Version]) -> None:
    action = decide_push(PATH, local_of(content), None, remote, device)
    same = [r for r in remote if r.same_content(version(content, VersionVector()))]
    if same:  # already there (a lost state.json): recorded, nothing sent
        assert isinstance(action, Adopt)
        assert all(r.vector <= action.version.vector for r in same)
        return
    if remote:  # no base: a pull settles it first, so a stale copy is never published
        assert action is None
        return
    assert isinstance(action, Upload)
    assert action.vector == VersionVector.of({device: 1})


@CHEAP
@given(contents, contents, vectors, devices, remote_lists)
def test_push_changed_file(
    old: bytes, new: bytes, base_vector: VersionVector, device: str, remote: list[Version]
) -> None:
    assume(old != new)
    base = version(old, base_vector, device)
    action = decide_push(PATH, local_of(new, 7), Entry(base), remote, device)
    assert isinstance(action, Upload)
    assert action.base == base
    assert action.local == local_of(new, 7)
    assert action.vector.dominates(base.vector)
    for other in remote:
        # the bump is above every counter of this device already on the remote ...
        assert action.vector.get(device) > other.vector.get(device)
        # ... and a version the base has not seen is never overridden silently (one ahead of
        # the base only in this device's own counter is this device's own forgotten push)
        unseen = [d for d, c in other.vector.counters if c > base.vector.get(d)]
        if any(d != device for d in unseen):
            assert other.vector.concurrent(action.vector)
    pending = pending_version(PATH, local_of(new, 7), Entry(base), remote, device)
    assert pending.vector == action.vector
    assert (pending.sha256, pending.size, pending.mtime_ns) == (sha(new), len(new), 7)


@CHEAP
@given(contents, vectors, devices, remote_lists)
def test_push_deleted_config_file_is_a_tombstone(
    content: bytes, base_vector: VersionVector, device: str, remote: list[Version]
) -> None:
    base = version(content, base_vector, device)
    for path in (PATH, "agents/x.md", "projects/~-code-app/memory/MEMORY.md"):
        action = decide_push(path, None, Entry(base), remote, device)
        assert isinstance(action, Tombstone)
        assert action.base == base
        assert action.vector.dominates(base.vector)
        assert all(action.vector.get(device) > r.vector.get(device) for r in remote)
    # a tombstone already recorded is not pushed again
    assert decide_push(PATH, None, Entry(version(None, base_vector)), remote, device) is None


@CHEAP
@given(contents, vectors, devices, remote_lists)
def test_push_deleted_transcript_is_swept_never_tombstoned(
    content: bytes, base_vector: VersionVector, device: str, remote: list[Version]
) -> None:
    base = version(content, base_vector, device)
    for path in (TRANSCRIPT, "projects/-opt-x/s/subagents/agent-1.jsonl"):
        assert isinstance(decide_push(path, None, Entry(base), remote, device), Sweep)
        assert decide_push(path, None, Entry(base, swept=True), remote, device) is None


@CHEAP
@given(contents, vectors, devices, remote_lists)
def test_push_missing_conflict_copy_of_a_session_file_is_swept_unless_settled(
    content: bytes, base_vector: VersionVector, device: str, remote: list[Version]
) -> None:
    """Claude Code's cleanup takes a session's folder, conflict copies in it included: no
    deletion elsewhere. `claude-sync conflicts` removing one settles it everywhere."""
    base = version(content, base_vector, device)
    for path in (
        "projects/~-code-app/s/tool-results/r.txt.conflict-20250101-120000-b",
        "projects/~-code-app/s.jsonl.conflict-20250101-120000-b",
        "projects/~-code-app/s.conflict-20250101-120000-b.jsonl",  # the older naming
    ):
        assert isinstance(decide_push(path, None, Entry(base), remote, device), Sweep)
        assert decide_push(path, None, Entry(base, swept=True), remote, device) is None
        action = decide_push(path, None, Entry(base, settled=True), remote, device)
        assert isinstance(action, Tombstone) and action.base == base
    # Memory is not swept with sessions: a copy of it deleted by hand settles it too.
    memory = "projects/~-code-app/memory/MEMORY.md.conflict-20250101-120000-b"
    assert isinstance(decide_push(memory, None, Entry(base), remote, device), Tombstone)


def test_pull_swept_conflict_copy_is_not_downloaded_again() -> None:
    copy = "projects/~-code-app/s/tool-results/r.txt.conflict-20250101-120000-b"
    base = version(b"x", vv(b=1), "b")
    assert decide_pull(copy, None, Entry(base, swept=True), [base], "a") is None


def test_push_nothing_known_nothing_local() -> None:
    assert decide_push(PATH, None, None, [], "a") is None
    assert decide_push(PATH, None, None, [version(b"x", vv(b=1), "b")], "a") is None


# decide_pull ------------------------------------------------------------------------------


@st.composite
def newer_than(draw: st.DrawFn, base: VersionVector) -> VersionVector:
    """A vector that dominates `base`, as another device's later push would carry."""
    return base.merge(draw(vectors)).bump(draw(devices))


@CHEAP
@given(st.data(), contents, contents | st.none(), vectors, devices, mtimes)
def test_pull_one_newer_remote_is_taken(
    data: st.DataObject,
    mine: bytes,
    theirs: bytes | None,
    base_vector: VersionVector,
    device: str,
    mtime: int,
) -> None:
    base = version(mine, base_vector, device)
    newer = version(theirs, data.draw(newer_than(base_vector)), data.draw(devices), mtime)
    remote = data.draw(st.permutations([base, newer]))
    action = decide_pull(PATH, local_of(mine), Entry(base), remote, device)
    if theirs is None:
        assert isinstance(action, Trash)
    elif theirs == mine:
        assert isinstance(action, Adopt)
    else:
        assert isinstance(action, Download)
    assert action.version.same_content(newer)
    assert newer.vector <= action.version.vector and base.vector <= action.version.vector


@CHEAP
@given(st.data(), contents | st.none(), contents | st.none(), vectors, devices)
def test_pull_nothing_newer_does_nothing(
    data: st.DataObject,
    based: bytes | None,
    local: bytes | None,
    base_vector: VersionVector,
    device: str,
) -> None:
    base = version(based, base_vector, device)
    older = [
        version(
            data.draw(contents | st.none()),
            VersionVector.of(
                {d: min(c, data.draw(st.integers(0, 4))) for d, c in base_vector.counters}
            ),
            data.draw(devices),
        )
        for _ in range(data.draw(st.integers(0, 3)))
    ]
    assert all(o.vector <= base.vector for o in older)
    assert decide_pull(PATH, local_of(local), Entry(base), older + [base], device) is None


@CHEAP
@given(st.data(), contents, contents, vectors, devices, mtimes)
def test_pull_local_change_equal_to_remote_is_adopted(
    data: st.DataObject,
    old: bytes,
    new: bytes,
    base_vector: VersionVector,
    device: str,
    mtime: int,
) -> None:
    assume(old != new)
    base = version(old, base_vector, device)
    other = data.draw(devices.filter(lambda d: d != device))
    newer = version(new, data.draw(newer_than(base_vector)), other, mtime)
    action = decide_pull(PATH, local_of(new, 3), Entry(base), [base, newer], device)
    assert isinstance(action, Adopt)
    assert action.version.same_content(newer)
    assert newer.vector <= action.version.vector
    assert base.vector <= action.version.vector


@CHEAP
@given(st.data(), contents, contents, contents | st.none(), vectors, devices)
def test_pull_local_change_against_different_remote_is_resolved(
    data: st.DataObject,
    old: bytes,
    new: bytes,
    theirs: bytes | None,
    base_vector: VersionVector,
    device: str,
) -> None:
    assume(old != new and theirs != new)
    base = version(old, base_vector, device)
    other = data.draw(devices.filter(lambda d: d != device))
    newer = version(theirs, data.draw(newer_than(base_vector)), other)
    action = decide_pull(PATH, local_of(new, 3), Entry(base), [base, newer], device)
    assert isinstance(action, Resolve)
    assert action.pending is not None
    assert (action.pending.sha256, action.pending.size) == (sha(new), len(new))
    assert action.pending.vector.dominates(base.vector)
    assert newer in action.options


@CHEAP
@given(st.lists(st.builds(version, contents, nonempty, devices, mtimes), min_size=1))
def test_pull_on_a_new_device_downloads(remote: list[Version]) -> None:
    action = decide_pull(PATH, None, None, remote, "z")
    options = maximal(remote)
    if all(o.same_content(options[0]) for o in options):
        assert isinstance(action, Download)
        assert action.version.same_content(options[0])
        assert all(r.vector <= action.version.vector for r in remote)
    else:
        assert isinstance(action, Resolve) and action.pending is None


def test_pull_new_device_single_remote() -> None:
    remote = [version(b"x", vv(a=1), "a")]
    assert decide_pull(PATH, None, None, remote, "z") == Download(PATH, remote[0])
    assert decide_pull(PATH, None, None, [version(None, vv(a=2), "a")], "z") == Adopt(
        PATH, version(None, vv(a=2), "a")
    )


@CHEAP
@given(st.data(), st.lists(st.builds(version, contents, nonempty, devices, mtimes), min_size=1))
def test_pull_without_state_local_equal_to_a_remote_is_not_a_local_change(
    data: st.DataObject, remote: list[Version]
) -> None:
    """Lost state: a local file equal to a remote version is that version, not a new edit."""
    chosen = data.draw(st.sampled_from(remote))
    same = merge_all(r.vector for r in remote if r.same_content(chosen))
    # leave out the versions that conflict with the local content's own versions
    remote = [r for r in remote if r.same_content(chosen) or not r.vector.concurrent(same)]
    local = LocalFile(chosen.sha256, chosen.size, 1)
    action = decide_pull(PATH, local, None, remote, "z")
    newer = maximal(r for r in remote if not r.vector <= same)
    if not newer:
        assert isinstance(action, Adopt) and action.version.same_content(chosen)
    elif all(n.same_content(newer[0]) for n in newer):
        assert isinstance(action, (Download, Adopt, Trash))
        assert action.version.same_content(newer[0])
        assert all(r.vector <= action.version.vector for r in remote)
    else:
        # the newer versions conflict among themselves; the local file is not one more side
        assert isinstance(action, Resolve) and action.pending is None


@CHEAP
@given(st.data(), st.lists(st.builds(version, contents, nonempty, devices, mtimes), min_size=1))
def test_pull_without_state_local_equal_to_newest_remote_is_adopted_property(
    data: st.DataObject, remote: list[Version]
) -> None:
    chosen = data.draw(st.sampled_from(remote))
    same = merge_all(r.vector for r in remote if r.same_content(chosen))
    remote = [r for r in remote if r.same_content(chosen) or r.vector <= same]
    action = decide_pull(PATH, LocalFile(chosen.sha256, chosen.size, 1), None, remote, "z")
    assert isinstance(action, Adopt)
    assert action.version.same_content(chosen)
    assert all(r.vector <= action.version.vector for r in remote)


def test_pull_without_state_local_equal_to_an_older_remote_downloads_the_newer() -> None:
    old = version(b"x", vv(a=1), "a")
    new = version(b"y", vv(a=1, b=1), "b")
    action = decide_pull(PATH, local_of(b"x"), None, [old, new], "z")
    assert isinstance(action, Download) and action.version.same_content(new)


def test_pull_without_state_local_equal_to_newest_remote_is_adopted() -> None:
    newest = version(b"x", vv(a=1), "a")
    action = decide_pull(PATH, local_of(b"x"), None, [newest], "z")
    assert isinstance(action, Adopt) and action.version.same_content(newest)


def test_pull_with_state_never_adopts_when_nothing_is_newer() -> None:
    base = version(b"x", vv(a=1), "a")
    assert decide_pull(PATH, local_of(b"x"), Entry(base), [base], "a") is None
    assert decide_pull(PATH, local_of(b"x"), Entry(base), [], "a") is None


def test_pull_transcript_swept_is_downloaded_only_when_newer() -> None:
    base = version(b"x", vv(a=1), "a")
    entry = Entry(base, swept=True)
    assert decide_pull(TRANSCRIPT, None, entry, [base], "a") is None


# resolve ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    content: bytes | None
    mtime: int
    device: str


options_st = st.lists(
    st.builds(Option, contents | st.none(), mtimes, devices), min_size=1, max_size=6
)


def build(opts: list[Option]) -> list[Version]:
    """Concurrent versions: each has a counter of its own."""
    return [
        version(o.content, VersionVector.of({f"x{i}": 1}), o.device, o.mtime)
        for i, o in enumerate(opts)
    ]


def prefix_oracle(store: dict[str, bytes]):
    def is_prefix(shorter: Version, longer: Version) -> bool:
        assert not shorter.deleted and not longer.deleted
        return store[longer.sha256].startswith(store[shorter.sha256])

    return is_prefix


def store_of(*groups: list[bytes | None]) -> dict[str, bytes]:
    return {sha(c): c for group in groups for c in group if c is not None}


def outcome(resolution: Resolution) -> tuple:
    winner = resolution.winner
    return (
        None if winner is None else (winner.sha256, winner.size, winner.deleted),
        sorted(v.sha256 for v in resolution.losers),
        sorted(v.sha256 for v in resolution.merged_inputs),
        resolution.vector,
    )


def check_nothing_dropped(
    resolution: Resolution, everything: list[bytes | None], store: dict[str, bytes], path: str
) -> None:
    """Every live content is kept (winner, loser or merge input); only in an append-only
    file may a longer version hold a shorter one instead. An append-only file is merged,
    never split into conflict copies."""
    winner = resolution.winner
    if is_append_only(path):
        assert resolution.losers == ()
    if winner is None:
        kept = [store[v.sha256] for v in resolution.merged_inputs]
        assert is_append_only(path) and len(kept) > 1
    else:
        kept = [store[v.sha256] for v in resolution.losers]
        if not winner.deleted:
            kept.append(store[winner.sha256])
    assert all(not v.deleted for v in resolution.losers)
    assert len(set(kept)) == len(kept)
    if is_append_only(path):  # none of the kept is a prefix of another
        for i, one in enumerate(kept):
            for j, other in enumerate(kept):
                assert i == j or not other.startswith(one)
    for content in everything:
        if content is not None:
            if is_append_only(path):
                assert any(k.startswith(content) for k in kept), content
            else:
                assert content in kept, content


@CHEAP
@given(st.data(), options_st, st.sampled_from([PATH, TRANSCRIPT]))
def test_resolve_is_deterministic_and_drops_nothing(
    data: st.DataObject, opts: list[Option], path: str
) -> None:
    store = store_of([o.content for o in opts])
    versions = build(opts)
    first = resolve(path, tuple(versions), None, prefix_oracle(store))
    shuffled = data.draw(st.permutations(versions))
    second = resolve(path, tuple(shuffled), None, prefix_oracle(store))
    assert outcome(first) == outcome(second)
    assert not first.keep_local or first.winner is None  # a merge is published as a change
    assert first.vector == merge_all(v.vector for v in versions)
    check_nothing_dropped(first, [o.content for o in opts], store, path)
    live = [o for o in opts if o.content is not None]
    if live:
        # a live version beats a deletion
        assert first.winner is None or not first.winner.deleted
    else:
        assert first.winner.deleted and first.losers == ()


@CHEAP
@given(contents, st.lists(st.tuples(mtimes, devices), min_size=1, max_size=5))
def test_resolve_identical_contents_never_conflict(
    content: bytes, stamps: list[tuple[int, str]]
) -> None:
    store = store_of([content])
    versions = build([Option(content, m, d) for m, d in stamps])
    resolution = resolve(PATH, tuple(versions), None, prefix_oracle(store))
    assert resolution.losers == ()
    assert resolution.winner.sha256 == sha(content)
    pending = version(content, vv(z=9), "z", 99)
    with_pending = resolve(PATH, tuple(versions), pending, prefix_oracle(store))
    assert with_pending.losers == ()
    assert with_pending.winner.sha256 == sha(content)


@CHEAP
@given(
    contents,
    st.binary(min_size=1, max_size=4),
    mtimes,
    mtimes,
    devices,
    devices,
    st.booleans(),
    st.sampled_from(["none", "shorter", "longer"]),
)
def test_resolve_prefix_longer_wins_only_in_append_only_files(
    short: bytes,
    extra: bytes,
    mtime_short: int,
    mtime_long: int,
    dev_short: str,
    dev_long: str,
    flip: bool,
    pending_side: str,
) -> None:
    long = short + extra
    store = store_of([short, long])
    v_short = version(short, vv(x=1), dev_short, mtime_short)
    v_long = version(long, vv(y=1), dev_long, mtime_long)
    pending = None
    if pending_side == "shorter":
        pending = replace(v_short, vector=vv(x=1, p=1))
        opts = [v_long]
    elif pending_side == "longer":
        pending = replace(v_long, vector=vv(y=1, p=1))
        opts = [v_short]
    else:
        opts = [v_short, v_long]
    if flip:
        opts.reverse()
    for path in (TRANSCRIPT, HISTORY):
        resolution = resolve(path, tuple(opts), pending, prefix_oracle(store))
        assert resolution.winner is not None
        assert resolution.winner.sha256 == sha(long)
        assert resolution.losers == ()
        assert resolution.keep_local == (pending_side == "longer")
    # Elsewhere the shorter one is an edit (a truncation): the two meet as a conflict.
    resolution = resolve(PATH, tuple(opts), pending, prefix_oracle(store))
    assert resolution.winner is not None and len(resolution.losers) == 1
    assert {resolution.winner.sha256, resolution.losers[0].sha256} == {sha(short), sha(long)}
    if pending is not None:
        assert resolution.winner is pending and resolution.keep_local


@CHEAP
@given(options_st, contents, mtimes)
def test_resolve_pending_change_wins_and_nothing_is_dropped(
    opts: list[Option], mine: bytes, mtime: int
) -> None:
    live = [o.content for o in opts if o.content is not None]
    store = store_of(live, [mine])
    versions = build(opts)
    pending = version(mine, merge_all(v.vector for v in versions).bump("me"), "me", mtime)
    resolution = resolve(PATH, tuple(versions), pending, prefix_oracle(store))
    assert resolution.winner is pending
    assert resolution.keep_local
    loser_contents = {store[v.sha256] for v in resolution.losers}
    assert mine not in loser_contents
    check_nothing_dropped(resolution, [*live, mine], store, PATH)
    # settings.json is not append-only: every other distinct content is a loser
    for content in set(live) - {mine}:
        assert content in loser_contents


@CHEAP
@given(options_st, mtimes)
def test_resolve_pending_deletion_loses_to_live(opts: list[Option], mtime: int) -> None:
    store = store_of([o.content for o in opts])
    versions = build(opts)
    pending = version(None, merge_all(v.vector for v in versions).bump("me"), "me", mtime)
    resolution = resolve(PATH, tuple(versions), pending, prefix_oracle(store))
    if any(o.content is not None for o in opts):
        assert not resolution.winner.deleted and not resolution.keep_local
    else:
        assert resolution.winner.deleted
    check_nothing_dropped(resolution, [o.content for o in opts], store, PATH)


@CHEAP
@given(contents, contents, mtimes, mtimes, st.booleans(), st.sampled_from([HISTORY, TRANSCRIPT]))
def test_resolve_merges_divergent_append_only_files(
    one: bytes, two: bytes, m1: int, m2: int, as_pending: bool, path: str
) -> None:
    assume(not one.startswith(two) and not two.startswith(one))
    store = store_of([one, two])
    v1 = version(one, vv(a=1), "a", m1)
    v2 = version(two, vv(b=1), "b", m2)
    if as_pending:
        resolution = resolve(path, (v2,), v1, prefix_oracle(store))
    else:
        resolution = resolve(path, (v1, v2), None, prefix_oracle(store))
    assert resolution.winner is None
    assert resolution.losers == ()
    assert {v.sha256 for v in resolution.merged_inputs} == {sha(one), sha(two)}
    assert len(resolution.merged_inputs) == 2


# simulation -------------------------------------------------------------------------------

SIM_DEVICES = ("a", "b", "c")


@dataclass
class Device:
    name: str
    skew: int
    local: bytes | None = None
    mtime: int = 0
    entry: Entry | None = None
    copies: set[bytes] = field(default_factory=set)

    def file(self) -> LocalFile | None:
        return local_of(self.local, self.mtime)


@dataclass
class World:
    path: str
    devices: dict[str, Device]
    manifests: dict[str, Version] = field(default_factory=dict)
    published: set[bytes] = field(default_factory=set)
    store: dict[str, bytes] = field(default_factory=dict)
    clock: int = 100
    held: set[bytes] = field(default_factory=set)
    superseded: set[bytes] = field(default_factory=set)
    trashed: set[bytes] = field(default_factory=set)  # stale copies a pull replaced
    log: list[str] = field(default_factory=list)
    check_history: bool = True

    def now(self, device: Device) -> int:
        self.clock += 1
        return self.clock + device.skew

    def remote(self) -> list[Version]:
        return [self.manifests[name] for name in SIM_DEVICES if name in self.manifests]

    def is_prefix(self, shorter: Version, longer: Version) -> bool:
        return self.store[longer.sha256].startswith(self.store[shorter.sha256])

    def keep(self, content: bytes) -> None:
        self.store[sha(content)] = content
        self.held.add(content)

    def set_base(self, device: Device, base: Version) -> None:
        old = device.entry.base.vector if device.entry is not None else VersionVector()
        if self.check_history:
            assert old <= base.vector, f"{device.name} forgot its history: {old} -> {base}"
        device.entry = Entry(base)

    # user operations --------------------------------------------------------------------

    def write(self, device: Device, content: bytes | None) -> None:
        if device.local is not None:
            self.superseded.add(device.local)
        device.local = content
        device.mtime = self.now(device)
        if content is not None:
            self.keep(content)

    def edit(self, device: Device, data: bytes) -> None:
        self.write(device, data)

    def append(self, device: Device, data: bytes) -> None:
        self.write(device, (device.local or b"") + data)

    def delete(self, device: Device) -> None:
        if device.local is not None:
            self.write(device, None)

    # sync -------------------------------------------------------------------------------

    def push(self, device: Device) -> None:
        """As the push action: the manifest is written when a file is sent or a base published."""
        action = decide_push(self.path, device.file(), device.entry, self.remote(), device.name)
        self.log.append(f"push {device.name}: {action}")
        new_copies = bool(device.copies - self.published)  # conflict copies are files to send
        if action is None and not new_copies:
            return
        if isinstance(action, Sweep):
            device.entry = flagged(device.entry, swept=True)
            if not new_copies:
                return
        if isinstance(action, Publish):
            self.set_base(device, replace(action.base, vector=action.vector, device=device.name))
        if isinstance(action, (Upload, Tombstone)):
            if isinstance(action, Upload):
                assert action.local == device.file()
                new = Version(
                    action.local.sha256,
                    action.local.size,
                    action.local.mtime_ns,
                    action.vector,
                    device.name,
                )
            else:
                new = Version("", 0, self.now(device), action.vector, device.name, deleted=True)
            seen = device.entry.base.vector if device.entry is not None else VersionVector()
            for name, other in self.manifests.items():
                if name != device.name and not other.vector <= seen:
                    assert not other.vector <= new.vector, f"{new} silently overrides {other}"
            self.set_base(device, new)
        self.republish(device)

    def republish(self, device: Device) -> None:
        """A push writes the whole manifest: every state entry, adopted ones included."""
        if device.entry is not None:
            old = self.manifests.get(device.name)
            if old is not None and self.check_history:
                assert old.vector <= device.entry.base.vector
            self.manifests[device.name] = device.entry.base
            for other in self.manifests.values():
                # a vector names one version: two manifests never give it different contents
                assert other.vector != device.entry.base.vector or other.same_content(
                    device.entry.base
                ), f"{device.entry.base} and {other} share a vector"
        self.published |= device.copies

    def pull(self, device: Device) -> None:
        """As the pull action, publish flags included."""
        device.copies |= self.published
        remote = self.remote()
        action = decide_pull(self.path, device.file(), device.entry, remote, device.name)
        self.log.append(f"pull {device.name}: {action}")
        if device.entry is None and device.local is not None and action is not None:
            # a copy with no known base yields; the pull keeps what it replaces in trash/
            self.trashed.add(device.local)
        if isinstance(action, Adopt):
            assert action.version.same_content(version(device.local, VersionVector()))
            self.set_base(device, action.version)
            device.entry = flagged(device.entry, publish=action.publish)
        elif isinstance(action, Download):
            content = self.store[action.version.sha256]
            self.keep(content)
            device.local, device.mtime = content, action.version.mtime_ns
            self.set_base(device, action.version)
        elif isinstance(action, Trash):
            device.local = None
            self.set_base(device, action.version)
        elif isinstance(action, Resolve):
            self.apply_resolve(device, action)

    def apply_resolve(self, device: Device, action: Resolve) -> None:
        """As the pull action applies a resolution."""
        if action.pending is not None:
            assert action.pending.same_content(version(device.local, VersionVector()))
        resolution = resolve(
            self.path, action.options, action.pending, self.is_prefix, action.pending_yields
        )
        self.log.append(f"  -> {resolution}")
        for loser in resolution.losers:
            device.copies.add(self.store[loser.sha256])
        remote_best = max(
            action.options, key=lambda v: (not v.deleted, v.mtime_ns, v.device, v.sha256)
        )
        vector = resolution.vector
        if device.entry is not None:
            vector = vector.merge(device.entry.base.vector)
        winner = resolution.winner
        assert winner is not None, "history is not simulated"
        if resolution.keep_local:
            self.set_base(device, as_base(remote_best, vector))
        elif winner.deleted:
            device.local = None
            self.set_base(device, as_base(winner, vector))
        elif device.local is not None and winner.same_content(version(device.local, vector)):
            self.set_base(device, as_base(winner, vector))
        else:
            content = self.store[winner.sha256]
            self.keep(content)
            device.local, device.mtime = content, winner.mtime_ns
            self.set_base(device, as_base(winner, vector))
        if not resolution.keep_local and len(action.options) > 1:
            device.entry = flagged(device.entry, publish=True)

    def snapshot(self) -> tuple:
        return (
            tuple(
                (d.local, d.mtime, entry_values(d.entry), frozenset(d.copies))
                for d in self.devices.values()
            ),
            tuple(sorted(self.manifests.items())),
            frozenset(self.published),
        )


def as_base(version: Version, vector: VersionVector) -> Version:
    """What the pull action records (the vector already holds the version's own)."""
    return replace(version, vector=merge_all([vector, version.vector]))


# few contents, so that devices often write the same bytes, or a prefix of each other's
sim_contents = st.sampled_from([b"", b"a", b"b", b"ab"])
operations = st.one_of(
    st.tuples(st.just("edit"), st.sampled_from(SIM_DEVICES), sim_contents),
    st.tuples(st.just("append"), st.sampled_from(SIM_DEVICES), st.sampled_from([b"a", b"b"])),
    st.tuples(st.just("delete"), st.sampled_from(SIM_DEVICES), st.just(b"")),
    st.tuples(st.just("push"), st.sampled_from(SIM_DEVICES), st.just(b"")),
    st.tuples(st.just("pull"), st.sampled_from(SIM_DEVICES), st.just(b"")),
    st.tuples(st.just("republish"), st.sampled_from(SIM_DEVICES), st.just(b"")),
)
skews = st.tuples(*[st.integers(-30, 30) for _ in SIM_DEVICES])
ROUNDS = 10


def simulate(
    path: str,
    ops: list[tuple[str, str, bytes]],
    skew: tuple[int, ...],
    check_history: bool = True,
    push_on_save: bool = False,
) -> World:
    """Run `ops`, then pull and push on every device until nothing changes any more.

    push_on_save: every local change is pushed at once, so a pull never meets a local change.
    """
    devices = {n: Device(n, s) for n, s in zip(SIM_DEVICES, skew, strict=True)}
    world = World(path, devices, check_history=check_history)
    for kind, name, data in ops:
        device = world.devices[name]
        if kind in ("edit", "append"):
            getattr(world, kind)(device, data)
        else:
            getattr(world, kind)(device)
        if push_on_save and kind in ("edit", "append", "delete"):
            world.push(device)
    world.log.append("--- converge")
    for _ in range(ROUNDS):
        before = world.snapshot()
        for device in world.devices.values():
            world.pull(device)
            world.push(device)
        if world.snapshot() == before:
            break
    else:
        raise AssertionError(f"no convergence after {ROUNDS} rounds:\n" + "\n".join(world.log))
    if currently_in_test_context():
        note("\n".join(world.log))
    return world


def check_converged(world: World) -> None:
    """Same file everywhere, the same conflict copies, nothing lost, nothing left to do."""
    finals = {d.local for d in world.devices.values()}
    assert len(finals) == 1, f"devices disagree: {finals}"
    (final,) = finals
    copies = [frozenset(d.copies) for d in world.devices.values()]
    assert len(set(copies)) == 1
    # every content some device held is the file, a conflict copy, or was replaced on purpose
    # by a user (an edit, append or delete on a device holding it); a prefix of a kept content
    # is kept with it (the longer one wins, by design)
    kept = set(copies[0]) | world.superseded | world.trashed
    kept |= {final} if final is not None else set()
    for content in world.held:
        assert any(k.startswith(content) for k in kept), f"{content!r} was lost"
    for device in world.devices.values():
        remote = world.remote()
        assert decide_push(world.path, device.file(), device.entry, remote, device.name) is None
        pull = decide_pull(world.path, device.file(), device.entry, remote, device.name)
        assert pull is None or isinstance(pull, Adopt), pull


sessions = st.lists(
    st.tuples(
        st.sampled_from(SIM_DEVICES),
        st.lists(operations.filter(lambda op: op[0] in ("edit", "append", "delete")), max_size=3),
    ),
    max_size=8,
)


@SIMULATION
@given(sessions, skews)
def test_simulation_one_device_at_a_time(
    work: list[tuple[str, list[tuple[str, str, bytes]]]], skew: tuple[int, ...]
) -> None:
    """Sync before and after each working session: the last session's file wins everywhere."""
    ops: list[tuple[str, str, bytes]] = []
    for name, edits in work:
        ops += [("pull", name, b""), *((kind, name, data) for kind, _, data in edits)]
        ops.append(("push", name, b""))
    world = simulate(PATH, ops, skew)
    check_converged(world)
    assert not any(d.copies for d in world.devices.values())
    if work:
        last = world.devices[work[-1][0]]
        assert all(d.local == last.local for d in world.devices.values())


BUG_SETTLEMENT = (
    "settlements are not canonical: two devices record the same merged vector (no counter "
    "bumped) for different contents, e.g. a local edit adopted as equal to one side versus the "
    "remote-rank winner, or an earlier settlement versus a later tombstone; once published, "
    "every manifest holds that vector, nothing is newer, and the devices never converge"
)


NO_SHRINK = settings(SIMULATION, phases=[Phase.explicit, Phase.reuse, Phase.generate])


@SIMULATION
@given(st.lists(operations, max_size=30), skews)
def test_simulation_converges_without_losing_content(
    ops: list[tuple[str, str, bytes]], skew: tuple[int, ...]
) -> None:
    check_converged(simulate(PATH, ops, skew))


@NO_SHRINK
@given(st.lists(operations, max_size=30), skews)
def test_simulation_push_on_save_converges(
    ops: list[tuple[str, str, bytes]], skew: tuple[int, ...]
) -> None:
    """Every change is pushed at once: a pull never meets a local change."""
    check_converged(simulate(PATH, ops, skew, push_on_save=True))


@SIMULATION
@given(st.lists(operations, max_size=30), skews)
def test_simulation_never_forgets_history(
    ops: list[tuple[str, str, bytes]], skew: tuple[int, ...]
) -> None:
    """A device's base vector, and its manifest's, only ever grow."""
    simulate(PATH, ops, skew, check_history=True)


@CHEAP
@given(
    sim_contents,
    sim_contents,
    sim_contents | st.none(),
    st.permutations(SIM_DEVICES),
    skews,
)
def test_settling_two_concurrent_versions_converges(
    x: bytes, y: bytes, z: bytes | None, order: list[str], skew: tuple[int, ...]
) -> None:
    """a pushes x and b pushes y concurrently; a then writes z (None: deletes) and everyone
    pulls, in any order, then syncs until quiet."""
    ops = [("edit", "a", x), ("edit", "b", y), ("push", "a", b""), ("push", "b", b"")]
    ops.append(("delete", "a", b"") if z is None else ("edit", "a", z))
    ops += [("pull", name, b"") for name in order]
    check_converged(simulate(PATH, ops, skew))


def test_adopted_equal_edit_and_remote_winner_agree() -> None:
    """b writes "y"; a writes "x" (later mtime) and pushes; b pushes; a then edits to "y".

    a's pull adopts "y" as equal to b's, with vector {a:1, b:1}; b's pull resolves x{a:1}
    against y{b:1}, keeps "x" by mtime, with vector {a:1, b:1} too. Both publish; every
    manifest holds {a:1, b:1}, so nothing is newer for anyone: a and c keep "y", b "x".
    """
    ops = [
        ("edit", "b", b"y"),
        ("edit", "a", b"x"),
        ("push", "a", b""),
        ("push", "b", b""),
        ("edit", "a", b"y"),
        ("pull", "a", b""),
        ("pull", "b", b""),
    ]
    world = simulate(PATH, ops, (0, 0, 0))
    assert {d.local for d in world.devices.values()} == {b"y"}


def test_settlement_does_not_outlive_a_deletion() -> None:
    """Every change pushed at once. b writes "", a writes "a"; c settles them ("a"
    wins as the longer) into {a:1, b:1}; a deletes ("a" is gone, tombstone {a:2}).

    c's next pull resolves its own settlement "a"{a:1, b:1} against the tombstone and
    keeps "a" with {a:2, b:1}; a and b resolve the tombstone against ""{b:1} and keep ""
    with {a:2, b:1}. Same vector, different contents, for good.
    """
    ops = [
        ("edit", "b", b""),
        ("append", "a", b"a"),
        ("pull", "c", b""),
        ("delete", "a", b""),
        ("pull", "c", b""),
    ]
    world = simulate(PATH, ops, (0, 0, 0), push_on_save=True)
    assert {d.local for d in world.devices.values()} == {b""}


def test_resolved_local_change_keeps_what_it_superseded() -> None:
    """X everywhere; F (b) -> D1 -> D2 on a, concurrently with E on c; b's clock runs ahead.

    a's pull resolves its local D2 against E: the base it records must still carry
    {a:1, b:2}, so that its push of D2 supersedes F{b:2}. (It once recorded E{b:1, c:1}
    only, and F, with the later mtime, then won everywhere over the user's newest edit.)
    """
    ops = [
        ("edit", "b", b"X"),
        ("push", "b", b""),
        ("pull", "a", b""),
        ("pull", "c", b""),
        ("edit", "b", b"F"),
        ("push", "b", b""),
        ("pull", "a", b""),
        ("edit", "a", b"D1"),
        ("push", "a", b""),
        ("edit", "c", b"E"),
        ("push", "c", b""),
        ("edit", "a", b"D2"),
        ("pull", "a", b""),
        ("push", "a", b""),
    ]
    world = simulate(PATH, ops, (0, 30, 0))
    assert {d.local for d in world.devices.values()} == {b"D2"}
    assert all(d.copies == {b"E"} for d in world.devices.values())
