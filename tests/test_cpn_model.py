"""Maths kernels of the green CPN on hand-computed cases (STYLE layer a)."""

import chex
import jax.numpy as jnp
import numpy as np

from jaxcpn.cpn import model


class ModelTest(chex.TestCase):
    @chex.all_variants(with_pmap=False)
    def test_revenue_eq3(self):
        # R = p (1 + eta / t) m = 0.5 * (1 + 2 / 0.5) * 2 = 5
        f = self.variant(lambda m, t: model.revenue(workload=m, delay=t, unit_price=0.5, eta=2.0))
        np.testing.assert_allclose(f(jnp.array([2.0, 1.0]), jnp.array([0.5, 2.0])), [5.0, 1.0], rtol=1e-6)

    @chex.all_variants(with_pmap=False)
    def test_compute_cost_eq5(self):
        # E = i_e alpha kappa m f^2 + i_t m / f = 1.5*0.4*0.01*2*16 + 0.2*2/4 = 0.192 + 0.1
        f = self.variant(
            lambda m, fn, alpha: model.compute_cost(
                workload=m, power=fn, price=1.5, discount=alpha, usage_price=0.2, kappa=0.01
            )
        )
        np.testing.assert_allclose(f(2.0, 4.0, 0.4), 0.292, rtol=1e-6)
        # A fully hydro-supplied node (alpha = 0) pays only the usage cost.
        np.testing.assert_allclose(f(2.0, 4.0, 0.0), 0.1, rtol=1e-6)

    @chex.all_variants(with_pmap=False)
    def test_transmission_delay_eq1(self):
        # Two used hops: 5/10 + 0.1 + 5/50 + 0.2 = 0.9; the padded third hop is ignored.
        f = self.variant(
            lambda: model.transmission_delay(
                packet_size=jnp.array(5.0),
                bandwidths=jnp.array([10.0, 50.0, 0.0]),
                switch_delays=jnp.array([0.1, 0.2, 7.0]),
                hop_mask=jnp.array([True, True, False]),
            )
        )
        np.testing.assert_allclose(f(), 0.9, rtol=1e-6)

    @chex.all_variants(with_pmap=False)
    def test_shortest_paths_and_route(self):
        # Line 0-1-2 plus a slow direct link 0-2: the two-hop route is faster.
        inf = jnp.inf
        hop = jnp.array([[inf, 1.0, 5.0], [1.0, inf, 1.0], [5.0, 1.0, inf]])
        dist, next_hop = self.variant(model.shortest_paths)(hop)
        np.testing.assert_allclose(dist, [[0, 1, 2], [1, 0, 1], [2, 1, 0]])
        assert int(next_hop[0, 2]) == 1
        nodes, mask = self.variant(lambda: model.route(next_hop, 0, 2, 2))()
        np.testing.assert_array_equal(nodes, [0, 1, 2])
        np.testing.assert_array_equal(mask, [True, True])

    @chex.all_variants(with_pmap=False)
    def test_fifo_dispatch_conflict(self):
        # Two tasks share link 1-2 (bandwidth 10, 5 Mb -> 0.5 s). Task 0 reaches node 1 at
        # 0.5 + 0.1 (switch) and holds the link until 1.1; task 1 is ready at 0.25 + 0.1 and
        # must wait until 1.1: offset 0.75 s. Task 0 never waits.
        bandwidth = jnp.array([[0, 10.0, 0], [10.0, 0, 10.0], [0, 10.0, 0]])
        switch = jnp.array([0.1, 0.1, 0.1])
        routes = jnp.array([[1, 2], [1, 2]])
        mask = jnp.array([[True], [True]])
        access = jnp.array([0.5, 0.25])
        arrival, offset = self.variant(model.fifo_dispatch)(
            routes, mask, jnp.array([5.0, 5.0]), access, bandwidth, switch
        )
        np.testing.assert_allclose(offset, [0.0, 0.75], atol=1e-6)
        np.testing.assert_allclose(arrival, [1.1, 1.6], atol=1e-6)
