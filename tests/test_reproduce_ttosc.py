"""jaxcpn reproduce-ttosc (scripts/reproduce_ttosc.py): a tiny --quick run writes every CSV and PNG; bad flags are named."""

from __future__ import annotations

import csv
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from agents import outputs
from conftest import subprocess_env  # LLVM optimisation off and the shared cache: this test is compile-bound

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "reproduce_ttosc.py"
METHODS = ("TTOSC", "Popularity", "Bound")
# One shape (M = 2, K = 3), two methods and the lower bound, two seeds, two points per Fig. 6 panel: the run is
# dominated by XLA compilation, so the subprocess compiles with LLVM optimisation off.
ARGS = ["--quick", "--cells", "2", "--services", "3", "--methods", *METHODS, "--num-seeds", "2",
        "--fig6-points", "2", "--bound-workers", "2"]  # the bound's frames in a pool (test_bounds: same values)


def read_rows(path: Path) -> tuple[list[str], list[dict]]:
    with path.open() as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames), list(reader)


def assert_finite(rows: list[dict], columns: tuple[str, ...]) -> None:
    for row in rows:
        for column in columns:
            assert math.isfinite(float(row[column])), (column, row)


# One xdist worker runs the module (--dist loadgroup, pyproject.toml): its fixture is built once.
pytestmark = pytest.mark.xdist_group("reproduce-ttosc")


def assert_bound_below_every_method(rows: list[dict], point: tuple[str, ...]) -> None:
    """At every point and seed, the lower bound (same episodes) is below every method's delay."""
    bound = {tuple(r[k] for k in point): float(r["mean_delay_s"]) for r in rows if r["method"] == "Bound"}
    others = [r for r in rows if r["method"] != "Bound"]
    assert bound and others and len(bound) * (len(METHODS) - 1) == len(others)
    for r in others:
        assert bound[tuple(r[k] for k in point)] <= float(r["mean_delay_s"]) * (1 + 1e-6), r


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("ttosc_figures")
    result = subprocess.run([sys.executable, str(SCRIPT), *ARGS, "--out", str(out), "--run-dir", str(out / "run")],
                            cwd=ROOT, env=subprocess_env(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result.stdout


@pytest.mark.timeout(320)
def test_quick_run_writes_every_figure(quick_run):
    out, stdout = quick_run
    seeds, shape = 2, ("2", "3")
    for name in ("ttosc_fig4_convergence", "ttosc_fig5_delay", "ttosc_fig6_delay"):
        assert (out / f"{name}.png").stat().st_size > 1000
        assert str(out / f"{name}.csv") in stdout and str(out / f"{name}.png") in stdout
    assert "total wall time" in stdout

    # Fig. 4: quick DDQN = 4 episodes over 2 envs -> 2 points per seed, in both panels.
    header, rows = read_rows(out / "ttosc_fig4_convergence.csv")
    assert header == ["panel", "num_cells", "num_services", "seed", "episode", "reward", "reward_smoothed"]
    assert len(rows) == 2 * seeds * 2
    assert {r["panel"] for r in rows} == {"cells", "services"}
    assert {(r["num_cells"], r["num_services"]) for r in rows} == {shape}
    assert sorted({int(r["episode"]) for r in rows}) == [2, 4]
    assert_finite(rows, ("reward", "reward_smoothed"))
    first = [r for r in rows if r["panel"] == "cells" and r["seed"] == "0"]
    assert float(first[0]["reward_smoothed"]) == pytest.approx(float(first[0]["reward"]), rel=1e-5)
    # ... and where each curve (seeds and their mean) covers 95% of its rise
    header, summary = read_rows(out / "ttosc_fig4_convergence_episodes.csv")
    assert header == ["panel", "num_cells", "num_services", "seed", "first_smoothed", "final_smoothed",
                      "episodes_to_95pct_of_rise"]
    assert [r["seed"] for r in summary] == ["0", "1", "mean"] * 2
    for r in summary:
        rose = float(r["final_smoothed"]) > float(r["first_smoothed"])
        assert (r["episodes_to_95pct_of_rise"] in ("2", "4", "2.0", "4.0")) if rose else r["episodes_to_95pct_of_rise"] == ""

    # Fig. 5: one shape in both panels x methods x seeds; delays positive.
    header, rows = read_rows(out / "ttosc_fig5_delay.csv")
    assert header == ["panel", "num_cells", "num_services", "x", "method", "seed", "mean_delay_s"]
    assert len(rows) == 2 * len(METHODS) * seeds
    assert {r["method"] for r in rows} == set(METHODS)
    assert {r["x"] for r in rows if r["panel"] == "cells"} == {"2"}
    assert {r["x"] for r in rows if r["panel"] == "services"} == {"3"}
    assert_finite(rows, ("mean_delay_s",))
    assert all(float(r["mean_delay_s"]) > 0 for r in rows)
    assert_bound_below_every_method(rows, ("panel", "x", "seed"))
    from agents.ttosc.figures import read_fig5   # the CSV read back as the job holds it: {(M, K): {method: (1, S)}}

    read = read_fig5(out / "ttosc_fig5_delay.csv")
    assert list(read) == [(2, 3)] and set(read[(2, 3)]) == set(METHODS)
    for r in rows:
        assert read[(2, 3)][r["method"]].shape == (1, seeds)
        assert read[(2, 3)][r["method"]][0, int(r["seed"])] == float(r["mean_delay_s"])

    # Fig. 6: the requested x values of the quick scale's first two points per panel.
    header, rows = read_rows(out / "ttosc_fig6_delay.csv")
    assert header == ["panel", "x", "method", "seed", "mean_delay_s", "agents_trained", "train_s"]
    expected = {"zipf_exponent": [0.8, 1.6], "users_per_cell": [15.0, 30.0], "es_cpu_ghz": [25.0, 100.0],
                "storage_units": [10.0, 40.0]}
    assert len(rows) == sum(len(v) for v in expected.values()) * len(METHODS) * seeds
    for panel, xs in expected.items():
        assert sorted({float(r["x"]) for r in rows if r["panel"] == panel}) == pytest.approx(xs)
    assert {r["agents_trained"] for r in rows} == {"default-instance"}
    assert {r["train_s"] for r in rows} == {""}  # not trained per point
    assert_finite(rows, ("x", "mean_delay_s"))
    assert all(float(r["mean_delay_s"]) > 0 for r in rows)
    assert_bound_below_every_method(rows, ("panel", "x", "seed"))
    # More ES CPU can only shorten the ES compute delays of the same deployments (Popularity,
    # same episodes): eq. (4)'s c_k L / F_{n,k} falls with F, the cloud term is unchanged.
    popularity = {(float(r["x"]), r["seed"]): float(r["mean_delay_s"]) for r in rows
                  if r["panel"] == "es_cpu_ghz" and r["method"] == "Popularity"}
    for seed in ("0", "1"):
        assert popularity[(100.0, seed)] < popularity[(25.0, seed)]

    # Running time: one shape, two decisions, positive times next to the paper's.
    header, rows = read_rows(out / "ttosc_runtime.csv")
    assert header == ["num_cells", "num_services", "decision", "median_ms", "paper_ms", "qp_iterations", "weights"]
    assert [r["decision"] for r in rows] == ["small_timescale", "large_timescale"]
    assert_finite(rows, ("median_ms", "paper_ms"))
    assert all(float(r["median_ms"]) > 0 for r in rows)
    assert [float(r["paper_ms"]) for r in rows] == [7.21, 19.39]


@pytest.mark.parametrize("flags, message", [
    (["--num-seeds", "0"], "--num-seeds=0 is invalid"),
    (["--cells", "3", "-1"], "--cells=(3, -1) is invalid"),
    (["--methods", "TTOSC", "Magic"], "--methods=('TTOSC', 'Magic') is invalid"),
    (["--bound-workers", "0"], "--bound-workers=0 is invalid"),
])
def test_bad_flags_are_named(flags, message, capsys):
    from agents.ttosc import figures

    with pytest.raises(SystemExit) as error:                 # tyro prints the message and exits with 2
        figures.parse_config(flags)
    assert error.value.code == 2
    captured = capsys.readouterr()
    assert message in captured.out + captured.err


@pytest.mark.parametrize("flags, message", [
    (["--figure", "7"], "--figure"),
    (["--preset", "cpu"], "--preset"),
])
def test_bad_choices_are_refused(flags, message, capsys):
    from agents.ttosc import figures

    with pytest.raises(SystemExit) as error:
        figures.parse_config(flags)
    assert error.value.code == 2
    captured = capsys.readouterr()
    assert message in captured.out + captured.err


def test_episode_count_must_divide_the_parallel_envs():
    from agents.ttosc import figures

    with pytest.raises(ValueError, match="--num-episodes=3 is invalid"):
        figures.resolve_scale(figures.parse_config(["--quick", "--num-episodes", "3"]))


def test_convergence_point_reads_the_rise_of_a_curve():
    x = np.arange(1, 11) * 4
    curve = np.array([0.0, 5, 8, 9.5, 9.6, 10, 10, 10, 10, 10])
    assert outputs.convergence_point(x, curve) == (0.0, 10.0, 16.0)  # 9.5 >= 0.95 * 10 first at the 4th point
    assert outputs.convergence_point(x, curve, fraction=0.5) == (0.0, 10.0, 8.0)
    assert outputs.convergence_point(x, curve[::-1])[2] is None  # a falling curve has no rise to cover
    assert outputs.convergence_point(x[:1], curve[:1]) == (0.0, 0.0, None)
    with pytest.raises(ValueError, match="same non-empty 1-D shape"):
        outputs.convergence_point(x, curve[:3])
    with pytest.raises(ValueError, match="fraction=0"):
        outputs.convergence_point(x, curve, fraction=0)


def test_a_rerun_loads_the_saved_agents_instead_of_training(quick_run, tmp_path, monkeypatch):
    """Fig. 5 after Fig. 4 in a new process-like run: the DDQN and DDPG agents of every shape come from the run
    folder (training them again would raise), and the figure's numbers are the same."""
    from agents.ttosc import figures

    # the quick run's DDQN unit (the same settings), so that only DDPG trains here
    (tmp_path / "run").mkdir()
    shutil.copy(quick_run[0] / "run" / "ddqn-M2-K3.npz", tmp_path / "run")
    args = ["--quick", "--cells", "2", "--services", "3", "--methods", "TTOSC", "DDPG", "--num-seeds", "2",
            "--run-dir", str(tmp_path / "run"), "--figure", "5"]
    real_train_ddqn = figures.train_ddqn
    monkeypatch.setattr(figures, "train_ddqn", lambda *a, **k: pytest.fail("the quick run's DDQN unit was not loaded"))
    assert figures.main([*args, "--out", str(tmp_path / "first")]) == 0
    monkeypatch.setattr(figures, "train_ddqn", real_train_ddqn)
    assert sorted(p.name for p in (tmp_path / "run").glob("*.npz")) == ["ddpg-M2-K3.npz", "ddqn-M2-K3.npz"]

    def no_training(*args, **kwargs):
        raise AssertionError("a saved shape was trained again")

    monkeypatch.setattr(figures, "train_ddqn", no_training)
    monkeypatch.setattr(figures, "train_ddpg", no_training)
    assert figures.main([*args, "--out", str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "ttosc_fig5_delay.csv").read_text() == (
        tmp_path / "first" / "ttosc_fig5_delay.csv").read_text()
    # other settings (here the seed) do not reuse the saved units
    with pytest.raises(AssertionError, match="trained again"):
        figures.main([*args, "--seed", "1", "--out", str(tmp_path / "other")])


def test_a_rerun_loads_each_points_saved_bound(quick_run, tmp_path, monkeypatch):
    """The quick run saved the lower bound of every Fig. 5 shape and Fig. 6 point in its run folder; a Bound-only
    rerun of Fig. 6 on that folder loads them (solving again would raise) and writes the quick run's Bound rows;
    with other evaluation episodes the saved bounds are not used."""
    from agents.ttosc import figures

    run = tmp_path / "run"
    shutil.copytree(quick_run[0] / "run", run)
    names = sorted(p.name for p in run.glob("*bound*.npz"))
    assert names == sorted(["bound-M2-K3.npz"] + [f"fig6-bound-{panel}-{x}.npz" for panel, xs in (
        ("zipf_exponent", ("0.8", "1.6")), ("users_per_cell", ("15", "30")), ("es_cpu_ghz", ("25", "100")),
        ("storage_units", ("10", "40"))) for x in xs])

    def no_solve(*args, **kwargs):
        raise AssertionError("a saved bound was solved again")

    monkeypatch.setattr(figures, "evaluation_lower_bound", no_solve)
    args = ["--quick", "--cells", "2", "--services", "3", "--methods", "Bound", "--num-seeds", "2",
            "--fig6-points", "2", "--figure", "6", "--run-dir", str(run)]
    assert figures.main([*args, "--out", str(tmp_path / "again")]) == 0
    _, before = read_rows(quick_run[0] / "ttosc_fig6_delay.csv")
    _, again = read_rows(tmp_path / "again" / "ttosc_fig6_delay.csv")
    assert again == [r for r in before if r["method"] == "Bound"]
    with pytest.raises(AssertionError, match="solved again"):
        figures.main([*args, "--eval-frames", "1", "--out", str(tmp_path / "other")])


def test_runtime_alone_times_the_saved_agents(quick_run, tmp_path, monkeypatch):
    """--figure runtime on a run folder that holds a shape's DDQN unit times those trained agents, without training."""
    from agents.ttosc import figures

    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(quick_run[0] / "run" / "ddqn-M2-K3.npz", run)
    monkeypatch.setattr(figures, "train_ddqn", lambda *a, **k: pytest.fail("the saved DDQN unit was not loaded"))
    args = ["--quick", "--cells", "2", "--services", "3", "--num-seeds", "2", "--figure", "runtime",
            "--run-dir", str(run)]
    assert figures.main([*args, "--out", str(tmp_path / "out")]) == 0
    _, rows = read_rows(tmp_path / "out" / "ttosc_runtime.csv")
    assert [(r["num_cells"], r["num_services"], r["weights"]) for r in rows] == [("2", "3", "trained")] * 2
    (run / "ddqn-M2-K3.npz").unlink()  # without the unit: the default shape at initial weights
    assert figures.main([*args, "--out", str(tmp_path / "bare")]) == 0
    _, rows = read_rows(tmp_path / "bare" / "ttosc_runtime.csv")
    assert [r["weights"] for r in rows] == ["initial"] * 2
