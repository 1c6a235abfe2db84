"""The ``cot`` source: CFTC Commitments of Traders, disaggregated and traders-in-financial-futures reports.

CFTC publishes one zip per report and year under https://www.cftc.gov/files/dea/history/ holding one
comma-separated text file with a header row:

=================  ==========================  =========================  ===============
report_type        futures-and-options (dflt)  futures only               file in the zip
=================  ==========================  =========================  ===============
disaggregated      com_disagg_txt_{year}.zip   fut_disagg_txt_{year}.zip  c_year.txt / f_year.txt
financial (TFF)    com_fin_txt_{year}.zip      fut_fin_txt_{year}.zip     FinComYY.txt / FinFutYY.txt
=================  ==========================  =========================  ===============

Annual files start in 2010 (earlier years only exist in multi-year archives, which a user can download and
pass as ``path``).  ``CotSource(path=...)`` reads such downloaded files instead: a zip, a .txt/.csv, or a
directory of them; each file's report type is recognised from its columns.

Header names are matched after normalising (lower case, runs of non-alphanumerics -> one ``_``), which absorbs
CFTC's quirks: ``Swap__Positions_Short_All`` (double underscore), ``..._ALL`` vs ``..._All``, and the
date header ``Report_Date_as_YYYY-MM-DD`` (2013+) vs ``Report_Date_as_MM_DD_YYYY`` (older files, ISO or
M/D/Y values); ``As_of_Date_In_Form_YYMMDD`` is the fallback date.  Codes such as ``043602`` stay text.

Rows are mapped, not judged: a row without a readable date or market code, with a count that is not a
number, or with the wrong number of fields goes to ``RawBatch.unparsable`` (its ``raw`` names the file).
``_row_no`` counts data rows across the batch's files in order (file 1 rows 1..n1, file 2 from n1+1).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import re
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from quantlake.errors import (
    InvalidDateError,
    MalformedFileError,
    SourceError,
    SourceUnavailableError,
    UserInputError,
)
from quantlake.redact import redact_urls
from quantlake.sources.base import ROW_NO, RawBatch
from quantlake.sources.netutil import Timeouts, host_of, offline_reason, one_line
from quantlake.sources.text import check_first_line_bytes, shown

NAME = "cot"
DEFAULT_BASE_URL = "https://www.cftc.gov/files/dea/history"
FIRST_ANNUAL_YEAR = 2010
USER_AGENT = "quantlake (CFTC COT history download)"  # CFTC answers 403 to clients without one

# lake column -> normalised CFTC header (without the optional trailing "_all")
_COMMON = {"open_interest": "open_interest"}
_DISAGG = {
    "prod_merc_long": "prod_merc_positions_long",
    "prod_merc_short": "prod_merc_positions_short",
    "swap_long": "swap_positions_long",
    "swap_short": "swap_positions_short",  # Swap__Positions_Short_All in the files
    "managed_money_long": "m_money_positions_long",
    "managed_money_short": "m_money_positions_short",
    "other_rept_long": "other_rept_positions_long",
    "other_rept_short": "other_rept_positions_short",
    "nonrept_long": "nonrept_positions_long",
    "nonrept_short": "nonrept_positions_short",
}
_FIN = {
    "dealer_long": "dealer_positions_long",
    "dealer_short": "dealer_positions_short",
    "asset_mgr_long": "asset_mgr_positions_long",
    "asset_mgr_short": "asset_mgr_positions_short",
    "lev_money_long": "lev_money_positions_long",
    "lev_money_short": "lev_money_positions_short",
    "other_rept_long": "other_rept_positions_long",
    "other_rept_short": "other_rept_positions_short",
    "nonrept_long": "nonrept_positions_long",
    "nonrept_short": "nonrept_positions_short",
}
COUNT_COLUMNS = [
    "open_interest",
    "prod_merc_long", "prod_merc_short", "swap_long", "swap_short", "managed_money_long", "managed_money_short",
    "dealer_long", "dealer_short", "asset_mgr_long", "asset_mgr_short", "lev_money_long", "lev_money_short",
    "other_rept_long", "other_rept_short", "nonrept_long", "nonrept_short",
]  # fmt: skip
FRAME_COLUMNS = ["report_date", "market_code", "report_type", "market_name", *COUNT_COLUMNS, "source", ROW_NO]


@dataclass(frozen=True)
class Report:
    name: str
    combined_file: str
    futures_file: str
    counts: dict[str, str]


REPORTS = {
    "disaggregated": Report("disaggregated", "com_disagg_txt_{year}.zip", "fut_disagg_txt_{year}.zip",
                            {**_COMMON, **_DISAGG}),
    "financial": Report("financial", "com_fin_txt_{year}.zip", "fut_fin_txt_{year}.zip", {**_COMMON, **_FIN}),
}  # fmt: skip

_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_MISSING = {"", ".", "n/a", "na"}


def normalize_header(name: str) -> str:
    """``'Swap__Positions_Short_All'`` -> ``'swap_positions_short_all'``; ``'Report_Date_as_YYYY-MM-DD'`` ->
    ``'report_date_as_yyyy_mm_dd'``."""
    return _NON_ALNUM.sub("_", name.strip().lower()).strip("_")


def report_type_of(report_type: str) -> Report:
    key = report_type.strip().lower()
    if key in ("tff", "traders_in_financial_futures", "fin"):
        key = "financial"
    if key not in REPORTS:
        raise UserInputError(f"unknown COT report type {report_type!r}; choose one of {', '.join(REPORTS)}")
    return REPORTS[key]


# --------------------------------------------------------------------------------------------- parsing
@dataclass
class _Columns:
    """Positions of the needed columns in one file's header."""

    market_name: int | None
    market_code: int
    report_date: int | None
    yymmdd: int | None
    counts: dict[str, int]


def _locate(header: Sequence[str], report: Report) -> _Columns | list[str]:
    """Column positions for ``report`` in ``header``, or the list of CFTC columns that are missing."""
    norm = [normalize_header(h) for h in header]

    def find(base: str) -> int | None:
        for cand in (f"{base}_all", base):
            if cand in norm:
                return norm.index(cand)
        return None

    date = next((i for i, h in enumerate(norm) if h.startswith("report_date_as")), None)
    yymmdd = next((i for i, h in enumerate(norm) if h.startswith("as_of_date_in_form_yymmdd")), None)
    code = find("cftc_contract_market_code")
    counts = {col: find(base) for col, base in report.counts.items()}
    missing = [f"{base}_all" for col, base in report.counts.items() if counts[col] is None]
    if code is None:
        missing.insert(0, "cftc_contract_market_code")
    if date is None and yymmdd is None:
        missing.insert(0, "report_date_as_yyyy_mm_dd")
    if missing or code is None:
        return missing
    return _Columns(find("market_and_exchange_names"), code, date, yymmdd,
                    {k: v for k, v in counts.items() if v is not None})  # fmt: skip


def detect_report(header: Sequence[str]) -> Report | None:
    """Which report a file holds, from its header (None if neither)."""
    for report in (REPORTS["financial"], REPORTS["disaggregated"]):
        if isinstance(_locate(header, report), _Columns):
            return report
    return None


def _parse_date(text: str) -> dt.date | None:
    s = text.strip()
    if not s:
        return None
    head = s.split()[0]
    for fmt in ("%Y-%m-%d", "%m/%d/%Y", "%Y/%m/%d", "%m/%d/%y"):
        try:
            return dt.datetime.strptime(head, fmt).date()
        except ValueError:
            continue
    return None


def _parse_yymmdd(text: str) -> dt.date | None:
    s = text.strip()
    if len(s) == 5:  # leading zero lost somewhere upstream
        s = "0" + s
    try:
        return dt.datetime.strptime(s, "%y%m%d").date()
    except ValueError:
        return None


def _number(text: str) -> float | None:
    """Count from a cell: '' and '.' are missing (NaN); None means "not a number"."""
    s = text.strip().replace(",", "")
    if s.lower() in _MISSING:
        return math.nan
    try:
        value = float(s)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


@dataclass
class _Table:
    """One CFTC text file: where it came from, its header and its rows."""

    name: str
    header: list[str]
    rows: list[list[str]]


def read_tables(data: bytes, name: str) -> list[_Table]:
    """The CFTC text tables in ``data`` (a zip with .txt/.csv members, or one text file)."""
    if data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                members = [m for m in zf.namelist() if m.lower().endswith((".txt", ".csv"))]
                if not members:
                    raise MalformedFileError(f"{name}: the zip holds no .txt or .csv file")
                return [_table(zf.read(m), f"{name}!{m}") for m in sorted(members)]
        except zipfile.BadZipFile:
            raise MalformedFileError(f"{name}: not a readable zip file") from None
    return [_table(data, name)]


def _table(data: bytes, name: str) -> _Table:
    check_first_line_bytes(data, name)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    lines = [row for row in csv.reader(io.StringIO(text)) if any(c.strip() for c in row)]
    if not lines:
        raise MalformedFileError(f"{name}: empty file")
    return _Table(name, [h.strip() for h in lines[0]], lines[1:])


def tables_to_frame(
    tables: Sequence[_Table], report: Report, start: dt.date | None, end: dt.date | None
) -> tuple[pd.DataFrame, list[tuple[int, str, dict[str, object]]]]:
    """Map CFTC rows to ``cot_positions`` columns (rows outside [start, end] are skipped, not rejected)."""
    records: list[dict[str, object]] = []
    bad: list[tuple[int, str, dict[str, object]]] = []
    row_no = 0
    for table in tables:
        cols = _locate(table.header, report)
        if not isinstance(cols, _Columns):
            raise MalformedFileError(
                f"{table.name}: not a CFTC {report.name} COT file (missing column(s): {', '.join(cols)})"
            )
        width = len(table.header)
        for cells in table.rows:
            row_no += 1

            def raw(cells: list[str] = cells, t: _Table = table) -> dict[str, object]:
                out: dict[str, object] = {"_file": t.name}
                out.update({h: c.strip() for h, c in zip(t.header, cells, strict=False)})
                return out

            if len(cells) != width:
                bad.append((row_no, f"row has {len(cells)} fields, the header has {width}", raw()))
                continue
            day = _parse_date(cells[cols.report_date]) if cols.report_date is not None else None
            if day is None and cols.yymmdd is not None:
                day = _parse_yymmdd(cells[cols.yymmdd])
            if day is None:
                got = cells[cols.report_date] if cols.report_date is not None else ""
                bad.append((row_no, f"report date is not a date (got {shown(got.strip())})", raw()))
                continue
            code = cells[cols.market_code].strip()
            if not code:
                bad.append((row_no, "market code is missing", raw()))
                continue
            if (start and day < start) or (end and day > end):
                continue
            rec: dict[str, object] = {
                "report_date": day,
                "market_code": code,
                "report_type": report.name,
                "market_name": cells[cols.market_name].strip() if cols.market_name is not None else None,
            }
            problem = None
            for col, i in cols.counts.items():
                value = _number(cells[i])
                if value is None:
                    problem = f"{table.header[i]} is not a number (got {shown(cells[i].strip())})"
                    break
                rec[col] = value
            if problem:
                bad.append((row_no, problem, raw()))
                continue
            rec["source"] = NAME
            rec[ROW_NO] = row_no
            records.append(rec)
    frame = pd.DataFrame.from_records(records, columns=FRAME_COLUMNS)
    for col in COUNT_COLUMNS:
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
    frame[ROW_NO] = frame[ROW_NO].astype(np.int64)
    return frame, bad


# --------------------------------------------------------------------------------------------- source
def _utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


class CotSource:
    """CFTC COT reports from CFTC's yearly zips over HTTP, or from files the user downloaded (CotSource)."""

    name = NAME

    def __init__(
        self,
        path: Path | str | None = None,
        *,
        base_url: str = DEFAULT_BASE_URL,
        futures_only: bool = False,
        timeouts: Timeouts | None = None,
        first_year: int = FIRST_ANNUAL_YEAR,
        today: Callable[[], dt.date] = _utc_today,
    ) -> None:
        self.path = Path(path).expanduser() if path is not None else None
        if self.path is not None and not self.path.exists():
            raise UserInputError(f"--path {self.path} does not exist")
        self.base_url = base_url.rstrip("/")
        self.futures_only = futures_only
        self.timeouts = timeouts or Timeouts()
        self.first_year = first_year
        self.today = today

    @property
    def incremental(self) -> bool:
        """Downloads continue from the last stored report date; local files are always read whole."""
        return self.path is None

    def cot(self, report_type: str, start: dt.date | None = None, end: dt.date | None = None) -> RawBatch:
        report = report_type_of(report_type)
        if start and end and start > end:
            raise InvalidDateError(f"cot: start {start} is after end {end}")
        if self.path is not None:
            tables = [t for t in self._local_tables() if detect_report(t.header) is report]
            origin = f"{self.path}#{report.name}"  # one path may hold both reports
        else:
            tables, origin = self._download(report, start, end)
        frame, bad = tables_to_frame(tables, report, start, end)
        return RawBatch("cot_positions", frame, origin, bad)

    # ------------------------------------------------------------------ local files
    def _local_tables(self) -> list[_Table]:
        assert self.path is not None
        files = [self.path] if self.path.is_file() else sorted(
            p for p in self.path.iterdir() if p.is_file() and p.suffix.lower() in (".zip", ".txt", ".csv")
        )
        if not files:
            raise UserInputError(f"{self.path}: no .zip, .txt or .csv COT files found")
        tables = [t for f in files for t in read_tables(f.read_bytes(), str(f))]
        unknown = [t.name for t in tables if detect_report(t.header) is None]
        if unknown:
            raise MalformedFileError(
                f"{unknown[0]}: not a CFTC disaggregated or financial (TFF) COT file: expected columns such as "
                "Report_Date_as_YYYY-MM-DD, CFTC_Contract_Market_Code, Open_Interest_All, "
                "Prod_Merc_Positions_Long_All or Dealer_Positions_Long_All"
            )
        return tables

    # ------------------------------------------------------------------ network
    def years(self, start: dt.date | None, end: dt.date | None) -> list[int]:
        this_year = self.today().year
        first = max(start.year, self.first_year) if start else self.first_year
        last = min(end.year, this_year) if end else this_year
        return list(range(first, last + 1))

    def url(self, report: Report, year: int) -> str:
        pattern = report.futures_file if self.futures_only else report.combined_file
        return f"{self.base_url}/{pattern.format(year=year)}"

    def _download(self, report: Report, start: dt.date | None, end: dt.date | None) -> tuple[list[_Table], str]:
        years = self.years(start, end)
        tables: list[_Table] = []
        for year in years:
            url = self.url(report, year)
            data = self._get(url, missing_ok=year == self.today().year)
            if data is not None:
                try:
                    tables.extend(read_tables(data, url))
                except MalformedFileError as exc:  # CFTC sent something else than its files
                    raise SourceError(f"cot: {exc}") from None
        span = f"{years[0]}-{years[-1]}" if len(years) > 1 else str(years[0]) if years else "none"
        pattern = report.futures_file if self.futures_only else report.combined_file
        return tables, f"{self.base_url}/{pattern.format(year=span)}"  # e.g. .../com_fin_txt_2023-2024.zip

    def _get(self, url: str, missing_ok: bool) -> bytes | None:
        import requests

        try:
            resp = requests.get(url, timeout=self.timeouts.pair, headers={"User-Agent": USER_AGENT})
        except requests.RequestException as exc:
            reason = offline_reason(exc) or f"{type(exc).__name__}: {one_line(str(exc))}"
            raise SourceUnavailableError(
                f"cot: cannot reach {host_of(url)}: {reason} (while fetching {redact_urls(url)})"
            ) from None
        if resp.status_code == 404 and missing_ok:
            return None  # this year's file is not published yet (early January)
        if resp.status_code >= 400:
            raise SourceError(f"cot: HTTP {resp.status_code} from CFTC for {url}")
        return resp.content
