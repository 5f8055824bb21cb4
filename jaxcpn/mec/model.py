"""Pure delay maths of the TTOSC system model (eqs. 2-8), broadcasting JAX functions.

Index conventions: ``m`` the ES where a task arrives, ``k`` the service, ``n`` the node that
processes it (ESs ``0 .. M-1``, the cloud ``M``). A schedule is ``pi_{m,k,n}``, shape
``(M, K, M + 1)``; the per-service QP of eq. (13) (``solvers.scheduling``) works on one
service's ``(M, M + 1)`` slice.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxcpn.mec.types import MECParams


class SlotDelay(NamedTuple):
    """Expected delays of one slot.

    Attributes:
        per_task: (M, K) float32 s, eq. (6): a task of k arriving at m.
        per_service: (K,) float32 s, eq. (7): a task of k anywhere (0 with no tasks of k).
        mean: () float32 s, eq. (8): any task (0 with no tasks).
        total: () float32 s x tasks, the sum of eq. (13)'s objectives over services.
        num_tasks: () float32, tasks in the slot.
    """

    per_task: jax.Array
    per_service: jax.Array
    mean: jax.Array
    total: jax.Array
    num_tasks: jax.Array


def cpu_share(deployment: jax.Array, es_cpu: jax.Array) -> jax.Array:
    """CPU of each deployed service, ``F_{m,k} = F_m / sum_k x_{m,k}`` (equal share), else 0.

    Args:
        deployment: (M, K) bool.
        es_cpu: (M,) GHz.

    Returns:
        (M, K) float32 GHz.
    """
    count = jnp.sum(deployment, axis=-1, keepdims=True).astype(jnp.float32)
    return jnp.where(deployment, es_cpu[..., None] / jnp.maximum(count, 1.0), 0.0)


def scheduling_mask(deployment: jax.Array) -> jax.Array:
    """Where a task may go (eq. 3): ``mask[m, k, n] = x_{n,k}`` for ESs, True for the cloud.

    Args:
        deployment: (M, K) bool.

    Returns:
        (M, K, M + 1) bool.
    """
    m = deployment.shape[0]
    to_es = jnp.broadcast_to(deployment.T[None, :, :], (m,) + deployment.T.shape)
    return jnp.concatenate([to_es, jnp.ones(to_es.shape[:-1] + (1,), bool)], axis=-1)


def base_delay(params: MECParams, wait: jax.Array | None = None) -> jax.Array:
    """Load-free per-task delay ``D[m, k, n]`` (s).

    ES ``n != m``: the transfer ``d_k / R_{m,n}`` (first term of eq. 4); ES ``n = m``: 0; cloud:
    ``d_k / R_c + c_k / f_c`` (eq. 5). The compute part of eq. (4) depends on the load and is
    added by ``load_coefficient``.

    Args:
        params: the instance.
        wait: optional (M, K) s, ``W_{n,k}``: how long ES n cannot yet serve service k (its
            software is still downloading, ``download_wait``). A task sent there starts after
            both its transfer and the download: ES terms become ``max(d_k / R_{m,n}, W_{n,k})``
            (beyond the paper; None = the paper's eq. 4).

    Returns:
        (M, K, M + 1) float32.
    """
    m = params.es_rate.shape[0]
    transfer = params.task_input_size[None, :, None] / params.es_rate[:, None, :]  # (M, K, M)
    transfer = jnp.where(jnp.eye(m, dtype=bool)[:, None, :], 0.0, transfer)
    if wait is not None:
        transfer = jnp.maximum(transfer, wait.T[None, :, :].astype(jnp.float32))
    cloud = (params.task_input_size[None, :] / params.cloud_rate[:, None]
             + params.task_cycles[None, :] / params.cloud_cpu)  # (M, K)
    return jnp.concatenate([transfer, cloud[..., None]], axis=-1).astype(jnp.float32)


def load_coefficient(deployment: jax.Array, params: MECParams) -> jax.Array:
    """``w[k, n] = c_k / F_{n,k}`` (s per task) for deployed ESs, 0 elsewhere and at the cloud.

    A task at ES n waits ``w[k, n] * L_{n,k}`` (eq. 4) when ``L_{n,k}`` tasks share the CPU.

    Returns:
        (K, M + 1) float32.
    """
    share = cpu_share(deployment, params.es_cpu)  # (M, K)
    es = jnp.where(deployment, params.task_cycles[None, :] / jnp.where(deployment, share, 1.0), 0.0).T
    return jnp.concatenate([es, jnp.zeros((es.shape[0], 1), jnp.float32)], axis=-1)


def qp_inputs(arrivals: jax.Array, deployment: jax.Array, params: MECParams, wait: jax.Array | None = None):
    """The per-service QPs of eq. (13) for one slot, in the solvers' canonical form.

    Args:
        arrivals: (M, K) tasks.
        deployment: (M, K) bool.
        wait: optional (M, K) s download wait of each ES's services (``base_delay``).

    Returns:
        ``(lam, D, w, mask)`` with shapes (K, M), (K, M, M + 1), (K, M + 1), (K, M, M + 1).
    """
    lam = arrivals.T.astype(jnp.float32)
    D = jnp.swapaxes(base_delay(params, wait), 0, 1)
    mask = jnp.swapaxes(scheduling_mask(deployment), 0, 1)
    return lam, D, load_coefficient(deployment, params), mask


def slot_delay(arrivals: jax.Array, deployment: jax.Array, schedule: jax.Array, params: MECParams,
               wait: jax.Array | None = None) -> SlotDelay:
    """Expected delays of one slot under a schedule, eqs. (4)-(8).

    Args:
        arrivals: (M, K) tasks ``lambda_{m,k}``.
        deployment: (M, K) bool ``x_{m,k}``.
        schedule: (M, K, M + 1) ``pi_{m,k,n}``, feasible (eqs. 2-3).
        params: the instance.
        wait: optional (M, K) s download wait of each ES's services (``base_delay``; None = the
            paper's model).

    Returns:
        SlotDelay.
    """
    arrivals = arrivals.astype(jnp.float32)
    load = jnp.einsum("mk,mkn->kn", arrivals, schedule)  # L_{n,k}, (K, M + 1)
    node = base_delay(params, wait) + load_coefficient(deployment, params)[None] * load[None]  # eqs. (4)-(5)
    per_task = jnp.sum(schedule * node, axis=-1)  # eq. (6)
    tasks_k = jnp.sum(arrivals, axis=0)
    weighted = jnp.sum(arrivals * per_task, axis=0)
    per_service = weighted / jnp.where(tasks_k > 0, tasks_k, 1.0)  # eq. (7)
    total = jnp.sum(weighted)
    tasks = jnp.sum(tasks_k)
    mean = total / jnp.where(tasks > 0, tasks, 1.0)  # eq. (8)
    return SlotDelay(per_task, per_service, mean, total, tasks)


def cloud_schedule(num_cells: int, num_services: int) -> jax.Array:
    """All tasks to the cloud: (M, K, M + 1) float32, the reward's baseline."""
    return jnp.zeros((num_cells, num_services, num_cells + 1), jnp.float32).at[..., -1].set(1.0)


def clean_schedule(schedule: jax.Array, deployment: jax.Array) -> jax.Array:
    """Makes a proposed schedule feasible: drops mass off the mask, renormalises rows, and
    sends rows with no feasible mass to the cloud (for learned schedulers).

    Args:
        schedule: (M, K, M + 1) non-negative.
        deployment: (M, K) bool.

    Returns:
        (M, K, M + 1) float32 satisfying eqs. (2)-(3).
    """
    masked = jnp.where(scheduling_mask(deployment), jnp.maximum(schedule, 0.0), 0.0)
    total = jnp.sum(masked, axis=-1, keepdims=True)
    cloud = jnp.zeros_like(masked).at[..., -1].set(1.0)
    return jnp.where(total > 0, masked / jnp.where(total > 0, total, 1.0), cloud).astype(jnp.float32)


def zipf_popularity(ranking: jax.Array, exponent: jax.Array, cycle: jax.Array | None = None) -> jax.Array:
    """Zipf request probabilities ``p_{m,k} ~ (rank_{m,k} + 1)^-exponent``, rows sum to 1.

    Args:
        ranking: (M, K) int ranks (0 = most popular).
        exponent: () Zipf exponent.
        cycle: optional (..., K) per-service popularity factors ``g_k(t)`` (``popularity_cycle``):
            ``p_{m,k}(t) ~ (rank_{m,k} + 1)^-exponent g_k(t)``, renormalised per cell (beyond the
            paper; None = the paper's model).

    Returns:
        (M, K) float32, or (..., M, K) with a cycle.
    """
    weight = (ranking.astype(jnp.float32) + 1.0) ** (-exponent)
    if cycle is not None:
        weight = weight * cycle[..., None, :].astype(jnp.float32)
    return weight / jnp.sum(weight, axis=-1, keepdims=True)


def popularity_cycle(time: jax.Array, amplitude: jax.Array, period: jax.Array, phase: jax.Array) -> jax.Array:
    """Per-service daily popularity factor ``g_k(t) = 1 + A sin(2 pi t / period + phi_k)``.

    Args:
        time: (T,) frames (slot times, as for ``diurnal_intensity``).
        amplitude: () ``A`` in [0, 1) (``popularity_cycle_amplitude``).
        period: () frames (``diurnal_period``: the same day as the intensity).
        phase: (K,) radians ``phi_k`` (``popularity_cycle_phase``).

    Returns:
        (T, K) float32, in (0, 2).
    """
    angle = 2.0 * jnp.pi * time[:, None] / period + phase[None, :]
    return (1.0 + amplitude * jnp.sin(angle)).astype(jnp.float32)


MEGABITS_PER_STORAGE_UNIT = 800.0
"""One storage unit is 100 MB = 800 Mb: the software a download moves over the backhaul."""


def download_time(deployment: jax.Array, hosted: jax.Array, params: MECParams) -> jax.Array:
    """Seconds each ES needs to download the services it newly deploys, ``800 s_k / B_m``.

    Args:
        deployment: (M, K) bool, this frame's ``x_{m,k}``.
        hosted: (M, K) bool, the previous frame's deployment (what each ES already stores).
        params: the instance (``service_size``, ``backhaul_rate``).

    Returns:
        (M, K) float32 s; 0 where the service is not deployed or was already hosted.
    """
    new = deployment & ~hosted
    seconds = (MEGABITS_PER_STORAGE_UNIT * params.service_size.astype(jnp.float32)[None, :]
               / params.backhaul_rate[:, None])
    return jnp.where(new, seconds, 0.0).astype(jnp.float32)


def download_wait(deployment: jax.Array, hosted: jax.Array, params: MECParams, slots_per_frame: int) -> jax.Array:
    """Remaining download time at the start of each slot, ``W_{l,m,k} = max(0, T_{m,k} - l tau)``.

    Tasks arrive at the start of slot l (time ``l * slot_duration`` into the frame); one sent to
    an ES whose software for its service is still downloading waits ``W`` before it can start.

    Args:
        deployment: (M, K) bool, this frame's deployment.
        hosted: (M, K) bool, the previous frame's deployment.
        params: the instance.
        slots_per_frame: L.

    Returns:
        (L, M, K) float32 s.
    """
    start = jnp.arange(slots_per_frame, dtype=jnp.float32) * params.slot_duration
    remaining = download_time(deployment, hosted, params)[None] - start[:, None, None]
    return jnp.maximum(remaining, 0.0).astype(jnp.float32)


def diurnal_intensity(time: jax.Array, amplitude: jax.Array, period: jax.Array) -> jax.Array:
    """Relative request intensity ``1 + a sin(2 pi time / period)`` (time in frames)."""
    return 1.0 + amplitude * jnp.sin(2.0 * jnp.pi * time / period)
