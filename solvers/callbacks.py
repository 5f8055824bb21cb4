"""The one bridge from traced JAX code to NumPy batch solvers (CVXPY programs).

``batched_callback(batch_solver, result_shape_dtypes)`` returns a traceable function. It wraps
``batch_solver`` in ``jax.pure_callback`` with ``vmap_method="broadcast_all"``, so under any
number of nested ``vmap``s the host is called once per traced call with the whole batch
(leading axes flattened to one). Large batches are split over a lazily created process pool
(``spawn`` or ``forkserver`` start method: forking a process after JAX has started its threads
is unsafe). A callback does not make one solve faster; it lets jitted code use an exact solver.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import multiprocessing
import os
from typing import Any, Callable

import jax
import numpy as np

_POOLS: dict[tuple[int, str], concurrent.futures.ProcessPoolExecutor] = {}


def _pool(processes: int, context: str) -> concurrent.futures.ProcessPoolExecutor:
    """Returns the shared pool for ``(processes, context)``, created on first use."""
    key = (processes, context)
    if key not in _POOLS:
        _POOLS[key] = concurrent.futures.ProcessPoolExecutor(
            max_workers=processes, mp_context=multiprocessing.get_context(context))
    return _POOLS[key]


@atexit.register
def shutdown_pools() -> None:
    """Shuts every worker pool down (also registered at interpreter exit)."""
    while _POOLS:
        _, pool = _POOLS.popitem()
        pool.shutdown(wait=True, cancel_futures=True)


def run_batch(batch_solver: Callable[..., Any], args: tuple[np.ndarray, ...], *, processes: int = 1,
              min_pool_batch: int = 32, context: str = "spawn") -> Any:
    """Runs ``batch_solver`` on ``args`` (leading axis = batch), serially or over a pool.

    Args:
        batch_solver: picklable (module-level) function of batched NumPy arrays returning an
            array or a tuple of arrays with the same leading batch axis.
        args: NumPy arrays sharing the leading batch axis ``B``.
        processes: worker processes; 1 runs in this process.
        min_pool_batch: batches smaller than this run in this process.
        context: multiprocessing start method, ``"spawn"`` or ``"forkserver"``.

    Returns:
        The solver's output for the whole batch, chunks concatenated in order.
    """
    batch = args[0].shape[0] if args else 0
    if processes <= 1 or batch < max(min_pool_batch, 2):
        return batch_solver(*args)
    chunks = np.array_split(np.arange(batch), min(processes, batch))
    pool = _pool(processes, context)
    parts = list(pool.map(batch_solver, *[[a[idx] for idx in chunks] for a in args]))
    if isinstance(parts[0], tuple):
        return tuple(np.concatenate(p, axis=0) for p in zip(*parts))
    return np.concatenate(parts, axis=0)


def batched_callback(batch_solver: Callable[..., Any], result_shape_dtypes: Any, *,
                     processes: int | None = None, min_pool_batch: int = 32,
                     context: str = "spawn") -> Callable[..., Any]:
    """Turns a NumPy batch solver into a traceable function of one instance.

    Args:
        batch_solver: picklable function; takes arrays with a leading batch axis ``B`` (one per
            argument of the returned function) and returns results shaped ``(B, *shape)`` for
            each leaf of ``result_shape_dtypes``.
        result_shape_dtypes: pytree of ``jax.ShapeDtypeStruct`` for ONE instance.
        processes: worker processes for large batches; ``None`` uses ``os.cpu_count()``, 1 never
            starts a pool.
        min_pool_batch: host batches smaller than this are solved serially in this process.
        context: ``"spawn"`` (default) or ``"forkserver"``.

    Returns:
        ``f(*args)`` that accepts one instance (the shapes of one problem), works under ``jit``
        and ``vmap`` (one host call per traced call, whatever the batch), and returns the
        pytree described by ``result_shape_dtypes``.
    """
    if context not in ("spawn", "forkserver"):
        raise ValueError(f"batched_callback: context={context!r}; allowed: 'spawn', 'forkserver' "
                         "(fork after JAX starts is unsafe)")
    workers = (os.cpu_count() or 1) if processes is None else int(processes)
    if workers < 1:
        raise ValueError(f"batched_callback: processes={processes} must be >= 1 or None")
    leaves, treedef = jax.tree.flatten(result_shape_dtypes)

    def traced(*args):
        base_ndims = [np.ndim(a) for a in args]

        def host(*batched):
            batched = [np.asarray(a) for a in batched]
            batch_shape = batched[0].shape[: batched[0].ndim - base_ndims[0]]
            size = int(np.prod(batch_shape, dtype=np.int64))
            flat = tuple(a.reshape((size,) + a.shape[a.ndim - nd:]) for a, nd in zip(batched, base_ndims))
            out = run_batch(batch_solver, flat, processes=workers, min_pool_batch=min_pool_batch,
                            context=context)
            out_leaves = jax.tree.leaves(out) if isinstance(out, tuple) else [out]
            return treedef.unflatten([np.asarray(o, leaf.dtype).reshape(batch_shape + tuple(leaf.shape))
                                      for o, leaf in zip(out_leaves, leaves)])

        return jax.pure_callback(host, result_shape_dtypes, *args, vmap_method="broadcast_all")

    return traced
