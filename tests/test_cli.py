"""The ``simcomm`` command (simcomm.cli)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

import simcomm
from simcomm.cli import main
from simcomm.scenarios import get

SUMMARY_KEYS = {"requests", "completed", "failed", "mean_latency", "p50", "p95", "p99",
                "throughput", "availability"}


def run_cli(argv: list[str]) -> int:
    """Exit status of ``simcomm argv``, whether main returns it or argparse exits."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code)


def one_error_line(capsys) -> str:
    out = capsys.readouterr()
    assert out.out == ""
    lines = out.err.splitlines()
    assert len(lines) == 1, out.err
    assert lines[0].startswith("simcomm: error: ")
    return lines[0]


# -- list and describe ---------------------------------------------------------------------

def test_list(capsys):
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == simcomm.scenarios()
    for line in lines:
        assert get(line.split()[0]).title in line


@pytest.mark.parametrize("name", simcomm.scenarios())
def test_describe(capsys, name):
    assert main(["describe", name]) == 0
    out = capsys.readouterr().out
    sc = get(name)
    assert out.startswith(f"{name}: {sc.title}")
    for spec in sc.fields():
        assert spec.name in out
        assert spec.allowed() in out


# -- run -----------------------------------------------------------------------------------

def test_run_json(capsys):
    assert main(["run", "mmc", "--set", "servers=3", "--json"]) == 0
    out = capsys.readouterr().out
    summary = json.loads(out)
    assert SUMMARY_KEYS.issubset(summary)
    expected = simcomm.run("mmc", servers=3).summary()  # seed 0, default until
    assert summary == pytest.approx(expected)


def test_run_with_seed_until_and_several_sets(capsys):
    argv = ["run", "mmc", "--seed", "4", "--until", "300", "--set", "servers=2",
            "--set", "arrival_rate=1.5", "--set", "service_distribution=constant", "--json"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    expected = simcomm.run("mmc", seed=4, until=300, servers=2, arrival_rate=1.5,
                           service_distribution="constant").summary()
    assert summary == pytest.approx(expected)


def test_run_json_has_null_for_nan(capsys):
    assert main(["run", "mmc", "--until", "0.001", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["requests"] == 0
    assert summary["mean_latency"] is None and summary["availability"] is None


def test_run_table(capsys):
    assert main(["run", "chain", "--until", "20", "--set", "depth=2"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "chain seed=0 until=20s"
    keys = [line.split()[0] for line in lines[1:]]
    assert SUMMARY_KEYS.issubset(keys)


def test_run_out_writes_the_report(capsys, tmp_path):
    out = tmp_path / "report"
    assert main(["run", "mmc", "--until", "200", "--set", "arrival_rate=0.5", "--json",
                 "--out", str(out)]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert json.loads((out / "summary.json").read_text()) == summary
    with (out / "requests.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == summary["requests"]
    assert list(rows[0]) == ["request_id", "client", "target", "start", "end", "outcome",
                             "latency", "hops"]
    for view in (*get("mmc").views, "topology", "sequence_diagram"):
        png = out / f"{view}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", view
        assert f"wrote {png}" in captured.err


# -- errors: one line, exit 2, before anything runs ------------------------------------------

@pytest.mark.parametrize(("argv", "names"), [
    (["run", "nosuch"], ["scenario", "nosuch", "mmc"]),
    (["describe", "nosuch"], ["scenario", "nosuch"]),
    (["run", "mmc", "--set", "serverz=3"], ["serverz", "servers"]),
    (["run", "mmc", "--set", "servers=abc"], ["servers", "abc", "whole number"]),
    (["run", "mmc", "--set", "servers=0"], ["servers", "0", "from 1 to 64"]),
    (["run", "mmc", "--set", "servers=2.5"], ["servers", "2.5"]),
    (["run", "mmc", "--set", "arrival_rate=-1"], ["arrival_rate", "-1"]),
    (["run", "mmc", "--set", "service_distribution=pareto"], ["service_distribution",
                                                              "pareto", "exponential"]),
    (["run", "chain", "--set", "last_service_hangs=maybe"], ["last_service_hangs", "maybe"]),
    (["run", "mmc", "--set", "servers"], ["--set", "FIELD=VALUE"]),
    (["run", "mmc", "--until", "-1"], ["until", "-1"]),
    (["run", "mmc", "--seed", "-1"], ["seed", "-1"]),
    (["run", "mmc", "--until", "abc"], ["--until", "abc"]),
    (["run", "mmc", "--seed", "x"], ["--seed", "x"]),
    (["run", "mmc", "--colour"], ["--colour"]),
    (["frobnicate"], ["frobnicate"]),
    ([], ["command"]),
])
def test_errors_are_one_line_and_exit_2(capsys, monkeypatch, argv, names):
    from simcomm import api

    def forbidden(*args, **kwargs):
        raise AssertionError("a World was built for bad input")

    monkeypatch.setattr(api, "World", forbidden)
    assert run_cli(argv) == 2
    line = one_error_line(capsys)
    for name in names:
        assert name in line, (name, line)


# -- the installed command -----------------------------------------------------------------

def test_command_line_process():
    proc = subprocess.run(
        [sys.executable, "-m", "simcomm.cli", "run", "mmc", "--set", "servers=3", "--json"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert SUMMARY_KEYS.issubset(summary)
    assert summary["availability"] == 1.0
    assert summary == pytest.approx(simcomm.run("mmc", servers=3).summary())


def test_command_line_process_error():
    proc = subprocess.run(
        [sys.executable, "-m", "simcomm.cli", "run", "mmc", "--set", "servers=0"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "servers" in proc.stderr
