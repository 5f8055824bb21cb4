"""jaxcpn reproduce-stper: a unit interrupted between chunks resumes from its checkpoint, exactly."""

import shutil

import numpy as np
import pytest

from agents.stper import figures as reproduce_stper

# test_reproduce_stper's quick run (the same programs but the one-update chunk), 3 updates in 3 chunks.
ARGS = ["--quick", "--variants", "stper-m", "--num-seeds", "3", "--powers", "10", "50", "--eval-episodes", "1",
        "--num-updates", "3", "--chunk-updates", "1"]

pytestmark = pytest.mark.xdist_group("reproduce-stper")


class _Bar:
    def __init__(self):
        self.n = 0

    def update(self, n):
        self.n += n

    def set_postfix(self, **_):
        pass


def test_interrupted_unit_resumes_at_its_last_chunk_and_equals_an_uninterrupted_one(tmp_path, monkeypatch):
    config = reproduce_stper.parse_config(ARGS)
    sweep = reproduce_stper.sweeps(config, {"5"})[0]
    first = reproduce_stper.Runner(config, tmp_path / "whole")
    whole = first.train_unit(sweep, "stper-m", _Bar())

    def runner(run_dir):   # a new run in run_dir; it reuses the compiled programs (a new process would compile them)
        new = reproduce_stper.Runner(config, run_dir)
        new.trainers, new._programs = first.trainers, first._programs
        return new

    run_dir = tmp_path / "interrupted"
    real_save = reproduce_stper.Runner._save_partial

    def save_then_interrupt(partial, runner, curves, done):
        real_save(partial, runner, curves, done)
        raise KeyboardInterrupt   # killed right after the first chunk's checkpoint

    monkeypatch.setattr(reproduce_stper.Runner, "_save_partial", staticmethod(save_then_interrupt))
    with pytest.raises(KeyboardInterrupt):
        runner(run_dir).train_unit(sweep, "stper-m", _Bar())
    assert not list(run_dir.glob("*.npz"))                      # the unit is not finished
    (partial,) = (run_dir / "partial").iterdir()
    assert sorted(d.name for d in (partial / "runner").iterdir() if d.name.isdigit()) == ["1"]
    # killed again after the runner of update 2 was written, before its curves were
    shutil.copytree(partial / "runner" / "1", partial / "runner" / "2")
    saved = []

    def count_saves(partial, runner, curves, done):
        saved.append(done)
        real_save(partial, runner, curves, done)

    monkeypatch.setattr(reproduce_stper.Runner, "_save_partial", staticmethod(count_saves))
    bar = _Bar()
    resumed = runner(run_dir).train_unit(sweep, "stper-m", bar)
    assert saved == [2] and bar.n == 3     # update 1 restored (not trained again), 2 trained and checkpointed, 3 trained
    assert set(resumed) == set(whole)
    for name in whole:                                          # curves and evaluation, bit for bit
        np.testing.assert_array_equal(resumed[name], whole[name], err_msg=name)
    assert resumed["episode_return"].shape[-1] == 3
    assert not partial.exists()                                 # the checkpoint is removed once the unit is saved
    assert list(run_dir.glob("*.npz"))
