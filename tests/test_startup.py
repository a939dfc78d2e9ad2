"""What a run imports: a push or a pull with nothing to do imports only what it needs.

Every `claude-sync push` and `pull` (and every hook) pays for each module it imports, so the
commands import their actions, and modules only rare paths use, in the functions that use
them. These tests see that in `sys.modules` at exit, not in a timing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import Device, joined, put
from servers import Server

# Runs the command as the `claude-sync` script does, and writes the modules loaded at exit.
WRAPPER = """
import atexit, sys
output, arguments = sys.argv[1], sys.argv[2:]
atexit.register(lambda: open(output, "w").write("\\n".join(sorted(sys.modules))))
sys.argv = ["claude-sync", *arguments]
from claude_sync.__main__ import main
main()
"""

# Neither command needs these when there is nothing to do. (The commands run without -q:
# click's parser imports difflib for any short option, to suggest a long one.)
RARE = {
    "claude_sync.actions.conflicts",
    "claude_sync.actions.devices",
    "claude_sync.actions.export",
    "claude_sync.actions.migrate",
    "claude_sync.actions.projects",
    "claude_sync.actions.prune",
    "claude_sync.actions.sessions",
    "claude_sync.actions.status",
    "claude_sync.actions.verify",
    "claude_sync.initialize",
    "claude_sync.templates",
    "argon2",
    "concurrent.futures",
    "difflib",
    "multiprocessing",
}


def modules_after(device: Device, tmp_path: Path, *args: str) -> set[str]:
    """The modules loaded when `claude-sync ARGS` exits, run as a process of its own."""
    output = tmp_path / "modules.txt"
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, str(output), *args],
        env=device.environment(),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return set(output.read_text().split())


def test_a_push_with_nothing_to_do_imports_no_pull_nor_rare_module(
    local_server: Server, make_device, tmp_path: Path
) -> None:
    a = joined(make_device("a"), local_server)
    put(a, "projects/-p/s.jsonl", '{"n": 1}\n', 0)
    a.ok("push")
    loaded = modules_after(a, tmp_path, "push")
    assert "claude_sync.actions.push" in loaded
    pull = {"claude_sync.actions.pull", "claude_sync.assemble", "claude_sync.merges"}
    # Nor what only a push that sends something uses: encryption, rclone, the machine's name.
    sending = {"claude_sync.encrypting", "subprocess", "socket"}
    unneeded = sorted(loaded & (RARE | pull | sending))
    assert not unneeded, f"imported without need: {', '.join(unneeded)}"


def test_a_pull_with_nothing_to_do_imports_no_push_nor_rare_module(
    local_server: Server, make_device, tmp_path: Path
) -> None:
    a, b = (joined(make_device(name), local_server) for name in "ab")
    put(a, "projects/-p/s.jsonl", '{"n": 1}\n', 0)
    a.ok("push")
    b.ok("pull")
    loaded = modules_after(b, tmp_path, "pull")
    assert "claude_sync.actions.pull" in loaded
    unneeded = sorted(loaded & (RARE | {"claude_sync.actions.push", "claude_sync.encrypting"}))
    assert not unneeded, f"imported without need: {', '.join(unneeded)}"
