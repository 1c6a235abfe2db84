"""Small PNG charts for the scan e-mail: close with the signal's two EMAs over the last bars."""

from __future__ import annotations

import io

import pandas as pd
from matplotlib.figure import Figure  # the object API: no pyplot state, safe in worker threads


def signal_chart(history: pd.DataFrame, fast: int, slow: int, title: str = "") -> bytes:
    """PNG bytes (about 360×140 px): close (grey), EMA ``fast`` (blue), EMA ``slow`` (orange), last close
    marked.  ``history`` has ``date``, ``close``, ``ema_<fast>``, ``ema_<slow>`` for one symbol."""
    fig = Figure(figsize=(3.6, 1.4), dpi=100)
    ax = fig.add_axes((0.12, 0.08, 0.86, 0.78))
    x = pd.to_datetime(history["date"])
    ax.plot(x, history["close"], color="#888888", linewidth=1.0)
    ax.plot(x, history[f"ema_{fast}"], color="#1f77b4", linewidth=1.2)
    ax.plot(x, history[f"ema_{slow}"], color="#ff7f0e", linewidth=1.2)
    if len(history):
        ax.plot(x.iloc[-1:], history["close"].iloc[-1:], "o", color="#d62728", markersize=3)
    ax.set_xticks([])
    ax.tick_params(axis="y", labelsize=6)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if title:
        fig.suptitle(title, fontsize=7, x=0.02, ha="left", y=0.98)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
