"""The checks framework: every kind of student mistake gets its own short message."""

import numpy as np
import pytest
import torch

from course_utils.checks.core import (
    Case,
    CheckFailed,
    ExerciseNotStarted,
    Mistake,
    assert_fails,
    assert_passes,
    compare,
    private_generator,
)


def reference(x, dim):
    return x.sum(dim) * 2


CASES = [
    Case((torch.arange(6.0, dtype=torch.float64).reshape(2, 3), 1)),
    Case((torch.ones(1, 4, dtype=torch.float64), 0)),
]
MISTAKES = [Mistake("you forgot to double", lambda x, dim: x.sum(dim))]


def check_double_sum(fn):
    compare("double_sum", fn, reference, CASES, arg_names=("x", "dim"), mistakes=MISTAKES)


def test_correct_answers_pass_with_one_line(capsys):
    assert_passes(check_double_sum, reference)
    assert_passes(check_double_sum, lambda x, dim: x.sum(dim) + x.sum(dim))
    assert capsys.readouterr().out.count("double_sum: 2/2 cases match") == 2


def test_not_implemented_is_its_own_message():
    def unfinished(x, dim):
        raise NotImplementedError()

    with pytest.raises(ExerciseNotStarted, match="not implemented yet"):
        check_double_sum(unfinished)
    assert issubclass(ExerciseNotStarted, NotImplementedError)


@pytest.mark.parametrize(
    "wrong, fragments",
    [
        (lambda x, dim: x.sum(dim).numpy() * 2, ["NumPy array", "torch tensor"]),
        (lambda x, dim: float(x.sum() * 2), ["Python float", "torch tensor"]),
        (lambda x, dim: "2", ["str", "expected a torch tensor"]),
        (lambda x, dim: x.sum(dim, keepdim=True) * 2, ["shape (2, 1)", "expected (2,)", "1/2"]),
        (lambda x, dim: (x.sum(dim) * 2).float(), ["dtype torch.float32", "torch.float64"]),
        (lambda x, dim: torch.empty(x.sum(dim).shape, dtype=x.dtype, device="meta"),
         ["device meta", "device=x.device"]),
        (lambda x, dim: x.sum(dim) * 2 / 0 * 0, ["contains nan", "input 1/2"]),
        (lambda x, dim: x.sum(dim), ["differs", "max abs difference", "Hint: you forgot"]),
        (lambda x, dim: x.sum(dim) * 3, ["differs", "input 1/2", "x: tensor (2, 3) float64"]),
    ],
)
def test_wrong_answers_get_specific_messages(wrong, fragments):
    assert_fails(check_double_sum, wrong, *fragments)


def test_a_students_exception_names_their_line_not_our_internals():
    def crashes(x, dim):
        y = x.reshape(5, 7)  # the student's bug
        return y

    message = assert_fails(check_double_sum, crashes, "raised RuntimeError", "x.reshape(5, 7)")
    assert "course_utils" not in message and "Traceback" not in message


def test_changing_an_input_in_place_is_reported():
    def in_place(x, dim):
        x.mul_(2)
        return x.sum(dim)

    assert_fails(check_double_sum, in_place, "changed its input `x` in place")


def test_passing_a_result_instead_of_the_function_is_explained():
    from course_utils.checks import core

    @core.exercise("00_welcome", name="_demo_exercise")
    def demo(fn):
        compare("_demo_exercise", fn, reference, CASES)

    try:
        assert_fails(demo, 3.0, "Pass the function itself")
    finally:
        core.REGISTRY.pop("_demo_exercise")


def test_failures_render_as_a_few_lines_without_traceback():
    with pytest.raises(CheckFailed) as err:
        check_double_sum(lambda x, dim: x.sum(dim))
    lines = err.value._render_traceback_()
    assert 1 < len(lines) <= 4
    assert "✗ double_sum" in lines[0]
    assert not any("File " in line for line in lines)


def test_checks_leave_the_global_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    check_double_sum(lambda x, dim: x.sum(dim) * 2 + 0 * torch.randn(1, dtype=x.dtype))
    assert torch.equal(torch.rand(3), expected)


def test_private_generator_is_stable_and_name_dependent():
    a = torch.randn(3, generator=private_generator("a"))
    assert torch.equal(a, torch.randn(3, generator=private_generator("a")))
    assert not torch.equal(a, torch.randn(3, generator=private_generator("b")))


def test_assert_fails_itself_fails_on_a_correct_answer():
    with pytest.raises(AssertionError, match="accepted a wrong answer"):
        assert_fails(check_double_sum, reference)
    with pytest.raises(AssertionError, match="lacks"):
        assert_fails(check_double_sum, lambda x, dim: x.sum(dim), "no such text")
    assert np is not None


def test_yours_or_reference_follows_the_check(capsys):
    from course_utils import check, numerics

    def mine(x, dim):
        return torch.logsumexp(x, dim)

    def wrong(x, dim):
        return x.exp().sum(dim).log() + 1

    check.logsumexp(mine)
    assert check.yours_or_reference("logsumexp", mine, numerics.logsumexp) is mine
    assert "using your logsumexp" in capsys.readouterr().out

    def mine_again(x, dim):  # redefined after the check: not the function that passed
        return torch.logsumexp(x, dim)
    chosen = check.yours_or_reference("logsumexp", mine_again, numerics.logsumexp)
    assert chosen is numerics.logsumexp
    assert "run the check again" in capsys.readouterr().out

    from course_utils.checks import CheckFailed
    with pytest.raises(CheckFailed):
        check.logsumexp(wrong)
    assert check.yours_or_reference("logsumexp", mine, numerics.logsumexp) is numerics.logsumexp
    assert "has not passed yet" in capsys.readouterr().out
    with pytest.raises(KeyError, match="no exercise called"):
        check.yours_or_reference("logsumexpp", mine, numerics.logsumexp)
