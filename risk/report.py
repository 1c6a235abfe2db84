"""``quantlake risk report``: the risk figures of a backtest result or an account in one place.

Input is an equity curve (or returns) and, optionally, the positions held now:

* VaR and CVaR at each confidence by the three methods of :mod:`risk.metrics`;
* summary: total and annualized return, annualized volatility, downside deviation, max drawdown, beta to
  the benchmark (``^GSPC`` from the lake, when the lake has it over the curve's dates);
* the worst drawdowns (peak, trough, recovery, depth, duration);
* stress: with positions, :func:`risk.stress.stress_report` on them.  Without positions (a backtest's
  returns only) the strategy is stood in for by ``beta × benchmark`` — each window and shock moves it by
  beta times the benchmark's move — and, where the curve covers a window, its **realized** return in that
  window is shown beside.

Hook for accounts: anything with ``equity_curve()`` and ``positions()`` (:class:`AccountSource`, e.g. the
paper broker's ledger) goes through :func:`report_for_account`.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from quantlake import stats as qstats
from quantlake.errors import MalformedFileError
from quantlake.lake import Lake
from risk import metrics
from risk.book import Position
from risk.data import load_returns
from risk.errors import InsufficientDataError
from risk.option_var import OptionVaR, OptionVaRConfig, has_options, option_var
from risk.stress import StressConfig, greeks_ladder, historical, hypothetical, stress_detail

RETURN_COLUMNS = ("returns", "return", "ret", "daily_return", "pnl_pct")
EQUITY_COLUMNS = ("equity", "value", "nav", "portfolio_value", "balance")


class AccountSource(Protocol):
    """What a paper/broker account must offer to be reported on."""

    def equity_curve(self) -> pd.Series: ...
    def positions(self) -> Sequence[Position]: ...


@dataclass
class RiskReport:
    summary: dict[str, Any]
    var: pd.DataFrame
    drawdowns: pd.DataFrame
    stress: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # option books (empty / None otherwise): stress P&L per underlying and per leg (rows: scenarios), the
    # Greeks ladder, and the full-revaluation VaR next to delta-gamma
    stress_by_underlying: pd.DataFrame = field(default_factory=pd.DataFrame)
    stress_by_leg: pd.DataFrame = field(default_factory=pd.DataFrame)
    ladder: pd.DataFrame = field(default_factory=pd.DataFrame)
    option_var: OptionVaR | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: NaN → null, dates as ISO strings."""
        out: dict[str, Any] = {
            "summary": {k: _json(v) for k, v in self.summary.items()},
            "var": {m: {c: _json(v) for c, v in row.items()} for m, row in self.var.to_dict("index").items()},
            "drawdowns": [{k: _json(v) for k, v in r.items()} for r in self.drawdowns.to_dict("records")],
            "stress": [{k: _json(v) for k, v in r.items()} for r in self.stress.to_dict("records")],
            "notes": list(self.notes),
            "warnings": list(self.warnings),
        }
        for name in ("stress_by_underlying", "stress_by_leg", "ladder"):
            frame: pd.DataFrame = getattr(self, name)
            if not frame.empty:
                out[name] = {str(i): {str(c): _json(v) for c, v in row.items()} for i, row in frame.iterrows()}
        if self.option_var is not None:
            ov = self.option_var
            out["option_var"] = {
                "currency": {m: {c: _json(v) for c, v in row.items()} for m, row in ov.table.iterrows()},
                "pct_of_equity": {m: {c: _json(v) for c, v in row.items()} for m, row in ov.pct.iterrows()},
                "scenarios": len(ov.pnl), "data": ov.sources,
            }
        return out


def _json(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp | dt.date):
        return value.isoformat()[:10]
    if isinstance(value, np.generic):
        return _json(value.item())
    return value


# ---------------------------------------------------------------------------------------------- input
def read_returns_file(path: Path | str, column: str | None = None) -> pd.Series:
    """An equity curve from a Parquet or CSV file with a ``date`` column (or a date index) and a returns or
    equity column (see :func:`curve_from_frame`)."""
    p = Path(path)
    if not p.is_file():
        raise MalformedFileError(f"{p}: no such file")
    try:
        frame = pd.read_parquet(p) if p.suffix.lower() in (".parquet", ".pq") else pd.read_csv(p)
    except Exception as exc:
        raise MalformedFileError(
            f"{p}: cannot read as {'Parquet' if p.suffix == '.parquet' else 'CSV'}: {exc}"
        ) from None
    return curve_from_frame(frame, str(p), column)


def curve_from_frame(frame: pd.DataFrame, origin: str, column: str | None = None) -> pd.Series:
    """An equity curve from a frame with a ``date`` column (or a date index) and one value column.

    The value column is ``column`` if given, else the first of the returns columns
    ``returns``/``return``/``ret``/``daily_return``/``pnl_pct`` (simple returns per row) or equity columns
    ``equity``/``value``/``nav``/``portfolio_value``/``balance``.  Names are case-insensitive.  A chosen
    ``column`` is read as equity if its name is an equity name, else as returns.  Returns are compounded
    from a start value of 1 (see :func:`risk.metrics.equity_from_returns`).  ``origin`` names the input
    in error messages.
    """
    if isinstance(frame.index, pd.DatetimeIndex) and "date" not in {str(c).lower() for c in frame.columns}:
        frame = frame.reset_index(names="date")
    cols = {str(c).lower(): c for c in frame.columns}
    if "date" not in cols:
        raise MalformedFileError(
            f"{origin}: needs a 'date' column (found {', '.join(map(str, frame.columns))})"
        )
    value_col: Any
    if column is not None:
        if column not in frame.columns:
            found = ", ".join(str(c) for c in frame.columns if str(c).lower() != "date")
            raise MalformedFileError(f"{origin}: no column {column!r} (columns: {found})")
        value_col = column
    else:
        value_col = next((cols[c] for c in (*RETURN_COLUMNS, *EQUITY_COLUMNS) if c in cols), None)
        if value_col is None:
            raise MalformedFileError(
                f"{origin}: needs a returns column ({', '.join(RETURN_COLUMNS)}) or an equity column "
                f"({', '.join(EQUITY_COLUMNS)})"
            )
    try:
        dates = pd.to_datetime(frame[cols["date"]], errors="raise")
    except (ValueError, TypeError) as exc:
        raise MalformedFileError(f"{origin}: unparseable dates: {exc}") from None
    values = pd.to_numeric(frame[value_col], errors="coerce")
    if values.notna().sum() < 3:
        raise MalformedFileError(f"{origin}: column {value_col!r} has fewer than 3 numbers")
    series = pd.Series(values.to_numpy(dtype=float), index=pd.DatetimeIndex(dates), name=str(value_col))
    series = series[~series.index.duplicated(keep="last")].sort_index().dropna()
    if str(value_col).lower() not in EQUITY_COLUMNS:
        if (series <= -1).any():
            raise MalformedFileError(
                f"{origin}: a return of -100 % or less in {value_col!r}; are these percentages? use decimals"
            )
        return metrics.equity_from_returns(series)
    if (series <= 0).any():
        raise MalformedFileError(f"{origin}: equity must be positive")
    return series


def read_positions_file(path: Path | str) -> list[Position]:
    """Positions from a JSON list of objects with :class:`risk.book.Position` fields."""
    import json

    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise MalformedFileError(f"{p}: cannot read positions JSON: {exc}") from None
    if not isinstance(data, list):
        raise MalformedFileError(f"{p}: expected a JSON list of positions")
    return [Position.model_validate(item) for item in data]


# ------------------------------------------------------------------------------------------- building
def _summary(equity: pd.Series, periods_per_year: int) -> dict[str, Any]:
    r = equity.pct_change().dropna()
    return {
        "start": equity.index[0],
        "end": equity.index[-1],
        "observations": len(r),
        "total_return": float(qstats.total_return(r)),
        "annual_return": float(qstats.annualized_return(r, periods_per_year)),
        "annual_volatility": float(qstats.annualized_volatility(r, periods_per_year)),
        "downside_deviation": metrics.downside_deviation(r, periods_per_year=periods_per_year),
        "max_drawdown": metrics.max_drawdown(equity),
    }


def _beta(r: pd.Series, lake: Lake | None, benchmark: str, notes: list[str]) -> float | None:
    if lake is None:
        notes.append("no lake: beta and historical stress skipped")
        return None
    bench = load_returns(lake, [benchmark], r.index[0].date() - dt.timedelta(days=7), r.index[-1].date())
    if benchmark not in bench.columns:
        notes.append(f"no {benchmark} data in the lake over the curve's dates: beta skipped")
        return None
    try:
        return metrics.beta(r, bench[benchmark])
    except InsufficientDataError as exc:
        notes.append(f"beta skipped: {exc}")
        return None


def _realized_in_windows(equity: pd.Series, cfg: StressConfig) -> list[float]:
    """The curve's own return over each window it covers (within ``coverage_days``), else NaN."""
    out = []
    tol = pd.Timedelta(days=cfg.coverage_days)
    for w in cfg.windows:
        start, end = pd.Timestamp(w.start), pd.Timestamp(w.end)
        seg = equity[(equity.index >= start) & (equity.index <= end)]
        ok = len(seg) >= 2 and seg.index[0] <= start + tol and seg.index[-1] >= end - tol
        out.append(float(seg.iloc[-1] / seg.iloc[0] - 1) if ok else np.nan)
    return out


def build_report(
    equity: pd.Series,
    positions: Sequence[Position] = (),
    lake: Lake | None = None,
    confidences: Sequence[float] = (0.95, 0.99),
    benchmark: str = "^GSPC",
    stress: StressConfig | None = None,
    top_drawdowns: int = 5,
    periods_per_year: int = 252,
) -> RiskReport:
    """Everything in the module docstring, from an equity curve (date index) and optional positions."""
    eq = equity.dropna().astype(float)
    eq.index = pd.DatetimeIndex(eq.index)
    if len(eq) < 4:
        raise InsufficientDataError(f"need at least 4 equity values for a risk report, got {len(eq)}")
    notes: list[str] = []
    r = eq.pct_change().dropna()
    summary = _summary(eq, periods_per_year)
    b = _beta(r, lake, benchmark, notes)
    summary["benchmark"] = benchmark
    summary["beta"] = b
    summary["positions"] = len(positions)
    var = metrics.var_table(r, tuple(confidences))
    warnings: list[str] = []
    cf = metrics.cornish_fisher_warning(r)
    if cf is not None:
        warnings.append(cf)
    drawdowns = metrics.drawdown_table(eq, top=top_drawdowns)
    cfg = (stress or StressConfig()).model_copy(update={"proxy": benchmark})
    last = float(eq.iloc[-1])
    extra: dict[str, Any] = {}
    if positions:
        try:
            detail = stress_detail(positions, lake, cfg, equity=last)
        except InsufficientDataError as exc:
            if lake is None:
                raise
            notes.append(f"historical stress skipped: {exc}")
            detail = stress_detail(positions, None, cfg, equity=last)
        table = detail.table
        if has_options(positions):
            extra = {"stress_by_underlying": detail.by_underlying, "stress_by_leg": detail.by_leg,
                     "ladder": greeks_ladder(positions, cfg)}
            if lake is not None:
                try:
                    extra["option_var"] = option_var(positions, lake, cfg, OptionVaRConfig(
                        confidences=tuple(confidences)), equity=last)
                except InsufficientDataError as exc:
                    notes.append(f"option VaR by full revaluation skipped: {exc}")
    elif b is not None and b != 0:
        # the strategy as beta × benchmark: one unit of notional per currency, beta × equity of it
        stand_in = [Position(symbol=benchmark, qty=b * last, price=1.0)]
        parts = [hypothetical(stand_in, cfg, equity=last)]
        if lake is not None:
            try:
                hist = historical(stand_in, lake, cfg, equity=last)
                hist["data"] = ""
                hist["realized_pct"] = _realized_in_windows(eq, cfg)
                parts.insert(0, hist)
            except InsufficientDataError as exc:
                notes.append(f"historical stress skipped: {exc}")
        table = pd.concat(parts, ignore_index=True)
        notes.append(
            f"no positions given: stress moves the strategy by its beta {b:.2f} × {benchmark}; 'realized' is its "
            "own return in the window where the curve covers it"
        )
    else:
        table = pd.DataFrame()
        notes.append("no positions and no beta: stress skipped")
    if "realized_pct" not in table.columns and not table.empty:
        table["realized_pct"] = np.nan
    return RiskReport(summary, var, drawdowns, table, notes, warnings, **extra)


def report_for_account(source: AccountSource, lake: Lake | None = None, **kwargs: Any) -> RiskReport:
    """The hook for paper/broker accounts: their equity curve and current positions."""
    return build_report(source.equity_curve(), source.positions(), lake, **kwargs)


# ------------------------------------------------------------------------------------------ rendering
def render(report: RiskReport, console: Any) -> None:
    """Print the report as rich tables."""
    from rich.table import Table
    from rich.text import Text

    from risk.stress import render as render_stress

    s = report.summary
    t = Table(title=f"risk summary {pd.Timestamp(s['start']).date()} .. {pd.Timestamp(s['end']).date()}")
    t.add_column("figure")
    t.add_column("value", justify="right")
    signed = ("total_return", "annual_return", "max_drawdown")
    pct = ("annual_volatility", "downside_deviation")
    for k, v in s.items():
        if k in ("start", "end"):
            continue
        if v is None:
            text = "n/a"
        elif k in signed:
            text = f"{v:+.2%}"
        elif k in pct:
            text = f"{v:.2%}"
        else:
            text = f"{v:.3f}" if isinstance(v, float) else str(v)
        t.add_row(k.replace("_", " "), text)
    console.print(t)

    v = Table(title="VaR / CVaR of the returns (one period, loss as % of value)")
    v.add_column("method")
    for c in report.var.columns:
        v.add_column(c.replace("_", " ").upper(), justify="right")
    for method, row in report.var.iterrows():
        flagged = method == "cornish_fisher" and report.warnings
        v.add_row(str(method).replace("_", "-") + (" (!)" if flagged else ""), *[f"{x:.2%}" for x in row])
    console.print(v)
    for w in report.warnings:
        console.print(Text(f"warning: {w}", style="yellow"), soft_wrap=True)
    _render_options(report, console)

    d = Table(title=f"worst {len(report.drawdowns)} drawdowns")
    for c in ("peak", "trough", "recovery", "depth", "days to trough", "duration (days)"):
        d.add_column(c, justify="right" if c not in ("peak", "trough", "recovery") else "left")
    for r in report.drawdowns.itertuples(index=False):
        d.add_row(
            str(pd.Timestamp(r.peak).date()),
            str(pd.Timestamp(r.trough).date()),
            "not yet" if pd.isna(r.recovery) else str(pd.Timestamp(r.recovery).date()),
            f"{r.depth:.2%}",
            str(r.days_to_trough),
            str(r.duration_days) + ("" if r.recovered else "+"),
        )
    console.print(d)

    if not report.stress.empty:
        money = bool(report.summary.get("positions"))
        console.print(render_stress(report.stress, money=money))
    for note in report.notes:
        console.print(f"[dim]note: {note}[/]")


def _render_options(report: RiskReport, console: Any) -> None:
    """The option-book parts: full-revaluation VaR vs delta-gamma, the Greeks ladder, per-underlying and
    per-leg stress P&L (wide matrices shown for the historical windows and the worst shock)."""
    from quantlake.display import Col, print_table

    ov = report.option_var
    if ov is not None:
        cols = list(ov.table.columns)
        rows = [{"method": m, **{c: row[c] for c in cols}} for m, row in ov.table.iterrows()]
        print_table(rows, [Col("method"), *(Col(c, c.replace("_", " ").upper(), kind="float") for c in cols)],
                    title=f"option book VaR / CVaR, 1 day, {len(ov.pnl)} historical days (currency loss)",
                    out=console, caption=f"data: {ov.notes()}")
    if not report.ladder.empty:
        lad = report.ladder.reset_index()
        print_table(lad, [Col("spot_move", "spot", kind="pct"), Col("pnl_1d", "P&L 1 day", kind="float"),
                          Col("greeks_1d", "Greeks 1 day", kind="float"),
                          Col("difference_1d", "difference", kind="float", optional=True),
                          Col("pnl_expiry", "P&L at expiry", kind="float")],
                    title="Greeks ladder (vol unchanged)", out=console)
    by_und = report.stress_by_underlying
    if not by_und.empty and by_und.shape[1] > 1:
        rows = [{"scenario": i, **row.to_dict()} for i, row in by_und.iterrows()]
        print_table(rows, [Col("scenario"), *(Col(str(c), kind="float") for c in by_und.columns)],
                    title="stress P&L per underlying", out=console)
    by_leg = report.stress_by_leg
    if not by_leg.empty:
        hist = [i for i in by_leg.index if i in set(report.stress.loc[report.stress["kind"] == "historical",
                                                                       "scenario"])]
        shocks = report.stress[report.stress["kind"] == "hypothetical"]
        worst = [str(shocks.loc[shocks["pnl"].idxmin(), "scenario"])] if len(shocks) else []
        keep = list(dict.fromkeys([*hist, *worst]))
        legs = by_leg.loc[keep].T
        rows = [{"leg": leg, **row.to_dict()} for leg, row in legs.iterrows()]
        print_table(rows, [Col("leg"), *(Col(str(c), kind="float") for c in legs.columns)],
                    title="stress P&L per leg (historical windows at their end, worst shock)", out=console)
