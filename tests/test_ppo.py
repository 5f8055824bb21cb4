"""PPO maths: GAE scan vs a plain loop (truncation and termination), the clipped loss by hand;
recurrent perception: the rollout vs the network stepped by hand, restarts at episode
boundaries, the training re-run vs the rollout, evaluation, no recompilation, a tiny run."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents.stper import networks as nets
from agents.stper.baselines import cpn_greedy, cpn_random, rollout_cpn
from agents.stper.ppo import (PPOConfig, compute_gae, episode_carry, explained_variance, make_trainer, network_policy,
                              ppo_loss_terms)
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


BASELINE_ENV = GreenCPN(CPNConfig(num_nodes=5, num_users=7, window=4, episode_length=6))
BASELINE_RESET = jax.jit(jax.vmap(BASELINE_ENV.reset, in_axes=(0, None)))  # one program for both policies


@pytest.mark.parametrize("policy", [cpn_random, cpn_greedy])
def test_baselines_never_invalid(policy):
    env = BASELINE_ENV
    params = env.default_params
    keys = jax.random.split(jax.random.PRNGKey(3), 32)
    _, state = BASELINE_RESET(keys, params)

    def one_step(state, key):
        keys = jax.random.split(key, 32)
        action = jax.vmap(policy, in_axes=(0, None, 0, None))(keys, env, state, params)
        _, state, _, _, _, info = jax.vmap(env.step, in_axes=(0, 0, 0, None))(keys, state, action, params)
        return state, (action, info["invalid_action"])

    _, (actions, invalid) = jax.jit(lambda s: jax.lax.scan(one_step, s, jax.random.split(jax.random.PRNGKey(4), 12)))(state)
    assert actions.dtype == jnp.int32 and actions.shape == (12, 32, 7)
    assert int(actions.min()) >= 0 and int(actions.max()) < 5
    assert not bool(invalid.any())


# ---------------------------------------------------------------------------- recurrent perception
def recurrent_config(num_steps: int, **overrides) -> PPOConfig:
    """A tiny STPer (GCN + recurrent LSTMs): 3 envs, episodes of 4 slots, ``num_steps`` per rollout."""
    return PPOConfig(**{**dict(variant="stper", num_nodes=4, num_users=4, window=4, episode_length=4, num_envs=3,
                               num_steps=num_steps, num_updates=2, update_epochs=1, num_minibatches=1, embed_dim=8,
                               lstm_hidden=8, fusion_hidden=(16,), head_hidden=(16,)), **overrides})


def hand_rollout(trainer, runner, traj):
    """The rollout's network outputs, stepped by hand: env by env, slot by slot, in Python.

    Replays ``traj``'s actions with the rollout's key schedule (so auto-resets draw the same
    start hours); at an episode's first slot the LSTMs burn in over its window, then every
    slot advances them once (eqs. 18-20).
    """
    network, variables, env, params = trainer.network, runner.train_state.params, trainer.env, trainer.env_params
    burn_in = jax.jit(lambda obs: network.apply(variables, obs, method=nets.STPerNetwork.burn_in))
    advance = jax.jit(lambda carry, obs: network.apply(variables, carry, obs, method=nets.STPerNetwork.advance))
    head = jax.jit(lambda obs, carry: network.apply(variables, obs, nets.temporal_features(carry), params.adjacency,
                                                    method=nets.STPerNetwork.head))
    step = jax.jit(env.step)
    num_steps, num_envs = traj.reward.shape
    out = {name: np.zeros((num_steps, num_envs)) for name in ("log_prob", "value", "final_value", "first")}
    out["start_hidden"] = [[None] * num_envs for _ in range(num_steps)]
    keys = [runner.key]
    for _ in range(num_steps):
        key, _, key_step = jax.random.split(keys[-1], 3)
        keys[-1] = jax.random.split(key_step, num_envs)
        keys.append(key)
    for b in range(num_envs):
        pick = lambda tree: jax.tree.map(lambda x: x[b], tree)  # noqa: E731
        obs, state, carry, first = pick(runner.obs), pick(runner.env_state), pick(runner.hidden), bool(runner.first[b])
        for t in range(num_steps):
            out["first"][t, b] = first
            if first:
                carry = burn_in(obs)
            out["start_hidden"][t][b] = carry
            carry = advance(carry, obs)
            logits, value = head(obs, carry)
            action = traj.action[t, b]
            out["log_prob"][t, b], out["value"][t, b] = nets.log_prob(logits, action), value
            obs, state, _, terminated, truncated, info = step(keys[t][b], state, action, params)
            first = bool(terminated | truncated)
            if first:
                out["final_value"][t, b] = head(info["final_observation"], advance(carry, info["final_observation"]))[1]
    return out


@pytest.fixture(scope="module", params=[8, 6], ids=["aligned", "unaligned"])
def recurrent_rollouts(request):
    """Two consecutive rollouts of a fresh runner: with 8 steps each is two whole episodes (the
    static schedule); with 6 the second starts mid-episode (the any(first) branches)."""
    trainer = make_trainer(recurrent_config(request.param))
    runner = jax.jit(trainer.init)(jax.random.PRNGKey(0))
    rollout = jax.jit(trainer.rollout)
    middle, first_traj = rollout(runner)
    _, second_traj = rollout(middle)
    return trainer, [(runner, traj, hand_rollout(trainer, runner, traj))
                     for runner, traj in ((runner, first_traj), (middle, second_traj))]


@pytest.mark.xdist_group("ppo-recurrent-rollouts")  # one worker builds the fixture
def test_recurrent_rollout_equals_hand_stepped_network(recurrent_rollouts):
    trainer, rollouts = recurrent_rollouts
    for _, traj, hand in rollouts:
        np.testing.assert_allclose(traj.log_prob, hand["log_prob"], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(traj.value, hand["value"], rtol=1e-5, atol=1e-5)
        done = np.asarray(traj.truncation | traj.termination)
        assert done.any()
        np.testing.assert_allclose(np.where(done, traj.final_value, 0.0), hand["final_value"], rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(traj.first, hand["first"])


@pytest.mark.xdist_group("ppo-recurrent-rollouts")  # one worker builds the fixture
def test_hidden_state_restarts_at_episode_boundaries(recurrent_rollouts):
    trainer, rollouts = recurrent_rollouts
    config, episode_length = trainer.config, trainer.env.config.episode_length
    for index, (_, traj, hand) in enumerate(rollouts):
        steps = index * config.num_steps + np.arange(config.num_steps)  # since the fresh runner
        starts = np.broadcast_to((steps % episode_length == 0)[:, None], traj.first.shape)
        np.testing.assert_array_equal(traj.first, starts)
        for t in np.flatnonzero(np.asarray(traj.first[:, 0])):
            for b in range(config.num_envs):  # the states before an episode's first slot are its burn-in alone
                stored = jax.tree.map(lambda x: x[t, b], traj.hidden)
                chex.assert_trees_all_close(stored, hand["start_hidden"][t][b], rtol=1e-5, atol=1e-6)
        if index == 0:  # a fresh runner's zero states never reach a decision
            assert bool(traj.first[0].all())


@pytest.mark.xdist_group("ppo-recurrent-rollouts")  # one worker builds the fixture
def test_training_sequences_reproduce_the_rollout(recurrent_rollouts):
    """The loss's re-run of the LSTMs over [T, M] sequences from the stored states gives the
    rollout's log-probabilities and values at the rollout's parameters (ratio 1)."""
    trainer, rollouts = recurrent_rollouts
    network, params = trainer.network, trainer.env_params
    merge = lambda x: x.reshape((-1,) + x.shape[2:])  # noqa: E731

    @jax.jit  # the loss's computation as one program (the two rollouts have the same shapes)
    def rerun(variables, traj):
        temporal = nets.advance_sequence(network, variables, traj.hidden, traj.obs, traj.first)
        logits, values = nets.policy_outputs(network, variables, (), jax.tree.map(merge, traj.obs), params.adjacency,
                                             merge(temporal))
        return nets.log_prob(logits, merge(traj.action)), values

    for runner, traj, _ in rollouts:
        log_prob, values = rerun(runner.train_state.params, traj)
        np.testing.assert_allclose(log_prob, merge(traj.log_prob), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(values, merge(traj.value), rtol=1e-5, atol=1e-5)


def test_network_policy_replays_the_recurrent_state():
    """Evaluation rebuilds the LSTM states from the episode's start: equal to stepping them."""
    # the rollout fixture's aligned config: the same init program (compiled once), other parameters
    trainer = make_trainer(recurrent_config(8))
    network, env, params = trainer.network, trainer.env, trainer.env_params
    obs, state = jax.jit(env.reset)(jax.random.PRNGKey(11), params)
    variables = jax.jit(trainer.init)(jax.random.PRNGKey(3)).train_state.params
    advance = jax.jit(lambda carry, obs: network.apply(variables, carry, obs, method=nets.STPerNetwork.advance))
    head = jax.jit(lambda obs, carry: network.apply(variables, obs, nets.temporal_features(carry), params.adjacency,
                                                    method=nets.STPerNetwork.head)[0])
    replayed = jax.jit(lambda s: episode_carry(network, variables, env, s, params))
    policy = jax.jit(lambda s: network_policy(network, variables)(None, env, s, params))
    carry = jax.jit(lambda obs: network.apply(variables, obs, method=nets.STPerNetwork.burn_in))(obs)
    step_env = jax.jit(env.step_env)
    for _ in range(env.config.episode_length):
        carry = advance(carry, obs)
        chex.assert_trees_all_close(replayed(state), carry, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(policy(state), np.argmax(head(obs, carry), -1))
        obs, state, *_ = step_env(jax.random.PRNGKey(0), state, jnp.arange(4, dtype=jnp.int32), params)


TINY_RECURRENT = PPOConfig(variant="stper", num_nodes=4, num_users=4, window=6, episode_length=6, num_envs=16,
                           num_steps=6, num_updates=40, num_minibatches=2, learning_rate=3e-3, embed_dim=8,
                           lstm_hidden=16, fusion_hidden=(32,), head_hidden=(32,))
TINY_CHUNKS = 4  # the 40 updates as 4 calls of one jitted 10-update chunk


@pytest.fixture(scope="module")
def tiny_recurrent_training():
    """A tiny STPer training run in ``TINY_CHUNKS`` calls of one jitted chunk that may be traced
    once (``chex.assert_max_traces``): the run of the two tests below, compiled once for both."""
    config = TINY_RECURRENT
    assert config.recurrent
    chex.clear_trace_counter()
    trainer = make_trainer(config)
    chunk = jax.jit(chex.assert_max_traces(trainer.train_chunk, n=1), static_argnums=1)
    start = jax.jit(trainer.init)(jax.random.PRNGKey(0))
    runner, chunks = start, []
    for _ in range(TINY_CHUNKS):  # train(key) is train_chunk(init(key), num_updates): the same updates
        runner, metrics = chunk(runner, config.num_updates // TINY_CHUNKS)
        chunks.append(metrics)
    metrics = jax.tree.map(lambda *m: np.concatenate(m), *chunks)
    return trainer, start, runner, chunks, metrics


@pytest.mark.xdist_group("ppo-tiny-recurrent-training")  # one worker builds the fixture
def test_no_recompilation_across_chunks(tiny_recurrent_training):
    _, start, runner, chunks, _ = tiny_recurrent_training  # a retrace would have raised in the fixture
    assert len(chunks) == TINY_CHUNKS >= 3
    jax.tree.map(lambda a, b: chex.assert_equal(a.dtype, b.dtype) or chex.assert_equal(a.shape, b.shape), start, runner)
    chex.assert_tree_all_finite(chunks)
    assert int(runner.update) == TINY_RECURRENT.num_updates


@pytest.mark.timeout(300)
@pytest.mark.xdist_group("ppo-tiny-recurrent-training")  # one worker builds the fixture
def test_tiny_recurrent_training_beats_random(tiny_recurrent_training):
    config = TINY_RECURRENT
    trainer, start, runner, _, metrics = tiny_recurrent_training
    assert metrics["episode_return"].shape == (config.num_updates,)
    env, params, key = trainer.env, trainer.env_params, jax.random.PRNGKey(7)
    random_profit = float(jax.jit(lambda k: rollout_cpn(cpn_random, env, params, k, 64))(key)["profit"].mean())
    policy = network_policy(trainer.network, runner.train_state.params)
    trained = float(jax.jit(lambda k: rollout_cpn(policy, env, params, k, 64))(key)["profit"].mean())
    assert trained > 1.2 * random_profit > 0, (trained, random_profit)
    returns = np.asarray(metrics["episode_return"])
    assert returns[-5:].mean() > returns[:5].mean()
    # PPO trains the graph learning module (the default): its node embeddings and mixing share
    # move; the topology ablation has no such parameters.
    before = start.train_state.params["params"]["graph_learning"]
    after = runner.train_state.params["params"]["graph_learning"]
    chex.assert_tree_all_finite(after)
    assert float(jnp.abs(after["node_embedding"] - before["node_embedding"]).max()) > 0
    assert float(after["mix_logit"]) != float(before["mix_logit"])
    topology = make_trainer(dataclasses.replace(config, adjacency="topology"))
    assert "graph_learning" not in jax.eval_shape(topology.init, jax.random.PRNGKey(0)).train_state.params["params"]


def test_recurrent_config_checks():
    with pytest.raises(ValueError, match="perception"):
        PPOConfig(perception="nope")
    with pytest.raises(ValueError, match=r"PPOConfig.adjacency='fixed' is invalid: must be one of \('learned', "):
        PPOConfig(adjacency="fixed")
    assert PPOConfig().adjacency == "learned"
    with pytest.raises(ValueError, match="num_minibatches=4 is invalid: must divide num_envs = 6"):
        PPOConfig(num_envs=6, num_steps=2, num_minibatches=4)
    PPOConfig(num_envs=6, num_steps=2, num_minibatches=4, perception="window")  # samples, not environments
    PPOConfig(variant="stper-m", num_envs=6, num_steps=2, num_minibatches=4)  # no LSTM: samples
    assert PPOConfig().recurrent and not PPOConfig(perception="window").recurrent


def test_stper_reads_the_node_queues_when_compute_is_shared():
    """With CPNConfig.compute_sharing the observation has node_backlog and the network's outputs depend on it;
    a tiny training run on that env runs and its returns are finite."""
    config = PPOConfig(variant="stper", num_nodes=4, num_users=4, window=6, episode_length=6, num_envs=8, num_steps=6,
                       num_updates=2, num_minibatches=2, embed_dim=8, lstm_hidden=16, fusion_hidden=(32,),
                       head_hidden=(32,), compute_sharing=True)
    trainer = make_trainer(config)
    runner, metrics = jax.jit(trainer.train)(jax.random.PRNGKey(0))
    assert np.all(np.isfinite(np.asarray(metrics["episode_return"])))
    obs, _ = jax.jit(trainer.env.reset)(jax.random.PRNGKey(1), trainer.env_params)
    assert hasattr(obs, "node_backlog")
    variables, adjacency = runner.train_state.params, trainer.env_params.adjacency
    apply = jax.jit(trainer.network.apply)  # one program for both observations
    logits, value = apply(variables, obs, adjacency)
    queued = obs.replace(node_backlog=obs.node_backlog.at[0].set(5.0))
    logits_queued, value_queued = apply(variables, queued, adjacency)
    assert not np.allclose(np.asarray(logits), np.asarray(logits_queued)) or float(value) != float(value_queued)
