"""Finding chain files and reading them in bounded batches (files larger than memory stream).

A *chain file* is a ``.csv``/``.txt`` (optionally ``.gz``), a member of a ``.zip``, or a ``.parquet`` file.
CSV text is read by pyarrow's streaming CSV reader with every column as text (the layouts convert cells
themselves, so one bad cell costs one row, not the file).  That fast path needs well-formed UTF-8 CSV; at the
first row it cannot take (a wrong number of fields, bytes that are not UTF-8, a cell larger than a block) the
file is read again from its first row by Python's ``csv`` module, which numbers every row exactly and hands
malformed rows over as rejects.  Rows already committed from the fast path are identical on the second read,
so the lake's merge skips them.

Batches carry the 1-based number of their first data row; rows are numbered in file order.
"""

from __future__ import annotations

import csv
import gzip
import io
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from quantlake.errors import MalformedFileError, UserInputError
from quantlake.sources.text import MAX_HEADER_BYTES, header_too_long, shown

TEXT_SUFFIXES = (".csv", ".txt", ".csv.gz", ".txt.gz")
SUFFIXES = (*TEXT_SUFFIXES, ".zip", ".parquet")

BLOCK_BYTES = 16 << 20  # pyarrow CSV block: ~150k rows of a typical chain layout
csv.field_size_limit(min(sys.maxsize, 1 << 31 - 1))


@dataclass(frozen=True)
class ChainFile:
    """One readable table: a file, or one member of a zip archive."""

    path: Path
    member: str | None = None

    @property
    def origin(self) -> str:
        return f"{self.path}!{self.member}" if self.member else str(self.path)

    @property
    def name(self) -> str:
        return self.member or self.path.name

    @property
    def is_parquet(self) -> bool:
        return self.name.lower().endswith(".parquet")

    def open(self) -> IO[bytes]:
        """The file's bytes (decompressed)."""
        try:
            if self.member is not None:
                zf = zipfile.ZipFile(self.path)
                raw: IO[bytes] = zf.open(self.member)
            else:
                raw = self.path.open("rb")
            if self.name.lower().endswith(".gz"):
                return gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
            return raw
        except (OSError, zipfile.BadZipFile) as exc:
            raise MalformedFileError(f"{self.origin}: cannot open: {exc}") from None


def _suffix_ok(name: str) -> bool:
    return name.lower().endswith(SUFFIXES)


def discover(path: Path) -> list[ChainFile]:
    """Every chain file under ``path`` (a file, or a directory searched recursively), in name order."""
    path = path.expanduser()
    if not path.exists():
        raise UserInputError(f"--path {path} does not exist")
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and _suffix_ok(p.name))
    out: list[ChainFile] = []
    for f in files:
        if f.name.lower().endswith(".zip"):
            try:
                with zipfile.ZipFile(f) as zf:
                    members = sorted(
                        i.filename for i in zf.infolist() if not i.is_dir() and i.filename.lower().endswith(
                            (*TEXT_SUFFIXES, ".parquet"))
                    )  # fmt: skip
            except (zipfile.BadZipFile, OSError) as exc:
                raise MalformedFileError(f"{f}: not a readable zip archive: {exc}") from None
            if not members:
                raise MalformedFileError(f"{f}: the zip archive holds no .csv, .txt or .parquet file")
            out += [ChainFile(f, m) for m in members]
        elif _suffix_ok(f.name):
            out.append(ChainFile(f))
        else:
            raise UserInputError(f"{f}: not a chain file (expected {', '.join(SUFFIXES)})")
    if not out:
        raise UserInputError(f"{path}: no chain files ({', '.join(SUFFIXES)}) found")
    return out


def read_header(cf: ChainFile) -> list[str]:
    """The column names of a chain file, without reading its rows."""
    if cf.is_parquet:
        try:
            with cf.open() as fh:
                return list(pq.read_schema(fh).names)
        except (pa.ArrowException, OSError) as exc:
            raise MalformedFileError(f"{cf.origin}: not a readable Parquet file: {str(exc).splitlines()[0]}") from None
    try:
        with cf.open() as fh:
            line = fh.readline(MAX_HEADER_BYTES + 1)
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise MalformedFileError(f"{cf.origin}: cannot read: {exc}") from None
    if len(line) > MAX_HEADER_BYTES:
        raise header_too_long(cf.origin)
    text = line.decode("utf-8-sig", errors="replace").rstrip("\r\n")
    if not text.strip():
        raise MalformedFileError(f"{cf.origin}: empty file (no header line)")
    return next(csv.reader([text]))


@dataclass
class Batch:
    """Rows ``first_row .. first_row + len - 1`` of a file, every column as read (text for CSV)."""

    table: pa.Table
    first_row: int
    # rows that could not be split into the header's fields: (row number, reason, raw fields)
    malformed: list[tuple[int, str, list[str]]] = field(default_factory=list)
    # row number of each row of ``table`` when they are not consecutive from ``first_row``
    explicit_rows: np.ndarray | None = None

    @property
    def rows(self) -> int:
        return self.table.num_rows + len(self.malformed)

    @property
    def row_nos(self) -> np.ndarray:
        if self.explicit_rows is not None:
            return self.explicit_rows
        return np.arange(self.first_row, self.first_row + self.table.num_rows, dtype=np.int64)


class _SlowPath(Exception):
    """The fast CSV reader met a row it cannot take; read the file with the exact reader instead."""


def batches(cf: ChainFile, header: list[str], rows_per_batch: int = 250_000) -> Iterator[Batch]:
    """The file's rows in batches of at most ``rows_per_batch`` (memory stays bounded whatever the size)."""
    if cf.is_parquet:
        yield from _parquet_batches(cf, rows_per_batch)
        return
    done = 0
    try:
        for b in _fast_batches(cf, header, rows_per_batch):
            done += b.rows
            yield b
    except _SlowPath:
        yield from _exact_batches(cf, header, rows_per_batch, skip=done)


def _parquet_batches(cf: ChainFile, rows_per_batch: int) -> Iterator[Batch]:
    try:
        with cf.open() as fh:
            pf = pq.ParquetFile(fh)
            first = 1
            for rb in pf.iter_batches(batch_size=rows_per_batch):
                t = pa.Table.from_batches([rb])
                yield Batch(t, first)
                first += t.num_rows
    except (pa.ArrowException, OSError) as exc:
        raise MalformedFileError(f"{cf.origin}: cannot read Parquet: {str(exc).splitlines()[0]}") from None


def _fast_batches(cf: ChainFile, header: list[str], rows_per_batch: int) -> Iterator[Batch]:
    def invalid(row: pacsv.InvalidRow) -> str:
        return "error"  # the exact reader numbers and quarantines it

    names = [f"c{i}" for i in range(len(header))]  # header names may repeat or be empty
    read = pacsv.ReadOptions(block_size=BLOCK_BYTES, column_names=names, skip_rows=1, use_threads=True)
    parse = pacsv.ParseOptions(invalid_row_handler=invalid)
    convert = pacsv.ConvertOptions(
        column_types={n: pa.string() for n in names}, strings_can_be_null=True, null_values=[""],
        quoted_strings_can_be_null=True,
    )  # fmt: skip
    first = 1
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    with cf.open() as fh:
        try:
            reader = pacsv.open_csv(fh, read_options=read, parse_options=parse, convert_options=convert)
            for rb in reader:
                pending.append(rb)
                pending_rows += rb.num_rows
                while pending_rows >= rows_per_batch:
                    t = pa.Table.from_batches(pending).combine_chunks()
                    head, tail = t.slice(0, rows_per_batch), t.slice(rows_per_batch)
                    yield Batch(head, first)
                    first += head.num_rows
                    pending = tail.to_batches()
                    pending_rows = tail.num_rows
        except _SlowPath:
            raise
        except (pa.ArrowInvalid, UnicodeDecodeError, OSError, EOFError) as exc:
            if isinstance(exc, OSError | EOFError) and not isinstance(exc, pa.ArrowException):
                raise MalformedFileError(f"{cf.origin}: cannot read: {exc}") from None
            raise _SlowPath from None
    if pending_rows:
        yield Batch(pa.Table.from_batches(pending).combine_chunks(), first)


def _exact_batches(cf: ChainFile, header: list[str], rows_per_batch: int, skip: int) -> Iterator[Batch]:
    """Python's csv module over text decoded with replacement characters; exact row numbers."""
    width = len(header)
    cols: list[list[str | None]] = [[] for _ in range(width)]
    good_rows: list[int] = []
    malformed: list[tuple[int, str, list[str]]] = []
    first = row = 0
    try:
        with cf.open() as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")
            reader = csv.reader(text)
            next(reader, None)  # the header
            for fields in reader:
                row += 1
                if row <= skip:
                    continue
                if not first:
                    first = row
                if len(fields) != width:
                    if fields or width == 0:
                        malformed.append((row, f"row has {len(fields)} field(s), the header has {width}", fields))
                    else:
                        malformed.append((row, "empty line", fields))
                else:
                    good_rows.append(row)
                    for j, v in enumerate(fields):
                        cols[j].append(v if v != "" else None)
                if len(good_rows) + len(malformed) >= rows_per_batch:
                    yield _exact_batch(cols, good_rows, malformed, first)
                    cols = [[] for _ in range(width)]
                    good_rows, malformed = [], []
                    first = 0
    except (csv.Error, OSError, EOFError) as exc:
        raise MalformedFileError(f"{cf.origin}: unreadable after row {row}: {shown(str(exc))}") from None
    if first:
        yield _exact_batch(cols, good_rows, malformed, first)


def _exact_batch(
    cols: list[list[str | None]], good_rows: list[int], malformed: list[tuple[int, str, list[str]]], first: int
) -> Batch:
    t = pa.table({f"c{i}": pa.array(c, type=pa.string()) for i, c in enumerate(cols)})
    if not cols:  # a header without columns: only malformed rows
        t = pa.table({"c0": pa.array([], pa.string())})
    return Batch(t, first, malformed, np.asarray(good_rows, dtype=np.int64))
