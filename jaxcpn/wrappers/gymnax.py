"""gymnax 1.0 environments of both systems: conversion wrappers, spaces and a one-decision-per-user CPN.

**Design: convert, do not subclass.** ``GreenCPN`` and ``TwoTimescaleMEC`` keep their own contract
(``jaxcpn.environment.Environment``: ``step_env`` returns six values, truncation included; params
without ``max_steps_in_episode``; jaxcpn's spaces), which the trainers, baselines, sweeps and the
gymnasium/PettingZoo adapters rely on. gymnax 1.0 wants a five-value ``step_env`` with truncation
from ``is_truncated(state, params)`` and ``params.max_steps_in_episode``. Subclassing
``gymnax.environments.environment.Environment`` in the envs themselves would change that contract
for every caller and make gymnax a hard dependency; a thin wrapper here does neither:

- :class:`GymnaxEnvironment` subclasses gymnax's ``Environment`` and holds a jaxcpn env. Its params
  are :class:`GymnaxParams` ``(env_params, max_steps_in_episode)`` (the limit a static int, so it
  can size a ``lax.scan``), its state :class:`GymnaxState` ``(env_state, time, terminated,
  truncated)``. gymnax's own ``step``/``reset`` (auto-reset included) run unchanged; with the same
  key and actions a converted env's rollout equals the jaxcpn env's rollout (both split the key
  into ``key_step, key_reset`` the same way).
- :class:`GreenCPNGymnax` and :class:`TwoTimescaleMECGymnax` are the two converted envs;
  importing ``jaxcpn`` registers them with gymnax as ``"jaxcpn/GreenCPN-v0"`` and
  ``"jaxcpn/TwoTimescaleMEC-v0"`` (and :class:`OnePerUserCPN` as ``"jaxcpn/GreenCPNPerUser-v0"``).
- Spaces: :func:`to_gymnax_space` turns jaxcpn spaces into gymnax ones. gymnax has no
  MultiDiscrete or MultiBinary, and its ``gymnax_space_to_gym_space`` converts only Discrete, Box,
  Dict and Tuple, so :class:`MultiDiscrete` and :class:`MultiBinary` are ``Box`` subclasses with
  integer (``0 .. nvec - 1``) and bool bounds: the converter makes them gymnasium ``Box`` es of
  dtype int32 / bool, whose samples the envs accept; sampling and ``contains`` stay exact (jaxcpn's).
- :class:`FlattenObservationWrapper` flattens a ``Dict`` (pytree) observation to one float32
  vector; gymnax's wrapper of that name asserts a ``Box``.
- :class:`OnePerUserCPN` makes the CPN one ``Discrete(N)`` decision per user, for agents that need a
  discrete action (rejax's PPO/DQN); :class:`LegacyStepWrapper` gives any gymnax 1.0 env the
  five-value step that rejax 0.1.3 calls. See the README section "gymnax".

gymnax's wrappers that proxy attributes with ``__getattr__`` (``LogWrapper``,
``LegacyStepAPIWrapper``, its ``FlattenObservationWrapper``) recurse forever under
``copy.deepcopy`` (which ``GymnaxToGymWrapper`` and rejax's ``Algorithm.create`` call); the
wrappers here proxy only non-dunder names, so they survive a deepcopy.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

try:
    from gymnax.environments import environment as gymnax_environment
    from gymnax.environments import spaces as gymnax_spaces
except ImportError as error:  # an optional extra
    raise ImportError('jaxcpn.wrappers.gymnax needs gymnax: pip install -e ".[gymnax]"') from error

from jaxcpn import spaces
from jaxcpn.cpn import CPNConfig, CPNState, GreenCPN
from jaxcpn.environment import Environment as JaxcpnEnvironment
from jaxcpn.mec import MECConfig, TwoTimescaleMEC
from jaxcpn.mec.env import ScheduleFn


# ---------------------------------------------------------------------------------------- spaces
def _bound(value, shape, dtype) -> np.ndarray:
    """A bound as a full array of ``shape``: gymnax's converter needs arrays unless the shape has one entry."""
    return np.array(np.broadcast_to(np.asarray(value, dtype), shape))


class Box(gymnax_spaces.Box):
    """A jaxcpn ``Box`` as a gymnax ``Box`` (bounds as full arrays; jaxcpn's sampler and check).

    jaxcpn's sampler handles infinite bounds (gymnax's would return ``inf``/``nan``), and its
    ``contains`` checks shape and dtype as well as the bounds.
    """

    def __init__(self, space: spaces.Box):
        super().__init__(_bound(space.low, space.shape, np.float32), _bound(space.high, space.shape, np.float32),
                         space.shape, space.dtype)
        self.space = space

    def sample(self, key: jax.Array) -> jax.Array:
        return self.space.sample(key)

    def contains(self, x: jax.Array) -> jax.Array:
        return self.space.contains(x)


class MultiDiscrete(gymnax_spaces.Box):
    """Integer array with entry ``i`` in ``0 .. nvec[i] - 1``: a gymnax ``Box`` with int32 bounds.

    gymnax's converter turns it into ``gymnasium.spaces.Box(0, nvec - 1, dtype=int32)``.
    """

    def __init__(self, space: spaces.MultiDiscrete):
        nvec = np.asarray(space.nvec)
        super().__init__(np.zeros(nvec.shape, np.int32), (nvec - 1).astype(np.int32), space.shape, jnp.int32)
        self.nvec = nvec
        self.space = space

    def sample(self, key: jax.Array) -> jax.Array:
        return self.space.sample(key)

    def contains(self, x: jax.Array) -> jax.Array:
        return self.space.contains(x)


class MultiBinary(gymnax_spaces.Box):
    """Bool array of a fixed shape: a gymnax ``Box`` with bool bounds (``gymnasium`` ``Box(dtype=bool)``)."""

    def __init__(self, space: spaces.MultiBinary):
        super().__init__(np.zeros(space.shape, bool), np.ones(space.shape, bool), space.shape, jnp.bool_)
        self.space = space

    def sample(self, key: jax.Array) -> jax.Array:
        return self.space.sample(key)

    def contains(self, x: jax.Array) -> jax.Array:
        return self.space.contains(x)


def to_gymnax_space(space: spaces.Space) -> gymnax_spaces.Space:
    """The gymnax space of a jaxcpn space (``Dict`` recursively); gymnax's converters accept the result.

    Raises:
        TypeError: for a space that is not one of jaxcpn's.
    """
    if isinstance(space, spaces.Discrete):
        return gymnax_spaces.Discrete(space.n, dtype=space.dtype)
    if isinstance(space, spaces.Box):
        return Box(space)
    if isinstance(space, spaces.MultiDiscrete):
        return MultiDiscrete(space)
    if isinstance(space, spaces.MultiBinary):
        return MultiBinary(space)
    if isinstance(space, spaces.Dict):
        return gymnax_spaces.Dict({name: to_gymnax_space(child) for name, child in space.spaces.items()})
    raise TypeError(f"space {space!r} is invalid: expected a jaxcpn.spaces Discrete, Box, MultiDiscrete, "
                    "MultiBinary or Dict")


def _fields(obs, space: gymnax_spaces.Space) -> list[jax.Array]:
    """The array leaves of ``obs`` in the order of ``space`` (dict keys or attributes for a ``Dict``)."""
    if isinstance(space, gymnax_spaces.Dict):
        get = (lambda name: obs[name]) if isinstance(obs, dict) else (lambda name: getattr(obs, name))
        return [leaf for name, child in space.spaces.items() for leaf in _fields(get(name), child)]
    if isinstance(space, gymnax_spaces.Tuple):
        return [leaf for item, child in zip(obs, space.spaces) for leaf in _fields(item, child)]
    return [jnp.asarray(obs)]


def _space_bounds(space: gymnax_spaces.Space) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Flat low and high bounds of each leaf of ``space`` (same order as :func:`_fields`)."""
    if isinstance(space, (gymnax_spaces.Dict, gymnax_spaces.Tuple)):
        children = space.spaces.values() if isinstance(space, gymnax_spaces.Dict) else space.spaces
        lows, highs = zip(*(_space_bounds(child) for child in children))
        return [b for low in lows for b in low], [b for high in highs for b in high]
    if isinstance(space, gymnax_spaces.Discrete):
        return [np.zeros(1, np.float32)], [np.full(1, space.n - 1, np.float32)]
    return ([np.broadcast_to(np.asarray(space.low, np.float32), space.shape).ravel()],
            [np.broadcast_to(np.asarray(space.high, np.float32), space.shape).ravel()])


def flatten_observation(obs, space: gymnax_spaces.Space) -> jax.Array:
    """``obs`` (a pytree of ``space``) as one float32 vector, leaves in the order of ``space``."""
    return jnp.concatenate([jnp.ravel(leaf).astype(jnp.float32) for leaf in _fields(obs, space)])


def flat_space(space: gymnax_spaces.Space) -> Box:
    """The float32 ``Box`` of :func:`flatten_observation`'s vectors (the leaves' bounds concatenated)."""
    lows, highs = _space_bounds(space)
    low, high = np.concatenate(lows), np.concatenate(highs)
    return Box(spaces.Box(low, high, low.shape))


# ------------------------------------------------------------------------- conversion of an env
@struct.dataclass
class GymnaxParams:
    """gymnax params of a converted env.

    Attributes:
        env_params: the jaxcpn env's params (``CPNParams``, ``MECParams``): every number, vmappable.
        max_steps_in_episode: static int, steps after which an episode is truncated; at most the
            env's own horizon (which truncates anyway), at least 1.
    """

    env_params: Any
    max_steps_in_episode: int = struct.field(pytree_node=False)


@struct.dataclass
class GymnaxState:
    """State of a converted env.

    Attributes:
        env_state: the jaxcpn env's state.
        time: () int32, steps taken in the episode.
        terminated: () bool, the jaxcpn env's ``terminated`` of the last step.
        truncated: () bool, the jaxcpn env's ``truncated`` of the last step.
    """

    env_state: Any
    time: jax.Array
    terminated: jax.Array
    truncated: jax.Array


def _check_max_steps(params: GymnaxParams, horizon: int, name: str) -> None:
    steps = params.max_steps_in_episode
    if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or not 1 <= steps <= horizon:
        raise ValueError(f"{name}: max_steps_in_episode={steps!r} is invalid: must be an int in [1, {horizon}] "
                         "(the env truncates its episodes after its own horizon)")


class GymnaxEnvironment(gymnax_environment.Environment):
    """A jaxcpn environment as a gymnax 1.0 ``Environment`` (see the module docstring).

    Args:
        env: the jaxcpn environment.
        name: gymnax name (the registered id).
        horizon: steps of the env's episodes (it truncates after them); the default
            ``max_steps_in_episode``.
    """

    def __init__(self, env: JaxcpnEnvironment, name: str, horizon: int):
        super().__init__()
        self.env = env
        self._name = name
        self.horizon = int(horizon)

    @property
    def name(self) -> str:
        """The registered gymnax id."""
        return self._name

    @property
    def config(self):
        """The jaxcpn env's static config."""
        return self.env.config

    @property
    def num_actions(self) -> int:
        """Number of actions of a ``Discrete`` action space (the two envs' spaces are not)."""
        space = self.env.action_space(self.env.default_params)
        if isinstance(space, spaces.Discrete):
            return space.n
        raise NotImplementedError(f"{self.name} has a {type(space).__name__} action space; num_actions applies to "
                                  "Discrete ones (OnePerUserCPN is the CPN with one Discrete(N) decision per user)")

    @property
    def default_params(self) -> GymnaxParams:
        """The env's default instance and its horizon as ``max_steps_in_episode``."""
        # gymnax's step and reset read default_params inside their jit when params is None; the
        # envs validate their instance on the host, so it is built eagerly even under a trace.
        with jax.ensure_compile_time_eval():
            env_params = self.env.default_params
        return GymnaxParams(env_params=env_params, max_steps_in_episode=self.horizon)

    def reset_env(self, key: jax.Array, params: GymnaxParams) -> tuple[Any, GymnaxState]:
        """The jaxcpn env's ``reset_env``; the step counter at 0."""
        _check_max_steps(params, self.horizon, self.name)
        obs, env_state = self.env.reset_env(key, params.env_params)
        false = jnp.zeros((), bool)
        return obs, GymnaxState(env_state=env_state, time=jnp.zeros((), jnp.int32), terminated=false, truncated=false)

    def step_env(self, key: jax.Array, state: GymnaxState, action, params: GymnaxParams):
        """The jaxcpn env's ``step_env`` in gymnax's five-value form; truncation goes to the state."""
        _check_max_steps(params, self.horizon, self.name)
        obs, env_state, reward, terminated, truncated, info = self.env.step_env(key, state.env_state, action,
                                                                                params.env_params)
        state = GymnaxState(env_state=env_state, time=state.time + 1, terminated=jnp.asarray(terminated, bool),
                            truncated=jnp.asarray(truncated, bool))
        return obs, state, reward, state.terminated, info

    def is_truncated(self, state: GymnaxState, params: GymnaxParams) -> jax.Array:
        """The env truncated, or ``max_steps_in_episode`` steps were taken."""
        return jnp.logical_or(state.truncated, state.time >= params.max_steps_in_episode)

    def is_terminated(self, state: GymnaxState, params: GymnaxParams) -> jax.Array:
        """The env terminated at the last step (never, for both systems)."""
        return state.terminated

    def observation_space(self, params: GymnaxParams) -> gymnax_spaces.Space:
        """gymnax form of the env's observation space."""
        return to_gymnax_space(self.env.observation_space(params.env_params))

    def action_space(self, params: GymnaxParams) -> gymnax_spaces.Space:
        """gymnax form of the env's action space."""
        return to_gymnax_space(self.env.action_space(params.env_params))


class GreenCPNGymnax(GymnaxEnvironment):
    """``GreenCPN`` as a gymnax env (``"jaxcpn/GreenCPN-v0"``).

    Observation: the ``CPNObservation`` pytree (a gymnax ``Dict`` of float32 ``Box`` es; wrap in
    :class:`FlattenObservationWrapper` for one vector). Action: int32 ``(U,)``, a
    :class:`MultiDiscrete` ``([N] * U)``. ``max_steps_in_episode``: ``episode_length``.

    Args:
        config: static config (default ``CPNConfig()``).
    """

    def __init__(self, config: CPNConfig | None = None):
        env = GreenCPN(config)
        super().__init__(env, "jaxcpn/GreenCPN-v0", env.config.episode_length)


class TwoTimescaleMECGymnax(GymnaxEnvironment):
    """``TwoTimescaleMEC`` as a gymnax env (``"jaxcpn/TwoTimescaleMEC-v0"``).

    Observation: float32 ``(M, L, K)`` ``Box``. Action: bool ``(M, K)`` deployment, a
    :class:`MultiBinary`; inside gymnax's jitted ``step`` an ES whose deployment breaks its
    storage deploys nothing that frame and ``info["storage_violation"]`` says so (the env's rule).
    ``max_steps_in_episode``: ``frames_per_episode``.

    Args:
        config: static config (default ``MECConfig()``).
        schedule_fn: optional learned per-slot scheduler (see ``TwoTimescaleMEC``).
    """

    def __init__(self, config: MECConfig | None = None, schedule_fn: ScheduleFn | None = None):
        env = TwoTimescaleMEC(MECConfig() if config is None else config, schedule_fn)
        super().__init__(env, "jaxcpn/TwoTimescaleMEC-v0", env.config.frames_per_episode)


# ------------------------------------------------------------------------------------ wrappers
class _Proxy:
    """Forwards unknown non-dunder attributes to ``self._env`` (safe under ``copy.deepcopy``).

    ``name``, ``num_actions`` and ``default_params`` are properties of gymnax's ``Environment``,
    so ``__getattr__`` never sees them in a wrapper that subclasses it: they are forwarded here.
    """

    def __getattr__(self, name: str):
        if name.startswith("__") or name == "_env":
            raise AttributeError(name)
        return getattr(self._env, name)

    @property
    def name(self) -> str:
        return self._env.name

    @property
    def num_actions(self) -> int:
        return self._env.num_actions

    @property
    def default_params(self):
        return self._env.default_params


class FlattenObservationWrapper(_Proxy, gymnax_environment.Environment):
    """Flattens a gymnax env's observation (``Box``, ``Dict`` or ``Tuple``; a pytree) to float32 ``(D,)``.

    Leaves are ravelled in the order of the observation space (``Dict`` keys as declared) and
    concatenated; ``info["final_observation"]`` is flattened too. The observation space is a
    float32 ``Box`` with the leaves' bounds.

    Args:
        env: a gymnax environment (e.g. :class:`GreenCPNGymnax`).
    """

    def __init__(self, env: gymnax_environment.Environment):
        super().__init__()
        self._env = env

    def _space(self, params):
        return self._env.observation_space(self.default_params if params is None else params)

    def reset(self, key: jax.Array, params=None):
        obs, state = self._env.reset(key, params)
        return flatten_observation(obs, self._space(params)), state

    def step(self, key: jax.Array, state, action, params=None):
        obs, state, reward, terminated, truncated, info = self._env.step(key, state, action, params)
        space = self._space(params)
        info = {**info, "final_observation": flatten_observation(info["final_observation"], space)}
        return flatten_observation(obs, space), state, reward, terminated, truncated, info

    def reset_env(self, key: jax.Array, params):
        obs, state = self._env.reset_env(key, params)
        return flatten_observation(obs, self._space(params)), state

    def step_env(self, key: jax.Array, state, action, params):
        obs, state, reward, terminated, info = self._env.step_env(key, state, action, params)
        return flatten_observation(obs, self._space(params)), state, reward, terminated, info

    def is_truncated(self, state, params) -> jax.Array:
        return self._env.is_truncated(state, params)

    def is_terminated(self, state, params) -> jax.Array:
        return self._env.is_terminated(state, params)

    def observation_space(self, params) -> Box:
        return flat_space(self._env.observation_space(params))

    def action_space(self, params):
        return self._env.action_space(params)


class LegacyStepWrapper(_Proxy):
    """A gymnax 1.0 env with the five-value step ``(obs, state, reward, done, info)`` of gymnax < 1.0.

    rejax 0.1.3 unpacks five values from ``env.step`` (``done = terminated | truncated``, so its GAE
    and TD targets stop at truncation too). gymnax's ``LegacyStepAPIWrapper`` does the same but
    cannot be deep-copied, which rejax's ``Algorithm.create`` does; this one can.

    Args:
        env: a gymnax 1.0 environment.
    """

    def __init__(self, env: gymnax_environment.Environment):
        self._env = env

    def step(self, key: jax.Array, state, action, params=None):
        obs, state, reward, terminated, truncated, info = self._env.step(key, state, action, params)
        return obs, state, reward, jnp.logical_or(terminated, truncated), info


# --------------------------------------------------------------------------- one decision per user
@struct.dataclass
class OnePerUserState:
    """State of :class:`OnePerUserCPN`.

    Attributes:
        slot_state: the CPN's state (the slot being scheduled).
        assignment: ``(U,)`` int32 destinations chosen so far in the slot (0 for undecided users).
        user: () int32, the user whose task is decided next.
        time: () int32, decisions taken in the episode.
        truncated: () bool, the CPN truncated at the last slot's end.
    """

    slot_state: CPNState
    assignment: jax.Array
    user: jax.Array
    time: jax.Array
    truncated: jax.Array


class OnePerUserCPN(gymnax_environment.Environment):
    """The green CPN with one ``Discrete(N)`` decision per user (``"jaxcpn/GreenCPNPerUser-v0"``).

    A slot's ``U`` tasks are assigned one user at a time, in user order; the CPN steps (and the
    slot's profit is paid) at the slot's last user. An episode is ``T * U`` decisions and has the
    CPN episode's return. For agents that need a ``Discrete`` action (rejax's PPO and DQN).

    - Observation: float32 ``(D,)``, ``D = F + U + U * N``: the slot's ``CPNObservation``
      flattened (:func:`flatten_observation`, ``F`` numbers), the one-hot of the user to decide
      ``(U,)``, and the one-hot destinations of the users decided so far ``(U, N)`` (zeros for the
      others), ravelled.
    - Action: int32 scalar in ``[0, N)``, the current user's destination node.
    - Reward: the slot's profit at its last user, 0 at the others.
    - Termination: never. Truncation: after ``T * U`` decisions (``max_steps_in_episode``).
    - Info: the CPN's step info for the slot as scheduled so far (undecided users at node 0;
      it is the slot's outcome where ``info["slot_end"]``), and ``slot_end`` (bool).

    Args:
        config: static CPN config (default ``CPNConfig()``).
    """

    def __init__(self, config: CPNConfig | None = None):
        super().__init__()
        self.env = GreenCPN(config)

    @property
    def config(self) -> CPNConfig:
        return self.env.config

    @property
    def horizon(self) -> int:
        return self.config.episode_length * self.config.num_users

    @property
    def name(self) -> str:
        return "jaxcpn/GreenCPNPerUser-v0"

    @property
    def num_actions(self) -> int:
        """``N``, the destination nodes."""
        return self.config.num_nodes

    @property
    def default_params(self) -> GymnaxParams:
        """The CPN's seed-0 instance; ``max_steps_in_episode = T * U``."""
        with jax.ensure_compile_time_eval():  # see GymnaxEnvironment.default_params
            env_params = self.env.default_params
        return GymnaxParams(env_params=env_params, max_steps_in_episode=self.horizon)

    def get_obs(self, state: OnePerUserState, params: GymnaxParams | None = None, key: jax.Array | None = None) -> jax.Array:
        """The decision's observation (see the class docstring); gymnax's ``observe`` calls it."""
        del key  # deterministic given the state
        params = self.default_params if params is None else params
        cfg = self.config
        slot = flatten_observation(self.env.get_obs(state.slot_state, params.env_params), self._slot_space(params))
        decided = (jnp.arange(cfg.num_users) < state.user)[:, None]
        chosen = jnp.where(decided, jax.nn.one_hot(state.assignment, cfg.num_nodes, dtype=jnp.float32), 0.0)
        user = jax.nn.one_hot(state.user, cfg.num_users, dtype=jnp.float32)
        return jnp.concatenate([slot, user, chosen.ravel()])

    def _slot_space(self, params: GymnaxParams) -> gymnax_spaces.Dict:
        return to_gymnax_space(self.env.observation_space(params.env_params))

    def reset_env(self, key: jax.Array, params: GymnaxParams) -> tuple[jax.Array, OnePerUserState]:
        """A CPN episode at its first slot's first user."""
        _check_max_steps(params, self.horizon, self.name)
        _, slot_state = self.env.reset_env(key, params.env_params)
        state = OnePerUserState(slot_state=slot_state, assignment=jnp.zeros((self.config.num_users,), jnp.int32),
                                user=jnp.zeros((), jnp.int32), time=jnp.zeros((), jnp.int32),
                                truncated=jnp.zeros((), bool))
        return self.get_obs(state, params), state

    def step_env(self, key: jax.Array, state: OnePerUserState, action, params: GymnaxParams):
        """Records the current user's destination; at the slot's last user, steps the CPN."""
        _check_max_steps(params, self.horizon, self.name)
        cfg = self.config
        assignment = state.assignment.at[state.user].set(jnp.asarray(action).astype(jnp.int32))
        last = state.user == cfg.num_users - 1
        # Stepped at every decision (under vmap a cond would run both branches anyway); kept at the last.
        _, next_slot, profit, terminated, truncated, info = self.env.step_env(key, state.slot_state, assignment,
                                                                             params.env_params)
        slot_state = jax.tree.map(lambda new, old: jnp.where(last, new, old), next_slot, state.slot_state)
        state = OnePerUserState(
            slot_state=slot_state,
            assignment=jnp.where(last, jnp.zeros_like(assignment), assignment),
            user=jnp.where(last, 0, state.user + 1).astype(jnp.int32),
            time=state.time + 1,
            truncated=jnp.logical_and(last, truncated),
        )
        reward = jnp.where(last, profit, 0.0).astype(jnp.float32)
        info = {**info, "slot_end": last}
        return self.get_obs(state, params), state, reward, jnp.logical_and(last, terminated), info

    def is_truncated(self, state: OnePerUserState, params: GymnaxParams) -> jax.Array:
        """The CPN truncated, or ``max_steps_in_episode`` decisions were taken."""
        return jnp.logical_or(state.truncated, state.time >= params.max_steps_in_episode)

    def is_terminated(self, state: OnePerUserState, params: GymnaxParams) -> jax.Array:
        """Never (the CPN never terminates)."""
        return jnp.zeros((), bool)

    def observation_space(self, params: GymnaxParams) -> Box:
        """float32 ``(F + U + U * N,)``."""
        cfg = self.config
        slot = flat_space(self._slot_space(params))
        extra = cfg.num_users + cfg.num_users * cfg.num_nodes
        low = np.concatenate([slot.low, np.zeros(extra, np.float32)])
        high = np.concatenate([slot.high, np.ones(extra, np.float32)])
        return Box(spaces.Box(low, high, low.shape))

    def action_space(self, params: GymnaxParams) -> gymnax_spaces.Discrete:
        """``Discrete(N)``."""
        return gymnax_spaces.Discrete(self.config.num_nodes)


__all__ = [
    "Box", "FlattenObservationWrapper", "GreenCPNGymnax", "GymnaxEnvironment", "GymnaxParams", "GymnaxState",
    "LegacyStepWrapper", "MultiBinary", "MultiDiscrete", "OnePerUserCPN", "OnePerUserState",
    "TwoTimescaleMECGymnax", "flat_space", "flatten_observation", "to_gymnax_space",
]
