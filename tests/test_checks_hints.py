"""Hints in levels and the solution reveal, for every registered exercise."""

import re

import pytest

from course_utils import check
from course_utils.checks import core


@pytest.fixture(autouse=True)
def fresh_kernel(monkeypatch):
    """Each test starts as a new kernel: no hints shown, nothing attempted."""
    monkeypatch.setattr(core, "_HINTS_SHOWN", {})
    monkeypatch.setattr(core, "_ATTEMPTED", set())
    monkeypatch.setattr(core, "_PASSED", {})


NAMES = [e.name for e in check.exercises()]


def _code_lines(source: str) -> list[str]:
    """The solution's statements, spaces removed, that are long enough to be telling."""
    lines = []
    for line in source.splitlines():
        code = line.split("#")[0].strip()
        if code and not code.startswith(("def ", '"""', "import", "from")) and len(code) > 20:
            lines.append(re.sub(r"\s+", "", code))
    return lines


def test_thirty_exercises_each_with_at_least_two_hints():
    assert len(NAMES) == 30
    for entry in check.exercises():
        assert len(entry.hints) >= 2, entry.name
        assert all(isinstance(h, str) and len(h) > 30 for h in entry.hints), entry.name


@pytest.mark.parametrize("name", NAMES)
def test_no_hint_is_a_line_of_the_solution(name):
    source = core.solution_source(name)
    for text in check.REGISTRY[name].hints:
        squeezed = re.sub(r"\s+", "", text)
        for line in _code_lines(source):
            assert line not in squeezed, f"{name}: a hint gives away `{line}`"


@pytest.mark.parametrize("name", NAMES)
def test_hints_come_in_order_then_point_to_the_solution(name, capsys):
    hints = check.REGISTRY[name].hints
    for level, text in enumerate(hints, start=1):
        shown = check.hint(name)
        assert f"hint {level} of {len(hints)}" in shown and text in shown
    assert "check.solution" in shown  # the last hint says where to go next
    assert "no more hints" in check.hint(name)
    assert check.hint(name, level=1).count(hints[0]) == 1  # any level on request
    assert capsys.readouterr().out.count(f"{name}, hint 1 of") == 2


@pytest.mark.parametrize("name", NAMES)
def test_the_solution_is_shown_after_a_try_and_comes_from_solutions(name, capsys):
    assert check.solution(name) is None
    assert "try it first" in capsys.readouterr().out
    with pytest.raises(check.CheckFailed):
        check.REGISTRY[name].check(lambda *args, **kwargs: None)  # a wrong answer is a try
    source = check.solution(name)
    assert f"def {name}(" in source and "SOLUTION" not in source
    assert f"solutions/{check.REGISTRY[name].notebook}.ipynb" in capsys.readouterr().out


def test_reading_every_hint_also_unlocks_the_solution(capsys):
    for _ in check.REGISTRY["gaussian_kl"].hints:
        check.hint("gaussian_kl")
    assert "0.5 * (mu.pow(2)" in check.solution("gaussian_kl")


def test_a_not_started_exercise_is_not_a_try(capsys):
    def stub(mu, logvar):
        raise NotImplementedError()

    with pytest.raises(check.ExerciseNotStarted):
        check.gaussian_kl(stub)
    assert check.solution("gaussian_kl") is None


def test_unknown_names_and_levels_are_explained():
    with pytest.raises(KeyError, match="no exercise called 'gausian_kl'.*gaussian_kl"):
        check.hint("gausian_kl")
    with pytest.raises(KeyError, match="no exercise called"):
        check.solution("nope")
    with pytest.raises(ValueError, match="level must be 1, 2"):
        check.hint("gaussian_kl", level=0)


def test_a_failing_check_points_to_the_hints():
    with pytest.raises(check.CheckFailed) as info:
        check.gaussian_kl(lambda mu, logvar: (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1))
    rendered = info.value._render_traceback_()
    assert 'check.hint("gaussian_kl")' in rendered[-1]
    assert "0.5" not in "".join(rendered)  # the message names the mistake, not the answer


def test_a_missing_solutions_folder_is_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match="solutions come with the course's repository"):
        core.solution_source("gaussian_kl", solutions_dir=tmp_path)
