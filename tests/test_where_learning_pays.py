"""jaxcpn where-learning-pays --quick: every (setting, method) row, paired differences, resume, bad settings."""

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from agents import where_learning_pays as wlp

QUICK = wlp.PRESETS["quick"]


def read(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


# One xdist worker runs the module (--dist loadgroup, pyproject.toml): its fixture is built once.
pytestmark = pytest.mark.xdist_group("where-learning-pays")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("where-learning-pays")
    assert wlp.main(["--quick", "--out", str(out), "--run-dir", str(out / "units")]) == 0
    return out


def expected_methods(env: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(learned, baselines) of the quick preset; the CPN MPC only where the baselines module has it."""
    if env == "cpn":
        return QUICK.cpn_variants, tuple(b for b in QUICK.cpn_baselines if b in wlp.CPN_POLICIES)
    return ("TTOSC",), wlp.MEC_BASELINES + (("Bound",) if QUICK.mec_bound else ())


@pytest.mark.parametrize("env, specs, parse, metric, myopic, mpc, better", [
    ("cpn", QUICK.cpn_settings, wlp.CPNSetting.parse, "slot_profit", wlp.CPN_MYOPIC, "mpc", max),
    ("mec", QUICK.mec_settings, wlp.MECSetting.parse, "mean_delay", wlp.MEC_MYOPIC, "MPC", min),
])
def test_every_setting_and_method_has_finite_paired_rows(quick_run, env, specs, parse, metric, myopic, mpc, better):
    rows = read(quick_run / f"where_learning_pays_{env}.csv")
    assert (quick_run / f"where_learning_pays_{env}.png").stat().st_size > 10_000
    learned, baselines = expected_methods(env)
    labels = [parse(spec).label for spec in specs]
    assert list(dict.fromkeys(r["setting"] for r in rows)) == labels
    for label in labels:
        here = [r for r in rows if r["setting"] == label]
        assert [r["method"] for r in here if r["method"] in baselines] == list(baselines)
        for method in learned:
            assert [r["seed"] for r in here if r["method"] == method] == [str(s) for s in range(QUICK.num_seeds)]
        assert {r["method"] for r in here} == set(learned) | set(baselines)
        value = {r["method"]: float(r[metric]) for r in here if r["seed"] in ("", "0")}
        best = better((m for m in myopic), key=lambda m: value[m])
        for r in here:
            assert math.isfinite(float(r[metric])) and math.isfinite(float(r["seconds"])), r
            assert r["best_myopic"] == best
            # paired: the row's own value minus the reference's on the same episodes (CSV: 6 digits)
            assert float(r["minus_best_myopic"]) == pytest.approx(float(r[metric]) - value[best], abs=1e-3)
            if mpc in baselines:
                assert float(r["minus_mpc"]) == pytest.approx(float(r[metric]) - value[mpc], abs=1e-3)
        if env == "mec":
            coupling = {float(r["coupling"]) for r in here}
            assert len(coupling) == 1 and coupling.pop() > 0  # switching on: a download takes time
            if "Bound" in baselines:
                assert value["Bound"] <= min(v for m, v in value.items() if m != "Bound")


def test_a_rerun_loads_every_unit_and_trains_nothing(quick_run, tmp_path, monkeypatch, capsys):
    def no_work(*args, **kwargs):
        raise AssertionError("a saved unit was computed again")

    for name in ("make_trainer", "make_ddqn_trainer", "rollout_cpn", "evaluation_lower_bound"):
        monkeypatch.setattr(wlp, name, no_work)
    monkeypatch.setattr(wlp.mb, "evaluate_policy", no_work)
    capsys.readouterr()
    assert wlp.main(["--quick", "--out", str(tmp_path), "--run-dir", str(quick_run / "units")]) == 0
    assert "0 units computed" in capsys.readouterr().out
    for env in wlp.ENVS:
        name = f"where_learning_pays_{env}.csv"
        assert (tmp_path / name).read_text() == (quick_run / name).read_text()


@pytest.mark.parametrize("kwargs, message", [
    (dict(cpn_settings=("sharing=maybe",)), "--cpn-settings entry 'sharing=maybe' is invalid: sharing='maybe' must be on or off"),
    (dict(cpn_settings=("load=-1",)), "load='-1' must be a number > 0"),
    (dict(cpn_settings=("power=2",)), "'power=2' is not key=value with a known key"),
    (dict(cpn_settings=("sharing=on", "sharing=on,load=1")), "must be one or more distinct settings"),
    (dict(mec_settings=("cycle=1",)), "cycle='1' must be a number in [0, 1)"),
    (dict(mec_settings=("backhaul=0.5",)), "backhaul only acts with switching=on"),
    (dict(mec_settings=("switching=on,switching=off",)), "switching is given twice"),
    (dict(cpn_variants=("stper-x",)), "--cpn-variants=('stper-x',) is invalid"),
])
def test_a_bad_setting_is_a_clear_value_error(kwargs, message):
    with pytest.raises(ValueError) as error:
        wlp.WhereConfig(**kwargs)
    assert message in str(error.value)


def test_a_bad_setting_on_the_command_line_exits_naming_it(capsys):
    with pytest.raises(SystemExit) as error:  # tyro prints the ValueError and exits with 2
        wlp.parse_config(["--quick", "--mec-settings", "switching=sometimes"])
    assert error.value.code == 2
    captured = capsys.readouterr()
    text = " ".join((captured.out + captured.err).replace("│", " ").split())  # tyro boxes and wraps it
    assert "--mec-settings entry 'switching=sometimes' is invalid: switching='sometimes' must be on or off" in text


def test_settings_read_back_and_their_coupling():
    setting = wlp.CPNSetting.parse("observe=off, load=2 ,sharing=on")
    assert setting == wlp.CPNSetting(True, 2.0, False)
    assert wlp.CPNSetting.parse(setting.label) == setting
    assert wlp.MECSetting.parse("switching=on,backhaul=0.25").label == "switching=on,backhaul=0.25,cycle=0"
    runner = wlp.MECRunner(wlp.WhereConfig(), units=None)
    on, weak = (runner.download_frames(wlp.MECSetting(True, f)) for f in (1.0, 0.25))
    assert runner.download_frames(wlp.MECSetting()) == 0.0
    assert 0.05 < on < 0.5 and weak == pytest.approx(4 * on)  # about a slot of 5 s; a quarter of the rate: 4x
    cpn = wlp.CPNRunner(wlp.WhereConfig(), units=None)
    load1, load2 = (cpn.utilisation(wlp.CPNSetting(True, f)) for f in (1.0, 2.0))
    assert 0.2 < load1 < 0.5 and load2 == pytest.approx(2 * load1, rel=1e-5)
    assert cpn.utilisation(wlp.CPNSetting()) == 0.0
    assert np.allclose(np.asarray(cpn.params(wlp.CPNSetting(load=2.0)).workload_noise),
                       2 * np.asarray(cpn.params(wlp.CPNSetting()).workload_noise))
