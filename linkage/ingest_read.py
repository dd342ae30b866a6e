"""Streaming readers for deposited files: a first pass that hashes and checks the bytes,
then chunked row readers for CSV and Parquet. File-level problems raise ``FileRejected``
with the file, line and (where known) the column; messages never quote cell values."""
from __future__ import annotations

import codecs
import csv
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

MAX_FIELD_BYTES = 1 << 20  # a field above 1 MiB is not data we accept; the csv module stops there
_READ_BLOCK = 1 << 20


class FileRejected(ValueError):
    """The whole file is refused; nothing is written."""

    def __init__(self, file: Path | str, message: str, line: int | None = None, field: str | None = None):
        self.file, self.line, self.field = str(file), line, field
        where = f"{Path(self.file).name}" + (f", line {line}" if line else "") + (f", field '{field}'" if field else "")
        super().__init__(f"{where}: {message}")


@dataclass
class FileFacts:
    sha256: str
    size: int
    bom: bool
    ends_with_newline: bool
    lines: int
    mtime_ns: int = 0


def unchanged_since(path: Path, facts: FileFacts) -> None:
    """The deposit id is the hash of the first pass: refuse a file that changed in between."""
    st = path.stat()
    if st.st_size != facts.size or st.st_mtime_ns != facts.mtime_ns:
        raise FileRejected(path, "file changed while it was being ingested; deposit it again when it is complete")


@dataclass
class RowChunk:
    """Raw rows of one chunk: column -> list of str|None, with row and line numbers."""

    columns: dict[str, list]
    rows: list[int]
    lines: list[int]
    malformed: list[tuple[int, int, str]] = field(default_factory=list)  # (row, line, reason) of unparsable rows
    wrong_width: list[tuple[int, int, list[str]]] = field(default_factory=list)  # (row, line, raw fields)
    blank_lines: int = 0
    suspect: set[int] = field(default_factory=set)  # rows of wrong_width quarantined as a possibly cut last line


def inspect_bytes(path: Path, fmt: str) -> FileFacts:
    """One streaming pass: sha256, size, and for CSV: encoding, NUL bytes, line count."""
    if not path.exists():
        raise FileRejected(path, "file does not exist")
    if path.is_symlink() or not path.is_file():
        raise FileRejected(path, "not a regular file (symlinks and devices are refused)")
    mtime_ns = path.stat().st_mtime_ns
    digest = hashlib.sha256()
    size = 0
    lines = 0
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    last = b""
    head = b""
    with open(path, "rb") as fh:
        while block := fh.read(_READ_BLOCK):
            if not head:
                head = block[:8]
                if fmt == "csv":
                    _check_csv_magic(path, block)
            digest.update(block)
            if fmt == "csv":
                nul = block.find(b"\x00")
                if nul >= 0:
                    raise FileRejected(path, "contains NUL bytes: binary or corrupted file", line=lines + block.count(b"\n", 0, nul) + 1)
                try:
                    decoder.decode(block)
                except UnicodeDecodeError as exc:
                    bad_line = lines + block.count(b"\n", 0, exc.start) + 1
                    raise FileRejected(path, "not valid UTF-8 (re-export the file as UTF-8)", line=bad_line) from None
                lines += block.count(b"\n")
            size += len(block)
            last = block[-1:]
        if fmt == "csv":
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                raise FileRejected(path, "ends inside a UTF-8 character: truncated or not UTF-8", line=lines + 1) from None
    if size == 0:
        raise FileRejected(path, "empty file (0 bytes)")
    if fmt == "parquet":
        with open(path, "rb") as fh:
            start = fh.read(4)
            fh.seek(max(0, size - 4))
            end = fh.read(4)
        if start != b"PAR1":
            raise FileRejected(path, "not a Parquet file (missing PAR1 magic); the source's format is parquet")
        if end != b"PAR1":
            raise FileRejected(path, "Parquet footer missing: truncated file")
    return FileFacts(digest.hexdigest(), size, head.startswith(codecs.BOM_UTF8), last == b"\n", lines, mtime_ns)


def _check_csv_magic(path: Path, block: bytes) -> None:
    if block.startswith(b"PAR1"):
        raise FileRejected(path, "file is Parquet but the source's format is csv")
    if block.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        raise FileRejected(path, "UTF-16/32 encoded (byte-order mark); re-export the file as UTF-8", line=1)
    for magic, kind in ((b"\x1f\x8b", "gzip"), (b"PK\x03\x04", "zip/xlsx"), (b"%PDF", "PDF"), (b"\xd0\xcf\x11\xe0", "legacy Office")):
        if block.startswith(magic):
            raise FileRejected(path, f"binary file ({kind}), not CSV text", line=1)


def check_header(path: Path, header: list[str], expected: list[str], line: int = 1) -> None:
    """Exact column set: missing, unexpected and duplicated columns are each named."""
    names = [h.strip() for h in header]
    if not any(names):
        raise FileRejected(path, "header row is empty", line=line)
    dups = sorted({h for h in names if names.count(h) > 1})
    if dups:
        raise FileRejected(path, f"duplicated column(s) {dups}", line=line, field=dups[0])
    missing = [c for c in expected if c not in names]
    extra = [h for h in names if h not in expected]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing column(s) {missing}")
        if extra:
            # An undeclared column may carry identifiers nobody agreed to deposit: refuse it.
            parts.append(f"unexpected column(s) {extra}")
        lower = {e.lower(): e for e in expected}
        hints = [f"{h!r} -> {lower[h.lower()]!r}" for h in extra if h.lower() in lower]
        if hints:
            parts.append(f"(column names are case-sensitive: {', '.join(hints)})")
        if len(names) == 1 and any(sep in names[0] for sep in ";|\t"):
            parts.append("(the file looks delimited by something other than a comma)")
        raise FileRejected(path, "; ".join(parts), line=line, field=(missing or extra)[0])


def read_csv_chunks(path: Path, expected: list[str], chunk_rows: int, facts: FileFacts,
                    trailer_prefix: str | None = None) -> Iterator[RowChunk]:
    """Rows in chunks. The last line is where a cut file shows: with a declared trailer
    (``<prefix>,<data rows>``) the count is checked; without one, a last row that has no line
    end is quarantined as ``no_final_newline`` (a file cut inside ``3444`` would otherwise
    store ``344``), its raw fields kept for the steward."""
    csv.field_size_limit(MAX_FIELD_BYTES)
    # newline="\n": lines end only at LF, nothing is translated. A bare CR inside an unquoted
    # field then makes the csv module raise (the row is quarantined) instead of silently
    # splitting the record in two, as universal-newline reading would.
    with open(path, "r", encoding="utf-8-sig", newline="\n") as fh:
        reader = csv.reader(fh, strict=True)
        try:
            header = next(reader)
        except StopIteration:
            raise FileRejected(path, "no header row") from None
        except csv.Error as exc:
            raise FileRejected(path, f"unreadable header ({exc})", line=1) from None
        check_header(path, header, expected)
        order = [h.strip() for h in header]
        width = len(order)
        chunk = _new_chunk(order)
        good: list[list[str]] = []  # rows of the chunk; turned into columns in one go by zip
        row_no = 0
        pending: tuple[int, list[str]] | None = None  # one row of look-ahead to recognise the last row

        def emit(line: int, fields: list[str]) -> None:
            nonlocal row_no
            row_no += 1
            if len(fields) != width:
                chunk.wrong_width.append((row_no, line, fields))
                return
            good.append(fields)
            chunk.rows.append(row_no)
            chunk.lines.append(line)

        while True:
            start_line = reader.line_num + 1
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                message = str(exc)
                if "unexpected end of data" in message:
                    raise FileRejected(path, "ends inside a quoted field: truncated file or unbalanced quote", line=start_line) from None
                if "field larger than field limit" in message:
                    raise FileRejected(path, f"a field is larger than {MAX_FIELD_BYTES} bytes", line=start_line) from None
                if pending:
                    emit(*pending)
                    pending = None
                row_no += 1
                chunk.malformed.append((row_no, start_line, f"malformed_csv: {message}"))
                continue
            if not fields:
                chunk.blank_lines += 1  # an empty line carries no data; counted, not quarantined
                continue
            if pending:
                emit(*pending)
            pending = (start_line, fields)
            if len(chunk.rows) + len(chunk.wrong_width) + len(chunk.malformed) >= chunk_rows:
                yield _columns(chunk, order, good)
                chunk = _new_chunk(order)
                good = []
        if trailer_prefix is not None:
            _check_trailer(path, pending, trailer_prefix, row_no)
            pending = None
        if pending:
            line, fields = pending
            if len(fields) != width and not facts.ends_with_newline:
                raise FileRejected(path, f"last row has {len(fields)} of {width} fields and no line end: truncated file", line=line)
            if not facts.ends_with_newline:
                row_no += 1
                by_name = dict(zip(order, fields))
                chunk.wrong_width.append((row_no, line, [by_name[c] for c in expected]))  # in the definition's order
                chunk.suspect.add(row_no)
            else:
                emit(line, fields)
        if row_no == 0:
            raise FileRejected(path, "no data rows after the header")
        yield _columns(chunk, order, good)


def _check_trailer(path: Path, last: tuple[int, list[str]] | None, prefix: str, rows_before: int) -> None:
    """The agency's own row count on the last line: a cut or padded file shows here."""
    if last is None or not last[1] or last[1][0].strip() != prefix:
        raise FileRejected(path, f"no trailer line '{prefix},<rows>' at the end: the file is truncated or the trailer is missing",
                           line=last[0] if last else None)
    line, fields = last
    if len(fields) < 2 or not fields[1].strip().isdigit():
        raise FileRejected(path, f"trailer line does not give a row count ('{prefix},<rows>')", line=line)
    declared = int(fields[1].strip())
    if declared != rows_before:
        raise FileRejected(path, f"trailer declares {declared:,} data rows but the file has {rows_before:,}: truncated or altered file",
                           line=line)


def _columns(chunk: RowChunk, order: list[str], good: list[list[str]]) -> RowChunk:
    if good:
        chunk.columns = {name: list(values) for name, values in zip(order, zip(*good))}
    return chunk


def _new_chunk(order: list[str]) -> RowChunk:
    return RowChunk(columns={c: [] for c in order}, rows=[], lines=[])


def read_parquet_chunks(path: Path, expected: list[str], chunk_rows: int, date_format: str = "%Y-%m-%d") -> Iterator[RowChunk]:
    try:
        pf = pq.ParquetFile(path)
        schema = pf.schema_arrow
    except (pa.ArrowException, OSError) as exc:
        raise FileRejected(path, f"not a readable Parquet file ({type(exc).__name__})") from None
    check_header(path, list(schema.names), expected, line=None)
    if pf.metadata.num_rows == 0:
        raise FileRejected(path, "no data rows")
    row_no = 0
    try:
        for batch in pf.iter_batches(batch_size=chunk_rows):
            cols: dict[str, list] = {}
            for name in schema.names:
                col = batch.column(name)
                if pa.types.is_timestamp(col.type):
                    col = pc.cast(col, pa.date32(), safe=False)  # a timestamp's day; the time of day is not kept
                if pa.types.is_date(col.type):
                    # Rendered in the definition's date_format, the one rule every date is checked by.
                    col = pc.strftime(pc.cast(col, pa.timestamp("s")), format=date_format)
                if pa.types.is_nested(col.type) or pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type):
                    raise FileRejected(path, f"column type {col.type} is not a scalar text/number/date type", field=name)
                cols[name] = pc.cast(col, pa.string()).to_pylist() if not pa.types.is_string(col.type) else col.to_pylist()
            n = batch.num_rows
            rows = list(range(row_no + 1, row_no + n + 1))
            row_no += n
            yield RowChunk(columns=cols, rows=rows, lines=rows)
    except (pa.ArrowException, OSError) as exc:  # pyarrow reports corrupt pages as OSError
        raise FileRejected(path, f"Parquet data cannot be decoded ({type(exc).__name__}): corrupted or truncated") from None
