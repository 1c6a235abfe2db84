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


def test_put_write_first_position_by_hand_from_the_raw_files(put_write) -> None:  # type: ignore[no-untyped-def]
    day0, expiry = D(2019, 4, 25), D(2019, 5, 17)  # first chain day; the next monthly (third Friday) expiry
    f = raw(day0)
    spot = float(f["underlying_last"].iloc[0])
    puts = f[(f["type"] == "put") & (f["expiration"] == "05/17/2019") & f["optionroot"].str.startswith("SPXW")
             & (f["bid"] > 0)]
    strike = float(puts.loc[puts["strike"] <= spot, "strike"].max())  # at or just below the index
    bid = float(puts.loc[puts["strike"] == strike, "bid"].iloc[0])
    n = math.floor(1_000_000 / (strike * 100))  # fully cash-secured
    # the shipped files have no 2019-05-17 chain: the last level on or before the expiry is May 16's
    days = sorted(D(int(p.stem[4:8]), int(p.stem[8:10]), int(p.stem[10:12])) for p in FILES.glob("SPX_*.csv.gz"))
    settle_day = max(d for d in days if d <= expiry)
    level = float(raw(settle_day)["underlying_last"].iloc[0])
    settle = max(strike - level, 0.0)
    pnl = n * 100 * (bid - settle) - 0.65 * n
    assert (spot, strike, bid, n, settle_day, level) == (2919.04, 2915.0, 30.8, 3, D(2019, 5, 16), 2877.72)

    res = put_write
    pos = res.positions.iloc[0]
    legs = res.trades[res.trades["position_id"] == pos["position_id"]]
    assert len(legs) == 1
    leg = legs.iloc[0]
    assert (leg["strike"], leg["right"], leg["expiry"], leg["qty"]) == (strike, "P", expiry, -n)
    assert (leg["entry_date"], leg["entry_price"], leg["entry_spot"]) == (day0, bid, spot)
    assert (leg["exit_date"], leg["exit_action"], leg["exit_spot"]) == (settle_day, "cash_settle", level)
    assert leg["exit_price"] == pytest.approx(settle, abs=1e-9)
    assert pos["pnl"] == pytest.approx(pnl, abs=1e-6)
    assert pnl == pytest.approx(-1945.95, abs=1e-6)  # the README's figure
    # the run says the settlement day was not the expiry day (no chain that day) and where its bars came from
    assert res.metrics["settled_before_expiry"] == 1
    assert res.extra["settled_before_expiry"][0]["settled_on"] == "2019-05-16"
    assert res.extra["bars_source"] == "option_quotes.underlying_price"


def test_put_write_prices_every_leg_day_from_quotes(put_write) -> None:  # type: ignore[no-untyped-def]
    res = put_write
    assert res.leg_days["modeled"] == 0 and res.leg_days["observed"] == len(res.daily) > 30
    assert set(res.fills["source"]) == {"observed"}
    # the second put is written on the May 16 roll (the monthly expiration's last chain day), June 21 expiry
    second = res.fills[(res.fills["action"] == "open")].iloc[1]
    assert (second["date"], second["expiry"]) == (D(2019, 5, 16), D(2019, 6, 21))


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


def test_readme_official_settlement_figure_from_the_shipped_index_closes() -> None:
    """The README's note: the 2019-05-17 SPX close (the shipped ^GSPC closes) would settle the first put."""
    closes = pd.read_csv(ROOT / "quantlake" / "sample_data" / "index_closes" / "GSPC.csv", index_col=0)
    official = float(closes.loc["2019-05-17"].iloc[0])
    pnl = 3 * 100 * (30.80 - max(2915.0 - official, 0.0)) - 3 * 0.65
    assert round(official, 2) == 2859.53 and round(pnl, 2) == -7402.94
    text = (ROOT / "README.md").read_text()
    assert "2,859.53" in text and "−7,402.94" in text and "−1,945.95" in text
