"""train-stper on real-format series from the command line; a run trained longer; data recorded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from agents import runs
from agents.stper import train as train_stper
from agents.stper.instance import InstanceArgs, load_series, make_instance
from jaxcpn.data import load_entsoe_day_ahead, load_smard_generation, series_for_env
from jaxcpn.data.examples import write_example_exports

TINY = ["--variant", "stper-m", "--num-nodes", "4", "--num-users", "4", "--window", "6", "--episode-length", "6",
        "--num-envs", "8", "--num-steps", "6", "--num-updates", "4", "--num-minibatches", "2",
        "--fusion-hidden", "16", "--head-hidden", "16", "--chunk-updates", "2", "--eval-episodes", "1",
        # a constant learning rate: the resumed, longer run (--num-updates 6) runs the same compiled
        # chunk program as the first 4 updates (an annealed rate's schedule depends on num_updates)
        "--no-anneal-lr"]


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    return write_example_exports(tmp_path_factory.mktemp("data"))


def test_example_exports_read_back_in_their_formats(exports, tmp_path):
    price_file, hydro_file = exports
    prices, hydros = load_entsoe_day_ahead(price_file), load_smard_generation(hydro_file)
    assert len(prices) == len(hydros) == 14 * 24 - 1            # the spring DST day has 23 hours
    assert (prices.timestamps == hydros.timestamps).all()
    with pytest.raises(FileExistsError):                        # nothing saved is overwritten
        write_example_exports(price_file.parent)


def test_instance_uses_the_loaded_series(exports):
    price_file, hydro_file = exports
    args = InstanceArgs(price_csv=price_file, hydro_csv=hydro_file, kappa=1e-3)
    config = train_stper.parse_config(TINY).ppo.env_config
    params = make_instance(args, config, 0)
    price, hydro = series_for_env(load_entsoe_day_ahead(price_file).column("price_eur_mwh"),
                                  load_smard_generation(hydro_file).column("Wasserkraft [MWh] Originalauflösungen"))
    np.testing.assert_allclose(np.asarray(params.price_series), price, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(params.hydro_series), hydro, rtol=1e-6)
    assert float(params.kappa) == pytest.approx(1e-3)
    assert load_series(args)[2] == 0                              # 24.03.2025 00:00 local is a Monday
    with pytest.raises(ValueError, match="--price-csv and --hydro-csv go together"):
        InstanceArgs(price_csv=price_file)
    with pytest.raises(ValueError, match="--hydro-format hourly needs --hydro-column"):
        InstanceArgs(price_csv=price_file, hydro_csv=hydro_file, hydro_format="hourly")


@pytest.mark.timeout(400)
def test_train_on_real_files_record_them_and_train_longer(exports, tmp_path):
    import shutil

    price_file, hydro_file = (shutil.copy(path, tmp_path / path.name) for path in exports)  # this test edits one
    run = tmp_path / "run"
    data = ["--price-csv", str(price_file), "--hydro-csv", str(hydro_file), "--kappa", "1e-3"]
    assert train_stper.main([*TINY, *data, "--run-dir", str(run), "--tensorboard"]) == 0
    record = json.loads((run / "instance.json").read_text())
    assert record["series"]["price"]["sha256"] and record["overrides"] == {"kappa": 1e-3}
    rows = (run / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + 4
    scalars = runs.read_tensorboard(run)                            # TensorBoard scalars read back
    csv_returns = [float(r.split(",")[3]) for r in rows[1:]]
    assert [step for step, _ in scalars["episode_return/seed_0"]] == [1, 2, 3, 4]
    np.testing.assert_allclose([v for _, v in scalars["episode_return/seed_0"]], csv_returns, rtol=1e-5)
    with pytest.raises(ValueError, match="--variant would be ignored"):
        train_stper.main(["--resume", str(run), "--variant", "stper-l"])
    assert train_stper.main(["--resume", str(run), "--num-updates", "6"]) == 0   # train longer
    longer = (run / "metrics.csv").read_text().splitlines()
    assert longer[:5] == rows and len(longer) == 1 + 6
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert [h["num_updates"] for h in history] == [4, 6]
    # a second fresh run in the same folder is refused and leaves every byte of the first in place
    import hashlib

    def snapshot():
        return {p.relative_to(run): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(run.rglob("*"))
                if p.is_file()}

    before = snapshot()
    with pytest.raises(FileExistsError, match="already holds a run"):
        train_stper.main([*TINY, "--variant", "stper-l", "--run-dir", str(run)])
    assert snapshot() == before
    # the saved run, evaluated again from its checkpoint, reproduces its own summary; and pictures
    from agents.stper import evaluate as evaluate_stper

    assert evaluate_stper.evaluate_run_main(["--run", str(run), "--out", str(tmp_path / "eval.json"),
                                             "--render", str(tmp_path / "pictures")]) == 0
    again = json.loads((tmp_path / "eval.json").read_text())["results"]
    assert again == json.loads((run / "summary.json").read_text())["results"]
    assert (tmp_path / "pictures" / "slot.png").stat().st_size > 1000
    assert (tmp_path / "pictures" / "episode.gif").read_bytes()[:3] == b"GIF"
    with pytest.raises(FileExistsError):                          # nothing saved is overwritten
        evaluate_stper.evaluate_run_main(["--run", str(run), "--out", str(tmp_path / "eval.json")])
    with pytest.raises(ValueError, match="a run can be trained longer, not shorter"):
        train_stper.main(["--resume", str(run), "--num-updates", "2"])
    hydro_file = Path(hydro_file)
    hydro_file.write_text(hydro_file.read_text().replace("4.321,00", "4.321,50", 1))
    with pytest.raises(ValueError, match="changed since the run started"):
        train_stper.main(["--resume", str(run), "--num-updates", "8"])


def test_every_generator_default_is_a_flag_of_train_stper():
    """A new generator setting (jaxcpn.cpn.generator.DEFAULTS) must be reachable from the command line."""
    import dataclasses

    from jaxcpn.cpn.generator import DEFAULTS

    missing = set(DEFAULTS) - {f.name for f in dataclasses.fields(InstanceArgs)}
    assert not missing, f"generator defaults without an InstanceArgs flag: {sorted(missing)}"
