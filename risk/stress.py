"""Stress tests of the current book: historical windows replayed from lake data, hypothetical spot/vol
shocks and their grid, and the Greeks ladder.  Every option leg is **fully revalued** (:mod:`risk.revalue`:
Black-Scholes for European exercise, the binomial tree for American, at the leg's own implied vol shifted by
the scenario's vol move); the Greeks approximation is reported beside it, so the difference (the convexity
and early-exercise value the Greeks miss) is visible.  Results come per scenario, per underlying and per leg.

How a scenario is applied
-------------------------
* Shocks are **instantaneous**: the book as it is on ``as_of``, moved at once; no time passes, no trading
  (the ladder's "1 day" column lets one day pass).
* Hypothetical: every underlying moves by the same ``spot_shocks`` (a market-wide move) and every option's
  vol by the same ``vol_shocks`` (decimals: 0.05 = +5 vol points); every combination is a row.
* Historical: the windows of :data:`DEFAULT_WINDOWS` (autumn 2008, the February 2018 vol spike, March 2020,
  2022) — per day of the window, each held underlying's close (``adj_close``) relative to its first close in
  the window, applied to today's book.  An underlying the lake has no history for over the window moves by
  its **beta** to the proxy (``^GSPC``) times the proxy's move (beta estimated on the lake's last
  ``beta_lookback`` returns up to ``as_of``; 1 when there are too few, and said so) — :mod:`risk.moves`.
  Option vols move by the change of the vol index (``^VIX`` points / 100) over the same days.  The table
  reports the P&L at the end of the window and the worst point on the way; its ``spot_shock`` column is the
  proxy's move over the window and ``vol_shock`` the vol index's change.
* Greeks ladder (:func:`greeks_ladder`): spot −30 % … +30 % (vol unchanged) one day forward (full
  revaluation beside the Greeks approximation) and at expiry (each option at its intrinsic value).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import Field, field_validator, model_validator

from quantlake.errors import InvalidSymbolError
from quantlake.lake import Lake
from quantlake.tables import validate_symbol
from risk._model import RiskModel
from risk.book import Position
from risk.moves import Moves, betas, window_moves
from risk.revalue import Book

FloatArray = npt.NDArray[np.float64]


class StressWindow(RiskModel):
    name: str
    start: dt.date
    end: dt.date

    @model_validator(mode="after")
    def _ordered(self) -> StressWindow:
        if self.end <= self.start:
            raise ValueError(f"window {self.name!r}: end must be after start")
        return self


DEFAULT_WINDOWS: tuple[StressWindow, ...] = (
    StressWindow(name="autumn 2008", start=dt.date(2008, 9, 1), end=dt.date(2008, 11, 20)),
    StressWindow(name="Feb 2018 vol spike", start=dt.date(2018, 1, 26), end=dt.date(2018, 2, 8)),
    StressWindow(name="March 2020", start=dt.date(2020, 2, 19), end=dt.date(2020, 3, 23)),
    StressWindow(name="2022 rates", start=dt.date(2022, 1, 3), end=dt.date(2022, 10, 12)),
)
LADDER = tuple(k / 100 for k in range(-30, 31, 5))  # spot -30 % ... +30 %


class StressConfig(RiskModel):
    """What to stress and how (see the module docstring)."""

    windows: tuple[StressWindow, ...] = DEFAULT_WINDOWS
    proxy: str = "^GSPC"
    vol_index: str | None = "^VIX"
    spot_shocks: tuple[float, ...] = (-0.20, -0.10, -0.05, 0.05, 0.10)
    vol_shocks: tuple[float, ...] = (0.0, 0.10)
    rate: Annotated[float, Field(ge=-0.1, le=0.5)] = 0.0
    dividend_yield: Annotated[float, Field(ge=0.0, le=0.5)] = 0.0
    as_of: dt.date | None = None
    coverage_days: Annotated[int, Field(ge=0, le=30)] = 7
    exercise: Literal["auto", "european", "american"] = "auto"
    beta_lookback: Annotated[int, Field(ge=20, le=5000)] = 252
    beta_min_obs: Annotated[int, Field(ge=10, le=5000)] = 60
    ladder: tuple[float, ...] = LADDER

    @field_validator("proxy", "vol_index")
    @classmethod
    def _symbol(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return validate_symbol(value)
        except InvalidSymbolError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _checks(self) -> StressConfig:
        if any(s <= -1 for s in (*self.spot_shocks, *self.ladder)):
            raise ValueError("spot_shocks must be > -1 (a price cannot fall below zero)")
        if any(abs(v) > 2 for v in self.vol_shocks):
            raise ValueError("vol_shocks are decimals of volatility (0.05 = 5 vol points); |shock| <= 2")
        return self

    @property
    def day(self) -> dt.date:
        return self.as_of or dt.date.today()


def book_of(positions: Sequence[Position], cfg: StressConfig) -> Book:
    return Book(positions, cfg.day, cfg.rate, cfg.dividend_yield, cfg.exercise)


# ------------------------------------------------------------------------------------------ scenarios
REPORT_COLUMNS = (
    "kind", "scenario", "start", "end", "spot_shock", "vol_shock", "pnl", "pnl_pct", "greeks_pnl", "worst_pnl",
    "worst_pct", "worst_date", "data",
)  # fmt: skip


@dataclass
class StressDetail:
    """A stress report: one row per scenario (``table``), and the same scenarios' P&L per underlying and per
    leg (rows: scenario names; at the window's end for historical rows)."""

    table: pd.DataFrame
    by_underlying: pd.DataFrame
    by_leg: pd.DataFrame


def _empty() -> StressDetail:
    return StressDetail(pd.DataFrame(columns=list(REPORT_COLUMNS)), pd.DataFrame(), pd.DataFrame())


def _detail(book: Book, names: list[str], legs: FloatArray) -> tuple[pd.DataFrame, pd.DataFrame]:
    by_leg = pd.DataFrame(legs, index=pd.Index(names, name="scenario"), columns=book.labels)
    by_und = pd.DataFrame(book.by_symbol(legs), index=by_leg.index)
    return by_und, by_leg


def hypothetical_detail(positions: Sequence[Position], config: StressConfig | None = None,
                        equity: float | None = None) -> StressDetail:
    """Every combination of ``spot_shocks`` × ``vol_shocks`` applied to the whole book."""
    cfg = config or StressConfig()
    if not positions:
        return _empty()
    book = book_of(positions, cfg)
    vols = cfg.vol_shocks if book.is_option.any() else (0.0,)  # vol shocks move only options
    grid = [(s, v) for s in cfg.spot_shocks for v in vols]
    if not grid:
        return _empty()
    spot = np.array([g[0] for g in grid])
    vol = np.array([g[1] for g in grid])
    moves = np.repeat(spot[:, None], len(book), axis=1)
    legs = book.leg_pnl(moves, vol[:, None])
    full, approx = legs.sum(axis=1), book.greeks_pnl(moves, vol[:, None]).sum(axis=1)
    names = [f"spot {s:+.0%}" + (f", vol {v * 100:+.0f} pts" if book.is_option.any() else "") for s, v in grid]
    table = pd.DataFrame({
        "kind": "hypothetical", "scenario": names, "start": None, "end": None, "spot_shock": spot,
        "vol_shock": vol, "pnl": full, "pnl_pct": full / equity if equity else np.nan, "greeks_pnl": approx,
        "worst_pnl": full, "worst_pct": full / equity if equity else np.nan, "worst_date": pd.NaT, "data": "",
    })[list(REPORT_COLUMNS)]
    return StressDetail(table, *_detail(book, names, legs))


def hypothetical(positions: Sequence[Position], config: StressConfig | None = None,
                 equity: float | None = None) -> pd.DataFrame:  # fmt: skip
    return hypothetical_detail(positions, config, equity).table


def historical_detail(positions: Sequence[Position], lake: Lake, config: StressConfig | None = None,
                      equity: float | None = None) -> StressDetail:
    """Replay each window's daily moves on the book (see the module docstring)."""
    cfg = config or StressConfig()
    if not positions:
        return _empty()
    book = book_of(positions, cfg)
    underlyings = list(dict.fromkeys(book.symbols))
    beta = betas(lake, underlyings, cfg.proxy, cfg.day, cfg.beta_lookback, cfg.beta_min_obs)
    rows: list[dict[str, Any]] = []
    ends: list[FloatArray] = []
    for window in cfg.windows:
        mv: Moves = window_moves(lake, underlyings, window.start, window.end, cfg.proxy, cfg.vol_index,
                                 cfg.coverage_days, beta, window.name)
        path = mv.spot[book.symbols].to_numpy()
        vol = mv.vol.to_numpy()[:, None]
        legs = book.leg_pnl(path, vol)
        full = legs.sum(axis=1)
        approx = book.greeks_pnl(path, vol).sum(axis=1)
        worst = int(np.argmin(full))
        ends.append(legs[-1])
        rows.append({
            "kind": "historical", "scenario": window.name, "start": window.start, "end": window.end,
            "spot_shock": mv.proxy_move, "vol_shock": float(mv.vol.iloc[-1]), "pnl": float(full[-1]),
            "pnl_pct": float(full[-1]) / equity if equity else np.nan, "greeks_pnl": float(approx[-1]),
            "worst_pnl": float(min(full[worst], 0.0)),
            "worst_pct": float(min(full[worst], 0.0)) / equity if equity else np.nan,
            "worst_date": mv.spot.index[worst] if full[worst] < 0 else pd.NaT, "data": mv.notes(),
        })
    table = pd.DataFrame(rows, columns=list(REPORT_COLUMNS))
    return StressDetail(table, *_detail(book, [w.name for w in cfg.windows], np.vstack(ends)))


def historical(positions: Sequence[Position], lake: Lake, config: StressConfig | None = None,
               equity: float | None = None) -> pd.DataFrame:
    return historical_detail(positions, lake, config, equity).table


def stress_detail(positions: Sequence[Position], lake: Lake | None = None, config: StressConfig | None = None,
                  equity: float | None = None) -> StressDetail:
    """Historical windows (if a lake is given) followed by the hypothetical grid."""
    cfg = config or StressConfig()
    parts = [hypothetical_detail(positions, cfg, equity)]
    if lake is not None:
        parts.insert(0, historical_detail(positions, lake, cfg, equity))
    parts = [p for p in parts if not p.table.empty]
    if not parts:
        return _empty()
    return StressDetail(pd.concat([p.table for p in parts], ignore_index=True),
                        pd.concat([p.by_underlying for p in parts]), pd.concat([p.by_leg for p in parts]))


def stress_report(
    positions: Sequence[Position], lake: Lake | None = None, config: StressConfig | None = None,
    equity: float | None = None,
) -> pd.DataFrame:  # fmt: skip
    """Historical windows (if a lake is given) followed by the hypothetical grid, one row per scenario."""
    return stress_detail(positions, lake, config, equity).table


def greeks_ladder(positions: Sequence[Position], config: StressConfig | None = None) -> pd.DataFrame:
    """P&L of the book over spot moves (``config.ladder``, vol unchanged): one day forward by full
    revaluation and by the Greeks, their difference, and at expiry (every option at its intrinsic value)."""
    cfg = config or StressConfig()
    if not positions:
        return pd.DataFrame()
    book = book_of(positions, cfg)
    moves = np.repeat(np.array(cfg.ladder)[:, None], len(book), axis=1)
    zero = np.zeros(len(cfg.ladder))[:, None]
    one_day = book.leg_pnl(moves, zero, 1.0).sum(axis=1)
    approx = book.greeks_pnl(moves, zero, 1.0).sum(axis=1)
    at_expiry = book.leg_pnl(moves, zero, np.broadcast_to(book.days, moves.shape)).sum(axis=1)
    return pd.DataFrame({"pnl_1d": one_day, "greeks_1d": approx, "difference_1d": one_day - approx,
                         "pnl_expiry": at_expiry}, index=pd.Index(list(cfg.ladder), name="spot_move"))


def render(table: pd.DataFrame, title: str = "stress tests", money: bool = True) -> Any:
    """A rich Table of a stress report; columns that carry nothing for this book are left out (vol and the
    Greeks approximation without options, worst point without historical rows).  Where each historical
    window's data came from (own history, proxy, vol index) is the table's caption.
    ``money=False`` shows P&L only as % of equity (a returns-only report has no currency)."""
    from rich.table import Table

    has_options = bool((table["vol_shock"].abs() > 0).any()) and not np.allclose(
        table["greeks_pnl"].to_numpy(dtype=float), table["pnl"].to_numpy(dtype=float)
    )
    has_hist = bool((table["kind"] == "historical").any())
    realized = "realized_pct" in table.columns and bool(table["realized_pct"].notna().any())

    def pct(v: float) -> str:
        return "" if pd.isna(v) else f"{v:+.1%}"

    def cash(v: float) -> str:  # compact: a stress table must fit an 80-column terminal
        if pd.isna(v):
            return ""
        return f"{v / 1e6:,.2f}M" if abs(v) >= 1e6 else f"{v / 1e3:,.1f}k" if abs(v) >= 1e4 else f"{v:,.0f}"

    columns: list[tuple[str, str, Any]] = [
        ("scenario", "left", lambda r: "shock" if r.kind == "hypothetical" else str(r.scenario)),
        ("spot", "right", lambda r: pct(r.spot_shock)),
    ]
    if has_options:
        columns.append(
            ("vol", "right", lambda r: "" if pd.isna(r.vol_shock) else f"{r.vol_shock * 100:+.1f}")
        )
    if money:
        columns.append(("P&L", "right", lambda r: cash(r.pnl)))
    columns.append(("% eq", "right", lambda r: pct(r.pnl_pct)))
    if has_options:
        columns.append(("Greeks", "right", lambda r: cash(r.greeks_pnl)))
    if has_hist:
        columns += [
            ("worst", "right", lambda r: cash(r.worst_pnl) if r.kind == "historical" else "")
            if money
            else (
                "worst %",
                "right",
                lambda r: pct(r.worst_pct) if r.kind == "historical" else "",
            ),
            (
                "worst day",
                "left",
                lambda r: "" if pd.isna(r.worst_date) else str(pd.Timestamp(r.worst_date).date()),
            ),
        ]
    if realized:  # a strategy's own return in the window (risk.report, returns-only input)
        columns.append(("realized", "right", lambda r: pct(r.realized_pct)))
    # where each window's data came from: below the table (a column of it would not fit a terminal),
    # scenarios with the same sources on one line
    sources: dict[str, list[str]] = {}
    for r in table.itertuples(index=False):
        if str(r.data):
            sources.setdefault(str(r.data), []).append(str(r.scenario))
    caption = "\n".join(f"data for {', '.join(names)}: {note}" for note, names in sources.items())
    t = Table(
        title=title, caption=caption or None, caption_justify="left", pad_edge=False, collapse_padding=True
    )
    for name, justify, _ in columns:
        t.add_column(
            name,
            justify=justify,  # type: ignore[arg-type]
            no_wrap=name != "scenario",
            min_width=12 if name == "scenario" else None,
        )
    for r in table.itertuples(index=False):
        t.add_row(*[fmt(r) for _, _, fmt in columns])
    return t
