"""``/metrics``: Prometheus text exposition of quantlake's state, computed at each scrape.

=============================================== =========================================================
metric                                          what
=============================================== =========================================================
quantlake_flow_runs{flow,state}                 flow runs per flow and final state type in the last
                                                ``window`` (24 h; needs a Prefect server, PREFECT_API_URL)
quantlake_flow_last_run_timestamp_seconds{flow, when each flow's latest run in that window started
state}
quantlake_lake_table_version{table}             current Delta version of each lake table
quantlake_lake_table_rows{table}                rows
quantlake_lake_table_last_commit_timestamp_     when the table last committed (Unix seconds)
seconds{table}
quantlake_lake_table_latest_date_age_days{table} days from the table's newest date to today (freshness)
quantlake_paper_equity{broker,account}          latest recorded equity of each trading account
quantlake_paper_drawdown{broker,account}        its drawdown from the peak (fraction)
quantlake_paper_last_trade_date_timestamp_      the trading date of that snapshot
seconds{broker,account}
quantlake_alerts_active{kind}                   alert keys currently in an alerting state
quantlake_scrape_errors{part}                   1 when a part could not be read (its error is logged)
=============================================== =========================================================
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

log = logging.getLogger(__name__)
FLOW_WINDOW = dt.timedelta(hours=24)


def _ts(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.timestamp()
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC).timestamp()
    if isinstance(value, int | float):  # delta-rs history: milliseconds since the epoch
        return float(value) / 1000.0
    return None


class QuantlakeCollector(Collector):
    def __init__(self, flow_window: dt.timedelta = FLOW_WINDOW) -> None:
        self.flow_window = flow_window

    def collect(self) -> Iterator[Metric]:
        errors = GaugeMetricFamily("quantlake_scrape_errors", "1 when a part of the scrape failed", labels=["part"])
        for part, fn in (("lake", self._lake), ("paper", self._paper), ("flows", self._flows), ("alerts", self._alerts)):
            try:
                yield from fn()
                errors.add_metric([part], 0.0)
            except Exception as exc:  # a scrape reports what it can; the failed part is visible
                log.warning("metrics: %s not available: %s", part, exc)
                errors.add_metric([part], 1.0)
        yield errors

    def _lake(self) -> Iterator[Metric]:
        from quantlake.lake import Lake

        lake = Lake()
        version = GaugeMetricFamily("quantlake_lake_table_version", "current Delta version", labels=["table"])
        rows = GaugeMetricFamily("quantlake_lake_table_rows", "rows in the current version", labels=["table"])
        commit = GaugeMetricFamily("quantlake_lake_table_last_commit_timestamp_seconds",
                                   "when the table last committed", labels=["table"])  # fmt: skip
        age = GaugeMetricFamily("quantlake_lake_table_latest_date_age_days",
                                "days from the table's newest date to today", labels=["table"])  # fmt: skip
        today = dt.datetime.now(dt.UTC).date()
        for info in lake.info():
            version.add_metric([info.name], float(info.version))
            rows.add_metric([info.name], float(info.rows))
            history = lake.history(info.name)
            ts = _ts(history[0].get("timestamp")) if history else None
            if ts is not None:
                commit.add_metric([info.name], ts)
            if info.max_date is not None:
                newest = info.max_date.date() if isinstance(info.max_date, dt.datetime) else info.max_date
                age.add_metric([info.name], float((today - newest).days))
        yield from (version, rows, commit, age)

    def _paper(self) -> Iterator[Metric]:
        from quantlake.lake import Lake

        lake = Lake()
        equity = GaugeMetricFamily("quantlake_paper_equity", "latest recorded account equity",
                                   labels=["broker", "account"])  # fmt: skip
        dd = GaugeMetricFamily("quantlake_paper_drawdown", "drawdown from the account's peak (fraction)",
                               labels=["broker", "account"])  # fmt: skip
        day = GaugeMetricFamily("quantlake_paper_last_trade_date_timestamp_seconds", "trading date of that snapshot",
                                labels=["broker", "account"])  # fmt: skip
        if lake.exists("exec_account"):
            acc = lake.read("exec_account", columns=["broker", "account", "trade_date", "equity", "drawdown",
                                                     "recorded_at"])  # fmt: skip
            latest = acc.sort_values(["trade_date", "recorded_at"]).groupby(["broker", "account"]).tail(1)
            for r in latest.itertuples(index=False):
                labels = [str(r.broker), str(r.account)]
                equity.add_metric(labels, float(r.equity))
                dd.add_metric(labels, float(r.drawdown or 0.0))
                ts = _ts(r.trade_date if not hasattr(r.trade_date, "to_pydatetime") else r.trade_date.date())
                if ts is not None:
                    day.add_metric(labels, ts)
        yield from (equity, dd, day)

    def _flows(self) -> Iterator[Metric]:
        runs = GaugeMetricFamily("quantlake_flow_runs", "flow runs in the window by final state",
                                 labels=["flow", "state"])  # fmt: skip
        last = GaugeMetricFamily("quantlake_flow_last_run_timestamp_seconds", "start of each flow's latest run",
                                 labels=["flow", "state"])  # fmt: skip
        if os.environ.get("PREFECT_API_URL"):
            from prefect.client.orchestration import get_client
            from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterStartTime

            since = dt.datetime.now(dt.UTC) - self.flow_window
            counts: dict[tuple[str, str], int] = {}
            newest: dict[str, tuple[float, str]] = {}
            with get_client(sync_client=True) as client:
                names = {f.id: f.name for f in client.read_flows()}
                found = client.read_flow_runs(
                    flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(after_=since)),  # type: ignore[arg-type]
                    limit=200,
                )
            for r in found:
                flow = names.get(r.flow_id, "?")
                state = r.state_type.value if r.state_type is not None else "UNKNOWN"
                counts[(flow, state)] = counts.get((flow, state), 0) + 1
                started = _ts(r.start_time)
                if started is not None and started > newest.get(flow, (0.0, ""))[0]:
                    newest[flow] = (started, state)
            for (flow, state), n in sorted(counts.items()):
                runs.add_metric([flow, state], float(n))
            for flow, (started, state) in sorted(newest.items()):
                last.add_metric([flow, state], started)
        yield from (runs, last)

    def _alerts(self) -> Iterator[Metric]:
        from execution import alert_state

        g = GaugeMetricFamily("quantlake_alerts_active", "alert keys in an alerting state", labels=["kind"])
        kinds: dict[str, int] = {}
        for key in alert_state.active():
            kind = key.split(":", 1)[0]
            kinds[kind] = kinds.get(kind, 0) + 1
        for kind, n in sorted(kinds.items()):
            g.add_metric([kind], float(n))
        yield g


def registry() -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(QuantlakeCollector())
    return reg
