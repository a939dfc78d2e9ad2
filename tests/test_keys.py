"""Keys: passphrase derivation (bit-exact vectors), random keys, the key file, `key` commands."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from pyrage import x25519

from claude_sync.cli import main
from claude_sync.errors import KeyFileError
from claude_sync.keys import (
    KDF_SALT,
    MIN_PASSPHRASE_LENGTH,
    derive_identity,
    object_name_key,
    random_identity,
    read_key_file,
    write_key_file,
)

AGE = "/usr/bin/age"
AGE_KEYGEN = "/usr/bin/age-keygen"
needs_age = pytest.mark.skipif(not Path(AGE).is_file(), reason="the age CLI is not installed")

# passphrase -> (identity, recipient): computed by the project and checked against the
# reference Bech32 implementation. They pin the Argon2id parameters, the salt, the clamping
# and Bech32 (not Bech32m), so a key derived here matches the Go claude-sync.
VECTORS: list[tuple[str, str, str]] = [
    (
        "correct horse battery staple",
        "AGE-SECRET-KEY-18QPQ78YL72DQGC02SQ8MNJHYX0M987NTWWRLKGPSM260CPMJAPVQSM3QW9",
        "age1zekzkkwp6dyprd2px4f47hec76c4ufvxk0swzvyaazyn0dq68qzq4n72l0",
    ),
    (
        "another passphrase!",
        "AGE-SECRET-KEY-1YZQ8YLJ5G8530EREYUCY95255QUXTYYSL5TTTSJ0NXZ35U723F8QRUPTF0",
        "age196wh4t0uyqu3476x0aal6vfz7s9anhtcduwt8la6zq0mqfyrga9qlw2rvu",
    ),
    (
        "päss wörd ünïcode 🔑",
        "AGE-SECRET-KEY-19ZUUESA6FZ2Q2R8V3R5XZTJ3N54S3860MF0TLA7C9YXEQCDY036S6DK90G",
        "age1k3va9hpv9k50947j86a9xv3rj54veea4efhgkcy97g0fu4kn0aqqak8mmu",
    ),
    (
        " " * 12 + "x",  # leading spaces count: the passphrase is used as typed, never stripped
        "AGE-SECRET-KEY-1SR5LQS8YYXZJT8GL6V5745HXRQXPLLGAJ0GP3K3Q0QM6JTEPAA0QUAHW8A",
        "age1hyhcgpa97klkrzxtq37cfpzyzudyxq3dycglv35guvhkcljzwfjstvw5tz",
    ),
    (
        "a" * 200,
        "AGE-SECRET-KEY-17ZY3LA8JR0ZMG6YG8UQC373X0SD2SVPGW3QV5VAF56FMTC7YEEJSE6V4LM",
        "age1tknactg2kzuxtqjqprj86m67ww785rjygs9rgv7fgle2amqyhvxsa6g0qm",
    ),
]


@pytest.mark.parametrize(("passphrase", "secret", "recipient"), VECTORS)
def test_passphrase_derivation_is_bit_exact(passphrase: str, secret: str, recipient: str) -> None:
    identity = derive_identity(passphrase, KDF_SALT)
    assert str(identity) == secret
    assert str(identity.to_public()) == recipient


def test_derivation_is_deterministic_and_passphrase_sensitive() -> None:
    assert str(derive_identity("correct horse battery staple", KDF_SALT)) == VECTORS[0][1]
    # One character more, or a different case, is another key.
    assert str(derive_identity("correct horse battery staplE", KDF_SALT)) != VECTORS[0][1]
    # Another remote's salt is another key.
    assert str(derive_identity("correct horse battery staple", b"s" * 16)) != VECTORS[0][1]


@pytest.mark.parametrize("passphrase", ["a" * 11, "ü" * 11, "", " " * 11])
def test_short_passphrase_is_refused(passphrase: str) -> None:
    # "ü" * 11 is 22 UTF-8 bytes: the minimum counts characters, not bytes.
    with pytest.raises(KeyFileError, match=rf"at least {MIN_PASSPHRASE_LENGTH} characters"):
        derive_identity(passphrase, KDF_SALT)


def test_minimum_is_twelve_characters() -> None:
    assert MIN_PASSPHRASE_LENGTH == 12
    assert str(derive_identity("b" * 12, KDF_SALT)).startswith("AGE-SECRET-KEY-1")


def test_random_identities_are_distinct_and_valid() -> None:
    identities = [random_identity() for _ in range(20)]
    assert len({str(identity) for identity in identities}) == 20
    for identity in identities:
        assert re.fullmatch(r"AGE-SECRET-KEY-1[0-9A-Z]{58}", str(identity))
        assert str(x25519.Identity.from_str(str(identity)).to_public()) == str(identity.to_public())


def test_object_name_key_depends_on_identity_and_hides_it() -> None:
    first, second = random_identity(), random_identity()
    assert object_name_key(first) == object_name_key(first)
    assert object_name_key(first) != object_name_key(second)
    assert len(object_name_key(first)) == 32
    assert str(first).encode() not in object_name_key(first)


def test_key_file_is_in_age_keygen_format(tmp_path: Path) -> None:
    identity = derive_identity(VECTORS[0][0], KDF_SALT)
    path = tmp_path / "fresh" / "age-key.txt"
    write_key_file(path, identity)

    lines = path.read_text().splitlines()
    assert len(lines) == 3
    assert re.fullmatch(r"# created: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)", lines[0])
    assert lines[1] == f"# public key: {VECTORS[0][2]}"
    assert lines[2] == VECTORS[0][1]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert str(read_key_file(path)) == VECTORS[0][1]


def test_key_file_replaces_an_old_one_and_stays_private(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    folder.mkdir()
    path = folder / "age-key.txt"
    path.write_text("old\n")
    path.chmod(0o644)
    identity = random_identity()
    write_key_file(path, identity)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert str(read_key_file(path)) == str(identity)
    assert [p.name for p in folder.iterdir()] == ["age-key.txt"]  # no temporary left


@pytest.mark.skipif(not Path(AGE_KEYGEN).is_file(), reason="age-keygen is not installed")
def test_age_keygen_reads_the_key_file(tmp_path: Path) -> None:
    identity = random_identity()
    write_key_file(tmp_path / "age-key.txt", identity)
    shown = subprocess.run(
        [AGE_KEYGEN, "-y", str(tmp_path / "age-key.txt")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert shown.stdout.strip() == str(identity.to_public())


def test_key_file_written_by_age_keygen_is_read(tmp_path: Path) -> None:
    if not Path(AGE_KEYGEN).is_file():
        pytest.skip("age-keygen is not installed")
    path = tmp_path / "generated.txt"
    subprocess.run([AGE_KEYGEN, "-o", str(path)], capture_output=True, check=True)
    public = re.search(r"# public key: (age1\w+)", path.read_text())
    assert public is not None
    assert str(read_key_file(path).to_public()) == public.group(1)


def test_missing_key_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="is missing") as caught:
        read_key_file(tmp_path / "nope.txt")
    assert str(tmp_path / "nope.txt") in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello\n",
        "# public key: age1zekzkkwp6dyprd2px4f47hec76c4ufvxk0swzvyaazyn0dq68qzq4n72l0\n",
        "AGE-SECRET-KEY-1" + "Q" * 58 + "\n",  # right shape, bad checksum
        VECTORS[0][1][:-3] + "\n",  # cut short
    ],
)
def test_garbage_key_file_is_a_clear_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "age-key.txt"
    path.write_text(text)
    with pytest.raises(KeyFileError, match="no valid age identity") as caught:
        read_key_file(path)
    assert str(path) in str(caught.value)


def test_key_file_that_is_a_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot read key file"):
        read_key_file(tmp_path)


def test_binary_garbage_key_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "age-key.txt"
    path.write_bytes(b"\xff\xfe\x00\x80 not a key \xc3")  # not UTF-8
    with pytest.raises(KeyFileError) as caught:
        read_key_file(path)
    assert str(path) in str(caught.value)


@needs_age
def test_stock_age_encrypts_to_key_show_and_decrypts_with_the_key_file(tmp_path: Path) -> None:
    key_file = Path(os.environ["CLAUDE_SYNC_HOME"]) / "age-key.txt"
    write_key_file(key_file, random_identity())
    shown = CliRunner().invoke(main, ["key", "show"])
    assert shown.exit_code == 0, shown.output
    recipient = shown.stdout.strip()

    plain = tmp_path / "plain.txt"
    plain.write_bytes(b"recover me without claude-sync\n" * 100)
    encrypted = tmp_path / "plain.txt.age"
    subprocess.run(
        [AGE, "-r", recipient, "-o", str(encrypted), str(plain)], check=True, capture_output=True
    )
    decrypted = subprocess.run(
        [AGE, "-d", "-i", str(key_file), str(encrypted)], check=True, capture_output=True
    )
    assert decrypted.stdout == plain.read_bytes()


def test_key_show_prints_only_the_recipient() -> None:
    identity = derive_identity(VECTORS[1][0], KDF_SALT)
    write_key_file(Path(os.environ["CLAUDE_SYNC_HOME"]) / "age-key.txt", identity)
    result = CliRunner().invoke(main, ["key", "show"])
    assert result.exit_code == 0
    assert result.stdout == VECTORS[1][2] + "\n"
    assert result.stderr == ""
    assert "SECRET" not in result.output


@needs_age
def test_key_export_prints_the_secret_on_stdout_and_a_warning_on_stderr(tmp_path: Path) -> None:
    identity = random_identity()
    write_key_file(Path(os.environ["CLAUDE_SYNC_HOME"]) / "age-key.txt", identity)
    result = CliRunner().invoke(main, ["key", "export"])
    assert result.exit_code == 0
    assert result.stdout == f"{identity}\n"
    assert "warning" in result.stderr.lower()
    assert str(identity) not in result.stderr

    # What export prints is itself an identity file the stock age CLI accepts.
    exported = tmp_path / "exported.txt"
    exported.write_text(result.stdout)
    encrypted = subprocess.run(
        [AGE, "-r", str(identity.to_public())], input=b"hi", capture_output=True, check=True
    ).stdout
    decrypted = subprocess.run(
        [AGE, "-d", "-i", str(exported)], input=encrypted, capture_output=True, check=True
    )
    assert decrypted.stdout == b"hi"


@pytest.mark.parametrize("command", ["show", "export"])
def test_key_commands_without_a_key_file_fail_in_one_line(command: str) -> None:
    result = CliRunner().invoke(main, ["key", command])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("Error: key file ")
    assert "missing" in lines[0]
