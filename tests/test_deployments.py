"""prefect.yaml: every deployment points at a real flow whose signature accepts its parameters, the
schedules are valid and in pipeline order (ingest → features → scan → paper trade after the US close on
weekdays; sweeps and retraining on weekends), and one process work pool serves them all."""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import inspect
import itertools
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NY = "America/New_York"


def deployments() -> dict[str, dict[str, Any]]:
    data = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    out = {d["name"]: d for d in data["deployments"]}
    assert len(out) == len(data["deployments"]), "deployment names must be unique"
    return out


def load_flow(entrypoint: str) -> Any:
    from prefect import Flow

    path, func = entrypoint.split(":")
    assert (ROOT / path).is_file(), f"{entrypoint}: no such file"
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    fn = getattr(module, func)
    assert isinstance(fn, Flow), f"{entrypoint} is not a Prefect flow"
    return fn


def next_runs(schedule: dict[str, Any], n: int, after: dt.datetime) -> list[dt.datetime]:
    from prefect.server.schemas.schedules import CronSchedule

    cron = CronSchedule(cron=schedule["cron"], timezone=schedule["timezone"])
    dates = cron.get_dates(n, start=after)
    if inspect.iscoroutine(dates):  # sync_compatible: a coroutine when Prefect thinks it is in async code
        dates = asyncio.run(dates)
    return list(dates)


def test_every_deployment_runs_a_flow_that_accepts_its_parameters() -> None:
    from prefect.utilities.callables import parameter_schema

    deps = deployments()
    expected = {"ingest-equity", "ingest-macro", "ingest-options", "ingest-cot", "build-features", "daily-scan",
                "paper-trade", "equity-sweep", "options-backtest", "train-models", "promote-models",
                "equity-sweep-docker", "build-features-docker", "hourly-crypto-scan", "hourly-crypto-paper",
                "monitor-models", "lake-maintenance"}  # fmt: skip
    assert set(deps) == expected
    for name, d in deps.items():
        flow = load_flow(d["entrypoint"])
        schema = parameter_schema(flow)  # fails for annotations Prefect cannot read
        params = d.get("parameters") or {}
        assert set(params) <= set(schema.properties), f"{name}: unknown parameters {set(params) - set(schema.properties)}"
        missing = [p for p in (schema.required or []) if p not in params]
        if name == "promote-models":
            assert missing == ["candidates"]  # given when run by hand
            params = {**params, "candidates": {"ml_ensemble": 3}}
        else:
            assert missing == [], f"{name}: required parameters without a value: {missing}"
        flow.validate_parameters(params)  # types as Prefect will check them on every run
        assert d["work_pool"]["name"] == ("quantlake-docker" if name.endswith("-docker") else "quantlake-process")


def test_parameter_payloads_are_valid_configs() -> None:
    from execution.report import load_scan_config
    from execution.settings import TradeConfig

    deps = deployments()
    scan_params = deps["daily-scan"]["parameters"]
    assert scan_params["max_age_days"] == 1
    load_scan_config(None, scan_params.get("config") or {})
    TradeConfig.model_validate(deps["paper-trade"]["parameters"]["config"])
    assert deps["paper-trade"]["parameters"]["max_age_days"] == 1
    assert (ROOT / deps["options-backtest"]["parameters"]["config"]).is_file()
    from backtests.equity.config import SweepConfig

    SweepConfig.model_validate(deps["equity-sweep"]["parameters"]["config"])


def test_daily_schedule_runs_in_pipeline_order_after_the_close() -> None:
    deps = deployments()
    order = ["ingest-equity", "ingest-macro", "ingest-options", "build-features", "daily-scan", "paper-trade"]
    friday_noon = dt.datetime(2024, 7, 5, 16, 0, tzinfo=dt.UTC)  # Friday 12:00 in New York
    firsts = []
    for name in order:
        (schedule,) = deps[name]["schedules"]
        assert schedule["timezone"] == NY and schedule["active"] is True
        runs = next_runs(schedule, 6, friday_noon)
        local = [r.astimezone(__import__("zoneinfo").ZoneInfo(NY)) for r in runs]
        # weekdays only, after the 16:00 close; Friday, then Monday..Friday
        assert [d.weekday() for d in local] == [4, 0, 1, 2, 3, 4], name
        assert all(d.hour >= 17 for d in local), name
        firsts.append(local[0])
    assert firsts == sorted(firsts) and len(set(firsts)) == len(firsts)
    assert firsts[0].date() == dt.date(2024, 7, 5)


def test_weekly_research_runs_on_weekends() -> None:
    deps = deployments()
    after = dt.datetime(2024, 7, 1, tzinfo=dt.UTC)  # a Monday
    days = {}
    for name in ("equity-sweep", "options-backtest", "train-models", "ingest-cot", "lake-maintenance"):
        (schedule,) = deps[name]["schedules"]
        runs = next_runs(schedule, 2, after)
        assert (runs[1] - runs[0]) == dt.timedelta(days=7), name
        days[name] = runs[0].astimezone(__import__("zoneinfo").ZoneInfo(NY)).weekday()
    assert days == {"equity-sweep": 5, "options-backtest": 5, "train-models": 6, "ingest-cot": 4,
                    "lake-maintenance": 6}
    # maintenance (it rewrites files) runs after the weekend's research and training have read the lake
    (maint,), (train,) = deps["lake-maintenance"]["schedules"], deps["train-models"]["schedules"]
    assert next_runs(maint, 1, after)[0] > next_runs(train, 1, after)[0]
    assert "schedules" not in deps["promote-models"]


def test_hourly_crypto_scan_runs_every_hour_after_the_bar_closes() -> None:
    (schedule,) = deployments()["hourly-crypto-scan"]["schedules"]
    runs = next_runs(schedule, 25, dt.datetime(2024, 7, 6, 23, 30, tzinfo=dt.UTC))  # a Saturday night: 24/7
    assert all(r.minute == 5 for r in runs)
    assert {(b - a).total_seconds() for a, b in itertools.pairwise(runs)} == {3600.0}


def test_hourly_crypto_paper_trades_each_bar_after_it_was_ingested() -> None:
    from execution.interval_trader import load_interval_config

    deps = deployments()
    cfg = load_interval_config(deps["hourly-crypto-paper"]["parameters"]["config"])
    scan = deps["hourly-crypto-scan"]["parameters"]
    assert cfg.interval == scan["interval"]
    assert cfg.symbols == [f"{scan['exchange'].upper()}:{p}" for p in scan["pairs"]]  # the pairs the scan ingests
    (schedule,) = deps["hourly-crypto-paper"]["schedules"]
    (ingest,) = deps["hourly-crypto-scan"]["schedules"]
    start = dt.datetime(2024, 7, 6, 23, 30, tzinfo=dt.UTC)
    for run, after in zip(next_runs(schedule, 25, start), next_runs(ingest, 25, start), strict=True):
        assert dt.timedelta(0) < run - after < dt.timedelta(minutes=30)  # the same hour's bar, once it is in


@pytest.mark.parametrize("name", ["daily-scan", "hourly-crypto-scan", "hourly-crypto-paper"])
def test_flow_module_has_no_future_annotations(name: str) -> None:
    """Flows must not use ``from __future__ import annotations`` (Prefect's parameter validation)."""
    path = ROOT / deployments()[name]["entrypoint"].split(":")[0]
    assert "from __future__ import annotations" not in path.read_text()
