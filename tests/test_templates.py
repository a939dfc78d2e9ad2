"""Provider templates: every one loads and renders a section the real rclone accepts."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from claude_sync import templates
from claude_sync.errors import ConfigError
from claude_sync.rclone import Rclone
from claude_sync.templates import (
    REMOTE_NAME,
    Template,
    load_template,
    render,
    resolve_values,
    template_names,
)

RCLONE = str(Path(sys.executable).parent / "rclone")
SOURCE_TEMPLATES = Path(__file__).resolve().parent.parent / "rclone_templates"


def obscure(secret: str) -> str:
    return Rclone(RCLONE, None).obscure(secret)


def reveal(obscured: str) -> str:
    return subprocess.run(
        [RCLONE, "reveal", "--", obscured], capture_output=True, text=True, check=True
    ).stdout.strip()


def parse_section(text: str) -> dict[str, str]:
    """The options of the one `[claude-sync]` section, as written."""
    lines = text.splitlines()
    assert lines[0] == f"[{REMOTE_NAME}]"
    options = {}
    for line in lines[1:]:
        option, equals, value = line.partition(" = ")
        assert equals, f"not an option line: {line!r}"
        assert option not in options, f"{option} written twice"
        options[option] = value
    return options


def rclone_dump(tmp_path: Path, text: str) -> dict[str, str]:
    """The section as rclone itself reads it back from a config file."""
    config = tmp_path / "rclone.conf"
    config.write_text(text)
    dumped = subprocess.run(
        [RCLONE, "config", "dump", "--config", str(config)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(dumped.stdout)[REMOTE_NAME]


@pytest.fixture(scope="module")
def rclone_backends() -> dict[str, dict]:
    """rclone's own description of every backend, by name and by prefix."""
    listing = subprocess.run(
        [RCLONE, "config", "providers"], capture_output=True, text=True, check=True
    )
    backends: dict[str, dict] = {}
    for backend in json.loads(listing.stdout):
        backends[backend["Name"]] = backend
        backends[backend["Prefix"]] = backend
    return backends


def sample_values(template: Template) -> dict[str, str]:
    """A value for every field: each distinct, so a mix-up of two fields shows."""
    return {field.name: f"v-{field.name}-1" for field in template.fields}


def test_every_template_file_is_a_provider() -> None:
    on_disk = sorted(path.stem for path in SOURCE_TEMPLATES.glob("*.yaml"))
    assert len(on_disk) >= 7
    assert sorted(template_names()) == on_disk
    assert {"local", "s3", "webdav", "sftp", "b2", "gcs", "r2"} <= set(on_disk)


def test_local_is_the_first_choice() -> None:
    names = template_names()
    assert names[0] == "local"
    assert names[1:] == sorted(names[1:])


@pytest.mark.parametrize("name", sorted(path.stem for path in SOURCE_TEMPLATES.glob("*.yaml")))
def test_template_loads_and_renders_for_rclone(
    name: str, tmp_path: Path, rclone_backends: dict[str, dict]
) -> None:
    template = load_template(name)
    assert template.name == name
    assert template.description and template.description != name
    assert template.fields, "a provider asks at least where to store"
    assert all(field.prompt for field in template.fields)

    values = sample_values(template)
    text, root = render(template, resolve_values(template, values), obscure)
    written = parse_section(text)
    assert root.startswith(f"{REMOTE_NAME}:")

    # rclone knows the backend, and every option the template writes is one of its options.
    backend = rclone_backends.get(template.remote["type"])
    assert backend is not None, f"rclone has no backend {template.remote['type']!r}"
    option_names = {option["Name"] for option in backend["Options"]}
    assert set(written) - {"type"} <= option_names
    # Every option rclone stores obscured is obscured by the template, and only those.
    passwords = {option["Name"] for option in backend["Options"] if option.get("IsPassword")}
    for field in template.fields:
        used_as = [
            opt for opt, pattern in template.remote.items() if f"{{{field.name}}}" in pattern
        ]
        if any(option in passwords for option in used_as):
            assert field.obscure, f"{field.name} goes into a password option: obscure it"
            assert field.secret, f"{field.name} is a password: hide it when prompting"
        if field.obscure:
            assert used_as and all(option in passwords for option in used_as)

    # rclone reads back what was meant: clear values as given, obscured ones revealing to them.
    dumped = rclone_dump(tmp_path, text)
    assert dumped["type"] == template.remote["type"]
    for field in template.fields:
        for option in (o for o, p in template.remote.items() if p == f"{{{field.name}}}"):
            expected = values[field.name]
            assert (reveal(dumped[option]) if field.obscure else dumped[option]) == expected


def test_obscured_field_is_not_in_the_clear(tmp_path: Path) -> None:
    template = load_template("webdav")
    clear = "hunter2-Sëcret pass"
    values = resolve_values(template, {"url": "https://dav.example", "user": "me", "pass": clear})
    text, root = render(template, values, obscure)
    written = parse_section(text)
    assert clear not in text
    assert written["pass"] != clear
    assert reveal(written["pass"]) == clear
    assert written["user"] == "me"  # not obscured: rclone reads it as is
    assert written["url"] == "https://dav.example"
    assert written["vendor"] == "other"  # the default
    assert root == f"{REMOTE_NAME}:claude-sync"


def test_empty_values_are_left_out_and_not_obscured() -> None:
    template = load_template("sftp")
    asked: list[str] = []

    def recording_obscure(secret: str) -> str:
        asked.append(secret)
        return "OBSCURED"

    values = resolve_values(template, {"host": "nas.local", "user": "me"})
    assert values["pass"] == "" and values["key_file"] == ""
    text, _ = render(template, values, recording_obscure)
    written = parse_section(text)
    assert "pass" not in written
    assert "key_file" not in written
    assert asked == []
    assert written == {"type": "sftp", "host": "nas.local", "port": "22", "user": "me"}

    text, _ = render(template, {**values, "pass": "pw"}, recording_obscure)
    assert parse_section(text)["pass"] == "OBSCURED"
    assert asked == ["pw"]


def test_empty_endpoint_is_left_out_for_aws() -> None:
    template = load_template("s3")
    values = resolve_values(
        template, {"access_key_id": "AK", "secret_access_key": "SK", "bucket": "b"}
    )
    text, root = render(template, values, obscure)
    written = parse_section(text)
    assert "endpoint" not in written
    assert written["provider"] == "AWS"
    assert written["region"] == "us-east-1"
    assert root == f"{REMOTE_NAME}:b/claude-sync"


@pytest.mark.parametrize("name", ["s3", "r2"])
def test_s3_like_remotes_never_check_or_create_the_bucket(name: str, tmp_path: Path) -> None:
    # An object-only token (R2's bucket-scoped tokens) may not check or create a bucket:
    # init creates a missing one once, and every later call leaves buckets alone.
    template = load_template(name)
    text, _ = render(template, resolve_values(template, sample_values(template)), obscure)
    assert parse_section(text)["no_check_bucket"] == "true"
    assert rclone_dump(tmp_path, text)["no_check_bucket"] == "true"


def test_s3_env_auth_writes_no_keys(tmp_path: Path) -> None:
    template = load_template("s3")
    values = resolve_values(template, {"env_auth": "true", "bucket": "b"})
    assert values["access_key_id"] == values["secret_access_key"] == ""
    text, root = render(template, values, obscure)
    written = parse_section(text)
    assert written["env_auth"] == "true"
    assert "access_key_id" not in written and "secret_access_key" not in written
    assert rclone_dump(tmp_path, text)["env_auth"] == "true"
    assert root == f"{REMOTE_NAME}:b/claude-sync"


def test_s3_keys_are_needed_by_default() -> None:
    template = load_template("s3")
    assert (
        resolve_values(template, {"access_key_id": "a", "secret_access_key": "s", "bucket": "b"})[
            "env_auth"
        ]
        == "false"
    )
    for env_auth in ({}, {"env_auth": "false"}, {"env_auth": ""}):
        with pytest.raises(ConfigError, match="--set access_key_id="):
            resolve_values(template, {**env_auth, "bucket": "b"})


def test_s3_env_auth_keeps_keys_that_are_given() -> None:
    template = load_template("s3")
    given = {"env_auth": "true", "access_key_id": "AK", "secret_access_key": "SK", "bucket": "b"}
    text, _ = render(template, resolve_values(template, given), obscure)
    written = parse_section(text)
    assert written["access_key_id"] == "AK" and written["secret_access_key"] == "SK"


def test_gcs_without_a_key_file_uses_application_default_credentials(tmp_path: Path) -> None:
    template = load_template("gcs")
    values = resolve_values(template, {"bucket": "b"})
    text, root = render(template, values, obscure)
    written = parse_section(text)
    assert "service_account_file" not in written
    assert written["env_auth"] == "true"
    assert rclone_dump(tmp_path, text)["env_auth"] == "true"
    assert root == f"{REMOTE_NAME}:b/claude-sync"

    # rclone uses env_auth only when no key file is set: with one, the file is used.
    values = resolve_values(template, {"bucket": "b", "service_account_file": "/k.json"})
    assert parse_section(render(template, values, obscure)[0])["service_account_file"] == "/k.json"


@pytest.mark.parametrize(
    ("path", "root"),
    [
        ("claude-sync", "b/claude-sync"),
        ("/nested/folder/", "b/nested/folder"),
        ("", "b"),
    ],
)
def test_root_joins_without_empty_parts(path: str, root: str) -> None:
    template = load_template("s3")
    given = {"access_key_id": "AK", "secret_access_key": "SK", "bucket": "b", "path": path}
    _, rendered_root = render(template, resolve_values(template, given), obscure)
    assert rendered_root == f"{REMOTE_NAME}:{root}"


def test_local_root_stays_absolute() -> None:
    template = load_template("local")
    text, root = render(template, resolve_values(template, {"path": "/data/sync"}), obscure)
    assert root == f"{REMOTE_NAME}:/data/sync"
    assert parse_section(text) == {"type": "local"}


def test_unknown_field_is_named() -> None:
    template = load_template("s3")
    with pytest.raises(ConfigError, match="'buckett'"):
        resolve_values(
            template,
            {"access_key_id": "a", "secret_access_key": "s", "bucket": "b", "buckett": "x"},
        )


@pytest.mark.parametrize("missing", ["access_key_id", "secret_access_key", "bucket"])
def test_missing_required_field_is_named(missing: str) -> None:
    template = load_template("s3")
    given = {"access_key_id": "a", "secret_access_key": "s", "bucket": "b"}
    del given[missing]
    # A secret is asked for through the environment, never on the command line.
    way = "CLAUDE_SYNC_FIELD_SECRET_ACCESS_KEY" if missing == "secret_access_key" else "--set"
    with pytest.raises(ConfigError, match=rf"{way}") as raised:
        resolve_values(template, given)
    assert missing in str(raised.value)
    assert ("--set" in str(raised.value)) == (missing != "secret_access_key")


def test_a_value_cannot_inject_config_lines() -> None:
    template = load_template("s3")
    given = {"access_key_id": "a\n[evil]\ntype = local", "secret_access_key": "s", "bucket": "b"}
    with pytest.raises(ConfigError, match="access_key_id"):
        render(template, resolve_values(template, given), obscure)


@pytest.mark.parametrize("name", ["dropbox", "../local", "LOCAL", ""])
def test_unknown_provider_lists_the_choices(name: str) -> None:
    with pytest.raises(ConfigError, match="unknown provider") as caught:
        load_template(name)
    assert "local" in str(caught.value) and "webdav" in str(caught.value)


@pytest.fixture
def template_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the templates that load_template reads instead of the shipped ones."""
    folder = tmp_path / "templates"
    shutil.copytree(SOURCE_TEMPLATES, folder)
    monkeypatch.setattr(templates, "_template_folder", lambda: folder)
    return folder


GOOD = """\
description: A test provider
fields:
  - name: path
    prompt: Folder
remote:
  type: local
root: "{path}"
"""

MALFORMED = {
    "empty-file": "",
    "top-level-list": "- a\n- b\n",
    "no-fields": GOOD.replace("fields:\n  - name: path\n    prompt: Folder\n", ""),
    "no-remote": GOOD.replace("remote:\n  type: local\n", ""),
    "no-root": GOOD.replace('root: "{path}"\n', ""),
    "no-type": GOOD.replace("  type: local\n", "  path: x\n"),
    "remote-not-a-mapping": GOOD.replace("remote:\n  type: local\n", "remote: [local]\n"),
    "field-without-name": GOOD.replace("  - name: path\n", "  - nom: path\n"),
    "fields-not-a-list": GOOD.replace(
        "fields:\n  - name: path\n    prompt: Folder\n", "fields: path\n"
    ),
    "bad-field-name": GOOD.replace("name: path", "name: Pa-th").replace("{path}", "{Pa-th}"),
    "undefined-placeholder": GOOD.replace('root: "{path}"', 'root: "{bucket}/{path}"'),
    "required-unless-unknown-field": GOOD.replace(
        "    prompt: Folder\n", "    prompt: Folder\n    required_unless: env_auth\n"
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_template_is_reported(template_copy: Path, case: str) -> None:
    (template_copy / "broken.yaml").write_text(MALFORMED[case])
    assert "broken" in template_names()
    with pytest.raises(ConfigError) as caught:
        load_template("broken")
    message = str(caught.value)
    assert str(template_copy / "broken.yaml") in message
    assert "malformed" in message or "undefined" in message
    assert "\n" not in message
    # The other providers are not affected by one broken file.
    assert load_template("s3").name == "s3"


BAD_YAML = "description: A test provider\nfields: [\n  {name: path\nremote: {type: local}\n"


def test_template_with_a_yaml_syntax_error_is_reported(template_copy: Path) -> None:
    (template_copy / "broken.yaml").write_text(BAD_YAML)
    with pytest.raises(ConfigError, match="malformed") as caught:
        load_template("broken")
    assert str(template_copy / "broken.yaml") in str(caught.value)


def test_template_yaml_syntax_error_is_one_line_with_its_position(template_copy: Path) -> None:
    (template_copy / "broken.yaml").write_text(BAD_YAML)
    with pytest.raises(ConfigError) as caught:
        load_template("broken")
    message = str(caught.value)
    assert "\n" not in message  # the CLI prints errors as one line
    assert re.search(r"\bline [34]\b", message)  # the unclosed `{` or where it was noticed


def test_undefined_placeholder_is_named(template_copy: Path) -> None:
    (template_copy / "broken.yaml").write_text(MALFORMED["undefined-placeholder"])
    with pytest.raises(ConfigError, match="undefined fields: bucket"):
        load_template("broken")


def test_good_template_in_a_copy_loads(template_copy: Path) -> None:
    (template_copy / "mine.yaml").write_text(GOOD)
    template = load_template("mine")
    assert [field.name for field in template.fields] == ["path"]
    assert template.fields[0].default is None  # no default: required
    assert template_names()[0] == "local"


def test_adding_a_provider_is_adding_a_file(template_copy: Path) -> None:
    (template_copy / "aaa.yaml").write_text(GOOD)
    assert template_names()[:2] == ["local", "aaa"]
