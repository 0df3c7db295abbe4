"""Docs that cannot drift: docs/configuration.md against `Settings`, docs/cli.md
against the `sparkplane` command tree."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer.main

import sparkplane.cli
from sparkplane.config import Settings, load_settings

DOCS = Path(__file__).resolve().parent.parent / "docs"
SETTINGS_HEADER = ["TOML key", "Environment variable", "Type", "Default", "Description"]
CODE = re.compile(r"`([^`]+)`")
HEADING = re.compile(r"^#{1,6}\s+`?(sparkplane(?: [\w-]+)*)`?\s*$")


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def is_row(line: str) -> bool:
    return line.lstrip().startswith("|")


def is_separator(line: str) -> bool:
    return set(line.strip()) <= {"|", "-", ":", " "}


# -- docs/configuration.md ----------------------------------------------------


@dataclass(frozen=True)
class SettingRow:
    key: str
    env: str
    type: str
    default: str
    description: str


def settings_rows() -> list[SettingRow]:
    """Every row of every settings table (tables with SETTINGS_HEADER)."""
    rows: list[SettingRow] = []
    lines = (DOCS / "configuration.md").read_text(encoding="utf-8").splitlines()
    in_table = False
    for line in lines:
        if not is_row(line):
            in_table = False
        elif cells(line) == SETTINGS_HEADER:
            in_table = True
        elif in_table and not is_separator(line):
            key, env, type_, default, description = cells(line)
            rows.append(SettingRow(key.strip("`"), env.strip("`"), type_, default, description))
    return rows


def toml_literal(value: Any) -> str:
    """How a default is written in the doc's Default column."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Path):
        return json.dumps(str(value))
    return json.dumps(value)


def test_every_setting_is_documented_and_nothing_else() -> None:
    documented = [r.key for r in settings_rows()]
    fields = list(Settings.model_fields)
    missing = [f for f in fields if f not in documented]
    unknown = [k for k in documented if k not in fields]
    assert not missing, f"settings missing from docs/configuration.md: {missing}"
    assert not unknown, f"docs/configuration.md names settings that do not exist: {unknown}"
    assert len(documented) == len(set(documented)), "a setting is documented twice"


def test_environment_variable_names_follow_the_prefix() -> None:
    prefix = Settings.model_config.get("env_prefix")
    assert prefix == "SPARKPLANE_"
    wrong = [(r.key, r.env) for r in settings_rows() if r.env != f"{prefix}{r.key.upper()}"]
    assert not wrong, f"wrong environment variable names: {wrong}"


def test_documented_defaults_match_the_code() -> None:
    wrong: list[str] = []
    for row in settings_rows():
        field = Settings.model_fields.get(row.key)
        if field is None:
            continue
        default = field.get_default(call_default_factory=True)
        if default is None:
            if not row.default.startswith("none"):
                wrong.append(f"{row.key}: doc says {row.default!r}, code default is unset (none)")
            continue
        shown = CODE.findall(row.default)
        if shown[:1] != [toml_literal(default)]:
            wrong.append(
                f"{row.key}: doc says {row.default!r}, code says `{toml_literal(default)}`"
            )
    assert not wrong, "\n".join(wrong)


def test_every_setting_has_a_description() -> None:
    bare = [r.key for r in settings_rows() if len(r.description) < 10 or not r.type]
    assert not bare, f"settings documented without type or description: {bare}"


def test_example_toml_is_valid_and_shows_aliases(tmp_path: Path) -> None:
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```toml\n(.*?)```", text, flags=re.DOTALL)
    assert blocks, "docs/configuration.md has no TOML example"
    example = tmp_path / "sparkplane.toml"
    example.write_text(blocks[0], encoding="utf-8")
    settings = load_settings(example)
    assert settings.aliases, "the example should show [aliases]"
    assert all(isinstance(v, list) and v for v in settings.aliases.values())


# -- docs/cli.md ----------------------------------------------------------------


def commands() -> dict[str, Any]:
    """Every visible command and group by its full name, e.g. 'sparkplane devices add'."""
    found: dict[str, Any] = {}

    def walk(command: Any, path: str) -> None:
        if getattr(command, "hidden", False):
            return
        found[path] = command
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{path} {name}")

    walk(typer.main.get_command(sparkplane.cli.app), "sparkplane")
    return found


COMMANDS = commands()


def expected_names(command: Any) -> set[str]:
    """What `--help` lists for a command: option spellings and argument names."""
    names: set[str] = set()
    for param in command.params:
        if getattr(param, "hidden", False):
            continue
        if param.param_type_name == "argument":
            names.add(param.name.upper())
        else:
            names.update(param.opts)
            names.update(param.secondary_opts)
    names.discard("--help")
    return names


def cli_sections() -> dict[str, list[str]]:
    """docs/cli.md split at headings; keys are the command a heading names."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in (DOCS / "cli.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            match = HEADING.match(line)
            current = sections.setdefault(match.group(1), []) if match else None
        elif current is not None:
            current.append(line)
    return sections


def documented_names(lines: list[str]) -> set[str]:
    """The option and argument names in the first column of a section's tables."""
    names: set[str] = set()
    for line in lines:
        if is_row(line) and not is_separator(line):
            first = cells(line)[0]
            names.update(span.split()[0] for span in CODE.findall(first))
    return names


@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_command_is_documented_with_its_options(path: str) -> None:
    sections = cli_sections()
    assert path in sections, (
        f"docs/cli.md has no section for `{path}`: add a heading like '### `{path}`' "
        "saying what it does, with a table of its options and arguments"
    )
    expected = expected_names(COMMANDS[path])
    documented = documented_names(sections[path])
    missing = sorted(expected - documented)
    stale = sorted(documented - expected)
    assert not missing, f"`{path}`: options not in docs/cli.md: {missing}"
    assert not stale, f"`{path}`: docs/cli.md lists options the command does not have: {stale}"
    assert any(line.strip() and not is_row(line) for line in sections[path]), (
        f"`{path}`: say what the command does"
    )


def test_cli_doc_names_no_command_that_does_not_exist() -> None:
    stale = sorted(set(cli_sections()) - set(COMMANDS))
    assert not stale, f"docs/cli.md documents commands that do not exist: {stale}"


def test_command_tree_is_found() -> None:
    # Guards the walk itself: if it found nothing, the tests above would prove nothing.
    assert {"sparkplane", "sparkplane serve", "sparkplane devices add"} <= set(COMMANDS)
    assert "--config" in expected_names(COMMANDS["sparkplane devices add"])
    assert "URL" in expected_names(COMMANDS["sparkplane devices add"])
