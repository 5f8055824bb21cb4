"""jaxcpn: JAX environments for green computing power networks (STPer) and two-timescale MEC (TTOSC)."""

import os as _os

# XLA:CPU's concurrency-optimised scheduler deadlocks (0% CPU, forever) some programs of this
# project on small CPU machines: jax.jit(jax.vmap(init)) of the STPer PPO with an LSTM network and
# >= 2 seeds hangs with jax 0.10.2 on 2 cores, and runs in seconds with the scheduler off
# (docs/model.md, "Known XLA:CPU deadlock"). The flag only affects the CPU backend and must be set
# before JAX initialises it; a value the user put in XLA_FLAGS wins.
_FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler"
if _FLAG not in _os.environ.get("XLA_FLAGS", ""):
    _os.environ["XLA_FLAGS"] = (_os.environ.get("XLA_FLAGS", "") + f" {_FLAG}=false").strip()
    from jax._src import xla_bridge as _xla_bridge

    if _xla_bridge._backends:  # JAX already initialised its backends: the flag cannot act any more
        import warnings as _warnings

        _warnings.warn(
            "jaxcpn was imported after JAX initialised its backends, so XLA_FLAGS "
            f"{_FLAG}=false was not applied; vmapped LSTM training may deadlock on CPU. "
            "Import jaxcpn first or set the flag in XLA_FLAGS yourself.",
            stacklevel=2,
        )

__version__ = "0.1.0"

# Register the gymnasium ids when gymnasium is installed (string entry points: nothing heavy is
# imported until gymnasium.make is called).
try:
    import gymnasium as _gymnasium
except ImportError:  # gymnasium is an optional extra ("adapters")
    _gymnasium = None
if _gymnasium is not None and "jaxcpn/GreenCPN-v0" not in _gymnasium.registry:
    _gymnasium.register(
        id="jaxcpn/GreenCPN-v0",
        entry_point="jaxcpn.wrappers.gymnasium:GreenCPNGymEnv",
        vector_entry_point="jaxcpn.wrappers.gymnasium:GreenCPNVectorEnv",
    )
