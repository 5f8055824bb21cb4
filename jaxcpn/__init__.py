"""jaxcpn: JAX environments for green computing power networks (STPer) and two-timescale MEC (TTOSC)."""

import os as _os
import sys as _sys

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

# Register the gymnax ids when gymnax is imported. gymnax takes about a second to import (it loads
# all its environments, seaborn and scipy), three times jaxcpn's own import, so jaxcpn does not
# import it: if gymnax is already loaded the ids are registered now, otherwise a one-shot import
# hook registers them right after the first `import gymnax`. Without gymnax nothing happens.
GYMNAX_IDS = {
    "jaxcpn/GreenCPN-v0": "GreenCPNGymnax",
    "jaxcpn/TwoTimescaleMEC-v0": "TwoTimescaleMECGymnax",
    "jaxcpn/GreenCPNPerUser-v0": "OnePerUserCPN",
}


def _gymnax_factory(class_name: str):
    def make(**kwargs):
        from jaxcpn.wrappers import gymnax as gymnax_adapters

        return getattr(gymnax_adapters, class_name)(**kwargs)

    make.__qualname__ = make.__name__ = class_name
    return make


def _register_gymnax(gymnax) -> None:
    for env_id, class_name in GYMNAX_IDS.items():
        if env_id not in gymnax.registered_envs:
            gymnax.register(env_id, _gymnax_factory(class_name))


class _RegisteringLoader:
    """Runs gymnax's own loader, then registers the ids."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        module.__spec__.loader = module.__loader__ = self.loader  # the module keeps its real loader
        self.loader.exec_module(module)
        _register_gymnax(module)


class _GymnaxImportHook:
    """Meta-path finder for the first `import gymnax`: the other finders find it, its loader is wrapped."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "gymnax":
            return None
        if self in _sys.meta_path:
            _sys.meta_path.remove(self)
        import importlib.util

        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _RegisteringLoader(spec.loader)
        return spec


if "gymnax" in _sys.modules:
    _register_gymnax(_sys.modules["gymnax"])
elif not any(isinstance(finder, _GymnaxImportHook) for finder in _sys.meta_path):
    _sys.meta_path.insert(0, _GymnaxImportHook())
