"""Option strategies on the paper broker: the backtest's strategy object and engine driven by the trader, one
day at a time, give the backtest's orders, fills and exits (issue 16's "one strategy code path").

The replay: the shipped iron condor config on ^GSPC (sample data, modeled chains, regime features) is
backtested as a tracked run over 20 trading days of January 2018 (a stop-loss and three regime-shift
exits), registered and promoted in the registry, then traded on the paper broker day by day through the
same days.  Every fill (date, contract, contracts, price, commission), every closed position (dates, exit
reason, P&L) and the equity must be the backtest's.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from backtests.options.config import OptionsBacktestConfig, load_config
from execution import audit
from execution.option_orders import OptionLeg, option_client_order_id, parse_occ, reduce_ratios
from execution.settings import TradeConfig
from quantlake.errors import ConfigError
from quantlake.lake import Lake

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "options" / "iron_condor_gspc.yaml"
START, END = dt.date(2018, 1, 2), dt.date(2018, 1, 30)


# ------------------------------------------------------------------------------------------ order model
def test_occ_symbols_round_trip() -> None:
    leg = OptionLeg("SPY", dt.date(2024, 1, 19), 450.0, "C", -2)
    assert leg.occ == "SPY240119C00450000"
    back = OptionLeg.from_occ("SPY   240119C00450000", -2)
    assert back == leg.__class__("SPY", dt.date(2024, 1, 19), 450.0, "C", -2, "SPY")
    spx = OptionLeg("^GSPC", dt.date(2018, 2, 16), 2612.5, "P", 1)
    assert spx.occ == "SPX180216P02612500" and parse_occ(spx.occ).underlying == "^GSPC"  # type: ignore[union-attr]
    assert parse_occ("AAPL") is None
    assert reduce_ratios([-4, 4, -4, 4]) == ([-1, 1, -1, 1], 4)


def test_client_order_ids_are_per_leg_set() -> None:
    day = dt.date(2018, 1, 2)
    a = (OptionLeg("^GSPC", day, 2600.0, "P", -1), OptionLeg("^GSPC", day, 2550.0, "P", 1))
    same = tuple(reversed(a))
    other = (OptionLeg("^GSPC", day, 2600.0, "P", -1), OptionLeg("^GSPC", day, 2540.0, "P", 1))
    cid = option_client_order_id(day, "ic", "^GSPC", a, "open", "acct")
    assert cid == option_client_order_id(day, "ic", "^GSPC", same, "open", "acct")  # leg order does not matter
    assert cid != option_client_order_id(day, "ic", "^GSPC", other, "open", "acct")
    assert cid != option_client_order_id(day, "ic", "^GSPC", a, "close", "acct")
    assert cid != option_client_order_id(day, "ic", "^GSPC", a, "open", "other")
    assert len(cid) <= 100 and "-acct-" in cid


# ------------------------------------------------------------------------------------------ the replay
@pytest.fixture(scope="module")
def regime_lake(sample_lake_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample lake with the regime features (the iron condor exits on a regime shift)."""
    import shutil

    from features.build import build_features

    root = tmp_path_factory.mktemp("ic") / "lake"
    shutil.copytree(sample_lake_dir, root)
    build_features(Lake(root), tables=["regime"])
    return root


def condor_config() -> OptionsBacktestConfig:
    cfg = load_config(CONFIG)
    return cfg.model_copy(update={"start": START, "end": END, "outputs": cfg.outputs.model_copy(update={"plots": False})})


def _label(symbol: str) -> str:
    leg = parse_occ(symbol)
    assert leg is not None
    return leg.contract().label()


@pytest.mark.slow
def test_promoted_iron_condor_trades_20_days_with_the_backtests_orders_and_exits(
    regime_lake: Path, tmp_path: Path, ql_home: Path
) -> None:
    import shutil

    from backtests.options.jobs import run_tracked
    from execution.option_book import book_path, load_book, register_option_strategy
    from execution.option_trader import run_option_trade
    from tracking.promotion import promote

    lake = Lake(ql_home / "lake")  # QUANTLAKE_HOME's lake: the CLI below reads it too
    shutil.copytree(regime_lake, lake.root)
    cfg = condor_config()
    run_id, bt = run_tracked(cfg, lake)
    version = register_option_strategy(run_id, "ic_gspc")
    assert promote("ic_gspc", version, force=True, note="replay test").promoted
    days = [pd.Timestamp(d).date() for d in bt.daily.index]
    assert len(days) == 20
    assert sorted(bt.positions["exit_reason"]) == ["regime_shift", "regime_shift", "regime_shift", "stop_loss"]

    trade = TradeConfig(model="ic_gspc", instrument="options", account="ic", initial_cash=1_000_000)
    results = [run_option_trade(trade.model_copy(update={"as_of": d}), lake) for d in days]
    assert all(not r.errors and not r.reconciliation for r in results), [r.summary() for r in results]

    # every fill: the backtest's (date, contract, signed contracts, price, commission)
    fills = audit.fills(lake, "paper", "ic")
    live = pd.DataFrame({
        "date": pd.to_datetime(fills["filled_at"]).dt.tz_convert("America/New_York").dt.date,
        "contract": fills["symbol"].map(_label),
        "qty": fills["qty"].where(fills["side"] == "buy", -fills["qty"]).astype(float),
        "price": fills["price"].astype(float),
        "fees": fills["commission"].astype(float),
    }).sort_values(["date", "contract", "qty"]).reset_index(drop=True)  # fmt: skip
    sim = bt.fills[bt.fills["action"].isin(["open", "close"])]
    want = pd.DataFrame({"date": sim["date"], "contract": sim["contract"], "qty": sim["qty"].astype(float),
                         "price": sim["price"].astype(float), "fees": sim["fees"].astype(float)}
                        ).sort_values(["date", "contract", "qty"]).reset_index(drop=True)  # fmt: skip
    assert len(want) == 4 * (4 + 4) + 4 * 1  # 4 closed condors (open + close) and the one still open
    pd.testing.assert_frame_equal(live, want, check_exact=False, rtol=1e-12, atol=1e-9)

    # every exit: same dates, reasons and P&L; the same position still open; the same equity
    book = load_book(book_path("paper", "ic", "ic_gspc"))
    assert book is not None
    got = pd.DataFrame(book.engine.account.closed)[["opened", "closed", "exit_reason", "units", "pnl"]]
    pd.testing.assert_frame_equal(got, bt.positions[["opened", "closed", "exit_reason", "units", "pnl"]],
                                  check_exact=False, rtol=1e-12)  # fmt: skip
    assert [p["opened"] for p in results[-1].positions] == list(bt.open_positions["entry_date"].unique())
    assert results[-1].equity == pytest.approx(float(bt.daily["equity"].iloc[-1]), rel=1e-12)

    # the orders: decided at a close, sent once each, all filled, one per package
    orders = audit.orders(lake, "paper", "ic", strategy="ic_gspc")
    assert set(orders["status"]) == {"filled"} and orders["client_order_id"].is_unique
    assert sorted(orders["leg"].value_counts().to_dict().items()) == [("close", 4), ("open", 5)]
    assert (orders["qty"] == 4).all()

    # the command line: the next day, dry run (decides with the book, sends and records nothing)
    from typer.testing import CliRunner

    from quantlake.cli import app

    out = CliRunner().invoke(app, ["trade", "--instrument", "options", "--model", "ic_gspc", "--account", "ic",
                                   "--as-of", "2018-01-31", "--dry-run"])  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "DRY RUN" in out.output and "open positions of the strategy's book" in out.output
    assert len(audit.orders(lake, "paper", "ic")) == len(orders)  # nothing recorded
    bad = CliRunner().invoke(app, ["trade", "--instrument", "futures", "--model", "ic_gspc"])
    assert isinstance(bad.exception, ConfigError) and bad.exception.exit_code == 2 and "instrument" in str(bad.exception)


def test_register_options_refuses_a_run_that_is_not_an_options_backtest(store: Path) -> None:
    """`trade register-options RUN_ID` with an equity sweep's (or any other job's) run id registered that run's
    config as an option strategy; the trader only failed later, on the champion's config."""
    import mlflow

    from execution.option_book import register_option_strategy
    from quantlake.errors import UserInputError
    from tracking.run_context import configure_mlflow
    from tracking.tags import JOB

    configure_mlflow()
    mlflow.set_experiment("strategies")
    with mlflow.start_run() as run:
        mlflow.set_tag(JOB, "equity_sweep")
        mlflow.log_dict({"symbols": ["SPY"], "strategy": {"kind": "ema_cross"}}, "config.json")
    with pytest.raises(UserInputError, match=rf"run {run.info.run_id} is not an options backtest run \(its job: "
                                             r"equity_sweep\)"):
        register_option_strategy(run.info.run_id, "ic_gspc")
    from tracking.run_context import client

    assert not client().search_registered_models("name = 'ic_gspc'")
