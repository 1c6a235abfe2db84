"""Prefect flows (orchestration only).  Importing this package decides where flows report to before Prefect
is imported: a configured server, this home's running server, else an API thread in this process
(:mod:`quantlake.orchestration`)."""

from quantlake.orchestration import configure

configure()
