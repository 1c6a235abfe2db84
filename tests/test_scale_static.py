"""What can be checked of the container set-up without a docker daemon (none runs here, so the image is
not built in the tests): the Dockerfile installs exactly requirements.lock and quantlake without resolving
anything, copies every package the wheel needs, and the docker work-pool deployments of prefect.yaml run the
image's code."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_installs_exactly_the_lock_file_then_quantlake_without_deps() -> None:
    steps = _instructions()
    runs = [rest for word, rest in steps if word == "RUN"]
    makefile = (ROOT / "Makefile").read_text()
    uv = re.search(r"UV_VERSION := (\S+)", makefile)
    assert uv is not None
    assert any(f'"uv=={uv.group(1)}"' in r for r in runs), runs  # the Makefile's uv
    sync = [r for r in runs if "uv pip sync" in r]
    assert len(sync) == 1 and "requirements.lock" in sync[0]
    installs = [r for r in runs if "uv pip install" in r]
    assert installs and all("--no-deps" in r for r in installs), installs
    assert not any(re.search(r"\bpip install\b(?!.*uv==)", r.replace("uv pip install", "")) for r in runs)
    # the lock is copied (and synced) before the code, so code changes reuse the dependency layer
    copies = [rest for word, rest in steps if word == "COPY"]
    assert copies[0].startswith("requirements.lock")


def test_dockerfile_copies_every_package_of_the_wheel_and_matches_python() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    copied = {src for word, rest in _instructions() if word == "COPY" for src in rest.split()[:-1]}
    for pkg in [*packages, "sql", "pyproject.toml", "README.md"]:
        assert pkg in copied, pkg
    base = next(rest for word, rest in _instructions() if word == "FROM")
    assert base.startswith("python:3.11"), base
    assert ">=3.11,<3.12" in project["project"]["requires-python"]
    workdir = next(rest for word, rest in _instructions() if word == "WORKDIR")
    assert workdir == "/opt/quantlake"


def test_docker_work_pool_deployments_run_the_images_code() -> None:
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    workdir = next(rest for word, rest in _instructions() if word == "WORKDIR")
    deployments = {d["name"]: d for d in spec["deployments"]}
    docker = [d for d in deployments.values() if d["work_pool"]["name"] == "quantlake-docker"]
    assert {d["name"] for d in docker} == {"equity-sweep-docker", "build-features-docker"}
    for d in docker:
        assert d["work_pool"]["job_variables"]["image"] == "{{ $QUANTLAKE_IMAGE }}"
        env = d["work_pool"]["job_variables"]["env"]
        assert "QUANTLAKE_LAKE_URI" in env and "MLFLOW_TRACKING_URI" in env
        assert not any("SECRET" in k or "PASSWORD" in k for k in env)  # credentials never in the file
        assert d["pull"] == [{"prefect.deployments.steps.set_working_directory": {"directory": workdir}}]
        module, _, func = d["entrypoint"].partition(":")
        assert (ROOT / module).is_file() and f"def {func}(" in (ROOT / module).read_text()
    # the docker sweep runs the same parameters as the scheduled process one
    assert deployments["equity-sweep-docker"]["parameters"] == deployments["equity-sweep"]["parameters"]
    # process deployments keep running from the checkout (no pull step)
    assert all("pull" not in d for d in deployments.values() if d["work_pool"]["name"] == "quantlake-process")


def test_unreachable_dask_scheduler_is_one_line_before_anything_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from clirun import run_main
    from servers import free_port

    cfg = tmp_path / "s.yaml"
    cfg.write_text("strategy: {kind: sma_cross, params: {fast: 5, slow: 20}}\nsymbols: [SPY]\n")
    monkeypatch.setenv("QUANTLAKE_HOME", str(tmp_path / "home"))
    code, _, err = run_main(monkeypatch, capsys, "sweep", "--config", str(cfg), "--dask-address",
                            f"tcp://127.0.0.1:{free_port()}")
    assert code == 1 and len(err.strip().splitlines()) == 1 and "cannot reach the Dask scheduler" in err, err
    code, _, err = run_main(monkeypatch, capsys, "sweep", "--config", str(cfg), "--dask-address", "nonsense")
    assert code == 2 and "expected tcp://HOST:PORT" in err, err
    monkeypatch.setenv("QUANTLAKE_DASK_ADDRESS", "tcp://[bad")
    code, _, err = run_main(monkeypatch, capsys, "sweep", "--config", str(cfg))
    assert code == 2 and "expected tcp://HOST:PORT" in err, err
