"""jaxcpn scan-stper / scan-ttosc: each config of a vmapped, 2-device-sharded scan equals its separate run."""

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from test_sharding import run_with_devices  # noqa: E402

WORKER = textwrap.dedent("""
    import dataclasses
    import jax, numpy as np
    from agents.stper import scan
    from agents.seeds import seed_key
    from agents import sharding
    from agents.stper.ppo import PPOConfig, PPOHyperparams, make_trainer

    ppo = PPOConfig(variant="stper-m", num_nodes=4, num_users=4, window=4, episode_length=4, num_envs=4,
                    num_steps=4, num_updates=2, update_epochs=1, num_minibatches=2, fusion_hidden=(16,),
                    head_hidden=(16,))
    # two chunks of one update: the runner carried across a chunk boundary, one compiled chunk program
    config = scan.ScanConfig(ppo=ppo, learning_rates=(1e-3, 3e-3), clip_ranges=(0.2,), ent_coefs=(0.0, 0.05),
                             num_seeds=1, chunk_updates=1)
    points = scan.grid_points(config)[:3]            # 3 runs: the run axis is padded to 4 for 2 devices
    mesh = sharding.make_mesh()
    assert mesh.size == 2
    result = scan.run_scan(ppo, points, config.num_seeds, config.seed, mesh, config.chunk_updates, progress=False)
    assert result["padded_runs"] == 1

    trainer = make_trainer(dataclasses.replace(ppo, embed_dim=16, lstm_hidden=32))
    separate = jax.jit(trainer.train)
    for c, point in enumerate(points):
        hparams = PPOHyperparams(*(np.float32(point[name]) for name in scan.DYNAMIC))
        _, metrics = separate(seed_key(config.seed, 0), hparams)
        for name in ("episode_return", "value_loss", "entropy", "approx_kl"):
            np.testing.assert_allclose(result["metrics"][name][c, 0], np.asarray(metrics[name]), rtol=1e-4, atol=1e-5,
                                       err_msg=f"config {c} {name}")
        if c == 1:   # a plain training run of the config (its values as compile-time constants)
            _, plain = jax.jit(make_trainer(scan.point_config(ppo, point)).train)(seed_key(config.seed, 0))
            for name in ("episode_return", "value_loss", "entropy"):
                np.testing.assert_allclose(result["metrics"][name][c, 0], np.asarray(plain[name]), rtol=1e-4,
                                           atol=1e-5, err_msg=f"plain config {c} {name}")
    returns = result["metrics"]["entropy"][:, 0, -1]
    assert len(set(np.round(returns, 5).tolist())) > 1, "different configs must give different runs"
    print("SCAN-OK")
""")


@pytest.mark.timeout(300)
def test_scan_configs_equal_separate_runs_on_two_devices():
    result = run_with_devices(WORKER)
    assert result.returncode == 0 and "SCAN-OK" in result.stdout, result.stdout + result.stderr


def test_grid_and_outputs(tmp_path):
    from agents.stper import scan

    config = scan.ScanConfig(learning_rates=(1e-3, 3e-3), clip_ranges=(0.2,), ent_coefs=(0.0, 0.01), gcn_widths=(8, 16))
    points = scan.grid_points(config)
    assert len(points) == 8 and points[0] == dict(gcn_width=8, lstm_width=32, learning_rate=1e-3, clip_eps=0.2,
                                                  ent_coef=0.0, gae_lambda=0.95)
    assert scan.point_config(config.ppo, points[-1]).embed_dim == 16
    finals = np.arange(16, dtype=np.float32).reshape(8, 2)
    summary = scan.write_outputs(tmp_path, points, finals, scan.POINT_FIELDS, "final return")
    assert summary[0]["config"] == 7 and summary[0]["mean"] == pytest.approx(14.5)
    assert (tmp_path / "scan.png").stat().st_size > 0
    assert len((tmp_path / "scan.csv").read_text().splitlines()) == 1 + 16
    with pytest.raises(ValueError, match="--learning-rates"):
        scan.ScanConfig(learning_rates=())
    metrics = dict(episode_return=np.array([[[1.0, np.nan, 3.0, 5.0]]]))
    assert scan.final_returns(metrics, 2)[0, 0] == pytest.approx(4.0)


def test_ttosc_scan_config_equals_its_plain_training_run(tmp_path):
    """The DDQN grid (learning rate x epsilon schedule) is one vmapped program; a config's run in it
    equals a plain training run with the config's values as constants."""
    import dataclasses

    import jax

    from agents import sharding
    from agents.seeds import seed_key
    from agents.ttosc import scan
    from agents.ttosc.ddqn import DDQNConfig, make_trainer

    ddqn = DDQNConfig(num_cells=2, num_services=4, slots_per_frame=2, frames_per_episode=2, qp_iterations=5,
                      num_envs=2, num_episodes=8, hidden=8, num_gru_layers=1, batch_size=8, learning_starts=4,
                      buffer_size=32, epsilon_episodes=4)
    config = scan.ScanConfig(ddqn=ddqn, learning_rates=(1e-3, 3e-2), epsilon_anneals=(2.0,), num_seeds=1,
                                  chunk_iterations=8)                    # all 8 frames: one chunk program
    points = scan.grid_points(config)
    assert [p["learning_rate"] for p in points] == [1e-3, 3e-2]
    result = scan.run_scan(ddqn, points, 1, config.seed, sharding.make_mesh(1), config.chunk_iterations,
                                 progress=False)
    frames = ddqn.num_iterations
    assert result["metrics"]["loss"].shape == (2, 1, frames)
    point = points[1]
    plain_config = dataclasses.replace(ddqn, learning_rate=point["learning_rate"],
                                       epsilon_episodes=int(point["epsilon_episodes"]))
    _, plain = jax.jit(make_trainer(plain_config).train)(seed_key(config.seed, 0))
    for name in ("epsilon", "reward", "loss"):
        np.testing.assert_allclose(result["metrics"][name][1, 0], np.asarray(plain[name]), rtol=1e-4, atol=1e-5,
                                   err_msg=name)
    assert not np.allclose(result["metrics"]["loss"][0, 0, -1], result["metrics"]["loss"][1, 0, -1])
    finals = scan.final_episode_rewards(result["metrics"], 2)
    assert finals.shape == (2, 1) and np.isfinite(finals).all()
    scan.write_outputs(tmp_path, points, finals, scan.FIELDS, "final mean frame reward")
    assert "epsilon_episodes" in (tmp_path / "scan.csv").read_text().splitlines()[0]
    with pytest.raises(ValueError, match="--epsilon-starts"):
        scan.ScanConfig(epsilon_starts=(1.5,))
