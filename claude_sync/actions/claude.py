"""Run Claude Code as a child with the terminal, its signals and its exit code passed through."""

from __future__ import annotations

import os
import signal
import subprocess

from ..errors import ConfigError

FORWARDED = (signal.SIGTERM, signal.SIGHUP)


def run_child(command: list[str], extra_environment: dict[str, str] | None = None) -> int:
    """Run `command` in the foreground; return its exit code (128 + N when signal N ended it).

    The child shares the terminal and its process group, so Ctrl-C reaches it directly; the
    parent only waits meanwhile. SIGTERM and SIGHUP sent to the parent are passed on.
    """
    environment = {**os.environ, **(extra_environment or {})}
    try:
        child = subprocess.Popen(command, env=environment)
    except OSError as error:
        raise ConfigError(f"cannot run {command[0]}: {error.strerror}") from None

    def forward(number: int, _frame: object) -> None:
        child.send_signal(number)

    def wait_quietly(_number: int, _frame: object) -> None:
        pass  # the child got the terminal's Ctrl-C too; it decides

    previous = {number: signal.signal(number, forward) for number in FORWARDED}
    previous[signal.SIGINT] = signal.signal(signal.SIGINT, wait_quietly)
    try:
        code = child.wait()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    return 128 - code if code < 0 else code
