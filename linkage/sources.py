"""Source definitions: what each agency file holds, as data (one YAML per source).

A definition maps the agency's own column names onto the standard identifier fields
(``first_name, middle_name, last_name, dob, sex, ssn, street, zip``) for the main subject
and for related roles (mother and father on a birth record), and declares every content
column with its type. Ingest validates rows against it; the synthetic generator writes
files that follow it.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

# Domains are data: the shipped list is linkage/data/domains.yaml; a site adds its own in a
# ``domains.yaml`` (name -> description) beside its definitions, read by ``load_definition``.
DOMAINS_FILE = Path(__file__).parent / "data" / "domains.yaml"
LOCAL_DOMAINS_FILE = "domains.yaml"


def _read_domains(path: Path) -> dict[str, str]:
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(raw, dict) or not all(isinstance(k, str) and re.match(r"^[a-z][a-z0-9_]{1,40}$", k) for k in raw):
        raise SourceDefinitionError(f"{path.name}: must map domain names (lower_case) to descriptions")
    return {k: str(v) for k, v in raw.items()}


DOMAINS = tuple(yaml.safe_load(DOMAINS_FILE.read_text(encoding="utf-8")))
Domain = str
STANDARD_FIELDS = ("first_name", "middle_name", "last_name", "dob", "sex", "ssn", "street", "zip")
StandardField = Literal["first_name", "middle_name", "last_name", "dob", "sex", "ssn", "street", "zip"]
SUBJECT_ROLE = "subject"

DEFAULT_DEFINITIONS_DIR = Path(__file__).parent / "source_definitions"

_COLUMN_PATTERN = r"^[A-Za-z][A-Za-z0-9_]{0,63}$"

# What an attacker can do with a column (the extract's attacker model reads these). ``direct``
# names a person; ``quasi_person`` is known about the person (birth year, sex); ``quasi_event`` is
# known about one of their events (a month, a school, a facility); ``sensitive`` is what a
# disclosure would reveal; ``other`` neither identifies nor is known. An unclassified column
# (None) counts as quasi, so a new column stays protected until a steward classifies it.
DisclosureClass = Literal["direct", "quasi_person", "quasi_event", "sensitive", "other"]


OnInvalid = Literal["null_and_flag", "quarantine_row", "refuse_file"]
# Column names the vault's own tables use: a content column of that name would collide with
# them in the content partition and the research store (seen: ``ArrowInvalid: Multiple matches``).
RESERVED_COLUMN_NAMES = frozenset({"record_key", "event_date", "neighbourhood", "person_key", "source",
                                   "source_record_id", "role", "deposit_id"})


class SourceDefinitionError(ValueError):
    """A definition file that cannot be used; the message names the file and the key."""


class UnknownSource(KeyError):
    """No definition exists for the requested source name."""

    def __str__(self) -> str:  # KeyError quotes its argument; a plain sentence reads better
        return str(self.args[0])


class ContentColumn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["string", "text", "integer", "float", "date", "boolean", "category"]
    description: str = Field(min_length=3)
    required: bool = False
    values: list[str] | None = Field(default=None, description="Allowed values of a category column.")
    min: float | None = None
    max: float | None = None
    max_length: int = Field(default=100, ge=1, le=100_000)
    disclosure: DisclosureClass | None = Field(default=None, description="Disclosure class; unclassified counts as quasi.")

    @model_validator(mode="after")
    def _category_has_values(self) -> "ContentColumn":
        if self.type == "category" and not self.values:
            raise ValueError("a category column needs a non-empty 'values' list")
        if self.type != "category" and self.values is not None:
            raise ValueError("'values' is only allowed on category columns")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("'min' is greater than 'max'")
        return self


class RelatedRole(BaseModel):
    """A person on the record other than its subject, e.g. the mother on a birth record."""

    model_config = ConfigDict(extra="forbid")

    relation: str = Field(pattern=r"^[a-z][a-z_]*$", description="Relation from this role to the subject, e.g. mother_of.")
    identifiers: dict[StandardField, str] = Field(min_length=1)


class SourceDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("domain")
    @classmethod
    def _known_domain(cls, v: str, info: ValidationInfo) -> str:
        known = set(DOMAINS) | set((info.context or {}).get("domains", ()))
        if v not in known:
            raise ValueError(f"unknown domain {v!r}; known: {', '.join(sorted(known))} "
                             f"(a site adds domains in {LOCAL_DOMAINS_FILE} beside its definitions)")
        return v

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{1,40}$")
    domain: Domain
    agency: str = Field(min_length=2)
    steward: str = Field(min_length=2)
    description: str = ""
    format: Literal["csv", "parquet"]
    record_id: str = Field(pattern=_COLUMN_PATTERN)
    event_date: str = Field(pattern=_COLUMN_PATTERN, description="Column holding the date the record is about.")
    date_format: str = Field(default="%Y-%m-%d", description="strptime format of every date column in CSV files.")
    ssn_kind: Literal["full", "last4"] = "full"
    sex_codes: dict[str, Literal["M", "F", "U"]] = Field(default_factory=lambda: {"M": "M", "F": "F", "U": "U"})
    identifiers: dict[StandardField, str] = Field(min_length=1)
    related: dict[str, RelatedRole] = Field(default_factory=dict)
    content: dict[str, ContentColumn] = Field(default_factory=dict)
    # What ingest does with a value that fails its check, per column (see ``policy_for``).
    on_invalid: dict[str, OnInvalid] = Field(default_factory=dict)
    # Values that mean "unknown" in this agency's files, per standard identifier field
    # (e.g. zip 00000): nulled at ingest and counted, never compared as data.
    placeholders: dict[StandardField, list[str]] = Field(default_factory=dict)
    # Identifiers the agency splits over several columns: a name used in ``identifiers`` (or a
    # related role) -> the file's columns, joined with one space in this order, empty parts
    # skipped (street from house number, street name, unit or PO box; a name from its parts).
    composite: dict[str, list[str]] = Field(default_factory=dict)
    # Row-count trailer some agencies append (``<prefix>,<data rows>``): checked, not stored.
    trailer_prefix: str | None = Field(default=None, pattern=r"^[A-Za-z#*][A-Za-z0-9_#*]{0,19}$")

    @field_validator("identifiers")
    @classmethod
    def _identifier_columns(cls, v: dict[str, str]) -> dict[str, str]:
        for column in v.values():
            if not re.match(_COLUMN_PATTERN, column):
                raise ValueError(f"column name {column!r} is not a plain identifier")
        return v

    @field_validator("content")
    @classmethod
    def _content_columns(cls, v: dict[str, ContentColumn]) -> dict[str, ContentColumn]:
        for column in v:
            if not re.match(_COLUMN_PATTERN, column):
                raise ValueError(f"column name {column!r} is not a plain identifier")
        return v

    @field_validator("composite")
    @classmethod
    def _composite_columns(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, parts in v.items():
            if not re.match(_COLUMN_PATTERN, name) or not parts or not all(re.match(_COLUMN_PATTERN, c) for c in parts):
                raise ValueError(f"composite {name!r} needs a plain name and a non-empty list of plain column names")
            if name in parts or len(set(parts)) != len(parts):
                raise ValueError(f"composite {name!r} repeats a column or names itself")
        return v

    @field_validator("related")
    @classmethod
    def _role_names(cls, v: dict[str, RelatedRole]) -> dict[str, RelatedRole]:
        for role in v:
            if role == SUBJECT_ROLE or not re.match(r"^[a-z][a-z_]{1,30}$", role):
                raise ValueError(f"role name {role!r} is not allowed")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "SourceDefinition":
        identifier_columns = set(self.identifiers.values())
        for role in self.related.values():
            identifier_columns |= set(role.identifiers.values())
        overlap = identifier_columns & set(self.content)
        if overlap:
            raise ValueError(f"columns {sorted(overlap)} are declared both as identifier and content")
        if self.record_id in identifier_columns or self.record_id in self.content:
            raise ValueError(f"record_id column {self.record_id!r} is also declared as identifier or content")
        dob_column = self.identifiers.get("dob")
        if self.event_date in self.content:
            if self.content[self.event_date].type != "date":
                raise ValueError(f"event_date column {self.event_date!r} must have type date")
        elif self.event_date != dob_column:
            raise ValueError(f"event_date column {self.event_date!r} is neither a content date column nor the subject's dob")
        if not {"last_name", "ssn"} & set(self.identifiers):
            raise ValueError("identifiers need at least last_name or ssn to be linkable")
        for code in self.sex_codes:
            if code != code.strip() or not code:
                raise ValueError(f"sex code {code!r} has surrounding whitespace")
        self._check_intake_rules()
        self._check_composites(identifier_columns)
        return self

    def _check_composites(self, identifier_columns: set[str]) -> None:
        """A composite is used as an identifier and its parts are nothing else."""
        for name, parts in self.composite.items():
            if name not in identifier_columns:
                raise ValueError(f"composite {name!r} is not used in identifiers")
            clash = set(parts) & (identifier_columns | set(self.content) | {self.record_id})
            if clash:
                raise ValueError(f"composite {name!r}: column(s) {sorted(clash)} are also declared elsewhere")

    def _check_intake_rules(self) -> None:
        """Reserved names, sex codes, and the per-column invalid-value policies."""
        reserved = sorted(RESERVED_COLUMN_NAMES & set(self.content) - {self.event_date})
        if self.event_date == "event_date" or reserved:
            raise ValueError(f"content column name(s) {reserved or ['event_date']} are reserved by the vault's tables; "
                             "rename them in the definition (the agency's column name can stay in the file only if it is not reserved)")
        sex_columns = [m["sex"] for m in self.roles.values() if "sex" in m]
        if sex_columns and ("sex_codes" not in self.model_fields_set or not self.sex_codes):
            raise ValueError(f"column {sex_columns[0]!r} holds sex but 'sex_codes' is not declared: list the agency's own codes "
                             "and what each means, e.g. sex_codes: {'1': M, '2': F, '9': U}")
        known = set(self.columns) | set(self.composite)
        for column, policy in self.on_invalid.items():
            if column not in known:
                raise ValueError(f"on_invalid names column {column!r}, which the definition does not declare")
            if policy == "null_and_flag" and column in (self.record_id, self.event_date):
                raise ValueError(f"on_invalid: column {column!r} cannot be nulled (record id and event date identify the record)")
            spec = self.content.get(column)
            if policy == "null_and_flag" and spec is not None and spec.required:
                raise ValueError(f"on_invalid: required column {column!r} cannot be nulled")

    def policy_for(self, column: str) -> OnInvalid:
        """The invalid-value policy of a column: declared, else null_and_flag for identifier
        columns (the record still links on the rest) and quarantine_row for the record id,
        the event date and content (a wrong research value is not silently blanked)."""
        if column in self.on_invalid:
            return self.on_invalid[column]
        if column in (self.record_id, self.event_date) or column in self.content:
            return "quarantine_row"
        return "null_and_flag"

    # Derived views used by ingest and the generator.
    @property
    def roles(self) -> dict[str, dict[str, str]]:
        """Role name -> (standard field -> column), subject first."""
        out = {SUBJECT_ROLE: dict(self.identifiers)}
        out.update({name: dict(role.identifiers) for name, role in self.related.items()})
        return out

    @property
    def columns(self) -> list[str]:
        """Every column the file must have, each once, in a stable order."""
        seen: dict[str, None] = {self.record_id: None}
        for mapping in self.roles.values():
            for column in mapping.values():
                seen.update(dict.fromkeys(self.composite.get(column, [column])))
        seen.update(dict.fromkeys(self.content))
        seen[self.event_date] = None
        return list(seen)

    @property
    def date_columns(self) -> list[str]:
        cols = [c for c, spec in self.content.items() if spec.type == "date"]
        for mapping in self.roles.values():
            if "dob" in mapping and mapping["dob"] not in cols:
                cols.append(mapping["dob"])
        return cols


def _describe_error(path: Path, exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"] if p != "[key]") or "(top level)"
        lines.append(f"{path.name}: key '{key}': {err['msg']}")
    return "; ".join(lines)


def load_definition(path: Path) -> SourceDefinition:
    """Read and validate one YAML definition; errors name the file and the key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SourceDefinitionError(f"{path.name}: not valid YAML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceDefinitionError(f"{path.name}: cannot be read: {exc}") from None
    if not isinstance(raw, dict):
        raise SourceDefinitionError(f"{path.name}: top level must be a mapping of keys")
    local = path.parent / LOCAL_DOMAINS_FILE
    try:
        domains = _read_domains(local) if local.is_file() else {}
        definition = SourceDefinition.model_validate(raw, context={"domains": domains})
    except ValidationError as exc:
        raise SourceDefinitionError(_describe_error(path, exc)) from None
    if path.stem != definition.name:
        raise SourceDefinitionError(f"{path.name}: key 'name': {definition.name!r} does not match the file name")
    return definition


def load_definitions(directory: Path | None = None) -> dict[str, SourceDefinition]:
    """All definitions in a directory (default: the ones shipped with linkage), by name."""
    directory = Path(directory) if directory else DEFAULT_DEFINITIONS_DIR
    paths = [p for p in sorted(directory.glob("*.yaml")) if p.name != LOCAL_DOMAINS_FILE]
    return {d.name: d for d in (load_definition(p) for p in paths)}


def get_definition(name: str, directory: Path | None = None) -> SourceDefinition:
    directory = Path(directory) if directory else DEFAULT_DEFINITIONS_DIR
    path = directory / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in directory.glob("*.yaml")))
        raise UnknownSource(f"unknown source {name!r}: no definition {path.name} (known sources: {known})")
    return load_definition(path)
