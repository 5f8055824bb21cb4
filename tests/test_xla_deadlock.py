"""Regression: jit(vmap(init)) of the LSTM PPO over several seeds used to deadlock XLA:CPU.

Runs in a subprocess (a deadlock would otherwise hang the test session) with the flag that
``import jaxcpn`` sets; without it this program sat at 0% CPU forever on 2 cores (jax 0.10.2).
"""

import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import jaxcpn, jax
    from agents.stper.ppo import PPOConfig, make_trainer
    trainer = make_trainer(PPOConfig(variant="stper-l", num_envs=32))
    out = jax.jit(jax.vmap(trainer.init))(jax.random.split(jax.random.PRNGKey(0), 3))
    jax.block_until_ready(out)
    print("init ok")
    """
)


@pytest.mark.timeout(300)
def test_vmapped_lstm_init_does_not_deadlock():
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["JAX_PLATFORMS"] = "cpu"
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=240, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "init ok" in result.stdout
