"""The claude-sync hooks in Claude Code's settings.json: added, found, removed.

    {"hooks": {"SessionStart": [{"hooks": [{"type": "command", "command": PULL, "timeout": 10}]}],
               "SessionEnd":   [{"hooks": [{"type": "command", "command": PUSH, "timeout": 5}]}],
               "Stop":         [{"hooks": [{"type": "command", "command": PUSH, "timeout": 5}]}]}}

settings.json is itself synced, so the entries arrive on every device: each command runs
`claude-sync` through PATH (an absolute path would differ between machines) and is silent
with exit 0 where claude-sync is not installed. An entry is ours when its command is exactly
one of ours, so `uninstall` removes what `install` added and nothing else. Claude Code runs
hook commands with /bin/sh and a timeout in seconds.
"""

from __future__ import annotations

import copy
import json
import os
import stat
from pathlib import Path

from .errors import ConfigError
from .files import write_private

PULL_COMMAND = "command -v claude-sync >/dev/null 2>&1 && claude-sync pull --hook || true"
PUSH_COMMAND = "command -v claude-sync >/dev/null 2>&1 && claude-sync push --hook || true"
OURS = frozenset({PULL_COMMAND, PUSH_COMMAND})
PUSH_HOOK_TIMEOUT = 5  # seconds; push --hook only hands the push to a background run


def wanted_hooks(on_stop: bool) -> dict[str, str]:
    """Event -> command for the hooks `install` sets up."""
    hooks = {"SessionStart": PULL_COMMAND, "SessionEnd": PUSH_COMMAND}
    if on_stop:
        hooks["Stop"] = PUSH_COMMAND
    return hooks


def hook_timeout(command: str, pull_timeout: int) -> int:
    """Claude Code's timeout for our hook: the pull's own deadline plus room to clean up."""
    return pull_timeout + 5 if command == PULL_COMMAND else PUSH_HOOK_TIMEOUT


def installed_hooks(settings: dict) -> dict[str, str]:
    """Event -> our command, for every event that has one of our hooks."""
    return {event: hooks[0][0] for event, hooks in _ours(settings).items()}


def without_ours(settings: dict) -> dict:
    """`settings` with every hook of ours removed, and the groups and events it leaves empty."""
    result = copy.deepcopy(settings)
    events = _events(result)
    removed = False
    for event in list(events):
        groups = events[event]
        if not isinstance(groups, list):
            continue
        kept_groups = []
        for group in groups:
            hooks = _hooks_of(group)
            if not any(_is_ours(hook) for hook in hooks):
                kept_groups.append(group)
                continue
            removed = True
            group["hooks"] = [hook for hook in hooks if not _is_ours(hook)]
            if group["hooks"]:
                kept_groups.append(group)
        if kept_groups:
            events[event] = kept_groups
        else:
            del events[event]
    if removed and not events:
        del result["hooks"]
    return result


def with_ours(settings: dict, on_stop: bool, pull_timeout: int) -> dict:
    """`settings` with exactly our hooks: ours replaced, everything else kept as it was."""
    wanted = {
        event: [(command, hook_timeout(command, pull_timeout))]
        for event, command in wanted_hooks(on_stop).items()
    }
    if _ours(settings) == wanted:
        return copy.deepcopy(settings)
    result = without_ours(settings)
    events = result.setdefault("hooks", {})
    for event, command in wanted_hooks(on_stop).items():
        timeout = hook_timeout(command, pull_timeout)
        hook = {"type": "command", "command": command, "timeout": timeout}
        events.setdefault(event, []).append({"hooks": [hook]})
    return result


def _is_ours(hook: dict) -> bool:
    command = hook.get("command")
    return isinstance(command, str) and command in OURS


def _ours(settings: dict) -> dict[str, list[tuple[str, object]]]:
    """Event -> (command, timeout) of each of our hooks."""
    found: dict[str, list[tuple[str, object]]] = {}
    for event, groups in _events(settings).items():
        for group in groups if isinstance(groups, list) else []:
            for hook in _hooks_of(group):
                if _is_ours(hook):
                    found.setdefault(event, []).append((hook["command"], hook.get("timeout")))
    return found


def _events(settings: dict) -> dict:
    events = settings.get("hooks")
    return events if isinstance(events, dict) else {}


def _hooks_of(group: object) -> list[dict]:
    if not isinstance(group, dict) or not isinstance(group.get("hooks"), list):
        return []
    return [hook for hook in group["hooks"] if isinstance(hook, dict)]


def read_settings(path: Path) -> dict:
    """settings.json as a mapping ({} when absent); refuse anything we could not rewrite
    without losing what is in it."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read {path}: {error}") from None
    if not text.strip():
        return {}
    try:
        settings = json.loads(text)
    except ValueError as error:
        raise ConfigError(f"{path} is not valid JSON ({error}): left unchanged") from None
    if not isinstance(settings, dict):
        raise ConfigError(f"{path} does not hold a JSON object: left unchanged")
    if "hooks" in settings and not isinstance(settings["hooks"], dict):
        raise ConfigError(f"{path}: `hooks` is not a JSON object: left unchanged")
    for event, groups in _events(settings).items():
        if not isinstance(groups, list):
            raise ConfigError(f"{path}: `hooks.{event}` is not a list: left unchanged")
    return settings


def write_settings(path: Path, settings: dict) -> None:
    """Replace settings.json atomically, keeping its mode (0600 for a new file); a link
    (settings kept in a dotfiles repository) is written through, never replaced."""
    real = Path(os.path.realpath(path))
    try:
        mode = stat.S_IMODE(real.stat().st_mode)
    except FileNotFoundError:
        mode = 0o600
    else:
        if not mode & stat.S_IWUSR or not os.access(real, os.W_OK):
            raise ConfigError(f"{path} is read-only: left unchanged")
    write_private(real, json.dumps(settings, indent=2, ensure_ascii=False) + "\n", mode)
