"""The two-command setup: README, Makefile, CI script and environment.yml stay consistent."""

import re

from course_utils.authoring import ROOT

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[]", requirement.strip(), maxsplit=1)[0].lower()


def test_environment_yml_lists_the_same_packages_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    declared = {_name(r) for r in project["dependencies"] + extras["dev"] + extras["site"]}
    listed = set()
    for line in (ROOT / "environment.yml").read_text().splitlines():
        item = re.match(r"^\s*-\s+([A-Za-z][\w.-]*)", line)
        if item and item[1] not in ("python", "pip", "conda-forge"):
            listed.add(_name(item[1]))
    assert listed == declared


def test_readme_quick_start_is_exactly_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["make lab", "make test"]


def test_makefile_has_every_target_and_pins_torch():
    makefile = (ROOT / "Makefile").read_text()
    for target in ("lab", "test", "check", "student", "solutions", "bench"):
        assert re.search(rf"^{target}:", makefile, re.MULTILINE), target
    assert "torch==2.13.0" in makefile


def test_ci_runs_make_test():
    script = (ROOT / ".ci" / "run").read_text()
    assert "make test" in script and "set -e" in script


def test_readme_maps_every_notebook():
    readme = (ROOT / "README.md").read_text()
    for path in (ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"):
        assert f"`{path.stem}`" in readme, path.stem
