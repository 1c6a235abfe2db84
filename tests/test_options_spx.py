"""Option backtests on the shipped real SPX chains (``chain.source: observed``).

The put-write's first position (the one the README works out by hand) is recomputed here from the raw chain
files with plain pandas — not through the chain reader, the lake or the engine: the put at or just below the
index on the next monthly expiry (the PM-settled SPXW contract the provider prefers), sold at its bid, as many
as the cash secures, settled in cash at its intrinsic value against the last chain level on or before expiry.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from backtests.options.config import parse_config
from backtests.options.demo_spx import CONFIGS
from backtests.options.runner import run_backtest

D = dt.date
ROOT = Path(__file__).parents[1]
FILES = ROOT / "quantlake" / "sample_data" / "option_quotes_spx_2019"


def raw(day: dt.date) -> pd.DataFrame:
    """One vendor file as published (headers as in the file)."""
    return pd.read_csv(FILES / f"SPX_{day:%Y%m%d}.csv.gz")


def test_demo_configs_are_the_example_files() -> None:
    for label, cfg in CONFIGS.items():
        path = ROOT / "configs" / "options" / f"{cfg['name']}.yaml"
        assert parse_config(yaml.safe_load(path.read_text())) == parse_config(cfg), label


@pytest.fixture(scope="module")
def put_write(sample_lake_dir: Path):  # type: ignore[no-untyped-def]
    from quantlake.lake import Lake

    return run_backtest(parse_config(CONFIGS["put-write"]), Lake(sample_lake_dir))


def _index_close(day: dt.date) -> float:
    """The shipped official S&P 500 close of ``day`` (the sample file behind ^GSPC, read with plain pandas)."""
    closes = pd.read_csv(ROOT / "quantlake" / "sample_data" / "index_closes" / "GSPC.csv", index_col=0)
    return float(closes.loc[day.isoformat()].iloc[0])


def _chain_days() -> list[dt.date]:
    return sorted(D(int(p.stem[4:8]), int(p.stem[8:10]), int(p.stem[10:12])) for p in FILES.glob("SPX_*.csv.gz"))


def test_put_write_first_position_by_hand_from_the_raw_files(put_write) -> None:  # type: ignore[no-untyped-def]
    day0, expiry = D(2019, 4, 25), D(2019, 5, 17)  # first chain day; the next monthly (third Friday) expiry
    f = raw(day0)
    spot = float(f["underlying_last"].iloc[0])
    puts = f[(f["type"] == "put") & (f["expiration"] == "05/17/2019") & f["optionroot"].str.startswith("SPXW")
             & (f["bid"] > 0)]
    strike = float(puts.loc[puts["strike"] <= spot, "strike"].max())  # at or just below the index
    bid = float(puts.loc[puts["strike"] == strike, "bid"].iloc[0])
    n = math.floor(1_000_000 / (strike * 100))  # fully cash-secured
    # the shipped files have no 2019-05-17 chain: the PM-settled put settles at the official close of its expiry
    # day (the shipped index closes), booked on the first chain day after it
    assert expiry not in _chain_days()
    settle_day = min(d for d in _chain_days() if d > expiry)
    level = _index_close(expiry)
    settle = max(strike - level, 0.0)
    pnl = n * 100 * (bid - settle) - 0.65 * n
    assert (spot, strike, bid, n, settle_day, round(level, 2)) == (2919.04, 2915.0, 30.8, 3, D(2019, 5, 20), 2859.53)

    res = put_write
    pos = res.positions.iloc[0]
    legs = res.trades[res.trades["position_id"] == pos["position_id"]]
    assert len(legs) == 1
    leg = legs.iloc[0]
    assert (leg["strike"], leg["right"], leg["expiry"], leg["qty"]) == (strike, "P", expiry, -n)
    assert (leg["entry_date"], leg["entry_price"], leg["entry_spot"]) == (day0, bid, spot)
    assert (leg["exit_date"], leg["exit_action"]) == (settle_day, "cash_settle")
    assert leg["exit_spot"] == pytest.approx(level, abs=1e-9)
    assert leg["exit_price"] == pytest.approx(settle, abs=1e-9)
    assert pos["pnl"] == pytest.approx(pnl, abs=1e-6)
    assert round(pnl, 2) == -7402.94  # the README's figure
    # the run says where the settlement level came from and where its bars came from
    assert res.metrics["settled_before_expiry"] == 0 and res.metrics["settled_on_reference_level"] == 1
    assert res.extra["settled_on_reference_level"][0] == {
        "contract": leg["contract"], "expiry": "2019-05-17", "settled_on": "2019-05-20", "level": leg["exit_spot"],
        "index": "^GSPC"}
    assert res.extra["bars_source"] == "option_quotes.underlying_price"


def test_without_a_reference_index_a_missing_expiry_settles_on_the_last_chain_level(sample_lake_dir: Path) -> None:
    from backtests.options.errors import MarketDataError
    from quantlake.lake import Lake

    cfg = {**CONFIGS["put-write"], "end": "2019-05-21", "market": {**CONFIGS["put-write"]["market"],
                                                                   "settlement_symbol": ""}}
    res = run_backtest(parse_config(cfg), Lake(sample_lake_dir))
    last = max(d for d in _chain_days() if d <= D(2019, 5, 17))  # May 16: the old rule, flagged
    level = float(raw(last)["underlying_last"].iloc[0])
    leg = res.trades.iloc[0]
    assert (leg["exit_date"], leg["exit_spot"]) == (last, level) and level == 2877.72
    assert leg["pnl"] == pytest.approx(3 * 100 * (30.80 - (2915.0 - level)) - 3 * 0.65, abs=1e-6)
    assert round(leg["pnl"], 2) == -1945.95
    assert res.metrics["settled_before_expiry"] == 1 and res.metrics["settled_on_reference_level"] == 0
    assert res.extra["settled_before_expiry"][0]["settled_on"] == "2019-05-16"
    # an index that is not the underlying's level is refused, naming both
    bad = {**cfg, "market": {**cfg["market"], "settlement_symbol": "^VIX"}}
    with pytest.raises(MarketDataError, match=r"\^VIX is not SPX's level"):
        run_backtest(parse_config(bad), Lake(sample_lake_dir))


def test_put_write_prices_every_leg_day_from_quotes(put_write) -> None:  # type: ignore[no-untyped-def]
    res = put_write
    assert res.leg_days["modeled"] == 0 and res.leg_days["observed"] == len(res.daily) > 30
    assert set(res.fills["source"]) == {"observed"}
    # the second put is written on the May roll: the bar the May put settled on (May 20: no May 17 chain)
    second = res.fills[(res.fills["action"] == "open")].iloc[1]
    assert (second["date"], second["expiry"]) == (D(2019, 5, 20), D(2019, 6, 21))


@pytest.mark.slow
def test_iron_condor_on_observed_quotes(sample_lake_dir: Path) -> None:
    from quantlake.lake import Lake

    res = run_backtest(parse_config(CONFIGS["iron condor"]), Lake(sample_lake_dir))
    assert res.leg_days["modeled"] == 0 and res.leg_days["observed"] > 100
    opens = res.fills[res.fills["action"] == "open"]
    first = opens[opens["date"] == opens["date"].min()]
    n = int(first["qty"].abs().max())
    assert sorted(first["qty"]) == [-n, -n, n, n] and set(first["source"]) == {"observed"}
    wings = first.groupby("right")["strike"].agg(lambda s: s.max() - s.min())
    assert set(wings) == {25.0}


def test_chain_roots_choose_the_am_settled_monthlies(sample_lake_dir: Path) -> None:
    from quantlake.errors import ConfigError
    from quantlake.lake import Lake

    cfg = {**CONFIGS["put-write"], "end": "2019-05-01", "chain": {"source": "observed", "roots": ["SPX"]}}
    res = run_backtest(parse_config(cfg), Lake(sample_lake_dir))
    f = raw(D(2019, 4, 25))
    am = f[(f["optionroot"] == "SPX190517P02915000")]  # the AM-settled monthly, not SPXW's PM contract
    first = res.fills.iloc[0]
    assert (first["strike"], first["price"]) == (2915.0, float(am["bid"].iloc[0])) and first["price"] == 30.2
    with pytest.raises(ConfigError, match=r"chain\.roots"):
        parse_config({**cfg, "chain": {"roots": ["spx w"]}})


def test_readme_shows_both_settlement_figures() -> None:
    """The README's worked position: the official close (the rule now) and the last chain level (the old one)."""
    official = _index_close(D(2019, 5, 17))
    pnl = 3 * 100 * (30.80 - max(2915.0 - official, 0.0)) - 3 * 0.65
    assert round(official, 2) == 2859.53 and round(pnl, 2) == -7402.94
    text = (ROOT / "README.md").read_text()
    assert "2,859.53" in text and "−7,402.94" in text and "−1,945.95" in text
