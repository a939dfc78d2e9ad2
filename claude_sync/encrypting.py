"""Encrypting the files a push sends, on every core.

Each file is read and hashed once: the pass that compresses and encrypts it also takes its
SHA-256 (the object's is the file's), and, for a file that grew, the SHA-256 of the prefix
its base already holds, continued over the new bytes for the whole file's. Small files
are spread over a pool of processes (age and zstd hold Python's lock, so threads would
not help); a big one is encrypted in this process with zstd's own threads, while the pool
goes on with the small ones. Results arrive as each file is done, so that the caller can
hand finished objects to rclone while the rest are still being encrypted.

The process that encrypts an object also puts it in staging under its name, or, for a
remote in a folder on this machine, sends it there, so that the rename of each of many small
files is not all done by this one. Only the recipient (the
public key) and the object-name key go to the pool's processes; the identity stays here.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from . import crypto
from .files import rename_into
from .keys import object_name
from .pathmap import temporary_name
from .remote import object_path, put_in_folder
from .scan import read_prefix
from .workers import batches, cores, process_pool, worth_a_pool

BIG_FILE = 32 * 1024 * 1024  # from here on, a file gets zstd's threads instead of the pool


@dataclass(frozen=True)
class Job:
    """A file to encrypt into a temporary in `staging`, then moved to its object's place
    there (see `object_path`). With `prefix_size`, a file that grew since its base: when
    its first `prefix_size` bytes still hash to `prefix_sha256`, only the rest is
    encrypted."""

    path: str  # the remote path it is sent as
    # Its path here: a string, not a Path, as a push makes one per file (joining a Path
    # costs ten times as much) and hands each to another process.
    file: str
    staging: Path
    size: int  # the size the scan saw: where the file goes, and what the progress counts
    prefix_size: int = 0
    prefix_sha256: str = ""
    # The remote's folder on this machine (`Remote.folder_here`): the object is sent there
    # at once, by the process that made it, not put in staging for the caller to send.
    remote_folder: Path | None = None


@dataclass(frozen=True)
class Encrypted:
    """A file encrypted: its SHA-256 and size as read (the whole file), the object written
    (None when nothing was: an empty file, or an empty tail) and its name, and the stat of
    the open file before it was read; `stable` when nothing wrote to it while it was read,
    so that this stat is that of these very bytes (a scan later need not read them again)."""

    sha256: str
    size: int
    extended: bool  # the prefix matched: the object holds only the bytes past it
    object: crypto.Digest | None
    name: str  # the object's name; "" without one
    sent: bool  # the object is in the remote's folder already, else in staging
    mtime_ns: int
    mode: int
    stable: bool


def encrypt_file(job: Job, keys: Keys, threads: int = 0) -> Encrypted | None:
    """Encrypt one file as `job` says; None when it vanished before it was opened."""
    try:
        with open(job.file, "rb") as handle:
            return _encrypt_handle(job, handle, keys, threads)
    except FileNotFoundError:
        return None


def into_staging(temporary: Path, staging: Path, name: str) -> None:
    """Put an encrypted object where `upload_objects` sends it from, under its name."""
    rename_into(temporary, staging / object_path(name))


def _encrypt_handle(job: Job, handle: BinaryIO, keys: Keys, threads: int) -> Encrypted:
    info = os.fstat(handle.fileno())
    # The whole file's hash, apart from the object's, only for a file that grew: else the
    # object holds the whole file, and its hash is the file's.
    whole = None
    if job.prefix_size and info.st_size > job.prefix_size:
        prefix = hashlib.sha256()
        read = read_prefix(handle, job.prefix_size, prefix.update)
        if read and prefix.hexdigest() == job.prefix_sha256:
            whole = prefix
        else:
            handle.seek(0)
    temporary = job.staging / temporary_name()
    digest = crypto.encrypt_stream(
        handle if whole is None else _HashingReader(handle, whole),
        temporary,
        crypto.parse_recipient(keys.recipient),
        threads=threads,
    )
    name, sent = "", False
    if digest.size:
        name = object_name(keys.name_key, digest.sha256)
        if job.remote_folder is not None:
            sent = put_in_folder(temporary, job.remote_folder, object_path(name))
        if not sent:
            into_staging(temporary, job.staging, name)
    else:
        temporary.unlink()
    size = digest.size + (job.prefix_size if whole is not None else 0)
    after = os.fstat(handle.fileno())
    return Encrypted(
        digest.sha256 if whole is None else whole.hexdigest(),
        size,
        whole is not None,
        digest if digest.size else None,
        name,
        sent,
        info.st_mtime_ns,
        info.st_mode & 0o777,
        (info.st_size, info.st_mtime_ns) == (after.st_size, after.st_mtime_ns)
        and after.st_size == size,
    )


class _HashingReader:
    """Passes reads through while hashing them: the whole-file hash of an appended file."""

    def __init__(self, source: BinaryIO, digest) -> None:
        self._source = source
        self._digest = digest

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        self._digest.update(data)
        return data


@dataclass(frozen=True)
class Keys:
    """What the encrypting processes need: whom to encrypt to, and how objects are named."""

    recipient: str
    name_key: bytes


def encrypt_all(jobs: list[Job], keys: Keys) -> Iterator[tuple[Job, Encrypted | None]]:
    """Encrypt every job; yield each with its result as it is done (None: the file
    vanished). Leaving the loop early (an error, Ctrl-C) cancels what has not started."""
    big = [job for job in jobs if job.size >= BIG_FILE]
    small = [job for job in jobs if job.size < BIG_FILE]
    threads = cores() if cores() > 1 else 0
    if not worth_a_pool([job.size for job in small]):
        for job in small + big:
            yield job, encrypt_file(job, keys, threads if job in big else 0)
        return
    from concurrent.futures import as_completed  # a pool only: not on start-up

    pool = process_pool()
    try:
        futures = {
            pool.submit(encrypt_batch, batch, keys): batch for batch in batches(small, _size)
        }
        for job in big:
            yield job, encrypt_file(job, keys, threads)
        for future in as_completed(futures):
            yield from zip(futures[future], future.result(), strict=True)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def encrypt_batch(jobs: list[Job], keys: Keys) -> list[Encrypted | None]:
    return [encrypt_file(job, keys) for job in jobs]


def _size(job: Job) -> int:
    return job.size
