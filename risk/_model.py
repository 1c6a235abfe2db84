"""Base class for the risk package's pydantic models: strict fields, and validation failures raised as
:class:`quantlake.errors.ConfigError` whose message names the model and every bad field.

Why not let :class:`pydantic.ValidationError` escape: the CLI (and execution) turn
:class:`~quantlake.errors.QuantlakeError` into one clear line; a raw pydantic error would be a traceback.
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from quantlake.errors import ConfigError


def describe(exc: ValidationError, model: str) -> str:
    """``Model.field: message; Model.other: message`` for every error pydantic found."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(model)"
        msg = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{model}.{loc}: {msg}")
    return "; ".join(parts)


class RiskModel(BaseModel):
    """Frozen, extra fields forbidden, validation errors → :class:`ConfigError` naming the field.

    Conversion happens at the outermost model (``__init__`` / :meth:`model_validate`), so a nested field
    is named with its full path (``AdaptiveSizing.regimes.high_vol``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True, allow_inf_nan=False)

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ConfigError(describe(exc, type(self).__name__)) from None

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Self:
        try:
            return super().model_validate(obj, **kwargs)
        except ValidationError as exc:
            raise ConfigError(describe(exc, cls.__name__)) from None
