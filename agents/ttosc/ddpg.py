"""DDPG baseline of TTOSC (paper Sec. V-A): a learned per-slot task scheduler.

The actor maps one slot's arrivals and the frame's deployment to scheduling probabilities
``pi_{m,k,n}`` by a masked softmax (so eqs. 2-3 hold by construction); the critic estimates
the slot reward of (state, schedule); deployment is by Popularity (``mec_baselines``). The
slot's schedule does not change later arrivals, so the default ``gamma = 0`` makes the
critic regress the immediate slot reward (a deterministic-policy-gradient contextual bandit);
the actor ascends the critic (Silver et al. 2014), with target networks by Polyak averaging
and Gaussian exploration noise on the logits.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
import tyro

from agents.ttosc.baselines import popularity_deployment
from agents.checks import non_negative, positive, require_episode_budget, require_int, require_real
from agents.replay import ReplayState, replay_add, replay_init, replay_sample
from jaxcpn.mec import model
from jaxcpn.mec.env import TwoTimescaleMEC
from jaxcpn.mec.generator import generate_params
from jaxcpn.mec.types import MECConfig, MECParams


@dataclasses.dataclass(frozen=True)
class DDPGConfig:
    """DDPG configuration.

    Attributes:
        num_cells, num_services, slots_per_frame, frames_per_episode, instance_seed: the MEC
            instance (as in ``DDQNConfig``). The jobs set them from the DDQN's (one environment
            for every method), so they are not command-line flags (``tyro.conf.Suppress``).
        num_envs: parallel environments.
        num_episodes: training episodes over all environments.
        actor_learning_rate, critic_learning_rate: Adam step sizes (actor 1e-3 and 1e-4 drove the
            frame reward below its initial value within 40 episodes, the actor exploiting critic
            errors; 1e-5 did not).
        batch_size: replay minibatch (slot transitions).
        buffer_size: replay capacity (slot transitions).
        learning_starts: transitions before learning.
        updates_per_frame: gradient steps per frame of all environments.
        gamma: discount between slots (0: the schedule does not affect later slots).
        tau: Polyak rate of the target networks.
        noise_std: Gaussian exploration noise on the actor's logits.
        hidden: MLP width.
    """

    num_cells: Annotated[int, tyro.conf.Suppress] = 5
    num_services: Annotated[int, tyro.conf.Suppress] = 20
    slots_per_frame: Annotated[int, tyro.conf.Suppress] = 10
    frames_per_episode: Annotated[int, tyro.conf.Suppress] = 24
    instance_seed: Annotated[int, tyro.conf.Suppress] = 0
    num_envs: int = 4
    num_episodes: int = 40
    actor_learning_rate: float = 1e-5
    critic_learning_rate: float = 1e-3
    batch_size: int = 64
    buffer_size: int = 20000
    learning_starts: int = 256
    updates_per_frame: int = 4
    gamma: float = 0.0
    tau: float = 0.01
    noise_std: float = 0.5
    hidden: int = 128

    def __post_init__(self):
        for name in ("num_cells", "num_services", "slots_per_frame", "frames_per_episode", "num_envs",
                     "num_episodes", "batch_size", "buffer_size", "updates_per_frame", "hidden"):
            require_int("DDPGConfig", name, getattr(self, name), 1)
        require_int("DDPGConfig", "learning_starts", self.learning_starts, 0)
        require_int("DDPGConfig", "instance_seed", self.instance_seed, None)
        for name in ("actor_learning_rate", "critic_learning_rate"):
            require_real("DDPGConfig", name, getattr(self, name), positive, "> 0")
        require_real("DDPGConfig", "tau", self.tau, lambda v: 0 < v <= 1, "in (0, 1]")
        require_real("DDPGConfig", "noise_std", self.noise_std, non_negative, ">= 0")
        require_episode_budget("DDPGConfig", self.num_episodes, self.num_envs, self.buffer_size, self.learning_starts)
        if self.gamma != 0.0:
            raise ValueError(f"DDPGConfig.gamma={self.gamma!r} is invalid: only 0 (a per-slot contextual bandit) is implemented")

    @property
    def num_iterations(self) -> int:
        return self.num_episodes // self.num_envs * self.frames_per_episode

    def env_config(self) -> MECConfig:
        return MECConfig(num_cells=self.num_cells, num_services=self.num_services,
                         slots_per_frame=self.slots_per_frame, frames_per_episode=self.frames_per_episode)


def _features(arrivals: jax.Array, deployment: jax.Array) -> jax.Array:
    """Flat (..., 2 M K) input: log1p arrivals and the deployment indicator."""
    flat = lambda x: x.reshape(x.shape[:-2] + (-1,))  # noqa: E731
    return jnp.concatenate([flat(jnp.log1p(arrivals)), flat(deployment.astype(jnp.float32))], axis=-1)


class Actor(nn.Module):
    """Per-slot scheduling logits (..., M, K, M + 1) from arrivals and deployment (..., M, K)."""

    hidden: int = 128

    @nn.compact
    def __call__(self, arrivals, deployment):
        m, k = arrivals.shape[-2:]
        h = nn.relu(nn.Dense(self.hidden)(_features(arrivals, deployment)))
        h = nn.relu(nn.Dense(self.hidden)(h))
        logits = nn.Dense(m * k * (m + 1), kernel_init=nn.initializers.normal(1e-2))(h)
        return logits.reshape(arrivals.shape[:-2] + (m, k, m + 1))


class Critic(nn.Module):
    """Slot reward estimate () of (arrivals, deployment, schedule)."""

    hidden: int = 128

    @nn.compact
    def __call__(self, arrivals, deployment, schedule):
        x = jnp.concatenate([_features(arrivals, deployment), schedule.reshape(schedule.shape[:-3] + (-1,))], -1)
        h = nn.relu(nn.Dense(self.hidden)(x))
        h = nn.relu(nn.Dense(self.hidden)(h))
        return nn.Dense(1)(h)[..., 0]


def masked_softmax_schedule(logits: jax.Array, deployment: jax.Array) -> jax.Array:
    """Eqs. (2)-(3) by construction: softmax over the nodes allowed by ``scheduling_mask``.

    Args:
        logits: (M, K, M + 1); deployment: (M, K) bool.

    Returns:
        (M, K, M + 1) float32, rows on the simplex, exactly 0 off the mask.
    """
    mask = model.scheduling_mask(deployment)
    logits = jnp.where(mask, logits, -jnp.inf)
    return jnp.where(mask, jax.nn.softmax(logits, axis=-1), 0.0)


def actor_schedule_fn(actor: Actor, params: Any, noise_std: float | jax.Array = 0.0):
    """``schedule_fn`` for ``TwoTimescaleMEC`` from actor weights (Gaussian logit noise)."""

    def schedule_fn(key, arrivals, deployment, env_params, previous):
        del env_params, previous
        logits = actor.apply(params, arrivals, deployment)
        logits = logits + noise_std * jax.random.normal(key, logits.shape)
        return masked_softmax_schedule(logits, deployment)

    return schedule_fn


class SlotTransition(NamedTuple):
    """arrivals (M, K), deployment (M, K) bool, schedule (M, K, M + 1), reward () s."""

    arrivals: jax.Array
    deployment: jax.Array
    schedule: jax.Array
    reward: jax.Array


class DDPGState(NamedTuple):
    """Learner state: actor/critic parameters, their targets and Adam states."""

    actor_params: Any
    critic_params: Any
    target_actor_params: Any
    target_critic_params: Any
    actor_opt_state: Any
    critic_opt_state: Any


class DDPGRunner(NamedTuple):
    """Scan carry: learner, env states (B), observations (B, M, L, K), replay, key."""

    learner: DDPGState
    env_state: Any
    observation: jax.Array
    replay: ReplayState
    key: jax.Array


class DDPGTrainer(NamedTuple):
    """``init``/``train_chunk``/``train`` take an optional last ``env_params`` (default: ``env_params``)."""

    config: DDPGConfig
    env_params: MECParams
    actor: Actor
    init: Callable[..., DDPGRunner]
    train_chunk: Callable[..., tuple[DDPGRunner, dict]]
    train: Callable[..., tuple[DDPGRunner, dict]]


def make_ddpg_trainer(config: DDPGConfig, env_params: MECParams | None = None) -> DDPGTrainer:
    """Builds ``init``/``train_chunk``/``train`` (vmappable over keys) for the DDPG scheduler."""
    env_config = config.env_config()
    if env_params is None:
        env_params = generate_params(config.instance_seed, env_config)
    default_env_params = env_params
    actor, critic = Actor(config.hidden), Critic(config.hidden)
    actor_tx = optax.adam(config.actor_learning_rate)
    critic_tx = optax.adam(config.critic_learning_rate)
    m, k = config.num_cells, config.num_services

    def init(key, env_params: MECParams | None = None):
        env_params = default_env_params if env_params is None else env_params
        key, key_actor, key_critic, key_reset = jax.random.split(key, 4)
        arrivals = jnp.zeros((m, k), jnp.float32)
        deployment = jnp.zeros((m, k), bool)
        schedule = model.cloud_schedule(m, k)
        actor_params = actor.init(key_actor, arrivals, deployment)
        critic_params = critic.init(key_critic, arrivals, deployment, schedule)
        learner = DDPGState(actor_params, critic_params, actor_params, critic_params, actor_tx.init(actor_params),
                            critic_tx.init(critic_params))
        env = TwoTimescaleMEC(env_config)
        observation, env_state = jax.vmap(env.reset, (0, None))(jax.random.split(key_reset, config.num_envs),
                                                                env_params)
        replay = replay_init(SlotTransition(arrivals, deployment, schedule, jnp.zeros((), jnp.float32)),
                             config.buffer_size)
        return DDPGRunner(learner, env_state, observation, replay, key)

    def update(learner: DDPGState, batch: SlotTransition):
        def critic_loss(p):
            predicted = critic.apply(p, batch.arrivals, batch.deployment, batch.schedule)
            return jnp.mean((predicted - batch.reward) ** 2)  # gamma = 0: the target is the reward

        c_loss, c_grads = jax.value_and_grad(critic_loss)(learner.critic_params)
        c_updates, c_opt = critic_tx.update(c_grads, learner.critic_opt_state, learner.critic_params)
        critic_params = optax.apply_updates(learner.critic_params, c_updates)

        def actor_loss(p):
            logits = actor.apply(p, batch.arrivals, batch.deployment)
            schedule = jax.vmap(masked_softmax_schedule)(logits, batch.deployment)
            return -jnp.mean(critic.apply(critic_params, batch.arrivals, batch.deployment, schedule))

        a_loss, a_grads = jax.value_and_grad(actor_loss)(learner.actor_params)
        a_updates, a_opt = actor_tx.update(a_grads, learner.actor_opt_state, learner.actor_params)
        actor_params = optax.apply_updates(learner.actor_params, a_updates)
        polyak = lambda new, old: optax.incremental_update(new, old, config.tau)  # noqa: E731
        learner = DDPGState(actor_params, critic_params, polyak(actor_params, learner.target_actor_params),
                            polyak(critic_params, learner.target_critic_params), a_opt, c_opt)
        return learner, (c_loss, a_loss)

    def iteration(runner: DDPGRunner, env_params: MECParams):
        key, key_step, key_learn = jax.random.split(runner.key, 3)
        env = TwoTimescaleMEC(env_config, schedule_fn=actor_schedule_fn(actor, runner.learner.actor_params,
                                                                       config.noise_std))
        deployment = jax.vmap(popularity_deployment, (0, None))(runner.observation, env_params)
        next_obs, env_state, reward, _, _, info = jax.vmap(env.step, (0, 0, 0, None))(
            jax.random.split(key_step, config.num_envs), runner.env_state, deployment, env_params)
        slot_arrivals = jnp.swapaxes(info["final_observation"], 1, 2)  # (B, L, M, K)
        flat = lambda x: x.reshape((-1,) + x.shape[2:])  # noqa: E731
        transitions = SlotTransition(
            flat(slot_arrivals),
            flat(jnp.broadcast_to(deployment[:, None], slot_arrivals.shape).astype(bool)),
            flat(info["schedule"]), flat(info["slot_reward"]))
        replay = replay_add(runner.replay, transitions)

        def learn(learner):
            def one(learner, key):
                return update(learner, replay_sample(replay, key, config.batch_size))

            return jax.lax.scan(one, learner, jax.random.split(key_learn, config.updates_per_frame))

        nan = jnp.full((config.updates_per_frame,), jnp.nan, jnp.float32)
        learner, (c_loss, a_loss) = jax.lax.cond(replay.size >= config.learning_starts, learn,
                                                 lambda l: (l, (nan, nan)), runner.learner)
        metrics = {"reward": jnp.mean(reward), "mean_delay": jnp.mean(info["mean_delay"]),
                   "critic_loss": jnp.mean(c_loss), "actor_loss": jnp.mean(a_loss)}
        return DDPGRunner(learner, env_state, next_obs, replay, key), metrics

    def train_chunk(runner, num_iterations: int, env_params: MECParams | None = None):
        env_params = default_env_params if env_params is None else env_params
        return jax.lax.scan(lambda r, _: iteration(r, env_params), runner, None, length=num_iterations)

    def train(key, env_params: MECParams | None = None):
        return train_chunk(init(key, env_params), config.num_iterations, env_params)

    return DDPGTrainer(config, default_env_params, actor, init, train_chunk, train)


def ddpg_env(config: MECConfig, actor: Actor, actor_params: Any) -> TwoTimescaleMEC:
    """Evaluation environment whose per-slot scheduler is the noise-free actor."""
    return TwoTimescaleMEC(config, schedule_fn=actor_schedule_fn(actor, actor_params, 0.0))
