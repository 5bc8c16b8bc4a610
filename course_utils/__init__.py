"""course_utils: reference models, data, plots, widgets and checks for the course.

Importing it changes nothing global: notebooks call ``seed_everything`` themselves.
"""

from . import checks as check
from .device import fast_mode, get_device, seed_everything

__all__ = ["check", "fast_mode", "get_device", "seed_everything"]
