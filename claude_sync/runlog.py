"""logs/: what hook-run and background invocations did, for `status` and for the curious.

    logs/claude-sync.log       one line per event: "<time> [pid] <kind>: <message>", rotated
                               to claude-sync.log.1 past MAX_LOG_BYTES, so it stays bounded
    logs/last-<kind>.json      the last run of each kind: {"when", "outcome", "detail"}

Kinds: `hook-pull` (SessionStart), `hook-push` (SessionEnd or Stop: a push handed to the
background), `background-push`, and `push` (an interactive one: a later success answers an
earlier failed background push). One file per kind, so runs of different kinds never race.
Messages are one line each and never hold file contents, keys or passphrases.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
from dataclasses import dataclass
from pathlib import Path

from .files import private_folder, write_private

LOGS = "logs"
LOG_FILE = "claude-sync.log"
MAX_LOG_BYTES = 256 * 1024
KINDS = ("hook-pull", "hook-push", "background-push", "push")


@dataclass(frozen=True)
class Run:
    """The last run of one kind (a hook, a background push, a push): when, and how it went."""

    kind: str
    when: str
    outcome: str  # ok, failed
    detail: str


def _now() -> str:
    return datetime.datetime.now().astimezone().replace(microsecond=0).isoformat()


def log(home: Path, kind: str, message: str) -> None:
    """Append one line to logs/claude-sync.log, rotating it when it has grown too big.
    A log that cannot be written (a full disk) never fails the run it describes."""
    with contextlib.suppress(OSError):
        _append(home, kind, message)


def _append(home: Path, kind: str, message: str) -> None:
    folder = home / LOGS
    private_folder(folder)
    path = folder / LOG_FILE
    try:
        if path.stat().st_size > MAX_LOG_BYTES:
            os.replace(path, path.with_name(LOG_FILE + ".1"))
    except FileNotFoundError:
        pass
    line = f"{_now()} [{os.getpid()}] {kind}: {' '.join(message.split())}\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def record(home: Path, kind: str, outcome: str, detail: str = "") -> None:
    """Log a finished run and keep it as the last run of its kind."""
    log(home, kind, f"{outcome}" + (f": {detail}" if detail else ""))
    document = {"when": _now(), "outcome": outcome, "detail": detail}
    with contextlib.suppress(OSError):
        write_private(home / LOGS / f"last-{kind}.json", json.dumps(document))


def last_runs(home: Path) -> list[Run]:
    """The last run of each kind that has run, in KINDS order."""
    runs = []
    for kind in KINDS:
        try:
            document = json.loads((home / LOGS / f"last-{kind}.json").read_text())
            runs.append(Run(kind, document["when"], document["outcome"], document["detail"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return runs


def failed_background_push(home: Path) -> Run | None:
    """The last background push, when it failed and no push has succeeded since."""
    runs = {run.kind: run for run in last_runs(home)}
    failed = runs.get("background-push")
    if failed is None or failed.outcome != "failed":
        return None
    pushed = runs.get("push")
    if pushed is not None and pushed.when >= failed.when:
        return None
    return failed
