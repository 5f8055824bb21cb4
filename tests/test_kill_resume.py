"""A run killed with SIGKILL and resumed ends bit-identical to an uninterrupted run (fresh processes)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import subprocess_env

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--variant", "stper-m", "--num-nodes", "4", "--num-users", "4", "--window", "6", "--episode-length", "6",
        "--num-envs", "8", "--num-steps", "6", "--num-updates", "8", "--num-minibatches", "2",
        "--fusion-hidden", "16", "--head-hidden", "16", "--chunk-updates", "2", "--eval-episodes", "1"]


def job(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "agents.cli", "train-stper", *args], cwd=ROOT, env=subprocess_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def checkpoint_steps(run_dir: Path) -> list[int]:
    folder = run_dir / "checkpoints"
    return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit()) if folder.exists() else []


@pytest.mark.timeout(420)
def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path):
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    victim = job(*TINY, "--run-dir", str(killed))
    deadline = time.time() + 300
    while not checkpoint_steps(killed) and victim.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert victim.poll() is None, "the run ended before it could be killed:\n" + victim.communicate()[0][-2000:]
    assert checkpoint_steps(killed), "no checkpoint was written in time"
    os.kill(victim.pid, signal.SIGKILL)                           # during or just after a checkpoint write
    victim.wait()
    steps_at_kill = checkpoint_steps(killed)
    assert steps_at_kill and steps_at_kill[-1] < 8
    # one after the other (not side by side): the resumed job reads the training programs the victim
    # compiled from the shared cache, and the uninterrupted run after it reads those and the
    # evaluation programs the resumed job compiled, so no program is compiled twice at once
    resumed = job("--resume", str(killed))
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out[-3000:]
    uninterrupted = job(*TINY, "--run-dir", str(whole))
    out, _ = uninterrupted.communicate(timeout=300)
    assert uninterrupted.returncode == 0, out[-3000:]
    # complete, duplicate-free, identical metrics: same seed, same numbers, across processes and a kill
    rows = (killed / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + 8 and len(set(rows)) == len(rows)
    assert (killed / "metrics.csv").read_text() == (whole / "metrics.csv").read_text()
    assert checkpoint_steps(killed)[-1] == 8
    summaries = [json.loads((run / "summary.json").read_text())["results"] for run in (killed, whole)]
    assert summaries[0] == summaries[1]                           # the evaluation of the final policy too
