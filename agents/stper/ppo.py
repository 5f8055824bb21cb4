"""PPO for the green CPN (STPer, paper section IV-C), PureJaxRL style.

``make_train(config) -> train(key)`` runs a whole training as one jitted program whose loops are
all ``lax.scan``s; ``jax.jit(jax.vmap(train))(keys)`` trains several seeds at once. For a
progress bar and checkpoints, :func:`make_trainer` exposes the same program in pieces:
``init(key) -> RunnerState`` and ``train_chunk(runner_state, num_updates)``, so a host loop can
run chunks of updates, report and checkpoint between them, and resume from a saved
:class:`RunnerState` to exactly the result of an uninterrupted run.

Choices (documented in docs/model.md, section on the STPer agent):

- **Reward scaling.** The slot profit (about 10-40 per slot at the default instance) is
  multiplied by ``reward_scale`` (default 0.01) before GAE; with ``gamma = 0.99`` and
  bootstrapping through truncation the value targets are then ``O(10)``, a range an
  orthogonally-initialised critic fits quickly. Advantages are also normalised per minibatch.
  Logged returns and profits are always unscaled.
- **Truncation vs termination.** Episodes of the CPN end by truncation; the value target of a
  truncated step bootstraps from ``V(info["final_observation"])`` (the pre-reset observation).
  Termination (supported, never produced by this env) stops the bootstrap. Either ends the GAE
  trace. ``V(s'_t)`` of a step that does not end an episode is the next step's ``V(s_{t+1})``,
  so the rollout evaluates the network on ``final_observation`` only at steps where an episode
  may end (see the schedule below), not as a second forward pass of every step.
- **Recurrent perception** (``perception="recurrent"``, the default of STPer and STPer-L): the
  three LSTMs carry their states from slot to slot (eqs. 18-20); at an episode's first
  observation a burn-in over the ``W - 1`` slots of its window before the current one
  initialises them. The rollout stores, per step, the states before the step's slot
  (``Transition.hidden``; after the burn-in where ``Transition.first``) and only the windows'
  current slots. The loss re-runs the LSTMs over each minibatch's sequences (minibatches are
  whole environments, as in PureJaxRL's ``ppo_rnn``), restarting from the stored states at
  episode starts: the burn-in's states come from the rollout's parameters and pass no gradient
  (R2D2's stored-state burn-in), every slot of the episode itself does.
  ``perception="window"`` re-encodes every observation's window instead (W times the work).
- **Static episode schedule.** Episodes of the CPN all last ``episode_length`` slots and start
  together, so when ``num_steps`` is a multiple of ``episode_length`` every rollout starts an
  episode at steps ``0, T, 2T, ...`` and ends one at ``T - 1, 2T - 1, ...``. The rollout is then
  a scan over episodes, each a scan over its first ``T - 1`` steps plus its last step (the only
  one that bootstraps), and the burn-in branches on the step index, which stays a true branch
  under ``jax.vmap`` over seeds or instances. Otherwise both branch on ``any(first)`` /
  ``any(done)`` (a ``vmap`` then turns the branch into a select that computes both sides).
- **Policy.** Independent categoricals over each user's destination; the joint log-probability
  and entropy are sums over users.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Literal, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState

from agents.checks import non_negative, positive, require_int, require_real, unit_interval
from agents.stper import networks as nets
from jaxcpn.cpn import CPNConfig, CPNObservation, CPNParams, CPNState, GreenCPN, generate_instance, validate_params


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """PPO + STPer network hyperparameters (static: a change recompiles), each checked at construction."""

    variant: str = "stper"
    """Network variant: stper (GCN + LSTM), stper-l (no GNN) or stper-m (MLP on the current observation)."""
    perception: Literal["recurrent", "window"] = "recurrent"
    """LSTM perception: recurrent (states carried slot to slot, eqs. 18-20) or window (re-run over each window)."""
    adjacency: Literal["learned", "topology"] = "learned"
    """GCN graph (stper only): learned (the paper's graph learning module: the topology mixed with a learned
    adjacency, eq. 16 on the mixture) or topology (the fixed topology alone, the ablation)."""
    num_nodes: int = 10
    """Compute nodes N of the CPN instance."""
    num_users: int = 10
    """Users U of the CPN instance (one task each per slot)."""
    window: int = 24
    """Observation look-back window W (slots)."""
    episode_length: int = 24
    """Slots per episode (truncation)."""
    instance_seed: int = 0
    """Seed of the CPN instance (topology, powers, series); 0 is env.default_params."""
    compute_sharing: bool = False
    """Environment option beyond the paper: nodes queue their tasks and carry unfinished work
    to the next slot (``CPNConfig.compute_sharing``; the networks then read the queues)."""
    observe_current_workload: bool = True
    """False: the observation's workloads end at the previous slot (``CPNConfig.observe_current_workload``)."""
    num_envs: int = 64
    """Parallel environments per seed."""
    num_steps: int = 24
    """Rollout length per update (steps per environment)."""
    num_updates: int = 200
    """PPO updates (each: a rollout of num_envs x num_steps, then the epochs)."""
    update_epochs: int = 4
    """Epochs over each rollout."""
    num_minibatches: int = 4
    """Minibatches per epoch."""
    learning_rate: float = 1e-3
    """Adam learning rate."""
    anneal_lr: bool = True
    """Linearly anneal the learning rate to 0 over training."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip."""
    gamma: float = 0.99
    """Discount (paper: 0.99)."""
    gae_lambda: float = 0.95
    """GAE lambda (the paper's phi)."""
    clip_eps: float = 0.2
    """PPO ratio clip (the paper's delta); also the value-clip range."""
    vf_coef: float = 0.5
    """Value-loss coefficient."""
    ent_coef: float = 0.01
    """Entropy-bonus coefficient."""
    reward_scale: float = 0.01
    """Multiplier of the slot profit before GAE (value targets O(10)); logs stay unscaled."""
    embed_dim: int = 16
    """Per-node demand embedding and GCN width d (eqs. 16-17)."""
    gcn_layers: int = 2
    """Graph convolution layers."""
    lstm_hidden: int = 32
    """Hidden size of each LSTM (eqs. 18-20)."""
    fusion_hidden: tuple[int, ...] = (128,)
    """Widths of the fusion MLP (section IV-B3)."""
    head_hidden: tuple[int, ...] = (64,)
    """Widths of the separate actor and critic MLPs."""

    def __post_init__(self):
        for name, choices in (("variant", nets.VARIANTS), ("perception", nets.PERCEPTIONS),
                              ("adjacency", nets.ADJACENCIES)):
            if not isinstance(getattr(self, name), str) or getattr(self, name) not in choices:
                raise ValueError(f"PPOConfig.{name}={getattr(self, name)!r} is invalid: must be one of {choices}")
        for name in ("num_nodes", "num_users", "window", "episode_length", "num_envs", "num_steps", "num_updates",
                     "update_epochs", "num_minibatches", "embed_dim", "lstm_hidden"):
            require_int("PPOConfig", name, getattr(self, name), 1)
        require_int("PPOConfig", "gcn_layers", self.gcn_layers, 0)  # 0: the demand embedding alone
        require_int("PPOConfig", "instance_seed", self.instance_seed, None)
        for name in ("anneal_lr", "compute_sharing", "observe_current_workload"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"PPOConfig.{name}={getattr(self, name)!r} is invalid: must be a bool")
        for name in ("learning_rate", "max_grad_norm", "clip_eps", "reward_scale"):
            require_real("PPOConfig", name, getattr(self, name), positive, "> 0")
        for name in ("vf_coef", "ent_coef"):
            require_real("PPOConfig", name, getattr(self, name), non_negative, ">= 0")
        for name in ("gamma", "gae_lambda"):
            require_real("PPOConfig", name, getattr(self, name), unit_interval, "in [0, 1]")
        for name in ("fusion_hidden", "head_hidden"):
            widths = getattr(self, name)
            bad = [i for i, width in enumerate(widths) if isinstance(width, bool) or not isinstance(width, int)
                   or width < 1] if isinstance(widths, tuple) else []
            if not isinstance(widths, tuple) or bad:
                entry = f" (entry {bad[0]} is {widths[bad[0]]!r})" if bad else ""
                raise ValueError(f"PPOConfig.{name}={widths!r} is invalid: must be a tuple of ints >= 1 (layer "
                                 f"widths){entry}")
        if self.recurrent and self.num_envs % self.num_minibatches:
            raise ValueError(
                f"PPOConfig.num_minibatches={self.num_minibatches} is invalid: must divide num_envs = "
                f"{self.num_envs} with recurrent perception (a minibatch is whole environments' sequences)"
            )
        if (self.num_envs * self.num_steps) % self.num_minibatches:
            raise ValueError(
                f"PPOConfig.num_minibatches={self.num_minibatches} is invalid: must divide "
                f"num_envs * num_steps = {self.num_envs * self.num_steps}"
            )

    @property
    def recurrent(self) -> bool:
        """Whether the network carries LSTM states through the rollout (an LSTM variant, recurrent perception)."""
        return self.variant != "stper-m" and self.perception == "recurrent"

    @property
    def env_config(self) -> CPNConfig:
        return CPNConfig(num_nodes=self.num_nodes, num_users=self.num_users, window=self.window,
                         episode_length=self.episode_length, compute_sharing=self.compute_sharing,
                         observe_current_workload=self.observe_current_workload)


class RunnerState(NamedTuple):
    """Carry of the training scan (everything a resumed run needs).

    Attributes:
        train_state: network parameters and Adam state.
        env_state: ``(B,)`` batched :class:`CPNState`.
        obs: ``(B,)`` batched current observation.
        hidden: LSTM states after the slot before ``obs``'s
            (:class:`~agents.stper.networks.PerceptionCarry`, ``(B, H)`` leaves; ignored where
            ``first``), ``()`` without recurrent perception.
        first: ``(B,)`` bool, ``obs`` is an episode's first observation.
        episode_return: ``(B,)`` float32 unscaled return of each running episode so far.
        key: ``uint32[2]`` PRNG key.
        update: ``()`` int32 number of updates done.
    """

    train_state: TrainState
    env_state: CPNState
    obs: CPNObservation
    hidden: Any
    first: jax.Array
    episode_return: jax.Array
    key: jax.Array
    update: jax.Array


class PPOHyperparams(NamedTuple):
    """The dynamic hyperparameters of a run (``()`` float32 each, or batched for ``vmap``).

    Passing them to ``Trainer.update`` / ``train_chunk`` / ``train`` overrides the config's
    values inside one compiled program, so a scan ``vmap``s over them (scripts/scan.py). The
    learning rate scales the Adam update of the config's optimiser by
    ``learning_rate / config.learning_rate`` (the same annealing schedule, the same optimiser
    state), so no optimiser is rebuilt per value.

    Attributes:
        learning_rate: Adam learning rate (> 0).
        clip_eps: PPO ratio and value clip.
        ent_coef: entropy-bonus coefficient.
        gae_lambda: GAE lambda.
    """

    learning_rate: jax.Array
    clip_eps: jax.Array
    ent_coef: jax.Array
    gae_lambda: jax.Array

    @classmethod
    def from_config(cls, config: "PPOConfig") -> "PPOHyperparams":
        """The config's values as ``()`` float32 arrays."""
        return cls(*(jnp.asarray(getattr(config, name), jnp.float32) for name in cls._fields))


class Transition(NamedTuple):
    """One rollout step of ``B`` environments (leaves ``(B, ...)``; stacked ``(T, B, ...)``).

    With recurrent perception ``obs`` holds only the current slot of each window
    (:func:`~agents.stper.networks.current_slot`) and ``hidden`` the LSTM states before it
    (after the burn-in where ``first``); otherwise ``obs`` is whole and ``hidden`` is ``()``.
    ``final_value`` is ``V(info["final_observation"])`` where the step ended an episode, else 0.
    """

    obs: CPNObservation
    first: jax.Array
    hidden: Any
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    final_value: jax.Array
    reward: jax.Array
    termination: jax.Array
    truncation: jax.Array
    profit: jax.Array
    delay: jax.Array
    miss: jax.Array
    finished_return: jax.Array


class Trainer(NamedTuple):
    """The pieces of one PPO training program (see the module docstring)."""

    config: PPOConfig
    env: GreenCPN
    env_params: CPNParams
    network: nets.STPerNetwork
    init: Callable[..., RunnerState]
    """``init(key, env_params=None)``."""
    update: Callable[..., tuple[RunnerState, dict]]
    """``update(runner, hparams=None, env_params=None)``."""
    train_chunk: Callable[..., tuple[RunnerState, dict]]
    """``train_chunk(runner, num_updates, hparams=None, env_params=None)``."""
    train: Callable[..., tuple[RunnerState, dict]]
    """``train(key, hparams=None, env_params=None)``; ``env_params`` (same config, any
    values) replaces the trainer's instance, so it can be ``vmap``ped over a params leaf."""
    rollout: Callable[..., tuple[RunnerState, "Transition"]]
    """``rollout(runner, env_params=None) -> (runner, [T, B] transitions)``: an update's rollout
    with the runner's parameters (for tests and diagnostics)."""


# ---------------------------------------------------------------------------- maths kernels
def compute_gae(
    rewards: jax.Array,
    values: jax.Array,
    next_values: jax.Array,
    termination: jax.Array,
    truncation: jax.Array,
    gamma: float,
    gae_lambda: float,
) -> tuple[jax.Array, jax.Array]:
    """Generalised advantage estimation with truncation and termination kept apart.

    ``delta_t = r_t + gamma (1 - term_t) V(s'_t) - V(s_t)`` where ``s'_t`` is the true next
    state (the pre-reset observation at an episode end), and
    ``A_t = delta_t + gamma lambda (1 - term_t)(1 - trunc_t) A_{t+1}``: a truncated step still
    bootstraps from ``V(s'_t)``, a terminated one does not; both end the trace.

    Args:
        rewards: ``[T, B]`` float32.
        values: ``[T, B]`` ``V(s_t)``.
        next_values: ``[T, B]`` ``V(s'_t)``.
        termination: ``[T, B]`` bool or 0/1.
        truncation: ``[T, B]`` bool or 0/1.
        gamma: discount; gae_lambda: trace decay.

    Returns:
        ``(advantages, value_targets)``, both ``[T, B]``; targets = advantages + values.
    """
    term = termination.astype(jnp.float32)
    cont = (1.0 - term) * (1.0 - truncation.astype(jnp.float32))
    deltas = rewards + gamma * (1.0 - term) * next_values - values

    def backward(advantage, step):
        delta, continues = step
        advantage = delta + gamma * gae_lambda * continues * advantage
        return advantage, advantage

    _, advantages = jax.lax.scan(backward, jnp.zeros_like(values[0]), (deltas, cont), reverse=True)
    return advantages, advantages + values


def ppo_loss_terms(
    new_log_prob: jax.Array,
    old_log_prob: jax.Array,
    advantages: jax.Array,
    new_values: jax.Array,
    old_values: jax.Array,
    targets: jax.Array,
    entropy: jax.Array,
    clip_eps: float,
    vf_coef: float,
    ent_coef: float,
) -> tuple[jax.Array, dict]:
    """PPO loss of a minibatch (all inputs ``[M]``; ``advantages`` already normalised).

    ``L = -mean(min(rho A, clip(rho, 1 - eps, 1 + eps) A))``
    ``+ vf_coef * 0.5 mean(max((V - G)^2, (V_old + clip(V - V_old, -eps, eps) - G)^2))``
    ``- ent_coef * mean(H)`` with ``rho = exp(log pi - log pi_old)`` (the paper's eta_theta).

    Returns:
        ``(total_loss, aux)`` with ``policy_loss``, ``value_loss``, ``entropy``, ``approx_kl``
        (``mean((rho - 1) - log rho)``) and ``clip_fraction``.
    """
    log_ratio = new_log_prob - old_log_prob
    ratio = jnp.exp(log_ratio)
    surrogate = jnp.minimum(ratio * advantages, jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantages)
    policy_loss = -surrogate.mean()
    clipped_values = old_values + jnp.clip(new_values - old_values, -clip_eps, clip_eps)
    value_loss = 0.5 * jnp.maximum((new_values - targets) ** 2, (clipped_values - targets) ** 2).mean()
    mean_entropy = entropy.mean()
    total = policy_loss + vf_coef * value_loss - ent_coef * mean_entropy
    aux = dict(
        policy_loss=policy_loss,
        value_loss=value_loss,
        entropy=mean_entropy,
        approx_kl=((ratio - 1.0) - log_ratio).mean(),
        clip_fraction=(jnp.abs(ratio - 1.0) > clip_eps).mean(),
    )
    return total, aux


def explained_variance(predictions: jax.Array, targets: jax.Array) -> jax.Array:
    """``1 - Var(targets - predictions) / Var(targets)`` (the paper's Fig. 3 EV); NaN if Var = 0."""
    var = jnp.var(targets)
    return jnp.where(var > 0, 1.0 - jnp.var(targets - predictions) / jnp.where(var > 0, var, 1.0), jnp.nan)


# ---------------------------------------------------------------------------- training program
def make_network(config: PPOConfig) -> nets.STPerNetwork:
    """The STPer network of ``config``."""
    return nets.STPerNetwork(
        num_nodes=config.num_nodes, num_users=config.num_users, variant=config.variant, perception=config.perception,
        adjacency=config.adjacency, embed_dim=config.embed_dim, gcn_layers=config.gcn_layers,
        lstm_hidden=config.lstm_hidden, fusion_hidden=tuple(config.fusion_hidden),
        head_hidden=tuple(config.head_hidden),
    )


def make_env(config: PPOConfig) -> tuple[GreenCPN, CPNParams]:
    """Environment and instance (``instance_seed``) of ``config``."""
    env = GreenCPN(config.env_config)
    params = validate_params(generate_instance(jax.random.PRNGKey(config.instance_seed), env.config), env.config)
    return env, params


def make_trainer(config: PPOConfig, env: GreenCPN | None = None, env_params: CPNParams | None = None) -> Trainer:
    """Builds the PPO training program of ``config`` (nothing is compiled here).

    Args:
        config: hyperparameters.
        env, env_params: override the environment / instance made from ``config``.
    """
    if env is None:
        env, made_params = make_env(config)
        env_params = made_params if env_params is None else env_params
    elif env_params is None:
        env_params = env.default_params
    network = make_network(config)
    num_envs, num_steps = config.num_envs, config.num_steps
    batch_size = num_envs * num_steps
    minibatch_size = batch_size // config.num_minibatches
    envs_per_minibatch = num_envs // config.num_minibatches
    episode_length = env.config.episode_length
    # Every episode lasts episode_length slots and all start together at init, so with whole
    # episodes per rollout the starts and ends sit at fixed steps of every rollout.
    aligned = num_steps % episode_length == 0
    default_params = jax.tree.map(jnp.asarray, env_params)  # NumPy leaves cannot be indexed by tracers
    step_env = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def may_start(step, first: jax.Array):
        """``()`` bool: an episode may start at ``step`` (of an episode when ``aligned``, else of
        the rollout; a Python int gives a Python bool); ``first``: ``(B,)``."""
        return step % episode_length == 0 if aligned else jnp.any(first)

    def outputs(variables, hidden, obs, adjacency):
        """LSTM states after ``obs``'s slot (``hidden``: before it) and ``(logits (B, U, N), value (B,))``."""
        hidden = nets.batch_advance(network, variables, hidden, obs)
        return hidden, nets.policy_outputs(network, variables, hidden, obs, adjacency)

    stored_obs = nets.current_slot if config.recurrent else (lambda obs: obs)

    if config.anneal_lr:
        learning_rate = optax.linear_schedule(
            config.learning_rate, 0.0, config.num_updates * config.update_epochs * config.num_minibatches
        )
    else:
        learning_rate = config.learning_rate
    tx = optax.chain(optax.clip_by_global_norm(config.max_grad_norm), optax.adam(learning_rate, eps=1e-5))

    def init(key: jax.Array, env_params: CPNParams | None = None) -> RunnerState:
        env_params = default_params if env_params is None else env_params
        key, key_net, key_reset = jax.random.split(key, 3)
        obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key_reset, num_envs), env_params)
        one_obs = jax.tree.map(lambda x: x[0], obs)
        variables = network.init(key_net, one_obs, env_params.adjacency)
        # step as a (strong) int32 array, as a restored checkpoint has it: a resumed run reuses the compiled chunk
        train_state = TrainState.create(apply_fn=network.apply, params=variables, tx=tx).replace(
            step=jnp.zeros((), jnp.int32))
        return RunnerState(
            train_state=train_state, env_state=env_state, obs=obs, hidden=nets.zero_carry(network, (num_envs,)),
            first=jnp.ones((num_envs,), bool), episode_return=jnp.zeros((num_envs,), jnp.float32), key=key,
            update=jnp.zeros((), jnp.int32),
        )

    def rollout_step(runner: RunnerState, step, env_params: CPNParams, bootstrap: bool | None):
        """One env step of the batch; ``bootstrap`` says whether an episode ends here (True:
        evaluate ``V(final_observation)``, False: no episode ends, None: branch on ``any(done)``).

        Using ``final_observation`` at all costs about as much as the env step (it is not
        otherwise materialised), so only steps that may end an episode touch it.
        """
        variables, adjacency = runner.train_state.params, env_params.adjacency
        key, key_action, key_step = jax.random.split(runner.key, 3)
        start = nets.restart(network, variables, runner.hidden, runner.obs, runner.first,
                             may_start(step, runner.first))
        hidden, (logits, value) = outputs(variables, start, runner.obs, adjacency)
        action = nets.sample(key_action, logits)
        next_obs, env_state, reward, terminated, truncated, info = step_env(
            jax.random.split(key_step, num_envs), runner.env_state, action, env_params
        )
        done = jnp.logical_or(terminated, truncated)

        def final_value(final):  # the episode's next slot: advance, never restart
            _, (_, value) = outputs(variables, hidden, final, adjacency)
            return value

        if bootstrap is None:
            final_value = jax.lax.cond(jnp.any(done), final_value, lambda _: jnp.zeros_like(value),
                                       info["final_observation"])
        else:
            final_value = final_value(info["final_observation"]) if bootstrap else jnp.zeros_like(value)
        episode_return = runner.episode_return + reward
        transition = Transition(
            obs=stored_obs(runner.obs), first=runner.first, hidden=start, action=action,
            log_prob=nets.log_prob(logits, action), value=value, final_value=final_value,
            reward=reward, termination=terminated, truncation=truncated,
            profit=reward, delay=info["delay"].mean(-1), miss=info["deadline_miss"].mean(-1),
            finished_return=jnp.where(done, episode_return, 0.0),
        )
        runner = runner._replace(env_state=env_state, obs=next_obs, hidden=hidden, first=done,
                                 episode_return=jnp.where(done, 0.0, episode_return), key=key)
        return runner, transition

    def rollout(runner: RunnerState, env_params: CPNParams | None = None) -> tuple[RunnerState, Transition]:
        """``num_steps`` steps of the batch: ``[T, B]`` transitions.

        When ``aligned`` a scan over episodes, each a scan over its first ``episode_length - 1``
        steps then its last step (the only one that bootstraps), so no step branches on
        ``final_observation``; otherwise one scan whose steps branch on ``any(done)``.
        """
        env_params = default_params if env_params is None else env_params
        if not aligned:
            step = functools.partial(rollout_step, env_params=env_params, bootstrap=None)
            return jax.lax.scan(step, runner, jnp.arange(num_steps))

        def episode(runner, _):
            step = functools.partial(rollout_step, env_params=env_params, bootstrap=False)
            runner, body = jax.lax.scan(step, runner, jnp.arange(episode_length - 1))
            runner, last = rollout_step(runner, episode_length - 1, env_params, bootstrap=True)
            return runner, jax.tree.map(lambda b, x: jnp.concatenate([b, x[None]]), body, last)

        runner, traj = jax.lax.scan(episode, runner, None, length=num_steps // episode_length)
        return runner, jax.tree.map(lambda x: x.reshape((num_steps,) + x.shape[2:]), traj)

    def loss_fn(params, batch: Transition, advantages, targets, clip_eps, ent_coef, adjacency):
        """PPO loss of a minibatch: ``[M]`` samples, or ``[T, M]`` sequences with recurrent
        perception (the LSTMs re-run over them from the stored episode-start states)."""
        temporal = None
        if config.recurrent:
            temporal = nets.advance_sequence(network, params, batch.hidden, batch.obs, batch.first)
            merge = lambda x: x.reshape((-1,) + x.shape[2:])  # noqa: E731  [T, M, ...] -> [T * M, ...]
            temporal, batch, advantages, targets = jax.tree.map(merge, (temporal, batch, advantages, targets))
        logits, values = nets.policy_outputs(network, params, (), batch.obs, adjacency, temporal)
        normalised = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        return ppo_loss_terms(
            new_log_prob=nets.log_prob(logits, batch.action), old_log_prob=batch.log_prob,
            advantages=normalised, new_values=values, old_values=batch.value, targets=targets,
            entropy=nets.entropy(logits), clip_eps=clip_eps, vf_coef=config.vf_coef,
            ent_coef=ent_coef,
        )

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def minibatches(key: jax.Array, traj: Transition, advantages, targets):
        """Shuffled ``(batch, advantages, targets)`` with leading axis ``num_minibatches``: ``[M]``
        samples, or with recurrent perception the ``(num_minibatches, M)`` environment indices
        of each minibatch (``[T, M]`` sequences, gathered by :func:`gather_envs`)."""
        if config.recurrent:
            return jax.random.permutation(key, num_envs).reshape(config.num_minibatches, envs_per_minibatch)
        permutation = jax.random.permutation(key, batch_size)
        flat = jax.tree.map(lambda x: x.reshape((batch_size,) + x.shape[2:]), (traj, advantages, targets))
        return jax.tree.map(
            lambda x: jnp.take(x, permutation, axis=0).reshape((config.num_minibatches, minibatch_size) + x.shape[1:]),
            flat,
        )

    def gather_envs(data, envs: jax.Array):
        """``[T, M, ...]`` sequences of environments ``envs`` ``(M,)`` from ``[T, B, ...]`` leaves
        (gathered per minibatch: no transpose of the whole rollout)."""
        return jax.tree.map(lambda x: jnp.take(x, envs, axis=1), data)

    def apply_scaled_gradients(train_state: TrainState, grads, lr_factor) -> TrainState:
        """``apply_gradients`` with the Adam update scaled by ``lr_factor`` (a dynamic learning rate)."""
        updates, opt_state = train_state.tx.update(grads, train_state.opt_state, train_state.params)
        updates = jax.tree.map(lambda u: u * lr_factor, updates)
        return train_state.replace(step=train_state.step + 1, params=optax.apply_updates(train_state.params, updates),
                                   opt_state=opt_state)

    def update(runner: RunnerState, hparams: PPOHyperparams | None = None,
               env_params: CPNParams | None = None) -> tuple[RunnerState, dict]:
        """One PPO update: rollout, GAE, ``update_epochs`` x ``num_minibatches`` Adam steps.

        ``hparams`` (optional) overrides the config's dynamic hyperparameters; ``None`` runs
        the config's values as compile-time constants. ``env_params`` (optional) replaces the
        trainer's instance (same config; a traced value, so a ``vmap`` over a params leaf
        trains one agent per value in one program, see scripts/reproduce_stper.py).
        """
        env_params = default_params if env_params is None else env_params
        if hparams is None:
            clip_eps, ent_coef, gae_lambda = config.clip_eps, config.ent_coef, config.gae_lambda
        else:
            clip_eps, ent_coef, gae_lambda = hparams.clip_eps, hparams.ent_coef, hparams.gae_lambda
        runner, traj = rollout(runner, env_params)
        if aligned:  # the last step always ends an episode: its V(s') is the final_value
            last_value = jnp.zeros((num_envs,), jnp.float32)
        else:
            variables = runner.train_state.params
            start = nets.restart(network, variables, runner.hidden, runner.obs, runner.first, jnp.any(runner.first))
            _, (_, last_value) = outputs(variables, start, runner.obs, env_params.adjacency)
        done = traj.termination | traj.truncation
        next_values = jnp.where(done, traj.final_value, jnp.concatenate([traj.value[1:], last_value[None]]))
        advantages, targets = compute_gae(
            traj.reward * config.reward_scale, traj.value, next_values, traj.termination,
            traj.truncation, config.gamma, gae_lambda,
        )

        def epoch(carry, _):
            train_state, key = carry
            key, key_perm = jax.random.split(key)

            def minibatch(train_state, batch):
                transitions, adv, tgt = gather_envs((traj, advantages, targets), batch) if config.recurrent else batch
                (_, aux), grads = grad_fn(train_state.params, transitions, adv, tgt, clip_eps, ent_coef,
                                           env_params.adjacency)
                if hparams is None:
                    return train_state.apply_gradients(grads=grads), aux
                return apply_scaled_gradients(train_state, grads, hparams.learning_rate / config.learning_rate), aux

            train_state, aux = jax.lax.scan(minibatch, train_state, minibatches(key_perm, traj, advantages, targets))
            return (train_state, key), aux

        (train_state, key), aux = jax.lax.scan(epoch, (runner.train_state, runner.key), None,
                                               length=config.update_epochs)
        num_finished = done.sum()
        metrics = dict(
            episode_return=jnp.where(num_finished > 0, traj.finished_return.sum() / jnp.maximum(num_finished, 1), jnp.nan),
            slot_profit=traj.profit.mean(),
            mean_delay=traj.delay.mean(),
            miss_rate=traj.miss.mean(),
            explained_variance=explained_variance(traj.value, targets),
            **jax.tree.map(jnp.mean, aux),
        )
        return runner._replace(train_state=train_state, key=key, update=runner.update + 1), metrics

    def train_chunk(runner: RunnerState, num_updates: int, hparams: PPOHyperparams | None = None,
                    env_params: CPNParams | None = None) -> tuple[RunnerState, dict]:
        """``num_updates`` (a Python int) updates in one scan; metrics ``(num_updates,)`` each."""
        return jax.lax.scan(lambda r, _: update(r, hparams, env_params), runner, None, length=num_updates)

    def train(key: jax.Array, hparams: PPOHyperparams | None = None,
              env_params: CPNParams | None = None) -> tuple[RunnerState, dict]:
        """A whole training run (``config.num_updates`` updates) from ``key`` (on ``env_params``
        if given, else the trainer's instance)."""
        return train_chunk(init(key, env_params), config.num_updates, hparams, env_params)

    return Trainer(config, env, default_params, network, init, update, train_chunk, train, rollout)


def make_train(config: PPOConfig) -> Callable[[jax.Array], tuple[RunnerState, dict]]:
    """PureJaxRL entry point: ``train(key) -> (runner_state, metrics)``; jit/vmap it yourself."""
    return make_trainer(config).train


# ---------------------------------------------------------------------------- evaluation
def episode_carry(network: nets.STPerNetwork, variables: Any, env: GreenCPN, state: CPNState,
                  params: CPNParams) -> nets.PerceptionCarry:
    """The LSTM states a recurrent rollout holds at ``state``, after its current slot.

    Replays the episode so far: the burn-in of the first observation, then one
    :meth:`~agents.stper.networks.STPerNetwork.advance` per slot up to ``state.time``.
    Exact because an observation of the CPN is a function of ``(start, time, params)`` alone
    (:meth:`GreenCPN.get_obs`); costs ``episode_length`` observations and LSTM steps.

    Args:
        state: one unbatched :class:`CPNState`.
    """
    times = jnp.arange(env.config.episode_length, dtype=jnp.int32)
    history = jax.vmap(lambda time: env.get_obs(state.replace(time=time), params))(times)
    carry = network.apply(variables, jax.tree.map(lambda x: x[0], history), method=nets.STPerNetwork.burn_in)

    def replay(carry, inputs):
        time, obs = inputs
        advanced = network.apply(variables, carry, obs, method=nets.STPerNetwork.advance)
        return jax.tree.map(lambda a, c: jnp.where(time <= state.time, a, c), advanced, carry), None

    carry, _ = jax.lax.scan(replay, carry, (times, history))
    return carry


def network_policy(network: nets.STPerNetwork, variables: Any, deterministic: bool = True):
    """Wraps trained ``variables`` as a baseline-style ``policy(key, env, state, params)``.

    The observation is rebuilt from the state with ``env.get_obs`` so the trained policy runs
    in :func:`agents.stper.baselines.rollout_cpn` beside Random, Greedy and the coordinate ascent. A recurrent
    network's LSTM states are rebuilt from the episode's start (:func:`episode_carry`), so the
    policy stays a function of the state and decides as it did in training.
    ``deterministic`` takes each user's most likely destination, else samples.
    """

    def policy(key, env, state, params):
        obs = env.get_obs(state, params)
        if nets.is_recurrent(network):
            temporal = nets.temporal_features(episode_carry(network, variables, env, state, params))
            logits, _ = network.apply(variables, obs, temporal, params.adjacency, method=nets.STPerNetwork.head)
        else:
            logits, _ = network.apply(variables, obs, params.adjacency)
        if deterministic:
            return jnp.argmax(logits, axis=-1).astype(jnp.int32)
        return nets.sample(key, logits)

    return policy
