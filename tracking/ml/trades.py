"""Labels from option-trade profitability: the trades of an options backtest run, one row per position.

An options backtest (``backtests.options``) logs ``trades.parquet`` (one row per leg: ``position_id``,
``entry_date``, ``exit_date``, ``pnl`` after fees ...) and ``daily.parquet`` (``date``, ``equity``), and tags
its underlying (``options.underlying``).  Each closed position becomes one row:

* ``label`` = 1 if the position's P&L (sum over its legs) is positive;
* ``date`` = the last trading day **before** its entry, and the features are the underlying's as of that
  close (the strategy decided on that day's information at the latest: no look-ahead whatever its fill
  convention);
* ``label_end`` = its exit date (training rows are purged until the outcome is known);
* ``hold_ret`` = its P&L over the account's equity at entry (what taking it added to the account).

A model trained on these rows is a *trade filter*: of the trades the strategy proposes, take those with
P(profit) above the threshold.  The run's artifacts are immutable, so a training run that names the
backtest run reproduces exactly (the features come from the lake at pinned versions as usual).
"""

from __future__ import annotations

import tempfile
from typing import Literal

import numpy as np
import pandas as pd

from quantlake import calendars
from quantlake.errors import UserInputError
from quantlake.lake import Lake
from tracking.ml.dataset import KEYS, REGIME, Dataset, load_dataset

UNDERLYING_TAG = "options.underlying"
TRADES_ARTIFACT = "trades.parquet"
DAILY_ARTIFACT = "daily.parquet"


def backtest_trades(run_id: str) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """(trades, daily, underlying) logged by an options backtest run."""
    from mlflow.exceptions import MlflowException

    from tracking.reproduce import get_run
    from tracking.run_context import client
    from tracking.runs import artifact_files

    c = client()
    run = get_run(c, run_id)
    files = artifact_files(c, run_id)
    missing = [f for f in (TRADES_ARTIFACT, DAILY_ARTIFACT) if f not in files]
    if missing:
        raise UserInputError(
            f"run {run_id} is not an options backtest run: it has no {', '.join(missing)} "
            f"(artifacts: {', '.join(files[:15]) or 'none'})"
        )
    underlying = run.data.tags.get(UNDERLYING_TAG)
    if not underlying:
        raise UserInputError(f"run {run_id} has no {UNDERLYING_TAG} tag: which underlying did it trade?")
    with tempfile.TemporaryDirectory(prefix="ql-trades-") as tmp:
        try:
            trades = pd.read_parquet(c.download_artifacts(run_id, TRADES_ARTIFACT, tmp))
            daily = pd.read_parquet(c.download_artifacts(run_id, DAILY_ARTIFACT, tmp))
        except MlflowException as exc:
            raise UserInputError(f"cannot read the trades of run {run_id}: {exc.message}") from None
    return trades, daily, underlying


def _ns(values: pd.Series) -> pd.Series:
    """Dates as ``datetime64[ns]`` (Parquet round trips give s/ms/us units that merge_asof will not mix)."""
    return pd.to_datetime(values).astype("datetime64[ns]")


def positions_from_trades(trades: pd.DataFrame, daily: pd.DataFrame) -> pd.DataFrame:
    """One row per closed position: ``position_id, entry_date, exit_date, pnl, trade_return``."""
    need = {"position_id", "entry_date", "exit_date", "pnl"}
    if not need <= set(trades.columns) or not {"date", "equity"} <= set(daily.columns):
        raise UserInputError(
            f"trades need columns {sorted(need)} and the daily frame date, equity "
            f"(got {sorted(trades.columns)} / {sorted(daily.columns)})"
        )
    t = trades.assign(entry_date=_ns(trades["entry_date"]), exit_date=_ns(trades["exit_date"]))
    pos = t.groupby("position_id", sort=False).agg(
        entry_date=("entry_date", "min"),
        exit_date=("exit_date", "max"),
        open_legs=("exit_date", lambda s: int(s.isna().sum())),
        pnl=("pnl", "sum"),
    )
    pos = pos[pos["open_legs"] == 0].drop(columns="open_legs").reset_index()
    eq = daily[["date", "equity"]].assign(date=_ns(daily["date"])).sort_values("date")
    pos = pd.merge_asof(
        pos.sort_values("entry_date"), eq, left_on="entry_date", right_on="date", direction="backward"
    ).drop(columns="date")
    if pos["equity"].isna().any():
        raise UserInputError("trades entered before the first day of the backtest's equity curve")
    pos["trade_return"] = pos["pnl"] / pos["equity"]
    return pos.drop(columns="equity")


def load_trade_dataset(
    lake: Lake,
    run_id: str,
    feature_table: str | None = "features_technical",
    feature_columns: list[str] | None = None,
    regime_table: str | None = "features_regime",
    feature_set: Literal["table", "registry"] = "table",
    windows: tuple[list[str], int] | None = None,
) -> Dataset:
    """The labeled rows of :func:`positions_from_trades` with the underlying's features (module doc)."""
    trades, daily, underlying = backtest_trades(run_id)
    pos = positions_from_trades(trades, daily)
    if pos.empty:
        raise UserInputError(f"run {run_id} has no closed option positions to learn from")
    market = load_dataset(lake, [underlying], None, None, 1, 1, feature_table, feature_columns, regime_table,
                          feature_set=feature_set, windows=windows)  # fmt: skip
    inputs = list(dict.fromkeys([*market.features, *_window_cols(market)]))
    cols = [*KEYS, *inputs, REGIME]
    feats = market.frame[cols].assign(date=_ns(market.frame["date"])).sort_values("date")
    rows = pd.merge_asof(
        pos.sort_values("entry_date"),
        feats,
        left_on="entry_date",
        right_on="date",
        direction="backward",
        allow_exact_matches=False,  # the close before the entry day
    )
    rows = rows[rows["date"].notna()]
    frame = pd.DataFrame(
        {
            "symbol": underlying,
            "date": pd.to_datetime(rows["date"]).to_numpy(),
            **{c: rows[c].to_numpy() for c in inputs},
            REGIME: rows[REGIME].fillna("unknown").astype(str).to_numpy(),
            "label": (rows["pnl"] > 0).astype(float).to_numpy(),
            "hold_ret": rows["trade_return"].to_numpy(),
            "label_end": pd.to_datetime(rows["exit_date"]).to_numpy(),
            "position_id": rows["position_id"].astype(str).to_numpy(),
        }
    )
    frame = frame.sort_values(["date", "position_id"], kind="mergesort").reset_index(drop=True)
    return Dataset(frame, market.features, f"{market.source} @ trades of run {run_id}", market.regime_source,
                   market.required, market.unavailable, market.windows)  # fmt: skip


def _window_cols(data: Dataset) -> list[str]:
    from tracking.ml.feature_registry import window_columns

    return window_columns(list(data.windows[0]), data.windows[1]) if data.windows else []


def calendar(frame: pd.DataFrame) -> pd.DatetimeIndex:
    """NYSE trading days from the first decision date to the last exit of ``frame`` (the OOS span)."""
    start = pd.Timestamp(frame["date"].min())
    end = pd.Timestamp(np.max(frame["label_end"].to_numpy()))
    return calendars.sessions(start, end)
