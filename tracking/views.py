"""The MLflow runs table opens on the key metrics: each experiment gets a saved view of its runs with the
key metrics (and the strategy's parameters) as columns, sorted by the first of them.

MLflow 3 keeps a user's column choice in the browser only and starts every experiment with no metric
column at all; what a server can set is a *shared view*: the experiment tag
``mlflow.sharedViewState.<key>`` holding the view as JSON, opened by ``.../runs?viewStateShareKey=<key>``.
quantlake writes that tag (key :data:`VIEW_KEY`) after each finished run, from the metrics runs log, and
``quantlake ui mlflow`` prints each experiment's link.  Column ids are MLflow's sort keys
(``metrics.`sharpe```).  The tag format was read from the MLflow 3.17 UI bundle (shared view states).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from mlflow.tracking import MlflowClient

VIEW_KEY = "quantlake"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
MAX_METRICS = 8
MAX_PARAMS = 4
# most telling first: the first one present also sorts the runs (descending)
KEY_METRICS = (
    "sharpe", "best.sharpe", "oos_sharpe", "dsr.dsr", "oos_dsr", "cagr", "annualized_return",
    "best.annualized_return", "total_return", "best.total_return", "oos_total_return", "max_drawdown",
    "best.max_drawdown", "oos_max_drawdown", "pbo.pbo", "win_rate", "best.win_rate", "trades", "best.trades",
    "oos_trades", "n_trials", "wf.oos.sharpe", "mc.bootstrap.risk_of_ruin",
)  # fmt: skip
_DEFAULT_ATTRIBUTES = ("attributes.`Source`", "attributes.`Models`", "attributes.`Dataset`")


def column(kind: str, name: str) -> str:
    """MLflow's column/sort key, e.g. ``metrics.`sharpe```."""
    return f"{kind}.`{name}`"


def key_metrics(names: Iterable[str]) -> list[str]:
    present = set(names)
    return [m for m in KEY_METRICS if m in present][:MAX_METRICS]


def view_state(metrics: Iterable[str], params: Iterable[str] = ()) -> dict[str, object]:
    """The shared view: key metric and strategy parameter columns, runs sorted by the first key metric."""
    chosen = key_metrics(metrics)
    strategy_params = [p for p in params if p.startswith(("strategy.", "params.", "rule."))][:MAX_PARAMS]
    columns = [column("metrics", m) for m in chosen] + [column("params", p) for p in strategy_params]
    state: dict[str, object] = {"selectedColumns": [*columns, *_DEFAULT_ATTRIBUTES]}
    if chosen:
        state |= {"orderByKey": column("metrics", chosen[0]), "orderByAsc": False}
    return state


def update_view(client: MlflowClient, experiment_id: str, metrics: Mapping[str, float],
                params: Iterable[str] = ()) -> None:
    """Write the experiment's shared view from a finished run's metrics (when it adds a key metric)."""
    if not key_metrics(metrics):
        return
    exp = client.get_experiment(experiment_id)
    known: list[str] = []
    if VIEW_TAG in exp.tags:
        try:
            old = json.loads(exp.tags[VIEW_TAG])
            known = [c.split("`")[1] for c in old.get("selectedColumns", []) if c.startswith("metrics.")]
        except (ValueError, IndexError, AttributeError):
            known = []
    names = [*known, *metrics]
    if set(key_metrics(names)) == set(known) and known:
        return
    client.set_experiment_tag(experiment_id, VIEW_TAG, json.dumps(view_state(names, params)))


def view_url(base: str, experiment_id: str) -> str:
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?viewStateShareKey={VIEW_KEY}"
