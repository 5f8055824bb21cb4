"""A trainer's fresh runner has exactly the types a restored checkpoint has (no weak-typed leaf),
so a resumed run reuses the compiled training chunk instead of compiling it again."""

import jax
import numpy as np
import pytest

from agents import checkpoint
from agents.stper.ppo import PPOConfig, make_trainer as make_ppo
from agents.ttosc.ddqn import DDQNConfig, make_trainer as make_ddqn

TRAINERS = {
    "ppo": lambda: make_ppo(PPOConfig(variant="stper-m", num_nodes=4, num_users=4, window=4, episode_length=4,
                                      num_envs=2, num_steps=2, num_updates=1, num_minibatches=1)),
    "ddqn": lambda: make_ddqn(DDQNConfig(num_cells=2, num_services=3, slots_per_frame=2, frames_per_episode=2,
                                         num_envs=2, num_episodes=2, hidden=8, batch_size=4, buffer_size=16,
                                         learning_starts=4)),
}


@pytest.mark.parametrize("name", sorted(TRAINERS))
def test_fresh_runner_has_the_types_of_a_restored_one(name, tmp_path):
    trainer = TRAINERS[name]()
    shapes = jax.eval_shape(trainer.init, jax.random.PRNGKey(0))  # traced only: nothing is compiled
    weak = [jax.tree_util.keystr(path) for path, leaf in jax.tree_util.tree_flatten_with_path(shapes)[0]
            if leaf.weak_type]
    assert weak == [], f"weak-typed runner leaves (a restored checkpoint has them strong): {weak}"
    # and a checkpoint round trip gives back exactly those types
    runner = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)
    checkpoint.save_checkpoint(tmp_path, 1, runner)
    restored, _ = checkpoint.restore_checkpoint(tmp_path, runner)
    assert [jax.typeof(x) for x in jax.tree.leaves(restored)] == [
        jax.core.ShapedArray(s.shape, s.dtype) for s in jax.tree.leaves(shapes)]
