"""DuckDB scalar functions (vectorized Arrow UDFs) the feature SQL calls.

Series functions take a whole per-symbol series as a ``DOUBLE[]`` list (``list(close ORDER BY date)``) and
return a list of the same length, so the computation never depends on how DuckDB chunks rows; the SQL
unnests the result next to ``unnest(list(date ...))``.  They wrap :mod:`features.kernels`:

==========================================================  =======================================
``ql_sma(x DOUBLE[], n)``                                   trailing mean of ``n`` rows
``ql_rolling_std(x DOUBLE[], n, ddof)``                     trailing std (ddof 0 population, 1 sample)
``ql_ema(x DOUBLE[], n, init, skip)``                       EMA, alpha 2/(n+1), SMA seed
``ql_wilder(x DOUBLE[], n, init, skip)``                    Wilder average, alpha 1/n, SMA seed
``ql_macd_signal(x, fast, slow, signal, i_f, i_s, i_g, skip)``  MACD signal line
``ql_adx(tr, pdm, mdm, n, i_tr, i_p, i_m, i_adx, skip)``    Wilder ADX
==========================================================  =======================================

``init``/``skip`` resume a recursion after ``skip`` warm-up rows from a stored state (NULL = fresh), see
:mod:`features.kernels`.  Option functions wrap :mod:`features.pricing` row-wise (vectorized per chunk):
``ql_implied_vol(price, right, S, K, T, r, q)`` and ``ql_bs_greeks(right, S, K, T, r, q, sigma)`` →
``STRUCT(delta, gamma, vega, theta, rho)``.  Results are NULL (never NaN) where undefined.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from duckdb.func import FunctionNullHandling, PythonUDFType

from features import kernels
from features.errors import FeatureBuildError

FloatArray = kernels.FloatArray
IntArray = kernels.IntArray

LIST = "DOUBLE[]"
_LIST_TYPE = pa.list_(pa.float64())


# ----------------------------------------------------------------------------------------------- arrow helpers
def _array(a: pa.Array | pa.ChunkedArray) -> pa.Array:
    return a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a


def _floats(a: pa.Array | pa.ChunkedArray) -> FloatArray:
    """Float64 numpy copy with NULL → NaN."""
    arr = _array(a)
    if arr.type != pa.float64():
        arr = arr.cast(pa.float64())
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64)


def _const_int(a: pa.Array | pa.ChunkedArray, name: str, lo: int, hi: int) -> int:
    """A period argument: the same integer on every row, within [lo, hi]."""
    arr = _array(a)
    if len(arr) == 0:
        return lo
    vals = np.unique(np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64))
    if vals.size != 1 or not np.isfinite(vals[0]) or vals[0] != int(vals[0]) or not lo <= vals[0] <= hi:
        raise FeatureBuildError(
            f"{name} must be one constant integer in [{lo}, {hi}], got {vals[:5].tolist()}"
        )
    return int(vals[0])


def _skips(a: pa.Array | pa.ChunkedArray) -> IntArray:
    s = _floats(a)
    return np.where(np.isfinite(s) & (s > 0), s, 0).astype(np.int64)


class _Segments:
    """A list column as one flat float array plus offsets (handles sliced arrays and NULL lists)."""

    def __init__(self, lists: pa.Array | pa.ChunkedArray) -> None:
        arr = _array(lists)
        if not (pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type)):
            raise FeatureBuildError(f"expected a DOUBLE[] list argument, got {arr.type}")
        raw = np.asarray(arr.offsets.to_numpy(zero_copy_only=False), dtype=np.int64)
        self.mask = arr.is_null()
        lo, hi = int(raw[0]), int(raw[-1])
        self.values = _floats(arr.values.slice(lo, hi - lo))
        self.offsets = raw - lo

    def like(self, values: FloatArray) -> pa.Array:
        """A ``DOUBLE[]`` list array with this shape, NaN → NULL."""
        vals = pa.array(values, type=pa.float64(), from_pandas=True)
        return pa.ListArray.from_arrays(pa.array(self.offsets.astype(np.int32)), vals, mask=self.mask)

    def check_same(self, other: _Segments, name: str) -> None:
        if not np.array_equal(self.offsets, other.offsets):
            raise FeatureBuildError(f"{name}: list arguments differ in length")


# ----------------------------------------------------------------------------------------------- series UDFs
def sma_udf(x: pa.Array, n: pa.Array) -> pa.Array:
    seg = _Segments(x)
    out = np.empty_like(seg.values)
    kernels.rolling_mean_segments(seg.values, seg.offsets, _const_int(n, "ql_sma period", 1, 100_000), out)
    return seg.like(out)


def rolling_std_udf(x: pa.Array, n: pa.Array, ddof: pa.Array) -> pa.Array:
    seg = _Segments(x)
    out = np.empty_like(seg.values)
    period = _const_int(n, "ql_rolling_std period", 1, 100_000)
    kernels.rolling_std_segments(
        seg.values, seg.offsets, period, _const_int(ddof, "ql_rolling_std ddof", 0, 1), out
    )
    return seg.like(out)


def _smoother(wilder: bool) -> Callable[..., pa.Array]:
    def udf(x: pa.Array, n: pa.Array, init: pa.Array, skip: pa.Array) -> pa.Array:
        seg = _Segments(x)
        period = _const_int(n, "ql_wilder period" if wilder else "ql_ema period", 1, 100_000)
        alpha = kernels.wilder_alpha(period) if wilder else kernels.ema_alpha(period)
        out = np.empty_like(seg.values)
        kernels.ema_segments(seg.values, seg.offsets, period, alpha, _floats(init), _skips(skip), out)
        return seg.like(out)

    return udf


def macd_signal_udf(
    x: pa.Array,
    fast: pa.Array,
    slow: pa.Array,
    signal: pa.Array,
    init_fast: pa.Array,
    init_slow: pa.Array,
    init_signal: pa.Array,
    skip: pa.Array,
) -> pa.Array:
    seg = _Segments(x)
    out = np.empty_like(seg.values)
    kernels.macd_signal_segments(
        seg.values,
        seg.offsets,
        _const_int(fast, "macd fast", 1, 10_000),
        _const_int(slow, "macd slow", 1, 10_000),
        _const_int(signal, "macd signal", 1, 10_000),
        _floats(init_fast),
        _floats(init_slow),
        _floats(init_signal),
        _skips(skip),
        out,
    )
    return seg.like(out)


def adx_udf(
    tr: pa.Array,
    pdm: pa.Array,
    mdm: pa.Array,
    n: pa.Array,
    init_tr: pa.Array,
    init_pdm: pa.Array,
    init_mdm: pa.Array,
    init_adx: pa.Array,
    skip: pa.Array,
) -> pa.Array:
    s_tr, s_p, s_m = _Segments(tr), _Segments(pdm), _Segments(mdm)
    s_tr.check_same(s_p, "ql_adx")
    s_tr.check_same(s_m, "ql_adx")
    out = np.empty_like(s_tr.values)
    kernels.adx_segments(
        s_tr.values,
        s_p.values,
        s_m.values,
        s_tr.offsets,
        _const_int(n, "adx period", 1, 10_000),
        _floats(init_tr),
        _floats(init_pdm),
        _floats(init_mdm),
        _floats(init_adx),
        _skips(skip),
        out,
    )
    return s_tr.like(out)


# ----------------------------------------------------------------------------------------------- option UDFs
def _rights(a: pa.Array | pa.ChunkedArray) -> np.ndarray[Any, np.dtype[np.object_]]:
    arr = pc.fill_null(_array(a).cast(pa.string()), "")
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=object)


def _nulls_for_nan(x: FloatArray) -> pa.Array:
    return pa.array(np.where(np.isfinite(x), x, np.nan), type=pa.float64(), from_pandas=True)


def implied_vol_udf(
    price: pa.Array, right: pa.Array, s: pa.Array, k: pa.Array, t: pa.Array, r: pa.Array, q: pa.Array
) -> pa.Array:
    from features.pricing import implied_vol

    rights = _rights(right)
    ok = np.isin(rights, ["C", "P"])
    iv = np.full(len(rights), np.nan)
    if ok.any():
        spot, strike, tau, rate, div = (_floats(v)[ok] for v in (s, k, t, r, q))
        iv[ok] = implied_vol(_floats(price)[ok], rights[ok], spot, strike, tau, rate, div)
    return _nulls_for_nan(iv)


GREEKS = ("delta", "gamma", "vega", "theta", "rho")
GREEKS_TYPE = "STRUCT(" + ", ".join(f"{g} DOUBLE" for g in GREEKS) + ")"


def bs_greeks_udf(
    right: pa.Array, s: pa.Array, k: pa.Array, t: pa.Array, r: pa.Array, q: pa.Array, sigma: pa.Array
) -> pa.Array:
    from features.pricing import bs_greeks

    rights = _rights(right)
    ok = np.isin(rights, ["C", "P"])
    cols = {g: np.full(len(rights), np.nan) for g in GREEKS}
    if ok.any():
        res = bs_greeks(rights[ok], *(_floats(v)[ok] for v in (s, k, t, r, q, sigma)))
        for g in GREEKS:
            cols[g][ok] = np.asarray(res[g], dtype=np.float64)
    return pa.StructArray.from_arrays([_nulls_for_nan(cols[g]) for g in GREEKS], names=list(GREEKS))


# ----------------------------------------------------------------------------------------------- registration
_D, _I = "DOUBLE", "BIGINT"
_FUNCTIONS: dict[str, tuple[Callable[..., pa.Array], list[str], str]] = {
    "ql_sma": (sma_udf, [LIST, _I], LIST),
    "ql_rolling_std": (rolling_std_udf, [LIST, _I, _I], LIST),
    "ql_ema": (_smoother(wilder=False), [LIST, _I, _D, _I], LIST),
    "ql_wilder": (_smoother(wilder=True), [LIST, _I, _D, _I], LIST),
    "ql_macd_signal": (macd_signal_udf, [LIST, _I, _I, _I, _D, _D, _D, _I], LIST),
    "ql_adx": (adx_udf, [LIST, LIST, LIST, _I, _D, _D, _D, _D, _I], LIST),
    "ql_implied_vol": (implied_vol_udf, [_D, "VARCHAR", _D, _D, _D, _D, _D], _D),
    "ql_bs_greeks": (bs_greeks_udf, ["VARCHAR", _D, _D, _D, _D, _D, _D], GREEKS_TYPE),
}


def register_udfs(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Register every ``ql_*`` function on ``con`` (idempotent per connection)."""
    for name, (fn, params, ret) in _FUNCTIONS.items():
        with contextlib.suppress(duckdb.InvalidInputException, duckdb.CatalogException):
            con.remove_function(name)
        # DEFAULT null handling would turn any NULL argument into a NULL result without calling us; the
        # resume state (init/skip) is NULL on a fresh start, so the functions handle NULLs themselves
        con.create_function(
            name, fn, list(params), ret, type=PythonUDFType.ARROW, null_handling=FunctionNullHandling.SPECIAL
        )
    return con


def udf_names() -> list[str]:
    return sorted(_FUNCTIONS)
