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
from jax.custom_batching import custom_vmap

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
        """Advances one step with automatic reset; see the class docstring.

        Under ``jax.vmap`` the fresh episodes are drawn only when at least one environment of
        the batch is done (one ``lax.cond`` over the batch, Jumanji's ``VmapAutoResetWrapper``
        pattern); a plain ``vmap`` of the per-instance rule would compute a reset, its
        observation included, for every environment at every step and select it away. Both give
        the same numbers (bit for bit in tests/test_environment.py, except under nested ``vmap``s
        where XLA may fuse the two programs differently, float32 rounding apart). Not differentiable
        (``custom_vmap``), like the environments' integer decisions.
        """
        params = self.default_params if params is None else params
        if not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves((key, state, action, params))):
            # Concrete (eager) call: no batch to share a reset over, and step_env's eager checks
            # of the action must see its values (custom_vmap would trace them).
            return self._step_and_reset(key, state, action, params)
        return _auto_reset(self)(key, state, action, params)

    def _step_and_reset(self, key: jax.Array, state: TState, action: Any, params: TParams):
        """One instance's step with automatic reset (the rule ``step`` batches)."""
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

    def _batched_step_and_reset(self, axis_size: int, in_batched, key, state, action, params):
        """``vmap`` rule of ``step``: steps every environment, resets under ``lax.cond(any(done))``."""
        key_axes, state_axes, action_axes, params_axes = (
            jax.tree.map(lambda batched: 0 if batched else None, flags) for flags in in_batched)

        def advance(key, state, action, params):
            key_step, key_reset = jax.random.split(key)
            out = self.step_env(key_step, state, action, params)
            return out, key_reset

        (obs, next_state, reward, terminated, truncated, info), key_reset = jax.vmap(
            advance, in_axes=(key_axes, state_axes, action_axes, params_axes), axis_size=axis_size)(
            key, state, action, params)
        done = jnp.logical_or(terminated, truncated)
        info = dict(info)
        info["final_observation"] = obs

        def reset_done(carry):
            obs, next_state = carry
            obs_reset, state_reset = jax.vmap(self.reset_env, in_axes=(0, params_axes), axis_size=axis_size)(
                key_reset, params)
            select = jax.vmap(jax.lax.select)
            return (jax.tree.map(lambda a, b: select(done, a, b), obs_reset, obs),
                    jax.tree.map(lambda a, b: select(done, a, b), state_reset, next_state))

        obs, next_state = jax.lax.cond(jnp.any(done), reset_done, lambda carry: carry, (obs, next_state))
        out = (obs, next_state, reward, terminated, truncated, info)
        return out, jax.tree.map(lambda _: True, out)

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



def _auto_reset(env: Environment):
    """``env``'s step with automatic reset, batched by :meth:`Environment._batched_step_and_reset`.

    Built at each trace of ``step`` (it costs nothing at run time, and the environment object
    keeps no JAX state, so it can still be copied and pickled).
    """
    step = custom_vmap(env._step_and_reset)
    step.def_vmap(env._batched_step_and_reset)
    return step
