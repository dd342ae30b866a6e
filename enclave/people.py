"""People, roles, agencies and sources in the registry, and the demo accounts.

Every change is audited. POSIX uids are allocated here once per person and never reused:
a workspace file owned by a uid always belongs to the same person.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from enclave import audit
from enclave.board import permissions as who
from enclave.board.errors import InvalidInput, NotAllowed, NotFound
from enclave.board.states import Role
from enclave.registry.models import UID_BASE, Agency, AuditEvent, Person, PersonRole, Source, SourceSteward

USERNAME_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")  # also a valid unix user name
# An operating-system account name as shadow-utils accepts it (the column holds 64 characters).
OS_ACCOUNT_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}\$?$")
REGISTRY_MODE_ACTION = "registry.mode_set"
REGISTRY_MODES = ("production", "demo", "test")


def get_person(session: Session, username: str | None) -> Person:
    """The registry person called ``username``; ``NotFound`` otherwise."""
    if not username:
        raise NotFound("no caller identity")
    person = session.scalars(select(Person).where(Person.username == username)).first()
    if person is None:
        raise NotFound(f"no person {username!r} in the registry")
    return person


def _parse_roles(roles: Iterable[str]) -> list[Role]:
    parsed = []
    for role in roles:
        try:
            parsed.append(Role(role))
        except ValueError:
            raise InvalidInput(f"unknown role {role!r}; roles are {', '.join(r.value for r in Role)}") from None
    return parsed


def _create_person(session: Session, username: str, name: str, roles: Iterable[str], email: str | None) -> Person:
    if not USERNAME_PATTERN.match(username):
        raise InvalidInput(f"username {username!r} must match {USERNAME_PATTERN.pattern}")
    parsed = _parse_roles(roles)
    if session.scalars(select(Person.id).where(Person.username == username)).first() is not None:
        raise NotAllowed(f"person {username} already exists")
    # The writer holds the registry's write lock (BEGIN IMMEDIATE), so max + 1 cannot race.
    last_uid = session.scalar(select(func.max(Person.posix_uid)))
    person = Person(username=username, name=name, email=email, posix_uid=(last_uid or UID_BASE) + 1, active=True)
    person.roles = [PersonRole(role=r.value) for r in parsed]
    session.add(person)
    session.flush()
    return person


def bootstrap_admin(session: Session, username: str, name: str) -> Person:
    """Create the first admin of an empty registry; refused once any admin exists."""
    exists = session.scalars(select(PersonRole).where(PersonRole.role == Role.admin.value)).first()
    if exists is not None:
        raise NotAllowed("the registry already has an admin; ask them to add people")
    person = _create_person(session, username, name, [Role.admin.value], None)
    audit.append(session, actor=username, action="person.bootstrapped", subject=f"user:{username}", details={"roles": ["admin"]})
    return person


def add_person(session: Session, actor: str, username: str, name: str, roles: Iterable[str], email: str | None = None) -> Person:
    """An admin adds a person with roles."""
    who.check_can_manage_people(get_person(session, actor))
    person = _create_person(session, username, name, roles, email)
    audit.append(session, actor=actor, action="person.added", subject=f"user:{username}",
                 details={"roles": sorted(person.role_names), "uid": person.posix_uid})
    return person


def grant_role(session: Session, actor: str, username: str, role: str) -> None:
    """An admin grants a role (granting one already held changes nothing)."""
    who.check_can_manage_people(get_person(session, actor))
    person = get_person(session, username)
    (parsed,) = _parse_roles([role])
    if parsed.value in person.role_names:
        return
    person.roles.append(PersonRole(role=parsed.value))
    audit.append(session, actor=actor, action="role.granted", subject=f"user:{username}", details={"role": parsed.value})


def revoke_role(session: Session, actor: str, username: str, role: str) -> None:
    """An admin removes a role; an admin cannot remove their own admin role (no lock-out)."""
    who.check_can_manage_people(get_person(session, actor))
    person = get_person(session, username)
    (parsed,) = _parse_roles([role])
    if actor == username and parsed == Role.admin:
        raise NotAllowed("an admin cannot remove their own admin role")
    kept = [r for r in person.roles if r.role != parsed.value]
    if len(kept) == len(person.roles):
        raise NotAllowed(f"{username} does not hold the role {parsed.value}")
    person.roles = kept
    audit.append(session, actor=actor, action="role.revoked", subject=f"user:{username}", details={"role": parsed.value})


def set_active(session: Session, actor: str, username: str, active: bool) -> None:
    """An admin disables or re-enables an account (people are never deleted: uids stay theirs)."""
    who.check_can_manage_people(get_person(session, actor))
    if actor == username and not active:
        raise NotAllowed("an admin cannot disable their own account")
    person = get_person(session, username)
    person.active = active
    audit.append(session, actor=actor, action="person.enabled" if active else "person.disabled", subject=f"user:{username}")


def person_for_os_account(session: Session, os_account: str) -> Person | None:
    """The registry person an operating-system account is linked to, or None (root included: nobody unless linked)."""
    return session.scalars(select(Person).where(Person.os_account == os_account)).first()


def link_account(session: Session, actor: str, username: str, os_account: str) -> None:
    """An admin links an operating-system account to a person: the CLI run by that account acts as them."""
    who.check_can_manage_people(get_person(session, actor))
    if not OS_ACCOUNT_PATTERN.match(os_account):
        raise InvalidInput(f"operating-system account {os_account!r} must match {OS_ACCOUNT_PATTERN.pattern}")
    person = get_person(session, username)
    holder = person_for_os_account(session, os_account)
    if holder is not None and holder.id != person.id:
        raise NotAllowed(f"operating-system account {os_account} is already linked to {holder.username}; unlink it first")
    previous = person.os_account
    person.os_account = os_account
    audit.append(session, actor=actor, action="person.account_linked", subject=f"user:{username}",
                 details={"os_account": os_account, "previous": previous})


def unlink_account(session: Session, actor: str, username: str) -> None:
    """An admin removes a person's operating-system account: the CLI no longer acts as them from any account."""
    who.check_can_manage_people(get_person(session, actor))
    person = get_person(session, username)
    if person.os_account is None:
        raise NotAllowed(f"{username} has no operating-system account linked")
    previous, person.os_account = person.os_account, None
    audit.append(session, actor=actor, action="person.account_unlinked", subject=f"user:{username}",
                 details={"os_account": previous})


def registry_mode(session: Session) -> str:
    """The mode this registry was marked with (demo or test registries only); production unless marked."""
    details = session.scalar(select(AuditEvent.details).where(AuditEvent.action == REGISTRY_MODE_ACTION)
                             .order_by(AuditEvent.seq.desc()).limit(1))
    if details is None:
        return "production"
    import json

    mode = json.loads(details).get("mode")
    return mode if mode in REGISTRY_MODES else "production"


def mark_registry_mode(session: Session, actor: str, mode: str) -> None:
    """Mark a registry as a demo or test one (audited): only such a registry accepts ENCLAVE_USER."""
    if mode not in REGISTRY_MODES:
        raise InvalidInput(f"mode must be one of {', '.join(REGISTRY_MODES)}")
    if registry_mode(session) != mode:
        audit.append(session, actor=actor, action=REGISTRY_MODE_ACTION, subject="registry", details={"mode": mode})


def set_steward_release_approval(session: Session, actor: str, agency: str, required: bool) -> None:
    """An admin or a steward of the agency turns the agency's approval of releases using its data on or off."""
    agency_row = session.scalars(select(Agency).where(Agency.name == agency)).first()
    if agency_row is None:
        raise NotFound(f"no agency {agency!r} in the registry")
    person = get_person(session, actor)
    stewarded = session.scalars(select(SourceSteward.source_id).join(Source, Source.id == SourceSteward.source_id).where(
        Source.agency_id == agency_row.id, SourceSteward.person_id == person.id)).first() is not None
    who.check_can_set_agency_policy(person, agency, stewarded)
    if agency_row.steward_release_approval == required:
        return
    agency_row.steward_release_approval = required
    audit.append(session, actor=actor, action="agency.steward_approval_" + ("on" if required else "off"),
                 subject=f"agency:{agency}", details={"steward_release_approval": required})


def register_source(session: Session, actor: str, name: str, agency: str, *, domain: str = "", description: str = "",
                    stewards: Iterable[str] = ()) -> Source:
    """An admin registers (or updates) a source with its agency and stewards."""
    who.check_can_manage_people(get_person(session, actor))
    agency_row = session.scalars(select(Agency).where(Agency.name == agency)).first()
    if agency_row is None:
        agency_row = Agency(name=agency, title=agency)
        session.add(agency_row)
        session.flush()
    source = session.scalars(select(Source).where(Source.name == name)).first()
    if source is None:
        source = Source(name=name, agency_id=agency_row.id, domain=domain, description=description)
        session.add(source)
    else:
        source.agency_id, source.domain, source.description = agency_row.id, domain, description
    session.flush()
    steward_rows = []
    for username in stewards:
        steward = get_person(session, username)
        if not who.has_role(steward, Role.steward):
            raise NotAllowed(f"{username} is not a steward")
        steward_rows.append(SourceSteward(source_id=source.id, person_id=steward.id))
    source.stewards = steward_rows
    audit.append(session, actor=actor, action="source.registered", subject=f"source:{name}",
                 details={"agency": agency, "stewards": sorted(stewards)})
    return source


def register_sources_from_definitions(session: Session, actor: str, directory: Path, stewards: dict[str, str] | None = None) -> list[str]:
    """Register every source described by a YAML source definition in ``directory``.

    ``stewards`` maps a definition's steward name to a registry username (a definition's
    steward field is an agency role name, not necessarily an account).
    """
    names = []
    for path in sorted(directory.glob("*.yaml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (UnicodeDecodeError, yaml.YAMLError) as error:
            raise InvalidInput(f"{path}: not a readable UTF-8 YAML source definition ({type(error).__name__})") from None
        if not isinstance(data, dict):
            raise InvalidInput(f"{path}: a source definition is a mapping of fields")
        for field in ("name", "agency"):
            if not data.get(field):
                raise InvalidInput(f"{path}: field {field!r} is missing")
        steward = (stewards or {}).get(data.get("steward", ""))
        register_source(session, actor, data["name"], data["agency"], domain=data.get("domain", ""),
                        description=data.get("description", ""), stewards=[steward] if steward else [])
        names.append(data["name"])
    return names


# The demo cast: one line per account, usernames say the role.
DEMO_PEOPLE: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("admin", "Ada Admin", ("admin",)),
    ("board1", "Bea Board", ("board_member",)),
    ("board2", "Ben Board", ("board_member",)),
    ("board3", "Bo Board", ("board_member",)),
    ("board4", "Bri Board", ("board_member",)),
    ("alice", "Alice Researcher", ("researcher",)),
    ("bob", "Bob Researcher", ("researcher",)),
    ("carol", "Carol Researcher", ("researcher",)),
    ("rev1", "Rae Reviewer", ("reviewer",)),
    ("rev2", "Rex Reviewer", ("reviewer",)),
    ("steward1", "Stu Steward", ("steward",)),
    ("linker", "Lin Operator", ("linkage_operator",)),
)


def seed_demo_people(session: Session) -> list[str]:
    """Create the demo accounts that do not exist yet (idempotent); returns the usernames created."""
    created = []
    if session.scalars(select(PersonRole).where(PersonRole.role == Role.admin.value)).first() is None:
        bootstrap_admin(session, DEMO_PEOPLE[0][0], DEMO_PEOPLE[0][1])
        created.append(DEMO_PEOPLE[0][0])
    admin = session.scalars(select(Person).join(PersonRole).where(PersonRole.role == Role.admin.value)).first()
    for username, name, roles in DEMO_PEOPLE:
        if session.scalars(select(Person.id).where(Person.username == username)).first() is None:
            add_person(session, admin.username, username, name, roles)
            created.append(username)
    mark_registry_mode(session, admin.username, "demo")
    return created
