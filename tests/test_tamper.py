"""A tampered or damaged remote: a pull refuses what it cannot trust, with one clear line.

Setup for each case: A pushes a few files, B pulls once (so B has a state), A changes and
creates files and pushes again, then the remote is tampered with, then B pulls. A tampered
manifest or an unknown format refuses the whole pull: exit non-zero, one line naming the
problem, no traceback, B's Claude folder byte-for-byte and mtime-for-mtime as it was. A
damaged object refuses only the path that needs it: that file stays exactly as it was, one
line names it and its object, every other file is applied, and the pull exits 1 with the way
out. Either way no temporary file is left behind. The remote is a plain local folder, so its
files are edited directly.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from click.testing import Result
from conftest import RCLONE, Device, joined, put
from servers import Server, start_server

from claude_sync import crypto
from claude_sync.keys import (
    metadata_key,
    object_name,
    object_name_key,
    random_identity,
    read_key_file,
)
from claude_sync.pathmap import TEMPORARY_PREFIX
from claude_sync.remote import object_path


def text(tag: str, size: int = 4000) -> bytes:
    """Deterministic, poorly compressible text (so objects have a real ciphertext body)."""
    rng = random.Random(tag)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789 "
    return ("".join(rng.choice(alphabet) for _ in range(size)) + "\n").encode()


# The first push, then A's changes. Pull order is sorted remote paths: CLAUDE.md first,
# settings.json last.
FIRST = {
    "CLAUDE.md": text("claude-1"),
    "projects/-srv-app/s1.jsonl": text("s1-1"),
    "settings.json": text("settings-1"),
}
APPENDED = text("s1-appended", 1500)
SECOND = {
    "CLAUDE.md": text("claude-2"),
    "agents/new.md": text("agent-new"),
    "projects/-srv-app/s1.jsonl": FIRST["projects/-srv-app/s1.jsonl"] + APPENDED,
    "projects/-srv-app/s2.jsonl": text("s2-new"),
    "settings.json": text("settings-2"),
}


def snapshot(folder: Path) -> dict[str, tuple]:
    """Everything below folder: files with bytes and mtime, folders, symbolic links."""
    found: dict[str, tuple] = {}
    for root, folders, files in os.walk(folder):
        for name in folders + files:
            path = Path(root) / name
            relative = path.relative_to(folder).as_posix()
            if path.is_symlink():
                found[relative] = ("link", os.readlink(path))
            elif path.is_dir():
                found[relative] = ("folder",)
            else:
                found[relative] = ("file", path.read_bytes(), path.stat().st_mtime_ns)
    return found


def leftovers(folder: Path) -> list[str]:
    """Temporary files (.claude-sync-*) anywhere below folder."""
    return sorted(
        str(Path(root) / name)
        for root, folders, files in os.walk(folder)
        for name in folders + files
        if name.startswith(TEMPORARY_PREFIX)
    )


def lines(result: Result) -> list[str]:
    return [line for line in result.output.splitlines() if line.strip()]


def assert_clean_failure(result: Result, *needles: str) -> str:
    """Non-zero exit, exactly one line (containing every needle), no traceback."""
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    found = lines(result)
    assert len(found) == 1, result.output
    for needle in needles:
        assert needle in found[0], (needle, found[0])
    return found[0]


@dataclass
class Scene:
    server: Server
    a: Device
    b: Device

    @property
    def root(self) -> Path:
        return self.server.data_dir

    @property
    def identity(self):
        return read_key_file(self.a.sync_home / "age-key.txt")

    @property
    def a_id(self) -> str:
        return yaml.safe_load((self.a.sync_home / "config.yaml").read_text())["device"]["id"]

    def object_name(self, plaintext: bytes) -> str:
        sha256 = hashlib.sha256(plaintext).hexdigest()
        return object_name(object_name_key(self.identity), sha256)

    def object_file(self, plaintext: bytes) -> Path:
        """The remote file of the object holding exactly `plaintext`."""
        path = self.root / object_path(self.object_name(plaintext))
        assert path.is_file(), path
        return path

    def object_relative(self, plaintext: bytes) -> str:
        return object_path(self.object_name(plaintext))

    @property
    def manifest_file(self) -> Path:
        """A's newest journal entry."""
        return sorted((self.root / "journal" / self.a_id).iterdir())[-1]

    @property
    def manifest_name(self) -> str:
        return self.manifest_file.relative_to(self.root).as_posix()

    def manifest(self) -> dict:
        return json.loads(crypto.decrypt_bytes(self.manifest_file.read_bytes(), self.identity))

    def write_manifest(self, document: dict, recipient=None) -> None:
        """Write `document` over A's newest entry, authenticated with the real key: what a
        holder of the key (a device gone wrong) could write."""
        document = {key: value for key, value in document.items() if key != "mac"}
        canonical = json.dumps(
            document, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()
        document["mac"] = hmac.new(metadata_key(self.identity), canonical, "sha256").hexdigest()
        data = json.dumps(document).encode()
        self.manifest_file.write_bytes(
            crypto.encrypt_bytes(data, recipient or self.identity.to_public())
        )

    def pull_partial(self, victim: str, *needles: str) -> str:
        """B pulls; assert that only `victim` was refused, in one line holding every needle
        (B's copy of it exactly as it was), every other file applied, exit 1 with the hint."""
        before = snapshot(self.b.claude)
        result = self.b.run("pull")
        assert result.exit_code == 1, result.output
        assert isinstance(result.exception, SystemExit), repr(result.exception)
        assert "Traceback" not in result.output
        refused = [line for line in lines(result) if line.startswith(f"! {victim}: object ")]
        assert len(refused) == 1, result.output
        for needle in (*needles, "left as it is"):
            assert needle in refused[0], (needle, refused[0])
        assert "claude-sync verify --repair" in lines(result)[-1], result.output
        assert snapshot(self.b.claude)[victim] == before[victim]
        for relative, data in SECOND.items():
            if relative != victim:
                assert self.b.read(relative) == data, relative
        assert leftovers(self.b.home) == []
        return refused[0]

    def pull_refused(self, *needles: str) -> str:
        """B pulls; assert a clean refusal that left B's Claude folder exactly as it was."""
        before = snapshot(self.b.claude)
        result = self.b.run("pull")
        line = assert_clean_failure(result, *needles)
        assert snapshot(self.b.claude) == before
        assert leftovers(self.b.home) == []
        return line


def _build_scene(root: Path) -> Scene:
    server = start_server("local", root / "server", RCLONE)
    a = joined(Device("a", _folder(root / "device-a")), server)
    b = joined(Device("b", _folder(root / "device-b")), server)
    for at, (relative, data) in enumerate(FIRST.items()):
        put(a, relative, data, at)
    a.ok("push")
    b.ok("pull")
    for relative, data in FIRST.items():
        assert b.read(relative) == data
    for at, (relative, data) in enumerate(SECOND.items(), 100):
        put(a, relative, data, at)
    assert "5 uploaded" in a.ok("push")
    return Scene(server, a, b)


def _folder(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Scene]:
    """The scene, built once: `live` is where tests run, `saved` a copy of its first state.

    Every test gets `live` restored from `saved` at the same absolute path (so the configs,
    state and caches stay valid) with bytes and mtimes preserved: same as a fresh setup,
    without two inits and three transfers per test.
    """
    base = tmp_path_factory.mktemp("tamper")
    live, saved = base / "live", base / "saved"
    scene = _build_scene(_folder(live))
    shutil.copytree(live, saved, symlinks=True)
    return live, saved, scene


@pytest.fixture
def scene(pristine: tuple[Path, Path, Scene]) -> Scene:
    live, saved, built = pristine
    shutil.rmtree(live)
    shutil.copytree(saved, live, symlinks=True)
    return built


def flip_body_byte(path: Path) -> None:
    """Flip one byte in the middle of the ciphertext body, past the age header."""
    data = bytearray(path.read_bytes())
    header_end = data.index(b"\n", data.index(b"\n--- ")) + 1
    position = header_end + (len(data) - header_end) // 2
    assert position > header_end + 16  # past the payload nonce too
    data[position] ^= 0x01
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])


# 1-3, 7: damaged objects ------------------------------------------------------------
#
# The object is either the one pull applies first (CLAUDE.md) or the one it applies last
# (settings.json): either way only that path is refused, and every other one applied.


def _damage(scene: Scene, how: str, victim: str) -> str:
    """Damage the object of `victim`'s new content; return its remote path."""
    target = scene.object_file(SECOND[victim])
    if how == "flipped":
        flip_body_byte(target)
    elif how == "truncated":
        truncate(target)
    elif how == "swapped":
        donor = scene.object_file(SECOND["projects/-srv-app/s2.jsonl"])
        shutil.copyfile(donor, target)
    elif how == "missing":
        target.unlink()
    return scene.object_relative(SECOND[victim])


DAMAGE_WORDS = {
    "flipped": "corrupt",
    "truncated": "corrupt",
    "swapped": "does not match",
    "missing": "missing",
}


@pytest.mark.parametrize("how", ["flipped", "truncated", "swapped", "missing"])
def test_damaged_object_first_applied_refuses_only_its_path(scene: Scene, how: str) -> None:
    name = _damage(scene, how, "CLAUDE.md")
    scene.pull_partial("CLAUDE.md", name, DAMAGE_WORDS[how])


@pytest.mark.parametrize("how", ["flipped", "truncated", "swapped", "missing"])
def test_damaged_object_applied_last_refuses_only_its_path(scene: Scene, how: str) -> None:
    name = _damage(scene, how, "settings.json")
    scene.pull_partial("settings.json", name, DAMAGE_WORDS[how])


def test_damaged_appended_segment_refuses_only_its_path(scene: Scene) -> None:
    """s1.jsonl only grew: its new version is the old segment plus one for the appended bytes."""
    segments = scene.manifest()["files"]["projects/-srv-app/s1.jsonl"]["segments"]
    assert len(segments) == 2
    flip_body_byte(scene.object_file(APPENDED))
    scene.pull_partial("projects/-srv-app/s1.jsonl", scene.object_relative(APPENDED), "corrupt")
    assert scene.b.read("projects/-srv-app/s1.jsonl") == FIRST["projects/-srv-app/s1.jsonl"]


# 8. fixing the damage: the next pull succeeds ---------------------------------------


@pytest.mark.parametrize(
    "how",
    [
        "flipped",
        "truncated",
        "swapped",
        "missing",
    ],
)
def test_pull_succeeds_once_the_object_is_restored(scene: Scene, how: str) -> None:
    target = scene.object_file(SECOND["CLAUDE.md"])
    original = target.read_bytes()
    _damage(scene, how, "CLAUDE.md")
    scene.pull_partial("CLAUDE.md", scene.object_relative(SECOND["CLAUDE.md"]))
    target.write_bytes(original)
    result = scene.b.run("pull")
    assert result.exit_code == 0, result.output
    for relative, data in SECOND.items():
        assert scene.b.read(relative) == data, relative
        assert (scene.b.claude / relative).stat().st_mtime_ns == (
            scene.a.claude / relative
        ).stat().st_mtime_ns
    assert leftovers(scene.b.home) == []


# 4-6: tampered manifests and an unknown format ------------------------------------------


def test_manifest_encrypted_to_another_key_is_refused(scene: Scene) -> None:
    document = scene.manifest()
    scene.write_manifest(document, random_identity().to_public())
    scene.pull_refused(scene.manifest_name, "different key")


@pytest.mark.parametrize(
    "unsafe", ["../../.bashrc", "/etc/x", "projects/../../../.bashrc", "projects/./x.jsonl"]
)
def test_manifest_naming_an_unsafe_path_is_refused(scene: Scene, unsafe: str) -> None:
    outside = [scene.b.claude / "../../.bashrc", scene.b.claude / "../../../.bashrc"]
    outside.append(Path("/etc/x"))
    existed = {path: path.exists() for path in outside}
    document = scene.manifest()
    document["files"][unsafe] = next(iter(document["files"].values()))
    scene.write_manifest(document)
    line = scene.pull_refused(unsafe, "unsafe path")
    assert scene.manifest_name in line
    assert {path: path.exists() for path in outside} == existed


def test_unknown_remote_format_asks_for_an_upgrade(scene: Scene) -> None:
    (scene.root / "CLAUDE-SYNC.json").write_text('{"format": 99}\n')
    scene.pull_refused("upgrade", "99")


# 9. verify ------------------------------------------------------------------------------


def _verify(device: Device, *args: str) -> Result:
    result = device.run("verify", *args)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.output
    return result


def test_verify_lists_every_problem(scene: Scene) -> None:
    a, b = scene.a, scene.b
    b.ok("pull")
    put(b, "CLAUDE.md", text("claude-3"), 300)
    b.ok("push")  # B's manifest too names every object, so each problem is seen through it
    for args in ((), ("--deep",)):
        for device in (a, b):
            result = _verify(device, *args)
            assert result.exit_code == 0, result.output
            assert "No problems" in result.output

    missing = scene.object_file(SECOND["settings.json"])
    flipped = scene.object_file(SECOND["agents/new.md"])
    originals = {path: path.read_bytes() for path in (missing, flipped, scene.manifest_file)}
    missing_name = scene.object_relative(SECOND["settings.json"])
    flipped_name = scene.object_relative(SECOND["agents/new.md"])
    manifest_name = scene.manifest_name

    def restore() -> None:
        for path, data in originals.items():
            path.write_bytes(data)

    missing.unlink()
    result = _verify(a)
    assert result.exit_code == 1, result.output
    assert missing_name in result.output and "missing" in result.output
    restore()

    flip_body_byte(flipped)
    result = _verify(a, "--deep")
    assert result.exit_code == 1, result.output
    assert flipped_name in result.output
    restore()

    scene.write_manifest(scene.manifest(), random_identity().to_public())
    result = _verify(a)
    assert result.exit_code == 1, result.output
    assert manifest_name in result.output
    restore()
    assert _verify(a, "--deep").exit_code == 0

    missing.unlink()
    flip_body_byte(flipped)
    scene.write_manifest(scene.manifest(), random_identity().to_public())
    result = _verify(b, "--deep")
    assert result.exit_code == 1, result.output
    problems = [line for line in result.output.splitlines() if line.startswith("✗")]
    assert len(problems) == 3, result.output
    for name in (missing_name, flipped_name, manifest_name):
        assert sum(name in line for line in problems) == 1, (name, result.output)
    assert "3 problems" in result.output
