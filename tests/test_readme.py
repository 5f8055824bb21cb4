"""Every README snippet runs: the Python blocks are executed, every command line is parsed by its job.

The Python blocks outside the "gymnax" section run here in order, in one namespace and in a
fresh folder (tests/test_gymnax.py runs the gymnax section's blocks). The shell blocks' command
lines (`jaxcpn <job> ...`, `python scripts/<job>.py ...`) are parsed by the job's own parser, so
a renamed or removed flag fails here; running them is the jobs' own tests' business (and minutes).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def sections() -> list[tuple[str, str]]:
    """``(heading, text)`` of every ``## `` section."""
    parts = re.split(r"^## (.+)$", README, flags=re.M)
    return [("", parts[0])] + list(zip(parts[1::2], parts[2::2]))


def blocks(language: str, skip: tuple[str, ...] = ()) -> list[str]:
    return [block for heading, text in sections() if heading not in skip
            for block in re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)]


def parser(job: str):
    """The argument parser of a job (what its ``main`` parses first)."""
    import tyro

    from agents.stper import figures as stper_figures, scan as stper_scan, train as stper_train
    from agents import where_learning_pays
    from agents.ttosc import figures as ttosc_figures, scan as ttosc_scan, train as ttosc_train

    return {
        "train-stper": stper_train.parse_config, "train-ttosc": ttosc_train.parse_config,
        "reproduce-stper": stper_figures.parse_config, "reproduce-ttosc": ttosc_figures.parse_config,
        "scan-stper": lambda argv: tyro.cli(stper_scan.ScanConfig, args=argv),
        "scan-ttosc": lambda argv: tyro.cli(ttosc_scan.ScanConfig, args=argv),
        "where-learning-pays": where_learning_pays.parse_config,
    }[job]


SCRIPTS = {"train_stper.py": "train-stper", "train_ttosc.py": "train-ttosc", "reproduce_stper.py": "reproduce-stper",
           "reproduce_ttosc.py": "reproduce-ttosc"}


def commands() -> list[tuple[str, list[str]]]:
    """``(job, argv)`` of every job command line in the README's shell blocks."""
    found = []
    for block in blocks("bash"):
        for line in block.splitlines():
            for segment in line.split("#")[0].split("&&"):
                words = [w for w in shlex.split(segment) if "=" not in w.split("/")[0] or w.startswith("--")]
                if words[:1] == ["jaxcpn"] and len(words) > 1:
                    found.append((words[1], words[2:]))
                elif words[:1] == ["python"] and len(words) > 1 and words[1].startswith("scripts/"):
                    name = words[1].split("/")[-1]
                    if name in SCRIPTS:
                        found.append((SCRIPTS[name], words[2:]))
                    elif name == "scan.py":
                        job = "scan-ttosc" if words[2:3] == ["ttosc"] else "scan-stper"
                        found.append((job, words[3:] if words[2:3] in (["ttosc"], ["stper"]) else words[2:]))
    return found


def test_the_readme_has_snippets():
    assert len(blocks("python", skip=("gymnax",))) >= 4 and len(commands()) >= 10


@pytest.mark.timeout(400)
def test_python_snippets_run_and_command_lines_parse(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                      # snippets may write files (data/)
    namespace: dict = {}
    for index, block in enumerate(blocks("python", skip=("gymnax",))):
        exec(compile(block, f"README.md python block {index}", "exec"), namespace)  # noqa: S102
    assert (tmp_path / "data" / "entsoe_day_ahead_synthetic.csv").exists()
    for job, argv in commands():
        if job in ("evaluate-stper", "evaluate-ttosc", "evaluate-cpn", "plot-stper-curves"):
            continue  # need a run folder of their own; their tests run them
        try:
            parser(job)(argv)
        except SystemExit as error:                   # tyro reports a bad flag this way
            pytest.fail(f"README command `jaxcpn {job} {' '.join(argv)}` does not parse (exit {error.code})")
