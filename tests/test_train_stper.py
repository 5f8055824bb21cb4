"""End to end: a tiny PPO run beats Random; checkpoint + resume reproduces an uninterrupted run."""

import dataclasses
import json

import jax
import numpy as np
import pytest

from agents import checkpoint, runs
from agents.stper import train as train_stper
from agents.stper.baselines import cpn_random, rollout_cpn
from agents.stper.ppo import PPOConfig, make_trainer, network_policy

TINY = PPOConfig(
    variant="stper-m", num_nodes=4, num_users=4, window=6, episode_length=6, num_envs=16, num_steps=6,
    num_updates=40, num_minibatches=2, learning_rate=3e-3, fusion_hidden=(32,), head_hidden=(32,),
)


@pytest.mark.timeout(300)
def test_tiny_training_beats_random():
    trainer = make_trainer(TINY)
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    runner, metrics = jax.jit(jax.vmap(trainer.train))(keys)  # two seeds, one vmapped program
    assert metrics["episode_return"].shape == (2, TINY.num_updates)
    env, params = trainer.env, trainer.env_params
    key = jax.random.PRNGKey(7)
    random_profit = float(rollout_cpn(cpn_random, env, params, key, 64)["profit"].mean())
    # one evaluation program for both seeds: the parameters are its argument, not constants in it
    evaluate = jax.jit(lambda v, k: rollout_cpn(network_policy(trainer.network, v), env, params, k, 64))
    for seed in range(2):
        variables = jax.tree.map(lambda x: x[seed], runner.train_state.params)
        trained = float(evaluate(variables, key)["profit"].mean())
        assert trained > 1.2 * random_profit, (seed, trained, random_profit)
    # the learning curve rises too (training episodes are sampled from the policy)
    returns = np.asarray(metrics["episode_return"])
    assert returns[:, -5:].mean() > returns[:, :5].mean()


@pytest.mark.timeout(300)
def test_checkpoint_resume_is_exact(tmp_path):
    ppo = dataclasses.replace(TINY, num_updates=6)
    config = train_stper.TrainConfig(ppo=ppo, num_seeds=2, chunk_updates=2, eval_episodes=2)
    full = train_stper.train(config, tmp_path / "full")
    part = train_stper.train(config, tmp_path / "part", interrupt_after=4)
    assert checkpoint.latest_step(tmp_path / "part" / "checkpoints") == 4

    # save + restore gives identical parameters (and the whole runner state)
    restored, step = checkpoint.restore_checkpoint(tmp_path / "part" / "checkpoints", part)
    assert step == 4
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)), restored, part)

    resumed = train_stper.train(config, tmp_path / "part")
    assert int(resumed.update[0]) == 6
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)),
                 resumed.train_state.params, full.train_state.params)
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)), resumed.key, full.key)
    full_rows = (tmp_path / "full" / "metrics.csv").read_text()
    assert (tmp_path / "part" / "metrics.csv").read_text() == full_rows


def test_cli_presets_and_config_roundtrip(tmp_path):
    config = train_stper.parse_config(["--variant", "stper-l", "--num-seeds", "3"])
    assert config.ppo.variant == "stper-l" and config.num_seeds == 3 and config.preset == "quick"
    paper = train_stper.parse_config(["--preset", "paper"])
    quick = train_stper.parse_config([])
    total = lambda c: c.ppo.num_envs * c.ppo.num_steps * c.ppo.num_updates  # noqa: E731  env steps per seed
    assert paper.num_seeds == 3 and total(paper) >= 10 * total(quick)
    config = dataclasses.replace(config, run_dir=tmp_path / "run")
    runs.start_run("train-stper", config, tmp_path / "run")
    assert runs.load_run_config("train-stper", train_stper.TrainConfig, tmp_path / "run") == config
    assert json.loads((tmp_path / "run" / "config.json").read_text())["job"] == "train-stper"


def test_a_run_folder_is_never_overwritten_or_resumed_by_the_other_job(tmp_path):
    config = train_stper.parse_config(["--variant", "stper-m"])
    run_dir = tmp_path / "run"
    runs.start_run("train-stper", config, run_dir)
    before = (run_dir / "config.json").read_bytes()
    with pytest.raises(FileExistsError, match="already holds a run"):
        train_stper.main(["--variant", "stper-l", "--run-dir", str(run_dir)])
    assert (run_dir / "config.json").read_bytes() == before
    from agents.ttosc import train as train_ttosc

    with pytest.raises(ValueError, match="is a run of train-stper, not of train-ttosc"):
        train_ttosc.main(["--resume", str(run_dir)])


def test_training_vmapped_over_instances_equals_separate_trainers():
    """``train(key, env_params=p)`` over stacked instances equals a trainer built on the instance."""
    from jaxcpn.sweep import stack_sweep

    ppo = dataclasses.replace(TINY, num_updates=2, num_envs=8)
    trainer = make_trainer(ppo)
    base = trainer.env_params
    powers = np.stack([np.asarray(base.power), 3.0 * np.asarray(base.power)])
    stacked = stack_sweep(base, "power", powers)
    key = jax.random.PRNGKey(3)
    _, metrics = jax.jit(jax.vmap(lambda p: trainer.train(key, None, p)))(stacked)
    separate = make_trainer(ppo, env_params=base.replace(power=powers[1]))   # the instance closed over
    _, expected = jax.jit(separate.train)(key)
    np.testing.assert_allclose(metrics["slot_profit"][1], expected["slot_profit"], rtol=2e-5)
    np.testing.assert_allclose(metrics["policy_loss"][1], expected["policy_loss"], rtol=2e-4, atol=1e-6)
    assert not np.allclose(metrics["slot_profit"][0], metrics["slot_profit"][1])   # the instances differ


def test_summary_has_the_bound_above_every_policy(tmp_path):
    """A whole tiny run: the summary table and JSON carry the conflict-free bound and each share of it."""
    # tests/test_kill_resume.py's run: the same programs, compiled once for both (the compilation cache)
    tiny = ["--variant", "stper-m", "--num-nodes", "4", "--num-users", "4", "--window", "6", "--episode-length", "6",
            "--num-envs", "8", "--num-steps", "6", "--num-updates", "8", "--num-minibatches", "2",
            "--fusion-hidden", "16", "--head-hidden", "16", "--chunk-updates", "2", "--eval-episodes", "1"]
    assert train_stper.main(tiny + ["--run-dir", str(tmp_path / "run")]) == 0
    results = json.loads((tmp_path / "run" / "summary.json").read_text())["results"]
    assert set(results) == {"stper-m", "random", "greedy", "coord-ascent", "bound"}
    bound = results["bound"]["slot_profit"]
    for name, row in results.items():
        assert row["slot_profit"] <= bound + 1e-5 * abs(bound), name
        assert row["fraction_of_bound"] == pytest.approx(row["slot_profit"] / bound, rel=1e-6)
    table = (tmp_path / "run" / "summary.txt").read_text()
    assert "of bound" in table and table.count("\n") >= 7
