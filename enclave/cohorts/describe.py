"""A definition in plain words: what reviewers see in the evidence and readers on a finding."""
from __future__ import annotations

from enclave.cohorts.definition import CohortDefinition, Condition, Event


def _event(name: str, ev: Event) -> str:
    text = ev.label or name.replace("_", " ")
    parts = [f"{text} (table {ev.table}"]
    if ev.where:
        parts.append(", where " + ", ".join(f"{k} is {' or '.join(map(str, v)) if isinstance(v, list) else v}"
                                             for k, v in ev.where.items()))
    if ev.age:
        parts.append(f", aged {ev.age[0]}-{ev.age[1]} at the time")
    return "".join(parts) + ")"


def _label(d: CohortDefinition, name: str) -> str:
    return d.events[name].label or name.replace("_", " ")


def _condition(d: CohortDefinition, c: Condition) -> str:
    if c.any_of is not None:
        return "any of: " + "; ".join(_condition(d, x) for x in c.any_of)
    if c.none_of is not None:
        return "none of: " + "; ".join(_condition(d, x) for x in c.none_of)
    if c.parent is not None:
        rel = c.parent.get("relation", ["mother_of", "father_of"])
        rel = [rel] if isinstance(rel, str) else rel
        who = " or ".join(r.replace("_of", "") for r in rel)
        age = c.parent.get("age_at_birth")
        return f"has a {who}" + (f" aged {age[0]}-{age[1]} at the birth" if age else "")
    text = "has " + _event(c.event, d.events[c.event])
    if c.in_period:
        text += " in the period"
    if c.within_months_before_reference:
        text += f" within the {c.within_months_before_reference} months before {d.reference_month}"
    if c.within_months_after_birth is not None:
        text += f" within {c.within_months_after_birth} months of birth"
    if c.during_or_within_months_after:
        w = c.during_or_within_months_after
        text += f" while in {_label(d, w.event)} or within {w.months} months after it ended"
    if c.first_before:
        text += f", the first one before the first {_label(d, c.first_before)}"
    if c.first_after:
        text += f", the first one after the first {_label(d, c.first_after)}"
    return text


def describe(d: CohortDefinition) -> str:
    lines = [f"{d.title}.", f"Question: {d.question}"]
    who = "People in the extract"
    if d.unit.table:
        who = f"Each person in each {', '.join(d.unit.per) or 'record'} of {d.unit.table}"
    lines.append(f"Unit: {who}; period {d.period.start} to {d.period.end}; reference month {d.reference_month}.")
    if d.age_at_reference:
        lines.append(f"Aged {d.age_at_reference[0]}-{d.age_at_reference[1]} at the reference month (from birth year).")
    for c in d.population:
        lines.append(f"Included if: {_condition(d, c)}.")
    for c in d.exclude:
        lines.append(f"Excluded if: {_condition(d, c)}.")
    for flag, where in d.unit.row_measures.items():
        lines.append(f"Measure {flag}: a record of the unit with " + ", ".join(f"{k} = {v}" for k, v in where.items()) + ".")
    for flag, conds in d.measures.items():
        lines.append(f"Measure {flag}: " + " and ".join(_condition(d, c) for c in conds) + ".")
    for flag, conds in d.subpopulations.items():
        lines.append(f"Subpopulation {flag}: " + " and ".join(_condition(d, c) for c in conds) + ".")
    if d.compare_by:
        lines.append("Compared by " + ", ".join(d.compare_by) + ".")
    if d.notes:
        lines.append(d.notes.strip())
    return "\n".join(lines)
