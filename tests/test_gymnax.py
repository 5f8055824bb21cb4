"""gymnax interop: both envs run under gymnax's own wrappers, converters and registry, and match the jaxcpn envs."""

import copy
import os
import re
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

gymnax = pytest.importorskip("gymnax", reason="gymnax is an optional extra: pip install -e '.[gymnax]'")

from gymnax.environments.environment import Environment  # noqa: E402
from gymnax.environments.spaces import gymnax_space_to_gym_space  # noqa: E402
from gymnax.experimental.rollout import RolloutWrapper  # noqa: E402
from gymnax.wrappers import GymnaxToGymWrapper, GymnaxToVectorGymWrapper, LogWrapper  # noqa: E402
from gymnasium import spaces as gym_spaces  # noqa: E402

from jaxcpn import spaces  # noqa: E402
from jaxcpn.cpn import CPNConfig  # noqa: E402
from jaxcpn.mec import MECConfig  # noqa: E402
from jaxcpn.wrappers.gymnax import (  # noqa: E402
    FlattenObservationWrapper, GreenCPNGymnax, GymnaxParams, LegacyStepWrapper, OnePerUserCPN,
    TwoTimescaleMECGymnax, flatten_observation, to_gymnax_space)

ROOT = Path(__file__).resolve().parents[1]
SMALL_CPN = CPNConfig(num_nodes=4, num_users=4, window=4, episode_length=4)
SMALL_MEC = MECConfig(num_cells=2, num_services=4, slots_per_frame=2, frames_per_episode=2, qp_iterations=10)

# One instance of each env for the whole module: gymnax jits step/reset with the env static, so
# reusing the object reuses the compiled programs.
CPN = GreenCPNGymnax(SMALL_CPN)
MEC = TwoTimescaleMECGymnax(SMALL_MEC)
ENVS = {"cpn": CPN, "mec": MEC}


def as_numpy(obs, space):
    """An observation as gymnasium holds it: dict of arrays for a Dict space (the CPN's pytree)."""
    if isinstance(space, gym_spaces.Dict):
        return {name: np.asarray(getattr(obs, name)) for name in space.spaces}
    return np.asarray(obs)


@pytest.fixture(scope="module", params=sorted(ENVS))
def env(request):
    return ENVS[request.param]


def test_converted_envs_are_gymnax_environments(env):
    params = env.default_params
    assert isinstance(env, Environment)
    assert isinstance(params, GymnaxParams)
    assert params.max_steps_in_episode == (SMALL_CPN.episode_length if env is CPN else SMALL_MEC.frames_per_episode)
    assert env.name == ("jaxcpn/GreenCPN-v0" if env is CPN else "jaxcpn/TwoTimescaleMEC-v0")
    with pytest.raises(NotImplementedError, match="OnePerUserCPN"):
        env.num_actions  # noqa: B018  (MultiDiscrete / MultiBinary: no number of actions)
    with pytest.raises(ValueError, match="max_steps_in_episode"):
        env.reset(jax.random.key(0), params.replace(max_steps_in_episode=params.max_steps_in_episode + 1))


def test_gymnax_converter_accepts_the_spaces(env):
    params = env.default_params
    obs_space = gymnax_space_to_gym_space(env.observation_space(params))
    action_space = gymnax_space_to_gym_space(env.action_space(params))
    obs, _ = env.reset(jax.random.key(0), params)
    assert obs_space.contains(as_numpy(obs, obs_space))
    jax_action_space = env.env.action_space(params.env_params)
    for seed in range(5):
        action_space.seed(seed)
        assert jax_action_space.contains(jnp.asarray(action_space.sample()))  # gymnasium's samples are env actions
    if env is CPN:
        assert isinstance(obs_space, gym_spaces.Dict) and set(obs_space.spaces) == set(
            env.env.observation_space(params.env_params).spaces)
        assert action_space.dtype == np.int32 and (action_space.high == SMALL_CPN.num_nodes - 1).all()
    else:
        assert obs_space.shape == (SMALL_MEC.num_cells, SMALL_MEC.slots_per_frame, SMALL_MEC.num_services)
        assert action_space.dtype == np.bool_ and action_space.shape == (SMALL_MEC.num_cells, SMALL_MEC.num_services)


def test_space_conversion_keeps_jaxcpn_sampling_and_checks():
    discrete = to_gymnax_space(spaces.Discrete(3))
    assert isinstance(discrete, gymnax.environments.spaces.Discrete) and discrete.n == 3
    multi = to_gymnax_space(spaces.MultiDiscrete([2, 5]))
    draws = jax.vmap(multi.sample)(jax.random.split(jax.random.key(0), 2000))
    assert draws.dtype == jnp.int32 and set(np.unique(draws[:, 1]).tolist()) == {0, 1, 2, 3, 4}  # top value too
    assert not multi.contains(jnp.array([0.0, 1.0]))  # floats are not MultiDiscrete actions
    box = to_gymnax_space(spaces.Box(0.0, np.inf, (3,)))
    assert np.isfinite(np.asarray(box.sample(jax.random.key(0)))).all()  # gymnax's own sampler gives inf here
    with pytest.raises(TypeError, match="jaxcpn.spaces"):
        to_gymnax_space(gymnax.environments.spaces.Discrete(2))


def test_rollout_equals_the_jaxcpn_env(env):
    """Same key, same actions, two episodes (auto-reset included): equal rewards and observations."""
    params = env.default_params
    jaxcpn_env, env_params = env.env, params.env_params
    jaxcpn_reset, jaxcpn_step = jax.jit(jaxcpn_env.reset), jax.jit(jaxcpn_env.step)
    key = jax.random.key(7)
    obs, state = env.reset(key, params)
    ref_obs, ref_state = jaxcpn_reset(key, env_params)
    space = env.env.action_space(env_params)
    for t in range(2 * params.max_steps_in_episode):
        key_step = jax.random.fold_in(key, t)
        action = space.sample(jax.random.fold_in(key_step, 1))
        obs, state, reward, terminated, truncated, info = env.step(key_step, state, action, params)
        ref_obs, ref_state, ref_reward, _, ref_truncated, ref_info = jaxcpn_step(key_step, ref_state, action, env_params)
        np.testing.assert_array_equal(reward, ref_reward)
        assert bool(truncated) == bool(ref_truncated) == ((t + 1) % params.max_steps_in_episode == 0)
        assert not bool(terminated)
        for leaf, ref_leaf in zip(jax.tree.leaves((obs, info["final_observation"])),
                                  jax.tree.leaves((ref_obs, ref_info["final_observation"]))):
            np.testing.assert_array_equal(leaf, ref_leaf)


def test_max_steps_in_episode_truncates_earlier():
    params = CPN.default_params.replace(max_steps_in_episode=2)
    _, state = CPN.reset(jax.random.key(0), params)
    action = jnp.zeros((SMALL_CPN.num_users,), jnp.int32)
    truncations = []
    for t in range(4):
        _, state, _, _, truncated, _ = CPN.step(jax.random.key(t), state, action, params)
        truncations.append(bool(truncated))
    assert truncations == [False, True, False, True]


def test_log_and_rollout_wrappers(env):
    params = env.default_params
    horizon = params.max_steps_in_episode
    # RolloutWrapper with default arguments: one episode of max_steps_in_episode random actions.
    rollout = RolloutWrapper(env=env)
    assert rollout.num_env_steps == horizon
    _, actions, rewards, _, done, cum_return = rollout.batch_rollout(jax.random.split(jax.random.key(0), 3), None)
    assert actions.shape[:2] == (3, horizon) and done[:, -1].all() and not done[:, :-1].any()
    np.testing.assert_allclose(cum_return[:, 0], rewards.sum(axis=1), rtol=1e-5)
    # LogWrapper: the episode's return when it ends.
    log = LogWrapper(env)
    _, state = log.reset(jax.random.key(1), params)
    total = 0.0
    for t in range(horizon):
        action = env.action_space(params).sample(jax.random.key(100 + t))
        _, state, reward, _, _, info = log.step(jax.random.key(t), state, action, params)
        total += float(reward)
    assert bool(info["returned_episode"])
    np.testing.assert_allclose(float(info["returned_episode_returns"]), total, rtol=1e-5)


def test_gym_wrappers(env):
    params = env.default_params
    gym_env = GymnaxToGymWrapper(env, params, seed=0)
    assert gym_env.metadata["name"] == env.name
    obs, _ = gym_env.reset(seed=3)
    assert gym_env.observation_space.contains(as_numpy(obs, gym_env.observation_space))
    obs, reward, terminated, truncated, _ = gym_env.step(gym_env.action_space.sample())
    assert gym_env.observation_space.contains(as_numpy(obs, gym_env.observation_space))
    assert np.isfinite(float(reward)) and not bool(terminated) and not bool(truncated)
    num_envs = 3
    vec = GymnaxToVectorGymWrapper(env, num_envs, params, seed=0)
    vec.reset(seed=1)
    obs, rewards, terminated, truncated, _ = vec.step(vec.action_space.sample())
    assert rewards.shape == terminated.shape == truncated.shape == (num_envs,)
    assert np.isfinite(np.asarray(rewards)).all()
    assert all(leaf.shape[0] == num_envs for leaf in jax.tree.leaves(obs))


def test_gymnax_make_finds_every_id():
    for env_id, config in (("jaxcpn/GreenCPN-v0", SMALL_CPN), ("jaxcpn/TwoTimescaleMEC-v0", SMALL_MEC),
                           ("jaxcpn/GreenCPNPerUser-v0", SMALL_CPN)):
        env, params = gymnax.make(env_id, config=config)
        assert isinstance(env, Environment) and env.name == env_id and isinstance(params, GymnaxParams)
        assert env_id in gymnax.registered_envs
    # RolloutWrapper resolves registered ids through gymnax.make.
    rollout = RolloutWrapper(env_name="jaxcpn/TwoTimescaleMEC-v0", env_kwargs={"config": SMALL_MEC})
    assert rollout.num_env_steps == SMALL_MEC.frames_per_episode


def test_flatten_observation_wrapper_and_deepcopy():
    flat = FlattenObservationWrapper(CPN)
    params = flat.default_params
    space = flat.observation_space(params)
    obs, state = flat.reset(jax.random.key(0), params)
    tree_obs, _ = CPN.reset(jax.random.key(0), params)
    fields = CPN.env.observation_space(params.env_params).spaces
    np.testing.assert_array_equal(obs, np.concatenate([np.ravel(getattr(tree_obs, name)) for name in fields]))
    assert obs.shape == space.shape and obs.dtype == jnp.float32 and bool(space.contains(obs))
    assert isinstance(flat, Environment) and flat.name == CPN.name and flat.config == SMALL_CPN  # proxied
    _, _, _, _, _, info = flat.step(jax.random.key(1), state, jnp.zeros((SMALL_CPN.num_users,), jnp.int32), params)
    assert info["final_observation"].shape == space.shape
    # Deep copies (GymnaxToGymWrapper's, rejax's) work: gymnax's proxies recurse forever here.
    for wrapped in (flat, LegacyStepWrapper(flat)):
        assert copy.deepcopy(wrapped).name == CPN.name
    gym_env = GymnaxToGymWrapper(flat, params)
    assert gym_env.observation_space.shape == space.shape


def test_one_per_user_cpn_pays_the_slot_profit_at_the_last_user():
    per_user = OnePerUserCPN(SMALL_CPN)
    params = per_user.default_params
    users, nodes = SMALL_CPN.num_users, SMALL_CPN.num_nodes
    assert per_user.num_actions == nodes and params.max_steps_in_episode == SMALL_CPN.episode_length * users
    assert isinstance(per_user.action_space(params), gymnax.environments.spaces.Discrete)
    key = jax.random.key(3)
    obs, state = per_user.reset(key, params)
    cpn_params = CPN.default_params
    _, ref_state = CPN.reset(key, cpn_params)
    space = per_user.observation_space(params)
    assert obs.shape == space.shape and bool(space.contains(obs))
    slot_actions = jax.random.randint(jax.random.key(4), (SMALL_CPN.episode_length, users), 0, nodes, jnp.int32)
    step = jax.jit(per_user.step)
    for slot, slot_action in enumerate(slot_actions):
        key_slot = jax.random.fold_in(key, slot)
        _, ref_state, ref_reward, _, ref_truncated, _ = CPN.step(key_slot, ref_state, slot_action, cpn_params)
        for user in range(users):
            chosen = obs[-users * nodes:].reshape(users, nodes)
            np.testing.assert_array_equal(chosen.argmax(axis=1)[:user], slot_action[:user])  # decided so far
            assert chosen[user:].sum() == 0 and obs[-users * nodes - users + user] == 1.0  # current user one-hot
            obs, state, reward, terminated, truncated, info = step(key_slot, state, slot_action[user], params)
            assert bool(info["slot_end"]) == (user == users - 1) and not bool(terminated)
            if user == users - 1:
                np.testing.assert_allclose(reward, ref_reward, rtol=1e-6)
                assert bool(truncated) == bool(ref_truncated)
            else:
                assert float(reward) == 0.0 and not bool(truncated)
    assert bool(truncated)
    # The five-value step of gymnax < 1.0 for rejax: done = terminated | truncated.
    legacy = LegacyStepWrapper(per_user)
    _, state = legacy.reset(key, params)
    outputs = legacy.step(key, state, jnp.int32(0), params)
    assert len(outputs) == 5 and not bool(outputs[3])


def test_readme_gymnax_snippet():
    namespace = run_readme_block(0)
    assert namespace["returns"].shape == (8, 1) and np.isfinite(np.asarray(namespace["returns"])).all()
    assert isinstance(namespace["gym_env"].action_space, gym_spaces.Box)
    assert namespace["info"]["deadline_miss"].shape == (4,)


def test_rejax_ppo_trains_on_one_decision_per_user():
    """The README's rejax snippet: PPO beats uniformly random decisions by a margin."""
    pytest.importorskip("rejax", reason="rejax is an optional extra: pip install -e '.[rejax]'")
    namespace = run_readme_block(1)
    env, returns = namespace["env"], np.asarray(namespace["returns"])
    random_returns = RolloutWrapper(env=env).batch_rollout(jax.random.split(jax.random.key(1), 256), None)[-1]
    random_mean = float(np.mean(random_returns))
    assert returns.shape == (3, 128) and np.isfinite(returns).all()
    assert returns[-1].mean() > random_mean + 5.0, (returns.mean(axis=1), random_mean)


def run_readme_block(index: int) -> dict:
    """Executes the ``index``-th python block of the README's "gymnax" section; returns its names."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## gymnax\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    namespace: dict = {}
    exec(compile(blocks[index], f"README.md (gymnax, block {index})", "exec"), namespace)  # noqa: S102
    return namespace


# ------------------------------------------------------------------------------------ registration
BLOCK_GYMNAX = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "gymnax" or name.startswith("gymnax."):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
sys.meta_path.insert(0, Block())
"""


def run_python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)


def test_import_without_gymnax():
    result = run_python(BLOCK_GYMNAX + """
import jaxcpn
import jaxcpn.cpn, jaxcpn.mec
assert "gymnax" not in sys.modules
try:
    import jaxcpn.wrappers.gymnax
except ImportError as error:
    print("ImportError:", error)
""")
    assert result.returncode == 0, result.stderr
    assert 'pip install -e ".[gymnax]"' in result.stdout


def test_import_of_jaxcpn_leaves_gymnax_unloaded_and_registers_on_import():
    result = run_python("""
import sys
import jaxcpn
assert "gymnax" not in sys.modules, "importing jaxcpn must not import gymnax (a second)"
import gymnax
assert {"jaxcpn/GreenCPN-v0", "jaxcpn/TwoTimescaleMEC-v0", "jaxcpn/GreenCPNPerUser-v0"} <= set(gymnax.registered_envs)
print(type(gymnax.__spec__.loader).__name__)
""")
    assert result.returncode == 0, result.stderr
    assert "_RegisteringLoader" not in result.stdout  # gymnax keeps its own loader


def test_gymnax_imported_first_is_registered_at_jaxcpn_import():
    result = run_python("""
import gymnax
import jaxcpn
assert "jaxcpn/GreenCPN-v0" in gymnax.registered_envs
""")
    assert result.returncode == 0, result.stderr
