"""Where the lake is: QUANTLAKE_LAKE_URI, else lake.uri in the config file, else $QUANTLAKE_HOME/lake; bad
locations are one clear line; presigned URLs never reach an error message."""

from __future__ import annotations

from pathlib import Path

import pytest

from quantlake.errors import ConfigError
from quantlake.lake import Lake
from quantlake.lake_sql import scrub_signed_urls
from quantlake.lake_storage import LakeStore


def test_location_precedence(ql_home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("QUANTLAKE_LAKE_URI", raising=False)
    monkeypatch.delenv("QUANTLAKE_CONFIG", raising=False)
    assert Lake().uri == str(ql_home / "lake")
    (ql_home / "config.yaml").write_text("lake: {uri: s3://team-bucket/research/}\n")
    assert Lake().uri == "s3://team-bucket/research"
    assert not Lake().is_local
    monkeypatch.setenv("QUANTLAKE_LAKE_URI", str(tmp_path / "elsewhere"))
    assert Lake().uri == str(tmp_path / "elsewhere") and Lake().root == tmp_path / "elsewhere"
    other = tmp_path / "other.yaml"
    other.write_text("dask: {address: tcp://10.1.2.3:8786}\n")
    monkeypatch.setenv("QUANTLAKE_CONFIG", str(other))
    from quantlake.config import dask_address

    assert dask_address() == "tcp://10.1.2.3:8786"
    assert dask_address("tcp://127.0.0.1:9999") == "tcp://127.0.0.1:9999"


@pytest.mark.parametrize(
    ("location", "needle"),
    [("gs://bucket/lake", "scheme 'gs' is not supported"), ("s3:///nobucket", "names no bucket")],
)
def test_bad_locations_are_config_errors(location: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        LakeStore.parse(location)


def test_bad_config_file_names_the_file(ql_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QUANTLAKE_LAKE_URI", raising=False)
    (ql_home / "config.yaml").write_text("lake: s3://x\n")
    with pytest.raises(ConfigError, match=r"config.yaml: 'lake' must be a mapping"):
        Lake()


def test_s3_lake_has_no_local_root() -> None:
    from quantlake.errors import LakeError

    lake = Lake("s3://bucket/prefix")
    assert lake.uri == "s3://bucket/prefix" and lake.table_uri("equity_bars") == "s3://bucket/prefix/equity_bars"
    with pytest.raises(LakeError, match="not a local folder"):
        _ = lake.root


def test_presigned_urls_are_cut_from_messages() -> None:
    msg = ("HTTP Error: 403 for 'https://s3.amazonaws.com/b/k/part-0.parquet?X-Amz-Algorithm=AWS4-HMAC-SHA256"
           "&X-Amz-Credential=AKIAEXAMPLE%2F20261204&X-Amz-Signature=abcdef0123'")
    out = scrub_signed_urls(msg)
    assert "X-Amz" not in out and "abcdef0123" not in out and "part-0.parquet?<signed>" in out
