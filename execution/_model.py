"""Base of execution's pydantic configs: frozen, extra fields forbidden, and a validation failure raised as
:class:`~quantlake.errors.ConfigError` whose message names the model and every bad field."""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic_core.core_schema import ValidatorFunctionWrapHandler

from quantlake.errors import ConfigError


def describe(exc: ValidationError, model: str) -> str:
    """``Model.field: message; Model.other: message`` for every error pydantic found."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{model}.{loc}: {msg}" if loc else f"{model}: {msg}")
    return "; ".join(parts)


class ExecModel(BaseModel):
    """Frozen, ``extra="forbid"``; errors become :class:`ConfigError` naming the field.

    The wrap validator converts field errors (also of nested models); ``__init__`` and ``model_validate``
    convert what it cannot see: errors raised by a subclass's ``mode="after"`` model validators, which
    pydantic runs outside the base class's wrap validator."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ConfigError(describe(exc, type(self).__name__)) from None

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> Self:
        try:
            return super().model_validate(obj, *args, **kwargs)
        except ValidationError as exc:
            raise ConfigError(describe(exc, cls.__name__)) from None

    @model_validator(mode="wrap")
    @classmethod
    def _as_config_error(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(data)
        except ValidationError as exc:
            raise ConfigError(describe(exc, cls.__name__)) from None
