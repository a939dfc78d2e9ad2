"""Object bodies (zstd then age, streamed) and object names (HMAC of the content hash)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pyrage
import pytest
from pyrage import x25519

from claude_sync.crypto import (
    Digest,
    decrypt_bytes,
    decrypt_stream,
    encrypt_bytes,
    encrypt_stream,
    zstd,
)
from claude_sync.errors import RemoteFormatError
from claude_sync.keys import object_name, object_name_key, random_identity

AGE_CHUNK = 64 * 1024  # age's STREAM chunk size: truncations at its boundaries must be caught


@pytest.fixture(scope="module")
def identity() -> x25519.Identity:
    return random_identity()


def sample_bytes(size: int, seed: int = 7) -> bytes:
    """Half incompressible, half repetitive: exercises both zstd paths and spans many chunks."""
    generator = random.Random(seed)
    noise = generator.randbytes(size // 2)
    text = (b"{'role': 'assistant', 'content': 'hello'}\n" * (size // 40 + 1))[: size - len(noise)]
    return noise + text


@pytest.fixture(scope="module")
def plaintext() -> bytes:
    return sample_bytes(5 * 1024 * 1024 + 12345)  # several MiB, not a multiple of any chunk


@pytest.fixture(scope="module")
def sealed(
    tmp_path_factory: pytest.TempPathFactory, identity: x25519.Identity, plaintext: bytes
) -> bytes:
    """The encrypted object body of `plaintext`."""
    source = tmp_path_factory.mktemp("sealed") / "plain"
    source.write_bytes(plaintext)
    target = source.with_suffix(".age")
    with open(source, "rb") as handle:
        encrypt_stream(handle, target, identity.to_public())
    return target.read_bytes()


def decrypt_blob(tmp_path: Path, blob: bytes, identity: x25519.Identity) -> tuple[Digest, bytes]:
    path = tmp_path / "object.age"
    path.write_bytes(blob)
    out = io.BytesIO()
    digest = decrypt_stream(path, out, identity)
    return digest, out.getvalue()


def test_round_trip_of_a_multi_megabyte_file(
    tmp_path: Path, identity: x25519.Identity, plaintext: bytes
) -> None:
    source = tmp_path / "transcript.jsonl"
    source.write_bytes(plaintext)
    target = tmp_path / "object.age"
    with open(source, "rb") as handle:
        written = encrypt_stream(handle, target, identity.to_public())

    expected = Digest(hashlib.sha256(plaintext).hexdigest(), len(plaintext))
    assert written == expected
    body = target.read_bytes()
    assert body.startswith(b"age-encryption.org/v1\n")
    assert plaintext[:4096] not in body  # encrypted, not merely compressed
    assert len(body) < len(plaintext)  # and compressed: the text half shrinks

    restored = tmp_path / "restored"
    with open(restored, "wb") as out:
        read = decrypt_stream(target, out, identity)
    assert read == expected
    assert restored.read_bytes() == plaintext


def test_body_is_age_of_zstd(tmp_path: Path, identity: x25519.Identity) -> None:
    """The documented format: the stock tools (age, then zstd) recover the plaintext."""
    data = b"x" * 100_000 + b"tail"
    target = tmp_path / "object.age"
    encrypt_stream(io.BytesIO(data), target, identity.to_public())
    assert zstd.decompress(pyrage.decrypt(target.read_bytes(), [identity])) == data


@pytest.mark.parametrize("size", [0, 1, 1 << 20, (1 << 20) + 1])
def test_round_trip_edge_sizes(tmp_path: Path, identity: x25519.Identity, size: int) -> None:
    data = sample_bytes(size, seed=size)
    target = tmp_path / "object.age"
    written = encrypt_stream(io.BytesIO(data), target, identity.to_public())
    assert written == Digest(hashlib.sha256(data).hexdigest(), size)
    digest, restored = decrypt_blob(tmp_path, target.read_bytes(), identity)
    assert digest == written
    assert restored == data


def test_limit_reads_only_a_prefix(tmp_path: Path, identity: x25519.Identity) -> None:
    data = sample_bytes(3 * 1024 * 1024)
    limit = 1024 * 1024 + 17
    source = io.BytesIO(data)
    written = encrypt_stream(source, tmp_path / "object.age", identity.to_public(), limit=limit)
    assert written == Digest(hashlib.sha256(data[:limit]).hexdigest(), limit)
    assert source.tell() == limit  # did not read past the limit (an appended file grows)
    _, restored = decrypt_blob(tmp_path, (tmp_path / "object.age").read_bytes(), identity)
    assert restored == data[:limit]


def test_encryption_is_randomised(tmp_path: Path, identity: x25519.Identity) -> None:
    first, second = tmp_path / "a.age", tmp_path / "b.age"
    encrypt_stream(io.BytesIO(b"same"), first, identity.to_public())
    encrypt_stream(io.BytesIO(b"same"), second, identity.to_public())
    assert first.read_bytes() != second.read_bytes()


def flip_positions(blob: bytes) -> list[int]:
    header_end = blob.index(b"\n---") + 1
    return [0, 30, header_end + 5, header_end + 70, len(blob) // 2, len(blob) - 1]


@pytest.mark.parametrize("which", range(6))
def test_flipped_byte_is_refused(
    tmp_path: Path, identity: x25519.Identity, sealed: bytes, which: int
) -> None:
    position = flip_positions(sealed)[which]
    tampered = bytearray(sealed)
    tampered[position] ^= 0x01
    with pytest.raises(RemoteFormatError):
        decrypt_blob(tmp_path, bytes(tampered), identity)


def payload_start(blob: bytes) -> int:
    """Where age's payload chunks start: after the header line `--- mac` and the 16-byte nonce."""
    return blob.index(b"\n", blob.index(b"\n---") + 1) + 1 + 16


def truncation_points(blob: bytes) -> list[int]:
    start = payload_start(blob)
    chunk_boundaries = [start + n * (AGE_CHUNK + 16) for n in (1, 2, 3)]
    return [0, 10, start - 1, start, *chunk_boundaries, len(blob) // 2, len(blob) - 1]


@pytest.mark.parametrize("which", range(9))
def test_truncated_object_is_refused(
    tmp_path: Path, identity: x25519.Identity, sealed: bytes, which: int
) -> None:
    cut = truncation_points(sealed)[which]
    assert cut < len(sealed)
    with pytest.raises(RemoteFormatError):
        decrypt_blob(tmp_path, sealed[:cut], identity)


@pytest.mark.parametrize("junk", [b"\x00", b"junk", b"age-encryption.org/v1\n"])
def test_trailing_junk_after_the_age_stream_is_refused(
    tmp_path: Path, identity: x25519.Identity, sealed: bytes, junk: bytes
) -> None:
    with pytest.raises(RemoteFormatError):
        decrypt_blob(tmp_path, sealed + junk, identity)


@pytest.mark.parametrize(
    "inner",
    [
        pytest.param(lambda c: c + b"junk", id="junk-after-zstd-frame"),
        pytest.param(lambda c: c + zstd.compress(b"second frame"), id="second-zstd-frame"),
        pytest.param(lambda c: c[:-3], id="truncated-zstd-frame"),
        pytest.param(lambda c: c[: len(c) // 2], id="half-a-zstd-frame"),
        pytest.param(lambda c: b"plain text, not zstd", id="not-zstd"),
        pytest.param(lambda c: b"", id="empty"),
    ],
)
def test_well_encrypted_but_malformed_body_is_refused(
    tmp_path: Path, identity: x25519.Identity, inner: Callable[[bytes], bytes]
) -> None:
    """A valid age file whose content is not exactly one whole zstd frame."""
    compressed = zstd.compress(sample_bytes(300_000))
    blob = pyrage.encrypt(inner(compressed), [identity.to_public()])
    with pytest.raises(RemoteFormatError):
        decrypt_blob(tmp_path, blob, identity)


def test_wrong_identity_is_refused(tmp_path: Path, sealed: bytes) -> None:
    with pytest.raises(RemoteFormatError):
        decrypt_blob(tmp_path, sealed, random_identity())


def test_not_an_age_file_is_refused(tmp_path: Path, identity: x25519.Identity) -> None:
    with pytest.raises(RemoteFormatError):
        decrypt_blob(tmp_path, b'{"format": 1}\n', identity)


def test_small_metadata_round_trip_and_tamper(identity: x25519.Identity) -> None:
    data = json.dumps({"files": {"a": 1}}).encode()
    for compress in (True, False):
        blob = encrypt_bytes(data, identity.to_public(), compress=compress)
        assert decrypt_bytes(blob, identity, compressed=compress) == data
        tampered = blob[:-1] + bytes([blob[-1] ^ 1])
        with pytest.raises(RemoteFormatError):
            decrypt_bytes(tampered, identity, compressed=compress)
        with pytest.raises(RemoteFormatError):
            decrypt_bytes(blob, random_identity(), compressed=compress)
    # Uncompressed metadata is plain age: the stock CLI can read it (keycheck.age).
    assert pyrage.decrypt(encrypt_bytes(data, identity.to_public(), False), [identity]) == data


def test_object_name_is_keyed_and_reveals_nothing() -> None:
    content = b"the same transcript on two machines\n"
    digest = hashlib.sha256(content).hexdigest()
    key_one = object_name_key(random_identity())
    key_two = object_name_key(random_identity())

    name = object_name(key_one, digest)
    assert len(name) == 64
    assert int(name, 16) >= 0  # lower-case hex, safe as a file name on every remote
    assert name == name.lower()
    assert name == object_name(key_one, digest)  # deterministic: equal contents share one
    assert name != object_name(key_two, digest)  # another key, another name
    assert name != object_name(key_one, hashlib.sha256(b"other").hexdigest())
    # Not the content hash, nor any plain hash of it or of the content.
    assert name != digest
    assert name != hashlib.sha256(bytes.fromhex(digest)).hexdigest()
    assert name != hashlib.sha256(digest.encode()).hexdigest()
    assert digest[:16] not in name


MEMORY_PROBE = textwrap.dedent(
    """
    import json, os, resource, sys
    from pathlib import Path
    from claude_sync.crypto import decrypt_stream, encrypt_stream
    from claude_sync.keys import random_identity

    source, target, size = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    with open(source, "wb") as handle:
        handle.truncate(size)  # sparse: no disk used, reads give zeros
    identity = random_identity()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with open(source, "rb") as handle:
        written = encrypt_stream(handle, target, identity.to_public())
    after_encrypt = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with open(os.devnull, "wb") as sink:
        read = decrypt_stream(target, sink, identity)
    after_decrypt = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({
        "size": written.size, "same": written == read,
        "encrypt_kib": after_encrypt - before, "decrypt_kib": after_decrypt - before,
    }))
    """
)


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux")
def test_streaming_uses_constant_memory(tmp_path: Path) -> None:
    size = 200 * 1024 * 1024
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            MEMORY_PROBE,
            str(tmp_path / "big"),
            str(tmp_path / "big.age"),
            str(size),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr
    report = json.loads(probe.stdout)
    assert report["size"] == size
    assert report["same"]
    # A whole-file read would add ~200 MiB; streaming adds a few MiB of buffers.
    assert report["encrypt_kib"] < 50 * 1024, report
    assert report["decrypt_kib"] < 50 * 1024, report
    assert os.path.getsize(tmp_path / "big.age") < 1024 * 1024  # zeros compress away
