"""Checks for this part's exercises (filled in by the part that owns them)."""
