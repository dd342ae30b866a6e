"""Rewrites environment.yml from pyproject.toml so the two carry the same pins (`python -m enclave._sync_environment`)."""
from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADER = [
    "# Conda environment for the enclave. Same pins as pyproject.toml: regenerate with",
    "# `python -m enclave._sync_environment`; tests/foundation/test_packaging.py compares the two.",
    "name: ids-enclave",
    "channels:",
    "  - conda-forge",
    "dependencies:",
    "  - python=3.11",
    "  - pip",
    "  - nodejs=20",
    "  - openjdk=17",
    "  - libseccomp",
    "  - pip:",
]


def render() -> str:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        reqs.extend(extra)
    return "\n".join(HEADER + [f'      - "{r}"' for r in reqs] + ['      - "-e ."']) + "\n"


if __name__ == "__main__":
    (ROOT / "environment.yml").write_text(render())
