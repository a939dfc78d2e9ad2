"""Messages that mislead no more: each failure names what is wrong and what to do about it."""

from __future__ import annotations

import contextlib
import os
import pty
import select
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import Result
from conftest import PASSPHRASE, Device, joined
from servers import Server

from claude_sync.rclone import _explain


def one_error_line(result: Result, exit_code: int = 1) -> str:
    """The single `Error: ...` line a failed command printed on stderr, nothing on stdout."""
    assert result.exit_code == exit_code, f"exit {result.exit_code}:\n{result.output}"
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    return lines[0]


def set_up(device: Device, *args: str) -> None:
    """init with a random key: these tests are about messages, not the passphrase KDF."""
    device.ok("init", *args, "--device-name", device.name, "--yes", "--random-key")


# 1. a local remote folder that is missing (an unmounted disk, a moved Dropbox folder) ----------


@pytest.fixture
def gone(local_server: Server, make_device) -> tuple[Device, Path]:
    """A device set up on a local folder that then disappeared (pushed once before)."""
    device = make_device("a")
    set_up(device, *local_server.provider_args)
    device.write("CLAUDE.md", "hello\n")
    device.ok("push")
    device.write("CLAUDE.md", "hello again\n")  # so that push has something to send
    shutil.rmtree(local_server.data_dir)
    return device, local_server.data_dir


def assert_says_missing(line: str, folder: Path) -> None:
    assert f"{folder} does not exist" in line, line
    assert "mounted" in line and "moved" in line, line
    assert "not a claude-sync remote" not in line


@pytest.mark.parametrize(
    "command",
    [["pull"], ["push"], ["sync"], ["status", "--remote"], ["verify"], ["devices"]],
    ids=lambda args: " ".join(args),
)
def test_a_missing_local_folder_is_named_as_missing(
    gone: tuple[Device, Path], command: list[str]
) -> None:
    device, folder = gone
    assert_says_missing(one_error_line(device.run(*command)), folder)
    assert not folder.exists()  # nothing created in place of the missing one


def test_doctor_says_the_local_folder_is_missing(gone: tuple[Device, Path]) -> None:
    device, folder = gone
    result = device.run("doctor")
    assert result.exit_code == 1
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("✗ remote:")]
    assert_says_missing(line, folder)
    assert "run `claude-sync init`" not in line


def test_init_against_the_missing_folder_explains_and_creates_nothing(
    gone: tuple[Device, Path],
) -> None:
    device, folder = gone
    config = (device.sync_home / "config.yaml").read_text()
    for force in ([], ["--force"]):
        result = device.run("init", "--local", str(folder), "--yes", "--random-key", *force)
        assert_says_missing(one_error_line(result), folder)
        assert not folder.exists()
    assert (device.sync_home / "config.yaml").read_text() == config
    # Without --force, whatever the new target, the missing folder is what is explained.
    result = device.run("init", "--local", str(folder.parent / "elsewhere"), "--yes")
    assert_says_missing(one_error_line(result), folder)


def test_init_moves_to_the_folder_where_it_is_now(
    gone: tuple[Device, Path], tmp_path: Path
) -> None:
    device, folder = gone
    moved = tmp_path / "moved"
    result = device.run("init", "--local", str(moved), "--yes", "--random-key", "--force")
    assert result.exit_code == 0, result.output
    assert (moved / "CLAUDE-SYNC.json").is_file()
    # A folder created on purpose (empty) is a new remote, as for a first init.
    folder.mkdir(parents=True)
    result = device.run("init", "--local", str(folder), "--yes", "--random-key", "--force")
    assert result.exit_code == 0, result.output
    assert "initialised a new remote" in result.stdout


# 2. a missing field names the way to give it: a secret through the environment -------------


def test_a_missing_secret_points_at_its_environment_variable(make_device) -> None:
    device = make_device("a")
    args = ["--provider", "s3", "--set", "bucket=b", "--set", "access_key_id=k"]
    line = one_error_line(device.run("init", *args, "--yes", "--random-key"), exit_code=2)
    assert "CLAUDE_SYNC_FIELD_SECRET_ACCESS_KEY" in line
    assert "--set" not in line  # a secret on the command line ends up in ps and the history


def test_a_missing_plain_field_names_both_forms(make_device) -> None:
    device = make_device("a")
    args = ["--provider", "webdav", "--set", "url=http://127.0.0.1:9"]
    line = one_error_line(
        device.run("init", *args, "--yes", "--random-key", CLAUDE_SYNC_FIELD_PASS="p"),
        exit_code=2,
    )
    assert "--set user=..." in line and "CLAUDE_SYNC_FIELD_USER" in line


# 3. a too-short passphrase: asked again at a terminal, one clear line from the environment ----

CONSOLE_SCRIPT = Path(sys.executable).parent / "claude-sync"


def in_a_terminal(argv: list[str], env: dict[str, str], dialogue: list[tuple[str, str]]) -> str:
    """Run argv on a pseudo-terminal of its own (its controlling terminal, so prompts and
    hidden input work as for a person), answer each prompt when it shows, return everything
    it wrote once it exits with 0."""
    pid, terminal = pty.fork()
    if pid == 0:  # the child: nothing of pytest's may run here
        os.execve(argv[0], argv, env)
    seen, position, finished = b"", 0, False
    deadline = time.monotonic() + 60

    def read_until(wanted: bytes | None) -> None:
        nonlocal seen
        while wanted is None or wanted not in seen[position:]:
            assert time.monotonic() < deadline, f"waited for {wanted!r}; got:\n{seen.decode()}"
            ready, _, _ = select.select([terminal], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(terminal, 4096)
                except OSError:  # the child closed the terminal
                    chunk = b""
                if not chunk:
                    assert wanted is None, f"exited before {wanted!r}:\n{seen.decode()}"
                    return
                seen += chunk

    try:
        for prompt, answer in dialogue:
            read_until(prompt.encode())
            position = seen.index(prompt.encode(), position) + len(prompt)
            os.write(terminal, answer.encode() + b"\n")
        read_until(None)
        finished = True
    finally:
        if not finished:  # a failed dialogue: the child still waits for an answer
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        os.close(terminal)
    text = seen.decode().replace("\r\n", "\n")
    assert os.waitstatus_to_exitcode(status) == 0, text
    return text


@pytest.mark.skipif(not CONSOLE_SCRIPT.is_file(), reason="claude-sync is not installed")
def test_a_short_passphrase_at_the_prompt_is_asked_again(make_device, tmp_path: Path) -> None:
    device = make_device("a")
    environment = {**os.environ, **device.environment()}
    del environment["CLAUDE_SYNC_PASSPHRASE"]
    argv = [str(CONSOLE_SCRIPT), "init", "--local", str(tmp_path / "store")]
    output = in_a_terminal(
        [*argv, "--device-name", "a"],
        environment,
        [
            ("Key [1]:", "1"),
            ("Passphrase (", "too short"),
            ("Passphrase (", PASSPHRASE),
            ("Repeat the passphrase:", PASSPHRASE + " typo"),
            ("Passphrase (", PASSPHRASE),
            ("Repeat the passphrase:", PASSPHRASE),
        ],
    )
    assert "too short" not in output and PASSPHRASE not in output  # hidden input
    assert "at least 12 characters" in output
    assert "initialised a new remote" in output
    assert (tmp_path / "store" / "CLAUDE-SYNC.json").is_file()


def test_a_short_passphrase_in_the_environment_is_one_clear_line(
    make_device, tmp_path: Path
) -> None:
    device = make_device("a")
    args = ["init", "--local", str(tmp_path / "store"), "--yes"]
    line = one_error_line(device.run(*args, CLAUDE_SYNC_PASSPHRASE="eleven char"), exit_code=2)
    assert "CLAUDE_SYNC_PASSPHRASE" in line and "at least 12 characters" in line
    assert "eleven char" not in line
    assert not (tmp_path / "store").exists()


# 4. an unknown key in config.yaml is refused, with the nearest known one --------------------


@pytest.mark.parametrize(
    ("section", "key", "suggestion"),
    [
        ("sync", "includes", "sync.include"),
        ("sync", "exlcude", "sync.exclude"),
        (None, "include", "sync.include"),
        (None, "hook", "hooks"),
        ("device", "nmae", "device.name"),
        ("remote", "rclone-config", "remote.rclone_config"),
        ("key", "mdoe", "key.mode"),
        ("rclone", "timout", "rclone.timeout"),
        ("hooks", "pull-timeout", "hooks.pull_timeout"),
        ("hooks", "colour", None),
    ],
)
def test_an_unknown_config_key_is_refused_naming_the_nearest(
    local_server: Server, make_device, section: str | None, key: str, suggestion: str | None
) -> None:
    device = make_device("a")
    set_up(device, *local_server.provider_args)
    path = device.sync_home / "config.yaml"
    document = yaml.safe_load(path.read_text())
    (document[section] if section else document)[key] = ["projects/**"]
    path.write_text(yaml.safe_dump(document))
    name = f"{section}.{key}" if section else key
    for command in (["push"], ["status"], ["pull"]):
        line = one_error_line(device.run(*command), exit_code=2)
        assert f"unknown key `{name}` in {path}" in line, line
        if suggestion:
            assert f"(did you mean `{suggestion}`?)" in line, line
        else:
            assert "did you mean" not in line
    result = device.run("doctor")
    assert result.exit_code == 1 and f"unknown key `{name}`" in result.stdout


# 5. an include pattern that matches nothing is named, once per run ---------------------------


def add_includes(device: Device, *patterns: str) -> None:
    path = device.sync_home / "config.yaml"
    document = yaml.safe_load(path.read_text())
    document["sync"]["include"] = list(patterns)
    path.write_text(yaml.safe_dump(document))


def include_warnings(result: Result) -> list[str]:
    assert result.exit_code == 0, result.output
    return [line for line in result.stderr.splitlines() if "sync.include" in line]


def test_an_include_pattern_matching_nothing_is_warned_about(
    local_server: Server, make_device
) -> None:
    a, b = joined(make_device("a"), local_server), joined(make_device("b"), local_server)
    a.write("CLAUDE.md", "hello\n")
    a.write("file-history/one/v1", "old\n")
    # A typo; a pattern matching a file here; a default again (no plans/ here: not named).
    add_includes(a, "file-histroy/", "file-history/", "plans/")
    for command in (["push"], ["status"], ["pull"], ["status", "--remote"], ["sync"]):
        (line,) = include_warnings(a.run(*command))
        assert line.startswith("! ") and "`file-histroy/`" in line, line
        assert "config.yaml" in line

    b.write("plugins/list.json", "{}\n")
    add_includes(b, "plugins/")
    assert include_warnings(b.run("push")) == []
    add_includes(a, "plugins/")  # only the remote has a match
    (line,) = include_warnings(a.run("status"))
    assert "`plugins/`" in line
    assert include_warnings(a.run("status", "--remote")) == []
    assert include_warnings(a.run("pull")) == []
    assert a.read("plugins/list.json") == b"{}\n"
    a.write("CLAUDE.md", "hello again\n")
    assert include_warnings(a.run("push")) == []


# 6. S3 errors read as one clean line: the error code and what it means -----------------------

# rclone's own lines, as the S3 API (rclone serve s3, and AWS for the last three) gave them.
REQUEST = "operation error S3: {op}, https response error StatusCode: {status}, RequestID: "


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            "error listing: " + REQUEST.format(op="ListObjects", status=403) + ", HostID: , "
            "api error SignatureDoesNotMatch: The request signature we calculated does not match "
            "the signature you provided. Check your key and signing method.",
            "the remote rejected the credentials "
            "(SignatureDoesNotMatch: the secret access key is wrong)",
        ),
        (
            "error listing: " + REQUEST.format(op="ListObjects", status=403) + ", HostID: , "
            "api error InvalidAccessKeyId: The Access Key Id you provided does not exist in "
            "our records.",
            "the remote rejected the credentials (InvalidAccessKeyId: no such access key ID)",
        ),
        (
            "Attempt 1/1 failed with 1 errors and: "
            + REQUEST.format(op="HeadObject", status=403)
            + ", HostID: , api error Forbidden: Forbidden",
            "the remote refused access (Forbidden: wrong credentials, or no permission here)",
        ),
        (
            REQUEST.format(op="CreateBucket", status=409) + "8Q1ZWGS0R1D4, HostID: "
            "c2VjcmV0aG9zdGlkCg==, api error BucketAlreadyExists: The requested bucket name "
            "is not available. The bucket namespace is shared by all users of the system.",
            "the bucket name is taken by another account (BucketAlreadyExists)",
        ),
        (
            REQUEST.format(op="PutObject", status=403) + "ABCD, HostID: ZmFrZQ==, "
            "api error AccessDenied: Access Denied",
            "the remote refused access (AccessDenied: these credentials may not use this "
            "bucket or path)",
        ),
        (
            REQUEST.format(op="ListObjectsV2", status=404) + "ABCD, HostID: ZmFrZQ==, "
            "api error NoSuchBucket: The specified bucket does not exist",
            "the bucket does not exist (NoSuchBucket: check the bucket name)",
        ),
        (
            REQUEST.format(op="CreateBucket", status=400) + "D689, HostID: RDY4, "
            "api error InvalidBucketName: bucket must start and end with 'a-z, 0-9'",
            "the remote refused the request (InvalidBucketName: bucket must start and end with "
            "'a-z, 0-9')",
        ),
    ],
    ids=[
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId",
        "Forbidden",
        "BucketAlreadyExists",
        "AccessDenied",
        "NoSuchBucket",
        "other-code",
    ],
)
def test_s3_errors_are_explained_in_one_clean_line(message: str, expected: str) -> None:
    assert _explain(message) == expected


@pytest.mark.parametrize(
    ("wrong", "code"),
    [("secret_access_key", "SignatureDoesNotMatch"), ("access_key_id", "InvalidAccessKeyId")],
)
def test_wrong_s3_credentials_are_named_by_init(
    s3_server: Server, make_device, wrong: str, code: str
) -> None:
    device = make_device("a")
    given = s3_server.provider_args
    fields = [given[i + 1] for i, arg in enumerate(given) if arg == "--set"]
    kept = [field for field in fields if not field.startswith(f"{wrong}=")]
    secret = "wrong" * 8  # through the environment, as a user gives it
    environment = {"CLAUDE_SYNC_FIELD_SECRET_ACCESS_KEY": secret}
    if wrong == "access_key_id":
        kept.append("access_key_id=nobody")
        environment = {}
    sets = [part for field in kept for part in ("--set", field)]
    result = device.run("init", "--provider", "s3", *sets, "--yes", "--random-key", **environment)
    line = one_error_line(result)
    assert f"the remote rejected the credentials ({code}: " in line, line
    assert "RequestID" not in line and "HostID" not in line and "StatusCode" not in line
    assert secret not in line
    assert not device.sync_home.exists() or not (device.sync_home / "config.yaml").exists()
