"""PettingZoo ``ParallelEnv`` adapter of the two-timescale MEC: one agent per edge server.

Agent ``es_m`` observes its ``(L, K)`` arrivals of the last frame and acts with ``K`` deployment
bits (``MultiBinary(K)``). All agents share the frame reward.

**Over-storage repair rule (eq. 1).** A requested deployment whose total service size exceeds the
server's storage is repaired before the frame runs: requested services are kept in ascending
service index while they fit, and a requested service that does not fit is dropped (later, smaller
ones may still be kept). ``infos[agent]["repaired"]`` is True for that frame and
``infos[agent]["deployment"]`` is the deployment that actually ran. Feasible requests run
unchanged. Nothing is clipped silently.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from jaxcpn.mec import MECConfig, MECParams, TwoTimescaleMEC


def repair_deployment(requested: np.ndarray, sizes: np.ndarray, capacity: int) -> np.ndarray:
    """Applies the repair rule of this module to one server's requested bits.

    Args:
        requested: ``(K,)`` bool requested services.
        sizes: ``(K,)`` int storage units of each service.
        capacity: storage units of the server.

    Returns:
        ``(K,)`` bool deployment that fits.
    """
    kept = np.zeros_like(requested, dtype=bool)
    used = 0
    for k in np.flatnonzero(requested):
        if used + sizes[k] <= capacity:
            kept[k] = True
            used += int(sizes[k])
    return kept


class MECParallelEnv(ParallelEnv):
    """``TwoTimescaleMEC`` as a PettingZoo parallel environment (frames as steps)."""

    metadata = {"name": "jaxcpn_mec_v0", "render_modes": [], "is_parallelizable": True}

    def __init__(self, config: MECConfig | None = None, params: MECParams | None = None):
        self.env = TwoTimescaleMEC(MECConfig() if config is None else config)
        self.params = self.env.default_params if params is None else params
        cfg = self.env.config
        self.possible_agents = [f"es_{m}" for m in range(cfg.num_cells)]
        self.agents: list[str] = []
        self._sizes = np.asarray(self.params.service_size)
        self._capacity = np.asarray(self.params.storage_capacity)
        self._reset = jax.jit(self.env.reset_env)
        self._step = jax.jit(self.env.step_env)
        self._key = jax.random.PRNGKey(0)
        self._state = None

    @functools.lru_cache(maxsize=None)
    def observation_space(self, agent: str) -> spaces.Box:
        cfg = self.env.config
        return spaces.Box(0.0, np.inf, (cfg.slots_per_frame, cfg.num_services), np.float32)

    @functools.lru_cache(maxsize=None)
    def action_space(self, agent: str) -> spaces.MultiBinary:
        return spaces.MultiBinary(self.env.config.num_services)

    def _observations(self, obs) -> dict[str, np.ndarray]:
        obs = np.asarray(obs, dtype=np.float32)
        return {agent: obs[m] for m, agent in enumerate(self.possible_agents)}

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self._key = jax.random.PRNGKey(seed)
        self._key, key = jax.random.split(self._key)
        obs, self._state = self._reset(key, self.params)
        self.agents = list(self.possible_agents)
        return self._observations(obs), {agent: {} for agent in self.agents}

    def step(self, actions: dict[str, Any]):
        if not self.agents:
            raise RuntimeError("MECParallelEnv.step called on a finished episode: call reset")
        missing = sorted(set(self.agents) - set(actions))
        if missing:
            raise ValueError(f"actions: missing agent(s) {missing}; every live agent acts each frame")
        deployment = np.zeros((len(self.possible_agents), self.env.config.num_services), bool)
        repaired = {}
        for m, agent in enumerate(self.possible_agents):
            bits = np.asarray(actions[agent])
            if bits.shape != (self.env.config.num_services,) or not np.isin(bits, (0, 1)).all():
                raise ValueError(f"actions[{agent!r}]={bits.tolist()} is invalid: expected {self.env.config.num_services} bits (0/1)")
            fixed = repair_deployment(bits.astype(bool), self._sizes, int(self._capacity[m]))
            repaired[agent] = bool((fixed != bits.astype(bool)).any())
            deployment[m] = fixed
        self._key, key = jax.random.split(self._key)
        obs, self._state, reward, terminated, truncated, info = self._step(key, self._state, jnp.asarray(deployment), self.params)
        reward, terminated, truncated = float(reward), bool(terminated), bool(truncated)
        mean_delay = float(info["mean_delay"])
        observations = self._observations(obs)
        infos = {
            agent: {"repaired": repaired[agent], "deployment": deployment[m], "mean_delay": mean_delay}
            for m, agent in enumerate(self.possible_agents)
        }
        rewards = {agent: reward for agent in self.agents}
        terminations = {agent: terminated for agent in self.agents}
        truncations = {agent: truncated for agent in self.agents}
        if terminated or truncated:
            self.agents = []
        return observations, rewards, terminations, truncations, infos
