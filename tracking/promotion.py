"""The promotion gate: a model version becomes ``champion`` only if its out-of-sample record passes.

Checks (configurable, :class:`PromotionGate`): minimum OOS Sharpe, maximum drawdown, deflated-Sharpe
significance, minimum number of trades, and (optionally) not worse than the current champion.  The
candidate's numbers are the ``oos_*`` metrics of the run that logged it (see :mod:`tracking.stats`).

A promotion moves ``champion`` to the version and ``previous`` to the old champion.  Every decision,
passed, rejected or forced, is recorded twice: as tags on the model version (``promotion.*``) and as a run
in the ``promotions`` experiment (the audit log, also visible in the MLflow UI).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from quantlake.errors import ConfigError, MalformedFileError
from quantlake.lake import Lake
from tracking import stats
from tracking.registry import CHAMPION, PREVIOUS, by_alias, get_version, validate_model_name
from tracking.run_context import client, get_or_create_experiment, tracked_run
from tracking.runs import search
from tracking.scrub import Scrubber

PROMOTIONS_EXPERIMENT = "promotions"
PROMOTE_JOB = "registry.promote"


class PromotionGate(BaseModel):
    """Thresholds a candidate's out-of-sample metrics must meet."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_oos_sharpe: float = Field(default=0.5, description="annualized OOS Sharpe at least this")
    max_drawdown: float = Field(
        default=0.30, gt=0, le=1, description="OOS max drawdown no deeper than this fraction"
    )
    min_deflated_sharpe: float = Field(
        default=0.95,
        ge=0,
        le=1,
        description="P(true Sharpe > 0 | trials) at least this (1 - significance level)",
    )
    min_trades: int = Field(default=20, ge=0, description="OOS position changes at least this")
    beat_champion: bool = Field(default=True, description="OOS Sharpe at least the current champion's")


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class Decision:
    model: str
    version: str
    promoted: bool
    forced: bool
    checks: list[Check]
    previous_champion: str | None
    decided_at: str
    note: str = ""
    record_run_id: str = ""
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def outcome(self) -> str:
        if self.promoted:
            return "forced" if self.forced and not self.passed else "promoted"
        return "unchanged" if self.previous_champion == self.version else "rejected"

    @property
    def reasons(self) -> str:
        return "; ".join(f"{'ok' if c.passed else 'FAIL'} {c.name}: {c.detail}" for c in self.checks)

    def summary(self) -> dict[str, Any]:
        """The decision as plain data (the promote-models flow returns these)."""
        return {"model": self.model, "version": self.version, "outcome": self.outcome,
                "previous_champion": self.previous_champion,
                "checks": [{"name": c.name, "passed": c.passed, "detail": c.detail} for c in self.checks],
                "record_run_id": self.record_run_id}  # fmt: skip


def _metric(metrics: dict[str, float], key: str) -> float | None:
    v = metrics.get(key)
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def evaluate(
    gate: PromotionGate, metrics: dict[str, float], champion: dict[str, float] | None
) -> list[Check]:
    """Each check of ``gate`` against a candidate's metrics (and the champion's, if there is one)."""
    checks = []

    def need(name: str, key: str, ok: bool | None, detail: str) -> None:
        if ok is None:
            checks.append(Check(name, False, f"metric {key} was not logged by the model's run"))
        else:
            checks.append(Check(name, ok, detail))

    sharpe = _metric(metrics, stats.OOS_SHARPE)
    need(
        "oos_sharpe",
        stats.OOS_SHARPE,
        None if sharpe is None else sharpe >= gate.min_oos_sharpe,
        f"{sharpe:.3f} vs minimum {gate.min_oos_sharpe:.3f}" if sharpe is not None else "",
    )
    dd = _metric(metrics, stats.OOS_MAX_DRAWDOWN)
    need(
        "max_drawdown",
        stats.OOS_MAX_DRAWDOWN,
        None if dd is None else abs(dd) <= gate.max_drawdown,
        f"{abs(dd):.1%} vs maximum {gate.max_drawdown:.1%}" if dd is not None else "",
    )
    dsr = _metric(metrics, stats.OOS_DSR)
    trials = _metric(metrics, stats.N_TRIALS)
    need(
        "deflated_sharpe",
        stats.OOS_DSR,
        None if dsr is None else dsr >= gate.min_deflated_sharpe,
        f"P(SR>0)={dsr:.4f} after {int(trials or 1)} trial(s) vs minimum {gate.min_deflated_sharpe:.4f}"
        if dsr is not None
        else "",
    )
    trades = _metric(metrics, stats.OOS_TRADES)
    need(
        "trades",
        stats.OOS_TRADES,
        None if trades is None else trades >= gate.min_trades,
        f"{int(trades)} vs minimum {gate.min_trades}" if trades is not None else "",
    )
    if gate.beat_champion and champion is not None and sharpe is not None:
        champ_sharpe = _metric(champion, stats.OOS_SHARPE)
        if champ_sharpe is not None:
            checks.append(
                Check(
                    "beats_champion",
                    sharpe >= champ_sharpe,
                    f"OOS Sharpe {sharpe:.3f} vs champion's {champ_sharpe:.3f}",
                )
            )
    return checks


class PromotionRequest(BaseModel):
    """What a promotion record run logs as its config."""

    model: str
    version: str
    force: bool
    note: str
    gate: PromotionGate


def promote(
    name: str, version: str | int, gate: PromotionGate | None = None, force: bool = False, note: str = ""
) -> Decision:
    """Judge version ``version`` of model ``name`` and make it champion if it passes (or ``force``).

    The free-text ``note`` is scrubbed of secret values like everything else that reaches the store."""
    gate = gate or PromotionGate()
    note = Scrubber().text(note)
    validate_model_name(name)
    c = client()
    mv = get_version(name, version, c)
    current = by_alias(name, CHAMPION, c)
    metrics = dict(c.get_run(mv.run_id).data.metrics) if mv.run_id else {}
    champ_metrics = None
    version_id = str(mv.version)
    champion_id = str(current.version) if current is not None else None
    if current is not None and champion_id != version_id and current.run_id:
        champ_metrics = dict(c.get_run(current.run_id).data.metrics)
    checks = evaluate(gate, metrics, champ_metrics)
    passed = all(ch.passed for ch in checks)
    already = champion_id == version_id
    promote_now = (passed or force) and not already
    decided_at = dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")  # two decisions in one second stay ordered
    decision = Decision(
        model=name,
        version=version_id,
        promoted=promote_now,
        forced=force,
        checks=checks,
        previous_champion=champion_id,
        decided_at=decided_at,
        note=note,
        metrics={k: v for k, v in metrics.items() if k.startswith("oos_") or k == stats.N_TRIALS},
    )
    if promote_now:
        if champion_id is not None:
            c.set_registered_model_alias(name, PREVIOUS, champion_id)
            c.set_model_version_tag(name, champion_id, "promotion.demoted_by", version_id)
        c.set_registered_model_alias(name, CHAMPION, version_id)
    record = _record(decision, gate)
    for key, value in {
        "promotion.decision": decision.outcome,
        "promotion.decided_at": decided_at,
        "promotion.forced": str(force).lower(),
        "promotion.reasons": decision.reasons[:4900],
        "promotion.note": note[:4900],
        "promotion.record_run": record,
    }.items():
        c.set_model_version_tag(name, version_id, key, value)
    return dataclasses.replace(decision, record_run_id=record)


def _record(decision: Decision, gate: PromotionGate) -> str:
    """Log the decision as a run in the promotions experiment (the audit log); returns its id."""
    request = PromotionRequest(
        model=decision.model, version=decision.version, force=decision.forced, note=decision.note, gate=gate
    )
    with tracked_run(
        PROMOTIONS_EXPERIMENT,
        PROMOTE_JOB,
        request,
        Lake(),
        run_name=f"{decision.model} v{decision.version} {decision.outcome}",
    ) as run:
        run.log_metrics({f"candidate.{k}": v for k, v in decision.metrics.items()})
        run.set_tags(
            {
                "promotion.model": decision.model,
                "promotion.version": decision.version,
                "promotion.decision": decision.outcome,
                "promotion.previous_champion": decision.previous_champion or "none",
                "promotion.forced": str(decision.forced).lower(),
                "promotion.reasons": decision.reasons,
            }
        )
        run.log_dict(
            {
                "model": decision.model,
                "version": decision.version,
                "decision": decision.outcome,
                "forced": decision.forced,
                "previous_champion": decision.previous_champion,
                "decided_at": decision.decided_at,
                "note": decision.note,
                "checks": [c.__dict__ for c in decision.checks],
                "metrics": decision.metrics,
            },
            "decision.json",
        )
    return run.run_id


def history(name: str) -> list[dict[str, str]]:
    """Every recorded decision about model ``name``, newest first."""
    c = client()
    exp = get_or_create_experiment(PROMOTIONS_EXPERIMENT)
    out = []
    for r in search(c, [exp], f"tags.`promotion.model` = '{validate_model_name(name)}'"):
        t = r.data.tags
        at = dt.datetime.fromtimestamp(r.info.start_time / 1000, tz=dt.UTC)
        out.append(
            {
                "run_id": r.info.run_id,
                "at": at.isoformat(timespec="seconds"),
                "version": t.get("promotion.version", ""),
                "decision": t.get("promotion.decision", ""),
                "previous_champion": t.get("promotion.previous_champion", ""),
                "forced": t.get("promotion.forced", ""),
                "reasons": t.get("promotion.reasons", ""),
            }
        )
    return out


def gate_from_file(path: Path) -> PromotionGate:
    """A gate from a JSON or YAML file holding fields of :class:`PromotionGate`."""
    import yaml

    try:
        text = path.read_text()
        data = yaml.safe_load(text) if path.suffix.lower() in (".yaml", ".yml") else json.loads(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise MalformedFileError(f"cannot read promotion gate {path}: {exc}") from None
    try:
        return PromotionGate.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid promotion gate in {path}: {problems}") from None
