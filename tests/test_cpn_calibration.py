"""The default instance poses a real scheduling trade-off (the calibration of kappa, docs/model.md)."""

import jax
import pytest

from jaxcpn.cpn import CPNConfig, GreenCPN, generate_instance
from jaxcpn.cpn.calibration import tradeoff_report

CONFIG = CPNConfig()


@pytest.fixture(scope="module")
def report():
    env = GreenCPN(CONFIG)
    return jax.jit(lambda params: tradeoff_report(env, params, jax.random.PRNGKey(7), 48))


@pytest.mark.parametrize("seed", [0, 1])
def test_default_instance_has_a_real_tradeoff(report, seed):
    params = generate_instance(jax.random.PRNGKey(seed), CONFIG)
    numbers = {k: float(v) for k, v in report(params).items()}
    # The most profitable destination moves over a day for most tasks ...
    assert numbers["best_node_changes"] > 0.5, numbers
    # ... and switches between green and non-green nodes for a good share of them.
    assert numbers["best_node_green_and_not"] > 0.3, numbers
    # No fixed policy is best: neither one node for everything nor a fixed node per user.
    assert numbers["greedy"] > 1.2 * numbers["best_fixed_node"], numbers
    assert numbers["greedy"] > 1.03 * numbers["static_assignment"], numbers
    # A model-based greedy policy clearly beats Random.
    assert numbers["greedy"] > 2.0 * numbers["random"], numbers
