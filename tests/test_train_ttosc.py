"""jaxcpn train-ttosc: a tiny run is interrupted, resumed, and writes its run folder."""

from __future__ import annotations

import csv
import json

import pytest

from agents import checkpoint
from agents.ttosc import train as script

TINY_ARGS = ["--num-cells", "2", "--num-services", "4", "--slots-per-frame", "2", "--frames-per-episode", "2",
             "--qp-iterations", "5", "--num-envs", "2", "--num-episodes", "8", "--hidden", "8",
             "--num-gru-layers", "1", "--batch-size", "8", "--learning-starts", "8", "--buffer-size", "64",
             "--epsilon-episodes", "4", "--num-seeds", "2", "--chunk-iterations", "2", "--eval-envs", "1",
             "--eval-frames", "2", "--eval-qp-iterations", "10", "--skip-baselines", "--smoothing-window", "2"]
# The baselines at their smallest, for the run that scores every method against the bound.
BASELINE_ARGS = ["--ddpg.num-envs", "2", "--ddpg.num-episodes", "2", "--ddpg.batch-size", "4", "--ddpg.learning-starts",
                 "4", "--ddpg.buffer-size", "32", "--ddpg.hidden", "8", "--ddpg.updates-per-frame", "1",
                 "--oracle-rounds", "1", "--oracle-proposals", "2", "--oracle-search-iterations", "5"]


@pytest.mark.timeout(400)
def test_interrupted_run_resumes_and_reports(tmp_path, monkeypatch):
    """An interrupted run resumes; without --skip-baselines its summary has every method and the bound,
    which is below each method per seed."""
    run_dir = tmp_path / "run"
    args = [a for a in TINY_ARGS if a != "--skip-baselines"] + BASELINE_ARGS
    real_write = script.write_metrics
    calls = {"n": 0}

    def interrupt_on_second_chunk(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_write(*args, **kwargs)

    monkeypatch.setattr(script, "write_metrics", interrupt_on_second_chunk)
    assert script.main(args + ["--run-dir", str(run_dir), "--tensorboard"]) == 130   # interrupted
    assert checkpoint.latest_step(run_dir / "checkpoints") == 2  # the last finished chunk
    monkeypatch.setattr(script, "write_metrics", real_write)

    assert script.main(["--resume", str(run_dir)]) == 0
    config = json.loads((run_dir / "config.json").read_text())
    assert config["job"] == "train-ttosc" and config["config"]["ddqn"]["num_episodes"] == 8
    with (run_dir / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    total = 8 // 2 * 2  # episodes / envs * frames per episode
    assert sorted({int(r["iteration"]) for r in rows}) == list(range(1, total + 1))
    assert len(rows) == total * 2  # two seeds, no duplicate rows after the resume
    assert checkpoint.latest_step(run_dir / "checkpoints") == total
    from agents import runs

    scalars = runs.read_tensorboard(run_dir)                    # TensorBoard scalars, across the resume
    assert sorted(step for step, _ in scalars["reward/seed_1"]) == list(range(1, total + 1))
    # the saved agents, evaluated again from the checkpoint, reproduce the run's own numbers
    from agents.ttosc import evaluate

    assert evaluate.main(["--run", str(run_dir), "--out", str(tmp_path / "eval.json"), "--skip-baselines",
                          "--render", str(tmp_path / "pictures")]) == 0
    again = json.loads((tmp_path / "eval.json").read_text())
    saved = json.loads((run_dir / "summary.json").read_text())
    assert again["results"]["TTOSC"]["mean_delay"] == saved["results"]["TTOSC"]["mean_delay"]
    assert (tmp_path / "pictures" / "episode.gif").stat().st_size > 1000
    assert (run_dir / "convergence.png").stat().st_size > 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert len(summary["results"]["TTOSC"]["mean_delay"]) == 2
    assert summary["timings"]["small_timescale_ms"] > 0 and summary["timings"]["large_timescale_ms"] > 0
    table = (run_dir / "summary.md").read_text()
    assert "| TTOSC |" in table and "paper: 7.21 ms" in table and "gap to bound" in table
    results = summary["results"]
    assert set(results) >= {"TTOSC", "DDPG", "Popularity", "Greedy", "Random", "Clairvoyant", "Bound"}
    bound = results["Bound"]["mean_delay"]
    assert len(bound) == 2 and all(b > 0 for b in bound)
    for name in ("TTOSC", "DDPG", "Popularity", "Greedy", "Random", "Clairvoyant"):
        for seed, delay in enumerate(results[name]["mean_delay"]):
            assert delay >= bound[seed] * (1 - 1e-6), (name, seed)


@pytest.mark.parametrize("flag", ["--ddpg.num-cells", "--ddpg.num-services", "--ddpg.slots-per-frame",
                                  "--ddpg.frames-per-episode", "--ddpg.instance-seed"])
def test_no_flag_is_silently_overwritten(flag, capsys):
    """DDPG's instance is the DDQN's: its instance fields are not flags (they would be overwritten)."""
    with pytest.raises(SystemExit):
        script.parse_config([flag, "3"])
    captured = capsys.readouterr()
    assert flag in captured.out + captured.err
    assert script.ddpg_config(script.parse_config(["--num-cells", "3"])).num_cells == 3
