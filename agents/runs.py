"""Run folders of the training jobs, one implementation for both systems.

A run folder holds ``config.json`` (``{"job": ..., "config": ...}``: the job that made it and its
resolved typed config), ``metrics.csv`` (one row per step and seed), Orbax checkpoints under
``checkpoints/`` and the job's summary files. A fresh run never starts in a folder that holds a
run (nothing a user saved is overwritten); ``--resume`` continues a run of the same job from its
last checkpoint and drops metric rows written after it.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import types
import typing
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, TypeVar

import jax
import numpy as np

from agents import checkpoint

T = TypeVar("T")
RUN_FILES = ("config.json", "metrics.csv", "checkpoints")
"""What makes a folder a run folder."""


# ----------------------------------------------------------------------------- typed configs


def config_to_json(config: Any) -> dict:
    """A (nested) config dataclass as JSON-ready data (paths as strings, tuples as lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))


def config_from_json(config_type: type[T], data: Mapping[str, Any]) -> T:
    """Rebuilds a (nested) frozen config dataclass from :func:`config_to_json` data.

    Nested dataclasses, tuples and ``Path`` fields (optional ones too) get their types back.

    Raises:
        ValueError: ``data`` has a field that ``config_type`` does not have.
    """
    hints = typing.get_type_hints(config_type, include_extras=True)
    names = {f.name for f in dataclasses.fields(config_type)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{config_type.__name__}: unknown fields {unknown} in the saved config")
    return config_type(**{name: _from_json(hints[name], value) for name, value in data.items()})


def _from_json(hint: Any, value: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        return _from_json(typing.get_args(hint)[0], value)
    if value is None:
        return None
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return _from_json(options[0], value) if len(options) == 1 else value
    if dataclasses.is_dataclass(hint):
        return config_from_json(hint, value)
    if hint is Path:
        return Path(value)
    if origin is tuple:
        args = typing.get_args(hint)
        item = args[0] if args else Any
        return tuple(_from_json(item, v) for v in value)
    return value


# ----------------------------------------------------------------------------- run folders


def check_run_flags(config: Any) -> None:
    """The run-folder flags every training job shares: ``--devices >= 0`` and at most one folder.

    Raises:
        ValueError: naming the flag, the value and what is allowed.
    """
    devices = config.devices
    if isinstance(devices, bool) or not isinstance(devices, int) or devices < 0:
        raise ValueError(f"--devices={devices!r} is invalid: must be an integer >= 0 (0 = all devices)")
    if config.run_dir is not None and config.resume is not None and Path(config.run_dir) != Path(config.resume):
        raise ValueError(f"--run-dir={str(config.run_dir)!r} and --resume={str(config.resume)!r} name two folders: "
                         "--resume continues the run in its own folder; give one of them")


def holds_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` already holds (part of) a run."""
    return any((Path(run_dir) / name).exists() for name in RUN_FILES)


def start_run(job: str, config: Any, run_dir: Path) -> Path:
    """Creates the run folder of a fresh run and writes its ``config.json`` atomically.

    Raises:
        FileExistsError: ``run_dir`` holds a run already (it is left untouched).
    """
    run_dir = Path(run_dir)
    if holds_run(run_dir):
        raise FileExistsError(
            f"--run-dir={str(run_dir)!r} already holds a run: continue it with `jaxcpn {job} --resume {run_dir}` "
            "or choose another --run-dir (nothing was changed)")
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / "config.json.tmp"
    tmp.write_text(json.dumps({"job": job, "config": config_to_json(config)}, indent=2))
    os.replace(tmp, run_dir / "config.json")
    return run_dir


def load_run_config(job: str, config_type: type[T], run_dir: Path) -> T:
    """The config a run of ``job`` was started with (for ``--resume``).

    Raises:
        FileNotFoundError: ``run_dir`` has no ``config.json``.
        ValueError: the run was made by another job.
    """
    path = Path(run_dir) / "config.json"
    if not Path(run_dir).is_dir():
        raise FileNotFoundError(f"--resume={str(run_dir)!r} is not a run folder: no such folder")
    if not path.is_file():
        raise FileNotFoundError(f"--resume={str(run_dir)!r} is not a run folder: it has no config.json "
                                f"(a fresh run goes there with --run-dir {run_dir})")
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"--resume={str(run_dir)!r}: {path} is not a run's config.json ({error}); "
                         "nothing was changed") from None
    if not isinstance(data, dict):
        raise ValueError(f"--resume={str(run_dir)!r}: {path} is not a run's config.json (a JSON "
                         f"{type(data).__name__}, not an object); nothing was changed")
    if "job" not in data and "config" not in data:  # a run folder written before config.json named its job
        try:
            if data:
                return config_from_json(config_type, data)
        except (TypeError, ValueError):
            pass
        raise ValueError(f"--resume={str(run_dir)!r}: {path} names no job and is not a {job} config; "
                         "nothing was changed")
    if data.get("job") != job:
        other = data.get("job", "an unknown job")
        raise ValueError(f"--resume={str(run_dir)!r} is a run of {other}, not of {job}: "
                         f"resume it with `jaxcpn {other} --resume {run_dir}`")
    return config_from_json(config_type, data["config"])


def default_run_dir(name: str) -> Path:
    """``runs/<name>-<timestamp>`` (a new name for each second)."""
    import time

    return Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def resume_overrides(argv: Sequence[str], config_type: type, allowed: Sequence[str]) -> set[str]:
    """The fields ``argv`` sets beside ``--resume``; refuses any that a resume cannot change.

    A resumed run uses its own ``config.json``: a flag that would be ignored is an error, not a
    silent no-op. ``allowed`` fields (e.g. ``num_updates``: train longer) may be given.

    Raises:
        ValueError: a flag other than ``--resume`` and the ``allowed`` ones.
    """
    given = {a[2:].split("=", 1)[0].replace("-", "_") for a in argv if a.startswith("--")}
    given -= {"resume"}
    refused = sorted(given - set(allowed))
    if refused:
        flags = ", ".join("--" + name.replace("_", "-") for name in refused)
        allowed_flags = ", ".join("--" + name.replace("_", "-") for name in allowed)
        raise ValueError(f"--resume continues a run with its own config.json, so {flags} would be ignored; "
                         f"beside --resume only {allowed_flags} may be given (start a new run to change the rest)")
    return given


def write_json(path: Path, data: Any) -> None:
    """Writes ``data`` as JSON atomically (a temporary file, then a rename)."""
    tmp = Path(path).with_name(Path(path).name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def read_json(path: Path, default: Any = None) -> Any:
    """JSON of ``path``, or ``default`` if the file does not exist."""
    return json.loads(Path(path).read_text()) if Path(path).exists() else default


def append_history(run_dir: Path, argv: Sequence[str], **fields: Any) -> None:
    """Adds one line to ``history.jsonl``: when the run was (re)started, with which flags."""
    import time

    entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "argv": list(argv), **fields}
    with (Path(run_dir) / "history.jsonl").open("a") as f:
        f.write(json.dumps(entry) + "\n")


# ----------------------------------------------------------------------------- metrics


def append_metrics(path: Path, metrics: Mapping[str, Any], names: Sequence[str], first_step: int,
                   step_column: str, extra_columns: Mapping[str, Callable[[int], Any]] | None = None) -> None:
    """Appends ``(num_seeds, n)`` metrics as rows ``step, seed, *extra, *names``.

    Row ``j`` of the chunk is step ``first_step + j + 1``; ``extra_columns[name](step)`` gives
    the value of an extra column (e.g. the env steps done by then).
    """
    extra_columns = extra_columns or {}
    new = not path.exists()
    host = {k: np.asarray(jax.device_get(metrics[k])) for k in names}
    num_seeds, n = host[names[0]].shape
    with path.open("a", newline="") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow([step_column, "seed", *extra_columns, *names])
        for j in range(n):
            step = first_step + j + 1
            extra = [fn(step) for fn in extra_columns.values()]
            for s in range(num_seeds):
                writer.writerow([step, s, *extra, *(f"{host[k][s, j]:.6g}" for k in names)])


def read_metrics(path: Path, names: Sequence[str]) -> dict[str, np.ndarray]:
    """A metrics CSV as ``{name: (num_seeds, num_steps)}`` float arrays (NaN where missing)."""
    with Path(path).open() as f:
        rows = list(csv.DictReader(f))
    step_column = next(iter(rows[0])) if rows else "step"
    seeds = sorted({int(r["seed"]) for r in rows})
    steps = sorted({int(r[step_column]) for r in rows})
    column = {step: j for j, step in enumerate(steps)}
    out = {name: np.full((len(seeds), len(steps)), np.nan) for name in names}
    for r in rows:
        for name in names:
            out[name][seeds.index(int(r["seed"])), column[int(r[step_column])]] = float(r[name])
    return out


def restore_runner(run_dir: Path, trainer: Any, num_seeds: int, seed: int, step: int | None = None):
    """``(runner, step)``: a run's seeds-batched runner state at checkpoint ``step`` (default the last).

    ``trainer`` (a PPO or DDQN trainer) gives the structure to restore into, initialised like the
    training job (``seed_keys(seed, num_seeds)``, one device).
    """
    from agents import sharding
    from agents.seeds import seed_keys

    init, _ = sharding.sharded_trainer_fns(trainer, sharding.make_mesh(1), 1, num_seeds=num_seeds)
    target = init(np.asarray(seed_keys(seed, num_seeds)))
    return checkpoint.restore_checkpoint(Path(run_dir) / "checkpoints", target, step)


# ----------------------------------------------------------------------------- TensorBoard


class TensorBoardLog:
    """Optional TensorBoard scalars of a run (``--tensorboard``): ``<run_dir>/tensorboard``.

    One scalar per metric and seed (tag ``<metric>/seed_<s>``) at every step; written with
    tensorboardX (the ``tensorboard`` extra), read back by :func:`read_tensorboard`.
    """

    def __init__(self, run_dir: Path):
        try:
            from tensorboardX import SummaryWriter
        except ImportError as error:
            raise ImportError("--tensorboard needs tensorboardX: pip install -e '.[tensorboard]'") from error
        self.writer = SummaryWriter(str(Path(run_dir) / "tensorboard"))

    def write(self, metrics: Mapping[str, Any], names: Sequence[str], first_step: int) -> None:
        host = {k: np.asarray(jax.device_get(metrics[k])) for k in names}
        num_seeds, n = host[names[0]].shape
        for j in range(n):
            for name in names:
                for s in range(num_seeds):
                    value = float(host[name][s, j])
                    if np.isfinite(value):  # e.g. TTOSC's episode reward exists only where an episode ended
                        self.writer.add_scalar(f"{name}/seed_{s}", value, first_step + j + 1)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def read_tensorboard(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """``{tag: [(step, value), ...]}`` of every scalar under ``<run_dir>/tensorboard`` (TFRecord event files)."""
    import struct

    from tensorboardX.proto import event_pb2

    scalars: dict[str, list[tuple[int, float]]] = {}
    for path in sorted((Path(run_dir) / "tensorboard").glob("events.out.tfevents.*")):
        data = path.read_bytes()
        offset = 0
        while offset + 12 <= len(data):
            (length,) = struct.unpack("<Q", data[offset:offset + 8])
            record = data[offset + 12: offset + 12 + length]
            offset += 12 + length + 4  # length, its CRC, the record, its CRC
            event = event_pb2.Event.FromString(record)
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append((int(event.step), float(value.simple_value)))
    return scalars


# ----------------------------------------------------------------------------- chunked training


def train_in_chunks(run_dir: Path, runner: Any, total: int, chunk_size: int,
                    chunk: Callable[[Any, int], tuple[Any, dict]],
                    write_metrics: Callable[[Path, dict, int], None],
                    place: Callable[[Any], Any] = lambda r: r,
                    postfix: Callable[[dict], dict] = lambda m: {},
                    desc: str = "training", unit: str = "step", interrupt_after: int | None = None) -> Any:
    """Runs (or resumes) ``total`` steps in jitted chunks, saving metrics and a checkpoint per chunk.

    Args:
        run_dir: the run folder (``checkpoints/`` and ``metrics.csv`` inside).
        runner: the freshly initialised runner state (also the restore target).
        chunk: ``chunk(runner, n) -> (runner, metrics)`` runs ``n`` steps.
        write_metrics: ``write_metrics(path, metrics, steps_done_before)`` appends a chunk.
        place: puts a restored runner in the layout of the training program.
        postfix: progress-bar fields from a chunk's metrics.
        interrupt_after: stop after this many steps as if interrupted (tests).

    Returns:
        The final runner state. A ``KeyboardInterrupt`` is re-raised after saying how to resume.
    """
    from tqdm import tqdm

    Path(run_dir).mkdir(parents=True, exist_ok=True)
    ckpt_dir, metrics_path = Path(run_dir) / "checkpoints", Path(run_dir) / "metrics.csv"
    done = 0
    if checkpoint.latest_step(ckpt_dir) is not None:
        runner, done = checkpoint.restore_checkpoint(ckpt_dir, runner)
        if done > total:
            raise ValueError(f"{run_dir} has done {done} steps already, more than the {total} asked for: "
                             "a run can be trained longer, not shorter")
        runner = place(runner)
        checkpoint.truncate_metrics(metrics_path, done)
    else:
        metrics_path.unlink(missing_ok=True)
    stop = total if interrupt_after is None else min(total, interrupt_after)
    bar = tqdm(total=total, initial=done, desc=desc, unit=unit)
    try:
        while done < stop:
            n = min(chunk_size, total - done)
            runner, metrics = chunk(runner, n)
            jax.block_until_ready(metrics)
            write_metrics(metrics_path, metrics, done)
            done += n
            checkpoint.save_checkpoint(ckpt_dir, done, runner)
            bar.update(n)
            bar.set_postfix(**postfix(metrics))
    except KeyboardInterrupt:
        bar.close()
        print(f"\ninterrupted: last checkpoint at step {checkpoint.latest_step(ckpt_dir)}; "
              f"continue with --resume {run_dir}")
        raise
    bar.close()
    return runner
