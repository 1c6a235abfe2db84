"""Reading a research config file (YAML or JSON) before its model validates it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from quantlake.errors import ConfigError, MalformedFileError


def read_file(path: str | Path) -> Any:
    """The parsed content of a ``.yaml``/``.yml``/``.json`` config file (errors name the file)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist")
    text = p.read_text(encoding="utf-8")
    try:
        return json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise MalformedFileError(f"cannot parse {p}: {exc}") from None
