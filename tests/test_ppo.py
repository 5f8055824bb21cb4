"""PPO maths: GAE scan vs a plain loop (truncation and termination), the clipped loss by hand."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents.stper.baselines import cpn_greedy, cpn_random
from agents.stper.ppo import compute_gae, explained_variance, ppo_loss_terms
from jaxcpn.cpn import CPNConfig, GreenCPN


def gae_loop(rewards, values, next_values, termination, truncation, gamma, lam):
    """Plain-Python GAE straight from the definition (float64)."""
    steps, batch = rewards.shape
    advantages = np.zeros((steps, batch))
    for b in range(batch):
        running = 0.0
        for t in reversed(range(steps)):
            bootstrap = 0.0 if termination[t, b] else gamma * next_values[t, b]
            delta = rewards[t, b] + bootstrap - values[t, b]
            if termination[t, b] or truncation[t, b]:
                running = 0.0
            running = delta + gamma * lam * running
            advantages[t, b] = running
    return advantages, advantages + values


class TestGAE(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_scan_equals_loop(self):
        rng = np.random.default_rng(0)
        steps, batch = 17, 5
        rewards = rng.normal(size=(steps, batch)).astype(np.float32)
        values = rng.normal(size=(steps, batch)).astype(np.float32)
        next_values = rng.normal(size=(steps, batch)).astype(np.float32)
        termination = rng.random((steps, batch)) < 0.15
        truncation = (rng.random((steps, batch)) < 0.15) & ~termination
        assert termination.any() and truncation.any()
        gae = self.variant(lambda *a: compute_gae(*a, gamma=0.99, gae_lambda=0.9))
        adv, targets = gae(rewards, values, next_values, termination, truncation)
        ref_adv, ref_targets = gae_loop(rewards, values, next_values, termination, truncation, 0.99, 0.9)
        np.testing.assert_allclose(adv, ref_adv, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(targets, ref_targets, rtol=1e-5, atol=1e-5)

    def test_truncation_bootstraps_termination_does_not(self):
        ones = jnp.ones((1, 1))
        zeros = jnp.zeros((1, 1))
        adv_trunc, _ = compute_gae(ones, zeros, 2 * ones, zeros, ones, gamma=0.5, gae_lambda=1.0)
        adv_term, _ = compute_gae(ones, zeros, 2 * ones, ones, zeros, gamma=0.5, gae_lambda=1.0)
        np.testing.assert_allclose(adv_trunc, [[2.0]])  # 1 + 0.5 * 2
        np.testing.assert_allclose(adv_term, [[1.0]])


class TestLoss(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_hand_computed(self):
        # Two samples, eps = 0.2. Sample 0: ratio e^0.5 = 1.6487 > 1.2, A = +1 -> clipped 1.2.
        # Sample 1: ratio e^-0.5 = 0.6065 < 0.8, A = -2 -> min(-1.2131, -1.6) = -1.6.
        # policy loss = -(1.2 - 1.6)/2 = 0.2.
        # values: new (1.0, 0.0), old (0.5, 0.1), targets (2.0, 0.0):
        #   sample 0: unclipped (1-2)^2 = 1, clipped 0.7 -> (0.7-2)^2 = 1.69 -> 1.69
        #   sample 1: unclipped 0, clipped 0.1 + clip(-0.1) = 0.0 -> 0 -> 0
        #   value loss = 0.5 * (1.69 + 0) / 2 = 0.4225.
        # entropy mean = 1.5; total = 0.2 + 0.5 * 0.4225 - 0.01 * 1.5 = 0.39625.
        fn = self.variant(lambda *a: ppo_loss_terms(*a, clip_eps=0.2, vf_coef=0.5, ent_coef=0.01))
        total, aux = fn(
            jnp.array([0.5, -0.5]), jnp.zeros(2), jnp.array([1.0, -2.0]), jnp.array([1.0, 0.0]),
            jnp.array([0.5, 0.1]), jnp.array([2.0, 0.0]), jnp.array([1.0, 2.0]),
        )
        np.testing.assert_allclose(aux["policy_loss"], 0.2, rtol=1e-5)
        np.testing.assert_allclose(aux["value_loss"], 0.4225, rtol=1e-5)
        np.testing.assert_allclose(total, 0.39625, rtol=1e-5)
        np.testing.assert_allclose(aux["clip_fraction"], 1.0)
        kl = np.mean([np.exp(0.5) - 1 - 0.5, np.exp(-0.5) - 1 + 0.5])
        np.testing.assert_allclose(aux["approx_kl"], kl, rtol=1e-5)


def test_explained_variance():
    targets = jnp.array([1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(explained_variance(targets, targets), 1.0)
    np.testing.assert_allclose(explained_variance(jnp.full(4, 2.5), targets), 0.0, atol=1e-6)


@pytest.mark.parametrize("policy", [cpn_random, cpn_greedy])
def test_baselines_never_invalid(policy):
    env = GreenCPN(CPNConfig(num_nodes=5, num_users=7, window=4, episode_length=6))
    params = env.default_params
    keys = jax.random.split(jax.random.PRNGKey(3), 32)
    _, state = jax.vmap(env.reset, in_axes=(0, None))(keys, params)

    def one_step(state, key):
        keys = jax.random.split(key, 32)
        action = jax.vmap(policy, in_axes=(0, None, 0, None))(keys, env, state, params)
        _, state, _, _, _, info = jax.vmap(env.step, in_axes=(0, 0, 0, None))(keys, state, action, params)
        return state, (action, info["invalid_action"])

    _, (actions, invalid) = jax.jit(lambda s: jax.lax.scan(one_step, s, jax.random.split(jax.random.PRNGKey(4), 12)))(state)
    assert actions.dtype == jnp.int32 and actions.shape == (12, 32, 7)
    assert int(actions.min()) >= 0 and int(actions.max()) < 5
    assert not bool(invalid.any())
