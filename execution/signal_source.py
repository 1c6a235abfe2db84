"""Where a trading run's signals come from: the registry's champion model (or an in-process signal model)
and the feature rows it reads at the trading date, computed exactly as the model was trained."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from execution.errors import NoChampionError, NoFeaturesError
from quantlake.lake import Lake

KEYS = ["symbol", "date"]
FEATURE_LOOKBACK_DAYS = 550  # >= 252 bars of the volatility regime's median + 20 bars of volatility


@dataclass(frozen=True)
class SignalSource:
    """Something that turns a feature frame into ``symbol, date, signal`` rows: a registered champion or
    an in-process signal model.  ``columns`` are the feature columns it reads; ``tables_read`` the lake
    tables its training run read (None = unknown), so today's features come from the same source."""

    label: str
    columns: list[str]
    predict: Callable[[pd.DataFrame], pd.DataFrame]
    tables_read: frozenset[str] | None = None


def champion_version(name: str, hint: str) -> Any:
    """The registry's ``champion`` version of model ``name``; :class:`NoChampionError` (with ``hint``) if none."""
    import mlflow

    from tracking.registry import CHAMPION, by_alias, validate_model_name
    from tracking.run_context import configure_mlflow

    validate_model_name(name)
    configure_mlflow()
    version = by_alias(name, CHAMPION)
    if version is None:
        store = mlflow.get_tracking_uri().split("://")[0]
        raise NoChampionError(f"model {name!r} has no {CHAMPION} version in the registry ({store} store under "
                              f"QUANTLAKE_HOME): {hint}")  # fmt: skip
    return version


def load_champion(name: str) -> SignalSource:
    """``models:/<name>@champion`` as a :class:`SignalSource`; :class:`NoChampionError` if no version of the
    model carries the alias."""
    import mlflow

    from tracking.registry import CHAMPION

    version = champion_version(name, f"promote one with `quantlake models promote {name} --version VERSION`, or list models "
                               "with `quantlake models list`")  # fmt: skip
    model = mlflow.pyfunc.load_model(f"models:/{name}@{CHAMPION}")
    schema = model.metadata.get_input_schema()
    names = list(schema.input_names()) if schema is not None else []
    columns = [str(c) for c in names if c not in KEYS]

    def predict(frame: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame(model.predict(frame))

    tables: frozenset[str] | None = None
    if version.run_id:
        from tracking.run_context import client
        from tracking.tags import LAKE_VERSION_PREFIX

        run_tags = client().get_run(version.run_id).data.tags
        tables = frozenset(k.removeprefix(LAKE_VERSION_PREFIX) for k in run_tags if k.startswith(LAKE_VERSION_PREFIX))
    return SignalSource(f"models:/{name}@{CHAMPION} (v{version.version})", columns, predict, tables or None)


def in_process_model(model: Any, label: str) -> SignalSource:
    """A :class:`tracking.signal_models.SignalModel` used directly (no registry)."""
    return SignalSource(label, list(model.features), lambda frame: model.predict(None, frame))


def _table_columns(lake: Lake, table: str) -> set[str]:
    """Columns of ``table`` plus the ratios :mod:`tracking.ml.dataset` derives from them."""
    import pyarrow as pa

    from tracking.ml import dataset

    names = set(pa.schema(lake.delta(table).schema()).names)
    derived = getattr(dataset, "DERIVED_FEATURES", {})
    return names | {n for n, (a, b) in derived.items() if a in names and b in names}


def feature_frame(
    lake: Lake,
    columns: list[str],
    as_of: dt.date,
    symbols: list[str] | None,
    feature_table: str | None,
    tables_read: frozenset[str] | None = None,
) -> pd.DataFrame:
    """Rows ``symbol, date, <columns>`` at ``as_of`` computed exactly as the model was trained
    (:func:`tracking.ml.dataset.load_dataset`): from ``feature_table`` when the training run read it (or,
    not knowing, when it has every column), else from the built-in features over ``equity_bars``; the
    ``regime`` column the same way.  Only history up to ``as_of`` is read (``FEATURE_LOOKBACK_DAYS``)."""
    from tracking.ml.dataset import REGIME, load_dataset
    from tracking.ml.feature_registry import BY_NAME, split_inputs

    wanted = [c for c in columns if c != REGIME]
    plain, windows = split_inputs(wanted)  # a sequence model's window columns are computed, not read
    table = feature_table if feature_table and lake.exists(feature_table) else None
    if table is not None and tables_read is not None and table not in tables_read:
        table = None  # the model was trained on built-in features
    feature_set = "table"
    if table is not None and not set(plain) <= _table_columns(lake, table):
        # a model trained on the feature registry (tracking.ml.feature_registry): assemble the same features
        feature_set = "registry" if plain and set(plain) <= set(BY_NAME) else "table"
        table = table if feature_set == "registry" else None
    regime_table = "features_regime" if tables_read is None or "features_regime" in tables_read else None
    start = as_of - dt.timedelta(days=FEATURE_LOOKBACK_DAYS)
    data = load_dataset(
        lake, symbols, start, as_of, horizon=1, lag=1, feature_table=table, feature_columns=plain or None,
        regime_table=regime_table, feature_set=feature_set, windows=windows,  # type: ignore[arg-type]
    )  # fmt: skip
    frame = data.frame
    today = frame[frame["date"] == pd.Timestamp(as_of)]
    if today.empty:
        raise NoFeaturesError(f"no feature rows for {as_of} (source: {data.source}); ingest and build features first")
    return today[[*KEYS, *columns]].reset_index(drop=True)
