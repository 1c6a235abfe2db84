"""Jobs registry and `runs reproduce`: same config + pinned table versions → identical metrics."""

from __future__ import annotations

import datetime as dt
import json
import sys
import uuid
from pathlib import Path

import pandas as pd
import pytest
import typer
from pydantic import BaseModel
from typer.testing import CliRunner


@pytest.fixture()
def store(ql_home: Path, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tracking.testing import seed_store

    cache = getattr(request.config, "cache", None)
    cache_dir = Path(cache.mkdir("quantlake_mlflow")) if cache else tmp_path_factory.getbasetemp() / "mlflow"
    seed_store(ql_home, cache_dir)
    return ql_home


@pytest.fixture()
def cli() -> typer.Typer:
    from tracking.cli import register

    app = typer.Typer()
    register(app)
    return app


def bars(rows: list[tuple[str, int, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"symbol": s, "date": dt.date(2021, 1, d), "close": c, "source": "test"} for s, d, c in rows]
    )


def test_reproduce_is_identical_after_new_data_and_the_pin_matters(store: Path, lake) -> None:  # type: ignore[no-untyped-def]
    from quantlake.lake import Lake
    from tracking.jobs import run_job
    from tracking.reproduce import reproduce
    from tracking.run_context import client

    lake.merge("equity_bars", bars([("AAA", 4, 10.0), ("AAA", 5, 11.0), ("BBB", 4, 50.0), ("BBB", 5, 52.5)]))
    run_id = run_job("demo.lake_stats", {}, lake=Lake(lake.root))
    original = client().get_run(run_id).data
    assert original.tags["lake.version.equity_bars"] == "0"
    assert original.metrics["avg_close"] == pytest.approx(30.875)

    # new data lands in between: new rows (version 1) and a vendor correction of an old row (version 2)
    lake.merge("equity_bars", bars([("AAA", 6, 99.0), ("CCC", 6, 7.0)]))
    lake.merge("equity_bars", bars([("AAA", 4, 10.5)]))
    assert lake.version("equity_bars") == 2

    result = reproduce(run_id, lake.root)
    assert result.identical
    assert result.original.pins == {"equity_bars": 0}
    assert {m.name for m in result.metrics} == set(original.metrics)
    assert all(m.original == m.reproduced for m in result.metrics)
    assert not result.code_changed and result.unpinned_reads == {}
    new = client().get_run(result.new_run_id).data
    assert new.tags["quantlake.reproduces"] == run_id
    assert new.tags["quantlake.reproduce_identical"] == "true"
    assert new.tags["lake.version.equity_bars"] == "0"
    assert json.loads(new.tags["quantlake.lake_pins"]) == {"equity_bars": 0}
    assert new.params == original.params

    # negative control: the same job unpinned sees the new data, so the pin is what made it identical
    latest_id = run_job("demo.lake_stats", {}, lake=Lake(lake.root))
    latest = client().get_run(latest_id).data
    assert latest.tags["lake.version.equity_bars"] == "2"
    assert latest.metrics["avg_close"] != original.metrics["avg_close"]
    assert latest.metrics["rows"] == 6.0 != original.metrics["rows"]


class NoiseCfg(BaseModel):
    scale: float = 1.0


def test_cli_reproduce_exit_codes_and_values(store: Path, lake, cli: typer.Typer) -> None:  # type: ignore[no-untyped-def]
    import random

    from tracking.jobs import register_job

    lake.merge("equity_bars", bars([("AAA", 4, 10.0), ("BBB", 4, 20.0)]))
    runner = CliRunner()
    res = runner.invoke(cli, ["runs", "run", "demo.lake_stats", "--set", 'symbols=["aaa"]'])
    assert res.exit_code == 0, res.output
    run_id = res.output.split("run ")[1].split()[0]
    assert "rows.AAA" in res.output and "rows.BBB" not in res.output

    res = runner.invoke(cli, ["runs", "reproduce", run_id])
    assert res.exit_code == 0, res.output
    assert "identical" in res.output and "NO" not in res.output
    assert "10.0" in res.output  # the exact values are shown

    name = f"test.noise_{uuid.uuid4().hex[:8]}"

    @register_job(name, NoiseCfg, experiment="noise")
    def noise(config: NoiseCfg, lk) -> dict[str, float]:  # type: ignore[no-untyped-def]
        lk.read("equity_bars")
        return {"draw": random.random() * config.scale, "fixed": 1.0}

    res = runner.invoke(cli, ["runs", "run", name])
    assert res.exit_code == 0, res.output
    noisy_id = res.output.split("run ")[1].split()[0]
    res = runner.invoke(cli, ["runs", "reproduce", noisy_id])
    assert res.exit_code == 1, res.output
    assert "NOT identical" in res.output and "1 of 2 metric(s) differ" in res.output


def test_reproduce_refuses_unknown_and_untracked_runs(store: Path, cli: typer.Typer) -> None:
    from tracking.errors import NotReproducibleError, RunNotFoundError
    from tracking.reproduce import reproduce
    from tracking.run_context import client, get_or_create_experiment

    with pytest.raises(RunNotFoundError):
        reproduce("0" * 32)
    res = CliRunner().invoke(cli, ["runs", "reproduce", "0" * 32])
    assert isinstance(res.exception, RunNotFoundError) and res.exception.exit_code == 2
    plain = client().create_run(get_or_create_experiment("plain"))
    with pytest.raises(NotReproducibleError, match=r"no quantlake\.job tag"):
        reproduce(plain.info.run_id)


def test_job_registry_validation_and_discovery(
    store: Path, lake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    from quantlake.errors import ConfigError
    from tracking import jobs
    from tracking.errors import JobNotFoundError

    with pytest.raises(ConfigError, match="symbols"):
        jobs.run_job("demo.lake_stats", {"symbols": ["not a symbol!"]}, lake=lake)
    with pytest.raises(ConfigError, match="start"):
        jobs.run_job("demo.lake_stats", {"start": "2021-02-01", "end": "2021-01-01"}, lake=lake)
    with pytest.raises(JobNotFoundError, match=r"demo\.lake_stats"):
        jobs.get_job("no.such_job")
    with pytest.raises(ValueError, match="invalid job name"):
        jobs.register_job("Bad Name", NoiseCfg)

    # a package with a jobs.py module anywhere below it is discovered without being listed
    pkg = f"qltest_{uuid.uuid4().hex[:8]}"
    (tmp_path / pkg / "sub").mkdir(parents=True)
    (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / pkg / "sub" / "__init__.py").write_text("")
    (tmp_path / pkg / "sub" / "jobs.py").write_text(
        "from pydantic import BaseModel\n"
        "from tracking.jobs import register_job\n"
        "class C(BaseModel):\n    n: int = 2\n"
        f"@register_job('{pkg}.double', C)\n"
        "def double(config, lake):\n    return {'n2': config.n * 2}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(jobs, "JOB_PACKAGES", (*jobs.JOB_PACKAGES, pkg))
    monkeypatch.setattr(jobs, "_discovered", False)
    job = jobs.get_job(f"{pkg}.double")
    assert job.module == f"{pkg}.sub.jobs" and job.experiment == pkg
    from tracking.run_context import client

    run_id = jobs.run_job(job.name, {"n": 5}, lake=lake)
    assert client().get_run(run_id).data.metrics == {"n2": 10.0}
    sys.modules.pop(f"{pkg}.sub.jobs", None)
