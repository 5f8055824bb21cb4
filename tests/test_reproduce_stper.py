"""jaxcpn reproduce-stper in --quick mode: every figure's CSV and PNG, shapes, finiteness, resume."""

import csv
from pathlib import Path

import numpy as np
import pytest

from agents.stper import figures as reproduce_stper

# The smallest run that still makes every figure: one variant (the MLP, quickest to compile),
# 3 seeds, 2 sweep points, 1 evaluation episode.
ARGS = ["--quick", "--variants", "stper-m", "--num-seeds", "3", "--powers", "10", "50", "--data-sizes", "15", "45",
        "--eval-episodes", "1"]


def read(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


def values(rows: list[dict], column: str) -> np.ndarray:
    return np.array([float(r[column]) for r in rows])


def pick(rows, **where):
    return [r for r in rows if all(r[k] == v for k, v in where.items())]


# One xdist worker runs the module (--dist loadgroup, pyproject.toml): its fixture is built once.
pytestmark = pytest.mark.xdist_group("reproduce-stper")


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    out = tmp_path_factory.mktemp("stper-figures")
    assert reproduce_stper.main([*ARGS, "--out", str(out), "--run-dir", str(out / "work")]) == 0
    return out


def test_every_figure_has_a_finite_csv_of_the_expected_shape(outputs):
    for stem in ("stper_fig3_training", "stper_fig4_delay_vs_power", "stper_fig5_profit_vs_power",
                 "stper_fig6_profit_vs_size"):
        assert (outputs / f"{stem}.png").stat().st_size > 10_000, stem
    fig3 = read(outputs / "stper_fig3_training.csv")
    assert len(fig3) == 1 * 3 * 3                                # variants x seeds x updates (quick: 3)
    assert {r["variant"] for r in fig3} == {"stper-m"}
    for column in ("episode_return", "explained_variance", "env_steps"):
        assert np.all(np.isfinite(values(fig3, column))), column
    for stem, metric, x_name, kappas in (
        ("stper_fig4_delay_vs_power", "mean_delay", "computing_power_tflops", {"default", "0.0001"}),
        ("stper_fig5_profit_vs_power", "slot_profit", "computing_power_tflops", {"default", "0.0001"}),
        ("stper_fig6_profit_vs_size", "slot_profit", "data_size_mb", {"default"}),
    ):
        rows = read(outputs / f"{stem}.csv")
        with_bound = metric == "slot_profit"  # the bound is on the profit: a row per point in the profit tables
        # kappas x points x (3 seeds of the variant + Random, Greedy, Oracle [+ bound])
        assert len(rows) == len(kappas) * 2 * (3 + 3 + with_bound), stem
        assert {r["kappa"] for r in rows} == kappas
        assert sorted({float(r[x_name]) for r in rows}) == ([10.0, 50.0] if "power" in stem else [15.0, 45.0])
        assert {r["method"] for r in rows} == {"stper-m", "random", "greedy", "coord-ascent"} | ({"bound"} if with_bound
                                                                                        else set())
        assert np.all(np.isfinite(values(rows, metric))), stem


def test_physical_trends_and_oracle_bound(outputs):
    power = read(outputs / "stper_fig4_delay_vs_power.csv")
    size = read(outputs / "stper_fig6_profit_vs_size.csv")
    # Random plays the same actions at every point: more power is faster, bigger tasks slower.
    random_power = values(pick(power, method="random", kappa="default"), "mean_delay")
    assert random_power[1] < random_power[0]
    random_size = values(pick(size, method="random"), "mean_delay")
    assert random_size[1] > random_size[0]
    # The Oracle starts from Greedy's assignment and only accepts improvements.
    profit = read(outputs / "stper_fig5_profit_vs_power.csv")
    for kappa in ("default", "0.0001"):
        oracle = values(pick(profit, method="coord-ascent", kappa=kappa), "slot_profit")
        greedy = values(pick(profit, method="greedy", kappa=kappa), "slot_profit")
        assert np.all(oracle >= greedy - 1e-3 * np.abs(greedy))
        # The conflict-free bound is above every method at every point, and gap_to_bound is the difference.
        bound = values(pick(profit, method="bound", kappa=kappa), "slot_profit")
        for row in profit:
            if row["kappa"] == kappa and row["method"] != "bound":
                k = sorted({float(r["computing_power_tflops"]) for r in profit}).index(float(row["computing_power_tflops"]))
                assert float(row["slot_profit"]) <= bound[k] + 1e-5 * abs(bound[k]), row
                assert float(row["gap_to_bound"]) == pytest.approx(bound[k] - float(row["slot_profit"]), rel=1e-4,
                                                                   abs=1e-3)  # CSV rounding


def test_rerun_loads_saved_units_instead_of_training(outputs, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("a saved unit was trained again")

    monkeypatch.setattr(reproduce_stper.Runner, "_train_programs", no_training)
    before = (outputs / "stper_fig6_profit_vs_size.csv").read_text()
    assert reproduce_stper.main([*ARGS, "--figure", "6", "--out", str(outputs), "--run-dir", str(outputs / "work")]) == 0
    assert (outputs / "stper_fig6_profit_vs_size.csv").read_text() == before
    # without --out the figures go into the run folder, never into docs/figures
    assert reproduce_stper.main([*ARGS, "--figure", "6", "--run-dir", str(outputs / "work")]) == 0
    assert (outputs / "work" / "figures" / "stper_fig6_profit_vs_size.csv").read_text() == before


def test_bad_input_names_the_flag(capsys):
    with pytest.raises(ValueError, match="--kappa-small=0.01 is invalid"):
        reproduce_stper.ReproConfig(kappa_small=0.01)
    with pytest.raises(ValueError, match="--variants"):
        reproduce_stper.ReproConfig(variants=("stper-x",))
    for flag, bad in (("--powers", ["10", "-5"]), ("--num-seeds", ["0"])):
        with pytest.raises(SystemExit):                       # tyro prints the message and exits with 2
            reproduce_stper.parse_config([flag, *bad])
        captured = capsys.readouterr()
        assert f"{flag}=" in captured.out + captured.err, flag
