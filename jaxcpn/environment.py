"""Functional environment base class (the gymnax 1.0 convention), shared by both systems.

Subclasses implement ``reset_env`` and ``step_env`` for a single instance; this class adds the
automatic reset and the ``(obs, state, reward, terminated, truncated, info)`` step signature.
Batch with ``jax.vmap``; ``jax.jit`` at the outermost call.
"""

from __future__ import annotations

import abc
from typing import Any, Generic, TypeVar

import jax
import jax.numpy as jnp

TState = TypeVar("TState")
TParams = TypeVar("TParams")


class Environment(abc.ABC, Generic[TState, TParams]):
    """Single-instance, pure environment with automatic reset.

    ``step`` returns ``(obs, state, reward, terminated, truncated, info)``. When the episode ends
    (``terminated | truncated``), the returned ``obs``/``state`` are those of a fresh episode and
    the observation that ended the episode is kept in ``info["final_observation"]``.
    """

    @property
    @abc.abstractmethod
    def default_params(self) -> TParams:
        """The default instance of the subclass's config."""

    def reset(self, key: jax.Array, params: TParams | None = None) -> tuple[Any, TState]:
        """Starts an episode: returns ``(obs, state)``."""
        params = self.default_params if params is None else params
        return self.reset_env(key, params)

    def step(self, key: jax.Array, state: TState, action: Any, params: TParams | None = None):
        """Advances one step with automatic reset; see the class docstring."""
        params = self.default_params if params is None else params
        key_step, key_reset = jax.random.split(key)
        obs, next_state, reward, terminated, truncated, info = self.step_env(key_step, state, action, params)
        done = jnp.logical_or(terminated, truncated)
        obs_reset, state_reset = self.reset_env(key_reset, params)
        info = dict(info)
        info["final_observation"] = obs
        select = lambda a, b: jax.lax.select(done, a, b)  # noqa: E731
        next_state = jax.tree.map(select, state_reset, next_state)
        obs = jax.tree.map(select, obs_reset, obs)
        return obs, next_state, reward, terminated, truncated, info

    @abc.abstractmethod
    def reset_env(self, key: jax.Array, params: TParams) -> tuple[Any, TState]:
        """Starts an episode of one instance: ``(obs, state)``."""

    @abc.abstractmethod
    def step_env(self, key: jax.Array, state: TState, action: Any, params: TParams):
        """One step without reset: ``(obs, state, reward, terminated, truncated, info)``."""

    @abc.abstractmethod
    def observation_space(self, params: TParams):
        """Space of one observation."""

    @abc.abstractmethod
    def action_space(self, params: TParams):
        """Space of one action."""
