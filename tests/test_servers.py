"""The test servers in tests/servers.py work with the real rclone, and survive stop/start."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from servers import KINDS, Server, start_server

RCLONE = str(Path(sys.executable).parent / "rclone")
FAIL_FAST = ["--contimeout", "2s", "--timeout", "2s", "--retries", "1", "--low-level-retries", "1"]


def write_conf(tmp_path: Path, server: Server) -> Path:
    conf = tmp_path / "rclone.conf"
    lines = ["[remote]", *(f"{k} = {v}" for k, v in server.rclone_section.items())]
    conf.write_text("\n".join(lines) + "\n")
    return conf


def rclone(conf: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RCLONE, "--config", str(conf), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def ok(conf: Path, *args: str) -> str:
    proc = rclone(conf, *args)
    assert proc.returncode == 0, f"rclone {' '.join(args)} failed:\n{proc.stderr}"
    return proc.stdout


@pytest.mark.parametrize("kind", KINDS)
def test_server_roundtrip_and_restart(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    server = start_server(kind, tmp_path, RCLONE)
    request.addfinalizer(server.stop)
    conf = write_conf(tmp_path, server)
    root = f"remote:{server.remote_root}"
    src = tmp_path / "y.txt"
    src.write_text("hello server\n")

    ok(conf, "mkdir", root)
    ok(conf, "copyto", str(src), f"{root}/x/y.txt")
    listing = json.loads(ok(conf, "lsjson", "-R", root))
    files = {e["Path"]: e["Size"] for e in listing if not e["IsDir"]}
    assert files == {"x/y.txt": len("hello server\n")}
    assert ok(conf, "cat", f"{root}/x/y.txt") == "hello server\n"
    # The bytes really live in data_dir.
    stored = [p for p in server.data_dir.rglob("y.txt") if p.is_file()]
    assert [p.read_text() for p in stored] == ["hello server\n"]

    if kind != "local":
        server.stop()
        started = time.monotonic()
        proc = rclone(conf, *FAIL_FAST, "copyto", str(src), f"{root}/x/z.txt", timeout=30)
        elapsed = time.monotonic() - started
        assert proc.returncode != 0, proc.stderr
        assert elapsed < 20, f"failure took {elapsed:.1f}s"

    server.start()
    assert ok(conf, "cat", f"{root}/x/y.txt") == "hello server\n"
