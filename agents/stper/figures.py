"""The STPer figure reproductions (``jaxcpn reproduce-stper``): Figs. 3-6 with Greedy, coordinate-ascent and bound lines.

Usage:
    jaxcpn reproduce-stper --figure all --out docs/figures   # the committed figures (CPU: docs/results.md)
    jaxcpn reproduce-stper --figure 5 --quick                # small scale, a few CPU minutes
    jaxcpn reproduce-stper --figure all --preset paper       # train-stper paper budget per point: ~6 h on 2 cores, resumes

(``python scripts/reproduce_stper.py`` is the same job.) Figures (CSV + PNG under ``--out``,
default ``runs/reproduce-stper-<preset>/figures``; nothing under docs/ is written unless
``--out`` names it):

- **Fig. 3** (``stper_fig3_training``): cumulative reward (episode profit) and explained variance
  of the value function during training, STPer / STPer-L / STPer-M, mean and std over seeds,
  with the Greedy and coordinate-ascent episode profits and the upper bound as reference lines. The runs are those of the
  10-TFLOPS point of the Fig. 4-5 sweep at the default ``kappa``, which is the default instance.
- **Fig. 4** (``stper_fig4_delay_vs_power``): average task delay vs node computing power.
- **Fig. 5** (``stper_fig5_profit_vs_power``): system profit (per slot) vs node computing power.
- **Fig. 6** (``stper_fig6_profit_vs_size``): system profit vs task data size (15-45 Mb).

"Computing power C TFLOPS" scales every node's drawn power by ``C / 10``: the default instance
draws ``f_n`` in [1, 10] (paper V-A), so at ``C`` the powers lie in ``[C/10, C]`` and ``C = 10``
is the default instance (docs/model.md). Figs. 4-5 are made at the default ``kappa`` and at a
small one (``--kappa-small``, default 1e-4), because the paper's rising profit needs
``kappa`` below about 3e-4 while the default instance's trade-off needs a larger one
(DESIGN.md, docs/model.md).

Every sweep point is its own training run (as in the paper): the runs of one variant, all
sweep points x all seeds, are ONE compiled program, a ``vmap`` over instances (params batched
with :func:`jaxcpn.sweep.stack_sweep`) of a ``vmap`` over seeds of the PPO trainer, run in
chunks for the progress bar. Every finished (sweep, variant) unit is saved to ``--run-dir``
as ``.npz``; a rerun with the same settings loads it instead of training again. A unit in
progress is checkpointed after every chunk (``--run-dir``/partial, removed when the unit is saved),
so an interrupted reproduction resumes at the last chunk of the unit it was in.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from agents import outputs
from agents.checkpoint import delete_steps_after, restore_checkpoint, save_checkpoint
from agents.checks import require_positive
from agents.cli import parse_with_presets
from agents.outputs import write_csv
from agents.seeds import seed_keys
from agents.stper.baselines import CPN_POLICIES, rollout_cpn
from agents.stper.ppo import PPOConfig, make_trainer, network_policy
from jaxcpn.sweep import stack_sweep

VARIANTS = ("stper", "stper-l", "stper-m")
BASELINES = ("random", "greedy", "coord-ascent")
LABELS = {"stper": "STPer", "stper-l": "STPer-L", "stper-m": "STPer-M", "random": "Random",
          "greedy": "Greedy (not in paper)", "coord-ascent": "Coordinate ascent (clairvoyant, not in paper)",
          "bound": "upper bound (conflict-free)"}
STYLES = {"random": dict(color="tab:gray", ls=":"), "greedy": dict(color="tab:olive", ls="--"),
          "coord-ascent": dict(color="black", ls="-."), "bound": dict(color="tab:red", ls=(0, (1, 1)), lw=1.2)}
EVAL_METRICS = ("slot_profit", "mean_delay", "miss_rate")
CURVES = ("episode_return", "explained_variance")
"""Training curves of a unit, one value per update (the last axis)."""
UNIT_FORMAT = 4
"""Version of what a saved unit means, in its fingerprint: a unit saved by code whose methods have
since changed (2: the paper's Random with random routes, the learned adjacency; 3: the bound; 4: "coord-ascent", was "oracle") is recomputed."""
DEFAULT_POWER = 10.0
"""TFLOPS: the top of the default instance's power range (paper V-A: f_n in [1, 10])."""


@dataclasses.dataclass(frozen=True)
class ReproConfig:
    """Reproduction of STPer Figs. 3-6."""

    figure: Literal["3", "4", "5", "6", "all"] = "all"
    """Figure to make (all = 3, 4, 5 and 6; 3-5 share their training runs)."""
    preset: Literal["full", "quick", "paper"] = "full"
    """Scale: full (the committed figures, CPU), quick (CPU minutes, smoke test) or paper (6.1M steps per run)."""
    quick: bool = False
    """Shorthand for --preset quick."""
    out: Path | None = None
    """Folder of the CSV and PNG files (default runs/reproduce-stper-<preset>/figures)."""
    run_dir: Path | None = None
    """Folder of the saved units, from which a rerun resumes (default runs/reproduce-stper-<preset>)."""
    variants: tuple[str, ...] = VARIANTS
    """Trained variants (STPer, STPer-L, STPer-M)."""
    num_seeds: int = 3
    """Training seeds per sweep point (vmapped)."""
    seed: int = 0
    """Base seed: seed s uses fold_in(PRNGKey(seed), s), as scripts/train_stper.py."""
    num_updates: int = 100
    """PPO updates per run."""
    num_envs: int = 16
    """Parallel environments per run."""
    num_steps: int = 24
    """Rollout steps per update."""
    num_minibatches: int = 4
    """PPO minibatches per epoch."""
    chunk_updates: int = 10
    """Updates per jitted chunk (the progress bar advances per chunk)."""
    eval_episodes: int = 16
    """Evaluation episodes per point, the same for every policy."""
    eval_seed: int = 12345
    """Seed of the evaluation episodes."""
    powers: tuple[float, ...] = (10.0, 20.0, 30.0, 40.0, 50.0)
    """Computing powers C (TFLOPS) of Figs. 4-5: node powers are drawn in [C/10, C]."""
    data_sizes: tuple[float, ...] = (15.0, 22.5, 30.0, 37.5, 45.0)
    """Task data sizes (Mb) of Fig. 6."""
    kappa_small: float = 1e-4
    """The small energy coefficient of the second Figs. 4-5 panel (<= 3e-4, DESIGN.md)."""
    instance_seed: int = 0
    """CPN instance (0 = the default instance)."""

    def __post_init__(self):
        require_positive(self, "num_seeds", "num_updates", "num_envs", "num_steps", "chunk_updates", "eval_episodes")
        for name in ("powers", "data_sizes"):
            values = getattr(self, name)
            if not values or min(values) <= 0:
                raise ValueError(f"--{name.replace('_', '-')}={values!r} is invalid: must be one or more values > 0")
        if not 0 < self.kappa_small <= 3e-4:
            raise ValueError(f"--kappa-small={self.kappa_small!r} is invalid: must be in (0, 3e-4]")
        bad = [v for v in self.variants if v not in VARIANTS]
        if bad or not self.variants:
            raise ValueError(f"--variants={self.variants!r} is invalid: must be a non-empty subset of {VARIANTS}")

    def ppo(self, variant: str) -> PPOConfig:
        """The PPO config of ``variant`` (the network sizes of ``jaxcpn train-stper``'s presets)."""
        return PPOConfig(variant=variant, num_envs=self.num_envs, num_steps=self.num_steps,
                         num_updates=self.num_updates, num_minibatches=self.num_minibatches,
                         instance_seed=self.instance_seed)


PRESETS = {
    "full": ReproConfig(),
    "quick": ReproConfig(preset="quick", num_updates=3, num_envs=8, num_minibatches=2, chunk_updates=3,
                         eval_episodes=2, powers=(10.0, 30.0, 50.0), data_sizes=(15.0, 30.0, 45.0)),
    # The budget of `jaxcpn train-stper --preset paper` (6.1M env steps per run, past where the
    # training return flattens), per point and seed: about 40 min per sweep and variant on 2 cores.
    "paper": ReproConfig(preset="paper", num_updates=1000, num_envs=256, num_minibatches=4, chunk_updates=25,
                         eval_episodes=64),
}


def parse_config(argv: list[str]) -> ReproConfig:
    """Parses ``argv``; ``--quick`` is ``--preset quick``."""
    return parse_with_presets(ReproConfig, PRESETS, argv, __doc__, default_preset="full")


# ---------------------------------------------------------------------------- sweeps
@dataclasses.dataclass(frozen=True)
class Sweep:
    """One x axis: the params leaf it sets, its values and the ``kappa`` of the instance."""

    name: str
    field: str
    x_name: str
    x: tuple[float, ...]
    kappa: float | None  # None = the instance's default

    def params(self, base) -> object:
        """``K`` stacked instances, one per x value."""
        params = base if self.kappa is None else base.replace(kappa=jnp.float32(self.kappa))
        x = jnp.asarray(self.x, jnp.float32)
        if self.field == "power":
            values = (x / DEFAULT_POWER)[:, None] * params.power[None, :]
        else:
            values = jnp.broadcast_to(x[:, None], (len(self.x),) + params.packet_size.shape)
        return stack_sweep(params, self.field, values)


def sweeps(config: ReproConfig, figures: set[str]) -> list[Sweep]:
    out = []
    if figures & {"3", "4", "5"}:
        out.append(Sweep("power-kappa-default", "power", "computing_power_tflops", config.powers, None))
    if figures & {"4", "5"}:
        out.append(Sweep("power-kappa-small", "power", "computing_power_tflops", config.powers, config.kappa_small))
    if "6" in figures:
        out.append(Sweep("size-kappa-default", "packet_size", "data_size_mb", config.data_sizes, None))
    return out


# ---------------------------------------------------------------------------- runs
def _summary(metrics: dict) -> dict:
    return dict(slot_profit=metrics["profit"].mean(), mean_delay=metrics["mean_delay"].mean(),
                miss_rate=metrics["miss_rate"].mean(), bound=metrics["bound"].mean())


class Runner:
    """Trains and evaluates units, caching compiled programs and finished units."""

    def __init__(self, config: ReproConfig, run_dir: Path):
        self.config = config
        self.run_dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        self.trainers = {v: make_trainer(config.ppo(v)) for v in config.variants}
        any_trainer = next(iter(self.trainers.values()))
        self.env, self.base_params = any_trainer.env, any_trainer.env_params
        self.eval_key = jax.random.PRNGKey(config.eval_seed)
        self._programs: dict = {}

    def _fingerprint(self, sweep: Sweep, variant: str) -> str:
        fields = dataclasses.asdict(self.config)
        for name in ("figure", "out", "run_dir", "chunk_updates", "variants", "quick", "powers", "data_sizes",
                     "kappa_small"):
            fields.pop(name)
        ppo = dataclasses.asdict(self.config.ppo(variant)) if variant in VARIANTS else None
        data = dict(fields, sweep=dataclasses.asdict(sweep), variant=variant, ppo=ppo, format=UNIT_FORMAT)
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def _load(self, path: Path, fingerprint: str) -> dict | None:
        if not path.exists():
            return None
        with np.load(path) as data:
            if str(data["fingerprint"]) != fingerprint:
                return None
            return {k: data[k] for k in data.files if k != "fingerprint"}

    def _save(self, path: Path, fingerprint: str, arrays: dict) -> None:
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, fingerprint=np.array(fingerprint), **arrays)
        tmp.replace(path)

    def _train_programs(self, variant: str, num_updates: int):
        key = (variant, num_updates)
        if key not in self._programs:
            trainer = self.trainers[variant]
            per_seed_init = jax.vmap(trainer.init, in_axes=(0, None))
            init = jax.jit(jax.vmap(per_seed_init, in_axes=(None, 0)))

            def chunk(runner, params):
                return trainer.train_chunk(runner, num_updates, None, params)

            per_seed = jax.vmap(chunk, in_axes=(0, None))
            self._programs[key] = (init, jax.jit(jax.vmap(per_seed, in_axes=(0, 0))))
        return self._programs[key]

    def train_unit(self, sweep: Sweep, variant: str, bar) -> dict:
        """Trains ``variant`` at every point x seed of ``sweep``; arrays ``(K, S, ...)``."""
        config = self.config
        fingerprint = self._fingerprint(sweep, variant)
        path = self.run_dir / f"{sweep.name}-{variant}.npz"
        cached = self._load(path, fingerprint)
        if cached is not None:
            bar.update(config.num_updates)
            return cached
        params = sweep.params(self.base_params)
        keys = seed_keys(config.seed, config.num_seeds)
        init, _ = self._train_programs(variant, config.chunk_updates)
        runner = init(keys, params)
        # A unit in progress is checkpointed after every chunk (its runner with Orbax, its curves so
        # far beside it), so an interrupted unit resumes at its last chunk, not from the start.
        partial = self.run_dir / "partial" / f"{sweep.name}-{variant}-{fingerprint}"
        runner, curves, done = self._resume_partial(partial, runner)
        if done:
            bar.update(done)
        while done < config.num_updates:
            n = min(config.chunk_updates, config.num_updates - done)
            runner, metrics = self._train_programs(variant, n)[1](runner, params)
            chunk = {k: np.asarray(metrics[k]) for k in CURVES}
            curves = chunk if curves is None else {k: np.concatenate([curves[k], chunk[k]], axis=-1) for k in CURVES}
            done += n
            if done < config.num_updates:
                self._save_partial(partial, runner, curves, done)
            bar.update(n)
            bar.set_postfix(unit=f"{sweep.name}/{variant}", ret=f"{np.nanmean(chunk['episode_return'][..., -1]):.0f}")
        arrays = dict(curves)
        arrays.update(self.evaluate_trained(variant, runner.train_state.params, params))
        self._save(path, fingerprint, arrays)
        shutil.rmtree(partial, ignore_errors=True)
        return arrays

    @staticmethod
    def _save_partial(partial: Path, runner, curves: dict, done: int) -> None:
        """Checkpoints a unit after ``done`` updates: the runner as Orbax step ``done``, then the curves
        (``curves.npz``, written last and atomically, so it never names a step that is not on disk)."""
        save_checkpoint(partial / "runner", done, runner)
        tmp = partial / "curves.tmp.npz"
        np.savez(tmp, done=np.array(done), **curves)
        tmp.replace(partial / "curves.npz")

    @staticmethod
    def _resume_partial(partial: Path, runner) -> tuple[object, dict | None, int]:
        """``(runner, curves, updates done)`` of a checkpointed unit (``runner`` is the structure to
        restore into), or ``(runner, None, 0)`` when there is none."""
        if not (partial / "curves.npz").exists():   # none, or killed before its first curves were written
            shutil.rmtree(partial, ignore_errors=True)
            return runner, None, 0
        with np.load(partial / "curves.npz") as data:
            done = int(data["done"])
            curves = {k: data[k] for k in CURVES}
        runner, _ = restore_checkpoint(partial / "runner", runner, step=done)
        delete_steps_after(partial / "runner", done)  # killed between a runner's save and its curves'
        return runner, curves, done

    def evaluate_trained(self, variant: str, variables, params) -> dict:
        """Deterministic (argmax) policy of every point x seed on its point's instance."""
        key = ("eval", variant)
        if key not in self._programs:
            trainer, env, episodes = self.trainers[variant], self.env, self.config.eval_episodes

            def one(variables, params):
                policy = network_policy(trainer.network, variables)
                return _summary(rollout_cpn(policy, env, params, self.eval_key, episodes))

            self._programs[key] = jax.jit(jax.vmap(jax.vmap(one, in_axes=(0, None)), in_axes=(0, 0)))
        out = self._programs[key](variables, params)
        return {f"eval_{k}": np.asarray(v) for k, v in out.items()}

    def baselines(self, sweep: Sweep) -> dict:
        """Random, Greedy and the coordinate ascent at every point (and the slots' bound); arrays ``(K,)``."""
        fingerprint = self._fingerprint(sweep, "baselines")
        path = self.run_dir / f"{sweep.name}-baselines.npz"
        cached = self._load(path, fingerprint)
        if cached is not None:
            return cached
        params, env, episodes = sweep.params(self.base_params), self.env, self.config.eval_episodes
        arrays = {}
        for name in BASELINES:
            if name not in self._programs:  # one program per baseline, shared by every sweep
                def one(p, policy=CPN_POLICIES[name]):
                    return _summary(rollout_cpn(policy, env, p, self.eval_key, episodes))

                self._programs[name] = jax.jit(jax.vmap(one))
            out = self._programs[name](params)
            arrays.update({f"{name}_{k}": np.asarray(v) for k, v in out.items()})
        self._save(path, fingerprint, arrays)
        return arrays


# ---------------------------------------------------------------------------- outputs
def eval_rows(sweep: Sweep, units: dict, base: dict, variants: tuple[str, ...]) -> list[dict]:
    """Tidy rows ``x, method, seed, slot_profit, mean_delay, miss_rate, gap_to_bound`` (baselines:
    seed ``""``), and per point a ``bound`` row: the conflict-free upper bound on the profit per
    slot of the same evaluation slots (:mod:`agents.stper.bounds`; no delay or misses)."""
    rows = []
    kappa = "default" if sweep.kappa is None else f"{sweep.kappa:g}"
    for k, x in enumerate(sweep.x):
        bound = float(base["greedy_bound"][k])  # every policy plays the same slots (same key)
        for variant in variants:
            for s in range(units[variant]["eval_slot_profit"].shape[1]):
                row = {m: float(units[variant][f"eval_{m}"][k, s]) for m in EVAL_METRICS}
                rows.append({"kappa": kappa, sweep.x_name: x, "method": variant, "seed": s, **row,
                             "gap_to_bound": bound - row["slot_profit"]})
        for name in BASELINES:
            row = {m: float(base[f"{name}_{m}"][k]) for m in EVAL_METRICS}
            rows.append({"kappa": kappa, sweep.x_name: x, "method": name, "seed": "", **row,
                         "gap_to_bound": bound - row["slot_profit"]})
        rows.append({"kappa": kappa, sweep.x_name: x, "method": "bound", "seed": "", "slot_profit": bound,
                     "mean_delay": "", "miss_rate": "", "gap_to_bound": 0.0})
    return rows



def plot_metric(ax, sweep: Sweep, units: dict, base: dict, metric: str, variants: tuple[str, ...]) -> None:
    x = np.asarray(sweep.x)
    for variant in variants:
        values = units[variant][f"eval_{metric}"]
        mean, std = values.mean(1), values.std(1)
        ax.plot(x, mean, marker="o", label=f"{LABELS[variant]} ({values.shape[1]} seeds)")
        ax.fill_between(x, mean - std, mean + std, alpha=0.2)
    for name in BASELINES:
        ax.plot(x, base[f"{name}_{metric}"], marker=".", label=LABELS[name], **STYLES[name])
    if metric == "slot_profit":
        ax.plot(x, base["greedy_bound"], label=LABELS["bound"], **STYLES["bound"])
    ax.grid(alpha=0.3)


def figure_3(config: ReproConfig, sweep: Sweep, units: dict, base: dict, out: Path) -> list[Path]:
    """Training curves of the default-instance point (C = 10 TFLOPS, default kappa)."""
    k = int(np.argmin(np.abs(np.asarray(sweep.x) - DEFAULT_POWER)))
    steps_per_update = config.num_envs * config.num_steps
    rows = []
    for variant in config.variants:
        for s in range(config.num_seeds):
            for u in range(config.num_updates):
                rows.append({"variant": variant, "seed": s, "update": u + 1, "env_steps": (u + 1) * steps_per_update,
                             "episode_return": float(units[variant]["episode_return"][k, s, u]),
                             "explained_variance": float(units[variant]["explained_variance"][k, s, u])})
    csv_path = out / "stper_fig3_training.csv"
    write_csv(csv_path, rows)
    plt = outputs.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    steps = np.arange(1, config.num_updates + 1) * steps_per_update
    for variant in config.variants:
        for ax, name in zip(axes, ("episode_return", "explained_variance")):
            values = units[variant][name][k]
            mean, std = np.nanmean(values, 0), np.nanstd(values, 0)
            ax.plot(steps, mean, label=f"{LABELS[variant]} ({values.shape[0]} seeds)")
            ax.fill_between(steps, mean - std, mean + std, alpha=0.2)
    episode_length = config.ppo(config.variants[0]).episode_length
    for name, key in (("greedy", "greedy_slot_profit"), ("coord-ascent", "coord-ascent_slot_profit"), ("bound", "greedy_bound")):
        axes[0].axhline(base[key][k] * episode_length, label=LABELS[name], **STYLES[name])
    axes[0].set_title("cumulative reward (episode profit)")
    axes[1].set_title("explained variance of the value function")
    for ax in axes:
        ax.set_xlabel("env steps per run")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    png = outputs.save_figure(fig, out / "stper_fig3_training.png",
                      f"STPer Fig. 3: training on the default instance ({config.preset} scale)")
    return [csv_path, png]


def figure_power(config, number: int, power_sweeps: list[Sweep], data: dict, out: Path) -> list[Path]:
    """Fig. 4 (delay) or Fig. 5 (profit) vs computing power, one panel per kappa."""
    metric, stem, ylabel = {
        4: ("mean_delay", "stper_fig4_delay_vs_power", "average task delay (s)"),
        5: ("slot_profit", "stper_fig5_profit_vs_power", "system profit per slot"),
    }[number]
    rows = [r for sweep in power_sweeps for r in eval_rows(sweep, *data[sweep.name], config.variants)]
    keep = ("kappa", "computing_power_tflops", "method", "seed", metric) + (
        ("miss_rate",) if number == 4 else ("gap_to_bound",))
    rows = [r for r in rows if number == 5 or r["method"] != "bound"]  # the bound is on profit
    csv_path = out / f"{stem}.csv"
    write_csv(csv_path, [{k: r[k] for k in keep} for r in rows])
    plt = outputs.pyplot()
    fig, axes = plt.subplots(1, len(power_sweeps), figsize=(5.5 * len(power_sweeps), 4.2), squeeze=False)
    for ax, sweep in zip(axes[0], power_sweeps):
        plot_metric(ax, sweep, *data[sweep.name], metric, config.variants)
        kappa = sweep.kappa if sweep.kappa is not None else float(np.asarray(data["base_kappa"]))
        ax.set_title(f"kappa = {kappa:g}" + (" (default)" if sweep.kappa is None else ""))
        ax.set_xlabel("computing power C (TFLOPS; node powers in [C/10, C])")
        ax.set_ylabel(ylabel)
    axes[0][0].legend(fontsize=8)
    png = outputs.save_figure(fig, out / f"{stem}.png",
                      f"STPer Fig. {number}: {ylabel} vs computing power ({config.preset} scale)")
    return [csv_path, png]


def figure_6(config, sweep: Sweep, data: dict, out: Path) -> list[Path]:
    """Fig. 6: system profit vs task data size."""
    csv_path = out / "stper_fig6_profit_vs_size.csv"
    write_csv(csv_path, eval_rows(sweep, *data[sweep.name], config.variants))
    plt = outputs.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, metric, ylabel in ((axes[0], "slot_profit", "system profit per slot"),
                               (axes[1], "miss_rate", "deadline-miss rate")):
        plot_metric(ax, sweep, *data[sweep.name], metric, config.variants)
        ax.set_xlabel("task data size (Mb)")
        ax.set_ylabel(ylabel)
    axes[0].legend(fontsize=8)
    png = outputs.save_figure(fig, out / "stper_fig6_profit_vs_size.png",
                      f"STPer Fig. 6: impact of the task data size ({config.preset} scale)")
    return [csv_path, png]


def print_table(sweep: Sweep, units: dict, base: dict, variants: tuple[str, ...]) -> None:
    print(f"\n{sweep.name}: profit per slot / mean delay (s), mean over seeds")
    print(f"{sweep.x_name:>24} " + " ".join(f"{LABELS[m].split(' ')[0]:>16}" for m in (*variants, *BASELINES))
          + f"{'bound':>10}")
    for k, x in enumerate(sweep.x):
        cells = [f"{units[v]['eval_slot_profit'][k].mean():8.2f}/{units[v]['eval_mean_delay'][k].mean():.3f}"
                 for v in variants]
        cells += [f"{base[f'{b}_slot_profit'][k]:8.2f}/{base[f'{b}_mean_delay'][k]:.3f}" for b in BASELINES]
        cells += [f"{base['greedy_bound'][k]:8.2f}"]
        print(f"{x:>24g} " + " ".join(f"{c:>16}" for c in cells))


def main(argv: list[str] | None = None) -> int:
    """``jaxcpn reproduce-stper``: trains (or loads) every unit and writes the figures."""
    from tqdm import tqdm

    config = parse_config(sys.argv[1:] if argv is None else argv)
    figures = {"3", "4", "5", "6"} if config.figure == "all" else {config.figure}
    run_dir = config.run_dir or Path("runs") / f"reproduce-stper-{config.preset}"
    out = config.out or run_dir / "figures"
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    runner = Runner(config, run_dir)
    todo = sweeps(config, figures)
    print(f"STPer figures {sorted(figures)} at {config.preset} scale: {len(todo)} sweep(s) x "
          f"{len(config.variants)} variant(s) x {config.num_seeds} seeds; units saved in {run_dir}")
    data = {"base_kappa": runner.base_params.kappa}
    bar = tqdm(total=len(todo) * len(config.variants) * config.num_updates, desc="training", unit="upd")
    for sweep in todo:
        units = {variant: runner.train_unit(sweep, variant, bar) for variant in config.variants}
        data[sweep.name] = (units, runner.baselines(sweep))
    bar.close()
    for sweep in todo:
        print_table(sweep, *data[sweep.name], config.variants)
    written = []
    if "3" in figures:
        written += figure_3(config, todo[0], *data[todo[0].name], out)
    power_sweeps = [s for s in todo if s.field == "power"]
    for number in (4, 5):
        if str(number) in figures:
            written += figure_power(config, number, power_sweeps, data, out)
    if "6" in figures:
        written += figure_6(config, todo[-1], data, out)
    print(f"\n{len(written)} files written to {out}; total {time.perf_counter() - start:.0f} s")
    return 0

