"""Provider templates: one YAML file per provider in rclone_templates/.

A template names its fields and the rclone remote section they render into:

    description: Amazon S3 or any S3-compatible storage
    fields:                       # asked in this order
      - name: secret_access_key   # rclone's option name where one exists
        prompt: Secret access key
        help: optional longer text
        default: ""               # absent: required
        secret: true              # hidden prompt, never echoed
        obscure: true             # passed through `rclone obscure` before it is written
        required_unless: env_auth # no default, yet may be empty when that field is true
    remote: {type: s3, secret_access_key: "{secret_access_key}"}   # the rclone section
    root: "{bucket}/{path}"       # the sync root inside that remote

Options whose rendered value is empty are left out of the section. Adding a provider is
adding a file.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .config import parse_yaml
from .errors import ConfigError

REMOTE_NAME = "claude-sync"
_FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Field:
    name: str
    prompt: str
    help: str
    default: str | None
    secret: bool
    obscure: bool
    required_unless: str | None


@dataclass(frozen=True)
class Template:
    name: str
    description: str
    fields: tuple[Field, ...]
    remote: dict[str, str]
    root: str


def _template_folder() -> Path:
    """rclone_templates/ inside the installed package, else at the top of a checkout."""
    package = Path(__file__).resolve().parent
    installed = package / "rclone_templates"
    return installed if installed.is_dir() else package.parent / "rclone_templates"


def template_names() -> list[str]:
    """Every provider, the local folder first (the zero-setup default)."""
    names = sorted(path.stem for path in _template_folder().glob("*.yaml"))
    return sorted(names, key=lambda name: name != "local")


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def load_template(name: str) -> Template:
    if name not in template_names():
        raise ConfigError(f"unknown provider {name!r}: choose one of {', '.join(template_names())}")
    path = _template_folder() / f"{name}.yaml"
    try:
        document = parse_yaml(path.read_text(), path)
    except ConfigError as error:
        raise ConfigError(f"template is malformed: {error}") from None
    try:
        fields = tuple(
            Field(
                name=str(item["name"]),
                prompt=str(item.get("prompt", item["name"])),
                help=str(item.get("help", "")),
                default=None if item.get("default") is None else str(item["default"]),
                secret=bool(item.get("secret", False)),
                obscure=bool(item.get("obscure", False)),
                required_unless=None
                if item.get("required_unless") is None
                else str(item["required_unless"]),
            )
            for item in document["fields"]
        )
        template = Template(
            name=name,
            description=str(document.get("description", name)),
            fields=fields,
            remote={str(k): str(v) for k, v in document["remote"].items()},
            root=str(document["root"]),
        )
    except (KeyError, TypeError, AttributeError) as error:
        raise ConfigError(f"template {path} is malformed: {error}") from None
    known = {field.name for field in fields}
    used = set().union(*(_placeholders(v) for v in [*template.remote.values(), template.root]))
    if "type" not in template.remote or not all(_FIELD_NAME.match(f) for f in known):
        raise ConfigError(f"template {path} is malformed: needs remote.type and simple field names")
    unless = {field.required_unless for field in fields if field.required_unless}
    if unless - known:
        raise ConfigError(
            f"template {path} is malformed: required_unless names no field "
            f"({', '.join(sorted(unless - known))})"
        )
    if used - known:
        raise ConfigError(
            f"template {path} uses undefined fields: {', '.join(sorted(used - known))}"
        )
    return template


def environment_variable(field: Field) -> str:
    """The environment variable init reads a field from: secrets stay out of ps and history."""
    return f"CLAUDE_SYNC_FIELD_{field.name.upper()}"


def resolve_values(template: Template, given: dict[str, str]) -> dict[str, str]:
    """The given values plus defaults; raise for an unknown field or a missing required one."""
    names = [field.name for field in template.fields]
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise ConfigError(
            f"provider {template.name} has no field {unknown[0]!r} (fields: {', '.join(names)})"
        )
    found = {field.name: given.get(field.name, field.default) for field in template.fields}
    values = {}
    for field in template.fields:
        value = found[field.name]
        if value is None:
            value = default_for(field, found)
        if value is None:
            if field.secret:
                raise ConfigError(
                    f"provider {template.name} needs {field.name}: set it in the environment "
                    f"as {environment_variable(field)} (a secret stays off the command line)"
                )
            raise ConfigError(
                f"provider {template.name} needs --set {field.name}=... "
                f"(or {environment_variable(field)} in the environment)"
            )
        values[field.name] = value
    return values


def default_for(field: Field, values: Mapping[str, str | None]) -> str | None:
    """The field's default given the values so far: empty for a field not required because
    the field it names is true (e.g. keys with env_auth), None when it must be given."""
    unless = field.required_unless
    if field.default is None and unless and (values.get(unless) or "").lower() == "true":
        return ""
    return field.default


def render(
    template: Template, values: dict[str, str], obscure: Callable[[str], str]
) -> tuple[str, str]:
    """The rclone config text (one section) and the remote root path for these values."""
    for_remote = {
        field.name: obscure(values[field.name])
        if field.obscure and values[field.name]
        else values[field.name]
        for field in template.fields
    }
    lines = [f"[{REMOTE_NAME}]"]
    for option, pattern in template.remote.items():
        value = pattern.format_map(for_remote)
        if "\n" in value or "\r" in value:
            raise ConfigError(f"the value for {option} must be one line")
        if value:
            lines.append(f"{option} = {value}")
    root = "/".join(part for part in template.root.format_map(values).split("/") if part)
    if template.root.format_map(values).startswith("/"):
        root = "/" + root
    return "\n".join(lines) + "\n", f"{REMOTE_NAME}:{root}"
