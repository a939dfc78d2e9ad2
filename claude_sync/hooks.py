"""Hook mode: what Claude Code sends a hook, and the SessionEnd/Stop push hand-off.

Claude Code runs a hook with a JSON object on stdin (`session_id`, `transcript_path`, `cwd`,
`hook_event_name`, and per event `source` or `reason`) and feeds SessionStart's stdout to
the model. So hook mode reads the fields it uses (the session, the event and why it fired;
the transcript is found from the session id), writes nothing to stdout, reports
problems as one line on stderr and in logs/, and always exits 0.

`push --hook` must return at once (SessionEnd hooks are killed after about 1.5 s): this
module imports only what the hand-off needs, not the sync machinery.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from . import runlog
from .background import request_push

WRAPPED = "CLAUDE_SYNC_WRAPPED"  # set for Claude Code run by `claude-sync claude`


@dataclass(frozen=True)
class HookInput:
    session_id: str | None = None
    event: str | None = None
    source: str | None = None
    reason: str | None = None


def parse_hook_input(text: str) -> HookInput:
    """The fields we use, each None when missing or not a string; anything else ignored."""
    try:
        document = json.loads(text) if text.strip() else {}
    except ValueError:
        document = {}
    if not isinstance(document, dict):
        document = {}

    def field(name: str) -> str | None:
        value = document.get(name)
        return value if isinstance(value, str) and value else None

    return HookInput(
        session_id=field("session_id"),
        event=field("hook_event_name"),
        source=field("source"),
        reason=field("reason"),
    )


def read_hook_input() -> HookInput:
    """Claude Code's JSON from stdin; nothing (not a terminal's wait) when run by hand."""
    if sys.stdin is None or sys.stdin.isatty():
        return HookInput()
    try:
        return parse_hook_input(sys.stdin.read())
    except (OSError, UnicodeDecodeError):
        return HookInput()


def push_hook(home: Path) -> None:
    """Hand a push to the background runner; never raises, never prints to stdout."""
    hook = read_hook_input()
    why = " ".join(part for part in (hook.event or "hook", hook.reason, hook.session_id) if part)
    if os.environ.get(WRAPPED) and hook.event == "SessionEnd":
        runlog.record(home, "hook-push", "ok", "skipped: `claude-sync claude` pushes next")
        return
    try:
        if not (home / "config.yaml").exists():
            runlog.record(home, "hook-push", "failed", "not set up: run `claude-sync init`")
            print("claude-sync: not set up here; run `claude-sync init`", file=sys.stderr)
            return
        request_push(home, why)
        runlog.record(home, "hook-push", "ok", f"push handed to the background ({why})")
    except Exception as error:  # hook mode: one line, exit 0, whatever went wrong
        message = f"{type(error).__name__}: {error}"
        print(f"claude-sync: push not started: {message}", file=sys.stderr)
        runlog.record(home, "hook-push", "failed", message)
