"""scripts/train_ttosc.py: a tiny run is interrupted, resumed, and writes its run folder."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

TINY_ARGS = ["--num-cells", "2", "--num-services", "4", "--slots-per-frame", "2", "--frames-per-episode", "2",
             "--qp-iterations", "5", "--num-envs", "2", "--num-episodes", "8", "--hidden", "8",
             "--num-gru-layers", "1", "--batch-size", "8", "--learning-starts", "8", "--buffer-size", "64",
             "--epsilon-episodes", "4", "--num-seeds", "2", "--chunk-iterations", "2", "--eval-envs", "1",
             "--eval-frames", "2", "--eval-qp-iterations", "10", "--skip-baselines", "--smoothing-window", "2"]


def load_script():
    spec = importlib.util.spec_from_file_location("train_ttosc", ROOT / "scripts" / "train_ttosc.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(400)
def test_interrupted_run_resumes_and_reports(tmp_path, monkeypatch):
    script = load_script()
    run_dir = tmp_path / "run"
    real_write = script.write_metrics
    calls = {"n": 0}

    def interrupt_on_second_chunk(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_write(*args, **kwargs)

    monkeypatch.setattr(script, "write_metrics", interrupt_on_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        script.main(TINY_ARGS + ["--run-dir", str(run_dir)])
    assert script.checkpoint.latest_step(run_dir / "checkpoints") == 2  # the last finished chunk
    monkeypatch.setattr(script, "write_metrics", real_write)

    assert script.main(["--resume", str(run_dir)]) == 0
    config = json.loads((run_dir / "config.json").read_text())
    assert config["ddqn"]["num_episodes"] == 8
    with (run_dir / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    total = 8 // 2 * 2  # episodes / envs * frames per episode
    assert sorted({int(r["iteration"]) for r in rows}) == list(range(1, total + 1))
    assert len(rows) == total * 2  # two seeds, no duplicate rows after the resume
    assert script.checkpoint.latest_step(run_dir / "checkpoints") == total
    assert (run_dir / "convergence.png").stat().st_size > 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert len(summary["results"]["TTOSC"]["mean_delay"]) == 2
    assert summary["timings"]["small_timescale_ms"] > 0 and summary["timings"]["large_timescale_ms"] > 0
    table = (run_dir / "summary.md").read_text()
    assert "| TTOSC |" in table and "paper: 7.21 ms" in table
