"""The pool of processes that encrypts a push's files and decrypts a pull's, one per core.

age and zstd hold Python's lock while they work, so threads would take turns on one core;
processes do not. A pool costs tens of milliseconds to start, so callers use one only for
work of several megabytes.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

POOL_FROM = 8 * 1024 * 1024  # below this many bytes in all, starting processes costs more
BATCH_FILES = 64  # small files handed to a pool process at once: one message, not 64
BATCH_BYTES = 4 * 1024 * 1024
# Bytes of files handed to one rclone call while the processes work on the rest: small
# enough that most of a transfer of a few tens of MB overlaps the work (only the last
# batch waits), at most a quarter of the transfer so that a big one starts few rclones.
TRANSFER_BATCH = 16 * 1024 * 1024

Work = TypeVar("Work")


def worth_a_pool(sizes: list[int]) -> bool:
    """Whether work on files of these sizes is spread over a pool: several files, megabytes
    in all, and more than one core."""
    return len(sizes) > 1 and sum(sizes) >= POOL_FROM and cores() > 1


def batch_bytes(total: int) -> int:
    """The bytes of files in one rclone call of a transfer of `total` (see TRANSFER_BATCH)."""
    return max(TRANSFER_BATCH, total // 4)


def cores() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def process_pool(
    initializer: Callable[..., None] | None = None, initargs: tuple = ()
) -> ProcessPoolExecutor:
    """A pool of one process per core; `initializer(*initargs)` runs in each first."""
    # Imported here, not above: most runs start no pool, and every run would pay for it.
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(cores(), initializer=_start_worker, initargs=(initializer, initargs))


def _start_worker(initializer: Callable[..., None] | None, initargs: tuple) -> None:
    # Ctrl-C is the parent's to handle: it stops the pool, and each worker with it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if initializer is not None:
        initializer(*initargs)


def batches(work: Iterable[Work], size_of: Callable[[Work], int]) -> Iterator[list[Work]]:
    """`work` in order, in groups of at most BATCH_FILES files or about BATCH_BYTES."""
    batch: list[Work] = []
    size = 0
    for one in work:
        if batch and (len(batch) == BATCH_FILES or size + size_of(one) > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(one)
        size += size_of(one)
    if batch:
        yield batch
