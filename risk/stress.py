"""Stress tests of the current book: historical windows replayed from lake data, and hypothetical spot/vol
shocks.  Option positions are **fully repriced** with ``features.pricing.bs_price`` (European
Black-Scholes-Merton); the Greeks approximation ``Δ·dS + ½Γ·dS² + vega·dσ`` is reported beside it, so
the difference (the convexity the Greeks miss) is visible.

How a scenario is applied
-------------------------
* Shocks are **instantaneous**: the book as it is now, moved at once; no time passes, no trading.
* Each position moves with its underlying: stock P&L ``units·S·move``; an option is repriced at
  ``S·(1 + move)`` and ``iv + vol shock`` (floored at 1 %), with ``T`` from ``as_of`` to expiry and the
  config's ``rate`` and ``dividend_yield``.  P&L is model(shocked) − model(now), so a mark that differs from
  the model does not leak into the result.  The volatility of an option is its ``iv``, else implied from its
  ``price``.
* Hypothetical: every underlying moves by the same ``spot_shocks`` (a market-wide move, beta 1) and every
  option's vol by the same ``vol_shocks`` (decimals: 0.05 = +5 vol points).
* Historical: for each window, the daily path of each held underlying's close (``adj_close``) relative to
  its first close in the window.  A symbol the lake has no data for over the window (listed later, or not
  ingested) follows the **proxy** (``^GSPC`` by default) and the table says so.  Option vols move by the
  change of the vol index (``^VIX`` points / 100) over the same days.  The table reports the P&L at the
  end of the window and the worst point on the way; its ``spot_shock`` column is the proxy's move over the
  window and ``vol_shock`` the vol index's change.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import Field, field_validator, model_validator

from quantlake.errors import InvalidSymbolError
from quantlake.lake import Lake
from quantlake.tables import validate_symbol
from risk._model import RiskModel
from risk.book import Position
from risk.data import load_closes
from risk.errors import InsufficientDataError, PricingInputError

MIN_VOL = 0.01
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
    StressWindow(name="March 2020", start=dt.date(2020, 2, 19), end=dt.date(2020, 3, 23)),
    StressWindow(name="2022 rates", start=dt.date(2022, 1, 3), end=dt.date(2022, 10, 12)),
)


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
        if any(s <= -1 for s in self.spot_shocks):
            raise ValueError("spot_shocks must be > -1 (a price cannot fall below zero)")
        if any(abs(v) > 2 for v in self.vol_shocks):
            raise ValueError("vol_shocks are decimals of volatility (0.05 = 5 vol points); |shock| <= 2")
        return self


# ------------------------------------------------------------------------------------------- repricing
class Book:
    """Column arrays of the positions plus each option's volatility and time to expiry."""

    def __init__(self, positions: Sequence[Position], config: StressConfig) -> None:
        from features import pricing

        self.positions = list(positions)
        n = len(self.positions)
        self.symbols = [p.symbol for p in self.positions]
        self.units = np.array([p.qty * p.multiplier for p in self.positions], dtype=float)
        self.spot = np.array([p.spot for p in self.positions], dtype=float)
        self.is_option = np.array([p.is_option for p in self.positions], dtype=bool)
        self.right = np.array([p.right or "C" for p in self.positions], dtype=object)
        self.strike = np.array([p.strike or 1.0 for p in self.positions], dtype=float)
        as_of = config.as_of or dt.date.today()
        days = np.array([((p.expiry or as_of) - as_of).days for p in self.positions], dtype=float)
        self.T = np.maximum(days, 0.0) / 365.0
        self.r, self.q = config.rate, config.dividend_yield
        iv = np.array([p.iv if p.iv is not None else np.nan for p in self.positions], dtype=float)
        need = self.is_option & np.isnan(iv)
        if need.any():
            iv[need] = pricing.implied_vol(
                np.array([p.price for p in self.positions])[need], self.right[need], self.spot[need],
                self.strike[need], self.T[need], self.r, self.q,
            )  # fmt: skip
        bad = [self.positions[i].describe() for i in np.flatnonzero(self.is_option & ~np.isfinite(iv))]
        if bad:
            raise PricingInputError(
                f"cannot reprice {', '.join(bad)}: give iv, or a price inside the no-arbitrage bounds (and an "
                f"expiry after {as_of})"
            )
        self.iv = np.where(self.is_option, iv, 0.0)
        self.base = self._price(self.spot, self.iv) if n else np.zeros(0)
        greeks = pricing.bs_greeks(
            self.right, self.spot, self.strike, self.T, self.r, self.q, self._vol(self.iv)
        )
        self.delta = np.where(self.is_option, greeks["delta"], 1.0)
        self.gamma = np.where(self.is_option, greeks["gamma"], 0.0)
        self.vega = np.where(self.is_option, greeks["vega"], 0.0)

    def _vol(self, vol: FloatArray) -> FloatArray:
        return np.where(self.is_option, np.maximum(vol, MIN_VOL), MIN_VOL)

    def _price(self, spot: FloatArray, vol: FloatArray) -> FloatArray:
        from features import pricing

        opt = pricing.bs_price(self.right, spot, self.strike, self.T, self.r, self.q, self._vol(vol))
        return np.where(self.is_option, opt, spot)

    def pnl(self, moves: FloatArray, vol_moves: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Full-repricing and Greeks-approximation P&L of the book for scenarios.

        ``moves``: relative spot moves, shape (scenarios, positions); ``vol_moves``: (scenarios,) or the same
        shape.  Returns two arrays of shape (scenarios,).
        """
        moves = np.atleast_2d(moves)
        dvol = np.broadcast_to(np.asarray(vol_moves, dtype=float).reshape(len(moves), -1), moves.shape)
        shocked_spot = self.spot * (1.0 + moves)
        value = self._price(shocked_spot, self.iv + dvol)
        full = ((value - self.base) * self.units).sum(axis=1)
        ds = self.spot * moves
        approx = self.delta * ds + 0.5 * self.gamma * ds**2 + self.vega * np.where(self.is_option, dvol, 0.0)
        return full, (approx * self.units).sum(axis=1)


# ------------------------------------------------------------------------------------------ scenarios
REPORT_COLUMNS = (
    "kind", "scenario", "start", "end", "spot_shock", "vol_shock", "pnl", "pnl_pct", "greeks_pnl", "worst_pnl",
    "worst_pct", "worst_date", "data",
)  # fmt: skip


def hypothetical(positions: Sequence[Position], config: StressConfig | None = None,
                 equity: float | None = None) -> pd.DataFrame:  # fmt: skip
    """Every combination of ``spot_shocks`` × ``vol_shocks`` applied to the whole book."""
    cfg = config or StressConfig()
    book = Book(positions, cfg)
    vols = cfg.vol_shocks if book.is_option.any() else (0.0,)  # vol shocks move only options
    grid = [(s, v) for s in cfg.spot_shocks for v in vols]
    if not grid or not positions:
        return pd.DataFrame(columns=list(REPORT_COLUMNS))
    spot = np.array([g[0] for g in grid])
    vol = np.array([g[1] for g in grid])
    full, approx = book.pnl(np.repeat(spot[:, None], len(positions), axis=1), vol)
    out = pd.DataFrame(
        {
            "kind": "hypothetical",
            "scenario": [
                f"spot {s:+.0%}" + (f", vol {v * 100:+.0f} pts" if book.is_option.any() else "")
                for s, v in grid
            ],
            "start": None,
            "end": None,
            "spot_shock": spot,
            "vol_shock": vol,
            "pnl": full,
            "pnl_pct": full / equity if equity else np.nan,
            "greeks_pnl": approx,
            "worst_pnl": full,
            "worst_pct": full / equity if equity else np.nan,
            "worst_date": pd.NaT,
            "data": "",
        }
    )
    return out[list(REPORT_COLUMNS)]


def _window_paths(
    lake: Lake, symbols: list[str], window: StressWindow, cfg: StressConfig
) -> tuple[pd.DataFrame, pd.Series, dict[str, str]]:
    """Relative moves per symbol (date × symbol), vol-index moves, and where each symbol's data came from."""
    wanted = [*symbols, cfg.proxy] + ([cfg.vol_index] if cfg.vol_index else [])
    closes = load_closes(lake, wanted, window.start, window.end)
    tol = dt.timedelta(days=cfg.coverage_days)

    def covered(sym: str) -> bool:
        if sym not in closes.columns:
            return False
        s = closes[sym].dropna()
        return bool(
            len(s) >= 2 and s.index[0].date() <= window.start + tol and s.index[-1].date() >= window.end - tol
        )

    if not covered(cfg.proxy):
        raise InsufficientDataError(
            f"stress window {window.name!r} ({window.start}..{window.end}): the proxy {cfg.proxy} has no data "
            "in the lake for it (ingest it, or choose another proxy/window)"
        )
    source = {s: ("own" if covered(s) else f"proxy {cfg.proxy}") for s in symbols}
    cols = {s: (s if source[s] == "own" else cfg.proxy) for s in symbols}
    px = closes[list(dict.fromkeys(cols.values()))].ffill().dropna()
    rel = px / px.iloc[0] - 1.0
    moves = pd.DataFrame({s: rel[c] for s, c in cols.items()}, index=rel.index)
    moves.attrs["proxy_move"] = float(
        closes[cfg.proxy].dropna().iloc[-1] / closes[cfg.proxy].dropna().iloc[0] - 1
    )
    vol = pd.Series(0.0, index=rel.index)
    if cfg.vol_index and covered(cfg.vol_index):
        v = closes[cfg.vol_index].reindex(rel.index).ffill()
        vol = (v - v.iloc[0]) / 100.0
        source[cfg.vol_index] = "vol shock"
    return moves, vol.fillna(0.0), source


def historical(
    positions: Sequence[Position], lake: Lake, config: StressConfig | None = None, equity: float | None = None
) -> pd.DataFrame:
    """Replay each window's daily moves on the book (see the module docstring)."""
    cfg = config or StressConfig()
    if not positions:
        return pd.DataFrame(columns=list(REPORT_COLUMNS))
    book = Book(positions, cfg)
    underlyings = sorted(set(book.symbols))
    rows: list[dict[str, Any]] = []
    for window in cfg.windows:
        moves, vol, source = _window_paths(lake, underlyings, window, cfg)
        path_moves = moves[book.symbols].to_numpy()
        full, approx = book.pnl(path_moves, vol.to_numpy())
        worst = int(np.argmin(full))
        notes = "; ".join(f"{s}: {how}" for s, how in source.items())
        rows.append(
            {
                "kind": "historical",
                "scenario": window.name,
                "start": window.start,
                "end": window.end,
                "spot_shock": moves.attrs["proxy_move"],
                "vol_shock": float(vol.iloc[-1]),
                "pnl": float(full[-1]),
                "pnl_pct": float(full[-1]) / equity if equity else np.nan,
                "greeks_pnl": float(approx[-1]),
                "worst_pnl": float(min(full[worst], 0.0)),
                "worst_pct": float(min(full[worst], 0.0)) / equity if equity else np.nan,
                "worst_date": moves.index[worst] if full[worst] < 0 else pd.NaT,
                "data": notes,
            }
        )
    return pd.DataFrame(rows, columns=list(REPORT_COLUMNS))


def stress_report(
    positions: Sequence[Position], lake: Lake | None = None, config: StressConfig | None = None,
    equity: float | None = None,
) -> pd.DataFrame:  # fmt: skip
    """Historical windows (if a lake is given) followed by the hypothetical grid, one row per scenario."""
    cfg = config or StressConfig()
    parts = [hypothetical(positions, cfg, equity)]
    if lake is not None:
        parts.insert(0, historical(positions, lake, cfg, equity))
    parts = [p for p in parts if not p.empty]
    if not parts:
        return pd.DataFrame(columns=list(REPORT_COLUMNS))
    return pd.concat(parts, ignore_index=True)


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
