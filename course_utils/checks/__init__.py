"""Exercise checks: ``check.<exercise>(student_fn)`` prints a pass line or explains the mistake.

Each topic module registers its checks with ``@exercise(notebook)``; this package looks them
up by name, so ``from course_utils import check`` then ``check.logsumexp(logsumexp)`` works;
``check.hint("logsumexp")`` gives the next hint and ``check.solution("logsumexp")``, after a try,
the reference solution from ``solutions/``.
"""

from . import beta_vae, cvae, flows, gmm, iwae, ssvae, vae, vi, welcome  # noqa: F401  (register)
from .core import (
    REGISTRY,
    CheckFailed,
    Exercise,
    ExerciseNotStarted,
    hint,
    install_name_error_hint,
    solution,
    yours_or_reference,
)

install_name_error_hint()  # in Jupyter: "run the cell that defines it first", not a traceback

__all__ = ["REGISTRY", "CheckFailed", "Exercise", "ExerciseNotStarted", "exercises", "hint",
           "solution", "yours_or_reference"]


def exercises(notebook: str | None = None) -> list[Exercise]:
    """Every registered exercise, or those of one notebook (file stem), in registration order."""
    return [e for e in REGISTRY.values() if notebook is None or e.notebook == notebook]


def __getattr__(name: str):
    if name in REGISTRY:
        return REGISTRY[name].check
    raise AttributeError(
        f"there is no check called {name!r}; the exercises are: {', '.join(REGISTRY)}"
    )


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(REGISTRY))
