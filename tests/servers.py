"""Real storage servers (rclone serve s3/webdav/sftp) for end-to-end tests.

Plain helper module: ``start_server(kind, tmp_path, rclone)`` returns a :class:`Server`
listening on 127.0.0.1 with a free port and random credentials. The caller must
register ``server.stop`` as a finalizer so no process outlives the test.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

KINDS = ("local", "s3", "webdav", "sftp")
START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0

# Every live server process, so that an interrupted run still cleans up at exit.
_LIVE: set[subprocess.Popen[bytes]] = set()


@dataclass
class Server:
    kind: str  # "local" | "s3" | "webdav" | "sftp"
    data_dir: Path  # folder on disk holding everything the server stores
    provider_args: list[str]  # arguments for `claude-sync init` selecting this server
    rclone_section: dict[str, str]  # equivalent rclone.conf section (obscured passwords)
    remote_root: str  # path inside that section's remote where the sync root lives
    port: int = 0
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    log_path: Path | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def stop(self) -> None:
        """Kill the server process (no-op for local or if already stopped)."""
        proc, self.proc = self.proc, None
        if proc is not None:
            _terminate(proc)

    def start(self) -> None:
        """(Re)start on the same port, data dir and credentials; wait until it accepts TCP."""
        if self.kind == "local":
            return
        self.stop()
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            # The port may be momentarily busy (another listener, or a bind failure): wait
            # until nobody listens, launch, and relaunch if it dies, until the deadline.
            if not port_open(self.port):
                self._launch()
                if self._wait_listening(deadline):
                    return
                self.stop()
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"rclone serve {self.kind} did not accept connections on "
                    f"127.0.0.1:{self.port} within {START_TIMEOUT:.0f}s; log:\n{self._log_tail()}"
                )
            time.sleep(0.2)

    def _launch(self) -> None:
        assert self.log_path is not None
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        _LIVE.add(self.proc)

    def _wait_listening(self, deadline: float) -> bool:
        """True once our process accepts TCP connections; False if it exits or times out."""
        assert self.proc is not None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if port_open(self.port):
                return self.proc.poll() is None
            time.sleep(0.05)
        return False

    def _log_tail(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-4000:]


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    _LIVE.discard(proc)


@atexit.register
def _stop_all() -> None:
    for proc in list(_LIVE):
        _terminate(proc)


def port_open(port: int) -> bool:
    """True if something accepts TCP connections on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def obscure(rclone: str, secret: str, env: dict[str, str]) -> str:
    """`rclone obscure` reading the secret from stdin (keeps it out of argv)."""
    out = subprocess.run(
        [rclone, "obscure", "-"],
        input=secret,
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=30,
    )
    return out.stdout.strip()


def server_env(home: Path) -> dict[str, str]:
    """Environment isolated from the user's rclone config/caches and RCLONE_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RCLONE_", "XDG_"))}
    home.mkdir(parents=True, exist_ok=True)
    env["HOME"] = str(home)
    conf = home / "rclone.conf"  # never read the user's config
    conf.touch()
    env["RCLONE_CONFIG"] = str(conf)
    return env


def start_server(kind: str, tmp_path: Path, rclone: str) -> Server:
    """Start a real server of ``kind`` on 127.0.0.1 and return it once it accepts TCP."""
    if kind not in KINDS:
        raise ValueError(f"unknown server kind {kind!r}; expected one of {KINDS}")
    data_dir = tmp_path / "remote"
    data_dir.mkdir(parents=True, exist_ok=True)
    if kind == "local":
        return Server(
            kind="local",
            data_dir=data_dir,
            provider_args=["--local", str(data_dir)],
            rclone_section={"type": "local"},
            remote_root=str(data_dir),
        )

    env = server_env(tmp_path / f"{kind}-server-home")
    user = "u" + secrets.token_hex(8)
    password = secrets.token_hex(16)
    port = free_port()
    addr = f"127.0.0.1:{port}"
    serve = [rclone, "serve", kind, str(data_dir), "--addr", addr]

    # Secrets go to the server through the environment, not argv.
    if kind == "s3":
        (data_dir / "bucket").mkdir(exist_ok=True)
        env["RCLONE_AUTH_KEY"] = f'"{user},{password}"'
        argv = serve
        endpoint = f"http://{addr}"
        provider_args = [
            "--provider", "s3",
            "--set", "provider=Other",
            "--set", f"endpoint={endpoint}",
            "--set", f"access_key_id={user}",
            "--set", f"secret_access_key={password}",
            "--set", "region=us-east-1",
            "--set", "bucket=bucket",
            "--set", "path=claude-sync",
        ]  # fmt: skip
        section = {
            "type": "s3",
            "provider": "Other",
            "endpoint": endpoint,
            "access_key_id": user,
            "secret_access_key": password,
            "region": "us-east-1",
            "force_path_style": "true",
        }
        remote_root = "bucket/claude-sync"
    elif kind == "webdav":
        env["RCLONE_PASS"] = password
        argv = [*serve, "--user", user]
        url = f"http://{addr}"
        provider_args = [
            "--provider", "webdav",
            "--set", f"url={url}",
            "--set", f"user={user}",
            "--set", f"pass={password}",
            "--set", "path=claude-sync",
        ]  # fmt: skip
        section = {
            "type": "webdav",
            "url": url,
            "vendor": "other",
            "user": user,
            "pass": obscure(rclone, password, env),
        }
        remote_root = "claude-sync"
    else:  # sftp
        env["RCLONE_PASS"] = password
        argv = [*serve, "--user", user]
        provider_args = [
            "--provider", "sftp",
            "--set", "host=127.0.0.1",
            "--set", f"port={port}",
            "--set", f"user={user}",
            "--set", f"pass={password}",
            "--set", "path=claude-sync",
        ]  # fmt: skip
        section = {
            "type": "sftp",
            "host": "127.0.0.1",
            "port": str(port),
            "user": user,
            "pass": obscure(rclone, password, env),
            # rclone serve sftp emulates these commands; naming them skips the probing.
            "shell_type": "unix",
            "md5sum_command": "md5sum",
            "sha1sum_command": "sha1sum",
            # The host key is generated per test; silence the "no validation" notice.
            "known_hosts_file": "none",
        }
        remote_root = "claude-sync"

    server = Server(
        kind=kind,
        data_dir=data_dir,
        provider_args=provider_args,
        rclone_section=section,
        remote_root=remote_root,
        port=port,
        argv=argv,
        env=env,
        log_path=tmp_path / f"{kind}-server.log",
    )
    server.start()
    return server


@contextlib.contextmanager
def silenced(server: Server) -> Iterator[None]:
    """The server's port taken over by a listener that accepts and never answers."""
    server.stop()
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", server.port))
    listener.listen(64)
    listener.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        for connection in held:
            connection.close()
        listener.close()
