"""Performance figures of a run: overall, and per regime (a day's return is attributed to the regime known at
the previous close, the one the position was held under).  The formulas are :mod:`quantlake.stats` (252
trading days a year; ``cagr`` is the geometric annualized return; Sharpe on returns in excess of cash)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from quantlake import stats as qstats
from quantlake.calendars import TRADING_DAYS_PER_YEAR

TRADING_DAYS = TRADING_DAYS_PER_YEAR


def returns(daily: pd.DataFrame, initial_cash: float) -> pd.Series:
    """Simple daily returns of equity; the first bar's return is measured from the initial cash."""
    eq = daily["equity"].astype(float)
    prev = eq.shift(1)
    prev.iloc[0] = initial_cash
    return (eq / prev - 1.0).rename("return")


def cash_returns(daily: pd.DataFrame) -> pd.Series:
    """What cash earned each day (previous bar's continuously compounded rate over the calendar days)."""
    dates = pd.to_datetime(pd.Series(daily.index, index=daily.index))
    days = dates.diff().dt.days.fillna(0).to_numpy(dtype=float)
    rate = daily["rate"].astype(float).shift(1).fillna(0.0).to_numpy()
    return pd.Series(np.expm1(rate * days / 365.0), index=daily.index)


def drawdown(equity: pd.Series) -> pd.Series:
    return qstats.drawdown(equity)


def overall(daily: pd.DataFrame, positions: pd.DataFrame, initial_cash: float) -> dict[str, float]:
    r = returns(daily, initial_cash)
    excess = r - cash_returns(daily)
    eq = daily["equity"].astype(float)
    first, last = pd.Timestamp(daily.index[0]), pd.Timestamp(daily.index[-1])
    years = max((last - first).days / 365.25, 1.0 / 365.25)
    out = {
        "final_equity": float(eq.iloc[-1]),
        "total_return": float(qstats.total_return(r)),
        "cagr": float(qstats.annualized_return(r, TRADING_DAYS)),
        "ann_vol": float(qstats.annualized_volatility(r, TRADING_DAYS)),
        "sharpe": float(qstats.sharpe_ratio(excess, TRADING_DAYS)),
        "max_drawdown": float(qstats.max_drawdown(r)),
        "calmar": float(qstats.calmar_ratio(r, TRADING_DAYS)),
        "years": years,
        "bars": float(len(daily)),
        "margin_call_days": float((daily["excess"] < -1e-6).sum()),
        "fees": float(daily["fees_cum"].iloc[-1]),
        "interest": float(daily["interest_cum"].iloc[-1]),
        "dividends": float(daily["dividends_cum"].iloc[-1]) if "dividends_cum" in daily else 0.0,
    }
    n = len(positions)
    out["positions"] = float(n)
    out["win_rate"] = float((positions["pnl"] > 0).mean()) if n else float("nan")
    out["avg_position_pnl"] = float(positions["pnl"].mean()) if n else float("nan")
    return out


def per_regime(daily: pd.DataFrame, positions: pd.DataFrame, initial_cash: float) -> pd.DataFrame:
    """One row per regime: days, pnl, ann_return, ann_vol, sharpe, positions opened, their win rate."""
    r = returns(daily, initial_cash)
    pnl = daily["equity"].astype(float).diff()
    pnl.iloc[0] = float(daily["equity"].iloc[0]) - initial_cash
    held_under = daily["regime"].shift(1).fillna(daily["regime"].iloc[0]).astype(str)
    rows = []
    for regime in sorted(set(held_under) | set(positions.get("regime_at_entry", pd.Series(dtype=str)))):
        m = (held_under == regime).to_numpy()
        rr = r[m]
        pos = positions[positions["regime_at_entry"] == regime] if len(positions) else positions
        rows.append({
            "regime": regime, "days": int(m.sum()), "pnl": float(pnl[m].sum()),
            "ann_return": float(qstats.annualized_return(rr, TRADING_DAYS)),
            "ann_vol": float(qstats.annualized_volatility(rr, TRADING_DAYS)),
            "sharpe": float(qstats.sharpe_ratio(rr, TRADING_DAYS)), "positions": len(pos),
            "win_rate": float((pos["pnl"] > 0).mean()) if len(pos) else float("nan"),
        })
    return pd.DataFrame(rows)
