"""Performance figures of a run: overall, and per regime (a day's return is attributed to the regime known at
the previous close, the one the position was held under)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

TRADING_DAYS = 252


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


def _sharpe(r: pd.Series) -> float:
    sd = float(r.std(ddof=1)) if len(r) > 1 else float("nan")
    return float(r.mean()) / sd * math.sqrt(TRADING_DAYS) if sd and math.isfinite(sd) and sd > 0 else float("nan")


def drawdown(equity: pd.Series) -> pd.Series:
    return equity / equity.cummax() - 1.0


def overall(daily: pd.DataFrame, positions: pd.DataFrame, initial_cash: float) -> dict[str, float]:
    r = returns(daily, initial_cash)
    excess = r - cash_returns(daily)
    eq = daily["equity"].astype(float)
    first, last = pd.Timestamp(daily.index[0]), pd.Timestamp(daily.index[-1])
    years = max((last - first).days / 365.25, 1.0 / 365.25)
    growth = float(eq.iloc[-1] / initial_cash)
    mdd = float(drawdown(pd.concat([pd.Series([initial_cash]), eq.reset_index(drop=True)])).min())
    cagr = growth ** (1.0 / years) - 1.0 if growth > 0 else -1.0
    out = {
        "final_equity": float(eq.iloc[-1]),
        "total_return": growth - 1.0,
        "cagr": cagr,
        "ann_vol": float(r.std(ddof=1) * math.sqrt(TRADING_DAYS)) if len(r) > 1 else float("nan"),
        "sharpe": _sharpe(excess),
        "max_drawdown": mdd,
        "calmar": cagr / abs(mdd) if mdd < 0 else float("nan"),
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
            "ann_return": float(rr.mean() * TRADING_DAYS) if len(rr) else float("nan"),
            "ann_vol": float(rr.std(ddof=1) * math.sqrt(TRADING_DAYS)) if len(rr) > 1 else float("nan"),
            "sharpe": _sharpe(rr), "positions": len(pos),
            "win_rate": float((pos["pnl"] > 0).mean()) if len(pos) else float("nan"),
        })
    return pd.DataFrame(rows)
