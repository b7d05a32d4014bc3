"""The conda environments the rules name exist, parse, and pin what pyproject.toml requires."""

from __future__ import annotations

import re
import tomllib

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from .conftest import FIXTURES, REPO

# conda-forge names of our PyPI dependencies where they differ
CONDA_NAME = {"torch": "pytorch", "matplotlib": "matplotlib-base", "mne": "mne-base"}
NOT_IN_ENV = {"snakemake"}  # runs the workflow; the jobs only call `eeg2fmri`


def software_envs() -> list[str]:
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    return schema["properties"]["software_env"]["enum"]


def conda_specs(env: dict) -> dict[str, tuple[SpecifierSet, str | None]]:
    """name -> (version range, build pattern) of each conda dependency ('name range [build]')."""
    specs = {}
    for dep in env["dependencies"]:
        if isinstance(dep, str):
            m = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*([<>=!~][^\s]*)?(?:\s+(\S+))?", dep)
            assert m, f"not a conda match spec: {dep!r}"
            version = m[2] or ""
            if re.fullmatch(r"=[^=<>!,]+", version):  # conda's '=3.11' means 3.11.*
                version = f"=={version[1:]}.*"
            specs[m[1]] = (SpecifierSet(version), m[3])
    return specs


def test_every_rule_env_exists_and_parses():
    rules = "\n".join(p.read_text() for p in (REPO / "workflow/rules").glob("*.smk"))
    assert 'ENV = str(Path(workflow.basedir) / "envs" / f"eeg2fmri-{config' in rules
    assert rules.count("conda:\n        ENV") >= 5  # every rule that runs a job
    for name in software_envs():
        env = yaml.safe_load((REPO / "envs" / f"eeg2fmri-{name}.yaml").read_text())
        assert env["name"] == f"eeg2fmri-{name}"
        assert env["channels"][0] == "conda-forge"
        conda_specs(env)


@pytest.mark.parametrize("name", software_envs())
def test_env_pins_agree_with_pyproject(name):
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((REPO / "envs" / f"eeg2fmri-{name}.yaml").read_text())
    specs = conda_specs(env)
    for req in map(Requirement, project["dependencies"]):
        if req.name in NOT_IN_ENV:
            continue
        conda = CONDA_NAME.get(req.name, req.name)
        assert conda in specs, f"envs/eeg2fmri-{name}.yaml lacks {conda} ({req})"
        assert specs[conda][0] == req.specifier, (
            f"envs/eeg2fmri-{name}.yaml pins {conda} {specs[conda][0]}, pyproject {req}")
    env_python = specs["python"][0]  # e.g. '=3.11', i.e. 3.11.*
    assert "3.11.0" in env_python and "3.11.0" in SpecifierSet(project["requires-python"])


def test_cuda_env_pins_a_cuda_build_and_mamba_ssm():
    cuda = conda_specs(yaml.safe_load((REPO / "envs/eeg2fmri-cuda.yaml").read_text()))
    cpu = conda_specs(yaml.safe_load((REPO / "envs/eeg2fmri-cpu.yaml").read_text()))
    assert cuda["pytorch"][1] == "cuda*" and cpu["pytorch"][1] == "cpu*"
    assert "cuda-version" in cuda and "mamba-ssm" in cuda and "mamba-ssm" not in cpu


def test_the_report_dependency_is_declared():
    """`snakemake --report` imports pygments, which snakemake does not declare."""
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(d.startswith("pygments") for d in deps)


def test_fixtures_live_in_the_repository():
    assert FIXTURES.is_relative_to(REPO)
    assert (FIXTURES / "noddi-bids-headers" / "SOURCE.md").is_file()
    assert "CC BY 4.0" in (FIXTURES / "README.md").read_text() or \
        "Attribution 4.0" in (FIXTURES / "README.md").read_text()
