"""The attacker model every stage of an extract build shares, as data.

Which columns of each table an attacker may know (``quasi_person`` values of the person,
``quasi_event`` values of one of their events), how many events per person they know and whether
they know family edges (the board's :class:`enclave.conditions.AttackerModel`), and the k every
combination must reach. Built from the source definitions' disclosure classes; a column no
definition classifies counts as quasi, so a new column is protected until a steward says otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from enclave.conditions import AttackerModel

PSEUDONYM = "pseudonym"
PAIR_KEYS = ("pseudonym_from", "pseudonym_to")
RELATION = "relation"

# Columns the research store derives itself for every source (linkage.research_store): their
# class is fixed here, not in any one agency's definition.
DERIVED_CLASSES: dict[str, str] = {
    "event_date": "quasi_event",
    "age_at_event": "quasi_event",
    "birth_year": "quasi_person",
    "sex": "quasi_person",
    "race_ethnicity": "quasi_person",
    "neighbourhood": "quasi_person",
    "source": "other",
    "relation": "other",
}
QUASI = ("quasi_person", "quasi_event")


def disclosure_classes(table: str, columns: list[str], definitions: dict[str, Any] | None = None) -> dict[str, str]:
    """Class of each column of one extract table: derived columns fixed, content columns from the
    source definition, anything unclassified ``quasi_event`` (a known event value: the strictest)."""
    if definitions is None:
        definitions = _definitions()
    content = getattr(definitions.get(table), "content", {}) or {}
    out: dict[str, str] = {}
    for col in columns:
        if col in (PSEUDONYM, *PAIR_KEYS):
            continue
        declared = getattr(content.get(col), "disclosure", None)
        out[col] = DERIVED_CLASSES.get(col) or declared or "quasi_event"
    return out


def _definitions() -> dict[str, Any]:
    from linkage.sources import load_definitions

    return load_definitions()


def direct_identifiers(tables: dict[str, list[str]], definitions: dict[str, Any] | None = None) -> dict[str, list[str]]:
    """Columns a source definition classes ``direct``: they name a person and never enter an extract."""
    if definitions is None:
        definitions = _definitions()
    found = {t: [c for c, cls in disclosure_classes(t, cols, definitions).items() if cls == "direct"] for t, cols in tables.items()}
    return {t: cols for t, cols in found.items() if cols}


@dataclass(frozen=True)
class Knowledge:
    """What the attacker holds, per table: the person-level columns (the profile) and the event columns."""

    k: int
    model: AttackerModel = AttackerModel()
    person_columns: tuple[str, ...] = ("birth_year", "sex", "race_ethnicity", "neighbourhood")
    event_columns: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def as_manifest(self) -> dict[str, Any]:
        return {"k": self.k, "events_known": self.model.events_known,
                "family_edges_known": self.model.family_edges_known,
                "person_columns": list(self.person_columns),
                "event_columns": {t: list(c) for t, c in sorted(self.event_columns.items())}}


def knowledge_for(tables: dict[str, list[str]], k: int, model: AttackerModel, person_columns: list[str],
                  definitions: dict[str, Any] | None = None) -> Knowledge:
    """The attacker's knowledge of an extract whose tables hold ``tables`` (name -> columns)."""
    if definitions is None:
        definitions = _definitions()
    events: dict[str, tuple[str, ...]] = {}
    for table, columns in tables.items():
        if PSEUDONYM not in columns:
            continue
        classes = disclosure_classes(table, columns, definitions)
        # A person-level column the build does not profile (not in ``person_columns``) is still
        # known: it is checked with the event, row by row, which is stricter.
        events[table] = tuple(c for c, cls in classes.items() if cls in QUASI and c not in person_columns)
    return Knowledge(k=k, model=model, person_columns=tuple(person_columns), event_columns=events)
