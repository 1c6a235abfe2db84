"""Scanner outputs a person reads: a JSON file, plain text (terminal and MOTD) and the MOTD file itself.

The MOTD is written between two marker lines, so whatever else the file holds (the system's own message)
is kept and a new scan replaces only the previous scan's block.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

from execution.errors import NotificationError
from execution.scanner import ScanResult
from execution.settings import ScanConfig
from quantlake.config import paths
from quantlake.errors import ConfigError, MalformedFileError, TableNotFoundError
from quantlake.lake import CommitResult, Lake

MOTD_BEGIN = "# >>> quantlake scan >>>"
MOTD_END = "# <<< quantlake scan <<<"
TEXT_COLUMNS = ("rank", "symbol", "signal", "dir", "close", "score", "macd", "rsi", "rsi event")


def _clean(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalar
        return _clean(value.item())
    return value


def to_records(signals: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: _clean(v) for k, v in row.items()} for row in signals.to_dict(orient="records")]


def to_json(result: ScanResult) -> dict[str, Any]:
    """The whole scan as JSON-ready data: summary, config, universe and the ranked signals."""
    universe = result.universe.copy()
    return {
        "as_of": result.as_of.isoformat(),
        "start": result.start.isoformat(),
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "summary": result.summary(),
        "config": json.loads(result.config.model_dump_json()),
        "universe": to_records(universe),
        "signals": to_records(result.signals),
        "crosscheck": list(result.crosscheck),
    }


def write_json(result: ScanResult, directory: Path) -> Path:
    """``<directory>/signals_<as_of>.json`` (and ``latest.json``), written atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    text = json.dumps(to_json(result), indent=1, default=str)
    out = directory / f"signals_{result.as_of.isoformat()}.json"
    _atomic_write(out, text)
    _atomic_write(directory / "latest.json", text)
    return out


def _rsi_text(row: Any) -> str:
    if row.rsi_event is None or (isinstance(row.rsi_event, float) and math.isnan(row.rsi_event)):
        return ""
    return f"{row.rsi_event} on {_clean(row.rsi_event_date)}"


def text_rows(signals: pd.DataFrame) -> list[tuple[str, ...]]:
    """One tuple of display strings per signal, in :data:`TEXT_COLUMNS` order."""
    rows: list[tuple[str, ...]] = []
    for r in signals.itertuples(index=False):
        rows.append(
            (
                str(r.rank),
                str(r.symbol),
                str(r.signal),
                str(r.direction),
                f"{r.close:.2f}",
                f"{r.score:.1f}",
                "yes" if r.macd_confirms else "no",
                "" if pd.isna(r.rsi) else f"{r.rsi:.1f}",
                _rsi_text(r),
            )
        )
    return rows


def render_text(result: ScanResult, limit: int | None = None) -> str:
    """Plain text: a headline, the universe counts and a fixed-width table of the top signals on ``as_of``."""
    today = result.signals[result.signals["date"] == result.as_of].head(limit or result.config.top)
    s = result.summary()
    lines = [
        f"quantlake scan {result.as_of}: {len(today)} signal(s) in a universe of {s['universe']} "
        f"(of {s['symbols_with_bars']} symbols with bars)"
    ]
    if today.empty:
        lines.append("  no EMA crosses today")
        return "\n".join(lines) + "\n"
    rows = [TEXT_COLUMNS, *text_rows(today)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(TEXT_COLUMNS))]
    for r in rows:
        lines.append("  " + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- MOTD
def default_motd_path() -> Path:
    """``$QUANTLAKE_MOTD_PATH`` if set, else ``$QUANTLAKE_HOME/motd``.  A system file such as ``/etc/motd`` is
    written only when configured that way (``QUANTLAKE_MOTD_PATH=/etc/motd`` or ``--motd-path``): a scan run
    as root must not edit the login banner of the machine by default."""
    env = os.environ.get("QUANTLAKE_MOTD_PATH", "").strip()
    if env:
        return Path(env).expanduser()
    return paths().home / "motd"


def motd_block(text: str) -> str:
    return f"{MOTD_BEGIN}\n{text.rstrip()}\n{MOTD_END}\n"


def write_motd(text: str, path: Path | None = None) -> Path:
    """Replace the quantlake block of the MOTD file (keeping everything else in it); returns the path."""
    target = path or default_motd_path()
    old = target.read_text(encoding="utf-8") if target.exists() else ""
    keep: list[str] = []
    inside = False
    for line in old.splitlines(keepends=True):
        if line.rstrip("\n") == MOTD_BEGIN:
            inside = True
        elif line.rstrip("\n") == MOTD_END:
            inside = False
        elif not inside:
            keep.append(line)
    head = "".join(keep)
    if head and not head.endswith("\n"):
        head += "\n"
    target.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(target, head + motd_block(text))
    return target


def _atomic_write(path: Path, text: str) -> None:
    """Write via a temporary file and rename (falls back to a direct write where the directory is not
    writable but the file is, e.g. /etc/motd owned by a group)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError:
        path.write_text(text, encoding="utf-8")
        return
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------------------------- config
def load_scan_config(path: Path | None = None, overrides: dict[str, Any] | None = None) -> ScanConfig:
    """A :class:`ScanConfig` from a YAML/JSON file (optional) updated with ``overrides``; errors name the
    file or the field."""
    data: dict[str, Any] = {}
    if path is not None:
        import yaml

        if not path.is_file():
            raise MalformedFileError(f"scan config {path} does not exist")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))  # YAML is a superset of JSON
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise MalformedFileError(f"scan config {path} is not valid YAML/JSON: {str(exc).splitlines()[0]}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise MalformedFileError(f"scan config {path} must be a mapping of ScanConfig fields")
        data = dict(loaded or {})
    data.update(overrides or {})
    return ScanConfig.model_validate(data)


# ---------------------------------------------------------------------------------------------- one run
@dataclass
class ScanOutcome:
    """Everything one daily scan produced and where it went."""

    result: ScanResult
    commit: CommitResult | None = None
    json_path: Path | None = None
    motd_path: Path | None = None
    motd_error: str | None = None
    emailed_to: list[str] = field(default_factory=list)
    email_error: str | None = None

    def summary(self) -> dict[str, Any]:
        s = self.result.summary()
        s |= {
            "daily_signals_version": self.commit.version if self.commit else None,
            "json": str(self.json_path) if self.json_path else None,
            "motd": str(self.motd_path) if self.motd_path else None,
            "emailed_to": list(self.emailed_to),
            "crosscheck": list(self.result.crosscheck),
        }
        return s

    def print(self, console: Console) -> None:
        r = self.result
        s = r.summary()
        console.print(signals_table(r.signals[r.signals["date"] == r.as_of].head(r.config.top),
                                    f"scan {r.as_of}: universe {s['universe']} of {s['symbols_with_bars']}"))  # fmt: skip
        for reason, syms in s["excluded"].items():
            console.print(f"[dim]excluded ({reason}): {', '.join(syms)}[/]")
        for line in r.crosscheck:
            console.print(f"[yellow]features_technical differs: {line}[/]")
        if self.commit is not None:
            console.print(f"daily_signals: version {self.commit.version} ({len(r.signals)} row(s) for "
                          f"{r.start}..{r.as_of})")  # fmt: skip
        if self.json_path:
            console.print(f"JSON: {self.json_path}", soft_wrap=True)  # whole paths: easy to copy
        if self.motd_path:
            console.print(f"MOTD: {self.motd_path}", soft_wrap=True)
        if self.motd_error:
            console.print(f"[yellow]MOTD not written: {self.motd_error}[/]", soft_wrap=True)
        if self.emailed_to:
            console.print(f"e-mail sent to {', '.join(self.emailed_to)}")


def signals_table(signals: pd.DataFrame, title: str) -> Table:
    """A rich table of ranked signals (the terminal view); the RSI event column only when some signal has
    one."""
    from rich import box

    rows = text_rows(signals)
    with_event = any(r[-1] for r in rows)
    cols = ("date", *TEXT_COLUMNS) if with_event else ("date", *TEXT_COLUMNS[:-1])
    t = Table(title=title, box=box.SIMPLE_HEAD)
    for col in cols:
        t.add_column(col, justify="right" if col in ("rank", "close", "score", "rsi") else "left",
                     no_wrap=col in ("date", "symbol", "signal", "dir"))  # fmt: skip
    for date, row in zip(signals["date"], rows, strict=True):
        style = "green" if row[3] == "bull" else "red"
        cells = [pd.Timestamp(date).date().isoformat(), *row[:3], f"[{style}]{row[3]}[/]", *row[4:]]
        t.add_row(*cells[: len(cols)])
    if signals.empty:
        t.caption = "no EMA crosses"
    return t


def run_daily_scan(
    lake: Lake,
    config: ScanConfig | None = None,
    *,
    start: dt.date | None = None,
    json_dir: Path | None = None,
    motd: bool | Path = True,
    email: bool | None = None,
    store: bool = True,
    max_age_days: int | None = None,
    today: dt.date | None = None,
) -> ScanOutcome:
    """The daily scan and every output: ``daily_signals`` (``store``), ``signals_<date>.json`` in
    ``json_dir`` (default ``QUANTLAKE_HOME/reports/scan``), the MOTD block (``motd``: True = the default
    path, a path, or False) and the HTML e-mail (``email``: None = when SMTP is configured).

    With ``max_age_days`` the lake must hold bars no older than that many trading days before ``today``
    (else a critical alert and :class:`~execution.errors.StaleDataError`).  An e-mail that cannot be sent
    raises :class:`~execution.errors.NotificationError` after everything else was written."""
    from execution import alerts
    from execution.notify import send, smtp_settings
    from execution.scan_email import build_scan_email
    from execution.scanner import scan, write_signals

    cfg = config or ScanConfig()
    settings = smtp_settings() if email is not False else None
    if email and settings is None:
        raise ConfigError("e-mail requested but SMTP is not configured: set QUANTLAKE_SMTP_HOST, "
                          "QUANTLAKE_SMTP_FROM and QUANTLAKE_SMTP_TO, or QUANTLAKE_SMTP_BLOCK")  # fmt: skip
    if max_age_days is not None:
        alerts.check_fresh_data(lake, max_age_days, today, cfg.symbols)
    result = scan(lake, cfg, start)
    out = ScanOutcome(result)
    if store:
        out.commit = write_signals(lake, result)
    out.json_path = write_json(result, json_dir or paths().reports / "scan")
    if motd is not False:
        target = motd if isinstance(motd, Path) else default_motd_path()
        try:
            out.motd_path = write_motd(render_text(result), target)
        except OSError as exc:  # a MOTD is a convenience: report it, do not fail the scan
            out.motd_error = f"{target}: {exc.strerror or exc}"
    if settings is not None:
        try:
            send(build_scan_email(result), settings)
            out.emailed_to = list(settings.recipients)
        except NotificationError as exc:
            out.email_error = str(exc)
            alerts.send(alerts.Alert("scan", "critical", f"scan e-mail for {result.as_of} not sent", str(exc)),
                        email=False)  # fmt: skip
            raise
    return out


def show_signals(lake: Lake, date: dt.date | None, limit: int, console: Console) -> pd.DataFrame:
    """Print the stored signals of ``date`` (default: the latest scanned date); returns them."""
    if not lake.exists("daily_signals"):
        raise TableNotFoundError("table 'daily_signals' does not exist yet: run `quantlake scan` first")
    if date is None:
        value = lake.query("SELECT max(date) AS d FROM daily_signals")["d"].iloc[0]
        if value is None or pd.isna(value):
            console.print("daily_signals is empty.")
            return pd.DataFrame()
        date = pd.Timestamp(value).date()
    df = lake.read("daily_signals", where="date = ?", params=[date])
    df = df.sort_values("rank").head(limit)
    console.print(signals_table(df, f"daily_signals {date}"))
    return df
