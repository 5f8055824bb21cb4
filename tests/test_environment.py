"""``Environment.step`` under ``vmap`` resets only when some environment is done (one ``lax.cond``
over the batch) and gives the numbers of the per-instance rule vmapped the plain way, bit for bit
(within float32 rounding under two nested ``vmap``s, where XLA fuses the two programs differently):
every environment done, none done, some done; keys, states, actions and params batched or
shared; and under two nested ``vmap``s."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcpn.cpn import CPNConfig, GreenCPN
from jaxcpn.mec.env import TwoTimescaleMEC
from jaxcpn.mec.types import MECConfig

CPN = GreenCPN(CPNConfig(num_nodes=5, num_users=4, window=3, episode_length=3))
MEC = TwoTimescaleMEC(MECConfig(num_cells=2, num_services=4, slots_per_frame=2, frames_per_episode=2,
                                qp_iterations=10))
BATCH = 5


def assert_identical(actual, expected, ulps: bool = False):
    """Equal leaves; with ``ulps``, floats within float32 rounding (two compiled programs that XLA
    fuses differently can round an operation differently)."""
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
        a, e = np.asarray(a), np.asarray(e)
        if ulps and np.issubdtype(a.dtype, np.floating):
            np.testing.assert_allclose(a, e, rtol=1e-6, atol=1e-6)
        else:
            np.testing.assert_array_equal(a, e)


def staggered_states(env, key):
    """States of ``BATCH`` episodes that end at different steps (0 to 2 steps already played)."""
    keys = jax.random.split(key, BATCH)
    _, state = jax.vmap(env.reset, in_axes=(0, None))(keys, env.default_params)
    plain = jax.jit(jax.vmap(env._step_and_reset, in_axes=(0, 0, 0, None)))
    for t in range(2):
        action = random_actions(env, jax.random.fold_in(key, t))
        _, stepped, *_ = plain(keys, state, action, env.default_params)
        played = jnp.arange(BATCH) % 3 > t  # env i plays i % 3 steps
        state = jax.tree.map(lambda a, b: jnp.where(played.reshape((-1,) + (1,) * (a.ndim - 1)), a, b), stepped, state)
    return state


def random_actions(env, key):
    params = env.default_params
    return jax.vmap(lambda k: env.action_space(params).sample(k))(jax.random.split(key, BATCH))


@pytest.mark.parametrize("env", [CPN, MEC], ids=["cpn", "mec"])
def test_batched_step_is_the_plain_vmap_of_the_rule(env):
    params = env.default_params
    key = jax.random.PRNGKey(3)
    batched = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))
    plain = jax.jit(jax.vmap(env._step_and_reset, in_axes=(0, 0, 0, None)))
    _, synchronised = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key, BATCH), params)
    done_counts = set()
    for state in (synchronised, staggered_states(env, key)):  # none / all done, then some done
        for t in range(4):
            keys = jax.random.split(jax.random.fold_in(key, 10 + t), BATCH)
            action = random_actions(env, jax.random.fold_in(key, 20 + t))
            out, expected = batched(keys, state, action, params), plain(keys, state, action, params)
            assert_identical(out, expected)
            done_counts.add(int(jnp.sum(out[3] | out[4])))
            state = out[1]
    assert {0, BATCH} <= done_counts and len(done_counts - {0, BATCH}) > 0, done_counts  # every case ran


def test_batched_step_with_shared_key_batched_params_and_nested_vmap():
    """The rule is the env's: the CPN's cheap step covers it (the MEC's runs above)."""
    env = CPN
    params = env.default_params
    key = jax.random.PRNGKey(4)
    state = staggered_states(env, key)
    action = random_actions(env, key)
    # One key shared by the batch, params stacked per environment.
    stacked = jax.tree.map(lambda x: jnp.broadcast_to(x, (BATCH,) + jnp.shape(x)), params)
    out = jax.jit(jax.vmap(env.step, in_axes=(None, 0, 0, 0)))(key, state, action, stacked)
    assert_identical(out, jax.jit(jax.vmap(env._step_and_reset, in_axes=(None, 0, 0, 0)))(key, state, action, stacked))
    # Seeds x environments.
    twice = lambda tree: jax.tree.map(lambda x: jnp.stack([x, x]), tree)  # noqa: E731
    keys = jax.random.split(key, (2, BATCH))
    nested = jax.jit(jax.vmap(jax.vmap(env.step, in_axes=(0, 0, 0, None)), in_axes=(0, 0, 0, None)))
    plain = jax.jit(jax.vmap(jax.vmap(env._step_and_reset, in_axes=(0, 0, 0, None)), in_axes=(0, 0, 0, None)))
    assert_identical(nested(keys, twice(state), twice(action), params),
                     plain(keys, twice(state), twice(action), params), ulps=True)


def test_unbatched_step_is_the_rule():
    params = CPN.default_params
    key = jax.random.PRNGKey(5)
    _, state = CPN.reset(key, params)
    action = CPN.action_space(params).sample(key)
    assert_identical(jax.jit(CPN.step)(key, state, action, params),
                     jax.jit(CPN._step_and_reset)(key, state, action, params))
