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


def test_write_results_keeps_the_notes_under_the_table(tmp_path, time_notebooks):
    results = tmp_path / "RESULTS.md"
    row = time_notebooks.table_row("00_welcome", 12.0, 30.0, False)
    results.write_text("# Benchmark results\n\n## Notebook run times\n\nold intro\n\n"
                       f"{time_notebooks.HEADER}\n{time_notebooks.RULE}\n{row}\n\n"
                       "2026-12-03: 06 was cut.\nSecond line.\n\n## GMM\n\nkeep me\n")
    more = {"01_x": time_notebooks.table_row("01_x", 5.0, 9.0, False)}
    time_notebooks.write_results(results, more, keep={"00_welcome"}, command="make bench")
    text = results.read_text()
    assert "old intro" not in text and "| 01_x | 5.0 |" in text
    assert "| 01_x | 5.0 | 9.0 | ✓ |" in text.split("2026-12-03")[0]  # the table, then the notes
    assert "\n\n2026-12-03: 06 was cut.\nSecond line.\n\n## GMM\n\nkeep me\n" in text


@pytest.fixture
def bench_disentangle(load_benchmark):
    return load_benchmark("bench_disentangle")


def test_the_notebook_preset_sets_notebook_06s_settings(bench_disentangle):
    args = bench_disentangle.parse_args(["--preset", "notebook"])
    assert args.world == "simple" and args.capacity == 8.0 and args.gamma == 50.0
    assert args.capacity_epochs == 20 and args.batch_size == 32 and args.lr == 2e-3
    assert len(args.seeds.split(",")) >= 5  # the issue asks for at least 5 seeds
    plain = bench_disentangle.parse_args([])
    assert plain.world == "full" and plain.capacity is None


def test_a_tiny_capacity_run_reports_its_mig(bench_disentangle):
    args = vars(bench_disentangle.parse_args(["--preset", "notebook"]))
    args.update(n_train=64, n_eval=200, capacity_epochs=1, epochs=1)
    job = {"beta": bench_disentangle.capacity_label(8.0), "seed": 0, "capacity": 8.0,
           "threads": 1, "args": args}
    result = bench_disentangle.run_one(job)
    assert result["beta"] == "C=8" and result["epochs"] == 1
    assert 0 <= result["mig"] <= 1 and len(result["kl_per_dim"]) == 10
    summary = bench_disentangle.summarize([result, {**result, "seed": 1}], ["C=8"])
    assert summary["C=8"]["migs"] == [result["mig"]] * 2


BENCHMARKS_THAT_TRAIN = ("bench_beyond", "bench_disentangle", "bench_gmm", "bench_ssvae",
                         "bench_vae", "reproduce_iwae")


@pytest.mark.parametrize("name", BENCHMARKS_THAT_TRAIN)
def test_every_benchmark_takes_a_device(name):
    from pathlib import Path

    source = (Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py").read_text()
    assert '"--device"' in source, f"benchmarks/{name}.py has no --device option"


def test_bench_gmm_runs_on_the_chosen_device_and_refuses_mps(load_benchmark, capsys):
    bench = load_benchmark("bench_gmm")
    bench.main(["--quick", "--device", "cpu", "--threads", "1"])
    assert "ours on cpu" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        bench.main(["--quick", "--device", "mps"])
    assert "MPS does not support" in capsys.readouterr().err


def test_bench_beyond_smoke_run_on_the_chosen_device(load_benchmark, tmp_path, one_thread):
    import json

    bench = load_benchmark("bench_beyond")
    out = tmp_path / "beyond.json"
    bench.main(["--seeds", "0", "--epochs", "1", "--k", "5", "--flow-steps", "3",
                "--device", "cpu", "--out", str(out)])
    result = json.loads(out.read_text())
    assert result["settings"]["device"] == "cpu"
    assert set(result["vae"]) == set(bench.MODELS)
