"""Stage 4, remedy: change the extract until the measure (``enclave.extract.measure``) finds no
combination of the attacker's knowledge shared by fewer than k people, losing as little as it can.

Cheapest first, per table: climb the generalisation ladders of the event-level columns
(``ladders.yaml``; the rung that makes most at-risk rows safe per value it changes) while more
than ``SUPPRESSION_SHARE`` of the table's rows are at risk; then suppress single values in the
rows still at risk (one column at a time, the column with most distinct values first); then drop
the events still at risk. Edges whose two profiles are shared by too few are dropped, then the
edges of people whose family (profile + relatives' profiles) is too rare. A person whose profile
alone is too rare is the joined-tables step's matter (harmonise, suppress, drop the person),
which provisioning re-runs after every round here. Classes only merge or lose at-risk members,
so a round never makes a safe row unsafe for one known event.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from enclave.extract import joined, measure
from enclave.extract.attacker import PAIR_KEYS, PSEUDONYM, Knowledge, knowledge_for
from enclave.extract.ladders import Ladders, load_ladders, text_values
from enclave.extract.spec import ExtractSpec, ProvisioningError

SUPPRESSION_SHARE = 0.02  # above this share of a table's rows at risk, generalise before suppressing


@dataclass
class ColumnLoss:
    """Information lost in one column of one table (counts of values; shares in the manifest)."""

    rungs: list[str] = field(default_factory=list)
    generalised: int = 0
    suppressed: int = 0

    def as_manifest(self, values: int) -> dict[str, Any]:
        share = (lambda n: round(n / values, 4) if values else 0.0)
        return {"ladder": self.rungs, "values": values, "generalised": self.generalised, "suppressed": self.suppressed,
                "share_generalised": share(self.generalised), "share_suppressed": share(self.suppressed)}


@dataclass
class Loss:
    """What the remedy cost, per table and column; never a value or a pseudonym."""

    columns: dict[str, dict[str, ColumnLoss]] = field(default_factory=dict)
    events_dropped: dict[str, int] = field(default_factory=dict)
    edges_dropped: dict[str, int] = field(default_factory=dict)
    levels: dict[str, dict[str, int]] = field(default_factory=dict)
    people_dropped: int = 0

    def column(self, table: str, col: str) -> ColumnLoss:
        return self.columns.setdefault(table, {}).setdefault(col, ColumnLoss())

    def as_manifest(self, rows_in: dict[str, int], values_in: dict[str, dict[str, int]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for table in sorted(set(self.columns) | set(self.events_dropped) | set(self.edges_dropped)):
            n = rows_in.get(table, 0)
            dropped = self.events_dropped.get(table, 0) + self.edges_dropped.get(table, 0)
            out[table] = {
                "rows_before": n, "rows_dropped": dropped, "share_rows_dropped": round(dropped / n, 4) if n else 0.0,
                "columns": {c: loss.as_manifest(values_in.get(table, {}).get(c, 0))
                            for c, loss in sorted(self.columns.get(table, {}).items())},
            }
        return out


def _as_text(df: pd.DataFrame, col: str) -> pd.DataFrame:
    """The column as strings (a generalised year band is no longer a number)."""
    return df.assign(**{col: text_values(df[col]).astype(object).where(df[col].notna(), None)})


def _climb(tables: dict[str, pd.DataFrame], knowledge: Knowledge, profile: pd.Series, ladders: Ladders,
           originals: dict[str, pd.DataFrame], loss: Loss) -> bool:
    """Generalise event columns table by table while too many rows are at risk; True if anything changed."""
    changed = False
    for table, cols in sorted(knowledge.event_columns.items()):
        if table not in tables:
            continue
        while True:
            df = tables[table]
            if not len(df):
                break
            at_risk = int((measure.event_class_sizes({table: df}, _single(knowledge), profile)[table] < knowledge.k).sum())
            if at_risk <= SUPPRESSION_SHARE * len(df):
                break
            best: tuple[float, str, pd.DataFrame, int] | None = None
            levels = loss.levels.setdefault(table, {})
            for col in cols:
                ladder = ladders.for_column(col, originals[table][col])
                level = levels.get(col, 0)
                if level >= len(ladder):
                    continue
                up = ladder[level].apply(text_values(df[col]))
                kept = df[col].isna() | up.notna()
                up = up.astype(object).where(up.notna(), None)
                trial = df.assign(**{col: up})
                after = int((measure.event_class_sizes({table: trial}, _single(knowledge), profile)[table] < knowledge.k).sum())
                fixed = at_risk - after
                changed_values = int((text_values(df[col]) != text_values(trial[col])).fillna(True).sum())
                if fixed <= 0 or not kept.all():
                    continue
                score = fixed / max(changed_values, 1)
                if best is None or score > best[0]:
                    best = (score, col, trial, changed_values)
            if best is None:
                break
            _, col, trial, changed_values = best
            tables[table] = trial
            levels[col] = levels.get(col, 0) + 1
            entry = loss.column(table, col)
            entry.rungs.append(ladders.for_column(col, originals[table][col])[levels[col] - 1].name)
            # whole-column rungs: the values a column has had generalised is the most any rung changed
            entry.generalised = max(entry.generalised, changed_values)
            changed = True
    return changed


def _single(knowledge: Knowledge) -> Knowledge:
    """The same knowledge with one known event: the per-table guide for choosing a rung."""
    from enclave.conditions import AttackerModel

    if knowledge.model.events_known <= 1:
        return knowledge
    return Knowledge(k=knowledge.k, model=AttackerModel(events_known=1, family_edges_known=knowledge.model.family_edges_known),
                     person_columns=knowledge.person_columns, event_columns=knowledge.event_columns)


def _suppress(tables: dict[str, pd.DataFrame], knowledge: Knowledge, profile: pd.Series, loss: Loss) -> bool:
    """Blank single event values in the rows at risk, a column at a time; True if anything changed."""
    changed = False
    for table, cols in sorted(knowledge.event_columns.items()):
        if table not in tables or not len(tables[table]):
            continue
        order = sorted(cols, key=lambda c: -tables[table][c].nunique())
        for col in order:
            risky = measure.event_class_sizes(tables, knowledge, profile, only=[table])[table] < knowledge.k \
                if knowledge.model.events_known <= 1 else measure.event_class_sizes(tables, knowledge, profile)[table] < knowledge.k
            target = risky & tables[table][col].notna().to_numpy()
            if not target.any():
                continue
            df = tables[table]
            if pd.api.types.is_integer_dtype(df[col]):
                df = df.assign(**{col: df[col].astype("Int64")})
            tables[table] = df.assign(**{col: df[col].mask(target)})
            loss.column(table, col).suppressed += int(target.sum())
            changed = True
    return changed


def _drop_events(tables: dict[str, pd.DataFrame], knowledge: Knowledge, profile: pd.Series, loss: Loss) -> bool:
    sizes = measure.event_class_sizes(tables, knowledge, profile)
    changed = False
    for table, size in sizes.items():
        risky = size < knowledge.k
        if risky.any():
            tables[table] = tables[table].loc[~risky].reset_index(drop=True)
            loss.events_dropped[table] = loss.events_dropped.get(table, 0) + int(risky.sum())
            changed = True
    return changed


ONE_EDGE_PASSES = 6  # passes that drop one edge per person at risk before all their edges go


def _drop_edges(tables: dict[str, pd.DataFrame], knowledge: Knowledge, loss: Loss) -> bool:
    """Edges whose pair of profiles is too rare; then, for people whose family is too rare, their
    rarest edge, one per pass (a mother of three is often hidden once one child is unlinked),
    then all their edges; then people still too rare with no edge left (alone, their profile is
    rarer among the people without relatives than among everyone)."""
    if not knowledge.model.family_edges_known:
        return False
    changed = False
    for pass_no in range(ONE_EDGE_PASSES + 20):  # each pass only removes edges or people; bounded
        risk = measure.assess(tables, _edges_only(knowledge))
        names = measure.edge_tables(tables)
        drop_people = set(risk.risky_family.astype(str))
        with_edges: set[str] = set()
        for table in names:
            with_edges |= set(tables[table][PAIR_KEYS[0]].astype(str)) | set(tables[table][PAIR_KEYS[1]].astype(str))
        alone = drop_people - with_edges
        masks = {t: risk.risky_edges.get(t, np.zeros(len(tables[t]), bool)).copy() for t in names}
        if not any(m.any() for m in masks.values()) and drop_people:
            if pass_no < ONE_EDGE_PASSES:
                masks = _rarest_edge_of(tables, names, drop_people, knowledge)
            else:
                for table in names:
                    df = tables[table]
                    masks[table] = (df[PAIR_KEYS[0]].astype(str).isin(drop_people)
                                    | df[PAIR_KEYS[1]].astype(str).isin(drop_people)).to_numpy()
        acted = False
        for table in names:
            mask = masks[table]
            if mask.any():
                tables[table] = tables[table].loc[~mask].reset_index(drop=True)
                loss.edges_dropped[table] = loss.edges_dropped.get(table, 0) + int(mask.sum())
                acted = True
        if not acted and alone:
            for table, df in list(tables.items()):
                if PSEUDONYM in df.columns:
                    mask = df[PSEUDONYM].astype(str).isin(alone).to_numpy()
                    if mask.any():
                        tables[table] = df.loc[~mask].reset_index(drop=True)
                        loss.events_dropped[table] = loss.events_dropped.get(table, 0) + int(mask.sum())
            loss.people_dropped += len(alone)
            acted = True
        changed |= acted
        if not acted:
            break
    return changed


def _rarest_edge_of(tables: dict[str, pd.DataFrame], names: list[str], who: set[str], knowledge: Knowledge) -> dict[str, np.ndarray]:
    """Per edge table, a mask of one edge per person in ``who``: the one whose (relation, both
    profiles) is shared by fewest edges, the edge that makes their family rarest."""
    profile = measure.profiles(tables, knowledge.person_columns)
    frames = []
    for table in names:
        df = tables[table]
        frames.append(pd.DataFrame({"t": table, "row": np.arange(len(df)), "a": df[PAIR_KEYS[0]].astype(str).to_numpy(),
                                    "b": df[PAIR_KEYS[1]].astype(str).to_numpy(),
                                    "size": measure.edge_class_sizes(df, profile)}))
    edges = pd.concat(frames, ignore_index=True)
    ends = pd.concat([edges.assign(p=edges["a"]), edges.assign(p=edges["b"])], ignore_index=True)
    ends = ends.loc[ends["p"].isin(who)].sort_values(["p", "size", "t", "row"], kind="mergesort")
    chosen = ends.drop_duplicates("p")
    return {t: np.isin(np.arange(len(tables[t])), chosen.loc[chosen["t"] == t, "row"].to_numpy()) for t in names}


def _edges_only(knowledge: Knowledge) -> Knowledge:
    from enclave.conditions import AttackerModel

    return Knowledge(k=knowledge.k, model=AttackerModel(events_known=0, family_edges_known=True),
                     person_columns=knowledge.person_columns, event_columns={})


def protect(tables: dict[str, pd.DataFrame], knowledge: Knowledge, originals: dict[str, pd.DataFrame],
            loss: Loss, ladders: Ladders | None = None) -> tuple[dict[str, pd.DataFrame], bool]:
    """One round of remedies over new frames (inputs untouched); True if anything changed.

    ``originals`` holds each table's event columns as selected (to choose the ladder and count
    what a rung changed); ``loss`` accumulates over rounds."""
    ladders = ladders or load_ladders()
    tables = dict(tables)
    profile = measure.profiles(tables, knowledge.person_columns)
    changed = False
    if knowledge.model.events_known:
        changed |= _climb(tables, knowledge, profile, ladders, originals, loss)
        changed |= _suppress(tables, knowledge, profile, loss)
        changed |= _drop_events(tables, knowledge, profile, loss)
    changed |= _drop_edges(tables, knowledge, loss)
    return tables, changed


# --------------------------------------------------------------------------- the stage


MAX_PRIVACY_ROUNDS = 8


def protect_attacker_knowledge(frames: dict[str, pd.DataFrame], table_qis: dict[str, list[str]], spec: ExtractSpec,
                                joined_report: dict[str, Any]) -> tuple[dict[str, pd.DataFrame], dict[str, Any], dict[str, Any]]:
    """What the board's attacker model says an attacker knows (profile + m events, family edges)
    must leave k people (``enclave.extract``): remedy, re-apply the joined-tables step, repeat;
    then re-measure and refuse the extract if anything is still below k."""
    from enclave.extract.attacker import direct_identifiers

    direct = direct_identifiers({t: list(df.columns) for t, df in frames.items()})
    if direct:
        raise ProvisioningError(f"approved column(s) {direct} are direct identifiers (disclosure class 'direct' in the "
                                f"source definition) and never enter an extract")
    knowledge = knowledge_for({t: list(df.columns) for t, df in frames.items()}, spec.k,
                                       spec.conditions.attacker_model, spec.person_quasi_identifiers)
    originals = {t: frames[t][list(cols)].copy() for t, cols in knowledge.event_columns.items()}
    rows_in = {t: int(len(df)) for t, df in frames.items()}
    values_in = {t: {c: int(frames[t][c].notna().sum()) for c in cols} for t, cols in knowledge.event_columns.items()}
    loss = Loss()
    rounds = 0
    for rounds in range(1, MAX_PRIVACY_ROUNDS + 1):
        frames, changed = protect(frames, knowledge, originals, loss)
        if not changed:
            break
        frames, joined_report = joined.protect_join(frames, table_qis, spec)
    risk = measure.assess(frames, knowledge)
    if not risk.clean:
        below = {name: value for name, value in risk.figures().items() if value is not None and value < spec.k}
        raise ProvisioningError(f"tables {sorted(frames)}: after {rounds} rounds the attacker model "
                                f"({knowledge.model.model_dump()}) still leaves fewer than k={spec.k} people: {below}")
    report = {"attacker_model": knowledge.as_manifest(), "measured": risk.figures(), "rounds": rounds,
              "information_loss": loss.as_manifest(rows_in, values_in), "people_dropped_alone_in_family": loss.people_dropped}
    return frames, report, joined_report
