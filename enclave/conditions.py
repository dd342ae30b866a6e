"""A project's further conditions, as data: what the board sets beyond sources, variables,
cohort, k and epsilon. Stored as JSON in ``Application.settings`` and ``Approval.settings``;
every reader goes through :func:`conditions_of` so missing keys take the documented defaults
and an unknown key is refused rather than ignored.
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class AttackerModel(BaseModel):
    """What the board assumes an attacker already knows about a person in the extract."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    events_known: int = Field(1, ge=0, le=5, description="events per person an attacker may know")
    family_edges_known: bool = Field(True, description="whether relationship edges (mother_of...) are known")


class WorkspaceLimits(BaseModel):
    """Limits enforced outside the sandbox on the project's workspaces."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    contents_read_cap_bytes: int = Field(5 * 1024 * 1024, gt=0, description="largest file readable through the browser")
    max_kernel_run_seconds: int = Field(8 * 3600, gt=0, description="a busy kernel counts as activity up to this long")
    ingress_allowed: bool = Field(False, description="uploads into the workspace allowed (each one audited with sha256)")
    ingress_max_bytes: int = Field(1024 * 1024, gt=0, description="largest upload when ingress is allowed")


class ProjectConditions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    attacker_model: AttackerModel = AttackerModel()
    workspace: WorkspaceLimits = WorkspaceLimits()


def conditions_of(holder: Any) -> ProjectConditions:
    """The conditions of an Approval or Application (or a plain dict), defaults filled in."""
    raw = holder if isinstance(holder, dict) else (getattr(holder, "settings", None) or {})
    return ProjectConditions.model_validate(raw)
