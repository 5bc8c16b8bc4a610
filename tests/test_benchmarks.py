"""The notebook timer rewrites only its own section of RESULTS.md and judges budgets right."""

import pytest


@pytest.fixture
def time_notebooks(load_benchmark):
    return load_benchmark("time_notebooks")


def test_budgets(time_notebooks):
    assert time_notebooks.budget_ok(30.0, 170.0, failed=False) == "✓"
    assert time_notebooks.budget_ok(46.0, 10.0, failed=False) == "✗"
    assert time_notebooks.budget_ok(None, 181.0, failed=False) == "✗"
    assert time_notebooks.budget_ok(1.0, 1.0, failed=True).startswith("✗")


def test_write_results_replaces_only_its_section(tmp_path, time_notebooks):
    results = tmp_path / "RESULTS.md"
    results.write_text(
        "# Benchmark results\n\n## Notebook run times\n\nold text\n\n## GMM\n\nkeep me\n"
    )
    rows = {"00_welcome": time_notebooks.table_row("00_welcome", 12.0, 30.0, False)}
    time_notebooks.write_results(results, rows, keep=set(), command="make bench")
    text = results.read_text()
    assert "old text" not in text and "## GMM\n\nkeep me\n" in text
    assert "| 00_welcome | 12.0 | 30.0 | ✓ |" in text

    more = {"01_x": time_notebooks.table_row("01_x", 50.0, None, False)}
    time_notebooks.write_results(results, more, keep={"00_welcome"}, command="make bench")
    text = results.read_text()
    assert "| 00_welcome | 12.0 |" in text and "| 01_x | 50.0 |" in text and "| ✗ |" in text
