"""Validated configuration of the feature factory (pydantic; errors name the bad field).

Periods become column names and SQL template values, so they are validated integers; every other value
reaches the SQL as a bound ``$parameter``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from features.errors import FeatureConfigError
from quantlake.errors import UserInputError
from quantlake.tables import validate_symbol

MAX_PERIOD = 1000


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _periods(v: tuple[int, ...]) -> tuple[int, ...]:
    if not v:
        raise ValueError("needs at least one period")
    bad = [p for p in v if isinstance(p, bool) or not isinstance(p, int) or not 2 <= p <= MAX_PERIOD]
    if bad:
        raise ValueError(f"periods must be integers in [2, {MAX_PERIOD}], got {bad}")
    if len(set(v)) != len(v):
        raise ValueError(f"duplicate periods in {list(v)}")
    return tuple(sorted(v))


class TechnicalSettings(_Model):
    """Moving-average periods of ``features_technical`` (one ``sma_N`` / ``ema_N`` column each)."""

    sma_periods: tuple[int, ...] = (10, 20, 50, 100, 200)
    ema_periods: tuple[int, ...] = (8, 12, 21, 26, 50)

    _check = field_validator("sma_periods", "ema_periods")(_periods)


class RegimeRules(_Model):
    """Thresholds of the regime label (see sql/features_regime.sql for the rules and their order)."""

    vix_symbol: str = "^VIX"
    high_rank: float = Field(default=70.0, ge=0, le=100, description="high_vol: vix_rank_252 at or above")
    high_level: float = Field(default=30.0, gt=0, description="high_vol: VIX at or above")
    low_rank: float = Field(default=25.0, ge=0, le=100, description="low_vol: vix_rank_252 at or below ...")
    low_level: float = Field(default=16.0, gt=0, description="... and VIX below")
    expansion_change: float = Field(
        default=0.20, gt=0, description="iv_expansion: 5-day VIX change at or above"
    )
    contraction_change: float = Field(
        default=-0.15, lt=0, gt=-1, description="iv_contraction: 5-day change at or below"
    )
    elevated_rank: float = Field(
        default=50.0, ge=0, le=100, description="iv_contraction from: rank 5 days ago at or above"
    )
    elevated_level: float = Field(default=20.0, gt=0, description="... or VIX 5 days ago at or above")
    vix_max_stale_days: int = Field(
        default=7, ge=0, le=31, description="use a VIX close at most this many days old"
    )

    @field_validator("vix_symbol")
    @classmethod
    def _symbol(cls, v: str) -> str:
        try:
            return validate_symbol(v)
        except UserInputError as exc:  # pydantic reports ValueErrors with the field's location
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _ordered(self) -> RegimeRules:
        if self.low_rank >= self.high_rank:
            raise ValueError(f"low_rank ({self.low_rank}) must be below high_rank ({self.high_rank})")
        if self.low_level >= self.high_level:
            raise ValueError(f"low_level ({self.low_level}) must be below high_level ({self.high_level})")
        return self


class OptionSettings(_Model):
    """Inputs of ``features_options`` that the quotes do not carry."""

    dividend_yield: float = Field(
        default=0.0, ge=-0.5, le=0.5, description="continuous dividend yield q (decimal)"
    )
    risk_free: float | None = Field(
        default=None,
        ge=-0.5,
        le=0.5,
        description="constant continuous rate; None: US Treasury curve as of the quote",
    )


class SurfaceSettings(_Model):
    """``features_surface`` (see sql/features_surface.sql): windows, the shortest expiry used, and the
    thresholds of its HV/IV regime rule set."""

    min_dte: int = Field(default=7, ge=0, le=60, description="expiries closer than this are not used")
    rank_window: int = Field(default=252, ge=2, le=2520, description="observations in iv_rank/iv_pctl")
    hv_window: int = Field(default=20, ge=2, le=252, description="returns in hv_20")
    expansion_hv_iv: float = Field(default=0.9, gt=0, description="iv_expansion: hv_iv_ratio above ...")
    expansion_rank: float = Field(default=50.0, ge=0, le=100, description="... and iv_rank_252 above")
    contraction_hv_iv: float = Field(default=0.6, gt=0, description="iv_contraction: hv_iv_ratio below")
    high_rank: float = Field(default=70.0, ge=0, le=100, description="high_vol: iv_rank_252 at or above")
    low_rank: float = Field(default=25.0, ge=0, le=100, description="low_vol: iv_rank_252 at or below")

    @model_validator(mode="after")
    def _ordered(self) -> SurfaceSettings:
        if self.contraction_hv_iv >= self.expansion_hv_iv:
            raise ValueError(f"contraction_hv_iv ({self.contraction_hv_iv}) must be below expansion_hv_iv "
                             f"({self.expansion_hv_iv})")
        if self.low_rank >= self.high_rank:
            raise ValueError(f"low_rank ({self.low_rank}) must be below high_rank ({self.high_rank})")
        return self


class FeatureSettings(_Model):
    technical: TechnicalSettings = TechnicalSettings()
    regime: RegimeRules = RegimeRules()
    options: OptionSettings = OptionSettings()
    surface: SurfaceSettings = SurfaceSettings()
    warmup_rows: int = Field(
        default=260,
        ge=0,
        le=10_000,
        description="bars of history read before the first changed bar of a symbol in incremental builds "
        "(raised automatically to the longest window)",
    )

    @classmethod
    def parse(cls, data: dict[str, Any] | None = None) -> FeatureSettings:
        """Validate a mapping; a :class:`FeatureConfigError` names each bad field (``features.technical...``)."""
        try:
            return cls.model_validate(data or {})
        except ValidationError as exc:
            parts = []
            for err in exc.errors():
                loc = ".".join(str(p) for p in err["loc"]) or "features"
                parts.append(f"features.{loc}: {err['msg']}")
            raise FeatureConfigError("; ".join(parts)) from None

    def fingerprint(self, part: str) -> str:
        """Short hash of the settings one table depends on (a change forces a full rebuild of it)."""
        data = self.model_dump(mode="json").get(part, {})
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]
