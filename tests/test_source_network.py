"""The registry of network sources and their rate limits."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from quantlake.errors import UserInputError
from quantlake.sources import get_source, rate_limit
from quantlake.sources.cot import CotSource
from quantlake.sources.fred import FredSource
from quantlake.sources.network import RATE_LIMITS
from quantlake.sources.yahoo import YahooSource


def test_builds_each_network_source(tmp_path: Path) -> None:
    assert isinstance(get_source("yahoo"), YahooSource)
    fred = get_source("fred", vintages=True)
    assert isinstance(fred, FredSource) and fred.vintages
    cot = get_source("cot", tmp_path)
    assert isinstance(cot, CotSource) and cot.path == tmp_path and not cot.incremental
    assert get_source("cot").incremental


def test_bad_options_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="takes no --path"):
        get_source("yahoo", tmp_path)
    with pytest.raises(UserInputError, match="vintage"):
        get_source("fred", vintage=True)


def test_rate_limits() -> None:
    assert set(RATE_LIMITS) == {"yahoo", "fred", "cot", "stooq"}
    assert rate_limit("fred") == 2.0  # FRED allows 120 requests a minute
    assert all(0 < v <= 2 for v in RATE_LIMITS.values())


def test_registry_imports_no_vendor_client() -> None:
    code = "import sys, quantlake.sources.network; print('yfinance' in sys.modules, 'fredapi' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
