"""The benchmark: claude-sync's runs as ratios against plain rclone on the same tree.

    python bench/run.py [--projects 20] [--sessions 15]

Every timing is taken in this process, on this machine, against a local-folder remote, and
reported as a ratio to a reference run of plain rclone, never as an absolute promise:

    full push      vs  rclone copy of the plaintext tree
    full pull      vs  rclone copy of that copy back
    no-op push     vs  starting `rclone version` once (the cost of any rclone call)
    no-op pull     vs  rclone lsjson of the remote
    append push    vs  rclone copy of the plaintext tree again (rclone skips unchanged files)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from generate import generate

BIN = Path(sys.executable).parent
RCLONE = str(BIN / "rclone")
CLAUDE_SYNC = str(BIN / "claude-sync")


def timed(command: list[str], environment: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, env=environment, capture_output=True)
    return time.perf_counter() - started


def device(root: Path, name: str) -> dict[str, str]:
    home = root / name
    home.mkdir(exist_ok=True)
    return {
        **os.environ,
        "HOME": str(home),
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        "CLAUDE_SYNC_HOME": str(home / ".claude-sync"),
        "CLAUDE_SYNC_PASSPHRASE": "benchmark passphrase",
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--projects", type=int, default=20)
    parser.add_argument("--sessions", type=int, default=15)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        a, b = device(root, "a"), device(root, "b")
        claude_a = Path(a["CLAUDE_CONFIG_DIR"])
        files = generate(claude_a, arguments.projects, arguments.sessions, seed=1)
        size = sum(p.stat().st_size for p in claude_a.rglob("*") if p.is_file())
        print(f"tree: {files} files, {size / 1e6:.1f} MB")

        reference = root / "reference"
        rows = []
        copy_ref = timed([RCLONE, "copy", str(claude_a), str(reference)])
        for env in (a, b):
            subprocess.run(
                [CLAUDE_SYNC, "init", "--local", str(root / "remote"), "--yes"],
                check=True,
                env=env,
                capture_output=True,
            )
        rows.append(("full push", timed([CLAUDE_SYNC, "push", "-q"], a), copy_ref))
        pull_ref = timed([RCLONE, "copy", str(reference), str(root / "reference-back")])
        rows.append(("full pull", timed([CLAUDE_SYNC, "pull", "-q"], b), pull_ref))
        start_ref = timed([RCLONE, "version"])
        rows.append(("no-op push", timed([CLAUDE_SYNC, "push", "-q"], a), start_ref))
        list_ref = timed([RCLONE, "lsjson", "-R", str(root / "remote")])
        rows.append(("no-op pull", timed([CLAUDE_SYNC, "pull", "-q"], b), list_ref))
        for transcript in sorted(claude_a.glob("projects/*/session-000[0-4].jsonl")):
            with open(transcript, "a") as out:
                out.write('{"type": "user", "message": "one more line"}\n')
        recopy_ref = timed([RCLONE, "copy", str(claude_a), str(reference)])
        rows.append(("append push", timed([CLAUDE_SYNC, "push", "-q"], a), recopy_ref))

        print(f"{'run':14} {'claude-sync':>12} {'reference':>10} {'ratio':>7}")
        for name, ours, theirs in rows:
            print(f"{name:14} {ours:11.3f}s {theirs:9.3f}s {ours / theirs:7.2f}")


if __name__ == "__main__":
    main()
