"""Sharded PPO and DDQN: a run with the env batch split over 2 (host) devices equals the 1-device run.

The device count is fixed when JAX starts, so the comparison runs in a subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=2``.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import pytest

ROOT = Path(__file__).resolve().parents[1]

WORKER = textwrap.dedent("""
    import jax, numpy as np
    from agents import sharding
    from agents.stper.ppo import PPOConfig, make_trainer

    assert jax.device_count() == 2, jax.devices()
    config = PPOConfig(variant="stper-m", num_nodes=4, num_users=4, window=4, episode_length=4, num_envs=8,
                       num_steps=4, num_updates=2, update_epochs=2, num_minibatches=2, fusion_hidden=(16,),
                       head_hidden=(16,))
    trainer = make_trainer(config)
    keys = np.stack([np.asarray(jax.random.PRNGKey(0)), np.asarray(jax.random.PRNGKey(1))])
    single, single_metrics = jax.jit(jax.vmap(trainer.train))(keys)       # the plain one-device program

    mesh = sharding.make_mesh()
    init, chunk = sharding.sharded_trainer_fns(trainer, mesh, config.num_updates, num_seeds=2)
    runner = init(keys)
    env_leaf = jax.tree.leaves(runner.env_state)[0]
    assert env_leaf.sharding.spec == jax.sharding.PartitionSpec(None, "batch"), env_leaf.sharding
    assert len(env_leaf.addressable_shards) == 2 and env_leaf.addressable_shards[0].data.shape[1] == 4
    runner, metrics = chunk(runner)
    assert jax.tree.leaves(runner.train_state.params)[0].sharding.is_fully_replicated

    for a, b in zip(jax.tree.leaves(single.train_state.params), jax.tree.leaves(runner.train_state.params), strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-6)
    for name in ("episode_return", "value_loss", "entropy"):
        np.testing.assert_allclose(np.asarray(metrics[name]), np.asarray(single_metrics[name]), rtol=1e-4, atol=1e-4)
    assert not np.allclose(np.asarray(jax.tree.leaves(runner.train_state.params)[-1][0]),
                           np.asarray(jax.tree.leaves(runner.train_state.params)[-1][1])), "seeds must differ"

    bad = make_trainer(PPOConfig(**{**config.__dict__, "num_envs": 5, "num_minibatches": 1}))
    try:
        sharding.sharded_trainer_fns(bad, mesh, 1)
    except ValueError as error:
        assert "num_envs=5" in str(error), error
    else:
        raise AssertionError("num_envs=5 on 2 devices must raise")
    print("SHARDING-OK")

    # The DDQN of TTOSC: its parallel episodes split over the 2 devices, the replay buffer replicated.
    from agents.ttosc.ddqn import DDQNConfig, make_trainer as make_ddqn
    ddqn = make_ddqn(DDQNConfig(num_cells=2, num_services=4, slots_per_frame=2, frames_per_episode=2, qp_iterations=5,
                                num_envs=4, num_episodes=8, hidden=8, num_gru_layers=1, batch_size=8,
                                learning_starts=4, buffer_size=32, epsilon_episodes=4))
    frames = ddqn.config.num_iterations
    single, single_metrics = jax.jit(jax.vmap(ddqn.train))(keys)
    init, chunk = sharding.sharded_trainer_fns(ddqn, mesh, frames, num_seeds=2)
    runner = init(keys)
    obs = runner.observation
    assert obs.sharding.spec == jax.sharding.PartitionSpec(None, "batch") and obs.addressable_shards[0].data.shape[1] == 2
    runner, metrics = chunk(runner)
    assert jax.tree.leaves(runner.replay)[0].sharding.is_fully_replicated
    for a, b in zip(jax.tree.leaves(single.train_state.params), jax.tree.leaves(runner.train_state.params), strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(metrics["reward"]), np.asarray(single_metrics["reward"]), rtol=1e-4)
    assert np.isfinite(np.asarray(metrics["loss"])[:, -1]).all(), "the DDQN must have learned"
    print("DDQN-SHARDING-OK")
""")


def run_with_devices(code: str, devices: int = 2, timeout: int = 280) -> subprocess.CompletedProcess:
    """Runs ``code`` in a fresh Python with ``devices`` host (CPU) devices; returns the finished process."""
    from conftest import subprocess_env

    env = subprocess_env(f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu",
                         PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.timeout(300)
def test_two_device_training_equals_single_device():
    result = run_with_devices(WORKER)
    assert result.returncode == 0 and "DDQN-SHARDING-OK" in result.stdout, result.stdout + result.stderr


def test_make_mesh_and_divisibility_errors():
    from agents import sharding

    mesh = sharding.make_mesh()
    assert mesh.axis_names == ("batch",) and mesh.size == jax.device_count()
    with pytest.raises(ValueError, match="num_devices"):
        sharding.make_mesh(jax.device_count() + 1)
    sharding.check_divisible(4 * mesh.size, mesh, "num_envs")
    if mesh.size > 1:
        with pytest.raises(ValueError, match="num_envs"):
            sharding.check_divisible(mesh.size + 1, mesh, "num_envs")


MULTIPROCESS_WORKER = textwrap.dedent("""
    import sys
    import numpy as np
    from agents import sharding
    process_id, port, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    sharding.initialize_distributed(f"localhost:{port}", 2, process_id)
    import jax
    from agents.stper.ppo import PPOConfig, make_trainer
    assert jax.process_count() == 2 and jax.device_count() == 2 and jax.local_device_count() == 1
    config = PPOConfig(variant="stper-m", num_nodes=4, num_users=4, window=4, episode_length=4, num_envs=8,
                       num_steps=4, num_updates=2, update_epochs=2, num_minibatches=2, fusion_hidden=(16,),
                       head_hidden=(16,))
    init, chunk = sharding.sharded_trainer_fns(make_trainer(config), sharding.make_mesh(), config.num_updates)
    runner, _ = chunk(init(np.asarray(jax.random.PRNGKey(0))))
    np.save(out, np.concatenate([np.asarray(x).ravel() for x in jax.tree.leaves(runner.train_state.params)]))
""")


@pytest.mark.skipif(os.environ.get("JAXCPN_MULTIPROCESS_TEST") != "1",
                    reason="slow (3 JAX processes); set JAXCPN_MULTIPROCESS_TEST=1")
@pytest.mark.timeout(300)
def test_two_process_training_equals_single_device(tmp_path):
    """jax.distributed on localhost: 2 CPU processes x 1 device each equal the 1-device run."""
    import socket

    import numpy as np

    from agents.stper.ppo import PPOConfig, make_trainer

    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
    env.pop("XLA_FLAGS", None)
    procs = [subprocess.Popen([sys.executable, "-c", MULTIPROCESS_WORKER, str(i), str(port), str(tmp_path / f"{i}.npy")],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(2)]
    logs = [p.communicate(timeout=280)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), "\n".join(logs)
    config = PPOConfig(variant="stper-m", num_nodes=4, num_users=4, window=4, episode_length=4, num_envs=8,
                       num_steps=4, num_updates=2, update_epochs=2, num_minibatches=2, fusion_hidden=(16,),
                       head_hidden=(16,))
    runner, _ = jax.jit(make_trainer(config).train)(jax.random.PRNGKey(0))
    expected = np.concatenate([np.asarray(x).ravel() for x in jax.tree.leaves(runner.train_state.params)])
    for i in range(2):
        np.testing.assert_allclose(np.load(tmp_path / f"{i}.npy"), expected, rtol=1e-5, atol=1e-6)
