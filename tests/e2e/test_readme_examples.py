"""Every fenced command of README.md that needs no network runs as written after `quantlake demo`.

The demo and then the commands run in README order in one process (through the CLI app, as `quantlake ...` would; one import
and one Prefect API for all of them), against the QUANTLAKE_HOME the demo filled, in a scratch working
directory that has the repository's ``configs/``.  What is not run is listed in :data:`SKIPPED` with the
reason (and demo stages no example reads in :data:`DEMO_STAGES_LEFT_OUT`); the test prints the commands
it ran with their times and the skipped ones with the reasons.  README shorthand a user replaces with their own value (``RUN_ID``,
``FILE``, ``DIR``, ``[optional flags]``) gets the values of :func:`substitute`.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"

# (pattern, reason): a command matching the pattern is not run
SKIPPED: list[tuple[str, str]] = [
    (r"^(\.venv/bin/)?quantlake demo\b", "the precondition: it runs first"),
    (r"^(make|pip)\b", "set-up of the environment (make install / make test run it)"),
    (r"^(prefect|docker|dask|mlflow)\b|^QUANTLAKE_IMAGE=",
     "deployment with other tools: tests/e2e/test_e2e_deployments_ui.py and the scaling-out tests"),
    (r"^export\b", "environment for a server or S3 set-up (no network here)"),
    (r"^duckdb\b", "the DuckDB command-line program is not part of the environment"),
    (r"^quantlake ui\b", "serves until Ctrl-C: tests/test_ui_signals.py and test_tracking_compare.py start them"),
    (r"--source (yahoo|fred)\b", "downloads from the network"),
    (r"^quantlake ingest cot\b", "downloads the CFTC file (or reads one you downloaded: tests/test_source_cot.py)"),
    (r"--broker (alpaca|ibkr)\b", "a broker's paper API over the network"),
    (r"^quantlake scan test-email\b", "needs an SMTP server"),
    (r"^quantlake ingest crypto\b", "downloads from the network"),
    (r"^quantlake (bars resample|trade interval) .*BINANCE:|^quantlake trade interval --config configs/trade/hourly_crypto",
     "reads the BINANCE bars `quantlake ingest crypto` downloads from the network"),
    (r"^quantlake serve\b|^curl\b", "serves until Ctrl-C: tests/test_api_server.py starts it and sends these requests"),
    (r"s3://|--dask-address tcp://SCHEDULER", "needs S3 or a Dask cluster on other machines"),
]
# (pattern, exit codes, text the output must hold, why): a command whose documented exit code is not only 0
EXIT_CODES: list[tuple[str, set[int], str, str]] = [
    (r"^quantlake models monitor\b", {0, 1}, "recorded in run",
     "exit 1 when the champion's inputs drifted (for schedulers); the demo's lake ends in 2018 for stocks"),
]
# demo stages no README example reads, left out to keep the test's time down
DEMO_STAGES_LEFT_OUT = {
    "options_spx": "no example reads its SPX backtest runs",
    "reproduce": "re-executes earlier runs on a copy of the lake: nothing an example reads",
}
# a whole fenced block is skipped when it mentions one of these (the S3 set-up reuses ordinary commands)
SKIPPED_BLOCKS = [(r"QUANTLAKE_LAKE_URI=s3://", "the commands after `export QUANTLAKE_LAKE_URI=s3://...` use S3")]


@dataclass
class Command:
    line: int
    text: str


def fenced_commands() -> tuple[list[Command], list[tuple[Command, str]]]:
    """(commands to run, commands skipped with the reason) of every ```bash / ```python block."""
    lines = README.read_text(encoding="utf-8").splitlines()
    run: list[Command] = []
    skipped: list[tuple[Command, str]] = []
    i = 0
    while i < len(lines):
        fence = lines[i].strip()
        if not fence.startswith("```") or fence == "```":
            i += 1
            continue
        lang, start = fence[3:].strip(), i + 1
        end = next(j for j in range(start, len(lines)) if lines[j].strip() == "```")
        body = lines[start:end]
        i = end + 1
        if lang == "python":
            run.append(Command(start + 1, "PYTHON\n" + "\n".join(body)))
            continue
        if lang not in ("bash", "sh"):
            continue  # file excerpts (CSV, YAML, the layout)
        block_skip = next((why for pat, why in SKIPPED_BLOCKS if any(re.search(pat, b) for b in body)), None)
        joined: list[tuple[int, str]] = []
        for k, raw in enumerate(body):
            if joined and joined[-1][1].endswith("\\"):
                joined[-1] = (joined[-1][0], joined[-1][1][:-1] + " " + raw.strip())
            else:
                joined.append((start + k + 1, raw))
        for lineno, raw in joined:
            text = _strip_comment(raw).strip()
            if not text:
                continue
            cmd = Command(lineno, text)
            why = block_skip or next((w for pat, w in SKIPPED if re.search(pat, text)), None)
            (skipped.append((cmd, why)) if why else run.append(cmd))
    return run, skipped


def _strip_comment(line: str) -> str:
    """The line without its trailing `# comment` (a # inside quotes stays)."""
    quote = None
    for pos, ch in enumerate(line):
        if ch in "'\"" and quote in (None, ch):
            quote = None if quote else ch
        elif ch == "#" and quote is None and (pos == 0 or line[pos - 1] == " "):
            return line[:pos]
    return line


def test_readme_is_parsed_and_every_skip_has_a_reason() -> None:
    run, skipped = fenced_commands()
    texts = [c.text for c in run]
    assert any(t.startswith("quantlake sweep") for t in texts) and any("PYTHON" in t for t in texts)
    assert len(run) >= 40, texts
    assert all(why for _, why in skipped)
    assert not any(t.startswith(("quantlake ui", "make ", "export ")) for t in texts)


@pytest.mark.slow
@pytest.mark.e2e
def test_readme_commands_run_as_written_after_the_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    home = tmp_path / "home"
    work = tmp_path / "work"
    work.mkdir()
    (work / "configs").symlink_to(ROOT / "configs")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API_URL", "QUANTLAKE_SMTP"))}
    env.update({"QUANTLAKE_HOME": str(home), "COLUMNS": "120", "QUANTLAKE_MOTD_PATH": str(work / "motd")})
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(work)
    from quantlake.cli import app
    from quantlake.demo import STAGES

    runner = CliRunner()
    t_demo = time.perf_counter()
    stages = [a for name, _ in STAGES if name not in DEMO_STAGES_LEFT_OUT for a in ("--only", name)]
    demo = runner.invoke(app, ["demo", *stages])  # in this process: one import and one Prefect API for all
    assert demo.exit_code == 0, f"{demo.exception!r} {demo.output[-3000:]}"
    stage_times = ", ".join(f"{n} {t}" for n, t in re.findall(r"✓ (\w+) \(([\d.]+ s)\)", demo.output))
    timings = [f"  {time.perf_counter() - t_demo:6.1f} s quantlake demo ({stage_times}; left out: "
               f"{', '.join(f'{n} ({why})' for n, why in DEMO_STAGES_LEFT_OUT.items())})"]
    _user_files(work)
    run, skipped = fenced_commands()
    failures: list[str] = []
    for cmd in run:
        t0 = time.perf_counter()
        if cmd.text.startswith("PYTHON\n"):
            res = subprocess.run([sys.executable, "-c", cmd.text.removeprefix("PYTHON\n")], env=env, cwd=work,
                                 capture_output=True, text=True, timeout=600)
            if res.returncode != 0:
                failures.append(f"README:{cmd.line} python block: {res.stderr[-1500:]}")
            timings.append(f"  {time.perf_counter() - t0:6.1f} s README:{cmd.line} python block")
            continue
        for part in substitute(cmd.text, home, work).split(" && "):
            args, out_file = _split_redirect(shlex.split(part))
            assert args[0] == "quantlake", f"README:{cmd.line}: not a quantlake command and no skip rule: {part}"
            res = runner.invoke(app, args[1:])
            codes, must, _ = next(((c, m, w) for pat, c, m, w in EXIT_CODES if re.search(pat, part)), ({0}, "", ""))
            if res.exit_code not in codes or must not in res.output:
                failures.append(f"README:{cmd.line} `{part}` exit {res.exit_code}: {res.exception!r} "
                                f"{res.output[-1500:]}")
                break
            if out_file is not None:
                (work / out_file).write_text(res.output)
        timings.append(f"  {time.perf_counter() - t0:6.1f} s README:{cmd.line} {cmd.text}")
    print("\nran:", *timings, sep="\n")
    print("skipped:", *(f"  README:{c.line} {c.text}  ({why})" for c, why in skipped), sep="\n")
    print("exit codes other than 0 allowed:", *(f"  {pat} {sorted(c)} ({why})" for pat, c, _, why in EXIT_CODES),
          sep="\n")
    assert failures == [], "\n\n".join(failures)


def _split_redirect(args: list[str]) -> tuple[list[str], str | None]:
    if ">" in args:
        k = args.index(">")
        return args[:k], args[k + 1]
    return args, None


def _user_files(work: Path) -> None:
    """The files README's placeholders stand for (a user brings their own): vendor bar files — ACME.csv daily
    and XYZ.csv of 5-minute bars (one bar missing) in DIR, XYZ.csv in Chicago time stamped at the close as
    FILE —, a copy of a shipped SPX chain file in the chain DIR, an OptionsDX and a CBOE (zipped) chain
    FILE, and a backtest's daily returns."""
    import shutil
    import zipfile

    import numpy as np
    import pandas as pd

    from tests.test_chain_layouts import OPTIONSDX, _cboe_file, _optionsdx_row

    rng = np.random.default_rng(0)
    days = pd.bdate_range("2018-01-02", periods=120)
    pd.DataFrame({"date": days.date, "returns": rng.normal(0.0004, 0.01, len(days))}).to_csv(work / "bt.csv",
                                                                                           index=False)
    vendor = work / "vendor"
    vendor.mkdir()
    (vendor / "ACME.csv").write_text(
        "Date,Open,High,Low,Close,Adj Close,Volume\n2024-01-02,187.15,188.44,183.89,185.64,184.94,82488700\n"
        "2024-01-03,184.22,185.88,183.43,184.25,183.55,58414500\n"
    )

    def five_minute(day: str, tz: str, stamp: str) -> pd.DataFrame:
        opens = pd.date_range(f"{day} 09:30", f"{day} 15:55", freq="5min", tz="America/New_York")
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, len(opens))))
        ts = opens + pd.Timedelta(minutes=5) if stamp == "close" else opens
        return pd.DataFrame({"timestamp": ts.tz_convert(tz).strftime("%Y-%m-%d %H:%M"), "open": close,
                             "high": close * 1.001, "low": close * 0.999, "close": close, "volume": 1000})

    bars = pd.concat([five_minute("2024-03-04", "America/New_York", "open"),
                      five_minute("2024-03-05", "America/New_York", "open")])
    bars[bars["timestamp"] != "2024-03-05 11:00"].to_csv(vendor / "XYZ.csv", index=False)
    (work / "chicago").mkdir()
    five_minute("2024-03-06", "America/Chicago", "close").to_csv(work / "chicago" / "XYZ.csv", index=False)

    chains = work / "chains" / "2019"
    chains.mkdir(parents=True)
    shutil.copy(ROOT / "quantlake" / "sample_data" / "option_quotes_spx_2019" / "SPX_20190425.csv.gz", chains)
    exp, k, spot = dt.date(2020, 1, 17), 3250.0, 3257.85
    row = _optionsdx_row(exp, k, spot, {"bid": 60.0, "ask": 61.0, "size": "10 x 20"}, {"bid": 50.0, "ask": 51.0,
                                                                                       "size": "7 x 8"})
    (work / "spx_eod_202001.txt").write_text(OPTIONSDX + "\n " + row + "\n")
    cboe = _cboe_file(work / "UnderlyingOptionsEODCalcs_2024-01-02.csv")
    with zipfile.ZipFile(work / "UnderlyingOptionsEODCalcs_2024-01-02.zip", "w") as z:
        z.write(cboe, cboe.name)
    cboe.unlink()


CONFIG_FILES = {  # `--config FILE` of each command: an example config of its kind
    "options-sweep": "configs/options_sweep/demo_pcs_sweep.yaml",
    "options-backtest": "configs/options/put_write_gspc.yaml",
    "sweep": "configs/equity/ema_cross_sample.yaml",
}


def substitute(text: str, home: Path, work: Path) -> str:
    """README shorthand → values: optional `[...]` flags dropped, RUN_ID / FILE / DIR / EXPERIMENT filled in."""
    text = re.sub(r"\s\[-[^\]]*\]", "", text)
    if "RUN_ID" in text:
        text = text.replace("RUN_ID", _run_id(text))
    command = text.split()[1]
    text = text.replace("--config FILE", f"--config {CONFIG_FILES.get(command, 'FILE')}")
    chains = text.startswith("quantlake ingest options")
    text = text.replace("--path DIR", f"--path {work / ('chains' if chains else 'vendor')}")
    if chains:
        name = "spx_eod_202001.txt" if "optionsdx" in text else "UnderlyingOptionsEODCalcs_2024-01-02.zip"
        text = text.replace("--path FILE", f"--path {work / name}")
    text = text.replace("--path FILE", f"--path {work / 'chicago' / 'XYZ.csv'}")
    text = text.replace("--returns FILE", f"--returns {work / 'bt.csv'}")
    return text.replace(" DIR", f" {work / 'export'}").replace("EXPERIMENT", "equity_sweep")


def _run_id(text: str) -> str:
    """A finished run that fits the command: a models.train run to register, a backtest for risk reports,
    the demo's rule evaluation to reproduce (seconds, not minutes)."""
    from tracking.run_context import client
    from tracking.runs import experiment_id, search

    c = client()
    if "models register" in text:
        exp, flt = "models", "tags.`quantlake.job` = 'models.train'"
    elif "register-options" in text:  # the iron condor backtest just before it
        exp, flt = "options_backtest", "attributes.run_name LIKE 'iron_condor ^GSPC%'"
    elif "risk report" in text:
        exp, flt = "options_backtest", ""
    else:
        exp, flt = "strategies", ""
    runs = search(c, [experiment_id(c, exp)], "attributes.status = 'FINISHED'" + (f" and {flt}" if flt else ""))
    runs = [r for r in runs if not r.data.tags.get("mlflow.parentRunId")]
    assert runs, f"no finished run in {exp} for `{text}`"
    return runs[0].info.run_id


def test_shell_helpers() -> None:
    assert _strip_comment("quantlake x --set 'a=[1]'  # note # more") == "quantlake x --set 'a=[1]'  "
    assert re.sub(r"\s\[-[^\]]*\]", "", "quantlake scan show [--date D]") == "quantlake scan show"


def test_every_placeholder_of_a_command_that_runs_is_filled(tmp_path: Path) -> None:
    """FILE and DIR of each command the end-to-end test runs become paths of the right kind of file."""
    run, _ = fenced_commands()
    filled = {c.text: substitute(c.text, tmp_path, tmp_path) for c in run
              if "RUN_ID" not in c.text and not c.text.startswith("PYTHON")}
    assert not [t for t in filled.values() if re.search(r"\b(FILE|DIR)\b", t)], filled
    by_flag = {t: f for t, f in filled.items() if t != f}
    assert any("spx_eod_202001.txt --format optionsdx" in f for f in by_flag.values())
    assert any("UnderlyingOptionsEODCalcs_2024-01-02.zip --quote-time 1545" in f for f in by_flag.values())
    assert any("options-sweep --config configs/options_sweep/demo_pcs_sweep.yaml --runner dask" in f
               for f in by_flag.values())
