"""Line merges of append-only files whose versions diverged: no conflict copy for either.

Both merges are functions of the set of versions alone (not of their order, nor of which
device runs them), so every device that meets the same versions writes the same bytes, and
merging a merge with one of its inputs changes nothing.

- history.jsonl: the multiset union of the lines (each line as many times as in the version
  that has it most often), ordered by `timestamp`, then as bytes.
- A transcript (a session's or a subagent's `.jsonl`): the lines every version shares from
  the start, in their order, then the union of the remaining lines ordered by `timestamp`,
  then as bytes. Claude Code identifies a line by its `uuid` and links it to its parent by
  `parentUuid`, so both branches of a session stay reachable and resume picks the newest
  leaf. Lines are compared as bytes: a line synced between devices is copied byte for byte,
  so one `uuid` is one byte string, and were two ever to differ both would be kept.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from .pathmap import HISTORY

BLOCK = 1 << 20


def _order(line: bytes) -> tuple[float, str, bytes]:
    """Sort key: a line's `timestamp` (history.jsonl writes epoch milliseconds, transcripts
    ISO 8601 in UTC, which sorts as text), then its bytes; a line with none sorts first."""
    try:
        stamp = json.loads(line).get("timestamp")
    except (ValueError, AttributeError, UnicodeDecodeError):
        stamp = None
    if isinstance(stamp, (int, float)) and not isinstance(stamp, bool):
        return (float(stamp), "", line)
    return (0.0, stamp if isinstance(stamp, str) else "", line)


def _lines(data: bytes) -> list[bytes]:
    """The lines of `data`; a last line without its newline is a line too."""
    return [line for line in data.split(b"\n") if line.strip()]


def _union_in_order(versions: Iterable[list[bytes]]) -> list[bytes]:
    counts: Counter[bytes] = Counter()
    for lines in versions:
        counts |= Counter(lines)
    return sorted(counts.elements(), key=_order)


def _common_length(blocks: list[bytes], shortest: int) -> int:
    """How many first bytes all `blocks` share (a binary search over slice comparisons,
    which run in C)."""

    def shared(length: int) -> bool:
        return all(block[:length] == blocks[0][:length] for block in blocks[1:])

    if shared(shortest):
        return shortest
    low, high = 0, shortest  # shared(low) holds, shared(high) does not
    while high - low > 1:
        middle = (low + high) // 2
        if shared(middle):
            low = middle
        else:
            high = middle
    return low


def _shared_start(files: list[BinaryIO]) -> int:
    """The length of the longest run of whole lines (newline included) every file begins
    with. Read block by block: a transcript can be gigabytes, its diverged tail small."""
    offset = 0
    last_newline = 0
    while True:
        blocks = [file.read(BLOCK) for file in files]
        shortest = min(len(block) for block in blocks)
        same = _common_length(blocks, shortest)
        newline = blocks[0].rfind(b"\n", 0, same)
        if newline >= 0:
            last_newline = offset + newline + 1
        if same < shortest or shortest < BLOCK or any(len(b) != shortest for b in blocks):
            return last_newline
        offset += shortest


def merge_lines(path: str, versions: list[Path], destination: Path) -> int:
    """Write the merge of `versions` of the append-only file `path` to `destination`;
    return its size."""
    if path == HISTORY:
        merged = _union_in_order(_lines(version.read_bytes()) for version in versions)
        data = b"".join(line + b"\n" for line in merged)
        destination.write_bytes(data)
        return len(data)
    handles = [version.open("rb") for version in versions]
    try:
        shared = _shared_start(handles)
        tails = []
        for handle in handles:
            handle.seek(shared)
            tails.append(_lines(handle.read()))
        with destination.open("wb") as out:
            handles[0].seek(0)
            remaining = shared
            while remaining:
                block = handles[0].read(min(BLOCK, remaining))
                out.write(block)
                remaining -= len(block)
            for line in _union_in_order(tails):
                out.write(line + b"\n")
            return out.tell()
    finally:
        for handle in handles:
            handle.close()
