"""Data-parallel PPO and DDQN over devices with ``jax.sharding`` (GSPMD).

One :class:`jax.sharding.Mesh` with a single ``"batch"`` axis spans the devices (all local
ones, or every process's after :func:`initialize_distributed`). The environment batch of the
runner state (``env_state``, ``obs``, ``episode_return``) is split along that axis with
``NamedSharding(mesh, P("batch"))``; the train state, key and counters are replicated
(``P()``). ``jax.jit`` with these shardings makes XLA partition the rollout and the loss by
environment; the loss is a mean over the (global) minibatch, so its gradient is summed across
shards by an all-reduce that XLA inserts, and every device applies the same Adam step to its
replica. Random numbers are drawn from the same keys over the global batch
(``jax_threefry_partitionable``, the default), and the minibatch permutation is one
permutation of the global batch, so a run on ``n`` devices equals the one-device run up to
float32 reduction order. One device is the same code with a one-device mesh.

The DDQN trainer of TTOSC (:mod:`agents.ttosc.ddqn`) is split the same way: its parallel episodes
(``env_state``, ``observation``, ``episode_return``) over the mesh, the networks, Adam state and
the replay buffer replicated. Each frame's transitions of all shards go into the one buffer
and every device samples the same minibatch, so the run equals the one-device run.

Usage::

    mesh = make_mesh()                                   # all devices, axis "batch"
    init, chunk = sharded_trainer_fns(trainer, mesh, num_updates=10)
    runner = init(key)                                   # env batch already split over devices
    runner, metrics = chunk(runner)
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

BATCH_AXIS = "batch"


def initialize_distributed(coordinator_address: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None) -> None:
    """Joins a multi-process (multi-host) run with ``jax.distributed.initialize``.

    With no arguments JAX detects the cluster (SLURM, Open MPI, TPU pods); otherwise give the
    coordinator ``host:port`` (process 0's address), the number of processes and this one's id.
    On CPU hosts the cross-process collectives use Gloo (set here). Call before any other JAX
    call; afterwards :func:`make_mesh` spans every process's devices.
    """
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                               process_id=process_id)


def make_mesh(num_devices: int | None = None) -> Mesh:
    """A 1-D mesh over the first ``num_devices`` devices (``None`` or 0: all), axis ``"batch"``.

    Raises:
        ValueError: if ``num_devices`` exceeds the devices available.
    """
    devices = jax.devices()
    if num_devices is None or num_devices == 0:
        num_devices = len(devices)
    if not 1 <= num_devices <= len(devices):
        raise ValueError(f"num_devices={num_devices} is invalid: must be in [1, {len(devices)}] "
                         f"(devices: {[str(d) for d in devices]}); 0 means all")
    return Mesh(np.asarray(devices[:num_devices]), (BATCH_AXIS,))


def batch_sharding(mesh: Mesh, batch_dim: int = 0) -> NamedSharding:
    """Splits dimension ``batch_dim`` over the ``"batch"`` axis (earlier dimensions replicated)."""
    return NamedSharding(mesh, P(*([None] * batch_dim), BATCH_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    """The same full value on every device."""
    return NamedSharding(mesh, P())


def check_divisible(size: int, mesh: Mesh, what: str) -> None:
    """Raises a ``ValueError`` naming ``what`` if ``size`` does not split evenly over ``mesh``."""
    if size % mesh.size:
        raise ValueError(f"{what}={size} is invalid: must be divisible by the number of devices ({mesh.size}) "
                         f"to shard it over the '{BATCH_AXIS}' axis")


def runner_shardings(runner_type: type, mesh: Mesh, batch_dim: int = 0,
                     batched_fields: tuple[str, ...] = ("env_state", "obs", "episode_return")) -> Any:
    """Sharding prefix tree of a runner ``NamedTuple``: ``batched_fields`` split, the rest replicated.

    Args:
        runner_type: the runner ``NamedTuple`` class (e.g. :class:`agents.stper.ppo.RunnerState`).
        mesh: from :func:`make_mesh`.
        batch_dim: position of the env dimension (1 under a ``vmap`` over seeds).
        batched_fields: fields whose leaves have the env batch at ``batch_dim``.
    """
    split, whole = batch_sharding(mesh, batch_dim), replicated(mesh)
    return runner_type(**{name: split if name in batched_fields else whole for name in runner_type._fields})


def shard_runner(runner: Any, mesh: Mesh, batch_dim: int = 0, **kwargs) -> Any:
    """Places a (host or single-device) runner state on ``mesh`` (e.g. after a checkpoint restore).

    Single-process only; in a multi-process run build the state with :func:`sharded_trainer_fns`'
    ``init`` instead (it is computed directly in its sharded layout).
    """
    shardings = runner_shardings(type(runner), mesh, batch_dim, **kwargs)
    return jax.device_put(runner, jax.tree.map(lambda s, sub: jax.tree.map(lambda _: s, sub), shardings, runner,
                                               is_leaf=lambda x: isinstance(x, NamedSharding)))


def runner_layout(trainer: Any) -> tuple[type, tuple[str, ...]]:
    """The runner ``NamedTuple`` of a PPO or DDQN trainer and its fields that hold the env batch."""
    from agents.stper import ppo
    from agents.ttosc import ddqn

    if isinstance(trainer.config, ppo.PPOConfig):
        return ppo.RunnerState, ("env_state", "obs", "hidden", "first", "episode_return")
    if isinstance(trainer.config, ddqn.DDQNConfig):
        return ddqn.RunnerState, ("env_state", "observation", "episode_return")
    raise TypeError(f"trainer with config {type(trainer.config).__name__} is not supported: "
                    "must be a PPO (agents.stper.ppo) or DDQN (agents.ttosc.ddqn) trainer")


def sharded_trainer_fns(trainer: Any, mesh: Mesh, num_updates: int,
                        num_seeds: int | None = None) -> tuple[Callable, Callable]:
    """Jitted ``init(key) -> runner`` and ``chunk(runner) -> (runner, metrics)`` of a trainer.

    ``trainer`` is a PPO (:func:`agents.stper.ppo.make_trainer`) or DDQN
    (:func:`agents.ttosc.ddqn.make_trainer`) trainer; ``num_updates`` counts PPO updates or DDQN
    frames. The env batch (``trainer.config.num_envs``) is split over ``mesh``; parameters
    (and the DDQN replay buffer) replicated. With ``num_seeds`` both are ``vmap``ped over a
    leading seed axis (keys ``(num_seeds, 2)``), the env batch then being dimension 1.

    Raises:
        ValueError: if ``num_envs`` is not divisible by the number of devices.
    """
    runner_type, batched_fields = runner_layout(trainer)
    check_divisible(trainer.config.num_envs, mesh, f"{type(trainer.config).__name__}.num_envs")
    init, chunk = trainer.init, lambda r: trainer.train_chunk(r, num_updates)
    batch_dim = 0
    if num_seeds is not None:
        init, chunk, batch_dim = jax.vmap(init), jax.vmap(chunk), 1
    shardings = runner_shardings(runner_type, mesh, batch_dim, batched_fields)
    whole = replicated(mesh)
    return (jax.jit(init, in_shardings=whole, out_shardings=shardings),
            jax.jit(chunk, in_shardings=(shardings,), out_shardings=(shardings, whole)))
