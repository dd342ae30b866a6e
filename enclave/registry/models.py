"""Every table of the registry: people, governance, extracts, entitlements, releases, budgets, audit.

States are stored as short strings whose allowed values and transitions live in
``enclave.board.states`` (data, not database enums, so adding a state needs no migration).
Times are stored in UTC.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from enclave.registry.base import Base

UID_BASE = 20000  # per-person POSIX uid = UID_BASE + allocation order
GID_BASE = 30000  # per-project POSIX gid = GID_BASE + allocation order


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC datetime on every backend (SQLite drops the zone otherwise)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect):  # noqa: ANN001, ANN201
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the registry; use UTC-aware times")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(self, value: dt.datetime | None, dialect):  # noqa: ANN001, ANN201
        return None if value is None else value.replace(tzinfo=dt.UTC)


# ---------------------------------------------------------------- people, agencies, sources
class Person(Base):
    __tablename__ = "people"
    __table_args__ = {"sqlite_autoincrement": True}  # ids are never reused

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(200))
    posix_uid: Mapped[int] = mapped_column(Integer, unique=True)
    # The operating-system account that acts as this person in the CLI (None: no shell access).
    os_account: Mapped[str | None] = mapped_column(String(64), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    roles: Mapped[list[PersonRole]] = relationship(back_populates="person", cascade="all, delete-orphan")

    @property
    def role_names(self) -> set[str]:
        return {r.role for r in self.roles}


class PersonRole(Base):
    __tablename__ = "person_roles"

    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(32), primary_key=True)
    granted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    person: Mapped[Person] = relationship(back_populates="roles")


class Agency(Base):
    __tablename__ = "agencies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    title: Mapped[str] = mapped_column(String(200), default="")
    # An agency may ask that its steward also approves any output that uses its data.
    steward_release_approval: Mapped[bool] = mapped_column(Boolean, default=False)


class Source(Base):
    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    domain: Mapped[str] = mapped_column(String(64), default="")
    description: Mapped[str] = mapped_column(Text, default="")

    agency: Mapped[Agency] = relationship()
    stewards: Mapped[list[SourceSteward]] = relationship(cascade="all, delete-orphan")


class SourceSteward(Base):
    __tablename__ = "source_stewards"

    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id"), primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), primary_key=True)

    person: Mapped[Person] = relationship()


# ---------------------------------------------------------------- projects and the board
class Project(Base):
    __tablename__ = "projects"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)  # the name in paths and server names
    title: Mapped[str] = mapped_column(String(200))
    lead_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    state: Mapped[str] = mapped_column(String(32), index=True)
    posix_gid: Mapped[int] = mapped_column(Integer, unique=True)
    # Points at approvals.id without a FOREIGN KEY constraint: projects and approvals reference each
    # other, and a cyclic constraint needs ALTER TABLE, which SQLite lacks (Alembic rendered it inline
    # for SQLite and left it out on PostgreSQL, so the schemas differed). Only ``decide`` sets it.
    current_approval_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    state_changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    lead: Mapped[Person] = relationship(foreign_keys=[lead_id])
    memberships: Mapped[list[Membership]] = relationship(back_populates="project")
    current_approval: Mapped[Approval | None] = relationship(
        primaryjoin="foreign(Project.current_approval_id) == Approval.id", post_update=True)


class Membership(Base):
    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("project_id", "person_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    role: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(32))
    # The approval that admitted this member (None while pending).
    approval_id: Mapped[int | None] = mapped_column(ForeignKey("approvals.id"))
    added_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    project: Mapped[Project] = relationship(back_populates="memberships")
    person: Mapped[Person] = relationship()


class Application(Base):
    __tablename__ = "applications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(32), index=True)
    submitted_by_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    previous_id: Mapped[int | None] = mapped_column(ForeignKey("applications.id"))  # resubmission of
    purpose: Mapped[str] = mapped_column(Text)
    use_case: Mapped[str] = mapped_column(String(200))
    sources: Mapped[list[str]] = mapped_column(JSON)
    variables: Mapped[dict[str, list[str]]] = mapped_column(JSON)  # source -> variables
    cohort: Mapped[dict[str, Any]] = mapped_column(JSON)
    k: Mapped[int] = mapped_column(Integer)
    dp_epsilon: Mapped[float] = mapped_column(Float)
    start_date: Mapped[dt.date] = mapped_column(Date)
    end_date: Mapped[dt.date] = mapped_column(Date)
    researchers: Mapped[list[str]] = mapped_column(JSON)  # usernames, the lead included
    # Further conditions as data: attacker model, workspace limits, ingress (see enclave.conditions).
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    decision_note: Mapped[str] = mapped_column(Text, default="")
    submitted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    project: Mapped[Project] = relationship()
    submitted_by: Mapped[Person] = relationship(foreign_keys=[submitted_by_id])
    votes: Mapped[list[Vote]] = relationship(back_populates="application")


class Vote(Base):
    __tablename__ = "votes"
    # One vote per member per application, enforced by the database as well as the service.
    __table_args__ = (UniqueConstraint("application_id", "voter_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), index=True)
    voter_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    choice: Mapped[str] = mapped_column(String(16))
    comment: Mapped[str] = mapped_column(Text, default="")
    cast_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    application: Mapped[Application] = relationship(back_populates="votes")
    voter: Mapped[Person] = relationship()


class ConflictOfInterest(Base):
    __tablename__ = "conflicts_of_interest"
    __table_args__ = (UniqueConstraint("project_id", "person_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    reason: Mapped[str] = mapped_column(Text)
    declared_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    person: Mapped[Person] = relationship()


class Approval(Base):
    """An approval with its conditions; the project's current one is ``Project.current_approval``."""

    __tablename__ = "approvals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), unique=True)
    decided_by_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    sources: Mapped[list[str]] = mapped_column(JSON)
    variables: Mapped[dict[str, list[str]]] = mapped_column(JSON)
    cohort: Mapped[dict[str, Any]] = mapped_column(JSON)
    k: Mapped[int] = mapped_column(Integer)
    dp_epsilon: Mapped[float] = mapped_column(Float)
    expires_on: Mapped[dt.date] = mapped_column(Date)
    researchers: Mapped[list[str]] = mapped_column(JSON)
    # Further conditions as data: attacker model, workspace limits, ingress (see enclave.conditions).
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    notes: Mapped[str] = mapped_column(Text, default="")
    approved_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    application: Mapped[Application] = relationship()


# ---------------------------------------------------------------- extracts and workspaces
class Extract(Base):
    """One built extract version, on disk at ``<extracts zone>/<path>`` (normally ``<project>/<version>``)."""

    __tablename__ = "extracts"
    __table_args__ = (UniqueConstraint("project_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    approval_id: Mapped[int] = mapped_column(ForeignKey("approvals.id"))
    version: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(String(500))  # relative to the extracts zone
    state: Mapped[str] = mapped_column(String(32), default="ready")  # building | ready | withdrawn
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    manifest_sha256: Mapped[str] = mapped_column(String(64), default="")
    k_reached: Mapped[int | None] = mapped_column(Integer)
    rows: Mapped[int | None] = mapped_column(Integer)
    built_by_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    built_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    files: Mapped[list[ExtractFile]] = relationship(back_populates="extract", cascade="all, delete-orphan")


class ExtractFile(Base):
    __tablename__ = "extract_files"
    __table_args__ = (UniqueConstraint("extract_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    extract_id: Mapped[int] = mapped_column(ForeignKey("extracts.id"), index=True)
    name: Mapped[str] = mapped_column(String(300))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    rows: Mapped[int | None] = mapped_column(Integer)

    extract: Mapped[Extract] = relationship(back_populates="files")


class WorkspaceEntitlement(Base):
    """A member's right to a workspace for a project, granted at approval and ended by suspension,
    revocation, expiry or removal. ``enclave.entitlements`` re-checks the live state on every start."""

    __tablename__ = "workspace_entitlements"
    __table_args__ = (UniqueConstraint("project_id", "person_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    granted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    ended_reason: Mapped[str] = mapped_column(String(200), default="")


# ---------------------------------------------------------------- release pipeline (airlock)
class ReleaseRequest(Base):
    __tablename__ = "release_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    state: Mapped[str] = mapped_column(String(32), index=True)
    title: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    submitted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    state_changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    files: Mapped[list[ReleaseFile]] = relationship(back_populates="request", cascade="all, delete-orphan")
    reviews: Mapped[list[Review]] = relationship(back_populates="request")


class ReleaseFile(Base):
    __tablename__ = "release_files"
    __table_args__ = (UniqueConstraint("request_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("release_requests.id"), index=True)
    name: Mapped[str] = mapped_column(String(300))  # relative to the outputs folder
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    context: Mapped[str] = mapped_column(Text, default="")
    exception_text: Mapped[str] = mapped_column(Text, default="")

    request: Mapped[ReleaseRequest] = relationship(back_populates="files")
    verdicts: Mapped[list[Verdict]] = relationship(back_populates="file")


class Verdict(Base):
    """The gate's automated verdict on one file (per-cell reasons in ``details``)."""

    __tablename__ = "verdicts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("release_files.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))  # pass | fail | review
    reasons: Mapped[list[Any]] = mapped_column(JSON, default=list)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    checked_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    file: Mapped[ReleaseFile] = relationship(back_populates="verdicts")


class Review(Base):
    __tablename__ = "reviews"
    __table_args__ = (UniqueConstraint("request_id", "reviewer_id", "round"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("release_requests.id"), index=True)
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    round: Mapped[int] = mapped_column(Integer, default=1)  # a returned request starts a new round
    decision: Mapped[str] = mapped_column(String(16))  # approve | reject | return
    comments: Mapped[str] = mapped_column(Text, default="")
    # Per-file decisions and overrides: file name -> {"decision": ..., "override": bool, "comment": ...}
    file_decisions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    reviewed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    request: Mapped[ReleaseRequest] = relationship(back_populates="reviews")
    reviewer: Mapped[Person] = relationship()


class Release(Base):
    __tablename__ = "releases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("release_requests.id"), unique=True)
    path: Mapped[str] = mapped_column(String(500))  # relative to the releases zone
    checksums: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)  # file name -> sha256
    released_by_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    released_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class DPBudget(Base):
    """A project's differential-privacy budget: the total is set by the board's approval."""

    __tablename__ = "dp_budgets"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), primary_key=True)
    epsilon_total: Mapped[float] = mapped_column(Float)
    epsilon_spent: Mapped[float] = mapped_column(Float, default=0.0)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class DPSpend(Base):
    __tablename__ = "dp_spends"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    epsilon: Mapped[float] = mapped_column(Float)
    release_request_id: Mapped[int | None] = mapped_column(ForeignKey("release_requests.id"))
    description: Mapped[str] = mapped_column(Text, default="")
    spent_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


# ---------------------------------------------------------------- audit chain
class AuditEvent(Base):
    """One link of the hash chain (see ``enclave.audit``). Rows are never updated or deleted."""

    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    # Stored as the exact ISO text that was hashed, so verification needs no time parsing.
    at: Mapped[str] = mapped_column(String(32), index=True)
    actor: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    project: Mapped[str | None] = mapped_column(String(64), index=True)
    subject: Mapped[str | None] = mapped_column(String(200))
    details: Mapped[str] = mapped_column(Text)  # canonical JSON
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditHead(Base):
    """The chain's last sequence number and hash: one row, locked by each append, so a
    deleted tail event is detected and concurrent appends on PostgreSQL serialise."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))


# --- release airlock (D2) ---
# Engineer D2 adds release-side tables and columns below this line.


class ReleaseSnapshot(Base):
    """The immutable copy of a request's files taken at one submission (``airlock/<request>/r<round>``),
    with the checksum of every file copied, evidence files included."""

    __tablename__ = "release_snapshots"
    __table_args__ = (UniqueConstraint("request_id", "round"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("release_requests.id"), index=True)
    round: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(String(500))  # relative to the airlock zone
    checksums: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)  # file name -> sha256
    extract_version: Mapped[int | None] = mapped_column(Integer)  # the extract the gate recomputed from
    taken_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class StewardApproval(Base):
    """An agency steward's decision on the outputs of a request that use the agency's data."""

    __tablename__ = "steward_approvals"
    __table_args__ = (UniqueConstraint("request_id", "round", "agency_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("release_requests.id"), index=True)
    round: Mapped[int] = mapped_column(Integer)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"))
    steward_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    decision: Mapped[str] = mapped_column(String(16))  # approve | reject
    comments: Mapped[str] = mapped_column(Text, default="")
    decided_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
