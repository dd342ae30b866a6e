"""Stage 6, register: an approval's build spec, the build, and the registry rows and audit
record that make the extract visible (or withdraw it)."""
from __future__ import annotations

import hashlib
import os
from typing import Any

from enclave.airlock.faults import crash_point
from enclave.conditions import ProjectConditions
from enclave.extract.spec import MANIFEST, BuildResult, Cohort, ExtractSpec, ProvisioningError
from enclave.extract.write import build_extract, list_versions, withdraw_current


def cohort_from_approval(raw: dict[str, Any] | None) -> Cohort:
    """The approval's cohort JSON (the board's ``Cohort``) as provisioning's ``Cohort``.

    An unknown key refuses the build: a cohort condition provisioning does not understand must
    never be silently ignored.
    """
    try:
        return Cohort(**{k: v for k, v in (raw or {}).items() if v is not None})
    except Exception as exc:  # pydantic ValidationError: it names the key
        raise ProvisioningError(f"approval cohort cannot be applied: {exc}") from None


def spec_for_approval(project_slug: str, approval: Any) -> ExtractSpec:
    """The build spec of a registry ``Approval`` row: only its sources, variables, cohort and k."""
    variables = {s: list((approval.variables or {}).get(s, [])) for s in (approval.sources or [])}
    extra = set(approval.variables or {}) - set(approval.sources or [])
    if extra:
        raise ProvisioningError(f"approval {approval.id} lists variables for unapproved sources {sorted(extra)}")
    return ExtractSpec(
        project=project_slug,
        approval_id=str(approval.id),
        variables=variables,
        cohort=cohort_from_approval(approval.cohort),
        k=int(approval.k),
        dp_epsilon=float(approval.dp_epsilon) if approval.dp_epsilon is not None else None,
        conditions=_conditions(approval),
    )


def _conditions(approval: Any) -> ProjectConditions:
    """The approval's conditions; settings provisioning cannot read refuse the build (never ignored)."""
    from enclave.conditions import conditions_of

    from pydantic import ValidationError

    try:
        return conditions_of(approval)
    except ValidationError as exc:
        named = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ProvisioningError(f"approval {approval.id} settings cannot be applied: {named}") from None


def _version_number(label: str) -> int:
    return int(label[1:])


def provision(project_slug: str, *, actor: str | None = None, url: str | None = None) -> BuildResult:
    """Build the extract of an approved project from its current approval and register it.

    Idempotent; a crash at any point is recovered by running it again (see the module doc).
    """
    from sqlalchemy import select

    from enclave import audit
    from enclave.board.states import ProjectState
    from enclave.registry.base import ensure_schema, session_scope
    from enclave.registry.models import Extract, ExtractFile, Person, Project
    from enclave.settings import get_settings

    settings = get_settings()
    url = ensure_schema(url)
    with session_scope(url, readonly=True) as session:
        project = session.scalars(select(Project).where(Project.slug == project_slug)).first()
        if project is None:
            raise ProvisioningError(f"no project named {project_slug!r}")
        if project.state != ProjectState.approved:
            raise ProvisioningError(f"project {project_slug} is {project.state}: extracts are built for approved projects only")
        approval = project.current_approval
        if approval is None:
            raise ProvisioningError(f"project {project_slug} has no current approval")
        spec = spec_for_approval(project_slug, approval)
        approval_id = approval.id

    result = build_extract(spec, settings.research, settings.vault / "keys", settings.extracts)
    crash_point("extract.before_register")

    with session_scope(url) as session:
        project = session.scalars(select(Project).where(Project.slug == project_slug)).one()
        if project.state != ProjectState.approved or project.current_approval_id != approval_id:
            # The board acted while we built: the new version must not become visible.
            raise ProvisioningError(f"project {project_slug} changed state or approval during the build; run again")
        number = _version_number(result.version)
        row = session.scalars(select(Extract).where(Extract.project_id == project.id, Extract.version == number)).first()
        if row is None:
            builder = session.scalars(select(Person).where(Person.username == actor)).first() if actor else None
            manifest_text = (result.path / MANIFEST).read_bytes()
            row = Extract(
                project_id=project.id,
                approval_id=approval_id,
                version=number,
                path=f"{project_slug}/{result.version}",
                state="ready",
                manifest=result.manifest,
                manifest_sha256=hashlib.sha256(manifest_text).hexdigest(),
                k_reached=result.manifest.get("k_reached"),
                rows=sum(int(t["rows"]) for t in result.manifest["tables"].values()),
                built_by_id=builder.id if builder else None,
            )
            for table, meta in sorted(result.manifest["tables"].items()):
                row.files.append(
                    ExtractFile(name=meta["file"], sha256=meta["sha256"],
                                size=(result.path / meta["file"]).stat().st_size, rows=int(meta["rows"]))
                )
            session.add(row)
            result.adopted = not result.created
            audit.append(
                session,
                actor=actor or "system",
                action="extract.adopted" if result.adopted else "extract.built",
                project=project_slug,
                subject=f"extract:{project_slug}/{result.version}",
                details={
                    "approval_id": approval_id,
                    "k_required": spec.k,
                    "k_reached": result.manifest.get("k_reached"),
                    "tables": {t: m["rows"] for t, m in result.manifest["tables"].items()},
                    "manifest_sha256": row.manifest_sha256,
                },
            )
        elif row.state != "ready":
            raise ProvisioningError(f"extract {project_slug}/{result.version} was withdrawn; it cannot be reused")
    return result


def withdraw(project_slug: str, *, actor: str, reason: str, url: str | None = None) -> int:
    """End access to every extract of a project at once (revocation): registry rows withdrawn,
    the ``current`` link removed, the version folders closed to everyone. Returns how many were withdrawn."""
    from sqlalchemy import select

    from enclave import audit
    from enclave.registry.base import ensure_schema, session_scope
    from enclave.registry.models import Extract, Project
    from enclave.settings import get_settings

    settings = get_settings()
    url = ensure_schema(url)
    with session_scope(url) as session:
        project = session.scalars(select(Project).where(Project.slug == project_slug)).first()
        if project is None:
            raise ProvisioningError(f"no project named {project_slug!r}")
        rows = session.scalars(select(Extract).where(Extract.project_id == project.id, Extract.state == "ready")).all()
        for row in rows:
            row.state = "withdrawn"
        withdraw_current(settings.extracts, project_slug)
        for version in list_versions(settings.extracts / project_slug):
            os.chmod(settings.extracts / project_slug / version, 0o000)
        audit.append(session, actor=actor, action="extract.withdrawn", project=project_slug,
                     subject=f"project:{project_slug}", details={"versions": [r.version for r in rows], "reason": reason})
        return len(rows)
