"""age identities: derived from a passphrase, or random; stored in age-keygen's file format.

Passphrase derivation (with format 1's fixed salt, bit-exact with the Go claude-sync):

    salt = the remote's own (CLAUDE-SYNC.json; format 1 and remotes migrated from it:
           SHA-256("claude-sync-v1"))
    k    = Argon2id(passphrase bytes as typed, salt, t=3, m=64 MiB, p=4, 32 bytes)
    k[0] &= 248; k[31] &= 127; k[31] |= 64          (X25519 clamping)
    identity = upper(Bech32("age-secret-key-", k))  (Bech32, not Bech32m)

Keys derived from the identity (HMAC-SHA-256 with distinct labels), never stored: the
object-name key and the metadata key that authenticates journal entries. Nothing is
derived from the public key, which is safe to share.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import os
from pathlib import Path

from pyrage import x25519

from .errors import KeyFileError
from .files import write_private

MIN_PASSPHRASE_LENGTH = 12
KDF_SALT = hashlib.sha256(b"claude-sync-v1").digest()

_BECH32_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _bech32_polymod(values: list[int]) -> int:
    checksum = 1
    for value in values:
        top = checksum >> 25
        checksum = (checksum & 0x1FFFFFF) << 5 ^ value
        for i, generator in enumerate(_BECH32_GENERATOR):
            if (top >> i) & 1:
                checksum ^= generator
    return checksum


def _bech32_encode(hrp: str, data: bytes) -> str:
    words, accumulator, bits = [], 0, 0
    for byte in data:
        accumulator = (accumulator << 8) | byte
        bits += 8
        while bits >= 5:
            bits -= 5
            words.append((accumulator >> bits) & 31)
    if bits:
        words.append((accumulator << (5 - bits)) & 31)
    expanded_hrp = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    polymod = _bech32_polymod(expanded_hrp + words + [0] * 6) ^ 1
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_BECH32_CHARSET[w] for w in words + checksum)


def new_salt() -> bytes:
    """A new remote's KDF salt: one passphrase gives another key on every remote."""
    return os.urandom(16)


def derive_identity(passphrase: str, salt: bytes) -> x25519.Identity:
    """The age identity for a passphrase on the remote whose KDF salt is `salt` (see the
    module docstring for the exact steps)."""
    if len(passphrase) < MIN_PASSPHRASE_LENGTH:
        raise KeyFileError(f"the passphrase must be at least {MIN_PASSPHRASE_LENGTH} characters")
    # Imported here: only `init` and the key commands derive a key, not every run.
    from argon2.low_level import Type, hash_secret_raw

    key = bytearray(
        hash_secret_raw(
            secret=passphrase.encode("utf-8"),
            salt=salt,
            time_cost=3,
            memory_cost=64 * 1024,
            parallelism=4,
            hash_len=32,
            type=Type.ID,
        )
    )
    key[0] &= 248
    key[31] &= 127
    key[31] |= 64
    return x25519.Identity.from_str(_bech32_encode("age-secret-key-", bytes(key)).upper())


def random_identity() -> x25519.Identity:
    return x25519.Identity.generate()


def object_name_key(identity: x25519.Identity) -> bytes:
    """The HMAC key for object names: derived from the identity, never stored."""
    return hmac.new(str(identity).encode(), b"claude-sync object names v1", "sha256").digest()


def object_name(name_key: bytes, sha256_hex: str) -> str:
    """The name on the remote of the object whose plaintext has this SHA-256."""
    return hmac.new(name_key, bytes.fromhex(sha256_hex), "sha256").hexdigest()


def metadata_key(identity: x25519.Identity) -> bytes:
    """The HMAC key that authenticates journal entries: derived from the identity."""
    return hmac.new(str(identity).encode(), b"claude-sync metadata v2", "sha256").digest()


def write_key_file(path: Path, identity: x25519.Identity) -> None:
    """Write the identity in age-keygen's format, mode 0600, replacing the file atomically."""
    created = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
    text = f"# created: {created}\n# public key: {identity.to_public()}\n{identity}\n"
    write_private(path, text)


def read_key_file(path: Path) -> x25519.Identity:
    """The first identity in an age identity file."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise KeyFileError(
            f"key file {path} is missing: run `claude-sync init` again "
            "with the same passphrase, or restore the file"
        ) from None
    except OSError as error:
        raise KeyFileError(f"cannot read key file {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise KeyFileError(
            f"key file {path} is not an age identity file: restore it, or run `claude-sync init`"
        ) from None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("AGE-SECRET-KEY-1"):
            try:
                return x25519.Identity.from_str(line)
            except Exception:
                break
    raise KeyFileError(
        f"key file {path} holds no valid age identity: "
        "restore it, or run `claude-sync init --force`"
    )
