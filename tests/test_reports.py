"""Report files: one plotly.js per report folder (and per MLflow run page), the heatmap selector opens on the
metric drawn, drawdown fills have a legend, Monte Carlo methods get a panel each, option reports get a
folder per run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from backtests import reports


def _fig(i: int) -> go.Figure:
    return go.Figure(go.Scatter(y=[1, i, 3]))


def test_one_plotly_js_per_folder(tmp_path: Path) -> None:
    for i in range(3):
        reports.write_html(_fig(i), tmp_path / f"chart{i}.html")
    js = list(tmp_path.glob("*.js"))
    assert [p.name for p in js] == ["plotly.min.js"]
    for i in range(3):
        page = (tmp_path / f"chart{i}.html").read_text()
        assert len(page) < 50_000 and 'src="plotly.min.js"' in page  # was ~4.6 MB each
    total = sum(p.stat().st_size for p in tmp_path.iterdir())
    assert total < js[0].stat().st_size + 150_000


def test_bundle_embeds_plotly_once() -> None:
    page = reports.bundle_html({"a": _fig(1), "b": _fig(2)}, "run x")
    from plotly.offline import get_plotlyjs

    js = get_plotlyjs()
    assert page.count(js[:200]) == 1 and page.count("Plotly.newPlot") == 2 and "<h2>b</h2>" in page


def test_heatmap_selector_opens_on_the_drawn_metric() -> None:
    table = pd.DataFrame({"fast": [5, 5, 10, 10], "slow": [20, 50, 20, 50], "sharpe": [1.0, 2, 3, 4],
                          "total_return": [0.1, 0.2, 0.3, 0.4]})
    fig = reports.heatmap_figure(table, "fast", "slow", ["total_return", "sharpe"], default="sharpe")
    drawn = [t.name for t in fig.data if t.visible]
    menu = fig.layout.updatemenus[0]
    assert drawn == ["sharpe"] and menu.buttons[menu.active].label == "sharpe"


def test_drawdown_fills_have_a_legend_and_mc_methods_their_own_panel() -> None:
    idx = pd.bdate_range("2024-01-01", periods=50)
    eq = pd.DataFrame({"A": np.linspace(1, 1.2, 50), "B": np.linspace(1, 0.9, 50)}, index=idx)
    fig = reports.equity_drawdown_figure(eq)
    dd = [t for t in fig.data if t.name.endswith("drawdown")]
    assert len(dd) == 2 and all(t.showlegend for t in dd)
    assert all(t.line.color == next(u for u in fig.data if u.name == t.name[:-9]).line.color for t in dd)
    bands = {m: pd.DataFrame({q: np.linspace(1, k, 10) for q, k in
                              (("p05", 0.8), ("p25", 0.9), ("p50", 1.0), ("p75", 1.1), ("p95", 1.2))})
             for m in ("bootstrap", "shuffle", "parametric")}
    fan = reports.fan_chart_figure(bands, observed=pd.Series(np.linspace(1, 1.05, 10)))
    axes = {t.yaxis for t in fan.data}
    assert len(axes) == 3  # one panel per method
    assert [a.text.split(":")[0] for a in fan.layout.annotations] == ["bootstrap", "shuffle", "parametric"]


def test_option_reports_get_a_folder_per_run(ql_home: Path) -> None:
    from backtests.options.config import OptionsBacktestConfig
    from backtests.options.report import output_dir, run_output_dir

    cfg = OptionsBacktestConfig.model_validate(
        {"underlying": "SPY", "start": "2018-01-01", "end": "2018-06-30", "strategy": {"kind": "put_write"}}
    )
    a, b = output_dir(cfg, "a" * 32), output_dir(cfg, "b" * 32)
    assert a != b and a.parent == b.parent == ql_home / "reports" / "options"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    assert run_output_dir(cfg, "a" * 32) == a and run_output_dir(cfg, "b" * 32) == b
    with pytest.raises(FileNotFoundError, match="cccccccc"):
        run_output_dir(cfg, "c" * 32)
    assert cfg.outputs.tearsheet
