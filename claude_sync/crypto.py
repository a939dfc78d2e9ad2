"""Object bodies and names: zstd, then age, streamed in constant memory.

An object body is `age(zstd(plaintext))` to the identity's own recipient. Its name is
`HMAC-SHA-256(name_key, SHA-256(plaintext))` in hex, so names reveal nothing about paths or
contents, and equal contents share one object. The SHA-256 is always taken from the very bytes
that were compressed and encrypted (or decrypted and written), never from a second read.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pyrage
from pyrage import x25519

try:
    from compression import zstd
except ImportError:
    from backports import zstd

from .errors import NotForThisKey, RemoteFormatError

CHUNK = 1 << 20
# zstd's fastest positive level: on transcripts about 3x faster than its default (3), for
# objects about a fifth larger; it keeps compression from being what a push waits for.
ZSTD_LEVEL = 1
NO_MATCHING_KEY = "No matching keys found"  # pyrage's only way of saying "another key"


@dataclass(frozen=True)
class Digest:
    sha256: str
    size: int


class _CompressingReader:
    """A file-like reader giving zstd(source) while hashing what it reads from source."""

    def __init__(self, source: BinaryIO, limit: int | None, threads: int) -> None:
        self._source = source
        self._remaining = limit
        options = {zstd.CompressionParameter.compression_level: ZSTD_LEVEL}
        if threads:
            options[zstd.CompressionParameter.nb_workers] = threads
        self._compressor = zstd.ZstdCompressor(options=options)
        self._buffer = bytearray()
        self._finished = False
        self.hash = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        want = CHUNK if size is None or size < 0 else size
        while len(self._buffer) < want and not self._finished:
            step = CHUNK if self._remaining is None else min(CHUNK, self._remaining)
            plain = self._source.read(step) if step else b""
            if plain:
                self.hash.update(plain)
                self.size += len(plain)
                if self._remaining is not None:
                    self._remaining -= len(plain)
                self._buffer += self._compressor.compress(plain)
            else:
                self._buffer += self._compressor.flush()
                self._finished = True
        out = bytes(self._buffer[:want])
        del self._buffer[:want]
        return out


class _DecompressingWriter:
    """A file-like writer taking zstd bytes, writing their plaintext to target, hashing it."""

    def __init__(self, target: BinaryIO) -> None:
        self._target = target
        self._decompressor = zstd.ZstdDecompressor()
        self.hash = hashlib.sha256()
        self.size = 0
        self.trailing_garbage = False
        self.write_error: OSError | None = None

    def write(self, data: bytes) -> int:
        try:
            return self._write(data)
        except OSError as error:
            self.write_error = error
            raise

    def _write(self, data: bytes) -> int:
        if self._decompressor.eof:
            self.trailing_garbage = self.trailing_garbage or bool(data)
            return len(data)
        plain = self._decompressor.decompress(data, CHUNK)
        while True:
            self._emit(plain)
            if self._decompressor.eof or self._decompressor.needs_input:
                break
            plain = self._decompressor.decompress(b"", CHUNK)
        if self._decompressor.eof and self._decompressor.unused_data:
            self.trailing_garbage = True
        return len(data)

    def _emit(self, plain: bytes) -> None:
        if plain:
            self.hash.update(plain)
            self.size += len(plain)
            self._target.write(plain)

    def flush(self) -> None:
        self._target.flush()

    @property
    def complete(self) -> bool:
        return self._decompressor.eof and not self.trailing_garbage


class _KeepingWriteErrors:
    """Passes writes to target, keeping the OSError one raises (pyrage wraps it in its own
    error, and a full disk must stay a full disk)."""

    def __init__(self, target: BinaryIO) -> None:
        self._target = target
        self.write_error: OSError | None = None

    def write(self, data: bytes) -> int:
        try:
            return self._target.write(data)
        except OSError as error:
            self.write_error = error
            raise

    def flush(self) -> None:
        self._target.flush()


def parse_recipient(text: str) -> x25519.Recipient:
    return x25519.Recipient.from_str(text)


def encrypt_stream(
    source: BinaryIO,
    target: Path,
    recipient: x25519.Recipient,
    limit: int | None = None,
    threads: int = 0,
) -> Digest:
    """Write age(zstd(source)) to target, reading at most `limit` bytes (all when None).
    With `threads`, zstd compresses on that many threads of its own (a big file)."""
    reader = _CompressingReader(source, limit, threads)
    with open(target, "wb") as out:
        writer = _KeepingWriteErrors(out)
        try:
            pyrage.encrypt_io(reader, writer, [recipient])
        except pyrage.EncryptError:
            if writer.write_error is not None:
                raise writer.write_error from None
            raise
    return Digest(reader.hash.hexdigest(), reader.size)


def decrypt_stream(source: str | Path, target: BinaryIO, identity: x25519.Identity) -> Digest:
    """Write the plaintext of object `source` to target; raise if it is not a whole object."""
    writer = _DecompressingWriter(target)
    try:
        with open(source, "rb") as encrypted:
            pyrage.decrypt_io(encrypted, writer, [identity])
    except (pyrage.DecryptError, zstd.ZstdError, OSError) as error:
        if writer.write_error is not None:
            raise writer.write_error from None
        if isinstance(error, FileNotFoundError):
            raise
        if isinstance(error, pyrage.DecryptError) and str(error) == NO_MATCHING_KEY:
            raise NotForThisKey(f"cannot decrypt: {error}") from None
        raise RemoteFormatError(f"cannot decrypt: {error}") from None
    if not writer.complete:
        raise RemoteFormatError("cannot decrypt: the object is truncated or has trailing data")
    return Digest(writer.hash.hexdigest(), writer.size)


def encrypt_bytes(data: bytes, recipient: x25519.Recipient, compress: bool = True) -> bytes:
    """age(zstd(data)), or age(data), for small metadata (journal entries, keycheck)."""
    return pyrage.encrypt(zstd.compress(data) if compress else data, [recipient])


def decrypt_bytes(data: bytes, identity: x25519.Identity, compressed: bool = True) -> bytes:
    try:
        plain = pyrage.decrypt(data, [identity])
        return zstd.decompress(plain) if compressed else plain
    except (pyrage.DecryptError, zstd.ZstdError) as error:
        raise RemoteFormatError(f"cannot decrypt: {error}") from None
