"""The ``simcomm`` command (simcomm.cli and ``python -m simcomm``)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import warnings

import pytest

import simcomm
from simcomm import api, cli, guard
from simcomm.cli import main
from simcomm.errors import RunTooLarge, SimcommWarning
from simcomm.result import SUMMARY_HELP, SUMMARY_UNITS
from simcomm.scenarios import get

SUMMARY_KEYS = {"requests", "completed", "failed", "mean_latency", "p50", "p95", "p99",
                "throughput", "availability"}

#: An M/M/1 queue offered twice what it can serve: most requests end pending.
OVERLOADED = ["run", "mmc", "--until", "500", "--set", "arrival_rate=2",
              "--set", "service_rate=1", "--set", "servers=1"]


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


@pytest.fixture
def no_world(monkeypatch):
    """Fail the test if a World is built: bad input must be refused before time zero."""

    def forbidden(*args, **kwargs):
        raise AssertionError("a World was built for bad input")

    monkeypatch.setattr(api, "World", forbidden)


@pytest.fixture
def run_calls(monkeypatch):
    """The keyword arguments of every ``api.run`` the CLI makes (the run still happens)."""
    calls: list[dict] = []
    real = api.run

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(api, "run", spy)
    return calls


# -- help, version, list and describe ------------------------------------------------------

def test_no_arguments_prints_help_and_exits_0(capsys):
    assert run_cli([]) == 0
    out = capsys.readouterr()
    assert out.out.startswith("usage: simcomm")
    for command in cli.COMMANDS:
        assert command in out.out
    assert out.err == ""


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["describe", "-h"],
                                  ["list", "-h"]])
def test_help_of_every_command(capsys, argv):
    assert run_cli(argv) == 0
    out = capsys.readouterr()
    assert out.out.startswith("usage: simcomm") and out.err == ""


def test_run_help_says_what_out_overwrites_and_the_memory_budget_default(capsys):
    assert run_cli(["run", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "in an existing directory these files are overwritten" in text
    assert (f"${guard.BUDGET_ENV}, else {guard.BUDGET_SHARE:.0%} of this machine's memory"
            in text)


def test_version(capsys):
    assert run_cli(["--version"]) == 0
    assert capsys.readouterr().out == f"simcomm {simcomm.__version__}\n"


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
    rows = {line.split()[0]: line for line in out.split("\n\n", 2)[-1].splitlines()}
    for spec in sc.fields():
        assert spec.allowed() in rows[spec.name]


@pytest.mark.parametrize("name", simcomm.scenarios())
def test_describe_lists_seed_and_until_with_the_scenarios_duration(capsys, name):
    """seed and until are not fields but every run has them: describe shows their defaults."""
    assert main(["describe", name]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line}
    assert "default 0;" in rows["seed"] and "--seed" in rows["seed"]
    assert f"default {get(name).until:g} s;" in rows["until"] and "--until" in rows["until"]


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


def test_choices_ignore_case(capsys):
    """``--set message_format=JSON`` is json (the same run, not an error)."""
    assert main(["run", "chain", "--until", "5", "--set", "message_format=JSON", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary == pytest.approx(
        simcomm.run("chain", until=5, message_format="json").summary())


def test_a_whole_float_seed_is_a_seed(capsys):
    assert main(["run", "mmc", "--seed", "3.0", "--until", "50", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary == pytest.approx(simcomm.run("mmc", seed=3, until=50).summary())


def test_run_json_has_null_for_nan(capsys):
    assert main(["run", "mmc", "--until", "0.001", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["requests"] == 0
    assert summary["mean_latency"] is None and summary["availability"] is None


def test_run_table_shows_units_and_what_availability_counts(capsys):
    assert main(["run", "chain", "--until", "20", "--set", "depth=2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "chain seed=0 until=20s"
    summary = simcomm.run("chain", until=20, depth=2).summary()
    rows = {line.split()[0].rstrip("*"): line.split()[1:] for line in lines[1:len(summary) + 1]}
    assert list(rows) == list(summary)
    assert SUMMARY_KEYS.issubset(rows)
    assert rows["mean_latency"][-1] == SUMMARY_UNITS["mean_latency"] == "s"
    assert rows["throughput"][-1] == SUMMARY_UNITS["throughput"] == "req/s"
    assert rows["requests"] == [str(summary["requests"])]  # a count has no unit
    # a fraction is also given in per cent
    assert rows["availability"] == [f"{summary['availability']:.6g}",
                                    f"({summary['availability'] * 100:.1f}", "%)"]
    assert lines[len(summary) + 1] == f"* availability: {SUMMARY_HELP['availability']}"
    assert len(lines) == len(summary) + 2


def test_a_key_without_a_unit_prints_bare(capsys, monkeypatch):
    """A summary key SUMMARY_UNITS does not know (yet) is printed without one."""
    monkeypatch.setattr(cli, "SUMMARY_UNITS", {})
    assert main(["run", "mmc", "--until", "50"]) == 0
    rows = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines()[1:])
    summary = simcomm.run("mmc", until=50).summary()
    assert rows["mean_latency"] == cli._fmt(summary["mean_latency"])


def test_a_terminal_gets_a_progress_bar_and_the_cli_prints_warnings_itself(
        capsys, monkeypatch, run_calls):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(["run", "mmc", "--until", "50"]) == 0
    assert run_calls[0]["progress"] is None  # None: a tqdm bar for runs over ~2 s
    assert run_calls[0]["warn"] is False
    assert run_calls[0]["trace"] is True and run_calls[0]["memory_budget"] is None


def test_a_log_file_gets_no_progress_bar(capsys, run_calls):
    """stderr redirected to a file: no bar redraws around the one-line messages."""
    assert main(["run", "mmc", "--until", "50"]) == 0
    assert run_calls[0]["progress"] is False


def test_no_trace_runs_without_the_message_trace(capsys, run_calls):
    assert main(["run", "mmc", "--until", "200", "--no-trace", "--json"]) == 0
    assert run_calls[0]["trace"] is False
    summary = json.loads(capsys.readouterr().out)
    assert summary == pytest.approx(simcomm.run("mmc", until=200, trace=False).summary())


@pytest.mark.parametrize(("text", "size"), [
    ("4G", 4 << 30), ("512m", 512 << 20), ("1.5GiB", 3 << 29), ("2TB", 2 << 40),
    ("20000000", 20_000_000), ("65536k", 64 << 20),
])
def test_memory_budget_sizes(capsys, run_calls, text, size):
    assert main(["run", "mmc", "--until", "10", "--memory-budget", text]) == 0
    assert run_calls[0]["memory_budget"] == size


def test_a_run_over_the_memory_budget_is_refused_in_one_line(capsys, no_world):
    assert run_cli(["run", "mmc", "--until", "1e6", "--memory-budget", "1K"]) == 2
    line = one_error_line(capsys)
    assert "--memory-budget" in line or "memory_budget" in line, line


# -- an overloaded run says so -------------------------------------------------------------

def test_an_overloaded_run_warns_in_one_line_on_stderr(capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("error", SimcommWarning)  # the CLI prints, it does not warn
        assert main([*OVERLOADED, "--json"]) == 0
    out = capsys.readouterr()
    summary = json.loads(out.out)
    res = simcomm.run("mmc", until=500, arrival_rate=2, service_rate=1, servers=1, warn=False)
    assert summary == pytest.approx(res.summary())
    sentences = res.warnings()
    assert sentences
    assert out.err.splitlines() == [f"simcomm: warning: {' '.join(sentences)}"]


def test_a_healthy_run_prints_nothing_on_stderr(capsys):
    assert main(["run", "mmc", "--until", "500"]) == 0
    assert capsys.readouterr().err == ""


# -- Ctrl-C --------------------------------------------------------------------------------

def test_ctrl_c_is_one_line_and_exit_130(capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "run", interrupted)
    assert main(["run", "mmc", "--until", "1e7"]) == 130
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.splitlines() == ["simcomm: interrupted"]


def test_ctrl_c_says_how_far_the_run_got(capsys, monkeypatch):
    """api.run puts the simulated time reached on the KeyboardInterrupt; the line shows it."""
    def interrupted(*args, **kwargs):
        exc = KeyboardInterrupt()
        exc.simcomm_time = 1234.5
        raise exc

    monkeypatch.setattr(api, "run", interrupted)
    assert main(["run", "mmc", "--until", "1e7"]) == 130
    assert capsys.readouterr().err == "simcomm: interrupted at t=1234.5s of simulated time\n"


CHILD = """\
import sys
from simcomm.cli import main
print("ready", flush=True)
sys.exit(main(sys.argv[1:]))
"""


def test_ctrl_c_in_a_real_run_ends_it_with_one_line():
    """SIGINT to a process in the middle of a long run: one line, exit 130, no traceback."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, "run", "mmc", "--until", "1e7", "--no-trace",
         "--memory-budget", "1T"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        time.sleep(1.5)  # well into the run: it takes minutes
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("simcomm: interrupted at t=")
    assert lines[0].endswith("s of simulated time")


# -- --out ---------------------------------------------------------------------------------

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
    assert list(rows[0])[:9] == ["request_id", "client", "target", "start", "end",
                                 "outcome", "endpoint", "latency", "hops"]
    for view in (*get("mmc").views, "topology", "sequence_diagram"):
        png = out / f"{view}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", view
        assert f"wrote {png}" in captured.err
    # a folder the command made is kept out of git
    assert (out / ".gitignore").read_text().splitlines()[-1] == "*"


def test_run_out_into_an_existing_directory_overwrites_its_report(capsys, tmp_path):
    (tmp_path / "summary.json").write_text("old")
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["run", "mmc", "--until", "50", "--json", "--out", str(tmp_path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert (tmp_path / "notes.txt").read_text() == "mine"
    # someone else's folder (maybe a git work tree) gets no .gitignore
    assert not (tmp_path / ".gitignore").exists()


def test_run_out_without_a_trace_leaves_out_the_sequence_diagram(capsys, tmp_path):
    assert main(["run", "mmc", "--until", "50", "--no-trace", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "summary.json").exists() and (tmp_path / "topology.png").exists()
    assert not (tmp_path / "sequence_diagram.png").exists()


def test_out_that_is_an_existing_file_is_refused_before_the_run(capsys, tmp_path, no_world):
    report = tmp_path / "report.txt"
    report.write_text("keep me")
    assert run_cli(["run", "mmc", "--out", str(report)]) == 2
    line = one_error_line(capsys)
    assert "--out" in line and str(report) in line and "existing file" in line
    assert report.read_text() == "keep me"


def test_out_under_a_file_is_refused_before_the_run(capsys, tmp_path, no_world):
    """A path below a regular file cannot be made (not even by root)."""
    (tmp_path / "a-file").write_text("")
    target = tmp_path / "a-file" / "sub" / "report"
    assert run_cli(["run", "mmc", "--out", str(target)]) == 2
    line = one_error_line(capsys)
    assert str(target) in line and "a-file is a file" in line


@pytest.mark.parametrize("exists", [True, False])
def test_out_where_one_cannot_write_is_refused_before_the_run(capsys, tmp_path, monkeypatch,
                                                              no_world, exists):
    # tests run as root, who may write anywhere: pretend the permission is missing
    monkeypatch.setattr(cli.os, "access", lambda path, mode: False)
    target = tmp_path if exists else tmp_path / "new"
    assert run_cli(["run", "mmc", "--out", str(target)]) == 2
    line = one_error_line(capsys)
    assert "--out" in line and ("not writable" in line or "can write" in line)
    assert not (tmp_path / "new").exists()


def test_a_refused_run_creates_no_out_directory(capsys, tmp_path, no_world):
    target = tmp_path / "report"
    assert run_cli(["run", "mmc", "--set", "servers=0", "--out", str(target)]) == 2
    one_error_line(capsys)
    assert not target.exists()


# -- errors: one line, exit 2, before anything runs ------------------------------------------

@pytest.mark.parametrize(("argv", "names"), [
    (["run", "nosuch"], ["scenario", "nosuch", "mmc"]),
    (["describe", "nosuch"], ["scenario", "nosuch"]),
    (["run", "mcc"], ["scenario", "'mcc'", "did you mean 'mmc'?"]),
    (["describe", "chian"], ["did you mean 'chain'?"]),
    (["run", "mmc", "--set", "serverz=3"], ["serverz", "did you mean 'servers'?"]),
    (["run", "mmc", "--set", "servr=3"], ["servr", "did you mean 'servers'?", "arrival_rate"]),
    (["run", "mmc", "--set", "servers=abc"], ["servers", "abc", "whole number"]),
    (["run", "mmc", "--set", "servers=0"], ["servers", "0", "from 1 to 64"]),
    (["run", "mmc", "--set", "servers=2.5"], ["servers", "2.5"]),
    (["run", "mmc", "--set", "arrival_rate=-1"], ["arrival_rate", "-1"]),
    (["run", "mmc", "--set", "service_distribution=pareto"], ["service_distribution",
                                                              "pareto", "exponential"]),
    (["run", "chain", "--set", "message_format=jsn"], ["message_format", "jsn",
                                                       "did you mean 'json'?"]),
    (["run", "chain", "--set", "depth=0"], ["depth", "0"]),
    (["run", "chain", "--set", "last_service_hangs=maybe"], ["last_service_hangs", "maybe"]),
    (["run", "mmc", "--set", "servers"], ["--set", "FIELD=VALUE"]),
    (["run", "mmc", "--set", "x"], ["--set", "'x'", "FIELD=VALUE"]),
    (["run", "mmc", "--set", "=3"], ["--set", "FIELD=VALUE"]),
    (["run", "mmc", "--until", "-1"], ["until", "-1"]),
    (["run", "mmc", "--until", "0"], ["until", "0", "> 0"]),
    (["run", "mmc", "--until", "1e400"], ["--until", "1e400", "too large"]),
    (["run", "mmc", "--until", "inf"], ["until", "inf"]),
    (["run", "mmc", "--until", "nan"], ["until", "nan"]),
    (["run", "mmc", "--until", "abc"], ["--until", "abc"]),
    (["run", "mmc", "--until", "1e308"], ["until", "memory budget", "--memory-budget"]),
    (["run", "mmc", "--until", "1e9", "--memory-budget", "4G"], ["until", "until <= "]),
    (["run", "mmc", "--set", "arrival_rate=1000", "--set", "service_rate=0.01",
      "--memory-budget", "4G"], ["until", "pile up", "--memory-budget"]),
    (["run", "mmc", "--seed", "-1"], ["seed", "-1"]),
    (["run", "mmc", "--seed", "x"], ["--seed", "'x'", "whole number"]),
    (["run", "mmc", "--seed", "1.5"], ["--seed", "1.5"]),
    (["run", "mmc", "--memory-budget", "lots"], ["--memory-budget", "lots", "4G"]),
    (["run", "mmc", "--memory-budget", "0"], ["--memory-budget", "'0'"]),
    (["run", "mmc", "--colour"], ["--colour"]),
    (["run", "mmc", "--sed", "3"], ["--sed", "did you mean '--seed'?"]),
    (["run"], ["scenario"]),
    (["rn", "mmc"], ["'rn'", "did you mean 'run'?", "list, describe, run"]),
    (["frobnicate"], ["frobnicate", "list, describe, run"]),
])
def test_errors_are_one_line_and_exit_2(capsys, no_world, argv, names):
    assert run_cli(argv) == 2
    line = one_error_line(capsys)
    for name in names:
        assert name in line, (name, line)


def test_run_too_large_is_one_line(capsys, monkeypatch):
    def too_large(*args, **kwargs):
        raise RunTooLarge("until", 1e9, "at most 1e6 s, or --no-trace,\nor a larger "
                          "--memory-budget")

    monkeypatch.setattr(api, "run", too_large)
    assert run_cli(["run", "mmc", "--until", "1e9"]) == 2
    line = one_error_line(capsys)
    assert line == ("simcomm: error: until=1000000000.0 is not allowed: at most 1e6 s, or "
                    "--no-trace, or a larger --memory-budget")


# -- the installed command -----------------------------------------------------------------

def python_m_simcomm(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "simcomm", *argv], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "COLUMNS": "100"})


def test_python_m_simcomm_runs():
    proc = python_m_simcomm("run", "mmc", "--set", "servers=3", "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert SUMMARY_KEYS.issubset(summary)
    assert summary["availability"] == 1.0
    assert summary == pytest.approx(simcomm.run("mmc", servers=3).summary())


def test_python_m_simcomm_without_arguments_prints_help():
    proc = python_m_simcomm()
    assert proc.returncode == 0
    assert proc.stdout.startswith("usage: simcomm") and proc.stderr == ""


@pytest.mark.parametrize("argv", [("run", "nosuch"), ("run", "mmc", "--set", "servers=0"),
                                  ("run", "mmc", "--until", "1e400")])
def test_python_m_simcomm_error_is_one_line(argv):
    proc = python_m_simcomm(*argv)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("simcomm: error: ")
    assert "Traceback" not in proc.stderr


def test_the_old_module_path_still_works():
    proc = subprocess.run([sys.executable, "-m", "simcomm.cli", "--version"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout == f"simcomm {simcomm.__version__}\n"


# -- simcomm sweep -------------------------------------------------------------------------------

#: ``simcomm sweep chain --grid depth=1,2,3 --reps 5`` (the issue's command) with
#: runs of 1 simulated second instead of chain's 100, to stay cheap.
SWEEP = ["sweep", "chain", "--grid", "depth=1,2,3", "--reps", "5", "--until", "1"]


def test_sweep_prints_mean_and_interval_per_combination(capsys):
    from simcomm.sweeps import summarize, sweep

    assert run_cli(SWEEP) == 0
    out = capsys.readouterr()
    assert out.err == ""  # no bar in a log, no warning for a healthy chain
    lines = out.out.splitlines()
    assert lines[0] == "chain: 3 combinations × 5 replications = 15 runs of 1s, root seed 0"
    assert lines[1] == ("mean ± half-width of the 95 % confidence interval (Student t, "
                        "4 degrees of freedom)")
    assert lines[2].split() == ["depth", "mean_latency", "(s)", "p99", "(s)", "availability",
                                "(%)", "throughput", "(req/s)"]
    assert [line.split()[0] for line in lines[3:]] == ["1", "2", "3"]
    runs = sweep("chain", {"depth": [1, 2, 3]}, replications=5, until=1, progress=False)
    p99 = summarize(runs, ["p99"]).iloc[1]  # depth 2
    assert (f"{p99['mean']:.4g} ± {(p99['ci_high'] - p99['ci_low']) / 2:.2g}"
            in lines[4])


def test_sweep_with_metrics_fields_read_like_set_and_one_replication(capsys):
    assert run_cli(["sweep", "chain", "--grid", "message_format=JSON,xml", "--until", "1",
                    "--metric", "p95", "--metric", "messages_sent", "--set", "depth=2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "chain: 2 combinations × 1 replication = 2 runs of 1s, root seed 0"
    assert "one run per combination" in lines[1]
    assert lines[2].split() == ["message_format", "p95", "(s)", "messages_sent"]
    assert [line.split()[0] for line in lines[3:]] == ["json", "xml"]
    assert "±" not in "".join(lines[3:])


def test_sweep_help_names_the_grid_the_workers_and_the_out_file(capsys):
    assert run_cli(["sweep", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for words in ("--grid FIELD=V1,V2,...", "--reps N", "--workers N", "--scheduler ADDRESS",
                  "FILE.csv or FILE.parquet", "--no-progress"):
        assert words in text, words


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_sweep_out_writes_the_runs_table(capsys, tmp_path, suffix):
    import pandas as pd

    from simcomm.sweeps import sweep

    path = tmp_path / f"runs{suffix}"
    assert run_cli(["sweep", "chain", "--grid", "depth=1,2", "--reps", "2", "--until", "1",
                    "--out", str(path)]) == 0
    assert f"wrote {path} (4 runs)" in capsys.readouterr().err
    back = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    runs = sweep("chain", {"depth": [1, 2]}, replications=2, until=1, progress=False)
    assert list(back.columns) == list(runs.columns)
    pd.testing.assert_frame_equal(back[["depth", "replication", "seed", "p99"]],
                                  runs[["depth", "replication", "seed", "p99"]])


def test_sweep_on_local_processes_prints_the_same_table(capsys):
    argv = ["sweep", "chain", "--grid", "depth=1,2", "--reps", "2", "--until", "1"]
    assert run_cli(argv) == 0
    here = capsys.readouterr().out
    assert run_cli([*argv, "--workers", "2"]) == 0
    assert capsys.readouterr().out == here


def test_sweep_says_which_combinations_were_overloaded(capsys):
    assert run_cli(["sweep", "mmc", "--grid", "arrival_rate=0.5,2", "--reps", "2",
                    "--until", "200", "--set", "service_rate=1"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err == ["simcomm: warning: 2 of 4 runs were overloaded (stable=False), so their "
                   "means describe a growing backlog, not a steady state: arrival_rate=2 "
                   "(2 of 2)"]


@pytest.mark.parametrize(("argv", "names"), [
    (["sweep", "chian"], ["scenario", "did you mean 'chain'?"]),
    (["sweep", "chain", "--grid", "dept=1,2"], ["dept", "did you mean 'depth'?"]),
    (["sweep", "chain", "--grid", "depth=1,x"], ["depth", "'x'", "whole number"]),
    (["sweep", "chain", "--grid", "depth=1,0"], ["depth", "0"]),
    (["sweep", "chain", "--grid", "depth"], ["--grid", "FIELD=V1,V2"]),
    (["sweep", "chain", "--grid", "depth="], ["--grid", "FIELD=V1,V2"]),
    (["sweep", "chain", "--grid", "depth=1", "--grid", "depth=2"], ["--grid", "once"]),
    (["sweep", "chain", "--grid", "depth=1,2", "--set", "depth=2"], ["depth", "swept"]),
    (["sweep", "chain", "--set", "servce_time=1"], ["servce_time", "did you mean"]),
    (["sweep", "chain", "--metric", "p98"], ["metrics", "did you mean 'p99'?"]),
    (["sweep", "chain", "--reps", "0"], ["--reps", "'0'"]),
    (["sweep", "chain", "--until", "0"], ["until", "> 0"]),
    (["sweep", "chain", "--seed", "-1"], ["seed", "-1"]),
    (["sweep", "chain", "--out", "runs.txt"], ["--out", ".csv or .parquet"]),
    (["sweep", "chain", "--out", "no/such/dir/runs.csv"], ["--out", "existing directory"]),
    (["sweep", "chain", "--workers", "0"], ["--workers", "'0'"]),
    (["sweep", "chain", "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"],
     ["--scheduler", "not allowed with argument --workers"]),
])
def test_sweep_errors_are_one_line_and_exit_2_before_any_run(capsys, no_world, argv, names):
    assert run_cli(argv) == 2
    line = one_error_line(capsys)
    for name in names:
        assert name in line, (name, line)


@pytest.mark.parametrize(("argv", "package"), [
    (["--scheduler", "tcp://127.0.0.1:8786"], "distributed"),
    (["--out", "runs.parquet"], "pyarrow"),
])
def test_sweep_names_the_missing_extra_before_any_run(capsys, no_world, monkeypatch, argv,
                                                     package):
    real = cli.importlib.util.find_spec
    monkeypatch.setattr(cli.importlib.util, "find_spec",
                        lambda name, *a: None if name == package else real(name, *a))
    assert run_cli(["sweep", "chain", *argv]) == 2
    line = one_error_line(capsys)
    assert package in line and "pip install 'simcomm[" in line
