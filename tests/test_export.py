"""export and import: one session as one encrypted file, installed under another project."""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest
from conftest import Device, joined, tree
from pyrage import x25519

from claude_sync import crypto
from claude_sync.keys import read_key_file
from claude_sync.projects import encode_project

SESSION = "0b6f3c1e-5a2d-4c8e-9f10-123456789abc"
SECRET_LINE = "the transcript's own words, never printed"


def make_session(device: Device, project: Path, session_id: str = SESSION) -> Path:
    """A session of `device` in the folder Claude Code uses for `project`: a transcript
    recording that path, and a sidecar folder with a subagent and a tool result."""
    folder = device.claude / "projects" / encode_project(os.path.realpath(project))
    lines = [
        {"type": "user", "uuid": "u1", "cwd": os.path.realpath(project), "text": SECRET_LINE},
        {"type": "assistant", "uuid": "a1", "cwd": os.path.realpath(project), "text": "hi"},
    ]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{session_id}.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (folder / session_id / "subagents").mkdir(parents=True, exist_ok=True)
    (folder / session_id / "subagents" / "agent-1.jsonl").write_text('{"uuid": "s1"}\n')
    (folder / session_id / "tool-results").mkdir(exist_ok=True)
    (folder / session_id / "tool-results" / "t1.txt").write_bytes(os.urandom(300_000))
    return folder


def session_files(folder: Path, session_id: str = SESSION) -> dict[str, bytes]:
    files = {f"{session_id}.jsonl": (folder / f"{session_id}.jsonl").read_bytes()}
    for relative, data in tree(folder / session_id).items():
        files[f"{session_id}/{relative}"] = data
    return files


def recipient_of(device: Device) -> x25519.Recipient:
    return read_key_file(device.sync_home / "age-key.txt").to_public()


def forged_export(
    path: Path, recipient: x25519.Recipient, members: list[tuple[tarfile.TarInfo, bytes]], **header
) -> Path:
    """An export built by hand, with the very encryption claude-sync uses."""
    document = {
        "format": 1,
        "session": SESSION,
        "project_key": "~/x",
        "device": "mallory",
        "created": "2025-01-01T00:00:00+00:00",
        **header,
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            archive.addfile(info, io.BytesIO(data) if info.isreg() else None)
    plain = json.dumps(document).encode() + b"\n" + buffer.getvalue()
    crypto.encrypt_stream(io.BytesIO(plain), path, recipient)
    return path


def member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


@pytest.fixture
def a(make_device, local_server) -> Device:
    return joined(make_device("a"), local_server)


@pytest.fixture
def project(a: Device) -> Path:
    path = a.home / "work" / "app"
    path.mkdir(parents=True)
    return path


def test_export_on_a_import_on_b(a: Device, make_device, local_server, project: Path) -> None:
    b = joined(make_device("b"), local_server)
    source = make_session(a, a.home / "code" / "app")
    exported = a.home / "out" / "s.age"
    exported.parent.mkdir()
    output = a.ok("export", SESSION, "-o", str(exported))
    assert "project ~/code/app" in output and SECRET_LINE not in output
    assert stat.S_IMODE(exported.stat().st_mode) == 0o600
    assert SECRET_LINE.encode() not in exported.read_bytes()  # encrypted

    elsewhere = b.home / "elsewhere" / "app2"
    elsewhere.mkdir(parents=True)
    output = b.ok("import", str(exported), "--cwd", str(elsewhere))
    assert "from a, project ~/code/app" in output and SECRET_LINE not in output
    target = b.claude / "projects" / encode_project(os.path.realpath(elsewhere))
    assert session_files(target) == session_files(source)
    assert stat.S_IMODE((target / f"{SESSION}.jsonl").stat().st_mode) == 0o600
    assert stat.S_IMODE((target / SESSION / "subagents").stat().st_mode) == 0o700
    assert sorted(p.name for p in target.iterdir()) == [SESSION, f"{SESSION}.jsonl"]
    assert not any((b.sync_home / "staging").iterdir())  # the decrypted copy is gone

    again = b.ok("import", str(exported), "--cwd", str(elsewhere))
    assert "identical: nothing to do" in again


def test_an_export_to_a_foreign_recipient_is_refused_here(a: Device, project: Path) -> None:
    make_session(a, a.home / "code" / "app")
    foreign = x25519.Identity.generate().to_public()
    exported = a.home / "for-bob.age"
    a.ok("export", SESSION, "-o", str(exported), "--to", str(foreign))
    result = a.run("import", str(exported), "--cwd", str(project))
    assert result.exit_code == 1
    assert "was exported for another key (not this device's)" in result.output
    assert str(recipient_of(a)) in result.output  # what to ask the sender to use
    assert len(result.output.strip().splitlines()) == 1
    assert not (a.claude / "projects" / encode_project(os.path.realpath(project))).exists()


def test_a_bad_recipient_is_one_clear_error(a: Device) -> None:
    make_session(a, a.home / "code" / "app")
    result = a.run("export", SESSION, "-o", str(a.home / "x.age"), "--to", "age1notakey")
    assert result.exit_code == 2
    assert "is not an age public key" in result.output
    assert not (a.home / "x.age").exists()


def test_a_missing_or_malformed_session_id_on_export(a: Device) -> None:
    result = a.run("export", "0b6f3c1e-0000-0000-0000-000000000000")
    assert result.exit_code == 1
    assert result.output.startswith("Error: no session 0b6f3c1e-0000-0000-0000-000000000000 here")
    assert len(result.output.strip().splitlines()) == 1
    result = a.run("export", "../../etc/passwd")
    assert result.exit_code == 2 and "is not a session id" in result.output


@pytest.mark.parametrize("damage", ["flipped", "truncated"])
def test_a_damaged_export_is_refused(a: Device, project: Path, damage: str) -> None:
    make_session(a, a.home / "code" / "app")
    exported = a.home / "s.age"
    a.ok("export", SESSION, "-o", str(exported))
    data = bytearray(exported.read_bytes())
    if damage == "flipped":
        data[len(data) // 2] ^= 0x01
    else:
        del data[len(data) // 2 :]
    exported.write_bytes(bytes(data))
    result = a.run("import", str(exported), "--cwd", str(project))
    assert result.exit_code == 1
    assert "damaged or truncated" in result.output and "nothing written" in result.output
    assert not (a.claude / "projects" / encode_project(os.path.realpath(project))).exists()


def test_an_unknown_format_is_refused(a: Device, project: Path) -> None:
    exported = forged_export(
        a.home / "future.age",
        recipient_of(a),
        [(member(f"{SESSION}.jsonl"), b"{}\n")],
        format=2,
    )
    result = a.run("import", str(exported), "--cwd", str(project))
    assert result.exit_code == 1
    assert "export format 2, this claude-sync reads format 1" in result.output
    assert not (a.claude / "projects").exists()


@pytest.mark.parametrize(
    "bad",
    [
        member("../escaped.jsonl"),
        member(f"{SESSION}/../../escaped.jsonl"),
        member("/tmp/claude-sync-test-escaped.jsonl"),
        member("other-session.jsonl"),
        member(f"{SESSION}/link", tarfile.SYMTYPE, "/etc/passwd"),
        member(f"{SESSION}/hard", tarfile.LNKTYPE, f"{SESSION}.jsonl"),
        member(f"{SESSION}/device", tarfile.CHRTYPE),
    ],
    ids=["dotdot", "dotdot-inside", "absolute", "other-session", "symlink", "hardlink", "device"],
)
def test_a_forged_member_is_refused_and_nothing_written(
    a: Device, project: Path, bad: tarfile.TarInfo
) -> None:
    exported = forged_export(
        a.home / "forged.age",
        recipient_of(a),
        [(member(f"{SESSION}.jsonl"), b'{"uuid": "x"}\n'), (bad, b"pwned\n")],
    )
    before = tree(a.home)
    result = a.run("import", str(exported), "--cwd", str(project))
    assert result.exit_code == 1
    assert "is not a file or folder of the session" in result.output
    assert {k: v for k, v in tree(a.home).items() if k != ".claude-sync/lock"} == {
        k: v for k, v in before.items() if k != ".claude-sync/lock"
    }
    assert not (a.claude / "projects").exists()
    assert not Path("/tmp/claude-sync-test-escaped.jsonl").exists()


def test_a_different_session_is_replaced_only_with_overwrite(a: Device, project: Path) -> None:
    exported = a.home / "s.age"
    make_session(a, a.home / "code" / "app")
    a.ok("export", SESSION, "-o", str(exported))
    here = make_session(a, project)  # the same id, other contents, at the import's place
    (here / f"{SESSION}.jsonl").write_text('{"uuid": "mine"}\n')
    old = session_files(here)

    result = a.run("import", str(exported), "--cwd", str(project))
    assert result.exit_code == 1
    assert "a different session" in result.output and "--overwrite" in result.output
    assert session_files(here) == old

    source = a.claude / "projects" / encode_project(os.path.realpath(a.home / "code" / "app"))
    exported_files = session_files(source)
    output = a.ok("import", str(exported), "--cwd", str(project), "--overwrite")
    assert "kept in" in output
    assert session_files(here) == exported_files
    assert not (source / f"{SESSION}.jsonl").exists()  # one session id, one place
    relative = f"projects/{here.name}/"
    kept = {
        path.split(relative, 1)[1]: data
        for path, data in tree(a.sync_home / "trash").items()
        if relative in path
    }
    assert kept == old


def test_a_session_already_in_another_project_is_moved_only_with_overwrite(
    a: Device, project: Path
) -> None:
    """Claude Code resumes an id from one folder only: an import never leaves two."""
    exported = a.home / "s.age"
    source = make_session(a, a.home / "code" / "app")
    a.ok("export", SESSION, "-o", str(exported))
    before = session_files(source)
    result = a.run("import", str(exported), "--cwd", str(project))
    assert result.exit_code == 1, result.output
    assert f"already in projects/{source.name}" in result.output
    assert session_files(source) == before
    target = a.claude / "projects" / encode_project(os.path.realpath(project))
    assert not target.exists()
    a.ok("import", str(exported), "--cwd", str(project), "--overwrite")
    assert session_files(target) == before
    assert not (source / f"{SESSION}.jsonl").exists() and not (source / SESSION).exists()
    kept = tree(a.sync_home / "trash")
    assert any(path.endswith(f"{source.name}/{SESSION}.jsonl") for path in kept)
