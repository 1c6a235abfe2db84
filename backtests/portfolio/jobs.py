"""The ``portfolio`` job (tracked in MLflow, reproducible with ``quantlake runs reproduce``) and its command
``quantlake portfolio --config FILE`` (backtests/portfolio/cli.py).

Outputs under ``$QUANTLAKE_HOME/reports/portfolio/<name>/`` and as run artifacts: ``value.parquet`` (account
value and cash per day), ``weights.parquet`` (actual weights per day), ``targets.parquet`` (target weights
per decision date), ``trades.parquet``, ``portfolio.html`` (value, drawdown and weights).  Metrics from
:mod:`quantlake.stats`: total/annualized return and volatility, Sharpe, max drawdown, plus rebalances,
turnover and fees.
"""

from __future__ import annotations

from pathlib import Path

from backtests.portfolio.assets import load_prices
from backtests.portfolio.config import PortfolioConfig
from backtests.portfolio.engine import PortfolioResult, simulate
from quantlake.lake import Lake
from tracking.jobs import register_job

JOB = "portfolio"
RESULTS: dict[str, PortfolioResult] = {}


def metrics(result: PortfolioResult, cfg: PortfolioConfig) -> dict[str, float]:
    from quantlake import stats

    r = result.returns.iloc[1:]
    traded = result.trades
    turnover = float((traded["units"].abs() * traded["price"]).sum() / result.value.mean()) if len(traded) else 0.0
    return {
        "final_value": float(result.value.iloc[-1]),
        "total_return": float(stats.total_return(r)),
        "annual_return": float(stats.annualized_return(r, cfg.periods_per_year)),
        "annual_volatility": float(stats.annualized_volatility(r, cfg.periods_per_year)),
        "sharpe": float(stats.sharpe_ratio(r, cfg.periods_per_year)),
        "max_drawdown": float(stats.max_drawdown(r)),
        "rebalances": float(traded["date"].nunique()) if len(traded) else 0.0,
        "turnover": turnover,
        "fees": float(traded["fees"].sum()) if len(traded) else 0.0,
    }


def output_dir(cfg: PortfolioConfig) -> Path:
    from quantlake.config import paths

    return Path(cfg.output_dir) if cfg.output_dir else paths().home / "reports" / "portfolio" / cfg.name


def write_outputs(result: PortfolioResult, cfg: PortfolioConfig) -> dict[str, Path]:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    out = output_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    files = {"value": out / "value.parquet", "weights": out / "weights.parquet",
             "targets": out / "targets.parquet", "trades": out / "trades.parquet", "plot": out / "portfolio.html"}  # fmt: skip
    result.value.to_frame().join(result.cash).to_parquet(files["value"])
    result.weights.to_parquet(files["weights"])
    result.targets.to_parquet(files["targets"])
    result.trades.to_parquet(files["trades"], index=False)
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, row_heights=[0.5, 0.2, 0.3],
                        subplot_titles=("account value", "drawdown", "weights"))  # fmt: skip
    fig.add_trace(go.Scatter(x=result.value.index, y=result.value, name="value"), row=1, col=1)
    dd = result.value / result.value.cummax() - 1.0
    fig.add_trace(go.Scatter(x=dd.index, y=dd, name="drawdown", fill="tozeroy"), row=2, col=1)
    for col in result.weights.columns:
        fig.add_trace(go.Scatter(x=result.weights.index, y=result.weights[col], name=col, stackgroup="w"), row=3, col=1)
    fig.update_layout(title=f"portfolio {cfg.name}: {cfg.weights.method}, {cfg.rebalance.mode} rebalancing", height=800)
    fig.write_html(files["plot"], include_plotlyjs="cdn")
    return files


def run_portfolio(cfg: PortfolioConfig, lake: Lake) -> tuple[PortfolioResult, list[str]]:
    prices, notes = load_prices(cfg, lake)
    result = simulate(prices, cfg)
    result.notes[:0] = notes
    return result, notes


@register_job(JOB, PortfolioConfig, experiment="portfolio")
def portfolio(config: PortfolioConfig, lake: Lake) -> dict[str, float]:
    """Several symbols or strategy sleeves in one cash account, rebalanced to risk.portfolio weights."""
    from tracking.run_context import current_run

    result, _ = run_portfolio(config, lake)
    files = write_outputs(result, config)
    run = current_run()
    if run is not None:
        for path in files.values():
            run.log_artifact(path)
        run.set_tags({"portfolio.notes": " | ".join(result.notes)[:4000]})
        RESULTS[run.run_id] = result
    return metrics(result, config)


__all__ = ["JOB", "RESULTS", "metrics", "output_dir", "run_portfolio", "write_outputs"]
