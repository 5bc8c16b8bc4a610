"""course_utils: reference models, data, plots, widgets and checks for the course.

Importing it changes one thing in Jupyter only: a NameError at a cell's top level (a check
run before its exercise cell) shows as two lines of advice instead of a traceback. Seeds and
everything else are left alone: notebooks call ``seed_everything`` themselves.
"""

from . import checks as check
from .device import fast_mode, get_device, seed_everything

__all__ = ["check", "fast_mode", "get_device", "seed_everything"]
