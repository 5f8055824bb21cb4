"""Gymnasium adapters of the green CPN: a single ``gymnasium.Env`` and a JAX-backed ``VectorEnv``.

Both call the jitted JAX environment; observations are ``Dict`` of float32 ``Box`` spaces with
the fields of :class:`jaxcpn.cpn.CPNObservation`, actions ``MultiDiscrete([N] * U)``.

    import gymnasium, jaxcpn  # importing jaxcpn registers the ids
    env = gymnasium.make("jaxcpn/GreenCPN-v0")
    vec = gymnasium.make_vec("jaxcpn/GreenCPN-v0", num_envs=1024, vectorization_mode="vector_entry_point")
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv

from jaxcpn.cpn import CPNConfig, CPNObservation, CPNParams, GreenCPN

PER_TASK_INFO = ("delay", "transmission_delay", "offset", "compute_delay", "revenue", "cost", "deadline_miss")


def observation_space(env: GreenCPN, params: CPNParams) -> spaces.Dict:
    """The gymnasium ``Dict`` space of one observation (float32 boxes, bounds of the JAX space)."""
    jax_space = env.observation_space(params)
    return spaces.Dict(
        {
            name: spaces.Box(low=np.float32(box.low), high=np.float32(box.high), shape=box.shape, dtype=np.float32)
            for name, box in jax_space.spaces.items()
        }
    )


def to_numpy_obs(obs: CPNObservation) -> dict[str, np.ndarray]:
    """``CPNObservation`` (possibly batched) -> dict of float32 NumPy arrays."""
    return {f.name: np.asarray(getattr(obs, f.name), dtype=np.float32) for f in dataclasses.fields(obs)}


class GreenCPNGymEnv(gymnasium.Env):
    """One green-CPN episode as a ``gymnasium.Env`` (no automatic reset: call ``reset``).

    Args:
        config: static config (default ``CPNConfig()``).
        params: instance; the seed-0 instance of ``config`` when ``None``.
    """

    metadata = {"render_modes": []}

    def __init__(self, config: CPNConfig | None = None, params: CPNParams | None = None):
        self.env = GreenCPN(config)
        self.params = self.env.default_params if params is None else params
        self.observation_space = observation_space(self.env, self.params)
        self.action_space = spaces.MultiDiscrete([self.env.config.num_nodes] * self.env.config.num_users)
        self._reset = jax.jit(self.env.reset_env)
        self._step = jax.jit(self.env.step_env)
        self._key = jax.random.PRNGKey(0)
        self._state = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._key = jax.random.PRNGKey(seed)
        self._key, key = jax.random.split(self._key)
        obs, self._state = self._reset(key, self.params)
        return to_numpy_obs(obs), {}

    def step(self, action):
        if self._state is None:
            raise RuntimeError("GreenCPNGymEnv.step called before reset")
        action = np.asarray(action)
        if action.shape != self.action_space.shape or not self.action_space.contains(action.astype(np.int64)):
            raise ValueError(
                f"action {action.tolist()} is invalid: expected {self.action_space.shape} ints in [0, {self.env.config.num_nodes - 1}]"
            )
        self._key, key = jax.random.split(self._key)
        obs, self._state, reward, terminated, truncated, info = self._step(key, self._state, jnp.asarray(action, jnp.int32), self.params)
        info = {name: np.asarray(info[name]) for name in PER_TASK_INFO + ("profit",)}
        return to_numpy_obs(obs), float(reward), bool(terminated), bool(truncated), info


class GreenCPNVectorEnv(VectorEnv):
    """``num_envs`` green-CPN episodes stepped by one jitted ``vmap`` call per vector step.

    Same-step autoreset (``metadata["autoreset_mode"] == AutoresetMode.SAME_STEP``): when an
    episode ends, the returned observation starts the next one and ``infos["final_obs"]`` holds
    the observation that ended it (``infos["_final_obs"]`` marks which envs ended).
    """

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, num_envs: int, config: CPNConfig | None = None, params: CPNParams | None = None):
        if int(num_envs) < 1:
            raise ValueError(f"num_envs={num_envs} is invalid: must be >= 1")
        self.env = GreenCPN(config)
        self.params = self.env.default_params if params is None else params
        self.num_envs = int(num_envs)
        self.single_observation_space = observation_space(self.env, self.params)
        self.single_action_space = spaces.MultiDiscrete([self.env.config.num_nodes] * self.env.config.num_users)
        self.observation_space = gymnasium.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self.action_space = gymnasium.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self._reset = jax.jit(jax.vmap(self.env.reset, in_axes=(0, None)))
        self._step = jax.jit(jax.vmap(self.env.step, in_axes=(0, 0, 0, None)))
        self._key = jax.random.PRNGKey(0)
        self._state = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self._key = jax.random.PRNGKey(seed)
        self._key, key = jax.random.split(self._key)
        obs, self._state = self._reset(jax.random.split(key, self.num_envs), self.params)
        return to_numpy_obs(obs), {}

    def step(self, actions):
        if self._state is None:
            raise RuntimeError("GreenCPNVectorEnv.step called before reset")
        actions = np.asarray(actions)
        if actions.shape != self.action_space.shape:
            raise ValueError(f"actions shape {actions.shape} is invalid: expected {self.action_space.shape}")
        self._key, key = jax.random.split(self._key)
        obs, self._state, reward, terminated, truncated, info = self._step(
            jax.random.split(key, self.num_envs), self._state, jnp.asarray(actions, jnp.int32), self.params
        )
        info = jax.device_get(info)
        if bool(np.asarray(info["invalid_action"]).any()):
            bad = int(np.flatnonzero(info["invalid_action"])[0])
            raise ValueError(f"actions[{bad}]={actions[bad].tolist()} is invalid: destinations must be in [0, {self.env.config.num_nodes - 1}]")
        done = np.asarray(terminated) | np.asarray(truncated)
        infos = {name: np.asarray(info[name]) for name in PER_TASK_INFO + ("profit",)}
        infos["final_obs"] = to_numpy_obs(info["final_observation"])
        infos["_final_obs"] = done
        return to_numpy_obs(obs), np.asarray(reward), np.asarray(terminated), np.asarray(truncated), infos
