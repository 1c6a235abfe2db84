"""Plots and tearsheets shared by the research packages (generic: tables and return series in, figures out).

Interactive figures are plotly.  A report folder holds **one** copy of plotly.js (``plotly.min.js``, written
by :func:`write_html` next to the first chart) that every chart file of the folder loads — embedding it in
each chart cost ~4.6 MB per file (12 runs made 430 MB).  For MLflow, whose artifact viewer shows an HTML file
on its own, :func:`bundle_html` puts all of a run's charts on one page with plotly.js embedded once.  The
tearsheet is quantstats' HTML report.  Nothing here imports vectorbt or knows a strategy.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from quantlake import stats as qstats

# quantstats/matplotlib log "findfont: Font family 'Arial' not found" once per text element
_NOISY_LOGGERS = ("matplotlib.font_manager", "matplotlib", "quantstats")


@contextlib.contextmanager
def quiet_plotting() -> Iterator[None]:
    """Silence matplotlib's font fallback messages and plotting warnings inside the block."""
    saved = {name: logging.getLogger(name).level for name in _NOISY_LOGGERS}
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def write_html(figure: Any, path: str | Path) -> Path:
    """Write a plotly figure as an HTML file that loads ``plotly.min.js`` from its folder (written there once;
    works offline)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.write_html(str(out), include_plotlyjs="directory", full_html=True)
    return out


def bundle_html(figures: Mapping[str, Any], title: str) -> str:
    """One self-contained page with every figure of ``figures`` (section titles are the keys) and plotly.js
    embedded once."""
    import html

    from plotly.offline import get_plotlyjs

    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:1.5rem}h2{font-size:1.1rem;margin-top:2rem}</style>",
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for name, fig in figures.items():
        parts.append(f"<h2>{html.escape(name)}</h2>")
        parts.append(fig.to_html(full_html=False, include_plotlyjs=False))
    parts.append("</body></html>")
    return "\n".join(parts)


def heatmap_figure(
    table: pd.DataFrame,
    x: str,
    y: str,
    metrics: Sequence[str],
    agg: str = "max",
    title: str = "",
    default: str | None = None,
) -> Any:
    """Heatmap of ``metrics`` (a dropdown switches between them) over parameters ``x`` and ``y``.

    Rows of ``table`` sharing (x, y) (other parameters, symbols) are aggregated with ``agg``."""
    import plotly.graph_objects as go

    missing = [c for c in (x, y, *metrics) if c not in table.columns]
    if missing:
        raise KeyError(f"heatmap: column(s) not in the table: {missing}")
    metrics = list(metrics)
    first = default if default in metrics else metrics[0]
    fig = go.Figure()
    for m in metrics:
        grid = table.pivot_table(index=y, columns=x, values=m, aggfunc=agg).sort_index().sort_index(axis=1)
        z = grid.to_numpy(dtype=float)
        fig.add_trace(
            go.Heatmap(
                z=np.where(np.isfinite(z), z, np.nan),
                x=[str(v) for v in grid.columns],
                y=[str(v) for v in grid.index],
                colorscale="RdYlGn_r" if m in ("volatility",) else "RdYlGn",
                colorbar={"title": m},
                hovertemplate=f"{x}=%{{x}}<br>{y}=%{{y}}<br>{m}=%{{z:.4g}}<extra></extra>",
                visible=m == first,
                name=m,
            )
        )
    buttons = [
        {
            "label": m,
            "method": "update",
            "args": [
                {"visible": [k == m for k in metrics]},
                {"title": f"{title} — {m} ({agg} over other params)"},
            ],
        }
        for m in metrics
    ]
    fig.update_layout(
        title=f"{title} — {first} ({agg} over other params)",
        xaxis_title=x,
        yaxis_title=y,
        # the selector opens on the metric drawn first (it showed the first button's label before)
        updatemenus=[{"buttons": buttons, "active": metrics.index(first), "direction": "down", "x": 1.0,
                      "y": 1.15, "xanchor": "right"}],
        xaxis={"type": "category"},
        yaxis={"type": "category"},
    )
    return fig


def drawdown(equity: pd.Series | pd.DataFrame) -> pd.Series | pd.DataFrame:
    """Fall from the running peak as a (negative) fraction (:func:`quantlake.stats.drawdown`)."""
    return qstats.drawdown(equity)


def equity_drawdown_figure(equity: pd.Series | pd.DataFrame, title: str = "", log_y: bool = False) -> Any:
    """Equity curve(s) above their drawdowns."""
    import plotly.graph_objects as go
    from plotly.colors import qualitative
    from plotly.subplots import make_subplots

    frame = equity.to_frame() if isinstance(equity, pd.Series) else equity
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.68, 0.32], vertical_spacing=0.04)
    dd = drawdown(frame)
    palette = qualitative.Plotly
    for i, c in enumerate(frame.columns):
        s = frame[c].dropna()
        colour = palette[i % len(palette)]
        fig.add_trace(
            go.Scatter(x=s.index, y=s.to_numpy(), name=str(c), mode="lines", legendgroup=str(c),
                       line={"color": colour}), 1, 1
        )
        d = dd[c].dropna()
        fig.add_trace(
            go.Scatter(
                x=d.index,
                y=d.to_numpy(),
                name=f"{c} drawdown",
                mode="lines",
                line={"color": colour, "width": 0.8},
                fill="tozeroy",
                legendgroup=str(c),
                showlegend=True,  # which fill belongs to which curve (several curves share the panel)
            ),
            2,
            1,
        )
    fig.update_yaxes(title_text="equity", type="log" if log_y else "linear", row=1, col=1)
    fig.update_yaxes(title_text="drawdown", tickformat=".0%", row=2, col=1)
    fig.update_layout(title=title, hovermode="x unified")
    return fig


def fan_chart_figure(
    bands: Mapping[str, pd.DataFrame],
    observed: pd.Series | None = None,
    title: str = "",
    x_title: str = "trade",
) -> Any:
    """Quantile bands (columns p05..p95 of each frame) of simulated paths: one panel per method (their bands
    overlapped into an unreadable blur on one chart), the observed path drawn in each."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = list(bands)
    fig = make_subplots(rows=max(len(names), 1), cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=[f"{n}: 5-95 % and 25-75 % of paths, median" for n in names])
    colours = ("31,119,180", "255,127,14", "44,160,44", "214,39,40", "148,103,189")
    for i, name in enumerate(names):
        b, row, c = bands[name], i + 1, colours[i % len(colours)]
        x = b.index.to_numpy()
        for lo, hi, alpha in (("p05", "p95", 0.15), ("p25", "p75", 0.3)):
            if lo in b and hi in b:
                fig.add_trace(go.Scatter(x=x, y=b[hi], mode="lines", line={"width": 0}, showlegend=False,
                                         legendgroup=name, hoverinfo="skip"), row, 1)
                fig.add_trace(go.Scatter(x=x, y=b[lo], mode="lines", line={"width": 0}, fill="tonexty",
                                         fillcolor=f"rgba({c},{alpha})", name=f"{name} {lo}-{hi}",
                                         legendgroup=name), row, 1)
        if "p50" in b:
            fig.add_trace(go.Scatter(x=x, y=b["p50"], mode="lines", line={"color": f"rgb({c})"},
                                     name=f"{name} median", legendgroup=name), row, 1)
        if observed is not None:
            fig.add_trace(go.Scatter(x=observed.index, y=observed.to_numpy(), mode="lines",
                                     line={"color": "black", "dash": "dot"}, name="observed",
                                     legendgroup="observed", showlegend=i == 0), row, 1)
        fig.update_yaxes(title_text="equity (start = 1)", row=row, col=1)
    fig.update_xaxes(title_text=x_title, row=max(len(names), 1), col=1)
    fig.update_layout(title=title, height=260 * max(len(names), 1) + 120)
    return fig


def bars_figure(table: pd.DataFrame, x: str, ys: Sequence[str], title: str = "") -> Any:
    """Grouped bars of columns ``ys`` against ``x`` (e.g. in-sample vs out-of-sample per window)."""
    import plotly.graph_objects as go

    fig = go.Figure([go.Bar(x=table[x].astype(str), y=table[y], name=y) for y in ys])
    fig.update_layout(title=title, barmode="group", xaxis_title=x)
    return fig


def tearsheet(
    returns: pd.Series,
    path: str | Path,
    title: str = "Strategy",
    benchmark: pd.Series | None = None,
    periods_per_year: int = 252,
) -> Path:
    """quantstats' full HTML tearsheet of daily ``returns`` (no download: a benchmark must be a series)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    r = returns.dropna()
    r.index = pd.DatetimeIndex(r.index).tz_localize(None)
    r.name = r.name or "Strategy"
    with quiet_plotting():
        import matplotlib

        matplotlib.use("Agg", force=True)
        import quantstats as qs

        bench = None
        if benchmark is not None:
            bench = benchmark.reindex(r.index).fillna(0.0)
        qs.reports.html(r, benchmark=bench, output=str(out), title=title, periods_per_year=periods_per_year)
        import matplotlib.pyplot as plt

        plt.close("all")
    return out
