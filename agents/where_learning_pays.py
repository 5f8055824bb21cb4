"""Where does learning pay? Learned agents against myopic and clairvoyant baselines as coupling grows.

Usage:
    jaxcpn where-learning-pays                          # full grid, about 35 min on 2 CPU cores, resumes
    jaxcpn where-learning-pays --preset full --out docs/figures   # the committed files
    jaxcpn where-learning-pays --quick                  # smoke run, < 1 min
    jaxcpn where-learning-pays --envs mec --mec-settings switching=off switching=on,backhaul=0.25,cycle=0.9

(``python scripts/where_learning_pays.py`` is the same job.) As the papers model them, the CPN's
slots and the MEC's frames are independent of earlier decisions, so a myopic policy that sees
the current slot (Greedy) or last frame (Popularity) is near-optimal and learning has nothing to
gain. The coupled options (docs/model.md, "Coupled dynamics") make today's decision change
tomorrow's cost. This job sweeps their strength and puts the learned agents, trained afresh in
every setting, beside the myopic baselines and a clairvoyant MPC on the same held-out episodes.

**Settings** are ``key=value`` lists (unset keys keep the paper's value):

- CPN (``--cpn-settings``): ``sharing=on|off`` (``CPNConfig.compute_sharing``: FIFO node
  queues whose backlog carries to the next slot), ``load=<factor>`` (every user's mean workload
  ``workload_base`` and its noise ``workload_noise`` times the factor) and ``observe=on|off``
  (``CPNConfig.observe_current_workload``: off, the agent decides before the slot's demand).
- MEC (``--mec-settings``): ``switching=on|off`` (``MECConfig.switching_cost``: a newly deployed
  service is downloaded before it serves), ``backhaul=<factor>`` (the instance's
  ``backhaul_rate`` times the factor; with ``switching=on`` only) and ``cycle=<A>``
  (``MECParams.popularity_cycle_amplitude``, in [0, 1)).

**The grid of the full preset**, fixed from the physics before any run (nothing was tuned, and
the agents' budgets are those of the quick presets of ``jaxcpn train-stper`` and
``jaxcpn train-ttosc``):

- CPN, default instance (N = U = 10, 24-slot episodes, slot window ``tau`` = 1 s). Without
  sharing (the paper); with sharing at load 1 (the nodes' ``sum f tau`` = 60 TFLOP per slot
  against a mean demand of 18.6: utilisation 0.31 if spread, but Greedy crowds the fast cheap
  nodes); at load 1.5 and 2 (utilisation 0.46 and 0.62 if spread: still stable, so the queues
  it builds are the policy's doing, while the slow nodes, ``m / f`` up to 5 s at load 2, can no
  longer finish a task inside the window); and at load 1 with the workload hidden. In that last setting Greedy, coordinate
  ascent and the MPC still read the current slot's true workloads (they are per-slot
  clairvoyant), so it measures what not knowing the demand costs the agent.
- MEC, default instance (M = 5, K = 20, L = 10 slots of 5 s). Switching off (the paper), on at
  the default backhaul (200-400 Mb/s: a 100-500 MB service downloads in 2-20 s, about one slot),
  at half and at a quarter of it (50-100 Mb/s, a small cell's uplink: 8-80 s, a good part of a
  50 s frame), each with the popularity cycle off, at A = 0.5 (docs/model.md's measured case)
  and at A = 0.9 (near the top of the allowed range: a service's peak-to-trough demand ratio 19).

**Methods**: CPN: STPer, STPer-L, STPer-M (``agents.stper.ppo``, ``--num-updates`` x
``--num-envs`` x 24 steps per seed, 3 seeds) against Greedy and coordinate ascent (myopic, one
slot), the clairvoyant MPC (``CPN_POLICIES["mpc"]``, when the installed baselines have it;
otherwise skipped with a note) and the paper's Random (random destinations and routes). MEC:
TTOSC (the multi-agent DDQN of
``agents.ttosc.ddqn``; with switching costs it reads the observation's extra hosted-deployment
row as one more GRU step) against Greedy and Popularity (myopic) and the horizon-H clairvoyant
MPC; and the lower bound on the delay (``agents.ttosc.bounds.evaluation_lower_bound``), which
holds with switching costs too (downloads only add waits, and the arrivals do not depend on the
deployment), so it is solved once per cycle amplitude. Every method of a setting plays the same
held-out episodes (``--eval-seed``): the per-seed differences are paired.

**Outputs** under ``--out`` (default ``runs/where-learning-pays``), rewritten by each run as the
other figure jobs rewrite theirs (nothing else there is touched): ``where_learning_pays_cpn.csv``
/ ``_mec.csv`` (one row per setting, method and seed: the metrics, and each row's difference to
the setting's best myopic baseline and to the MPC) and ``where_learning_pays_cpn.png`` /
``_mec.png`` (profit or delay against the coupling, relative to the MPC, error bars = std over
seeds). **Resume**: every (env, setting, method, seed) unit is saved in ``--run-dir`` (default
``runs/where-learning-pays/units-<preset>``) as an ``.npz`` with a fingerprint of its settings
as soon as it finishes, and a rerun loads it (a unit of other settings is recomputed), so an
interrupted run loses at most the unit it was in.

**Measured** (full preset from an empty ``--run-dir``, commit ab81757, the shared 2-core machine
at a load average of 3.5-4; per unit, the first of each compiled program included): 1997 s in
all, CPN 805 s over 65 units, MEC 1181 s over 75. CPN Greedy, coordinate ascent, MPC, Random
0-7 s each; one PPO seed (200 updates x 64 envs x 24 steps) median 19 s for STPer (46 s with
compilation), 13 s (40 s) for STPer-L, 6 s (24 s) for STPer-M. MEC Greedy and Popularity under
1 s once compiled (6-10 s first), the H=3 MPC 5 s (44 s first), the bound 15-18 s per cycle
amplitude, one DDQN seed (120 episodes) median 26 s (55 s first). Since then the baselines that
share an env are branches of one program per static config (CPN: Greedy, coordinate ascent, MPC,
Random-shortest; MEC: MPC, Popularity, TTOSC), so the compilation these per-unit seconds name
now falls on the first unit of each shared program; the totals were not measured again.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from agents import outputs
from agents.checks import require_positive
from agents.cli import parse_with_presets
from agents.seeds import seed_key
from agents.stper import networks as stper_networks
from agents.stper import ppo as stper_ppo
from agents.stper.baselines import CPN_POLICIES, rollout_cpn
from agents.stper.ppo import PPOConfig, make_env, make_trainer, network_policy
from agents.ttosc import baselines as mb
from agents.ttosc import ddqn as ttosc_ddqn
from agents.ttosc import networks as ttosc_networks
from agents.ttosc.bounds import evaluation_lower_bound
from agents.ttosc.ddqn import DDQNConfig, ddqn_policy
from agents.ttosc.ddqn import make_trainer as make_ddqn_trainer
from agents.ttosc.figures import load_unit, save_unit
from jaxcpn.mec.env import TwoTimescaleMEC
from jaxcpn.mec.generator import generate_params
from jaxcpn.mec.types import validate_params as validate_mec_params

ENVS = ("cpn", "mec")
VARIANTS = ("stper", "stper-l", "stper-m")
CPN_BASELINES = ("greedy", "coord-ascent", "mpc", "random")
CPN_BASELINE_CHOICES = CPN_BASELINES + ("random-shortest",)
CPN_MYOPIC = ("greedy", "coord-ascent")
CPN_DESTINATION_BASELINES = ("greedy", "coord-ascent", "mpc", "random-shortest")
"""The CPN baselines whose decision is the destinations alone (the env's action; Random also routes)."""
MEC_BASELINES = ("Greedy", "Popularity", "MPC")
MEC_MYOPIC = ("Greedy", "Popularity")
LABELS = {"stper": "STPer", "stper-l": "STPer-L", "stper-m": "STPer-M", "greedy": "Greedy",
          "coord-ascent": "coord-ascent", "mpc": "MPC", "random": "Random",
          "random-shortest": "Random (shortest paths)"}
CPN_METRICS = ("slot_profit", "mean_delay", "miss_rate")
MEC_METRICS = ("mean_delay", "reward", "storage_violations")
UNIT_FORMAT = 2
"""Version of what a saved unit means (in its fingerprint: a unit of older code is recomputed; 2: a learned
unit's fingerprint also holds its learner's source, after the STPer networks changed under a run)."""


# ----------------------------------------------------------------------------- settings


def _switch(value: str) -> bool:
    if value not in ("on", "off"):
        raise ValueError("must be on or off")
    return value == "on"


def _number(rule: Callable[[float], bool], allowed: str) -> Callable[[str], float]:
    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number) or not rule(number):
            raise ValueError(f"must be a number {allowed}")
        return number

    return parse


def parse_spec(flag: str, spec: str, keys: dict[str, Callable[[str], Any]], example: str) -> dict[str, Any]:
    """``"a=1,b=on"`` as ``{key: parsed value}``; a bad entry is a ``ValueError`` naming the flag and the rule."""
    def fail(reason: str):
        return ValueError(f"{flag} entry {spec!r} is invalid: {reason}; a setting is comma-separated key=value "
                          f"pairs with keys {', '.join(keys)} (e.g. {example!r})")

    values: dict[str, Any] = {}
    for part in spec.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep or key not in keys:
            raise fail(f"{part.strip()!r} is not key=value with a known key")
        if key in values:
            raise fail(f"{key} is given twice")
        try:
            values[key] = keys[key](value.strip())
        except ValueError as error:
            raise fail(f"{key}={value.strip()!r} {error}") from None
    return values


@dataclasses.dataclass(frozen=True)
class CPNSetting:
    """One CPN point: shared compute, load factor, whether the current workload is observed."""

    compute_sharing: bool = False
    load: float = 1.0
    observe_current_workload: bool = True

    @classmethod
    def parse(cls, spec: str) -> "CPNSetting":
        keys = {"sharing": _switch, "load": _number(lambda v: v > 0, "> 0"), "observe": _switch}
        v = parse_spec("--cpn-settings", spec, keys, "sharing=on,load=2")
        return cls(v.get("sharing", False), v.get("load", 1.0), v.get("observe", True))

    @property
    def label(self) -> str:
        on = lambda flag: "on" if flag else "off"  # noqa: E731
        return (f"sharing={on(self.compute_sharing)},load={self.load:g}"
                + ("" if self.observe_current_workload else ",observe=off"))


@dataclasses.dataclass(frozen=True)
class MECSetting:
    """One MEC point: switching cost, backhaul factor, popularity-cycle amplitude."""

    switching_cost: bool = False
    backhaul: float = 1.0
    cycle: float = 0.0

    @classmethod
    def parse(cls, spec: str) -> "MECSetting":
        keys = {"switching": _switch, "backhaul": _number(lambda v: v > 0, "> 0"),
                "cycle": _number(lambda v: 0 <= v < 1, "in [0, 1)")}
        v = parse_spec("--mec-settings", spec, keys, "switching=on,backhaul=0.25,cycle=0.5")
        if "backhaul" in v and not v.get("switching", False):
            raise ValueError(f"--mec-settings entry {spec!r} is invalid: backhaul only acts with switching=on "
                             "(without switching costs nothing is downloaded)")
        return cls(v.get("switching", False), v.get("backhaul", 1.0), v.get("cycle", 0.0))

    @property
    def label(self) -> str:
        switching = f"switching=on,backhaul={self.backhaul:g}" if self.switching_cost else "switching=off"
        return f"{switching},cycle={self.cycle:g}"


def slug(label: str) -> str:
    """A setting's label as a file-name part."""
    return label.replace("=", "").replace(",", "_")


# ----------------------------------------------------------------------------- configuration


@dataclasses.dataclass(frozen=True)
class SwitchingDDQNConfig(DDQNConfig):
    """``DDQNConfig`` whose environment has ``MECConfig.switching_cost``.

    With it on, the observation is (M, L + 1, K): the arrivals rows and the hosted deployment;
    each agent's GRU reads the hosted row as one more step after the frame's slots, so its
    values can depend on what a deployment would have to download.
    """

    switching_cost: bool = False
    """Whether newly deployed services are downloaded first (``MECConfig.switching_cost``)."""

    def env_config(self, qp_iterations: int | None = None):
        return dataclasses.replace(super().env_config(qp_iterations), switching_cost=self.switching_cost)


@dataclasses.dataclass(frozen=True)
class WhereConfig:
    """Learned agents vs myopic and clairvoyant baselines on the coupled CPN and MEC."""

    preset: Literal["full", "quick"] = "full"
    """Grid and budgets: full (the committed run, about 35 min on 2 CPU cores) or quick (< 1 min smoke run)."""
    quick: bool = False
    """Shorthand for --preset quick."""
    envs: tuple[Literal["cpn", "mec"], ...] = ENVS
    """Environments to run."""
    out: Path = Path("runs/where-learning-pays")
    """Folder of the CSV and PNG files (docs/figures for the committed ones)."""
    run_dir: Path | None = None
    """Folder of the saved units, from which a rerun resumes (default runs/where-learning-pays/units-<preset>)."""
    num_seeds: int = 3
    """Training seeds per learned method and setting (seed s uses fold_in(PRNGKey(seed), s))."""
    seed: int = 0
    """Base training seed."""
    eval_seed: int = 12345
    """Seed of the held-out evaluation episodes, the same for every method, seed and setting."""
    cpn_settings: tuple[str, ...] = ("sharing=off", "sharing=on", "sharing=on,load=1.5", "sharing=on,load=2",
                                     "sharing=on,observe=off")
    """CPN settings, each key=value pairs of sharing (on/off), load (factor > 0), observe (on/off)."""
    cpn_variants: tuple[str, ...] = VARIANTS
    """Learned STPer variants."""
    cpn_baselines: tuple[str, ...] = CPN_BASELINES
    """CPN baselines among greedy, coord-ascent, mpc (skipped if the baselines module has none), random (the
    paper's: random routes too), random-shortest."""
    num_updates: int = 200
    """PPO updates per seed (train-stper's quick preset: 200)."""
    num_envs: int = 64
    """PPO parallel environments (train-stper's quick preset: 64)."""
    num_minibatches: int = 4
    """PPO minibatches per epoch."""
    chunk_updates: int = 50
    """PPO updates per jitted chunk."""
    cpn_eval_episodes: int = 16
    """Held-out CPN episodes (24 slots each) per method."""
    mec_settings: tuple[str, ...] = tuple(
        f"{switching},cycle={cycle}" for cycle in (0, 0.5, 0.9)
        for switching in ("switching=off", "switching=on,backhaul=1", "switching=on,backhaul=0.5",
                          "switching=on,backhaul=0.25"))
    """MEC settings, each key=value pairs of switching (on/off), backhaul (factor > 0), cycle (amplitude in [0, 1))."""
    num_cells: int = 5
    """MEC edge servers M."""
    num_services: int = 20
    """MEC services K."""
    slots_per_frame: int = 10
    """MEC slots per frame L."""
    frames_per_episode: int = 24
    """MEC frames per episode."""
    num_episodes: int = 120
    """DDQN training episodes per seed (train-ttosc's quick preset: 120)."""
    epsilon_episodes: int = 60
    """DDQN exploration anneal (episodes)."""
    ddqn_envs: int = 4
    """DDQN parallel environments."""
    ddqn_hidden: int = 128
    """DDQN GRU width."""
    ddqn_batch: int = 64
    """DDQN minibatch."""
    ddqn_learning_starts: int = 256
    """Transitions in the replay before the DDQN learns."""
    ddqn_buffer: int = 5000
    """DDQN replay capacity."""
    train_qp_iterations: int = 10
    """Scheduler iterations per slot in DDQN training."""
    chunk_frames: int = 144
    """DDQN training frames per jitted chunk."""
    mec_eval_envs: int = 4
    """Held-out MEC episodes per method."""
    mec_eval_frames: int = 24
    """Frames per held-out MEC episode."""
    eval_qp_iterations: int = 100
    """Scheduler iterations per slot in evaluation."""
    search_qp_iterations: int = 30
    """Scheduler iterations when the MPC scores its candidates."""
    mpc_horizon: int = 3
    """Frames the MEC MPC looks ahead."""
    mpc_rounds: int = 2
    """Local-swap rounds of the MPC's one-frame search (train-ttosc's quick preset: 2)."""
    mpc_proposals: int = 6
    """Swap proposals per round."""
    mec_bound: bool = True
    """Also solve the lower bound on the MEC delay (one convex program per evaluation frame and cycle amplitude)."""

    def __post_init__(self):
        require_positive(self, "num_seeds", "num_updates", "num_envs", "num_minibatches", "chunk_updates",
                         "cpn_eval_episodes", "num_cells", "num_services", "slots_per_frame", "frames_per_episode",
                         "num_episodes", "epsilon_episodes", "ddqn_envs", "ddqn_hidden", "ddqn_batch",
                         "ddqn_buffer", "train_qp_iterations", "chunk_frames", "mec_eval_envs", "mec_eval_frames",
                         "eval_qp_iterations", "search_qp_iterations", "mpc_horizon", "mpc_rounds", "mpc_proposals")
        for flag, values, allowed in (("--envs", self.envs, ENVS), ("--cpn-variants", self.cpn_variants, VARIANTS),
                                      ("--cpn-baselines", self.cpn_baselines, CPN_BASELINE_CHOICES)):
            if not values or len(set(values)) != len(values) or any(v not in allowed for v in values):
                raise ValueError(f"{flag}={values!r} is invalid: must be distinct names among {', '.join(allowed)}")
        for flag, specs, parse in (("--cpn-settings", self.cpn_settings, CPNSetting.parse),
                                   ("--mec-settings", self.mec_settings, MECSetting.parse)):
            labels = [parse(spec).label for spec in specs]  # a bad entry raises here, naming itself
            if not labels or len(set(labels)) != len(labels):
                raise ValueError(f"{flag}={specs!r} is invalid: must be one or more distinct settings")
        self.ppo("stper-m", CPNSetting())  # the library configs check the rest (divisibility, budgets)
        self.ddqn(MECSetting())

    @property
    def preset_name(self) -> str:
        return "quick" if self.quick else self.preset

    def ppo(self, variant: str, setting: CPNSetting):
        """The PPO config of ``variant`` in ``setting`` (train-stper's network sizes)."""
        return PPOConfig(variant=variant, compute_sharing=setting.compute_sharing,
                         observe_current_workload=setting.observe_current_workload, num_envs=self.num_envs,
                         num_updates=self.num_updates, num_minibatches=self.num_minibatches)

    def ddqn(self, setting: MECSetting):
        """The DDQN config in ``setting``."""
        return SwitchingDDQNConfig(
            num_cells=self.num_cells, num_services=self.num_services, slots_per_frame=self.slots_per_frame,
            frames_per_episode=self.frames_per_episode, qp_iterations=self.train_qp_iterations,
            num_envs=self.ddqn_envs, num_episodes=self.num_episodes, epsilon_episodes=self.epsilon_episodes,
            batch_size=self.ddqn_batch, buffer_size=self.ddqn_buffer, learning_starts=self.ddqn_learning_starts,
            hidden=self.ddqn_hidden, num_gru_layers=1, switching_cost=setting.switching_cost)


PRESETS = {
    "full": WhereConfig(),
    # Seconds per program: one static config per env (load and backhaul are params leaves),
    # STPer-M only, tiny budgets and MEC shapes.
    "quick": WhereConfig(
        preset="quick", num_seeds=2, cpn_settings=("sharing=on", "sharing=on,load=2"), cpn_variants=("stper-m",),
        cpn_baselines=("greedy", "coord-ascent", "mpc"),
        num_updates=2, num_envs=4, num_minibatches=2, chunk_updates=2, cpn_eval_episodes=2,
        mec_settings=("switching=on,backhaul=1", "switching=on,backhaul=0.25,cycle=0.5"),
        num_cells=2, num_services=4, slots_per_frame=2, frames_per_episode=2, num_episodes=4, epsilon_episodes=2,
        ddqn_envs=2, ddqn_hidden=8, ddqn_batch=4, ddqn_learning_starts=4, ddqn_buffer=32, train_qp_iterations=5,
        chunk_frames=4, mec_eval_envs=1, mec_eval_frames=2, eval_qp_iterations=10, search_qp_iterations=5,
        mpc_horizon=1, mpc_rounds=1, mpc_proposals=2, mec_bound=False),
}


def parse_config(argv: list[str]) -> WhereConfig:
    """Parses ``argv``; ``--quick`` is ``--preset quick``."""
    return parse_with_presets(WhereConfig, PRESETS, argv, __doc__, default_preset="full")


# ----------------------------------------------------------------------------- units


class Units:
    """Saved results of finished units: one ``.npz`` per (env, setting, method, seed) with a fingerprint."""

    def __init__(self, run_dir: Path, log: Callable[[str], None] = print):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log = log
        self.computed = 0
        self.loaded = 0

    def get(self, name: str, settings: dict, compute: Callable[[], dict[str, float]]) -> dict[str, float]:
        """The unit ``name``: loaded if saved with the same ``settings``, else computed and saved."""
        fingerprint = hashlib.sha256(json.dumps(dict(settings, format=UNIT_FORMAT), sort_keys=True,
                                                default=str).encode()).hexdigest()[:16]
        path = self.run_dir / f"{name}.npz"
        loaded = load_unit(path, fingerprint, {})
        if loaded is not None:
            self.loaded += 1
            return {k: float(v) for k, v in loaded[1].items()}
        start = time.perf_counter()
        values = compute()
        values["seconds"] = time.perf_counter() - start
        save_unit(path, fingerprint, {}, **{k: np.asarray(v, np.float64) for k, v in values.items()})
        self.computed += 1
        summary = ", ".join(f"{k} {v:.4g}" for k, v in values.items() if k != "seconds")
        self.log(f"  {name}: {values['seconds']:.0f} s ({summary})")
        return values


def _mean(x) -> float:
    return float(np.nanmean(np.asarray(jax.device_get(x), np.float64)))


def _source_hash(function) -> str:
    """A short hash of ``function``'s source (the wrapped function's, for a partial)."""
    function = getattr(function, "func", function)
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):
        source = repr(function)
    return hashlib.sha256(source.encode()).hexdigest()[:12]


def _module_hash(*modules) -> str:
    """A short hash of the modules' source: a learned unit made by other agent code is recomputed."""
    return hashlib.sha256("".join(inspect.getsource(m) for m in modules).encode()).hexdigest()[:12]


def _jit_chunk(trainer, num: int, ppo: bool):
    """``jit(runner, env_params -> trainer.train_chunk(runner, num, ..., env_params))`` (PPO or DDQN order)."""
    if ppo:
        return jax.jit(lambda runner, params: trainer.train_chunk(runner, num, None, params))
    return jax.jit(lambda runner, params: trainer.train_chunk(runner, num, params))


def _train_in_chunks(program, name, trainer, runner, params, total: int, chunk_size: int, metric: str, ppo: bool):
    """Trains ``total`` iterations in jitted chunks of at most ``chunk_size`` (each chunk length
    compiled once, via ``program(("chunk", name, n), build)``).

    Returns:
        ``(runner, first, last, seconds)``: the trained runner, the mean ``metric`` of the first
        and of the last chunk, and the training wall time (s).
    """
    values, done, start = [], 0, time.perf_counter()
    while done < total:
        n = min(chunk_size, total - done)
        chunk = program(("chunk", name, n), lambda: _jit_chunk(trainer, n, ppo=ppo))
        runner, metrics = chunk(runner, params)
        values.append(_mean(metrics[metric]))
        done += n
    return runner, values[0], values[-1], time.perf_counter() - start


# ----------------------------------------------------------------------------- CPN


class CPNRunner:
    """Trains and evaluates the CPN units, compiling each program once per static config."""

    def __init__(self, config: WhereConfig, units: Units):
        self.config = config
        self.units = units
        self.eval_key = jax.random.PRNGKey(config.eval_seed)
        self._base = {}
        self._programs: dict = {}
        
    def _env(self, setting: CPNSetting):
        key = (setting.compute_sharing, setting.observe_current_workload)
        if key not in self._base:
            self._base[key] = make_env(self.config.ppo("stper-m", setting))
        return self._base[key]

    def params(self, setting: CPNSetting):
        """The default instance with every user's workload (mean and noise) times ``setting.load``."""
        _, base = self._env(setting)
        load = jnp.float32(setting.load)
        return base.replace(workload_base=base.workload_base * load, workload_noise=base.workload_noise * load)

    def utilisation(self, setting: CPNSetting) -> float:
        """Mean slot demand over the nodes' capacity per slot window, ``sum m / (sum f tau)``, with
        sharing (0 without: a node then computes every task at full power, nothing queues)."""
        if not setting.compute_sharing:
            return 0.0
        params = self.params(setting)
        demand = float(np.sum(np.asarray(params.workload_base)))
        return demand / float(np.sum(np.asarray(params.power)) * float(params.slot_duration))

    def baselines(self) -> tuple[str, ...]:
        return tuple(b for b in self.config.cpn_baselines if b in CPN_POLICIES)

    def _program(self, key, build):
        if key not in self._programs:
            self._programs[key] = build()
        return self._programs[key]

    def _summary(self, metrics) -> dict[str, float]:
        return dict(slot_profit=_mean(metrics["profit"]), mean_delay=_mean(metrics["mean_delay"]),
                    miss_rate=_mean(metrics["miss_rate"]))

    def baseline(self, setting: CPNSetting, name: str) -> dict[str, float]:
        env, _ = self._env(setting)
        episodes = self.config.cpn_eval_episodes

        def compute():
            static = (setting.compute_sharing, setting.observe_current_workload)
            if name in CPN_DESTINATION_BASELINES:
                # One program plays every chosen baseline that returns destinations (lax.switch on the
                # policy's index inside the slot, one env step for all): compiled once, not once per baseline.
                names = tuple(b for b in self.baselines() if b in CPN_DESTINATION_BASELINES)

                def play(index, p):
                    branches = [functools.partial(lambda b, k, state: CPN_POLICIES[b](k, env, state, p), b)
                                for b in names]
                    return rollout_cpn(lambda k, env, state, p: jax.lax.switch(index, branches, k, state), env, p,
                                       self.eval_key, episodes)

                program = self._program(("baselines", names, static), lambda: jax.jit(play))
                return self._summary(program(names.index(name), self.params(setting)))
            program = self._program(("baseline", name, static), lambda: jax.jit(
                lambda p: rollout_cpn(CPN_POLICIES[name], env, p, self.eval_key, episodes)))
            return self._summary(program(self.params(setting)))

        # The policy's source is in the fingerprint: a baseline whose code changed is rerun.
        settings = dict(env="cpn", setting=dataclasses.asdict(setting), method=name, episodes=episodes,
                        eval_seed=self.config.eval_seed, source=_source_hash(CPN_POLICIES[name]))
        return self.units.get(f"cpn-{slug(setting.label)}-{name}", settings, compute)

    def learned(self, setting: CPNSetting, variant: str, index: int) -> dict[str, float]:
        config = self.config
        ppo = config.ppo(variant, setting)

        def compute():
            env, base = self._env(setting)
            trainer = self._program(("trainer", ppo), lambda: make_trainer(ppo, env=env, env_params=base))
            params = self.params(setting)
            init = self._program(("init", ppo), lambda: jax.jit(trainer.init))
            runner = init(seed_key(config.seed, index), params)
            runner, first, last, train_seconds = _train_in_chunks(
                self._program, ppo, trainer, runner, params, ppo.num_updates, config.chunk_updates, "episode_return",
                ppo=True)
            evaluate = self._program(("eval", ppo), lambda: jax.jit(lambda variables, p: rollout_cpn(
                network_policy(trainer.network, variables), env, p, self.eval_key, config.cpn_eval_episodes)))
            return dict(self._summary(evaluate(runner.train_state.params, params)), train_seconds=train_seconds,
                        train_return_first=first, train_return_last=last)

        settings = dict(env="cpn", setting=dataclasses.asdict(setting), method=variant, seed=config.seed,
                        index=index, ppo=dataclasses.asdict(ppo), episodes=config.cpn_eval_episodes,
                        eval_seed=config.eval_seed, source=_module_hash(stper_ppo, stper_networks))
        return self.units.get(f"cpn-{slug(setting.label)}-{variant}-s{index}", settings, compute)


# ----------------------------------------------------------------------------- MEC


class MECRunner:
    """Trains and evaluates the MEC units, compiling each program once per static config."""

    def __init__(self, config: WhereConfig, units: Units):
        self.config = config
        self.units = units
        self.eval_key = jax.random.PRNGKey(config.eval_seed)
        ddqn = config.ddqn(MECSetting())
        self.base = generate_params(ddqn.instance_seed, ddqn.env_config())
        self._programs: dict = {}

    def params(self, setting: MECSetting):
        """The default instance with the backhaul times ``setting.backhaul`` and the cycle amplitude ``setting.cycle``."""
        params = self.base.replace(backhaul_rate=self.base.backhaul_rate * jnp.float32(setting.backhaul),
                                   popularity_cycle_amplitude=jnp.float32(setting.cycle))
        validate_mec_params(params, self.config.ddqn(setting).env_config())
        return params

    def download_frames(self, setting: MECSetting) -> float:
        """Mean download time of a service over ESs and services, in frames (0 without switching costs)."""
        if not setting.switching_cost:
            return 0.0
        params = self.params(setting)
        seconds = 800.0 * np.mean(np.asarray(params.service_size)) * np.mean(1.0 / np.asarray(params.backhaul_rate))
        return float(seconds / (self.config.slots_per_frame * float(params.slot_duration)))

    def _program(self, key, build):
        if key not in self._programs:
            self._programs[key] = build()
        return self._programs[key]

    def _envs(self, setting: MECSetting):
        ddqn = self.config.ddqn(setting)
        return (TwoTimescaleMEC(ddqn.env_config(self.config.eval_qp_iterations)),
                mb.GreedyScheduledMEC(ddqn.env_config(self.config.eval_qp_iterations)),
                TwoTimescaleMEC(ddqn.env_config(self.config.search_qp_iterations)))

    def _trainer(self, ddqn: SwitchingDDQNConfig):
        return self._program(("trainer", ddqn), lambda: make_ddqn_trainer(ddqn, env_params=self.base))

    def _evaluation(self, setting: MECSetting):
        """``jit(index, agents, params -> evaluate_policy(...))`` of the MPC (index 0), Popularity (1) and
        TTOSC's ``agents`` (2) on the evaluation env; ``agents`` is unused by the baselines.

        The three play the same env: one program (a ``lax.switch`` on the index inside the frame, one env
        step for all) is compiled once per static config instead of three. The frame policies play as a
        ``LookaheadPolicy`` that reads the first step key, the key ``evaluate_policy`` hands a plain policy:
        the same frames and numbers.
        """
        config = self.config
        ddqn = config.ddqn(setting)

        def build():
            env, _, search_env = self._envs(setting)
            network = self._trainer(ddqn).network
            capacity = env.config.max_storage_units
            mpc = mb.clairvoyant_mpc_policy(search_env, horizon=config.mpc_horizon, num_rounds=config.mpc_rounds,
                                            num_proposals=config.mpc_proposals)

            def play(index, agents, p):
                frame = (mb.popularity_policy, ddqn_policy(network, agents, capacity))
                branches = [mpc.plan] + [functools.partial(lambda policy, keys, valid, *rest: policy(keys[0], *rest),
                                                           policy) for policy in frame]
                policy = mb.LookaheadPolicy(mpc.horizon, lambda *args: jax.lax.switch(index, branches, *args))
                return mb.evaluate_policy(env, p, policy, self.eval_key, config.mec_eval_envs, config.mec_eval_frames)

            return jax.jit(play)

        return self._program(("evaluate", ddqn), build)

    def _untrained_agents(self, setting: MECSetting):
        """Zero agents of the shape TTOSC trains (the baselines' unused ``agents`` argument)."""
        ddqn = self.config.ddqn(setting)

        def build():
            shapes = jax.eval_shape(self._trainer(ddqn).init, seed_key(0, 0), self.base).train_state.params
            return jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), shapes)

        return self._program(("untrained", ddqn), build)

    def baseline(self, setting: MECSetting, name: str) -> dict[str, float]:
        config = self.config
        frames, envs = config.mec_eval_frames, config.mec_eval_envs

        def compute():
            if name == "Greedy":  # its own env (the greedy scheduler)
                _, greedy_env, _ = self._envs(setting)
                program = self._program(("baseline", name, setting.switching_cost), lambda: jax.jit(
                    lambda p: mb.evaluate_policy(greedy_env, p, mb.greedy_policy, self.eval_key, envs, frames)))
                out = program(self.params(setting))
            else:
                out = self._evaluation(setting)(("MPC", "Popularity").index(name), self._untrained_agents(setting),
                                                self.params(setting))
            return dict(mean_delay=_mean(out["mean_delay"]), reward=_mean(out["reward"]),
                        storage_violations=_mean(out["storage_violations"]))

        settings = dict(env="mec", setting=dataclasses.asdict(setting), method=name, eval=self._eval_settings())
        if name == "MPC":
            settings.update(horizon=config.mpc_horizon, rounds=config.mpc_rounds, proposals=config.mpc_proposals,
                            search_qp_iterations=config.search_qp_iterations)
        return self.units.get(f"mec-{slug(setting.label)}-{name}", settings, compute)

    def bound(self, setting: MECSetting) -> dict[str, float]:
        """The lower bound of the setting's evaluation frames, solved once per cycle amplitude."""
        paper = MECSetting(cycle=setting.cycle)  # same arrivals: they depend on the key and the cycle only

        def compute():
            env, _, _ = self._envs(paper)
            value = evaluation_lower_bound(env, self.params(paper), self.eval_key, self.config.mec_eval_envs,
                                           self.config.mec_eval_frames)
            return dict(mean_delay=value, reward=math.nan, storage_violations=0.0)

        settings = dict(env="mec", setting=dataclasses.asdict(paper), method="Bound", eval=self._eval_settings())
        return self.units.get(f"mec-cycle{setting.cycle:g}-Bound", settings, compute)

    def _eval_settings(self) -> dict:
        c = self.config
        return dict(shape=(c.num_cells, c.num_services, c.slots_per_frame, c.frames_per_episode),
                    envs=c.mec_eval_envs, frames=c.mec_eval_frames, qp=c.eval_qp_iterations, eval_seed=c.eval_seed)

    def learned(self, setting: MECSetting, index: int) -> dict[str, float]:
        config = self.config
        ddqn = config.ddqn(setting)

        def compute():
            trainer = self._trainer(ddqn)
            params = self.params(setting)
            runner = self._program(("init", ddqn), lambda: jax.jit(trainer.init))(
                seed_key(config.seed, index), params)
            runner, first, last, train_seconds = _train_in_chunks(
                self._program, ddqn, trainer, runner, params, ddqn.num_iterations, config.chunk_frames, "reward",
                ppo=False)
            out = self._evaluation(setting)(2, runner.train_state.params, params)
            return dict(mean_delay=_mean(out["mean_delay"]), reward=_mean(out["reward"]),
                        storage_violations=_mean(out["storage_violations"]), train_seconds=train_seconds,
                        train_reward_first=first, train_reward_last=last)

        settings = dict(env="mec", setting=dataclasses.asdict(setting), method="TTOSC", seed=config.seed,
                        index=index, ddqn=dataclasses.asdict(ddqn), eval=self._eval_settings(),
                        source=_module_hash(ttosc_ddqn, ttosc_networks))
        return self.units.get(f"mec-{slug(setting.label)}-TTOSC-s{index}", settings, compute)


# ----------------------------------------------------------------------------- tables


def _rows(env: str, setting_label: str, coupling: float, results: dict[str, list[dict]], learned: Sequence[str],
          metrics: Sequence[str], key: str, myopic: Sequence[str], mpc: str, higher_is_better: bool) -> list[dict]:
    """Tidy rows of one setting: every method's per-seed metrics and paired differences.

    ``results[method]`` is a list of unit dicts, one per seed for the ``learned`` methods and
    one for a baseline (seed ""). ``minus_best_myopic`` / ``minus_mpc``: the row's ``key``
    minus the best myopic baseline's / the MPC's on the same episodes ("" without an MPC). A
    metric that does not apply (NaN: the bound's reward) is "".
    """
    present = [m for m in myopic if m in results]
    pick = max if higher_is_better else min
    best = pick(present, key=lambda m: results[m][0][key])
    reference = results[best][0][key]
    mpc_value = results[mpc][0][key] if mpc in results else None
    rows = []
    for method, per_seed in results.items():
        for seed, unit in enumerate(per_seed):
            rows.append({"env": env, "setting": setting_label, "coupling": coupling, "method": method,
                         "seed": seed if method in learned else "",
                         **{m: "" if math.isnan(unit[m]) else unit[m] for m in metrics},
                         "best_myopic": best, "minus_best_myopic": unit[key] - reference,
                         "minus_mpc": "" if mpc_value is None else unit[key] - mpc_value,
                         "seconds": unit["seconds"]})
    return rows


def _summary_lines(rows: list[dict], key: str) -> list[str]:
    """Per setting and method: mean +/- std over seeds of ``key`` and of the paired differences."""
    def fmt(values):
        values = np.asarray([float(v) for v in values if v != ""], np.float64)
        if values.size == 0:
            return "-"
        return f"{values.mean():.4f}" + (f" ± {values.std():.4f}" if values.size > 1 else "")

    lines = [f"| setting | method | {key} | minus best myopic | minus MPC |", "|---|---|---|---|---|"]
    for setting in dict.fromkeys(r["setting"] for r in rows):
        for method in dict.fromkeys(r["method"] for r in rows if r["setting"] == setting):
            chosen = [r for r in rows if r["setting"] == setting and r["method"] == method]
            lines.append(f"| {setting} | {method} | {fmt(r[key] for r in chosen)} | "
                         f"{fmt(r['minus_best_myopic'] for r in chosen)} | {fmt(r['minus_mpc'] for r in chosen)} |")
    return lines


# ----------------------------------------------------------------------------- figures


def _plot_methods(ax, x, series: dict[str, np.ndarray], learned: Sequence[str]) -> None:
    """One line per method: ``series[method]`` (X, S) with error bars (std over seeds) for learned ones."""
    for method, values in series.items():
        mean = np.nanmean(values, axis=1)
        if method in learned:
            ax.errorbar(x, mean, yerr=np.nanstd(values, axis=1), marker="o", capsize=3,
                        label=f"{LABELS.get(method, method)} ({values.shape[1]} seeds)")
        else:
            ax.plot(x, mean, marker="s", ls="--" if method in ("MPC", "mpc", "Bound") else ":",
                    label=LABELS.get(method, method))
    ax.grid(alpha=0.3)


def _series(rows, settings, methods, key, transform=lambda v, s: v):
    out = {}
    for method in methods:
        per_setting = []
        for setting in settings:
            values = [transform(float(r[key]), setting) for r in rows if r["setting"] == setting and r["method"] == method]
            per_setting.append(values)
        width = max(len(v) for v in per_setting)
        out[method] = np.array([v + [np.nan] * (width - len(v)) for v in per_setting], np.float64)
    return out


def cpn_figure(rows: list[dict], config: WhereConfig, path: Path) -> Path:
    """Profit per slot per setting (a) and minus the reference's (b): the MPC, else Greedy."""
    settings = list(dict.fromkeys(r["setting"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    reference = "mpc" if "mpc" in methods else "greedy"
    ref = {s: float(next(r["slot_profit"] for r in rows if r["setting"] == s and r["method"] == reference))
           for s in settings}
    plt = outputs.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.6))
    x = np.arange(len(settings))
    _plot_methods(axes[0], x, _series(rows, settings, methods, "slot_profit"), config.cpn_variants)
    _plot_methods(axes[1], x, _series(rows, settings, methods, "slot_profit", lambda v, s: v - ref[s]),
                  config.cpn_variants)
    axes[0].set_ylabel("system profit per slot")
    axes[1].set_ylabel(f"profit per slot minus {LABELS[reference]}'s")
    axes[1].axhline(0.0, color="k", lw=0.8)
    for ax in axes:
        ax.set_xticks(x)
        ax.set_xticklabels([s.replace(",", "\n") for s in settings], fontsize=8)
        ax.set_xlabel("coupling (CPN setting)")
    axes[0].legend(fontsize=7)
    title = (f"CPN: learned vs myopic and clairvoyant baselines as coupling grows; {config.num_updates} PPO updates "
             f"x {config.num_envs} envs per seed, {config.cpn_eval_episodes} held-out episodes (same for all)")
    return outputs.save_figure(fig, path, title)


def mec_figure(rows: list[dict], config: WhereConfig, path: Path) -> Path:
    """Delay relative to the MPC's against the download time, one panel per popularity-cycle amplitude."""
    settings = list(dict.fromkeys(r["setting"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    reference = "MPC" if "MPC" in methods else "Greedy"
    ref = {s: float(next(r["mean_delay"] for r in rows if r["setting"] == s and r["method"] == reference))
           for s in settings}
    cycles = sorted({MECSetting.parse(s).cycle for s in settings})
    plt = outputs.pyplot()
    fig, axes = plt.subplots(1, len(cycles), figsize=(5.2 * len(cycles), 4.4), squeeze=False)
    for ax, cycle in zip(axes[0], cycles):
        group = sorted((s for s in settings if MECSetting.parse(s).cycle == cycle),
                       key=lambda s: float(next(r["coupling"] for r in rows if r["setting"] == s)))
        x = [float(next(r["coupling"] for r in rows if r["setting"] == s)) for s in group]
        _plot_methods(ax, x, _series(rows, group, methods, "mean_delay", lambda v, s: v / ref[s]), ("TTOSC",))
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_title(f"popularity cycle A = {cycle:g}")
        ax.set_xlabel("mean service download time (frames; 0 = no switching cost)")
        ax.set_ylabel(f"mean delay / {reference}'s")
    axes[0][0].legend(fontsize=7, loc="lower right", bbox_to_anchor=(1.0, 0.14))  # between the MPC and the bound
    title = (f"MEC: TTOSC ({config.num_episodes} episodes per seed) vs myopic baselines and the H={config.mpc_horizon} "
             f"clairvoyant MPC; {config.mec_eval_envs} x {config.mec_eval_frames} held-out frames (same for all)")
    return outputs.save_figure(fig, path, title)


# ----------------------------------------------------------------------------- the job


def run_cpn(config: WhereConfig, units: Units, progress: Callable[[str], None]) -> list[dict]:
    """Every CPN unit (baselines first, then each variant's seeds) and the tidy rows."""
    runner = CPNRunner(config, units)
    baselines = runner.baselines()
    skipped = [b for b in config.cpn_baselines if b not in baselines]
    if skipped:
        print(f"note: {', '.join(skipped)} not in agents.stper.baselines.CPN_POLICIES: skipped", flush=True)
    rows = []
    for spec in config.cpn_settings:
        setting = CPNSetting.parse(spec)
        progress(f"cpn {setting.label}")
        results = {name: [runner.baseline(setting, name)] for name in baselines}
        for variant in config.cpn_variants:
            results[variant] = [runner.learned(setting, variant, s) for s in range(config.num_seeds)]
        rows += _rows("cpn", setting.label, runner.utilisation(setting), results, config.cpn_variants, CPN_METRICS,
                      "slot_profit", CPN_MYOPIC, "mpc", higher_is_better=True)
    return rows


def run_mec(config: WhereConfig, units: Units, progress: Callable[[str], None]) -> list[dict]:
    """Every MEC unit (baselines and bound first, then TTOSC's seeds) and the tidy rows."""
    runner = MECRunner(config, units)
    rows = []
    for spec in config.mec_settings:
        setting = MECSetting.parse(spec)
        progress(f"mec {setting.label}")
        results = {name: [runner.baseline(setting, name)] for name in MEC_BASELINES}
        if config.mec_bound:
            results["Bound"] = [runner.bound(setting)]
        results["TTOSC"] = [runner.learned(setting, s) for s in range(config.num_seeds)]
        rows += _rows("mec", setting.label, runner.download_frames(setting), results, ("TTOSC",), MEC_METRICS,
                      "mean_delay", MEC_MYOPIC, "MPC", higher_is_better=False)
    return rows


def main(argv: list[str] | None = None) -> int:
    """``jaxcpn where-learning-pays``: computes (or loads) every unit, writes the CSVs and figures."""
    config = parse_config(sys.argv[1:] if argv is None else argv)
    run_dir = config.run_dir or Path("runs") / "where-learning-pays" / f"units-{config.preset_name}"
    start = time.perf_counter()
    units = Units(run_dir, log=lambda line: print(f"[{time.perf_counter() - start:6.0f} s] {line}", flush=True))
    print(f"where-learning-pays ({config.preset_name}): envs {', '.join(config.envs)}, {config.num_seeds} seeds; "
          f"units in {run_dir}, files in {config.out}", flush=True)

    def progress(text: str) -> None:
        print(f"[{time.perf_counter() - start:6.0f} s] {text}", flush=True)

    written = []
    for env, run, key, figure in (("cpn", run_cpn, "slot_profit", cpn_figure), ("mec", run_mec, "mean_delay", mec_figure)):
        if env not in config.envs:
            continue
        rows = run(config, units, progress)
        outputs.write_csv(config.out / f"where_learning_pays_{env}.csv", rows, written)
        figure(rows, config, config.out / f"where_learning_pays_{env}.png")
        written.append(config.out / f"where_learning_pays_{env}.png")
        print("\n".join(["", f"{env.upper()}: {key} (mean ± std over seeds; differences paired, same episodes)",
                         *_summary_lines(rows, key), ""]), flush=True)
    print(f"{units.computed} units computed, {units.loaded} loaded; {len(written)} files in {config.out}; "
          f"total {time.perf_counter() - start:.0f} s", flush=True)
    return 0
