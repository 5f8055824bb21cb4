"""Test-session setup: a persistent JAX compilation cache shared by the tests (and xdist workers).

Many tests compile the same programs (one env step per config, training chunks re-built after a
resume); with the cache each is compiled once per session, which keeps the suite inside its
10-minute budget on 2 CPU cores. The cache lives in pytest's cache folder (ignored by git).
"""

from pathlib import Path

import jaxcpn  # noqa: F401  (sets the XLA:CPU flag before JAX initialises)
import jax

_CACHE = Path(__file__).resolve().parents[1] / ".pytest_cache" / "jax-compilation"
_CACHE.mkdir(parents=True, exist_ok=True)
jax.config.update("jax_compilation_cache_dir", str(_CACHE))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
