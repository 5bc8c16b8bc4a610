"""course_utils: reference models, data, plots, widgets and checks for the course.

Importing it changes one thing in Jupyter only: a NameError at a cell's top level (a check
run before its exercise cell) shows as two lines of advice instead of a traceback. Seeds and
everything else are left alone: notebooks call ``seed_everything`` themselves.
"""

from .device import fast_mode, get_device, seed_everything

__all__ = ["check", "fast_mode", "get_device", "seed_everything"]


def __getattr__(name: str):
    # ``check`` is imported on first use, so that ``python -m course_utils.data`` does not
    # import course_utils.data twice (runpy's "found in sys.modules" warning).
    if name == "check":
        from . import checks

        globals()["check"] = checks
        return checks
    raise AttributeError(f"module 'course_utils' has no attribute {name!r}")
