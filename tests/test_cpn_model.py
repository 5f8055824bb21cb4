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

    # Link conflicts on the line 0-1-2-3: every link 10 Mb/s (a 5 Mb packet takes 0.5 s), every
    # node forwards after 0.1 s, so a task with access delay a reaches its first link at a + 0.1.
    LINE = jnp.array([[0, 10.0, 0, 0], [10.0, 0, 10.0, 0], [0, 10.0, 0, 10.0], [0, 0, 10.0, 0]])
    SWITCH = jnp.full((4,), 0.1)

    def dispatch(self, rule, routes, access):
        """``rule`` on padded ``routes`` (rows of node lists of equal length) with 5 Mb packets."""
        routes = jnp.array(routes, jnp.int32)
        mask = routes[:, :-1] != routes[:, -1:]
        size = jnp.full((routes.shape[0],), 5.0)
        return self.variant(rule)(routes, mask, size, jnp.array(access), self.LINE, self.SWITCH)

    @chex.all_variants(with_pmap=False)
    def test_fifo_two_tasks_sharing_a_link_in_either_order(self):
        # In index order: task 0 is ready at 0.35 and holds 1-2 until 0.85; task 1, ready at 0.6,
        # waits 0.25.
        arrival, offset = self.dispatch(model.fifo_dispatch, [[1, 2], [1, 2]], [0.25, 0.5])
        np.testing.assert_allclose(offset, [0.0, 0.25], atol=1e-6)
        np.testing.assert_allclose(arrival, [0.85, 1.35], atol=1e-6)
        # Back-filling: task 1 is ready first (0.35) and goes first; task 0 (0.6) waits 0.25.
        arrival, offset = self.dispatch(model.fifo_dispatch, [[1, 2], [1, 2]], [0.5, 0.25])
        np.testing.assert_allclose(offset, [0.25, 0.0], atol=1e-6)
        np.testing.assert_allclose(arrival, [1.35, 0.85], atol=1e-6)
        # The old priority rule serves task 0 first although it is ready later: task 1, ready at
        # 0.35, waits until 1.1.
        arrival, offset = self.dispatch(model.priority_dispatch, [[1, 2], [1, 2]], [0.5, 0.25])
        np.testing.assert_allclose(offset, [0.0, 0.75], atol=1e-6)
        np.testing.assert_allclose(arrival, [1.1, 1.6], atol=1e-6)

    @chex.all_variants(with_pmap=False)
    def test_fifo_back_fills_an_idle_link_before_a_later_hop(self):
        # Task 0 crosses 0-1 in [0.2, 0.7] and reaches 1-2 at 0.8; task 1 reaches 1-2 at 0.65 and
        # uses it in [0.65, 1.15], so task 0 waits 0.35 there. Priority: task 0 reserves 1-2 for
        # [0.8, 1.3] and task 1 waits 0.65 although the link is idle when it arrives.
        routes = [[0, 1, 2], [1, 2, 2]]
        arrival, offset = self.dispatch(model.fifo_dispatch, routes, [0.1, 0.55])
        np.testing.assert_allclose(offset, [0.35, 0.0], atol=1e-6)
        np.testing.assert_allclose(arrival, [1.65, 1.15], atol=1e-6)
        _, offset = self.dispatch(model.priority_dispatch, routes, [0.1, 0.55])
        np.testing.assert_allclose(offset, [0.0, 0.65], atol=1e-6)

    @chex.all_variants(with_pmap=False)
    def test_fifo_free_link_never_waits(self):
        # Disjoint links at the same time; link 0-1, freed by task 0 at 0.7, reached by task 2 in
        # the opposite direction at 0.8; a task with no hops.
        routes = [[0, 1, 1], [2, 3, 3], [1, 0, 0], [3, 3, 3]]
        arrival, offset = self.dispatch(model.fifo_dispatch, routes, [0.1, 0.1, 0.7, 0.3])
        np.testing.assert_allclose(offset, [0.0, 0.0, 0.0, 0.0], atol=1e-6)
        np.testing.assert_allclose(arrival, [0.7, 0.7, 1.3, 0.3], atol=1e-6)

    @chex.all_variants(with_pmap=False)
    def test_fifo_ties_by_index_and_queues(self):
        # Three tasks ready at 0.6 on the same link (one in the opposite direction): index order.
        arrival, offset = self.dispatch(model.fifo_dispatch, [[1, 2], [2, 1], [1, 2]], [0.5, 0.5, 0.5])
        np.testing.assert_allclose(offset, [0.0, 0.5, 1.0], atol=1e-6)
        np.testing.assert_allclose(arrival, [1.1, 1.6, 2.1], atol=1e-6)
        # A queue in order of arrival, not of index: ready at 0.45, 0.35, 0.4.
        _, offset = self.dispatch(model.fifo_dispatch, [[1, 2], [1, 2], [1, 2]], [0.35, 0.25, 0.3])
        np.testing.assert_allclose(offset, [0.9, 0.0, 0.45], atol=1e-6)
