"""Where the lake lives: a local folder or ``s3://bucket/prefix`` on S3 or an S3-compatible store (issue 14).

One :class:`LakeStore` answers the storage questions the lake asks — the URI of a table, which tables exist,
the ``storage_options`` delta-rs needs, read-only URLs DuckDB may open, the removal of killed writers' staging
files — so :mod:`quantlake.lake` is the same code for both.

Location: ``QUANTLAKE_LAKE_URI``, else ``lake.uri`` in the config file (:func:`quantlake.config.setting`), else
``$QUANTLAKE_HOME/lake``.  S3 settings are the standard AWS ones — ``AWS_ENDPOINT_URL`` (or
``AWS_ENDPOINT_URL_S3``) for S3-compatible servers, ``AWS_REGION``/``AWS_DEFAULT_REGION``, credentials from
the standard chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``, ``AWS_PROFILE`` and
the shared config files, instance roles) resolved by botocore, so delta-rs, DuckDB and MLflow all use the same
identity.  Credentials are handed to delta-rs in memory only and never logged, printed or stored.

Concurrent writers on S3: every commit is a put-if-absent of the next log entry (``aws_conditional_put=etag``,
supported by AWS S3 since 2024, MinIO, R2 and moto), so two machines racing for a version cannot both win.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from quantlake.errors import ConfigError, LakeError

# object_store's local writer stages each file as ``<name>#<n>`` and renames it into place; a killed writer
# leaves the staging file behind (issue 19.8)
STAGING_RE = re.compile(r".+#\d+$")
PRESIGN_SECONDS = 12 * 3600  # how long a read-only session's S3 URLs stay valid


def _endpoint() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def _region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


@dataclass(frozen=True)
class LakeStore:
    """The lake's location.  ``uri`` is an absolute local path or ``s3://bucket/prefix`` (no trailing slash)."""

    uri: str

    @staticmethod
    def parse(location: str | Path) -> LakeStore:
        text = str(location).strip()
        if text.startswith("s3://") or text.startswith("s3a://"):
            parsed = urlparse(text)
            if not parsed.netloc:
                raise ConfigError(f"lake URI {text!r} names no bucket (expected s3://bucket/prefix)")
            prefix = parsed.path.strip("/")
            return LakeStore(f"s3://{parsed.netloc}" + (f"/{prefix}" if prefix else ""))
        if "://" in text and not text.startswith("file://"):
            scheme = text.split("://", 1)[0]
            raise ConfigError(f"lake URI {text!r}: scheme {scheme!r} is not supported (a folder or s3://bucket/prefix)")
        if text.startswith("file://"):
            text = text[len("file://"):]
        return LakeStore(str(Path(text).expanduser().resolve()))

    # ------------------------------------------------------------------ basics
    @property
    def is_s3(self) -> bool:
        return self.uri.startswith("s3://")

    @property
    def bucket(self) -> str:
        return urlparse(self.uri).netloc

    @property
    def prefix(self) -> str:
        """Key prefix of the lake inside the bucket ('' or 'a/b/')."""
        p = urlparse(self.uri).path.strip("/")
        return p + "/" if p else ""

    @property
    def local_root(self) -> Path:
        if self.is_s3:
            raise LakeError(f"the lake at {self.uri} is on object storage, not a local folder")
        return Path(self.uri)

    def table_uri(self, name: str) -> str:
        return f"{self.uri}/{name}"

    # ------------------------------------------------------------------ S3 access
    def storage_options(self) -> dict[str, str] | None:
        """delta-rs ``storage_options`` (None for a local lake).  Holds credentials: never log it."""
        if not self.is_s3:
            return None
        opts = {"AWS_REGION": _region(), "aws_conditional_put": "etag"}
        endpoint = _endpoint()
        if endpoint:
            opts["AWS_ENDPOINT_URL"] = endpoint
            if endpoint.startswith("http://"):
                opts["AWS_ALLOW_HTTP"] = "true"
            opts["AWS_VIRTUAL_HOSTED_STYLE_REQUEST"] = "false"
        creds = self._credentials()
        if creds is not None:
            opts["AWS_ACCESS_KEY_ID"] = creds.access_key
            opts["AWS_SECRET_ACCESS_KEY"] = creds.secret_key
            if creds.token:
                opts["AWS_SESSION_TOKEN"] = creds.token
        return opts

    def _credentials(self) -> Any:
        import botocore.session

        session = botocore.session.get_session()
        creds = session.get_credentials()
        return creds.get_frozen_credentials() if creds is not None else None

    def client(self) -> Any:
        """A boto3 S3 client for this lake's endpoint (listing, presigning, cleanup)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3", endpoint_url=_endpoint(), region_name=_region(),
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
        )

    def _key(self, uri: str) -> str:
        parsed = urlparse(uri)
        if parsed.netloc != self.bucket:
            raise LakeError(f"{uri} is outside the lake {self.uri}")
        return parsed.path.lstrip("/")

    # ------------------------------------------------------------------ discovery
    def table_names(self) -> list[str]:
        """Names of the folders directly under the lake that hold a Delta log."""
        if not self.is_s3:
            root = self.local_root
            if not root.is_dir():
                return []
            from deltalake import DeltaTable

            # a folder whose creation failed (disk full, killed) may hold an empty _delta_log: not a table
            return sorted(
                p.name for p in root.iterdir() if (p / "_delta_log").is_dir() and DeltaTable.is_deltatable(str(p))
            )
        client = self.client()
        names: list[str] = []
        try:
            for page in client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix, Delimiter="/"
            ):
                for cp in page.get("CommonPrefixes", []):
                    names.append(cp["Prefix"][len(self.prefix):].rstrip("/"))
        except Exception as exc:
            raise LakeError(f"cannot list the lake at {self.uri}: {_aws_error(exc)}") from None
        out = []
        for name in names:
            got = client.list_objects_v2(Bucket=self.bucket, Prefix=f"{self.prefix}{name}/_delta_log/", MaxKeys=1)
            if got.get("KeyCount", 0):
                out.append(name)
        return sorted(out)

    # ------------------------------------------------------------------ read-only URLs
    def read_urls(self, files: list[str]) -> list[str]:
        """URLs a read-only DuckDB session opens for ``files`` (a snapshot's ``file_uris()``).

        S3: presigned HTTPS GET URLs — DuckDB gets no credentials at all and httpfs cannot write to an HTTP
        URL, so a session can read exactly these objects and nothing else.  Local: the paths themselves (the
        session serves them through a read-only filesystem, see :mod:`quantlake.lake_sql`).
        """
        if not self.is_s3:
            return [f[len("file://"):] if f.startswith("file://") else f for f in files]
        client = self.client()
        return [
            client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": self._key(f)}, ExpiresIn=PRESIGN_SECONDS
            )
            for f in files
        ]

    # ------------------------------------------------------------------ cleanup
    def remove_staging_leftovers(self, name: str, older_than: dt.timedelta) -> list[str]:
        """Delete ``part-*.parquet#N`` files killed writers left in table ``name`` (not touched for
        ``older_than``: a live writer keeps its staging file fresh).  On S3 an interrupted upload is an
        incomplete multipart upload, which is aborted instead."""
        cutoff = dt.datetime.now(dt.UTC) - older_than
        removed: list[str] = []
        if not self.is_s3:
            folder = self.local_root / name
            for p in folder.rglob("*"):
                if p.is_file() and STAGING_RE.fullmatch(p.name):
                    mtime = dt.datetime.fromtimestamp(p.stat().st_mtime, dt.UTC)
                    if mtime <= cutoff:
                        p.unlink(missing_ok=True)
                        removed.append(str(p.relative_to(folder)))
            return sorted(removed)
        client = self.client()
        prefix = f"{self.prefix}{name}/"
        for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=prefix):
            for up in page.get("Uploads", []):
                if up["Initiated"] <= cutoff:
                    client.abort_multipart_upload(Bucket=self.bucket, Key=up["Key"], UploadId=up["UploadId"])
                    removed.append(up["Key"][len(prefix):] + " (incomplete upload)")
        return sorted(removed)


def _aws_error(exc: Exception) -> str:
    """One line for an AWS/botocore failure, without request ids or signatures."""
    resp = getattr(exc, "response", None)
    if isinstance(resp, dict) and "Error" in resp:
        err = resp["Error"]
        return f"{err.get('Code', '')}: {err.get('Message', '')}".strip(": ")
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def configured_lake_uri() -> str:
    """The lake location from the environment/config file, else ``$QUANTLAKE_HOME/lake``."""
    from quantlake.config import paths, setting

    uri = os.environ.get("QUANTLAKE_LAKE_URI") or setting("lake", "uri")
    return LakeStore.parse(uri).uri if uri else str(paths().lake)
