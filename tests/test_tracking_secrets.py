"""Nothing secret reaches the MLflow store: scrubber unit tests and a grep over every byte of a real store."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path

import pandas as pd
import pytest
from pydantic import BaseModel, SecretStr

from tracking.scrub import MASK, Scrubber, config_secrets, is_secret_name


@pytest.mark.parametrize(
    "name",
    [
        "FRED_API_KEY",
        "ALPACA_API_SECRET",
        "SMTP_PASSWORD",
        "apiKey",
        "clientSecret",
        "github_token",
        "db_passwd",
        "key",
        "IBKR_PASSPHRASE",
        "aws_credentials",
        "Authorization",
    ],
)
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    ["symbol", "window", "keys", "monkey", "author", "HOME", "PATH", "start_date", "PWD", "OLDPWD",
     "GOOGLE_APPLICATION_CREDENTIALS_FILE", "SECRETS_DIR", "TOKEN_PATH", "ALPACA_BASE_URL", "SMTP_USER"],
)
def test_harmless_names(name: str) -> None:
    assert not is_secret_name(name)


def test_scrubber_masks_values_urls_and_nested_data() -> None:
    s = Scrubber(["hunter2-long-secret", "hunter2-long"], include_env=False)
    assert s.text("pw=hunter2-long-secret;") == f"pw={MASK};"  # longest secret first, masked whole
    assert s.text("a hunter2-long b") == f"a {MASK} b"
    assert s.text("postgresql://quant:pa55word@db:5432/x") == f"postgresql://quant:{MASK}@db:5432/x"
    assert s.text("https://example.org/a:b@c") == "https://example.org/a:b@c"  # not a userinfo part
    assert s.data({"k": ["x hunter2-long y", 3]}) == {"k": [f"x {MASK} y", 3]}
    assert s.bytes(b"\x00hunter2-long\x00") == b"\x00" + b"*" * 12 + b"\x00"
    quoted = Scrubber(['pa"ss\\word-1'], include_env=False)
    assert "ss" not in quoted.text(json.dumps({"a": 'x pa"ss\\word-1 y'}))  # also inside JSON text
    short = Scrubber(["abc"], include_env=False)
    assert short.text("abc and abcdef") == "abc and abcdef"  # too short to search for in free text


def test_scrubber_reads_secret_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOME_SERVICE_TOKEN", "tok-1234567890")
    monkeypatch.setenv("SOME_FEATURE_TOKEN_ENABLED", "true")  # trivial values are never secrets
    monkeypatch.setenv("PLAIN_SETTING", "plain-value-123")
    monkeypatch.setenv("DATABASE_URL", "postgresql://quant:dburl-pw-123@db/x")  # URL password of any variable
    s = Scrubber()
    assert s.text("x tok-1234567890 y") == f"x {MASK} y"
    assert s.text("true plain-value-123") == "true plain-value-123"
    assert (
        s.text('{"u": "postgresql:\\/\\/quant:dburl-pw-123@db"}') == '{"u": "postgresql:\\/\\/quant:***@db"}'
    )


class Broker(BaseModel):
    client_secret: str = "nested-client-secret-value"
    user: str = "quant"


class SecretCfg(BaseModel):
    symbol: str = "SPY"
    api_token: str = "cfg-token-value-123"
    password: SecretStr = SecretStr("typed-secretstr-value")
    broker: Broker = Broker()
    credentials: dict[str, str] = {"user": "u", "pin": "credentials-pin-1"}
    db_url: str = "postgresql://quant:url-password-1@db/x"
    sort_key: str | None = None


def test_config_secrets_masks_fields_and_collects_values() -> None:
    dumped, masked, values = config_secrets(SecretCfg())
    assert dumped["symbol"] == "SPY"
    assert dumped["api_token"] == dumped["password"] == dumped["broker"]["client_secret"] == MASK
    assert dumped["broker"]["user"] == "quant"
    assert dumped["credentials"] == MASK  # a secret-named container is masked whole
    assert dumped["db_url"] == f"postgresql://quant:{MASK}@db/x"
    assert dumped["sort_key"] is None  # secret-looking but empty: nothing to mask
    assert masked == ["api_token", "broker.client_secret", "credentials", "db_url", "password"]
    assert {
        "cfg-token-value-123",
        "typed-secretstr-value",
        "nested-client-secret-value",
        "credentials-pin-1",
        "url-password-1",
    } <= values


# ------------------------------------------------------------------------------------- the store grep
@pytest.fixture()
def store(ql_home: Path, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tracking.testing import seed_store

    cache = getattr(request.config, "cache", None)
    cache_dir = Path(cache.mkdir("quantlake_mlflow")) if cache else tmp_path_factory.getbasetemp() / "mlflow"
    seed_store(ql_home, cache_dir)
    return ql_home


class JobCfg(BaseModel):
    symbols: list[str] = ["AAA"]
    api_key: str = ""
    db_url: str = ""
    password: SecretStr = SecretStr("")
    marker: str = ""


def _grep(root: Path, needles: dict[str, bytes]) -> dict[str, list[str]]:
    hits: dict[str, list[str]] = {name: [] for name in needles}
    files = [p for p in root.rglob("*") if p.is_file()]
    assert files, f"no files under {root}"
    for p in files:
        data = p.read_bytes()
        for name, needle in needles.items():
            if needle in data:
                hits[name].append(str(p.relative_to(root)))
    return hits


def test_paths_are_not_secrets(store: Path, lake, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """29 of 35 lineage.json files recorded "lake_root": "***/…" because PWD (the working directory) looked
    like a password variable; the lineage keeps real paths, the secret of a real secret variable is still
    masked, and `quantlake ui mlflow` prints the store's real location."""
    from typer.testing import CliRunner

    from quantlake.cli import app
    from tracking import ui
    from tracking.run_context import client, tracked_run

    monkeypatch.setenv("PWD", str(store))
    monkeypatch.setenv("OLDPWD", str(store.parent))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(store / "creds.json"))
    monkeypatch.setenv("SMTP_PASSWORD", "hunter2-very-secret")
    lake.merge(
        "equity_bars",
        pd.DataFrame({"symbol": ["AAA"], "date": [dt.date(2021, 1, 4)], "close": [1.0], "source": ["t"]}),
    )
    with tracked_run("paths", "test.paths", JobCfg(marker=f"{store}/x hunter2-very-secret"), lake) as run:
        lake.read("equity_bars")
    lineage = json.loads(Path(client().download_artifacts(run.run_id, "lineage.json")).read_text())
    assert lineage["lake_root"] == lake.uri and MASK not in lineage["lake_root"]
    params = client().get_run(run.run_id).data.params
    assert params["marker"] == f"{store}/x ***"

    monkeypatch.setattr(ui, "run_foreground", lambda cmd, **kw: 0)
    res = CliRunner().invoke(app, ["ui", "mlflow", "--port", "5987"], env={"COLUMNS": "300"})
    assert res.exit_code == 0, res.output
    assert str(store / "mlflow") in res.output and "***" not in res.output


def test_planted_secrets_never_reach_the_store(store: Path, lake, monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import plotly.graph_objects as go

    from tracking.jobs import register_job, run_job
    from tracking.promotion import promote
    from tracking.registry import log_signal_model
    from tracking.reproduce import reproduce
    from tracking.run_context import current_run, tracked_run
    from tracking.signal_models import RuleSignalModel, ThresholdRule

    tag = uuid.uuid4().hex[:10]
    planted = {
        "FRED_API_KEY": f"fredkey-{tag}",
        "ALPACA_API_SECRET": f"alpacasecret-{tag}",
        "SMTP_PASSWORD": f"smtppass-{tag}",
        "cfg.api_key": f"cfgapikey-{tag}",
        "cfg.db_url password": f"dbpw-{tag}",
        "cfg.password": f"secretstr-{tag}",
    }
    for env in ("FRED_API_KEY", "ALPACA_API_SECRET", "SMTP_PASSWORD"):
        monkeypatch.setenv(env, planted[env])
    marker = f"visible-marker-{tag}"
    env_secret = planted["FRED_API_KEY"]
    lake.merge(
        "equity_bars",
        pd.DataFrame({"symbol": ["AAA"], "date": [dt.date(2021, 1, 4)], "close": [1.0], "source": ["t"]}),
    )

    @register_job(f"test.leaky_{tag}", JobCfg, experiment="leaky")
    def leaky(config: JobCfg, lk) -> dict[str, float]:  # type: ignore[no-untyped-def]
        run = current_run()
        assert run is not None
        lk.read("equity_bars")
        everything = f"{config.api_key} {config.db_url} {config.password.get_secret_value()} {env_secret}"
        run.log_text(f"{marker} {everything}", "notes.txt")
        run.log_dict({"leak": everything, "marker": marker}, "extra/leak.json")
        run.log_params({"extra_param": everything})
        run.set_tags({"extra_tag": everything})
        run.log_frame("frame", pd.DataFrame({"s": [everything, "ok"], everything: [1, 2]}))
        run.log_figure("fig", go.Figure(go.Scatter(y=[1, 2]), layout={"title": {"text": everything}}))
        leak_file = tmp_path / "leak.txt"
        leak_file.write_text(everything)
        run.log_artifact(leak_file)
        leak_dir = tmp_path / "leakdir"
        leak_dir.mkdir(exist_ok=True)
        (leak_dir / "inner.bin").write_bytes(b"\x00\x01" + everything.encode() + b"\xff")
        run.log_artifact(leak_dir)
        # a registered signal model whose version tags carry the secrets too
        example = pd.DataFrame(
            {"symbol": ["AAA", "AAA"], "date": pd.to_datetime(["2021-01-04", "2021-01-05"]), "f": [1.0, -1.0]}
        )
        rule = RuleSignalModel(ThresholdRule(feature="f", long_above=0.0))
        log_signal_model(
            run, rule, example, registered_name=f"leaky_{tag}", version_tags={"origin": everything}
        )
        return {"x": 1.0}

    cfg = JobCfg(
        api_key=planted["cfg.api_key"],
        db_url=f"postgresql://quant:{planted['cfg.db_url password']}@db/x",
        password=SecretStr(planted["cfg.password"]),
        marker=marker,
    )
    run_id = run_job(f"test.leaky_{tag}", cfg, lake=lake, run_name=f"name {env_secret}")
    # a failing run whose error message carries a secret
    with pytest.raises(RuntimeError), tracked_run("leaky", "test.boom", cfg, lake):
        raise RuntimeError(f"could not log in with {planted['SMTP_PASSWORD']} / {planted['cfg.api_key']}")
    # reproducing a run with masked fields works (they come back from defaults) and leaks nothing either
    reproduce(run_id)
    # a forced promotion with a note quoting a secret: version tags and the promotions audit run
    decision = promote(f"leaky_{tag}", 1, force=True, note=f"approved with {env_secret} by {marker}")
    assert decision.promoted and decision.note == f"approved with *** by {marker}"

    mlflow_dir = store / "mlflow"
    needles = {name: v.encode() for name, v in planted.items()}
    hits = _grep(mlflow_dir, {**needles, "marker": marker.encode(), "mask": MASK.encode()})
    # positive controls: the grep does see plain strings in the sqlite file and in artifacts
    assert any(h.endswith("mlflow.db") for h in hits["marker"]), hits["marker"]
    assert any(h.endswith("notes.txt") for h in hits["marker"])
    assert list(mlflow_dir.rglob("MLmodel")), "the logged signal model's files are inside the grepped tree"
    assert any(h.endswith("mlflow.db") for h in hits["mask"])
    leaks = {name: files for name, files in hits.items() if name in planted and files}
    assert leaks == {}
