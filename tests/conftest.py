"""Test-session setup: quick XLA:CPU compilation and a persistent JAX compilation cache.

The suite's time is mostly XLA compilation of small programs (tiny envs and networks), so the
tests compile with LLVM optimisation off (``FAST_COMPILE``, about 30% less CPU time; the
programs compute the same maths, and every comparison in the tests is between programs
compiled the same way or against NumPy with float32 tolerances). Production runs keep XLA's
defaults. Tests that start their own Python pass ``FAST_COMPILE`` on (tests/test_sharding.py).

Many tests compile the same programs (one env step per config, training chunks re-built after a
resume); with the cache each is compiled once per session. Together they keep the suite inside
its 10-minute budget on 2 CPU cores. The cache lives in pytest's cache folder (ignored by git).
"""

import os
from pathlib import Path

FAST_COMPILE = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):  # before JAX starts
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + FAST_COMPILE).strip()

import pytest  # noqa: E402

import jaxcpn  # noqa: E402,F401  (sets the XLA:CPU flag before JAX initialises)
import jax  # noqa: E402

_CACHE = Path(__file__).resolve().parents[1] / ".pytest_cache" / "jax-compilation"
_CACHE.mkdir(parents=True, exist_ok=True)
jax.config.update("jax_compilation_cache_dir", str(_CACHE))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def subprocess_env(xla_flags: str = "", **extra: str) -> dict[str, str]:
    """The environment of a test's child Python: ``FAST_COMPILE`` and this session's compilation cache.

    A child compiles what the tests compile (a killed run and its resume, a script and the in-process
    tests of its units), so it reads and writes the same cache: each program is compiled once.
    """
    flags = " ".join(f for f in (os.environ.get("XLA_FLAGS", ""), xla_flags) if f)
    if FAST_COMPILE not in flags:
        flags = f"{flags} {FAST_COMPILE}".strip()
    return {**os.environ, "XLA_FLAGS": flags, "JAX_COMPILATION_CACHE_DIR": str(_CACHE),
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0.5", "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
            **extra}



def pytest_collection_finish(session):
    """Under ``--dist loadgroup`` (pyproject.toml), a worker's ``xdist_group`` tests must carry their group
    in the node id: otherwise pytest-xdist silently stops grouping (pytest 9.2, pytest-dev/pytest-xdist#1386)
    and every group's module fixtures are built on both workers. Such tests fail, saying so, instead of
    running twice as long."""
    config = session.config
    if hasattr(config, "workerinput") and getattr(config.option, "loadgroup", False):  # set on workers by xdist
        config.stash[_UNGROUPED] = {item.nodeid for item in session.items
                                    if item.get_closest_marker("xdist_group") and "@" not in item.nodeid}


def pytest_runtest_setup(item):
    if item.nodeid in item.config.stash.get(_UNGROUPED, ()):
        pytest.fail("--dist loadgroup is not grouping (this test's node id has no @group suffix): this "
                    "pytest-xdist does not support this pytest (pytest-dev/pytest-xdist#1386); install pytest<9.2",
                    pytrace=False)


_UNGROUPED = pytest.StashKey[set]()
