"""`claude-sync init` end to end: real templates, real rclone, real servers on loopback."""

from __future__ import annotations

import base64
import importlib.metadata
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result
from conftest import PASSPHRASE, Device, joined, put, tree
from servers import Server, free_port

from claude_sync.cli import main
from claude_sync.keys import derive_identity, read_key_file

AGE = "/usr/bin/age"
OTHER_PASSPHRASE = "another passphrase!"
KEYCHECK_TEXT = "claude-sync keycheck v1"


def run(device: Device, *args: str, passphrase: str | None = PASSPHRASE, **extra: str) -> Result:
    """`claude-sync ARGS` as this device; passphrase=None leaves CLAUDE_SYNC_PASSPHRASE unset."""
    environment: dict[str, str | None] = dict(device.environment(**extra))
    environment["CLAUDE_SYNC_PASSPHRASE"] = passphrase
    return CliRunner().invoke(main, list(args), env=environment)


def succeeded(result: Result) -> str:
    assert result.exit_code == 0, f"exit {result.exit_code}:\n{result.output}"
    return result.stdout


def error_line(result: Result) -> str:
    """The one line a failed command printed: on stderr, no traceback, nothing on stdout."""
    assert result.exit_code != 0, result.output
    # A ClaudeSyncError ends in sys.exit; any other exception is a crash (a traceback).
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in result.output
    return lines[0]


def assert_nothing_written(device: Device) -> None:
    home = device.sync_home
    assert not home.exists() or list(home.iterdir()) == [], sorted(home.rglob("*"))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def read_config(device: Device) -> dict:
    return yaml.safe_load((device.sync_home / "config.yaml").read_text())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def assert_private_home(device: Device, rclone_conf: bool = True) -> None:
    assert mode(device.sync_home) == 0o700
    for name in ("config.yaml", "age-key.txt") + (("rclone.conf",) if rclone_conf else ()):
        assert mode(device.sync_home / name) == 0o600, name


def remote_root_on_disk(server: Server) -> Path:
    """The folder on the server's disk holding CLAUDE-SYNC.json."""
    markers = list(server.data_dir.rglob("CLAUDE-SYNC.json"))
    assert len(markers) == 1, markers
    return markers[0].parent


def salt_of(root: Path) -> bytes:
    """The passphrase salt in the CLAUDE-SYNC.json of the remote folder `root`."""
    return base64.b64decode(json.loads((root / "CLAUDE-SYNC.json").read_text())["kdf"]["salt"])


def age_decrypt(key_file: Path, encrypted: Path) -> str:
    completed = subprocess.run(
        [AGE, "-d", "-i", str(key_file), str(encrypted)], capture_output=True, check=True
    )
    return completed.stdout.decode()


def init_args(server: Server, name: str, *more: str) -> list[str]:
    return ["init", *server.provider_args, "--device-name", name, "--yes", *more]


def server_password(server: Server) -> str:
    """The clear password given to init with --set pass=... (webdav, sftp)."""
    passwords = [arg[len("pass=") :] for arg in server.provider_args if arg.startswith("pass=")]
    assert len(passwords) == 1
    return passwords[0]


# --- the three-device story, on every kind of server ------------------------------------------


def test_first_inits_second_joins_third_with_another_passphrase_is_refused(
    server: Server, make_device
) -> None:
    first, second, third = make_device("first"), make_device("second"), make_device("third")

    out = succeeded(run(first, *init_args(server, "first")))
    assert "initialised a new remote" in out
    root = remote_root_on_disk(server)
    assert sorted(path.name for path in root.iterdir()) == ["CLAUDE-SYNC.json", "keycheck.age"]
    assert json.loads((root / "CLAUDE-SYNC.json").read_text())["format"] == 2
    assert_private_home(first)
    config = read_config(first)
    assert config["device"]["name"] == "first"
    assert config["remote"]["provider"] == server.kind
    assert config["key"]["mode"] == "passphrase"
    identity = derive_identity(PASSPHRASE, salt_of(root))
    assert str(read_key_file(first.sync_home / "age-key.txt")) == str(identity)

    # The remote holds neither the identity nor the recipient in the clear.
    for data in snapshot(server.data_dir).values():
        assert str(identity).encode() not in data
        assert str(identity.to_public()).encode() not in data
    # The generated rclone.conf never holds a password in the clear (rclone obscures it).
    rclone_conf = (first.sync_home / "rclone.conf").read_text()
    if server.kind in ("webdav", "sftp"):
        password = server_password(server)
        assert len(password) >= 16 and password not in rclone_conf
        assert "pass = " in rclone_conf
    if Path(AGE).is_file():
        assert age_decrypt(first.sync_home / "age-key.txt", root / "keycheck.age") == (
            KEYCHECK_TEXT + "\n"
        )

    on_remote = snapshot(server.data_dir)
    out = succeeded(run(second, *init_args(server, "second")))
    assert "joined the existing remote" in out
    assert read_config(second)["device"]["id"] != config["device"]["id"]
    assert (second.sync_home / "age-key.txt").read_text().splitlines()[1:] == (
        first.sync_home / "age-key.txt"
    ).read_text().splitlines()[1:]
    assert snapshot(server.data_dir) == on_remote  # joining rewrites nothing

    line = error_line(run(third, *init_args(server, "third"), passphrase=OTHER_PASSPHRASE))
    assert "passphrase" in line and "key" in line
    assert_nothing_written(third)
    assert snapshot(server.data_dir) == on_remote


# --- S3: the bucket, and credentials from the environment -----------------------------------------


def s3_args(server: Server, drop: tuple[str, ...] = (), **changed: str) -> list[str]:
    """The server's `--provider s3 --set ...` arguments, without the fields in `drop`, and
    with `changed` fields set to other values."""
    args: list[str] = []
    for flag, value in zip(server.provider_args[::2], server.provider_args[1::2], strict=True):
        name = value.split("=", 1)[0]
        if flag == "--set" and name in drop:
            continue
        if flag == "--set" and name in changed:
            value = f"{name}={changed[name]}"
        args += [flag, value]
    return args


# rclone's AWS provider sends an upload's checksum in a trailer, which the AWS SDK does over
# HTTPS only; over the plain-HTTP loopback server it must hash the body first and fails on a
# stream ("request stream is not seekable"). Unsigned payloads avoid that, as other providers do.
AWS_OVER_HTTP = {"RCLONE_S3_USE_UNSIGNED_PAYLOAD": "true"}


def rclone_section(device: Device) -> dict[str, str]:
    lines = (device.sync_home / "rclone.conf").read_text().splitlines()
    assert lines[0] == "[claude-sync]"
    return dict(line.split(" = ", 1) for line in lines[1:])


def push_then_pull(first: Device, second: Device, **environment: str) -> None:
    put(first, "settings.json", '{"theme": "dark"}\n', 10)
    put(first, "projects/-x/s.jsonl", '{"n": 1}\n', 20)
    assert "2 uploaded" in first.ok("push", **AWS_OVER_HTTP, **environment)
    assert "2 downloaded" in second.ok("pull", **AWS_OVER_HTTP, **environment)
    assert tree(second.claude) == tree(first.claude)


def test_s3_default_provider_on_an_existing_bucket(s3_server: Server, make_device) -> None:
    # rclone's default provider (AWS) takes the 409 BucketAlreadyExists that `rclone serve s3`
    # answers to a CreateBucket as a failure, as an object-only token's refusal would be.
    args = s3_args(s3_server, drop=("provider",))
    first, second = make_device("first"), make_device("second")
    out = succeeded(run(first, "init", *args, "--device-name", "first", "--yes", **AWS_OVER_HTTP))
    assert "initialised a new remote" in out
    assert "created bucket" not in out
    section = rclone_section(first)
    assert section["provider"] == "AWS"
    assert section["no_check_bucket"] == "true"
    assert_private_home(first)

    out = succeeded(run(second, "init", *args, "--device-name", "second", "--yes", **AWS_OVER_HTTP))
    assert "joined the existing remote" in out and "created bucket" not in out
    push_then_pull(first, second)


def test_s3_init_creates_a_missing_bucket_and_says_so(s3_server: Server, make_device) -> None:
    args = s3_args(s3_server, drop=("provider",), bucket="fresh")
    assert not (s3_server.data_dir / "fresh").exists()
    first, second = make_device("first"), make_device("second")
    out = succeeded(run(first, "init", *args, "--device-name", "first", "--yes", **AWS_OVER_HTTP))
    assert "created bucket fresh" in out
    assert "initialised a new remote" in out
    assert (s3_server.data_dir / "fresh" / "claude-sync" / "CLAUDE-SYNC.json").is_file()
    assert rclone_section(first)["no_check_bucket"] == "true"

    out = succeeded(run(second, "init", *args, "--device-name", "second", "--yes", **AWS_OVER_HTTP))
    assert "created bucket" not in out
    push_then_pull(first, second)


def test_s3_init_with_credentials_from_the_environment(s3_server: Server, make_device) -> None:
    access_key_id, secret_access_key = (
        next(arg.split("=", 1)[1] for arg in s3_server.provider_args if arg.startswith(f"{name}="))
        for name in ("access_key_id", "secret_access_key")
    )
    credentials = {"AWS_ACCESS_KEY_ID": access_key_id, "AWS_SECRET_ACCESS_KEY": secret_access_key}
    args = [
        *s3_args(s3_server, drop=("provider", "access_key_id", "secret_access_key")),
        *["--set", "env_auth=true"],
    ]
    first, second = joined(make_device("first"), s3_server), make_device("second")
    init = ["init", *args, "--device-name", "second", "--yes"]
    out = succeeded(run(second, *init, **AWS_OVER_HTTP, **credentials))
    assert "joined the existing remote" in out
    section = rclone_section(second)
    assert section["env_auth"] == "true"
    assert "access_key_id" not in section and "secret_access_key" not in section
    written = (second.sync_home / "rclone.conf").read_text()
    assert access_key_id not in written and secret_access_key not in written
    assert_private_home(second)
    push_then_pull(first, second, **credentials)

    # Without the variables the same remote refuses this device, in one line.
    line = error_line(run(second, "pull", **AWS_OVER_HTTP))
    assert "rclone" in line


def test_s3_without_keys_and_without_env_auth_is_refused(make_device) -> None:
    device = make_device("a")
    args = ["--provider", "s3", "--set", "bucket=b", "--set", "env_auth=false", "--random-key"]
    line = error_line(run(device, "init", *args, "--yes"))
    assert "--set access_key_id=" in line
    assert_nothing_written(device)


# --- ways to give the key ------------------------------------------------------------------------


def test_init_local_with_only_the_environment_passphrase(
    make_device, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    device = make_device("a")
    device.sync_home.mkdir(mode=0o755)  # an empty home that exists already: tightened
    device.sync_home.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    out = succeeded(run(device, "init", "--local", "relative/store", "--device-name", "a", "--yes"))
    store = tmp_path / "relative" / "store"
    assert "initialised a new remote" in out
    assert (store / "CLAUDE-SYNC.json").is_file()
    assert (store / "keycheck.age").is_file()

    config = read_config(device)
    assert config["remote"]["root"] == f"claude-sync:{store}"  # made absolute
    assert config["remote"]["provider"] == "local"
    assert config["remote"]["rclone_config"] == str(device.sync_home / "rclone.conf")
    assert config["device"]["name"] == "a"
    assert len(config["device"]["id"]) >= 8
    assert (
        (device.sync_home / "rclone.conf").read_text().startswith("[claude-sync]\ntype = local\n")
    )
    assert_private_home(device)
    shown = succeeded(run(device, "key", "show"))
    store = Path(config["remote"]["root"].split(":", 1)[1])
    assert shown == str(derive_identity(PASSPHRASE, salt_of(store)).to_public()) + "\n"


def test_init_with_a_passphrase_file(make_device, tmp_path: Path) -> None:
    device = make_device("a")
    passphrase_file = tmp_path / "passphrase.txt"
    passphrase_file.write_text(OTHER_PASSPHRASE + "\n")  # the newline is not part of it
    store = tmp_path / "store"
    # The file wins over the environment.
    succeeded(
        run(
            device,
            *["init", "--local", str(store), "--yes", "--device-name", "a"],
            *["--passphrase-file", str(passphrase_file)],
        )
    )
    key = read_key_file(device.sync_home / "age-key.txt")
    assert str(key) == str(derive_identity(OTHER_PASSPHRASE, salt_of(store)))
    assert read_config(device)["key"]["mode"] == "passphrase"


def test_random_key_then_a_second_device_with_the_copied_key_file(
    make_device, tmp_path: Path
) -> None:
    first, second, third = make_device("first"), make_device("second"), make_device("third")
    store = tmp_path / "store"
    local = ["init", "--local", str(store), "--yes"]

    out = succeeded(run(first, *local, "--device-name", "first", "--random-key"))
    assert "keep a copy" in out and "age-key.txt" in out
    key = read_key_file(first.sync_home / "age-key.txt")
    passphrase_key = derive_identity(PASSPHRASE, salt_of(store))
    assert str(key) != str(passphrase_key)  # the passphrase in the env is ignored
    assert read_config(first)["key"]["mode"] == "random"

    copied = tmp_path / "copied-key.txt"
    shutil.copy(first.sync_home / "age-key.txt", copied)
    out = succeeded(run(second, *local, "--device-name", "second", "--key-file", str(copied)))
    assert "joined the existing remote" in out
    assert str(read_key_file(second.sync_home / "age-key.txt")) == str(key)
    assert mode(second.sync_home / "age-key.txt") == 0o600
    assert read_config(second)["key"]["mode"] == "random"

    # Another random key is another key: the remote refuses it.
    line = error_line(run(third, *local, "--device-name", "third", "--random-key"))
    assert "does not match" in line
    assert_nothing_written(third)


def test_key_file_that_does_not_exist(make_device, tmp_path: Path) -> None:
    device = make_device("a")
    missing = tmp_path / "nope.txt"
    line = error_line(
        run(device, "init", "--local", str(tmp_path / "s"), "--yes", "--key-file", str(missing))
    )
    assert str(missing) in line
    assert_nothing_written(device)
    assert not (tmp_path / "s").exists()


# --- a remote the user already has ---------------------------------------------------------------


def write_user_rclone_conf(path: Path, server: Server) -> Path:
    lines = ["[mine]", *(f"{key} = {value}" for key, value in server.rclone_section.items())]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("server", ["sftp", "s3"], indirect=True)
def test_init_with_an_existing_rclone_remote(server: Server, make_device, tmp_path: Path) -> None:
    device = make_device("a")
    user_conf = write_user_rclone_conf(tmp_path / "user-rclone.conf", server)
    remote = f"mine:{server.remote_root}"
    out = succeeded(
        run(device, "init", "--remote", remote, "--rclone-config", str(user_conf), "--yes")
    )
    assert "initialised a new remote" in out
    assert remote_root_on_disk(server).is_dir()
    assert not (device.sync_home / "rclone.conf").exists()  # the user's config is used as is
    config = read_config(device)
    assert config["remote"] == {
        "root": remote,
        "rclone_config": str(user_conf.resolve()),
        "provider": None,
    }
    assert_private_home(device, rclone_conf=False)
    assert user_conf.read_text().startswith("[mine]\n")  # not rewritten


def test_existing_remote_from_rclones_own_config(
    local_server: Server, make_device, tmp_path: Path
) -> None:
    device = make_device("a")
    user_conf = write_user_rclone_conf(tmp_path / "user-rclone.conf", local_server)
    remote = f"mine:{local_server.remote_root}"
    succeeded(run(device, "init", "--remote", remote, "--yes", RCLONE_CONFIG=str(user_conf)))
    assert (local_server.data_dir / "CLAUDE-SYNC.json").is_file()
    assert read_config(device)["remote"]["rclone_config"] is None
    assert not (device.sync_home / "rclone.conf").exists()


@pytest.mark.parametrize("remote", ["no-colon", "undefined:claude-sync"])
def test_bad_remote_is_one_line(make_device, tmp_path: Path, remote: str) -> None:
    device = make_device("a")
    user_conf = tmp_path / "user-rclone.conf"
    user_conf.write_text("[mine]\ntype = local\n")
    line = error_line(
        run(device, "init", "--remote", remote, "--rclone-config", str(user_conf), "--yes")
    )
    assert ("NAME:PATH" in line) if remote == "no-colon" else ("not defined" in line)
    assert_nothing_written(device)


# --- an existing setup ---------------------------------------------------------------------------


def test_existing_setup_is_kept_without_force_and_replaced_with_it(
    make_device, tmp_path: Path
) -> None:
    device = make_device("a")
    first_store, second_store = tmp_path / "first", tmp_path / "second"
    succeeded(run(device, "init", "--local", str(first_store), "--device-name", "a", "--yes"))
    before = snapshot(device.sync_home)
    device_id = read_config(device)["device"]["id"]

    again = ["init", "--local", str(second_store), "--device-name", "b", "--yes"]
    line = error_line(run(device, *again, passphrase=OTHER_PASSPHRASE))
    assert "already set up" in line and "--force" in line
    assert snapshot(device.sync_home) == before
    assert not second_store.exists()

    # --force with a key the remote refuses changes nothing either.
    line = error_line(
        run(
            device,
            *["init", "--local", str(first_store), "--yes", "--force"],
            passphrase=OTHER_PASSPHRASE,
        )
    )
    assert "does not match" in line
    assert snapshot(device.sync_home) == before

    out = succeeded(run(device, *again, "--force", passphrase=OTHER_PASSPHRASE))
    assert "initialised a new remote" in out
    config = read_config(device)
    assert config["device"]["id"] == device_id  # same device, new settings
    assert config["device"]["name"] == "b"
    assert config["remote"]["root"] == f"claude-sync:{second_store}"
    assert str(read_key_file(device.sync_home / "age-key.txt")) == str(
        derive_identity(OTHER_PASSPHRASE, salt_of(second_store))
    )
    assert (second_store / "CLAUDE-SYNC.json").is_file()
    assert_private_home(device)


def test_force_from_a_template_to_an_own_remote_drops_the_generated_rclone_conf(
    local_server: Server, make_device, tmp_path: Path
) -> None:
    device = make_device("a")
    succeeded(run(device, "init", *local_server.provider_args, "--yes"))
    assert (device.sync_home / "rclone.conf").exists()
    user_conf = write_user_rclone_conf(tmp_path / "user-rclone.conf", local_server)
    remote = f"mine:{local_server.remote_root}"
    out = succeeded(
        run(
            device,
            *["init", "--remote", remote, "--rclone-config", str(user_conf)],
            *["--yes", "--force"],
        )
    )
    assert "joined the existing remote" in out
    assert not (device.sync_home / "rclone.conf").exists()


# --- refusals, each one line and nothing written -------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--provider", "webdav", "--set", "url=http://127.0.0.1:9"], "--set user="),
        (
            ["--provider", "s3", "--set", "bucket=b", "--set", "access_key_id=k"],
            "secret_access_key",
        ),
        (["--provider", "sftp", "--set", "host=h", "--set", "user=u", "--set", "hots=x"], "'hots'"),
        (["--provider", "sftp", "--set", "host"], "FIELD=VALUE"),
        (["--provider", "dropbox"], "unknown provider 'dropbox'"),
        (["--local", "/tmp/x", "--provider", "s3"], "choose one of"),
        (["--local", "/tmp/x", "--random-key", "--key-file", "/tmp/k"], "choose one of"),
        ([], "no storage given"),
    ],
    ids=[
        "missing-field",
        "missing-secret",
        "unknown-field",
        "bad-set",
        "unknown-provider",
        "two-storages",
        "two-keys",
        "no-storage",
    ],
)
def test_refused_init_names_the_problem(make_device, args: list[str], expected: str) -> None:
    device = make_device("a")
    # A random key: the refusal is the same, without spending an Argon2 derivation first.
    key = [] if "--random-key" in args else ["--random-key"]
    line = error_line(run(device, "init", *args, *key, "--yes"))
    assert expected in line
    assert_nothing_written(device)


@pytest.mark.parametrize("yes", [True, False], ids=["yes", "no-tty"])
def test_no_passphrase_available_is_refused(make_device, tmp_path: Path, yes: bool) -> None:
    device = make_device("a")
    args = ["init", "--local", str(tmp_path / "store")] + (["--yes"] if yes else [])
    line = error_line(run(device, *args, passphrase=None))
    assert "no passphrase" in line and "CLAUDE_SYNC_PASSPHRASE" in line
    assert_nothing_written(device)
    assert not (tmp_path / "store").exists()


def test_short_passphrase_is_refused(make_device, tmp_path: Path) -> None:
    device = make_device("a")
    line = error_line(
        run(device, "init", "--local", str(tmp_path / "s"), "--yes", passphrase="eleven char")
    )
    assert "12 characters" in line
    assert_nothing_written(device)


def test_unreadable_passphrase_file_is_refused(make_device, tmp_path: Path) -> None:
    device = make_device("a")
    missing = tmp_path / "nope.txt"
    line = error_line(
        run(
            device,
            *["init", "--local", str(tmp_path / "s"), "--yes"],
            *["--passphrase-file", str(missing)],
        )
    )
    assert str(missing) in line
    assert_nothing_written(device)


def test_missing_rclone_is_one_clear_line(make_device, tmp_path: Path) -> None:
    device = make_device("a")
    line = error_line(
        run(
            device,
            *["init", "--local", str(tmp_path / "s"), "--yes"],
            CLAUDE_SYNC_RCLONE="/nonexistent",
        )
    )
    assert "rclone not found at /nonexistent" in line
    assert_nothing_written(device)


# --- an unreachable remote: one run, two verdicts ------------------------------------------------


@pytest.fixture(scope="module")
def unreachable_init(tmp_path_factory: pytest.TempPathFactory) -> tuple[Device, Result, float]:
    """init against an S3 endpoint on a closed port (connection refused), timed."""
    home = tmp_path_factory.mktemp("unreachable")
    device = Device("a", home)
    port = free_port()  # nothing listens there
    args = [
        *["init", "--provider", "s3", "--set", "provider=Other"],
        *["--set", f"endpoint=http://127.0.0.1:{port}", "--set", "access_key_id=k"],
        *["--set", "secret_access_key=s", "--set", "bucket=bucket", "--yes"],
    ]
    started = time.monotonic()
    result = run(device, *args)
    return device, result, time.monotonic() - started


def test_unreachable_remote_fails_in_one_line_writing_nothing(
    unreachable_init: tuple[Device, Result, float],
) -> None:
    device, result, elapsed = unreachable_init
    assert elapsed < 45, f"init took {elapsed:.1f} s to give up"
    line = error_line(result)
    assert "rclone" in line
    assert_nothing_written(device)


def test_unreachable_remote_line_says_it_is_unreachable(
    unreachable_init: tuple[Device, Result, float],
) -> None:
    line = error_line(unreachable_init[1]).lower()
    assert any(word in line for word in ("refused", "unreachable", "did not answer", "connect"))


# --- modes, and the installed console script -----------------------------------------------------


def test_generated_files_are_private_even_with_a_loose_umask(make_device, tmp_path: Path) -> None:
    device = make_device("a")
    old = os.umask(0o000)
    try:
        succeeded(run(device, "init", "--local", str(tmp_path / "store"), "--yes"))
    finally:
        os.umask(old)
    assert_private_home(device)


def test_version_by_the_short_way_is_the_clis() -> None:
    """`--version` answers before the CLI is imported (see __main__), in the CLI's words."""
    short = subprocess.run(
        [sys.executable, "-m", "claude_sync", "--version"], capture_output=True, text=True
    )
    assert short.returncode == 0, short.stderr
    assert short.stdout == CliRunner().invoke(main, ["--version"]).output
    assert short.stdout == f"claude-sync, version {importlib.metadata.version('claude-sync')}\n"


CONSOLE_SCRIPT = Path(sys.executable).parent / "claude-sync"


@pytest.mark.skipif(not CONSOLE_SCRIPT.is_file(), reason="claude-sync is not installed")
def test_installed_console_script(make_device, tmp_path: Path) -> None:
    device = make_device("a")
    environment = {**os.environ, **device.environment()}
    version = subprocess.run(
        [str(CONSOLE_SCRIPT), "--version"], capture_output=True, text=True, env=environment
    )
    assert version.returncode == 0, version.stderr
    assert (
        version.stdout.strip()
        == f"claude-sync, version {importlib.metadata.version('claude-sync')}"
    )

    store = tmp_path / "store"
    init = subprocess.run(
        [str(CONSOLE_SCRIPT), "init", "--local", str(store), "--device-name", "a", "--yes"],
        capture_output=True,
        text=True,
        env=environment,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert init.returncode == 0, init.stderr
    assert "initialised a new remote" in init.stdout
    assert (store / "CLAUDE-SYNC.json").is_file()
    assert_private_home(device)

    again = subprocess.run(
        [str(CONSOLE_SCRIPT), "init", "--local", str(store), "--yes"],
        capture_output=True,
        text=True,
        env=environment,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert again.returncode == 2
    assert again.stdout == ""
    assert again.stderr.count("\n") == 1 and "already set up" in again.stderr


def test_a_missing_key_file_is_named_as_missing(make_device, local_server: Server) -> None:
    device = make_device("a")
    result = device.run(
        "init", *local_server.provider_args, "--key-file", "/nonexistent/key.txt", "--yes"
    )
    assert result.exit_code == 2
    assert "--key-file /nonexistent/key.txt: no such file" in result.output
    assert "passphrase" not in result.output
    assert not device.sync_home.exists() or not (device.sync_home / "config.yaml").exists()


def test_one_passphrase_gives_each_remote_its_own_key(make_device, tmp_path: Path) -> None:
    """A new remote gets a random salt: the same passphrase is another key on another
    remote, and a device joining a remote reads its salt and gets that remote's key."""
    first, second, joining = make_device("first"), make_device("second"), make_device("joining")
    for device, store in ((first, "one"), (second, "two"), (joining, "one")):
        init = ["init", "--local", str(tmp_path / store), "--device-name", device.name, "--yes"]
        succeeded(run(device, *init))
    keys = [read_key_file(d.sync_home / "age-key.txt") for d in (first, second, joining)]
    assert str(keys[0]) != str(keys[1])
    assert str(keys[0]) == str(keys[2])
    assert salt_of(tmp_path / "one") != salt_of(tmp_path / "two")
