"""Hourly paper trading: 40 hourly crypto bars replayed through the interval trader, run a few minutes after
each bar closes (and, every third bar, once more while the next bar is still forming), against a plain
reference loop (SMA-seeded EMAs by hand, next bar's open ± slippage, bps commission, the band rule, lots
rounded down): the same fills at the same instants and prices, the same equity; a forming bar never fills."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from execution.interval_trader import IntervalPaperBroker, IntervalTradeConfig, run_interval_trade
from execution.settings import CostModel
from quantlake.errors import UserInputError
from quantlake.lake import Lake
from quantlake.tables import BARS

SYM = "BINANCE:BTC/USDT"
N = 40
T0 = pd.Timestamp("2024-03-01T00:00:00Z")
HOUR = pd.Timedelta(hours=1)
FAST, SLOW, FRACTION, BAND, LOT, SLIP_BPS, FEE_BPS = 3, 8, 0.5, 0.10, 0.001, 5.0, 10.0


def closes() -> list[float]:
    return [40_000 + 1_500 * math.sin(k / 4.0) + 20 * k for k in range(N)]


def opens() -> list[float]:
    c = closes()
    return [c[0] - 10.0] + [c[k - 1] + 7.0 * ((-1) ** k) for k in range(1, N)]  # gaps: the open is not the close


@pytest.fixture()
def hlake(ql_home: Path) -> Lake:
    o, c = opens(), closes()
    ts = [T0 + k * HOUR for k in range(N)]
    frame = pd.DataFrame({"symbol": SYM, "interval": "1h", "ts": ts, "date": [t.date() for t in ts], "open": o,
                          "high": [max(a, b) + 5 for a, b in zip(o, c, strict=True)],
                          "low": [min(a, b) - 5 for a, b in zip(o, c, strict=True)], "close": c, "adj_close": c,
                          "volume": 10.0, "source": "test"})  # fmt: skip
    lake = Lake(ql_home / "lake")
    lake.merge("bars", frame, BARS)
    return lake


def reference() -> tuple[list[tuple[pd.Timestamp, str, float, float, float]], float]:
    """Plain loop: decide at each bar's close, fill at the next bar's open; returns (fills, final equity)."""
    o, c = opens(), closes()

    def ema(n: int) -> list[float]:
        out = [math.nan] * N
        out[n - 1] = sum(c[:n]) / n
        for k in range(n, N):
            out[k] = 2 / (n + 1) * c[k] + (1 - 2 / (n + 1)) * out[k - 1]
        return out

    fast, slow = ema(FAST), ema(SLOW)
    cash, pos, pending, fills = 100_000.0, 0.0, None, []
    for k in range(N):
        if pending is not None:
            side, qty = pending
            sign = 1.0 if side == "buy" else -1.0
            price = o[k] * (1 + sign * SLIP_BPS / 1e4)
            fee = FEE_BPS * qty * price / 1e4
            cash -= sign * qty * price + fee
            pos += sign * qty
            fills.append((T0 + k * HOUR, side, qty, price, fee))
            pending = None
        if k == N - 1:
            break  # the last decision's order would fill after the replay
        equity = cash + pos * c[k]
        long = not math.isnan(slow[k]) and fast[k] > slow[k]
        target = math.floor(equity * FRACTION / c[k] / LOT + 1e-9) * LOT if long else 0.0
        if abs(target - pos) > 1e-9 and not (pos * target > 0 and abs(target - pos) <= BAND * abs(pos) + 1e-9):
            pending = ("buy" if target > pos else "sell", abs(target - pos))
    return fills, cash + pos * c[N - 1]


@pytest.mark.slow
def test_hourly_replay_fills_like_the_reference_loop_and_never_from_a_forming_bar(hlake: Lake, tmp_path: Path) -> None:
    cfg = IntervalTradeConfig(symbols=[SYM], interval="1h", account="hourly", fast=FAST, slow=SLOW,
                              max_position_fraction=FRACTION, band=BAND, lot_size=LOT,
                              costs=CostModel(per_share=0.0, commission_bps=FEE_BPS, min_commission=0.0,
                                              slippage_bps=SLIP_BPS))  # fmt: skip
    broker = IntervalPaperBroker(hlake, "1h", tmp_path / "ledger", "hourly", cfg.costs, cfg.initial_cash)
    decided = []
    try:
        for k in range(N):
            closed = T0 + (k + 1) * HOUR  # bar k closes
            if k % 3 == 0 and k > 0:  # bar k still forming: decisions stay on bar k-1, bar k fills nothing
                probe = run_interval_trade(cfg, hlake, closed - pd.Timedelta(minutes=20), broker=broker)
                assert probe.bar_close == closed - HOUR and probe.orders == []
                assert not [r for r in broker.db.execute("SELECT filled_at FROM fills").fetchall()
                            if pd.Timestamp(r["filled_at"]) >= closed - HOUR]  # fmt: skip
            res = run_interval_trade(cfg, hlake, closed + pd.Timedelta(minutes=5), broker=broker)
            assert res.bar_close == closed
            decided += res.orders
        got = [(pd.Timestamp(r["filled_at"]), r["side"], r["qty"], r["price"], r["commission"])
               for r in broker.db.execute("SELECT * FROM fills ORDER BY filled_at").fetchall()]  # fmt: skip
        equity = broker.account().equity
    finally:
        broker.close()
    want, want_equity = reference()
    assert len(want) >= 4 and {f[1] for f in want} == {"buy", "sell"}  # the wave crosses both ways
    assert [(t, s) for t, s, *_ in got] == [(t, s) for t, s, *_ in want]
    for g, w in zip(got, want, strict=True):
        assert g[2:] == pytest.approx(w[2:], rel=1e-12, abs=1e-9)
    assert equity == pytest.approx(want_equity, rel=1e-12)
    # the audit has every order once, its id naming the bar's close instant
    from execution import audit

    rows = audit.orders(hlake, "paper", "hourly")
    assert len(rows) == len(decided) and len(decided) - len(want) in (0, 1)  # + the last bar's, not yet filled
    assert rows["client_order_id"].is_unique and rows["client_order_id"].str.match(r"ql-\d{8}T\d{4}-hourly-").all()
    assert (rows["status"] == "filled").sum() == len(want)  # later runs brought the ledger's fills to the audit
    booked = audit.fills(hlake, "paper", "hourly").sort_values("filled_at")
    assert booked["price"].tolist() == pytest.approx([w[3] for w in want], rel=1e-12)


def test_interval_config_errors_are_one_line() -> None:
    from execution.interval_trader import load_interval_config

    with pytest.raises(UserInputError, match="interval"):
        load_interval_config({"symbols": [SYM], "interval": "1d"})
    with pytest.raises(UserInputError, match="fast"):
        load_interval_config({"symbols": [SYM], "fast": 30, "slow": 10})


def test_trade_interval_command(hlake: Lake, ql_home: Path) -> None:
    from typer.testing import CliRunner

    from quantlake.cli import app

    runner = CliRunner()
    at = (T0 + 20 * HOUR + pd.Timedelta(minutes=30)).isoformat()  # bar 19 closed, bar 20 forming
    out = runner.invoke(app, ["trade", "interval", "--symbols", SYM, "--as-of", at])
    assert out.exit_code == 0, out.output
    assert "1h bar closed at 2024-03-01 20:00 UTC, account hourly" in out.output
    assert (ql_home / "paper" / "hourly.sqlite").is_file()
    bad = runner.invoke(app, ["trade", "interval", "--symbols", SYM, "--as-of", "yesterday-ish"])
    # main() prints such errors in one line and exits 2
    assert isinstance(bad.exception, UserInputError) and bad.exception.exit_code == 2 and "--as-of" in str(bad.exception)


def test_shipped_trade_configs_validate() -> None:
    """The README's example account configs (configs/trade/) are valid as shipped."""
    from execution.option_trader import option_limits
    from execution.trader import config_mapping, load_trade_config

    root = Path(__file__).resolve().parents[1] / "configs" / "trade"
    hourly = load_interval_config_file(root / "hourly_crypto.yaml")
    assert hourly.symbols == ["BINANCE:BTC/USDT", "BINANCE:ETH/USDT"] and hourly.lot_size == 0.0001
    equity = load_trade_config(root / "equity_paper.yaml", {"model": "m"})
    assert equity.sizing is not None and equity.sizing.method == "vol_target"
    options = load_trade_config(root / "iron_condor_paper.yaml", {"model": "m"})
    assert options.instrument == "options" and option_limits(options).max_risk_per_trade == 0.10
    assert set(config_mapping(root / "iron_condor_paper.yaml")["option_limits"]) <= set(type(option_limits(options)).model_fields)


def load_interval_config_file(path: Path) -> IntervalTradeConfig:
    from execution.interval_trader import load_interval_config
    from execution.trader import config_mapping

    return load_interval_config(config_mapping(path, "IntervalTradeConfig"))
