"""The commands that run beside Claude Code: hook mode, the background push, the
`claude`/`continue`/`resume` wrapper, and `install`/`uninstall` of the hooks.

Each command imports what only it needs in its body: the CLI imports this module on every
run, for a push or a pull as for these commands."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from . import runlog
from .cli_output import Printer, count, pull_line, push_line, refused_line
from .errors import ClaudeSyncError, ConfigError
from .files import write_private
from .locations import claude_dir, sync_home
from .lock import locked

if TYPE_CHECKING:
    from .session import Event
    from .workspace import Workspace


def report_hooks(report: Callable[..., None]) -> None:
    """Whether the hooks are installed, and whether the claude-sync they run is this one."""
    from .hook_settings import installed_hooks, read_settings, with_ours

    path = claude_dir() / "settings.json"
    try:
        settings = read_settings(path)
    except ClaudeSyncError as error:
        report(False, "hooks", str(error), "fix the file")
        return
    installed = installed_hooks(settings)
    if not installed:
        report(
            False,
            "hooks",
            f"not installed in {path}",
            "`claude-sync install`, or use the alias",
            warn=True,
        )
        return
    current = with_ours(settings, "Stop" in installed, hook_pull_timeout()) == settings
    report(
        current,
        "hooks",
        f"{', '.join(installed)} in {path}"
        + ("" if current else ", with a timeout other than hooks.pull_timeout asks for"),
        "run `claude-sync install` again",
        warn=True,
    )
    on_path = shutil.which("claude-sync")
    this = os.path.realpath(Path(sys.executable).parent / "claude-sync")
    if on_path is None:
        report(False, "hook command", "claude-sync is not on PATH: the hooks do nothing", "add it")
    elif os.path.realpath(on_path) != this:
        report(
            False,
            "hook command",
            f"the hooks run {on_path}, not this claude-sync ({this})",
            "put this one first on PATH, or remove the other",
        )
    else:
        report(True, "hook command", f"the hooks run this claude-sync ({on_path})")


class HookListener:
    """Hook mode's listener: warnings and conflicts go to logs/, never to stdout."""

    def __init__(self, home: Path, kind: str) -> None:
        self.home = home
        self.kind = kind

    def __call__(self, event: Event) -> None:
        if event.kind == "warning":
            runlog.log(self.home, self.kind, f"warning: {event.detail}")
        elif event.kind == "conflict":
            runlog.log(self.home, self.kind, f"conflict: {event.path} (saved as {event.detail})")


HOOK_LOCK_WAIT = 1.0  # seconds; a session started right after one ended finds its push running


def pull_hook() -> None:
    """SessionStart: pull everything but the session being opened, within the deadline.

    Claude Code has loaded that session's transcript already; a line added under it now
    would fork the conversation. Nothing reaches stdout (Claude Code gives it to the model).
    """
    from .hooks import WRAPPED, read_hook_input
    from .workspace import load_workspace

    started = time.monotonic()
    home = sync_home()
    hook = read_hook_input()
    if os.environ.get(WRAPPED):
        runlog.record(home, "hook-pull", "ok", "skipped: `claude-sync claude` pulled already")
        return
    try:
        ws = load_workspace(home)
        deadline = ws.config.hook_pull_timeout
        ws.remote.rclone.give_up_at = started + deadline
        with (
            locked(ws.home, wait=min(HOOK_LOCK_WAIT, deadline)),
            ws.remote.mirroring_early(ws.remote_mirror),
        ):
            from .actions import pull as pull_action  # while rclone reads the remote

            summary = pull_action.pull(
                ws, HookListener(home, "hook-pull"), held_session=hook.session_id
            )
    except ClaudeSyncError as error:
        tell(f"claude-sync: pull skipped: {error}")
        runlog.record(home, "hook-pull", "failed", str(error))
        return
    except Exception as error:  # hook mode: one line and exit 0, whatever went wrong
        message = f"{type(error).__name__}: {error}"
        tell(f"claude-sync: pull failed: {message}")
        runlog.record(home, "hook-pull", "failed", message)
        return
    except KeyboardInterrupt:  # Claude Code gave up on the hook: nothing was half-applied
        runlog.record(home, "hook-pull", "failed", "interrupted")
        return
    opened = " ".join(part for part in (hook.source, hook.session_id) if part)
    detail = pull_line(summary, dry_run=False) + (f" ({opened})" if opened else "")
    if summary.held:
        detail += f"; held back {', '.join(summary.held)} (newer elsewhere)"
        tell(
            f"claude-sync: session {hook.session_id} has newer turns on another device; "
            f"to continue with them, quit and run `claude-sync resume {hook.session_id}`"
        )
    if summary.pending:
        detail += f"; {count(len(summary.pending), 'conflict')} to settle"
        tell(
            f"claude-sync: {count(len(summary.pending), 'conflict')} to settle; "
            "run `claude-sync conflicts`"
        )
    if summary.refused:
        tell(f"claude-sync: {refused_line(summary.refused)}")
    runlog.record(home, "hook-pull", "failed" if summary.refused else "ok", detail)


def tell(line: str) -> None:
    """One line on stderr from hook mode, which must not fail for want of a reader."""
    with contextlib.suppress(OSError):
        click.echo(line, err=True)


BACKGROUND_LOCK_WAIT = 300  # seconds a background push waits for an interactive run


@click.command("background-push", hidden=True)
def background_push() -> None:
    """Run the pushes that hooks requested (started by `push --hook`, detached)."""
    from .actions import push as push_action
    from .background import REQUEST, run_requested
    from .workspace import load_workspace

    home = sync_home()

    def push_once() -> None:
        try:
            ws = load_workspace(home)
            with locked(ws.home, wait=BACKGROUND_LOCK_WAIT):
                summary = push_action.push(ws, HookListener(home, "background-push"))
            runlog.record(home, "background-push", "ok", push_line(summary, dry_run=False))
        except ClaudeSyncError as error:
            runlog.record(home, "background-push", "failed", str(error))
        except Exception as error:  # recorded for `status`; the runner goes on
            runlog.record(home, "background-push", "failed", f"{type(error).__name__}: {error}")
        except KeyboardInterrupt:  # stopped (a shutdown): the push stays requested
            runlog.record(home, "background-push", "failed", "interrupted; requested again")
            write_private(home / REQUEST, "interrupted\n")
            raise

    run_requested(home, push_once)


FOREGROUND_PUSH_BYTES = 32 * 1024 * 1024  # more than this after Claude Code: push in background


def _claude_binary() -> str:
    binary = os.environ.get("CLAUDE_SYNC_CLAUDE") or shutil.which("claude")
    if not binary:
        raise ConfigError(
            "Claude Code (`claude`) is not on PATH: install it, or set CLAUDE_SYNC_CLAUDE"
        )
    return binary


def _run_claude(arguments: list[str]) -> None:
    """Pull, run Claude Code with the terminal, then push; exit with Claude Code's code.

    The pull's wait for the remote is bounded by rclone.timeout (the journal); what it
    then downloads shows its progress, and Ctrl-C stops it."""
    from .actions.claude import run_child
    from .hooks import WRAPPED
    from .workspace import load_workspace

    binary = _claude_binary()
    around = os.environ.get(WRAPPED)
    if around:
        if os.path.realpath(binary) == os.path.realpath(around):
            raise ConfigError(
                f"`claude-sync claude` already runs around {binary}: if `claude` on PATH is a "
                "script that calls claude-sync, set CLAUDE_SYNC_CLAUDE to Claude Code itself"
            )
        sys.exit(run_child([binary, *arguments]))
    printer = Printer(quiet=False, verbose=False, to_stderr=True)
    ws = None
    try:
        ws = load_workspace(sync_home())
        with locked(ws.home), ws.remote.mirroring_early(ws.remote_mirror):
            from .actions import pull as pull_action  # while rclone reads the remote

            summary = pull_action.pull(ws, printer, progress=printer.progress)
        printer.done(pull_line(summary, dry_run=False))
        if summary.pending:
            click.echo(
                f"⚠ {count(len(summary.pending), 'conflict')} to settle: "
                "run `claude-sync conflicts` after this session",
                err=True,
            )
        if summary.refused:
            click.echo(refused_line(summary.refused), err=True)
    except (ClaudeSyncError, OSError) as error:  # OSError: a terminal that went away
        with contextlib.suppress(OSError):
            click.echo(f"! pull failed, starting Claude Code anyway: {error}", err=True)
    code = run_child([binary, *arguments], {WRAPPED: binary})
    if ws is not None:
        _push_after_claude(ws)
    sys.exit(code)


def _push_after_claude(ws: Workspace) -> None:
    """Push what the session wrote. What cannot finish here (a big push, the terminal
    closed, a signal, the lock held, the remote down) a background run takes over, so the
    session is never left unpushed; the SessionEnd hook leaves this push to us."""
    from .actions import push as push_action
    from .background import request_push

    printer = Printer(quiet=False, verbose=False, to_stderr=True)
    try:
        with locked(ws.home):
            summary = push_action.push(
                ws, printer, foreground_bytes=FOREGROUND_PUSH_BYTES, progress=printer.progress
            )
        if not summary.deferred:
            runlog.record(ws.home, "push", "ok", push_line(summary, dry_run=False))
            printer.done(push_line(summary, dry_run=False))
            return
        message = "↑ pushing in the background (`claude-sync status` shows how it went)"
    except (ClaudeSyncError, OSError, KeyboardInterrupt) as error:
        reason = str(error) or type(error).__name__
        message = f"! the push goes on in the background ({reason})"
    request_push(ws.home, "after claude")
    with contextlib.suppress(OSError):
        click.echo(message, err=True)


_PASS_THROUGH = {
    "ignore_unknown_options": True,
    "allow_interspersed_args": False,
    "help_option_names": [],  # `claude --help` through the alias is Claude Code's help
}


@click.command(context_settings=_PASS_THROUGH)
@click.argument("arguments", nargs=-1, type=click.UNPROCESSED)
def claude(arguments: tuple[str, ...]) -> None:
    """Pull, run Claude Code with ARGUMENTS, then push: the safe way to switch machines.

    \b
    alias claude='claude-sync claude'
    claude-sync claude -p "hello"
    """
    _run_claude(list(arguments))


@click.command("continue", context_settings=_PASS_THROUGH)
@click.argument("arguments", nargs=-1, type=click.UNPROCESSED)
def continue_(arguments: tuple[str, ...]) -> None:
    """Pull, continue the last session here (`claude --continue`), then push.

    \b
    claude-sync continue
    """
    _run_claude(["--continue", *arguments])


@click.command(context_settings=_PASS_THROUGH)
@click.argument("session_id")
@click.argument("arguments", nargs=-1, type=click.UNPROCESSED)
def resume(session_id: str, arguments: tuple[str, ...]) -> None:
    """Pull, resume session SESSION_ID (`claude --resume`), then push; works for a
    session that so far exists only on another device.

    \b
    claude-sync resume 0f3c5b2e-8a41-4d6e-9c7b-2f1e0a9d8c76
    """
    _run_claude(["--resume", session_id, *arguments])


@click.command()
@click.option("--on-stop", is_flag=True, help="Also push after every turn (Stop hook).")
def install(on_stop: bool) -> None:
    """Add the claude-sync hooks to Claude Code's settings.json (a fallback for the alias).

    \b
    claude-sync install
    claude-sync install --on-stop
    """
    from .hook_settings import installed_hooks, read_settings, with_ours, write_settings

    path = claude_dir() / "settings.json"
    settings = read_settings(path)
    updated = with_ours(settings, on_stop, hook_pull_timeout())
    if updated == settings:
        click.echo(f"✓ the hooks are already installed in {path}")
    else:
        write_settings(path, updated)
        events = ", ".join(installed_hooks(updated))
        click.echo(f"✓ installed the claude-sync hooks ({events}) in {path}")
    if shutil.which("claude-sync") is None:
        click.echo("! claude-sync is not on PATH: the hooks do nothing until it is", err=True)


@click.command()
def uninstall() -> None:
    """Remove the claude-sync hooks from Claude Code's settings.json, and nothing else.

    \b
    claude-sync uninstall
    """
    from .hook_settings import read_settings, without_ours, write_settings

    path = claude_dir() / "settings.json"
    settings = read_settings(path)
    updated = without_ours(settings)
    if updated == settings:
        click.echo(f"✓ no claude-sync hooks in {path}")
        return
    write_settings(path, updated)
    click.echo(f"✓ removed the claude-sync hooks from {path}")


def hook_pull_timeout() -> int:
    from .config import Config, load_config

    try:
        return load_config(sync_home()).hook_pull_timeout
    except ClaudeSyncError:
        return Config.hook_pull_timeout
