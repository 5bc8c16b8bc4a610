"""The machinery behind every exercise check: call the student's function, compare, explain.

A check calls the student's function on several inputs drawn from a private generator,
compares each output with the reference implementation, and either prints one pass line
(``logsumexp: 7/7 cases match ✓``) or raises a short, student-facing error. Errors render in
Jupyter as a few lines without a traceback through this package (IPython honours
``_render_traceback_``), so nbval and the student both see only the message.
"""

from __future__ import annotations

import functools
import os
import sys
import traceback
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

_RED, _GREEN, _BOLD, _RESET = "\x1b[31m", "\x1b[32m", "\x1b[1m", "\x1b[0m"
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --------------------------------------------------------------------------- exceptions


def _name_error_lines(shell, etype, value, tb, tb_offset=None) -> None:
    """IPython handler: show a NameError at a cell's top level (usually a check cell run before
    the exercise cell that defines the name) as two lines, any other as the usual traceback.

    IPython's run_code does not display what a custom handler returns, so it displays here."""
    frames = traceback.extract_tb(tb)
    if frames and frames[-1].name == "<module>":
        stb = [f"{_RED}{_BOLD}NameError{_RESET}{_RED}: {value}{_RESET}",
               "  Run the cell that defines it first (Run All Above runs every cell above "
               "this one), or check its spelling."]
    else:
        stb = shell.InteractiveTB.structured_traceback(etype, value, tb, tb_offset=tb_offset)
    shell._showtraceback(etype, value, stb)


def install_name_error_hint() -> None:
    """In IPython, show a top-level NameError as a short hint (see ``_name_error_lines``)."""
    try:
        from IPython import get_ipython
    except ImportError:  # plain Python: nothing to install
        return
    shell = get_ipython()
    if shell is not None and not shell.custom_exceptions:
        shell.set_custom_exc((NameError,), _name_error_lines)


class _StudentFacing:
    """Mixin: render as a few plain lines in Jupyter instead of a traceback."""

    exercise: str
    message: str

    def __str__(self) -> str:
        return f"{self.exercise}: {self.message}"

    def _render_traceback_(self) -> list[str]:
        first, *rest = self.message.splitlines() or [""]
        return [f"{_RED}{_BOLD}✗ {self.exercise}{_RESET}{_RED}: {first}{_RESET}"] + [
            f"  {line}" for line in rest
        ] + [f"  (stuck? check.hint(\"{self.exercise}\") gives a hint)"]


class CheckFailed(_StudentFacing, AssertionError):
    """The student's answer is wrong; the message says what differs and where."""

    def __init__(self, exercise: str, message: str):
        super().__init__(f"{exercise}: {message}")
        self.exercise, self.message = exercise, message


class ExerciseNotStarted(_StudentFacing, NotImplementedError):
    """The exercise body still raises NotImplementedError."""

    def __init__(self, exercise: str):
        message = (
            "not implemented yet. Replace `raise NotImplementedError()` in the exercise cell "
            "with your code, run that cell, then run this check again."
        )
        super().__init__(f"{exercise}: {message}")
        self.exercise, self.message = exercise, message


def fail(exercise: str, message: str) -> None:
    """Stop the check with a student-facing message (no traceback)."""
    raise CheckFailed(exercise, message) from None


def passed(exercise: str, n_cases: int, what: str = "cases match") -> None:
    """Print the one-line success message."""
    print(f"{exercise}: {n_cases}/{n_cases} {what} {_GREEN}✓{_RESET}")


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Exercise:
    """One exercise of the course: its name, its notebook (file stem), its check and hints."""

    name: str
    notebook: str
    check: Callable[[Callable], None]
    hints: tuple[str, ...] = ()  # from gentle to specific; none gives the code


REGISTRY: dict[str, Exercise] = {}
_PASSED: dict[str, Callable] = {}  # exercise -> the student's function that last passed its check
_ATTEMPTED: set[str] = set()  # exercises whose check ran on a started answer in this kernel
_HINTS_SHOWN: dict[str, int] = {}  # exercise -> how many hint levels have been shown


def exercise(notebook: str, name: str | None = None, hints: Sequence[str] = ()):
    """Register a check for the exercise of the same name in ``notebook`` (e.g. '00_welcome'),
    with its hints in order (``check.hint(name)`` shows the next one)."""

    def register(check_fn: Callable[[Callable], None]) -> Callable[[Callable], None]:
        exercise_name = name or check_fn.__name__
        if exercise_name in REGISTRY:
            raise ValueError(f"exercise {exercise_name!r} is registered twice")

        @functools.wraps(check_fn)
        def check(student_fn: Callable, *args: Any, **kwargs: Any) -> None:
            _PASSED.pop(exercise_name, None)
            _require_callable(exercise_name, student_fn)
            try:
                check_fn(student_fn, *args, **kwargs)
            except CheckFailed:
                _ATTEMPTED.add(exercise_name)
                raise
            _ATTEMPTED.add(exercise_name)
            _PASSED[exercise_name] = student_fn

        REGISTRY[exercise_name] = Exercise(exercise_name, notebook, check, tuple(hints))
        return check

    return register


def _registered(name: Any) -> Exercise:
    if not isinstance(name, str) or name not in REGISTRY:
        raise KeyError(f"there is no exercise called {name!r}; the exercises are: "
                       f"{', '.join(REGISTRY)}") from None
    return REGISTRY[name]


def hint(name: str, level: int | None = None) -> str:
    """Print the next hint for exercise ``name`` (or hint number ``level``) and return it."""
    hints = _registered(name).hints
    if level is None:
        level = min(_HINTS_SHOWN.get(name, 0) + 1, len(hints) + 1)
    if isinstance(level, bool) or not isinstance(level, int) or level < 1:
        raise ValueError(f"level must be 1, 2, ... (the hint number), got {level!r}")
    _HINTS_SHOWN[name] = max(_HINTS_SHOWN.get(name, 0), min(level, len(hints)))
    if level > len(hints):
        text = (f"{name}: no more hints (there are {len(hints)}). "
                f"check.solution(\"{name}\") shows the solution.")
    else:
        more = (f"check.hint(\"{name}\") again for the next one" if level < len(hints)
                else f"the last one; check.solution(\"{name}\") shows the solution")
        text = f"{name}, hint {level} of {len(hints)}: {hints[level - 1]}\n({more})"
    print(text)
    return text


def solution_source(name: str, solutions_dir: str | os.PathLike | None = None) -> str:
    """The reference body of exercise ``name``, read from its notebook in ``solutions/``."""
    import json
    from pathlib import Path

    from ..authoring import ROOT

    entry = _registered(name)
    path = Path(solutions_dir or ROOT / "solutions") / f"{entry.notebook}.ipynb"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the solutions come with the course's "
                                f"repository (git clone it to see them)")
    for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "code" and f"def {name}(" in source and "### BEGIN SOLUTION" \
                in source:
            lines = [line for line in source.splitlines()
                     if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION")]
            return "\n".join(lines)
    raise LookupError(f"no solution cell defines {name} in {path}")


def solution(name: str) -> str | None:
    """Show the reference solution of ``name``, once you have tried (a check run on your
    answer, or every hint read); returns it."""
    entry = _registered(name)
    if name not in _ATTEMPTED and _HINTS_SHOWN.get(name, 0) < len(entry.hints):
        print(f"{name}: try it first. Write your answer and run check.{name}({name}) (or read "
              f"every hint with check.hint(\"{name}\")); then check.solution(\"{name}\") "
              f"shows the solution.")
        return None
    source = solution_source(name)
    print(f"{name}, the solution of solutions/{entry.notebook}.ipynb:\n\n{source}")
    return source


def yours_or_reference(name: str, yours: Any, reference: Callable) -> Callable:
    """The student's function if its check passed in this kernel (that very function, not an
    edited one), else the reference; prints one line saying which is used and why."""
    if name not in REGISTRY:
        raise KeyError(f"there is no exercise called {name!r}; the exercises are: "
                       f"{', '.join(REGISTRY)}")
    passed_fn = _PASSED.get(name)
    if passed_fn is not None and passed_fn is yours:
        print(f"using your {name} (its check passed)")
        return yours
    if passed_fn is not None:
        reason = "you redefined it after its check passed: run the check again"
    else:
        reason = "its check has not passed yet in this session"
    print(f"using the reference {name} ({reason})")
    return reference


def _require_callable(name: str, student_fn: Any) -> None:
    if not callable(student_fn):
        fail(
            name,
            f"expected your function, got {type(student_fn).__name__}. Pass the function "
            f"itself, without calling it: check.{name}({name}).",
        )


# --------------------------------------------------------------------------- inputs


def private_generator(name: str, salt: int = 0) -> torch.Generator:
    """A CPU generator seeded from the exercise name: checks never touch the global RNG."""
    return torch.Generator().manual_seed(zlib.crc32(name.encode()) + salt)


def randn(g: torch.Generator, *shape: int, scale: float = 1.0, shift: float = 0.0,
          dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """shift + scale * N(0, 1) of the given shape from generator g (drawn in float64, so every
    dtype gets the same numbers)."""
    return (shift + scale * torch.randn(*shape, generator=g, dtype=torch.float64)).to(dtype)


@dataclass
class Case:
    """One input to an exercise: positional and keyword arguments and a label for messages."""

    args: tuple
    kwargs: dict = field(default_factory=dict)
    label: str | None = None

    def describe(self, arg_names: Sequence[str] = ()) -> str:
        """A short human description of the inputs, e.g. "x: (3, 5) float64 in [-2, 3]"."""
        if self.label:
            return self.label
        names = list(arg_names) + [f"arg{i}" for i in range(len(arg_names), len(self.args))]
        for ranges in (True, False):  # shorter without the value ranges
            parts = [f"{n}: {_short(describe_value(v, ranges))}"
                     for n, v in zip(names, self.args, strict=False)]
            parts += [f"{k}={_short(describe_value(v, ranges))}" for k, v in self.kwargs.items()]
            text = "; ".join(parts)
            if len(text) <= _DESCRIPTION_WIDTH:
                break
        limit = 2 * _DESCRIPTION_WIDTH
        return text if len(text) <= limit else text[:limit - 1] + "…"


def _short(text: str, width: int = 40) -> str:
    """One argument's description, cut to width (a model's repr is many lines)."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1] + "…"


_ERROR_LINES = 6  # lines of a torch error shown beyond its first
_DESCRIPTION_WIDTH = 90  # an input described in one short line


def describe_value(value: Any, ranges: bool = True) -> str:
    """'(3, 5) float64 in [-2.1, 3.4]' for tensors, repr for small things."""
    if isinstance(value, torch.Tensor):
        shape = tuple(value.shape)
        dtype = str(value.dtype).replace("torch.", "")
        if value.numel() == 0 or value.dtype == torch.bool:
            return f"tensor {shape} {dtype}"
        if not ranges:
            return f"{shape} {dtype}"
        lo, hi = value.min().item(), value.max().item()
        return f"tensor {shape} {dtype} in [{lo:.3g}, {hi:.3g}]"
    if isinstance(value, (list, tuple)) and len(value) > 4:
        return f"{type(value).__name__} of length {len(value)}"
    return repr(value)


# --------------------------------------------------------------------------- calling


def _clone(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().clone().requires_grad_(value.requires_grad)
    if isinstance(value, (list, tuple)):
        return type(value)(_clone(v) for v in value)
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    return value


def _changed(before: Any, after: Any) -> bool:
    """True if the student's function modified an input tensor in place."""
    if isinstance(before, torch.Tensor):
        after = after.detach()
        if before.shape != after.shape or before.dtype != after.dtype:
            return True
        if before.is_floating_point() or before.is_complex():
            return not torch.allclose(before.detach(), after, rtol=0, atol=0, equal_nan=True)
        return not torch.equal(before.detach(), after)
    if isinstance(before, (list, tuple)):
        return any(_changed(b, a) for b, a in zip(before, after, strict=False))
    return False


def _is_library_frame(filename: str) -> bool:
    return (
        filename.startswith(_PACKAGE_DIR)
        or "site-packages" in filename
        or filename.startswith(sys.prefix)
        or filename.startswith(sys.base_prefix)
    )


def _student_line(tb) -> str:
    """'line 4: `return x.exp().sum().log()`' for the deepest frame in the student's code."""
    frames = [f for f in traceback.extract_tb(tb) if not _is_library_frame(f.filename)]
    if not frames:
        return ""
    frame = frames[-1]
    code = f": `{frame.line.strip()}`" if frame.line else ""
    return f"line {frame.lineno}{code}"


def call_student(
    name: str, student_fn: Callable, case: Case, arg_names: Sequence[str] = (), seed: int = 0,
    inputs: tuple[tuple, dict] | None = None,
) -> Any:
    """Call the student's function on a copy of the case's inputs, turning errors into messages.

    Randomness inside the student's function is seeded and isolated with ``fork_rng`` so the
    student's own random state is left untouched. ``inputs``: (args, kwargs) to use instead of
    fresh copies (the gradient check keeps them to differentiate with respect to them).
    """
    args, kwargs = inputs if inputs is not None else (_clone(case.args), _clone(case.kwargs))
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            out = student_fn(*args, **kwargs)
    except NotImplementedError:
        raise ExerciseNotStarted(name) from None
    except Exception as err:  # the student's own error: show where, not our internals
        where = _student_line(err.__traceback__)
        first, *rest = [line for line in str(err).strip().splitlines() if line.strip()] or [""]
        more = "".join(f"\n  {line.strip()}" for line in rest[:_ERROR_LINES])
        if len(rest) > _ERROR_LINES:
            more += f"\n  ... ({len(rest) - _ERROR_LINES} more lines)"
        fail(
            name,
            f"your function raised {type(err).__name__}: {first}{more}\n"
            + (f"at {where}\n" if where else "")
            + f"on input ({case.describe(arg_names)})",
        )
    for i, (before, after) in enumerate(zip(case.args, args, strict=False)):
        if _changed(before, after):
            arg = arg_names[i] if i < len(arg_names) else f"argument {i}"
            fail(name, f"your function changed its input `{arg}` in place; work on a copy.")
    return out


# --------------------------------------------------------------------------- comparing


def _as_tuple(value: Any, n: int) -> tuple:
    return tuple(value) if n > 1 else (value,)


def check_type(name: str, out: Any, expected: Any, where: str) -> None:
    """Fail with a specific message if ``out`` is not the kind of object ``expected`` is."""
    if isinstance(expected, torch.Tensor):
        if isinstance(out, np.ndarray):
            fail(
                name,
                f"{where} is a NumPy array; return a torch tensor (use torch operations, "
                "not NumPy, so the computation can run on a GPU and be differentiated).",
            )
        if isinstance(out, (float, int)) and not isinstance(out, bool):
            fail(
                name,
                f"{where} is a Python {type(out).__name__}; return a torch tensor "
                "(avoid .item() and float(...), which cut the computation graph).",
            )
        if not isinstance(out, torch.Tensor):
            fail(name, f"{where} is a {type(out).__name__}; expected a torch tensor.")
    elif isinstance(expected, (tuple, list)):
        if not isinstance(out, (tuple, list)) or len(out) != len(expected):
            got = f"a {type(out).__name__}" + (
                f" of length {len(out)}" if isinstance(out, (tuple, list)) else ""
            )
            fail(name, f"{where} should be a tuple of {len(expected)} values; got {got}.")


def check_tensor_like(
    name: str, out: torch.Tensor, expected: torch.Tensor, where: str, on: str = ""
) -> None:
    """Fail on a shape, dtype or device that differs from the reference output."""
    on = f" {on}" if on else ""
    if out.shape != expected.shape:
        fail(name, f"{where} has shape {tuple(out.shape)}, expected {tuple(expected.shape)}{on}.")
    if out.dtype != expected.dtype:
        fail(
            name,
            f"{where} has dtype {out.dtype}, expected {expected.dtype}{on}.\nNew tensors should "
            "follow their inputs, e.g. torch.zeros(..., dtype=x.dtype, device=x.device).",
        )
    if out.device != expected.device:
        fail(
            name,
            f"{where} is on device {out.device}, expected {expected.device}{on}.\nCreate new "
            "tensors where the inputs are (device=x.device), never with .cuda().",
        )


@dataclass(frozen=True)
class Mistake:
    """A known wrong answer: a function that reproduces it and the hint that names it."""

    hint: str
    fn: Callable


def _close(a: Any, b: Any, rtol: float, atol: float) -> bool:
    if isinstance(b, (tuple, list)):
        return (
            isinstance(a, (tuple, list))
            and len(a) == len(b)
            and all(_close(x, y, rtol, atol) for x, y in zip(a, b, strict=True))
        )
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor):
        return False
    if a.shape != b.shape:
        return False
    a, b = a.detach().cpu(), b.detach().cpu()
    if a.dtype != b.dtype:
        a, b = a.double(), b.double()
    return bool(torch.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True))


def _matching_mistake(out: Any, case: Case, mistakes: Sequence[Mistake], rtol, atol) -> str:
    for mistake in mistakes:
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                wrong = mistake.fn(*_clone(case.args), **_clone(case.kwargs))
        except Exception:  # a mistake that cannot run on this input does not match it
            continue
        if _close(out, wrong, rtol, atol):
            return mistake.hint
    return ""


def _difference(out: torch.Tensor, expected: torch.Tensor, rtol: float, atol: float) -> str:
    out, expected = out.detach().cpu().double(), expected.detach().cpu().double()
    bad = ~torch.isclose(out, expected, rtol=rtol, atol=atol, equal_nan=True)
    diff = (out - expected).abs().nan_to_num(nan=float("inf"))
    where = ""
    if out.ndim > 0:
        index = tuple(int(i) for i in np.unravel_index(int(diff.argmax()), tuple(out.shape)))
        where = f" at index {index}"
    return (
        f"max abs difference {diff.max().item():.3g}{where}; "
        f"{int(bad.sum())} of {out.numel()} entries differ"
    )


def compare_output(
    name: str,
    out: Any,
    expected: Any,
    case: Case,
    *,
    arg_names: Sequence[str] = (),
    output_names: Sequence[str] = (),
    mistakes: Sequence[Mistake] = (),
    rtol: float = 1e-5,
    atol: float = 1e-6,
    position: str = "",
) -> None:
    """Fail with a diagnosis if the student's ``out`` differs from ``expected`` on ``case``."""
    n = len(expected) if isinstance(expected, (tuple, list)) else 1
    on = f"on input {position}({case.describe(arg_names)})"
    check_type(name, out, expected, "your output")
    hint = ""
    for i, (got, want) in enumerate(zip(_as_tuple(out, n), _as_tuple(expected, n), strict=True)):
        what = f"`{output_names[i]}`" if i < len(output_names) else (
            f"output {i}" if n > 1 else "your output"
        )
        check_type(name, got, want, what)
        if not isinstance(want, torch.Tensor):
            continue
        problem = ""
        if got.shape != want.shape:
            problem = f"{what} has shape {tuple(got.shape)}, expected {tuple(want.shape)} {on}"
        elif got.dtype != want.dtype or got.device != want.device:
            check_tensor_like(name, got, want, what, on)
        elif not torch.isfinite(got).all() and torch.isfinite(want).all():
            kind = "nan" if torch.isnan(got).any() else "inf"
            count = int((~torch.isfinite(got)).sum())
            problem = f"{what} contains {kind} ({count} of {got.numel()} entries) {on}"
        elif not _close(got, want, rtol, atol):
            problem = f"{what} differs {on}\n{_difference(got, want, rtol, atol)}"
        if problem:
            hint = _matching_mistake(out, case, mistakes, rtol, atol)
            fail(name, problem + (f"\nHint: {hint}" if hint else ""))


def compare(
    name: str,
    student_fn: Callable,
    reference_fn: Callable,
    cases: Sequence[Case],
    *,
    arg_names: Sequence[str] = (),
    output_names: Sequence[str] = (),
    mistakes: Sequence[Mistake] = (),
    rtol: float = 1e-5,
    atol: float = 1e-6,
    gradients: bool | str = True,
) -> None:
    """Run the student's function on every case, compare with the reference, print a pass line.

    ``gradients``: once the values are right, check on the first case that gradients reach
    the inputs as they do through the reference (skipped where the reference's output has no
    graph); "connected" only checks that they reach every input; False skips it."""
    for i, case in enumerate(cases):
        out = call_student(name, student_fn, case, arg_names)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            expected = reference_fn(*_clone(case.args), **_clone(case.kwargs))
        compare_output(
            name,
            out,
            expected,
            case,
            arg_names=arg_names,
            output_names=output_names,
            mistakes=mistakes,
            rtol=rtol,
            atol=atol,
            position=f"{i + 1}/{len(cases)} ",
        )
    if gradients and cases:
        check_gradients(name, student_fn, reference_fn, cases[0], arg_names=arg_names,
                        output_names=output_names, compare_values=gradients is True)
    passed(name, len(cases))


# --------------------------------------------------------------------------- gradients

_GRADIENT_CAUSES = ("Something cut the computation graph: `.detach()`, a `torch.no_grad()` "
                    "block, `.item()`/`float(...)`, or re-wrapping a value with `torch.tensor(...)`"
                    ". A loss without its graph trains nothing.")


def _tensor_leaves(value: Any, prefix: str = "") -> list[tuple[str, torch.Tensor]]:
    """(label, tensor) for every tensor in a nested output (tuple, list or dict)."""
    if isinstance(value, torch.Tensor):
        return [(prefix, value)]
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in _tensor_leaves(v, f"{prefix}[{k!r}]")]
    if isinstance(value, (tuple, list)):
        return [leaf for i, v in enumerate(value) for leaf in _tensor_leaves(v, f"{prefix}[{i}]")]
    return []


def _differentiable_inputs(args: tuple, arg_names: Sequence[str]) -> list[tuple[str, list]]:
    """(`name`, [tensors]) for each float tensor argument (made to require grad) and each
    module argument (its parameters)."""
    out = []
    for i, arg in enumerate(args):
        label = f"`{arg_names[i]}`" if i < len(arg_names) else f"argument {i}"
        if isinstance(arg, torch.Tensor) and arg.is_floating_point():
            arg.requires_grad_(True)
            out.append((label, [arg]))
        elif isinstance(arg, torch.nn.Module):
            params = [p for p in arg.parameters() if p.requires_grad]
            if params:
                out.append((f"the parameters of {label}", params))
    return out


def _with_grad_inputs(case: Case, arg_names: Sequence[str]):
    args, kwargs = _clone(case.args), _clone(case.kwargs)
    return (args, kwargs), _differentiable_inputs(args, arg_names)


def _gradients(outputs: list[torch.Tensor], weights: list[torch.Tensor], inputs) -> list:
    """d(Σ_o <w_o, o>)/d input for each input group (None where no gradient reaches it)."""
    total = sum((o * w).sum() for o, w in zip(outputs, weights, strict=True))
    flat = [t for _, group in inputs for t in group]
    grads = torch.autograd.grad(total, flat, allow_unused=True)
    out, start = [], 0
    for _, group in inputs:
        out.append(grads[start:start + len(group)])
        start += len(group)
    return out


def check_gradients(name: str, student_fn: Callable, reference_fn: Callable, case: Case, *,
                    arg_names: Sequence[str] = (), output_names: Sequence[str] = (),
                    rtol: float = 1e-4, atol: float = 1e-6, compare_values: bool = True) -> None:
    """Fail if the gradients of the student's output do not reach the inputs the way the
    reference's do (an output cut from the graph, or part of it detached). Run it on an answer
    whose values are right. ``compare_values=False`` only checks that gradients reach every
    input (for inputs such as covariances or mixture weights, where valid answers may differ
    in the gradient off their constraint set)."""
    (ref_args, ref_kwargs), ref_inputs = _with_grad_inputs(case, arg_names)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        expected = reference_fn(*ref_args, **ref_kwargs)
    wanted = [(label, t) for label, t in _tensor_leaves(expected)
              if t.is_floating_point() and t.requires_grad]
    if not wanted or not ref_inputs:
        return
    student_inputs, inputs = _with_grad_inputs(case, arg_names)
    out = call_student(name, student_fn, case, arg_names, inputs=student_inputs)
    got = dict(_tensor_leaves(out))
    pairs = []
    for label, want in wanted:
        mine = got.get(label)
        if (not isinstance(mine, torch.Tensor) or mine.shape != want.shape
                or mine.dtype != want.dtype or mine.device != want.device):
            return  # the value comparison explains type, shape, dtype and device problems
        what = _output_label(label, output_names, len(wanted))
        if not mine.requires_grad:
            fail(name, f"{what} is not connected to the inputs: no gradient can flow back "
                 f"through it.\n{_GRADIENT_CAUSES}")
        pairs.append((mine, want))
    if not all(_close(m.detach(), w.detach(), 1e-5, 1e-6) for m, w in pairs):
        return  # wrong values: the value comparison names the mistake
    g = private_generator(name, salt=7)
    weights = [torch.randn(w.shape, generator=g, dtype=torch.float64).to(w) for _, w in pairs]
    mine_grads = _gradients([m for m, _ in pairs], weights, inputs)
    want_grads = _gradients([w for _, w in pairs], weights, ref_inputs)
    for (label, _), mine, want in zip(inputs, mine_grads, want_grads, strict=True):
        for m, w in zip(mine, want, strict=True):
            if w is None or not torch.any(w != 0):
                continue
            if m is None:
                fail(name, f"no gradient reaches {label} through your output.\n"
                     f"{_GRADIENT_CAUSES}")
            if compare_values and not _close(m, w, rtol, max(atol, 1e-6 * float(w.abs().max()))):
                fail(name, f"your output has the right values, but its gradient with respect to "
                     f"{label} is wrong: part of the computation is cut from the graph or "
                     "not differentiable (`.detach()`, `.data`, in-place edits, rounding).")


def _as_parts(fn: Callable, keys: Sequence[str]) -> Callable:
    """fn returning a dict -> a function returning the tuple of its values at ``keys``."""
    @functools.wraps(fn)
    def parts(*args, **kwargs):
        out = fn(*args, **kwargs)
        return tuple(out[k] for k in keys) if isinstance(out, dict) else out
    return parts


def _output_label(label: str, output_names: Sequence[str], n: int) -> str:
    """'`log_det`' for the second of named outputs, 'your output' for a single one."""
    if n == 1 and label in ("", "[0]"):
        return "your output"
    if label.startswith("[") and label[1:-1].isdigit():
        i = int(label[1:-1])
        return f"`{output_names[i]}`" if i < len(output_names) else f"output {i}"
    return f"your output{label}" if label else "your output"


# --------------------------------------------------------------------------- for tests


def assert_passes(check: Callable, student_fn: Callable, capsys=None) -> None:
    """Assert that ``check`` accepts ``student_fn`` (use in tests)."""
    try:
        check(student_fn)
    except (CheckFailed, ExerciseNotStarted) as err:
        raise AssertionError(f"check rejected a correct answer: {err}") from None


def assert_fails(check: Callable, student_fn: Callable, *fragments: str) -> str:
    """Assert that ``check`` rejects ``student_fn`` with a message containing every fragment."""
    try:
        check(student_fn)
    except (CheckFailed, ExerciseNotStarted) as err:
        message = str(err)
    else:
        raise AssertionError("check accepted a wrong answer")
    missing = [f for f in fragments if f.lower() not in message.lower()]
    assert not missing, f"message lacks {missing}:\n{message}"
    assert len(message.splitlines()) <= 6, f"message too long for a student:\n{message}"
    return message
