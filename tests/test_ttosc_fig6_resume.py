"""reproduce-ttosc Fig. 6 with per-point training: one saved unit per point, a rerun trains nothing, a
changed budget retrains, and the per-point budget flags are checked."""

from __future__ import annotations

import csv
import dataclasses

import pytest

from agents.ttosc import figures

# One shape (M = 2, K = 3), two seeds, the first x of each Fig. 6 panel (4 points), per-point training.
ARGS = ["--quick", "--cells", "2", "--services", "3", "--num-seeds", "2", "--fig6-points", "1",
        "--fig6-training", "per-point", "--figure", "6"]
POINTS = ("zipf_exponent-0.8", "users_per_cell-15", "es_cpu_ghz-25", "storage_units-10")


def counting_trainer(monkeypatch) -> list[int]:
    """Counts the per-point training calls (one per point trained) made through ``figures.train_per_point``."""
    calls = [0]
    original = figures.train_per_point

    def train_per_point(train, keys):
        program = original(train, keys)

        def counted(env_params):
            calls[0] += 1
            return program(env_params)

        return counted

    monkeypatch.setattr(figures, "train_per_point", train_per_point)
    return calls


def test_per_point_units_resume_and_retrain_on_a_new_budget(tmp_path, monkeypatch):
    run = ["--run-dir", str(tmp_path / "run")]
    calls = counting_trainer(monkeypatch)
    assert figures.main([*ARGS, *run, "--methods", "TTOSC", "DDPG", "--out", str(tmp_path / "first")]) == 0
    assert calls[0] == 2 * len(POINTS)  # DDQN and DDPG at every point
    assert sorted(p.name for p in (tmp_path / "run").glob("*.npz")) == sorted(
        f"fig6-{kind}-{point}.npz" for kind in ("ddpg", "ddqn") for point in POINTS)
    first = (tmp_path / "first" / "ttosc_fig6_delay.csv").read_text()
    with (tmp_path / "first" / "ttosc_fig6_delay.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {r["agents_trained"] for r in rows} == {"per-point"}
    assert all(float(r["train_s"]) > 0 for r in rows)  # every row is TTOSC or DDPG here
    # one training time per (point, method), the same for its seeds
    assert len({(r["panel"], r["method"], r["train_s"]) for r in rows}) == 2 * len(POINTS)

    # a rerun loads every point: the trainers are not called, the CSV (training seconds included) is the same
    assert figures.main([*ARGS, *run, "--methods", "TTOSC", "DDPG", "--out", str(tmp_path / "again")]) == 0
    assert calls[0] == 2 * len(POINTS)
    assert (tmp_path / "again" / "ttosc_fig6_delay.csv").read_text() == first

    # another DDQN budget changes the DDQN units' fingerprints: those points are trained again
    saved = (tmp_path / "run" / f"fig6-ddqn-{POINTS[0]}.npz").read_bytes()
    assert figures.main([*ARGS, *run, "--methods", "TTOSC", "--fig6-episodes", "6",
                         "--out", str(tmp_path / "longer")]) == 0
    assert calls[0] == 3 * len(POINTS)
    assert (tmp_path / "run" / f"fig6-ddqn-{POINTS[0]}.npz").read_bytes() != saved


def test_fig6_budget_and_epsilon_fraction():
    quick = figures.resolve_scale(figures.parse_config([*ARGS, "--fig6-episodes", "8", "--fig6-ddpg-episodes", "6"]))
    budgets = figures.fig6_scale(quick)
    assert (budgets.ddqn.num_episodes, budgets.ddqn.epsilon_episodes, budgets.ddpg.num_episodes) == (8, 4, 6)
    assert (quick.ddqn.num_episodes, quick.ddpg.num_episodes) == (4, 2)  # Figs. 4-5 keep the shape's budgets

    paper = figures.resolve_scale(figures.parse_config(["--preset", "paper"]))
    assert paper.fig6_per_point and paper.fig6_episodes % paper.ddqn.num_envs == 0
    assert figures.fig6_scale(paper).ddqn.epsilon_episodes == round(paper.fig6_episodes / 4)
    assert (paper.ddqn.num_episodes, paper.ddqn.epsilon_episodes) == (2000, 500)
    own = figures.fig6_scale(figures.resolve_scale(figures.parse_config(["--preset", "paper", "--fig6-episodes",
                                                                         "2000"])))
    assert own.ddqn == paper.ddqn  # --fig6-episodes 2000 is the paper's own per-point training
    assert figures.fig6_scale(dataclasses.replace(paper, fig6_episodes=None)).ddqn == paper.ddqn


@pytest.mark.parametrize("flags, message", [
    (["--fig6-training", "per-point", "--fig6-episodes", "3"],
     r"--fig6-episodes=3 is invalid: must be a positive multiple of the DDQN's parallel envs \(2\)"),
    (["--fig6-training", "per-point", "--fig6-ddpg-episodes", "5"],
     r"--fig6-ddpg-episodes=5 is invalid: must be a positive multiple of the DDPG's parallel envs \(2\)"),
    (["--fig6-episodes", "4"], r"--fig6-episodes=4 is invalid: it is the budget of per-point training"),
])
def test_bad_fig6_budgets_are_named(flags, message):
    with pytest.raises(ValueError, match=message):
        figures.resolve_scale(figures.parse_config(["--quick", *flags]))


@pytest.mark.parametrize("name", ["fig6_episodes", "fig6_ddpg_episodes"])
def test_fig6_budgets_must_be_positive(name):
    with pytest.raises(ValueError, match=f"--{name.replace('_', '-')}=0 is invalid: must be an integer >= 1"):
        figures.ReproConfig(**{name: 0})
