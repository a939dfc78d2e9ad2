"""Sessions kept after Claude Code forgets them, listed, restored; narrow pushes and pulls.
Through the CLI, real files, a real remote (issue 9, points 4 and 5)."""

from __future__ import annotations

import shutil

from conftest import copies, joined, put
from servers import Server


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
