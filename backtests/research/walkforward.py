"""Walk-forward optimization over a sweep's combined daily returns.

Each window chooses the combination with the best in-sample ``metric`` and records how it did in the
out-of-sample window that follows; the chosen combinations' out-of-sample returns, chained, are the stitched
out-of-sample equity curve.  ``rolling`` windows slide a fixed in-sample length, ``anchored`` ones grow it
from the first bar.  Every combination is simulated once over the whole history (signals at t use data up to
t only), so a window's out-of-sample returns are exactly what trading that combination over those dates gave,
including a position it already held when the window opened.  Choosing looks at in-sample rows only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from backtests.equity.metrics import returns_metrics
from backtests.research.specs import LOWER_IS_BETTER, WalkForwardSpec
from quantlake.errors import UserInputError


@dataclass(frozen=True)
class Window:
    number: int
    is_start: int
    is_end: int  # exclusive
    oos_start: int
    oos_end: int  # exclusive


def windows(n_rows: int, spec: WalkForwardSpec) -> list[Window]:
    """Window row ranges over ``n_rows`` bars (the last out-of-sample window may be shorter)."""
    step = spec.step_bars or spec.test_bars
    out: list[Window] = []
    start = 0
    while start + spec.train_bars < n_rows:
        is_end = start + spec.train_bars
        is_start = 0 if spec.mode == "anchored" else start
        out.append(Window(len(out), is_start, is_end, is_end, min(is_end + spec.test_bars, n_rows)))
        start += step
    if not out:
        raise UserInputError(
            f"walkforward.train_bars: {spec.train_bars} in-sample bars leave no out-of-sample data "
            f"(the sweep has {n_rows} bars)"
        )
    return out


@dataclass
class WalkForwardResult:
    windows: pd.DataFrame  # one row per window
    oos_returns: pd.Series  # stitched out-of-sample daily returns of the chosen combinations
    oos_metrics: dict[str, float]
    is_metrics: dict[str, float]  # mean over windows of the chosen combinations' in-sample metrics

    def metrics(self) -> dict[str, float]:
        """Flat figures for MLflow: stitched out-of-sample metrics, in-sample means, efficiency, windows, mean
        out-of-sample rank of the in-sample winner (prefix ``wf.``)."""
        out = {f"wf.oos.{k}": v for k, v in self.oos_metrics.items()}
        out.update({f"wf.is_mean.{k}": v for k, v in self.is_metrics.items()})
        out["wf.efficiency"] = self.efficiency
        out["wf.windows"] = float(len(self.windows))
        out["wf.mean_oos_rank"] = float(self.windows["oos_rank"].mean())
        return out

    @property
    def efficiency(self) -> float:
        """Walk-forward efficiency: mean OOS annualized return / mean IS annualized return."""
        ins = self.windows["is_annualized_return"].mean()
        return float(self.windows["oos_annualized_return"].mean() / ins) if ins else float("nan")


def _best(values: np.ndarray, metric: str) -> int:
    v = np.where(np.isnan(values), np.inf if metric in LOWER_IS_BETTER else -np.inf, values)
    return int(np.argmin(v) if metric in LOWER_IS_BETTER else np.argmax(v))


def walk_forward(
    returns: pd.DataFrame, spec: WalkForwardSpec, metric: str, periods_per_year: float = 252.0
) -> WalkForwardResult:
    """Walk forward over ``returns`` (dates × combinations) choosing by ``metric`` (a name of
    :func:`backtests.equity.metrics.returns_metrics`), annualizing with ``periods_per_year``."""
    clean = returns.dropna(how="all").fillna(0.0)
    r = clean.to_numpy()
    rows = []
    pieces = []
    for w in windows(len(clean), spec):
        ins = returns_metrics(r[w.is_start : w.is_end], periods_per_year)
        oos = returns_metrics(r[w.oos_start : w.oos_end], periods_per_year)
        k = _best(ins[metric], metric)
        better = (
            oos[metric] < oos[metric][k] if metric not in LOWER_IS_BETTER else oos[metric] > oos[metric][k]
        )
        rows.append(
            {
                "window": w.number,
                "is_start": clean.index[w.is_start],
                "is_end": clean.index[w.is_end - 1],
                "oos_start": clean.index[w.oos_start],
                "oos_end": clean.index[w.oos_end - 1],
                "combo": clean.columns[k],
                f"is_{metric}": ins[metric][k],
                f"oos_{metric}": oos[metric][k],
                "is_sharpe": ins["sharpe"][k],
                "oos_sharpe": oos["sharpe"][k],
                "is_annualized_return": ins["annualized_return"][k],
                "oos_annualized_return": oos["annualized_return"][k],
                "oos_max_drawdown": oos["max_drawdown"][k],
                # share of combinations the in-sample winner beat out of sample (0.5 = median)
                "oos_rank": float(np.mean(better)),
            }
        )
        pieces.append(clean.iloc[w.oos_start : w.oos_end, k])
    table = pd.DataFrame(rows)
    table["degradation"] = table[f"oos_{metric}"] - table[f"is_{metric}"]
    with np.errstate(invalid="ignore", divide="ignore"):
        table["sharpe_ratio_oos_is"] = table["oos_sharpe"] / table["is_sharpe"]
    stitched = pd.concat(pieces)
    stitched = stitched[~stitched.index.duplicated(keep="last")]
    stitched.name = "oos_return"
    oos_all = {k: float(v[0]) for k, v in returns_metrics(stitched.to_numpy()[:, None], periods_per_year).items()}
    is_mean = {
        "sharpe": float(table["is_sharpe"].mean()),
        "annualized_return": float(table["is_annualized_return"].mean()),
    }
    return WalkForwardResult(table, stitched, oos_all, is_mean)
