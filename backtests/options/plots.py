"""Plots of a run (matplotlib, headless): equity, drawdown and portfolio Greeks over time."""

from __future__ import annotations

from typing import Any

import pandas as pd

from quantlake import stats as qstats


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def equity_figure(daily: pd.DataFrame, title: str, initial_cash: float) -> Any:
    """Equity (with the underlying rescaled to the same start) over drawdown."""
    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1.3]})
    idx = pd.to_datetime(daily.index)
    eq = daily["equity"].astype(float)
    ax1.plot(idx, eq, label="strategy equity", color="tab:blue", lw=1.3)
    und = daily["underlying"].astype(float)
    ax1.plot(idx, und / und.iloc[0] * initial_cash, label="underlying (rescaled)", color="tab:gray", lw=0.9,
             alpha=0.8)
    ax1.set_title(title)
    ax1.set_ylabel("account value")
    ax1.legend(loc="upper left")
    ax1.grid(alpha=0.3)
    dd = qstats.drawdown(eq)
    ax2.fill_between(idx, dd * 100.0, 0.0, color="tab:red", alpha=0.4)
    ax2.set_ylabel("drawdown %")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def greeks_figure(daily: pd.DataFrame, title: str) -> Any:
    """Portfolio delta (shares), gamma, vega per vol point and theta per day."""
    plt = _pyplot()
    fig, axes = plt.subplots(4, 1, figsize=(11, 8), sharex=True)
    idx = pd.to_datetime(daily.index)
    series = [
        ("delta (share-equivalents)", daily["delta"]),
        ("gamma (shares per 1.00 move)", daily["gamma"]),
        ("vega per vol point", daily["vega"] / 100.0),
        ("theta per day", daily["theta"] / 365.0),
    ]
    for ax, (label, s) in zip(axes, series, strict=True):
        ax.plot(idx, s.astype(float), lw=0.9)
        ax.axhline(0.0, color="black", lw=0.5)
        ax.set_ylabel(label, fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].set_title(title)
    fig.tight_layout()
    return fig


def close(fig: Any) -> None:
    _pyplot().close(fig)
