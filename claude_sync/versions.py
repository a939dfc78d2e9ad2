"""Versions of one path and the version vectors that order them without clocks.

A version vector maps device id -> counter. Pushing a local change bumps this device's
counter on top of the base vector. A dominates B when A >= B everywhere and A != B; two
vectors neither of which dominates the other are concurrent.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class VersionVector:
    """How many versions each device has made of a path, as sorted (device, count) pairs."""

    counters: tuple[tuple[str, int], ...] = ()

    @classmethod
    def of(cls, counters: Mapping[str, int]) -> VersionVector:
        return cls(tuple(sorted((d, c) for d, c in counters.items() if c > 0)))

    def as_dict(self) -> dict[str, int]:
        return dict(self.counters)

    def get(self, device: str) -> int:
        return self.as_dict().get(device, 0)

    def __le__(self, other: VersionVector) -> bool:
        theirs = other.as_dict()
        return all(count <= theirs.get(device, 0) for device, count in self.counters)

    def dominates(self, other: VersionVector) -> bool:
        return other <= self and self != other

    def concurrent(self, other: VersionVector) -> bool:
        return not self <= other and not other <= self

    def merge(self, other: VersionVector) -> VersionVector:
        merged = self.as_dict()
        for device, count in other.counters:
            merged[device] = max(merged.get(device, 0), count)
        return VersionVector.of(merged)

    def bump(self, device: str, at_least: int = 0) -> VersionVector:
        """This vector with `device`'s counter one above both its own and `at_least`."""
        counters = self.as_dict()
        counters[device] = max(counters.get(device, 0), at_least) + 1
        return VersionVector.of(counters)


def merge_all(vectors: Iterable[VersionVector]) -> VersionVector:
    merged = VersionVector()
    for vector in vectors:
        merged = merged.merge(vector)
    return merged


@dataclass(frozen=True)
class Segment:
    """One object of a file: its plaintext SHA-256 and size."""

    sha256: str
    size: int


@dataclass(frozen=True)
class Version:
    """One version of one path, as a manifest or the state records it.

    `mode` is the file's permission bits where this version was written (st_mode & 0o777),
    which a pull gives a file it creates; None when unknown: a tombstone, or an entry from
    before modes were recorded. It is no part of the content: a change of mode alone (a
    chmod, the same bytes) makes no new version and sends nothing.
    """

    sha256: str
    size: int
    mtime_ns: int
    vector: VersionVector
    device: str
    deleted: bool = False
    segments: tuple[Segment, ...] = field(default=())
    mode: int | None = None

    def with_vector(self, vector: VersionVector) -> Version:
        return dataclasses.replace(self, vector=vector)

    def same_content(self, other: Version) -> bool:
        if self.deleted or other.deleted:
            return self.deleted == other.deleted
        return self.sha256 == other.sha256 and self.size == other.size


def maximal(versions: Iterable[Version]) -> list[Version]:
    """The versions no other dominates, one per distinct vector, in a stable order."""
    unique: dict[VersionVector, Version] = {}
    for version in versions:
        unique.setdefault(version.vector, version)
    candidates = list(unique.values())
    keep = [v for v in candidates if not any(o.vector.dominates(v.vector) for o in candidates)]
    return sorted(keep, key=lambda v: (v.vector.counters, v.sha256))
