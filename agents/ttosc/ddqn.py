"""Multi-agent double DQN of TTOSC (paper Sec. IV-D, Algorithm 1), PureJaxRL style.

One agent per edge server (ES), each with an online and a target ``TTOSCNetwork``; the M
agents' parameters are stacked on a leading axis and applied with ``vmap``, and one Adam
optimiser over the stack equals M independent ones (Adam is elementwise; each agent's loss
term depends only on its own parameters). Every frame (Algorithm 1): the agents pick the
deployment (epsilon-greedy; greedy = knapsack over the partial values, eq. 15; exploration =
random knapsack-feasible deployments), the environment runs the small-timescale convex
scheduling for the frame's L slots and returns the shared frame reward, the transition goes
to a jitted replay ring buffer, and the agents take gradient steps on the double-DQN loss.

Termination and truncation stay separate: the environment only truncates, the target
bootstraps through truncation from the true next observation (``info["final_observation"]``)
and stops only at termination.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState

from agents.ttosc.networks import TTOSCNetwork, apply_agents, deployment_value, greedy_deployment, init_agents
from agents.checks import positive, require_episode_budget, require_int, require_real, unit_interval
from agents.replay import ReplayState, replay_add, replay_init, replay_sample
from jaxcpn.mec.env import TwoTimescaleMEC
from jaxcpn.mec.generator import generate_params
from jaxcpn.mec.types import MECConfig, MECParams


@dataclasses.dataclass(frozen=True)
class DDQNConfig:
    """TTOSC training configuration (paper V-A values where the paper gives them).

    Attributes:
        num_cells: M edge servers (= agents).
        num_services: K services.
        slots_per_frame: L slots per frame.
        frames_per_episode: frames (decisions) per episode.
        qp_iterations: iteration cap of the per-slot convex scheduler while training.
        instance_seed: seed of the MEC instance (``generate_params``).
        num_envs: parallel environments (one transition each per frame).
        num_episodes: episodes to train, counted over all environments.
        learning_rate: Adam step size (paper: 0.01).
        batch_size: replay minibatch (paper: 64).
        target_update_interval: gradient steps between target-network copies (paper: 20).
        epsilon_start: initial exploration rate (paper: 0.5).
        epsilon_end: final exploration rate (paper: 0.01).
        epsilon_episodes: episodes of the linear anneal (paper: 500).
        gamma: discount (not given by the paper; deployments do not change future demand,
            so a short horizon keeps targets low-variance without changing the optimum).
        buffer_size: replay capacity (transitions).
        learning_starts: transitions in the buffer before learning starts.
        updates_per_frame: gradient steps after each frame of all environments.
        hidden: GRU hidden size (paper: 128).
        num_gru_layers: stacked GRU layers.
        max_grad_norm: global gradient-norm clip.
    """

    num_cells: int = 5
    num_services: int = 20
    slots_per_frame: int = 10
    frames_per_episode: int = 24
    qp_iterations: int = 10
    instance_seed: int = 0
    num_envs: int = 4
    num_episodes: int = 200
    learning_rate: float = 0.01
    batch_size: int = 64
    target_update_interval: int = 20
    epsilon_start: float = 0.5
    epsilon_end: float = 0.01
    epsilon_episodes: int = 500
    gamma: float = 0.5
    buffer_size: int = 5000
    learning_starts: int = 256
    updates_per_frame: int = 1
    hidden: int = 128
    num_gru_layers: int = 2
    max_grad_norm: float = 10.0

    def __post_init__(self):
        for name in ("num_cells", "num_services", "slots_per_frame", "frames_per_episode", "qp_iterations",
                     "num_envs", "num_episodes", "batch_size", "target_update_interval", "epsilon_episodes",
                     "buffer_size", "updates_per_frame", "hidden", "num_gru_layers"):
            require_int("DDQNConfig", name, getattr(self, name), 1)
        require_int("DDQNConfig", "learning_starts", self.learning_starts, 0)
        require_int("DDQNConfig", "instance_seed", self.instance_seed, None)
        require_real("DDQNConfig", "learning_rate", self.learning_rate, positive, "> 0")
        require_real("DDQNConfig", "max_grad_norm", self.max_grad_norm, positive, "> 0")
        for name in ("epsilon_start", "epsilon_end", "gamma"):
            require_real("DDQNConfig", name, getattr(self, name), unit_interval, "in [0, 1]")
        if self.buffer_size < self.num_envs:
            raise ValueError(f"DDQNConfig.buffer_size={self.buffer_size} is invalid: must be >= num_envs="
                             f"{self.num_envs} (every frame adds num_envs transitions)")
        require_episode_budget("DDQNConfig", self.num_episodes, self.num_envs, self.buffer_size, self.learning_starts)

    @property
    def num_iterations(self) -> int:
        """Frames of the parallel environments played in training."""
        return self.num_episodes // self.num_envs * self.frames_per_episode

    def env_config(self, qp_iterations: int | None = None) -> MECConfig:
        return MECConfig(num_cells=self.num_cells, num_services=self.num_services,
                         slots_per_frame=self.slots_per_frame, frames_per_episode=self.frames_per_episode,
                         qp_iterations=self.qp_iterations if qp_iterations is None else qp_iterations)


class DDQNTrainState(TrainState):
    """Online parameters + Adam state, and the target network's parameters (stacked over M)."""

    target_params: Any


class Transition(NamedTuple):
    """One frame of one environment.

    Attributes:
        observation: (M, L, K) float32 arrivals of the previous frame.
        deployment: (M, K) bool action.
        reward: () float32 shared frame reward (s).
        next_observation: (M, L, K) float32 true next observation (before auto-reset).
        terminated: () bool (never True in this env; truncation is not stored: it bootstraps).
    """

    observation: jax.Array
    deployment: jax.Array
    reward: jax.Array
    next_observation: jax.Array
    terminated: jax.Array


class RunnerState(NamedTuple):
    """Scan carry of the training loop.

    Attributes:
        train_state: ``DDQNTrainState``.
        env_state: batched ``MECState`` (B envs).
        observation: (B, M, L, K) float32.
        replay: ``ReplayState`` of ``Transition``.
        episode_return: (B,) float32 return of each running episode so far.
        iteration: () int32 frames played (per environment).
        key: PRNG key.
    """

    train_state: DDQNTrainState
    env_state: Any
    observation: jax.Array
    replay: ReplayState
    episode_return: jax.Array
    iteration: jax.Array
    key: jax.Array


class Trainer(NamedTuple):
    """The pieces of ``make_trainer``: ``train(key) = train_chunk(init(key), num_iterations)``.

    ``init``, ``train_chunk`` and ``train`` take an optional last argument ``env_params``
    (default: the trainer's ``env_params``), so training can be ``vmap``ped over a params leaf
    (e.g. ``jax.vmap(trainer.train, in_axes=(None, axes))(key, batched_params)``); pass the same
    params to ``init`` and every ``train_chunk`` of one run.
    """

    config: DDQNConfig
    env: TwoTimescaleMEC
    env_params: MECParams
    network: TTOSCNetwork
    init: Callable[..., RunnerState]
    train_chunk: Callable[..., tuple[RunnerState, dict]]
    train: Callable[..., tuple[RunnerState, dict]]


class DDQNHyperparams(NamedTuple):
    """The dynamic hyperparameters of a run (``()`` float32 each, or batched for ``vmap``).

    Passing them to ``Trainer.train_chunk`` / ``train`` overrides the config's values inside
    one compiled program, so a scan ``vmap``s over them (scripts/scan.py). As in
    :class:`agents.stper.ppo.PPOHyperparams`, the learning rate scales the Adam update of the
    config's optimiser by ``learning_rate / config.learning_rate``.

    Attributes:
        learning_rate: Adam step size (> 0).
        epsilon_start: initial exploration rate.
        epsilon_end: final exploration rate.
        epsilon_episodes: episodes of the linear anneal (> 0).
    """

    learning_rate: jax.Array
    epsilon_start: jax.Array
    epsilon_end: jax.Array
    epsilon_episodes: jax.Array

    @classmethod
    def from_config(cls, config: "DDQNConfig") -> "DDQNHyperparams":
        """The config's values as ``()`` float32 arrays."""
        return cls(*(jnp.asarray(getattr(config, name), jnp.float32) for name in cls._fields))


# ----------------------------------------------------------------------------- maths


def epsilon_schedule(episode: jax.Array, config: DDQNConfig | DDQNHyperparams) -> jax.Array:
    """Linear anneal ``epsilon_start -> epsilon_end`` over ``epsilon_episodes``, then constant.

    ``config`` is a :class:`DDQNConfig` or (dynamic values) :class:`DDQNHyperparams`.
    """
    fraction = jnp.clip(episode.astype(jnp.float32) / jnp.maximum(config.epsilon_episodes, 1), 0.0, 1.0)
    return config.epsilon_start + fraction * (config.epsilon_end - config.epsilon_start)


def random_deployment(key: jax.Array, params: MECParams, max_capacity: int) -> jax.Array:
    """A random storage-feasible deployment: knapsack on uniform random values, (M, K) bool.

    Every service gets a positive value, so the result is a random maximal packing.
    """
    m, k = params.storage_capacity.shape[0], params.service_size.shape[0]
    values = jax.random.uniform(key, (m, k), jnp.float32, 1e-3, 1.0)
    return greedy_deployment(values, params.service_size, params.storage_capacity, max_capacity)


def ddqn_target(reward: jax.Array, terminated: jax.Array, gamma: float, next_online_values: jax.Array,
                next_target_values: jax.Array, params: MECParams, max_capacity: int) -> jax.Array:
    """Double-DQN target ``r + gamma (1 - terminated) Q_target(s', argmax_x Q_online(s', x))``.

    The argmax over feasible deployments is the knapsack of eq. (15) on the online partial
    values; the target network evaluates that deployment with eq. (14).

    Args:
        reward: (B,) shared frame reward.
        terminated: (B,) bool; truncation must not be passed here (it bootstraps).
        gamma: discount.
        next_online_values: (M, B, K) online partial values at ``s'``.
        next_target_values: (M, B, K) target partial values at ``s'``.
        params: the instance (service sizes, storage).
        max_capacity: static knapsack table size.

    Returns:
        (M, B) float32 targets, one per agent.
    """
    chosen = jax.vmap(lambda q: greedy_deployment(q, params.service_size, params.storage_capacity, max_capacity),
                      in_axes=1, out_axes=1)(next_online_values)  # (M, B, K)
    bootstrap = deployment_value(next_target_values, chosen)
    return reward[None, :] + gamma * (1.0 - terminated.astype(jnp.float32))[None, :] * bootstrap


def greedy_policy(network: TTOSCNetwork, params: Any, observation: jax.Array, env_params: MECParams,
                  max_capacity: int) -> jax.Array:
    """Greedy deployment (eq. 15) of the M agents for one observation (M, L, K) -> (M, K) bool."""
    values = apply_agents(network, params, observation)
    return greedy_deployment(values, env_params.service_size, env_params.storage_capacity, max_capacity)


# ----------------------------------------------------------------------------- training


def make_network(config: DDQNConfig) -> TTOSCNetwork:
    return TTOSCNetwork(num_services=config.num_services, hidden=config.hidden, num_gru_layers=config.num_gru_layers)


def make_trainer(config: DDQNConfig, env_params: MECParams | None = None) -> Trainer:
    """Builds ``init``, ``train_chunk`` and ``train`` for one seed (vmap them over keys).

    Args:
        config: training configuration.
        env_params: the default instance (``generate_params(config.instance_seed)`` if None);
            each returned function also accepts ``env_params`` at call time (traceable).
    """
    env = TwoTimescaleMEC(config.env_config())
    if env_params is None:
        env_params = generate_params(config.instance_seed, env.config)
    default_env_params = env_params
    network = make_network(config)
    max_capacity = env.config.max_storage_units
    m = config.num_cells
    optimizer = optax.chain(optax.clip_by_global_norm(config.max_grad_norm), optax.adam(config.learning_rate))

    def init(key: jax.Array, env_params: MECParams | None = None) -> RunnerState:
        env_params = default_env_params if env_params is None else env_params
        key, key_net, key_reset = jax.random.split(key, 3)
        params = init_agents(network, key_net, m, config.slots_per_frame)
        # step as a (strong) int32 array, as a restored checkpoint has it: a resumed run reuses the compiled chunk
        train_state = DDQNTrainState.create(apply_fn=network.apply, params=params, tx=optimizer,
                                            target_params=params).replace(step=jnp.zeros((), jnp.int32))
        observation, env_state = jax.vmap(env.reset, (0, None))(jax.random.split(key_reset, config.num_envs),
                                                                env_params)
        example = Transition(observation[0], jnp.zeros((m, config.num_services), bool), jnp.zeros((), jnp.float32),
                             observation[0], jnp.zeros((), bool))
        return RunnerState(train_state, env_state, observation, replay_init(example, config.buffer_size),
                           jnp.zeros((config.num_envs,), jnp.float32), jnp.zeros((), jnp.int32), key)

    def loss_fn(params, target_params, batch: Transition, env_params: MECParams):
        to_agents = lambda x: jnp.swapaxes(x, 0, 1)  # noqa: E731  (B, M, ...) -> (M, B, ...)
        values = apply_agents(network, params, to_agents(batch.observation))
        predicted = deployment_value(values, to_agents(batch.deployment))  # eq. (14), (M, B)
        next_online = apply_agents(network, params, to_agents(batch.next_observation))
        next_target = apply_agents(network, target_params, to_agents(batch.next_observation))
        target = ddqn_target(batch.reward, batch.terminated, config.gamma, jax.lax.stop_gradient(next_online),
                             next_target, env_params, max_capacity)
        error = predicted - jax.lax.stop_gradient(target)
        return jnp.sum(jnp.mean(error**2, axis=1)), jnp.mean(error**2)

    def gradient_step(train_state: DDQNTrainState, replay: ReplayState, key, env_params: MECParams,
                      hparams: DDQNHyperparams | None):
        """One double-DQN step on a minibatch; copies online -> target every ``target_update_interval``."""
        batch = replay_sample(replay, key, config.batch_size)
        (_, mse), grads = jax.value_and_grad(loss_fn, has_aux=True)(train_state.params, train_state.target_params,
                                                                    batch, env_params)
        if hparams is None:
            train_state = train_state.apply_gradients(grads=grads)
        else:  # the config's Adam update scaled to the dynamic learning rate
            updates, opt_state = train_state.tx.update(grads, train_state.opt_state, train_state.params)
            factor = hparams.learning_rate / config.learning_rate
            updates = jax.tree.map(lambda u: u * factor, updates)
            train_state = train_state.replace(step=train_state.step + 1, opt_state=opt_state,
                                              params=optax.apply_updates(train_state.params, updates))
        sync = train_state.step % config.target_update_interval == 0
        target = jax.tree.map(lambda online, old: jnp.where(sync, online, old), train_state.params,
                              train_state.target_params)
        return train_state.replace(target_params=target), mse

    def iteration(runner: RunnerState, env_params: MECParams, hparams: DDQNHyperparams | None):
        key, key_explore, key_random, key_step, key_learn = jax.random.split(runner.key, 5)
        episode = runner.iteration // config.frames_per_episode * config.num_envs
        epsilon = epsilon_schedule(episode, config if hparams is None else hparams)
        greedy = jax.vmap(lambda o: greedy_policy(network, runner.train_state.params, o, env_params, max_capacity))(
            runner.observation)
        random = jax.vmap(lambda k: random_deployment(k, env_params, max_capacity))(
            jax.random.split(key_random, config.num_envs))
        explore = jax.random.uniform(key_explore, (config.num_envs, m, 1)) < epsilon  # per agent
        deployment = jnp.where(explore, random, greedy)
        next_obs, env_state, reward, terminated, truncated, info = jax.vmap(env.step, (0, 0, 0, None))(
            jax.random.split(key_step, config.num_envs), runner.env_state, deployment, env_params)
        transition = Transition(runner.observation, deployment, reward, info["final_observation"], terminated)
        replay = replay_add(runner.replay, transition)

        def learn(train_state):
            return jax.lax.scan(lambda ts, k: gradient_step(ts, replay, k, env_params, hparams), train_state,
                                jax.random.split(key_learn, config.updates_per_frame))

        ready = replay.size >= config.learning_starts
        train_state, mse = jax.lax.cond(
            ready, learn,
            lambda ts: (ts, jnp.full((config.updates_per_frame,), jnp.nan, jnp.float32)), runner.train_state)
        episode_return = runner.episode_return + reward
        done = terminated | truncated
        metrics = {
            "reward": jnp.mean(reward),
            "mean_delay": jnp.mean(info["mean_delay"]),
            "epsilon": epsilon,
            "loss": jnp.mean(mse),
            "episode_done": jnp.any(done),
            # average frame reward of the episodes that ended this frame (nan if none)
            "episode_reward": jnp.where(jnp.any(done),
                                        jnp.sum(jnp.where(done, episode_return, 0.0))
                                        / jnp.maximum(jnp.sum(done), 1) / config.frames_per_episode, jnp.nan),
            "storage_violation": jnp.any(info["storage_violation"]),
        }
        runner = RunnerState(train_state, env_state, next_obs, replay, jnp.where(done, 0.0, episode_return),
                             runner.iteration + 1, key)
        return runner, metrics

    def train_chunk(runner: RunnerState, num_iterations: int, env_params: MECParams | None = None,
                    hparams: DDQNHyperparams | None = None) -> tuple[RunnerState, dict]:
        """``num_iterations`` frames of all environments (static length); ``hparams`` (optional)
        overrides the config's dynamic hyperparameters."""
        env_params = default_env_params if env_params is None else env_params
        return jax.lax.scan(lambda r, _: iteration(r, env_params, hparams), runner, None, length=num_iterations)

    def train(key: jax.Array, env_params: MECParams | None = None,
              hparams: DDQNHyperparams | None = None) -> tuple[RunnerState, dict]:
        return train_chunk(init(key, env_params), config.num_iterations, env_params, hparams)

    return Trainer(config, env, default_env_params, network, init, train_chunk, train)


def make_train(config: DDQNConfig) -> Callable[[jax.Array], tuple[RunnerState, dict]]:
    """PureJaxRL entry point: ``train(key) -> (RunnerState, metrics)``, vmappable over keys."""
    return make_trainer(config).train


def ddqn_policy(network: TTOSCNetwork, params: Any, max_capacity: int):
    """Evaluation policy ``(key, observation (M, L, K), env_state, env_params) -> (M, K) bool``."""

    def policy(key, observation, env_state, env_params):
        del key, env_state
        return greedy_policy(network, params, observation, env_params, max_capacity)

    return policy
