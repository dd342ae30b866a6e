"""Packaging invariants: pins agree, the console command and every subcommand answer --help."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import click
import pytest
import yaml
from typer.main import get_command

ROOT = Path(__file__).resolve().parents[2]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        reqs.extend(extra)
    return {_name(r): r.replace(" ", "") for r in reqs}


def _environment_requirements() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return {_name(r): r.replace(" ", "") for r in pip_section if not r.startswith("-e")}


def test_environment_yml_carries_the_same_pins_as_pyproject():
    assert _environment_requirements() == _pyproject_requirements()


def test_field_notes_pins_hold():
    pins = _pyproject_requirements()
    assert pins["pandas"] == "pandas==2.3.3"
    assert pins["numpy"] == "numpy==2.0.2"
    assert pins["splink"].startswith("splink==5.0")
    assert pins["jupyterhub"] == "jupyterhub==6.1.1"
    assert pins["scikit-learn"] in {"scikit-learn==1.7.2", "scikit-learn<1.8"}


def test_installed_versions_match_the_pins():
    from importlib.metadata import version

    for name, req in _pyproject_requirements().items():
        if "==" in req:
            assert version(name) == req.split("==", 1)[1], name


def _walk(command: click.Command, path: tuple[str, ...] = ()):
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _walk(sub, path + (name,))


def test_every_command_has_help():
    from typer.testing import CliRunner

    from enclave.cli import app

    runner = CliRunner()
    root = get_command(app)
    paths = [p for p, _ in _walk(root)]
    assert len(paths) > 1
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage" in result.output


@pytest.mark.parametrize("group", ["data", "link", "board", "project", "release", "review", "audit"])
def test_role_groups_exist(group):
    from enclave.cli import app

    assert group in get_command(app).commands
