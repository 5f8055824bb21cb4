"""DDPG baseline of TTOSC (paper Sec. V-A): one learned agent that deploys and schedules.

The paper says only "the DDPG algorithm is used to select task scheduling policies at each
time slot", yet reports that DDPG beats Popularity where storage binds (large K) and loses
to it where it does not (small K, Fig. 5b): its deployment must be its own. So this DDPG
decides both timescales, with nothing taken from another method:

- **Deployment** (per frame): an actor maps the last frame's arrivals (M, L, K) to a
  preference ``p_{m,k} in (0, 1)`` (a relaxed ``x_{m,k}``); the executed deployment is the
  exact knapsack of eq. (15) on the values ``p - 1/2`` (a service is deployed only if
  preferred, the most preferred that fit; eq. 1 holds by construction). A critic scores
  (arrivals, deployment) by the frame's mean slot reward; the actor ascends the critic's
  gradient at the executed deployment, passed straight through the knapsack to ``p``
  (Bengio et al. 2013). Exploration: Gaussian noise on the preference logits.
- **Scheduling** (per slot): an actor maps the slot's arrivals and the deployment to
  ``pi_{m,k,n}`` by a masked softmax (eqs. 2-3 by construction); a critic scores (arrivals,
  deployment, schedule) by the slot reward; the actor ascends it (Silver et al. 2014).
  Exploration: Gaussian noise on the logits.

Both critics are a sum over services of one shared per-service network (a value
decomposition that matches the model: given the deployment, eq. 13 separates by service,
and a service's delay depends on its own arrivals, where it is deployed and how many
services share each ES's CPU); the actors are per-service networks too, with a one-hot
service index so that they can learn each service's sizes and cycles. A schedule or a
deployment does not change later arrivals, so each critic regresses its immediate reward
(``gamma = 0``: two contextual bandits, no bootstrap target); the actor ascends Polyak copies
of the critics (rate ``tau``, 1 by default: the newest critics).

Measured (default config, M = 5, K = 20, 40 episodes, 3 seeds): the training frame reward
rises from 0.52 (first 10% of frames) to 1.98 s (last 10%), while Popularity's is about 6 s;
this DDPG is a weak scheduler at this budget, and its deployment is its own.

The replay holds frames: the observation, the deployment, the L slots' arrivals,
schedules and rewards; a minibatch is ``batch_size`` frames and one random slot of each.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
import tyro

from agents.checks import non_negative, positive, require_episode_budget, require_int, require_real
from agents.replay import ReplayState, replay_add, replay_init, replay_sample
from agents.ttosc.networks import greedy_deployment
from jaxcpn.mec import model
from jaxcpn.mec.env import TwoTimescaleMEC
from jaxcpn.mec.generator import generate_params
from jaxcpn.mec.types import MECConfig, MECParams

MAX_GRAD_NORM = 10.0
"""Global gradient-norm clip of every actor and critic update."""


@dataclasses.dataclass(frozen=True)
class DDPGConfig:
    """DDPG configuration.

    Attributes:
        num_cells, num_services, slots_per_frame, frames_per_episode, instance_seed: the MEC
            instance (as in ``DDQNConfig``). The jobs set them from the DDQN's (one environment
            for every method), so they are not command-line flags (``tyro.conf.Suppress``).
        num_envs: parallel environments.
        num_episodes: training episodes over all environments.
        actor_learning_rate, critic_learning_rate: Adam step sizes of both actors and both
            critics (docs/model.md: the training reward rises at these values).
        batch_size: replay minibatch (frames, one random slot of each for the scheduler).
        buffer_size: replay capacity (frames).
        learning_starts: frames in the buffer before learning.
        updates_per_frame: gradient steps (of all four networks) per frame of all environments.
        gamma: discount (only 0: neither a deployment nor a schedule changes later arrivals, so
            both critics regress their immediate reward).
        tau: Polyak rate of the critic copies whose gradient the actor ascends (1: the newest
            critics; below 1 the actor follows a slower average of them).
        noise_std: Gaussian exploration noise on the actors' logits (deployment and schedule).
        hidden: MLP width of the per-service networks.
    """

    num_cells: Annotated[int, tyro.conf.Suppress] = 5
    num_services: Annotated[int, tyro.conf.Suppress] = 20
    slots_per_frame: Annotated[int, tyro.conf.Suppress] = 10
    frames_per_episode: Annotated[int, tyro.conf.Suppress] = 24
    instance_seed: Annotated[int, tyro.conf.Suppress] = 0
    num_envs: int = 4
    num_episodes: int = 40
    actor_learning_rate: float = 3e-4
    critic_learning_rate: float = 3e-3
    batch_size: int = 64
    buffer_size: int = 1000
    learning_starts: int = 32
    updates_per_frame: int = 8
    gamma: float = 0.0
    tau: float = 1.0
    noise_std: float = 0.5
    hidden: int = 64

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
            raise ValueError(f"DDPGConfig.gamma={self.gamma!r} is invalid: only 0 (per-slot and per-frame "
                             "contextual bandits) is implemented")

    @property
    def num_iterations(self) -> int:
        """Frames of the parallel environments played in training."""
        return self.num_episodes // self.num_envs * self.frames_per_episode

    def env_config(self) -> MECConfig:
        return MECConfig(num_cells=self.num_cells, num_services=self.num_services,
                         slots_per_frame=self.slots_per_frame, frames_per_episode=self.frames_per_episode)


# ----------------------------------------------------------------------------- networks


def _per_service(x: jax.Array) -> jax.Array:
    """(..., M, K) -> (..., K, M): one row per service."""
    return jnp.swapaxes(x, -1, -2).astype(jnp.float32)


def _service_index(batch_shape: tuple, num_services: int) -> jax.Array:
    """(..., K, K) one-hot service index."""
    return jnp.broadcast_to(jnp.eye(num_services, dtype=jnp.float32), batch_shape + (num_services, num_services))


def schedule_features(arrivals: jax.Array, deployment: jax.Array) -> jax.Array:
    """Per-service inputs (..., K, 3 M + K + 1) of the scheduling networks.

    Row k: log1p arrivals of k at each ES (M), where k is deployed (M), how many services
    share each ES's CPU (M, / K), the one-hot k (K), log1p of the slot's total arrivals (1).

    Args:
        arrivals: (..., M, K) tasks; deployment: (..., M, K) bool.
    """
    k = arrivals.shape[-1]
    batch = arrivals.shape[:-2]
    sharing = jnp.sum(deployment, axis=-1).astype(jnp.float32) / k  # (..., M)
    total = jnp.log1p(jnp.sum(arrivals, axis=(-2, -1)))[..., None, None]
    return jnp.concatenate([jnp.log1p(_per_service(arrivals)), _per_service(deployment),
                            jnp.broadcast_to(sharing[..., None, :], batch + (k, sharing.shape[-1])),
                            _service_index(batch, k), jnp.broadcast_to(total, batch + (k, 1))], axis=-1)


def deployment_features(observation: jax.Array) -> jax.Array:
    """Per-service inputs (..., K, 3 M + K) of the deployment networks.

    Row k: log1p of the last frame's mean and last-slot arrivals of k at each ES (2 M),
    log1p of each ES's mean total arrivals (M), the one-hot k (K).

    Args:
        observation: (..., M, L, K) arrivals of the last frame.
    """
    k = observation.shape[-1]
    batch = observation.shape[:-3]
    mean = jnp.mean(observation, axis=-2)  # (..., M, K)
    last = observation[..., -1, :]
    load = jnp.log1p(jnp.sum(mean, axis=-1))  # (..., M)
    return jnp.concatenate([jnp.log1p(_per_service(mean)), jnp.log1p(_per_service(last)),
                            jnp.broadcast_to(load[..., None, :], batch + (k, load.shape[-1])),
                            _service_index(batch, k)], axis=-1)


class _MLP(nn.Module):
    """Two ReLU layers and a linear output over the last axis."""

    hidden: int
    out: int
    out_scale: float = 1.0

    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Dense(self.hidden)(x))
        x = nn.relu(nn.Dense(self.hidden)(x))
        init = nn.initializers.variance_scaling(self.out_scale, "fan_in", "truncated_normal")
        return nn.Dense(self.out, kernel_init=init)(x)


class DeploymentActor(nn.Module):
    """Preference logits (..., M, K) of deploying k at m from the last frame's arrivals (..., M, L, K)."""

    hidden: int = 64

    @nn.compact
    def __call__(self, observation):
        m = observation.shape[-3]
        logits = _MLP(self.hidden, m, 1e-2)(deployment_features(observation))  # (..., K, M)
        return jnp.swapaxes(logits, -1, -2)


class ScheduleActor(nn.Module):
    """Scheduling logits (..., M, K, M + 1) from a slot's arrivals and the deployment (..., M, K)."""

    hidden: int = 64

    @nn.compact
    def __call__(self, arrivals, deployment):
        m, k = arrivals.shape[-2:]
        logits = _MLP(self.hidden, m * (m + 1), 1e-2)(schedule_features(arrivals, deployment))  # (..., K, M(M+1))
        return jnp.swapaxes(logits.reshape(logits.shape[:-1] + (m, m + 1)), -3, -2)


class Actor(nn.Module):
    """Both actors of the DDPG: ``deploy`` (per frame) and ``schedule`` (per slot).

    The output layers start near 0, so the initial schedule is close to the uniform masked
    softmax and the initial preference close to 1/2 (near-random deployments under noise).
    Calling the module returns both outputs (it is what ``init`` traces).
    """

    hidden: int = 64

    def setup(self):
        self.deployer = DeploymentActor(self.hidden)
        self.scheduler = ScheduleActor(self.hidden)

    def __call__(self, observation, arrivals, deployment):
        return self.deploy(observation), self.schedule(arrivals, deployment)

    def deploy(self, observation):
        """(..., M, L, K) -> (..., M, K) preference logits."""
        return self.deployer(observation)

    def schedule(self, arrivals, deployment):
        """(..., M, K), (..., M, K) bool -> (..., M, K, M + 1) scheduling logits."""
        return self.scheduler(arrivals, deployment)


class DeploymentCritic(nn.Module):
    """Mean slot reward () of a frame from (last frame's arrivals (..., M, L, K), deployment (..., M, K))."""

    hidden: int = 64

    @nn.compact
    def __call__(self, observation, deployment):
        features = deployment_features(observation)
        deployment = deployment.astype(jnp.float32)
        sharing = jnp.sum(deployment, axis=-1) / deployment.shape[-1]  # (..., M) services per ES, / K
        x = jnp.concatenate([features, _per_service(deployment),
                             jnp.broadcast_to(sharing[..., None, :], features.shape[:-1] + sharing.shape[-1:])], -1)
        return jnp.sum(_MLP(self.hidden, 1)(x)[..., 0], axis=-1)  # sum over services


class ScheduleCritic(nn.Module):
    """Slot reward () from (arrivals, deployment (..., M, K), schedule (..., M, K, M + 1))."""

    hidden: int = 64

    @nn.compact
    def __call__(self, arrivals, deployment, schedule):
        per_service = jnp.swapaxes(schedule, -3, -2)  # (..., K, M, M + 1)
        per_service = per_service.reshape(per_service.shape[:-2] + (-1,))
        x = jnp.concatenate([schedule_features(arrivals, deployment), per_service], axis=-1)
        return jnp.sum(_MLP(self.hidden, 1)(x)[..., 0], axis=-1)  # sum over services


# ----------------------------------------------------------------------------- actions


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


def deployment_from_logits(logits: jax.Array, params: MECParams, max_capacity: int) -> jax.Array:
    """Eq. (15) on the values ``sigmoid(logits) - 1/2``: (M, K) logits -> (M, K) bool, eq. (1) holds.

    A service is deployed only where it is preferred (``p > 1/2``), the most preferred first
    when storage binds (exact knapsack per ES).
    """
    values = jax.nn.sigmoid(logits) - 0.5
    return greedy_deployment(values, params.service_size, params.storage_capacity, max_capacity)


def actor_schedule_fn(actor: Actor, params: Any, noise_std: float | jax.Array = 0.0):
    """``schedule_fn`` for ``TwoTimescaleMEC`` from actor weights (Gaussian logit noise)."""

    def schedule_fn(key, arrivals, deployment, env_params, previous):
        del env_params, previous
        logits = actor.apply(params, arrivals, deployment, method=Actor.schedule)
        logits = logits + noise_std * jax.random.normal(key, logits.shape)
        return masked_softmax_schedule(logits, deployment)

    return schedule_fn


def ddpg_deployment(actor: Actor, params: Any, observation: jax.Array, env_params: MECParams, max_capacity: int,
                    key: jax.Array | None = None, noise_std: float | jax.Array = 0.0) -> jax.Array:
    """The DDPG's deployment (M, K) bool for one observation (M, L, K); noise needs ``key``."""
    logits = actor.apply(params, observation, method=Actor.deploy)
    if key is not None:
        logits = logits + noise_std * jax.random.normal(key, logits.shape)
    return deployment_from_logits(logits, env_params, max_capacity)


def ddpg_policy(actor: Actor, params: Any, max_capacity: int):
    """Evaluation deployment policy ``(key, observation (M, L, K), env_state, env_params) -> (M, K) bool``."""

    def policy(key, observation, env_state, env_params):
        del key, env_state
        return ddpg_deployment(actor, params, observation, env_params, max_capacity)

    return policy


def ddpg_env(config: MECConfig, actor: Actor, actor_params: Any) -> TwoTimescaleMEC:
    """Evaluation environment whose per-slot scheduler is the noise-free actor.

    Its deployment is the DDPG's too: play it with ``ddpg_policy(actor, actor_params, ...)``.
    """
    return TwoTimescaleMEC(config, schedule_fn=actor_schedule_fn(actor, actor_params, 0.0))


# ----------------------------------------------------------------------------- training


class FrameTransition(NamedTuple):
    """One frame of one environment.

    Attributes:
        observation: (M, L, K) float32 arrivals of the previous frame (the deployment's input).
        deployment: (M, K) bool, executed.
        arrivals: (L, M, K) float32 arrivals of the frame's slots (the scheduler's inputs).
        schedule: (L, M, K, M + 1) float32 executed schedules.
        slot_reward: (L,) float32 s, reduction of each slot's mean delay against all-to-cloud.
    """

    observation: jax.Array
    deployment: jax.Array
    arrivals: jax.Array
    schedule: jax.Array
    slot_reward: jax.Array


class DDPGState(NamedTuple):
    """Learner state: actor (both heads), critics, the critics' Polyak copies, Adam states."""

    actor_params: Any
    deployment_critic_params: Any
    schedule_critic_params: Any
    slow_critic_params: Any
    actor_opt_state: Any
    deployment_critic_opt_state: Any
    schedule_critic_opt_state: Any


class DDPGRunner(NamedTuple):
    """Scan carry: learner, env states (B), observations (B, M, L, K), replay of frames, key."""

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
    """Builds ``init``/``train_chunk``/``train`` (vmappable over keys) for the DDPG.

    Every iteration plays one frame of ``num_envs`` environments (deployment and L slots by
    the noisy actors), stores the frames, then takes ``updates_per_frame`` steps of both
    critics (regression on the rewards) and of the actor (ascent of both critics).
    """
    env_config = config.env_config()
    if env_params is None:
        env_params = generate_params(config.instance_seed, env_config)
    default_env_params = env_params
    max_capacity = env_config.max_storage_units
    actor = Actor(config.hidden)
    deployment_critic, schedule_critic = DeploymentCritic(config.hidden), ScheduleCritic(config.hidden)
    clip = optax.clip_by_global_norm(MAX_GRAD_NORM)
    actor_tx = optax.chain(clip, optax.adam(config.actor_learning_rate))
    critic_tx = optax.chain(clip, optax.adam(config.critic_learning_rate))
    m, k, slots = config.num_cells, config.num_services, config.slots_per_frame

    def init(key, env_params: MECParams | None = None):
        env_params = default_env_params if env_params is None else env_params
        key, key_actor, key_dc, key_sc, key_reset = jax.random.split(key, 5)
        observation = jnp.zeros((m, slots, k), jnp.float32)
        arrivals = jnp.zeros((m, k), jnp.float32)
        deployment = jnp.zeros((m, k), bool)
        schedule = model.cloud_schedule(m, k)
        actor_params = actor.init(key_actor, observation, arrivals, deployment)
        dc_params = deployment_critic.init(key_dc, observation, deployment)
        sc_params = schedule_critic.init(key_sc, arrivals, deployment, schedule)
        learner = DDPGState(actor_params, dc_params, sc_params, (dc_params, sc_params), actor_tx.init(actor_params),
                            critic_tx.init(dc_params), critic_tx.init(sc_params))
        env = TwoTimescaleMEC(env_config)
        observation_b, env_state = jax.vmap(env.reset, (0, None))(jax.random.split(key_reset, config.num_envs),
                                                                  env_params)
        example = FrameTransition(observation, deployment, jnp.zeros((slots, m, k), jnp.float32),
                                  jnp.zeros((slots, m, k, m + 1), jnp.float32), jnp.zeros((slots,), jnp.float32))
        return DDPGRunner(learner, env_state, observation_b, replay_init(example, config.buffer_size), key)

    def update(learner: DDPGState, batch: FrameTransition, slot: jax.Array, env_params: MECParams):
        """One step of both critics then the actor on ``batch`` (B frames) and one slot (B,) of each."""
        take = lambda x: jnp.take_along_axis(x, slot.reshape((-1,) + (1,) * (x.ndim - 1)), axis=1)[:, 0]  # noqa: E731
        arrivals, schedule, slot_reward = take(batch.arrivals), take(batch.schedule), take(batch.slot_reward)
        deployment = batch.deployment
        frame_reward = jnp.mean(batch.slot_reward, axis=-1)  # mean slot reward: the slot critic's scale

        def critic_loss(params):
            dc, sc = params
            deploy_error = deployment_critic.apply(dc, batch.observation, deployment) - frame_reward
            schedule_error = schedule_critic.apply(sc, arrivals, deployment, schedule) - slot_reward
            return jnp.mean(deploy_error**2) + jnp.mean(schedule_error**2), (jnp.mean(deploy_error**2),
                                                                               jnp.mean(schedule_error**2))

        (_, (dc_loss, sc_loss)), (dc_grads, sc_grads) = jax.value_and_grad(critic_loss, has_aux=True)(
            (learner.deployment_critic_params, learner.schedule_critic_params))
        dc_updates, dc_opt = critic_tx.update(dc_grads, learner.deployment_critic_opt_state)
        sc_updates, sc_opt = critic_tx.update(sc_grads, learner.schedule_critic_opt_state)
        dc_params = optax.apply_updates(learner.deployment_critic_params, dc_updates)
        sc_params = optax.apply_updates(learner.schedule_critic_params, sc_updates)
        slow_dc, slow_sc = optax.incremental_update((dc_params, sc_params), learner.slow_critic_params, config.tau)

        def actor_loss(params):
            logits = actor.apply(params, batch.observation, method=Actor.deploy)
            preference = jax.nn.sigmoid(logits)
            executed = jax.vmap(lambda l: deployment_from_logits(l, env_params, max_capacity))(
                jax.lax.stop_gradient(logits)).astype(jnp.float32)
            relaxed = executed + preference - jax.lax.stop_gradient(preference)  # straight through the knapsack
            deploy_value = deployment_critic.apply(slow_dc, batch.observation, relaxed)
            schedule_logits = actor.apply(params, arrivals, deployment, method=Actor.schedule)
            proposed = jax.vmap(masked_softmax_schedule)(schedule_logits, deployment)
            schedule_value = schedule_critic.apply(slow_sc, arrivals, deployment, proposed)
            return -jnp.mean(deploy_value) - jnp.mean(schedule_value)

        a_loss, a_grads = jax.value_and_grad(actor_loss)(learner.actor_params)
        a_updates, a_opt = actor_tx.update(a_grads, learner.actor_opt_state)
        actor_params = optax.apply_updates(learner.actor_params, a_updates)
        learner = DDPGState(actor_params, dc_params, sc_params, (slow_dc, slow_sc), a_opt, dc_opt, sc_opt)
        return learner, (dc_loss, sc_loss, a_loss)

    def iteration(runner: DDPGRunner, env_params: MECParams):
        key, key_deploy, key_step, key_learn = jax.random.split(runner.key, 4)
        params = runner.learner.actor_params
        deployment = jax.vmap(lambda o, kd: ddpg_deployment(actor, params, o, env_params, max_capacity, kd,
                                                            config.noise_std))(
            runner.observation, jax.random.split(key_deploy, config.num_envs))
        env = TwoTimescaleMEC(env_config, schedule_fn=actor_schedule_fn(actor, params, config.noise_std))
        next_obs, env_state, reward, _, _, info = jax.vmap(env.step, (0, 0, 0, None))(
            jax.random.split(key_step, config.num_envs), runner.env_state, deployment, env_params)
        frames = FrameTransition(runner.observation, deployment, jnp.swapaxes(info["final_observation"], 1, 2),
                                 info["schedule"], info["slot_reward"])
        replay = replay_add(runner.replay, frames)

        def learn(learner):
            def one(learner, key):
                key_batch, key_slot = jax.random.split(key)
                batch = replay_sample(replay, key_batch, config.batch_size)
                slot = jax.random.randint(key_slot, (config.batch_size,), 0, slots)
                return update(learner, batch, slot, env_params)

            return jax.lax.scan(one, learner, jax.random.split(key_learn, config.updates_per_frame))

        nan = jnp.full((config.updates_per_frame,), jnp.nan, jnp.float32)
        learner, (dc_loss, sc_loss, a_loss) = jax.lax.cond(replay.size >= config.learning_starts, learn,
                                                           lambda l: (l, (nan, nan, nan)), runner.learner)
        metrics = {"reward": jnp.mean(reward), "mean_delay": jnp.mean(info["mean_delay"]),
                   "deployment_critic_loss": jnp.mean(dc_loss), "critic_loss": jnp.mean(sc_loss),
                   "actor_loss": jnp.mean(a_loss),
                   "deployed": jnp.mean(jnp.sum(deployment, axis=-1).astype(jnp.float32)),
                   "storage_violation": jnp.any(info["storage_violation"])}
        return DDPGRunner(learner, env_state, next_obs, replay, key), metrics

    def train_chunk(runner, num_iterations: int, env_params: MECParams | None = None):
        """``num_iterations`` frames of all environments (static length)."""
        env_params = default_env_params if env_params is None else env_params
        return jax.lax.scan(lambda r, _: iteration(r, env_params), runner, None, length=num_iterations)

    def train(key, env_params: MECParams | None = None):
        return train_chunk(init(key, env_params), config.num_iterations, env_params)

    return DDPGTrainer(config, default_env_params, actor, init, train_chunk, train)
