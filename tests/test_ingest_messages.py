"""The failure summary of an ingest says what happened to the rest: "the rest were ingested" only when
something was."""

from __future__ import annotations

from quantlake.errors import SourceError, SourceUnavailableError, UserInputError
from quantlake.ingest import IngestReport, failures_error


def _report(inserted: int = 0, accepted: int = 0, **fails: Exception) -> IngestReport:
    r = IngestReport("equity_bars", "yahoo", rows_read=accepted, accepted=accepted, inserted=inserted)
    r.failures.update(fails)
    return r


def test_nothing_ingested_is_said_so() -> None:
    err = failures_error([_report(AAA=SourceUnavailableError("cannot reach x"),
                                  BBB=SourceUnavailableError("cannot reach x"))])
    assert isinstance(err, SourceError)
    assert "2 item(s) failed, nothing was ingested" in str(err) and "rest" not in str(err)


def test_the_rest_ingested_only_when_rows_were_written() -> None:
    err = failures_error([_report(inserted=5, accepted=5, ZZZ=UserInputError("unknown symbol ZZZ"))])
    assert isinstance(err, UserInputError)
    assert str(err) == "1 item(s) failed, the rest were ingested (5 row(s) written): ZZZ: unknown symbol ZZZ"
    err = failures_error([_report(accepted=5, ZZZ=UserInputError("unknown symbol ZZZ"))])
    assert "the rest were already up to date" in str(err)
    assert failures_error([_report(inserted=3, accepted=3)]) is None
