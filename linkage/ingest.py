"""Ingest one agency file into the vault: validate every row against the source
definition, split identifiers from content at once, quarantine rejected rows with
their reasons. Streaming in chunks; all-or-nothing on disk (staging directory, then
``os.replace`` of each file, the deposit manifest last).

Vault layout (docs/INTERFACES.md): deposits/, identifiers/, content/, relationships/,
quarantine/, each with one folder per source and one file per deposit.

Formula injection: a text cell starting with = + - @ (or tab / CR) is *rejected*
(the row is quarantined), not neutralised. No agency field legitimately starts with these
characters, so such a value is an error or an attack, and silently rewriting it would
change the data. In the quarantine CSV (which stewards open in spreadsheets) every such
cell is neutralised with a leading apostrophe (the OWASP recommendation).
"""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from . import deposits
from .ingest_read import FileRejected, inspect_bytes, read_csv_chunks, read_parquet_chunks, unchanged_since
from .ingest_validate import FORMULA_PREFIX, validate_chunk
from .sources import STANDARD_FIELDS, SUBJECT_ROLE, SourceDefinition
from .synth.pools import load_neighbourhoods

__all__ = ["FileRejected", "IngestResult", "ingest_file", "DEFAULT_CHUNK_ROWS"]

DEFAULT_CHUNK_ROWS = 50_000
MAX_EXAMPLES = 10
DEPOSIT_ID_CHARS = 16

IDENTIFIER_SCHEMA = pa.schema(
    [("record_key", pa.string()), ("source", pa.string()), ("source_record_id", pa.string()), ("role", pa.string())]
    + [(f, pa.string()) for f in STANDARD_FIELDS]
)
RELATIONSHIP_SCHEMA = pa.schema([("record_key_from", pa.string()), ("record_key_to", pa.string()), ("relation", pa.string())])
_ARROW_TYPES = {"integer": pa.int64(), "float": pa.float64(), "date": pa.date32(), "boolean": pa.bool_()}


@dataclass
class IngestResult:
    source: str
    file: str
    sha256: str
    deposit_id: str
    rows_read: int = 0
    rows_accepted: int = 0
    rows_quarantined: int = 0
    reasons: Counter = field(default_factory=Counter)
    cleaned: Counter = field(default_factory=Counter)
    blank_lines: int = 0
    already_deposited: bool = False
    rows_flagged: int = 0  # kept with one or more fields nulled under null_and_flag
    flags: dict = field(default_factory=dict)  # column -> reason -> count
    supersedes: str | None = None
    largest_chunk_rows: int = 0
    manifest_path: str = ""
    # First quarantined rows as (row, line, fields, reasons): positions and codes only, no values.
    examples: list[tuple[int, int, str, str]] = field(default_factory=list)

    def note(self, row: int, line: int, fields: str, reasons: str) -> None:
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append((row, line, fields, reasons))


def content_schema(definition: SourceDefinition, with_neighbourhood: bool) -> pa.Schema:
    fields = [("record_key", pa.string()), ("event_date", pa.date32())]
    for column, spec in definition.content.items():
        fields.append((column, _ARROW_TYPES.get(spec.type, pa.string())))
    if with_neighbourhood:
        fields.append(("neighbourhood", pa.string()))
    return pa.schema(fields)


def _neutralise(value):
    if isinstance(value, str) and FORMULA_PREFIX.match(value):
        return "'" + value
    return value


class _Staging:
    """Output files of one deposit, written in a private staging folder inside the vault."""

    def __init__(self, vault: Path, definition: SourceDefinition, deposit_id: str):
        self.vault = vault
        (vault / ".staging").mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix=f"{definition.name}-{deposit_id}-", dir=vault / ".staging"))
        self.definition = definition
        self.deposit_id = deposit_id
        self.with_neighbourhood = "zip" in definition.identifiers
        self.content_schema = content_schema(definition, self.with_neighbourhood)
        self.writers: dict[str, pq.ParquetWriter] = {}
        self.quarantine_fh = open(self.dir / "quarantine.csv", "w", newline="", encoding="utf-8")
        self.quarantine = csv.writer(self.quarantine_fh)
        self.quarantine.writerow(["_row", "_line", "_field", "_reason"] + definition.columns + ["_extra"])
        # Rows kept with a field nulled: the original values stay here, in the vault, for the steward.
        self.flags_fh = open(self.dir / "flags.csv", "w", newline="", encoding="utf-8")
        self.flags = csv.writer(self.flags_fh)
        self.flags.writerow(["_row", "_line", "_field", "_reason"] + definition.columns)
        self.record_ids: list[pa.Array] = []

    def write(self, name: str, table: pa.Table) -> None:
        if name not in self.writers:
            self.writers[name] = pq.ParquetWriter(self.dir / f"{name}.parquet", table.schema)
        self.writers[name].write_table(table)

    def commit(self, manifest: dict) -> Path:
        schemas = {"identifiers": IDENTIFIER_SCHEMA, "content": self.content_schema, "relationships": RELATIONSHIP_SCHEMA}
        for name, schema in schemas.items():
            if name not in self.writers:  # no accepted rows: still a valid, empty partition
                self.writers[name] = pq.ParquetWriter(self.dir / f"{name}.parquet", schema)
            self.writers[name].close()
        self.quarantine_fh.close()
        self.flags_fh.close()
        src = self.definition.name
        targets = {
            "identifiers.parquet": self.vault / "identifiers" / src / f"{self.deposit_id}.parquet",
            "content.parquet": self.vault / "content" / src / f"{self.deposit_id}.parquet",
            "relationships.parquet": self.vault / "relationships" / src / f"{self.deposit_id}.parquet",
            "quarantine.csv": self.vault / "quarantine" / src / f"{self.deposit_id}.csv",
            "flags.csv": self.vault / "flags" / src / f"{self.deposit_id}.csv",
        }
        manifest["files"] = {}
        for staged, target in targets.items():
            manifest["files"][target.parent.parent.name] = str(target.relative_to(self.vault))
            manifest.setdefault("checksums", {})[target.parent.parent.name] = _sha256(self.dir / staged)
        for staged, target in targets.items():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.dir / staged, target)
        manifest_path = self.vault / "deposits" / src / f"{self.deposit_id}.json"
        manifest_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / "manifest.json"
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(tmp, manifest_path)  # last: its presence means the deposit is complete
        self.cleanup()
        return manifest_path

    def cleanup(self) -> None:
        for w in self.writers.values():
            try:
                w.close()
            except Exception:  # noqa: BLE001 - closing after a failure; the folder is removed anyway
                pass
        for fh in (self.quarantine_fh, self.flags_fh):
            if not fh.closed:
                fh.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _zip_to_neighbourhood() -> dict[str, str]:
    return {row["zip"]: row["neighbourhood"] for row in load_neighbourhoods()}


def ingest_file(definition: SourceDefinition, path: Path, vault: Path, chunk_rows: int = DEFAULT_CHUNK_ROWS,
                today: dt.date | None = None, supersedes: str | None = None) -> IngestResult:
    """Validate and deposit ``path`` for ``definition`` into ``vault``; see the module docstring.

    ``supersedes``: a live deposit of the same source this file corrects; it is retired in the
    same atomic step that makes this one live (linkage never sees both)."""
    path, vault = Path(path), Path(vault)
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    today = today or dt.date.today()
    facts = inspect_bytes(path, definition.format)
    deposit_id = facts.sha256[:DEPOSIT_ID_CHARS]
    result = IngestResult(source=definition.name, file=path.name, sha256=facts.sha256, deposit_id=deposit_id,
                          supersedes=supersedes)
    manifest_path = vault / "deposits" / definition.name / f"{deposit_id}.json"
    with deposits.source_lock(vault, definition.name):
        deposits.reconcile(vault, definition.name)  # what a killed ingest left: staging, orphans
        if manifest_path.exists():
            previous = json.loads(manifest_path.read_text(encoding="utf-8"))
            state = deposits.state_of(previous)
            if state != deposits.DepositState.complete:
                raise FileRejected(path, f"this exact file was deposit {deposit_id}, since {state.value}; "
                                         "it cannot be deposited again (send a corrected file)")
            result.already_deposited = True
            result.rows_accepted = previous.get("rows_accepted", 0)
            result.rows_quarantined = previous.get("rows_quarantined", 0)
            result.manifest_path = str(manifest_path)
            return result
        if supersedes is not None:
            try:
                deposits.check_supersedable(vault, definition.name, supersedes)
            except deposits.DepositError as exc:
                raise FileRejected(path, str(exc)) from None
        staging = _Staging(vault, definition, deposit_id)
        try:
            _ingest_into(staging, definition, path, facts, chunk_rows, today, result)
            unchanged_since(path, facts)
            _check_not_already_deposited(vault, definition, path, staging, supersedes)
            manifest = {
                "state": deposits.DepositState.complete.value,
                "supersedes": supersedes,
                "rows_flagged": result.rows_flagged,
                "flags": result.flags,
                "source": definition.name,
                "deposit_id": deposit_id,
                "file_name": path.name,
                "sha256": facts.sha256,
                "bytes": facts.size,
                "bom_stripped": facts.bom,
                "rows_read": result.rows_read,
                "rows_accepted": result.rows_accepted,
                "rows_quarantined": result.rows_quarantined,
                "quarantine_reasons": dict(result.reasons),
                "cleaned": dict(result.cleaned),
                "blank_lines": result.blank_lines,
                "ingested_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            }
            result.manifest_path = str(staging.commit(manifest))
        except BaseException:
            staging.cleanup()
            raise
        if supersedes is not None:
            deposits.reconcile(vault, definition.name)  # tombstone and delete the replaced deposit
    return result


def _check_not_already_deposited(vault: Path, d: SourceDefinition, path: Path, staging: "_Staging", supersedes: str | None) -> None:
    """Record ids another live deposit of the source already holds: the same rows re-sent
    (under a new name or re-exported) or overlapping extracts. Refused before anything is
    written; a correction names the deposit it replaces (``supersedes``)."""
    ids = pa.chunked_array(staging.record_ids, pa.string()) if staging.record_ids else pa.chunked_array([], pa.string())
    for other in deposits.live_deposits(vault, d.name):
        if other == supersedes:
            continue
        part = vault / "identifiers" / d.name / f"{other}.parquet"
        if not part.is_file():
            continue
        theirs = pq.read_table(part, columns=["source_record_id", "role"])
        theirs = pc.filter(theirs["source_record_id"], pc.equal(theirs["role"], SUBJECT_ROLE))
        repeated = int(pc.sum(pc.is_in(ids, value_set=theirs.combine_chunks())).as_py() or 0)
        if not repeated:
            continue
        manifest = json.loads((deposits.manifest_dir(vault, d.name) / f"{other}.json").read_text(encoding="utf-8"))
        if repeated == len(ids) == len(theirs):
            what = f"the same {repeated:,} records as deposit {other} (file {manifest.get('file_name')!r}): a duplicate under another name"
        else:
            what = f"{repeated:,} of its {len(ids):,} record ids are already in deposit {other} (file {manifest.get('file_name')!r})"
        raise FileRejected(path, f"{what}; to replace that deposit with this file use `enclave data supersede {d.name} {other} FILE`",
                           field=d.record_id)


def _ingest_into(staging: _Staging, d: SourceDefinition, path: Path, facts, chunk_rows: int, today: dt.date, result: IngestResult) -> None:
    date_format = d.date_format
    if d.format == "csv":
        chunks = read_csv_chunks(path, d.columns, chunk_rows, facts, trailer_prefix=d.trailer_prefix)
    else:
        # Typed date columns are rendered in the definition's date_format, so string and typed
        # date columns of one file are checked by the same rule (never silently as ISO).
        chunks = read_parquet_chunks(path, d.columns, chunk_rows, date_format=date_format)
    zip_nbhd = _zip_to_neighbourhood()
    # Seen record ids as 64-bit hashes (collision odds ~1e-6 at 10M rows): memory grows by
    # ~60 bytes a row, not with the width of the file.
    seen_ids: set[int] = set()
    for chunk in chunks:
        result.blank_lines += chunk.blank_lines
        width_rows = len(chunk.wrong_width) + len(chunk.malformed)
        result.largest_chunk_rows = max(result.largest_chunk_rows, len(chunk.rows) + width_rows)
        for row, line, fields in chunk.wrong_width:
            reason = f"field_count: {len(fields)} fields, expected {len(d.columns)}"
            if row in chunk.suspect:
                reason = "no_final_newline: the last line has no line end; the file may be cut short (re-send it complete)"
            _quarantine_raw(staging, row, line, "", reason, fields, result)
        for row, line, reason in chunk.malformed:
            _quarantine_raw(staging, row, line, "", reason, [], result)
        if not chunk.rows:
            continue
        checked = validate_chunk(d, chunk.columns, today, date_format)
        if checked.refusal is not None:
            i, column, reason = checked.refusal
            raise FileRejected(path, f"{reason} in row {chunk.rows[i]}, and the definition says on_invalid: refuse_file for this column",
                               line=chunk.lines[i], field=column)
        result.cleaned.update(checked.cleaned)
        ok = checked.ok.copy()
        rid = checked.values[d.record_id].to_pylist()
        problems = checked.problems
        for i in np.flatnonzero(ok):
            h = hash(rid[i])
            if h in seen_ids:
                ok[i] = False
                problems[int(i)] = [(d.record_id, "duplicate_record_id")]
            else:
                seen_ids.add(h)
        result.rows_read += len(chunk.rows)
        for i, issues in sorted(problems.items()):
            fields = [chunk.columns[c][i] for c in d.columns]
            _write_quarantine(staging, chunk.rows[i], chunk.lines[i], issues, fields, result)
        for i, issues in sorted(checked.flags.items()):
            if ok[i]:
                _write_flags(staging, chunk.rows[i], chunk.lines[i], issues, [chunk.columns[c][i] for c in d.columns], result)
        if ok.any():
            staging.record_ids.append(checked.values[d.record_id].filter(pa.array(ok)))
            _write_accepted(staging, d, checked.values, ok, zip_nbhd, result)


def _quarantine_raw(staging: _Staging, row: int, line: int, column: str, reason: str, fields: list, result: IngestResult) -> None:
    code = reason.split(":")[0]
    result.reasons[code] += 1
    result.rows_quarantined += 1
    result.rows_read += 1
    width = len(staging.definition.columns)
    padded = (list(fields) + [""] * width)[:width]
    # Surplus fields of a too-wide row are kept too (JSON list), so nothing is dropped unseen.
    extra = json.dumps(list(fields[width:]), ensure_ascii=False) if len(fields) > width else ""
    staging.quarantine.writerow([row, line, column, reason] + [_neutralise(v) for v in padded] + [_neutralise(extra)])
    result.note(row, line, column, code)


def _write_quarantine(staging: _Staging, row: int, line: int, issues: list[tuple[str, str]], fields: list, result: IngestResult) -> None:
    for code in dict.fromkeys(reason for _, reason in issues):
        result.reasons[code] += 1
    result.rows_quarantined += 1
    columns, reasons = ";".join(c for c, _ in issues), ";".join(r for _, r in issues)
    staging.quarantine.writerow([row, line, columns, reasons] + [_neutralise(v) for v in fields] + [""])
    result.note(row, line, columns, reasons)


def _write_flags(staging: _Staging, row: int, line: int, issues: list[tuple[str, str]], fields: list, result: IngestResult) -> None:
    result.rows_flagged += 1
    for column, reason in issues:
        per_column = result.flags.setdefault(column, {})
        per_column[reason] = per_column.get(reason, 0) + 1
    staging.flags.writerow([row, line, ";".join(c for c, _ in issues), ";".join(r for _, r in issues)]
                           + [_neutralise(v) for v in fields])


def _take(values, ok: np.ndarray):
    return values[ok] if isinstance(values, np.ndarray) else values.filter(pa.array(ok))


def _date32(days: np.ndarray) -> pa.Array:
    return pa.array(days.astype("datetime64[D]"), type=pa.date32(), from_pandas=True)


def _iso(days: np.ndarray) -> pa.Array:
    out = np.datetime_as_string(days.astype("datetime64[D]")).astype(object)
    out[np.isnat(days)] = None
    return pa.array(out, type=pa.string())


def _write_accepted(staging: _Staging, d: SourceDefinition, values: dict, ok: np.ndarray,
                    zip_nbhd: dict[str, str], result: IngestResult) -> None:
    v = {c: _take(x, ok) for c, x in values.items()}
    n = int(ok.sum())
    result.rows_accepted += n
    rid = v[d.record_id]
    subject_key = pc.binary_join_element_wise(d.name, rid, ":")
    empty = pa.nulls(n, pa.string())

    # Identifier partition: one row per (record, role) that has any identifier.
    tables = []
    relationships = []
    for role, mapping in d.roles.items():
        present = np.ones(n, dtype=bool) if role == SUBJECT_ROLE else np.zeros(n, dtype=bool)
        for column in mapping.values():
            x = v[column]
            present |= ~np.isnat(x) if isinstance(x, np.ndarray) else np.asarray(pc.is_valid(x).to_numpy(zero_copy_only=False), dtype=bool)
        keep = pa.array(present)
        keys = subject_key if role == SUBJECT_ROLE else pc.binary_join_element_wise(subject_key, role, "/")
        cols = {"record_key": keys, "source": pa.array([d.name] * n, pa.string()), "source_record_id": rid,
                "role": pa.array([role] * n, pa.string())}
        for std in STANDARD_FIELDS:
            column = mapping.get(std)
            cols[std] = empty if column is None else _iso(v[column]) if std == "dob" else v[column]
        tables.append(pa.Table.from_pydict(cols, schema=IDENTIFIER_SCHEMA).filter(keep))
        if role != SUBJECT_ROLE:
            relationships.append(pa.Table.from_pydict({
                "record_key_from": keys, "record_key_to": subject_key, "relation": pa.array([d.related[role].relation] * n, pa.string()),
            }, schema=RELATIONSHIP_SCHEMA).filter(keep))
    staging.write("identifiers", pa.concat_tables(tables))
    staging.write("relationships", pa.concat_tables(relationships) if relationships else RELATIONSHIP_SCHEMA.empty_table())

    # Content partition: no identifier column ever enters it.
    arrays = []
    for f in staging.content_schema:
        if f.name == "record_key":
            arrays.append(subject_key)
        elif f.name == "event_date":
            arrays.append(_date32(v[d.event_date]))
        elif f.name == "neighbourhood":
            zips = v[d.identifiers["zip"]]
            arrays.append(pc.take(pa.array(list(zip_nbhd.values()), pa.string()),
                                  pc.index_in(zips, value_set=pa.array(list(zip_nbhd), pa.string()))))
        elif pa.types.is_date32(f.type):
            arrays.append(_date32(v[f.name]))
        else:
            arrays.append(v[f.name].cast(f.type))
    staging.write("content", pa.Table.from_arrays(arrays, schema=staging.content_schema))


def result_as_dict(result: IngestResult) -> dict:
    out = asdict(result)
    out["reasons"] = dict(result.reasons)
    out["cleaned"] = dict(result.cleaned)
    return out
