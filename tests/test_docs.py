"""The documentation: the site builds without a warning, every config key is documented and the
configuration reference is the schema's, the README stays one page with the two commands."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from eeg2fmri import config_reference

from .conftest import REPO

COMMANDS = (
    'python3 -m venv .venv && . .venv/bin/activate && pip install -e . && snakemake --cores all',
    'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[test]" && pytest',
)


def test_the_site_builds_strictly_without_a_warning(tmp_path):
    pytest.importorskip("mkdocs")
    site = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                        str(site), "--config-file", str(REPO / "mkdocs.yml")],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    assert "WARNING" not in r.stderr, r.stderr
    for page in ("index.html", "configuration/index.html", "evaluation/index.html"):
        assert (site / page).is_file()
    assert (site / "images" / "timecourse.png").is_file()


def test_every_schema_key_has_a_description():
    assert config_reference.undocumented(config_reference.load()) == []


def test_an_undocumented_key_is_found():
    schema = config_reference.load()
    schema["properties"]["training"]["properties"]["new_knob"] = {"type": "integer"}
    assert config_reference.undocumented(schema) == ["training.new_knob"]


def test_the_configuration_page_is_the_schema():
    page = REPO / "docs" / "configuration.md"
    assert page.read_text() == config_reference.markdown(config_reference.load()), (
        "docs/configuration.md is out of date: python -m eeg2fmri.config_reference > "
        "docs/configuration.md")


def test_the_readme_is_one_page_with_the_two_commands_and_working_links():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    for command in COMMANDS:
        assert command in readme
    assert COMMANDS[1] in (REPO / ".ci" / "run").read_text()  # CI runs the README's command
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
    assert links and all((REPO / link).exists() for link in links if "://" not in link), [
        link for link in links if not (REPO / link).exists()]


def test_every_docs_page_is_in_the_navigation():
    import yaml

    nav = yaml.safe_load((REPO / "mkdocs.yml").read_text())["nav"]
    listed = {next(iter(entry.values())) for entry in nav}
    pages = {p.name for p in (REPO / "docs").glob("*.md")}
    assert pages == listed


def test_the_pages_images_are_in_the_repository():
    """Images the pages show live under docs/ (a fresh clone builds the site)."""
    shown = set()
    for page in (REPO / "docs").glob("*.md"):
        shown |= set(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", page.read_text()))
    for image in shown:
        assert (REPO / "docs" / image).is_file(), image
