"""Viewers: a CPN slot and an MEC frame render to non-empty images that change with the action."""

from __future__ import annotations

import io

import jax
import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from jaxcpn.cpn import CPNConfig, GreenCPN  # noqa: E402
from jaxcpn.cpn import viewer as cpn_viewer  # noqa: E402
from jaxcpn.mec import viewer as mec_viewer  # noqa: E402
from jaxcpn.mec.env import TwoTimescaleMEC  # noqa: E402
from jaxcpn.mec.types import MECConfig  # noqa: E402


def pixels(fig) -> np.ndarray:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=60)
    plt.close(fig)
    buffer.seek(0)
    return plt.imread(buffer)


@pytest.mark.timeout(240)
def test_cpn_slot_picture_shows_the_routes_and_numbers_of_step(tmp_path):
    env = GreenCPN(CPNConfig(num_nodes=5, num_users=4, window=4, episode_length=3))
    params = env.default_params
    _, state = env.reset(jax.random.PRNGKey(0), params)
    local, remote = np.arange(4) % 5, np.full(4, 4)
    numbers = cpn_viewer.slot_numbers(env, params, state, remote)
    _, _, reward, _, _, info = env.step(jax.random.PRNGKey(1), state, remote, params)
    np.testing.assert_allclose(numbers["info"]["profit"], reward, rtol=1e-6)   # the picture's numbers are step's
    np.testing.assert_allclose(numbers["info"]["delay"], info["delay"], rtol=1e-6)
    routes, mask = numbers["routes"], numbers["hop_mask"]
    assert (routes[:, 0] == np.asarray(params.user_node)).all()
    assert all(routes[u, 1:][mask[u]][-1] == 4 for u in range(4) if mask[u].any())
    a = pixels(cpn_viewer.render_slot(env, params, state, local))
    b = pixels(cpn_viewer.render_slot(env, params, state, remote))
    assert a.shape == b.shape and a.std() > 0.01                     # not a blank image
    assert np.abs(a - b).mean() > 1e-3                               # another action, another picture
    with pytest.raises(ValueError):
        cpn_viewer.render_slot(env, params, state, np.full(4, 9))     # out-of-range destination
    gif = cpn_viewer.render_episode(env, params, jax.random.PRNGKey(2), lambda k, o, s: remote, tmp_path / "ep.gif",
                                    num_slots=2)
    assert gif.read_bytes()[:6] in (b"GIF87a", b"GIF89a")


@pytest.mark.timeout(240)
def test_mec_frame_picture_accounts_for_every_task(tmp_path):
    env = TwoTimescaleMEC(MECConfig(num_cells=2, num_services=4, slots_per_frame=2, frames_per_episode=2,
                                    qp_iterations=20))
    params = env.default_params
    _, state = env.reset(jax.random.PRNGKey(0), params)
    nothing = np.zeros((2, 4), bool)
    some = nothing.copy()
    some[:, 0] = True
    key = jax.random.PRNGKey(3)
    data = mec_viewer.frame_flows(env, params, state, some, key)
    np.testing.assert_allclose(data["flows"].sum(-1), data["arrivals"], rtol=1e-4, atol=1e-3)  # every task goes somewhere
    assert data["flows"][:, 1:, :2].sum() < 1e-3                   # undeployed services are not served at an ES
    _, played, _, _, _, info = env.step_env(key, state, some, params)
    assert data["mean_delay"] == pytest.approx(float(info["mean_delay"]), rel=1e-5)
    cloud_only = mec_viewer.frame_flows(env, params, state, nothing, key)
    np.testing.assert_allclose(cloud_only["flows"][..., 2].sum(), cloud_only["arrivals"].sum(), rtol=1e-4)
    a = pixels(mec_viewer.render_frame(env, params, state, nothing, key))
    b = pixels(mec_viewer.render_frame(env, params, state, some, key))
    assert a.std() > 0.01 and np.abs(a - b).mean() > 1e-3
    gif = mec_viewer.render_episode(env, params, jax.random.PRNGKey(2), lambda k, o, s: some, tmp_path / "ep.gif",
                                    num_frames=2)
    assert gif.stat().st_size > 1000
