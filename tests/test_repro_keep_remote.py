"""`conflicts --keep remote` before the next push must not be undone by another device's
publish of what its own pull settled earlier."""

from __future__ import annotations

from conftest import joined, put
from servers import Server


def test_keep_remote_is_not_undone_by_a_settlement_published_after_it(
    local_server: Server, make_device
) -> None:
    """A and B each push an edit without pulling (hooks: push at a session's end): two
    concurrent versions. A pulls and settles on B's (the newer mtime); its push is pending.
    B pulls, keeps A's (`--keep remote`) and pushes. A's push must not publish its older
    settlement over B's choice: both end with A's."""
    a, b = (joined(make_device(name), local_server) for name in "ab")
    put(a, "CLAUDE.md", "v0\n", 1)
    a.ok("push")
    b.ok("pull")
    put(a, "CLAUDE.md", "from a\n", 10)
    a.ok("push")
    put(b, "CLAUDE.md", "from b\n", 20)
    b.ok("push")
    a.ok("pull", exit_code=3)  # settles on B's, A's kept as a copy; publish pending
    b.ok("pull", exit_code=3)
    b.ok("conflicts", "--keep", "remote")
    assert b.read("CLAUDE.md") == b"from a\n"
    b.ok("push")
    a.ok("push")  # before the fix: publishes "from b", concurrent with B's choice, newer
    for _ in range(3):
        for device in (a, b):
            assert device.run("sync").exit_code in (0, 3)
    assert {d.name: d.read("CLAUDE.md") for d in (a, b)} == {"a": b"from a\n", "b": b"from a\n"}
