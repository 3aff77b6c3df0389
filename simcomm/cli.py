"""The ``simcomm`` command: list, describe, run and sweep scenarios.

    simcomm list
    simcomm describe chain
    simcomm run mmc --seed 1 --until 10000 --set servers=3 --json
    simcomm run chain --out report/
    simcomm delivery-matrix --seeds 3 --json
    simcomm sweep chain --grid depth=1,2,3 --reps 5
    simcomm sweep chain --grid depth=1,2,3 --grid request_rate=5,10 --reps 20 \
        --workers 4 --out runs.parquet
    python -m simcomm run mmc --until 1e6 --no-trace

Every mistake a user can make on the command line -- a wrong scenario,
field or value, a mistyped command, an ``--out`` that is a file or cannot
be written, a run too large for the memory budget -- prints one line naming
it and what is allowed (with "did you mean ..." for a near miss) and exits
with status 2 before anything runs.  A finished run that was overloaded
says so in one ``simcomm: warning:`` line on stderr; Ctrl-C ends a run
with one ``simcomm: interrupted`` line and status 130.  In a terminal, a
run that takes more than a couple of seconds shows a progress bar.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from simcomm import __version__, api, guard
from simcomm.engine.randomness import SEED_ALLOWED
from simcomm.errors import ParamError
from simcomm.result import SUMMARY_HELP, SUMMARY_UNITS
from simcomm.scenarios import base

__all__ = ["main"]

#: The sub-commands, in the order ``--help`` lists them.
COMMANDS = ("list", "describe", "run", "sweep", "delivery-matrix")

#: Exit status of a run ended by Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130

#: Help for the two run settings that are not scenario fields (``describe``
#: lists them beside the fields).
SEED_HELP = "root random seed: the same seed and parameters give the same run"
UNTIL_HELP = "simulated seconds to run"


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors ("simcomm: error: ...", exit 2).

    An unrecognised option is answered with the closest known one.
    """

    known_options: tuple[str, ...] = ()

    def error(self, message: str) -> NoReturn:
        prefix = "unrecognized arguments: "
        if message.startswith(prefix):
            words = message[len(prefix):].split()
            hint = base.did_you_mean(words[0], self.known_options) if words else ""
            message = f"{message}; {hint.strip()}" if hint else message
        self.exit(2, f"simcomm: error: {message}\n")


def _seed(text: str) -> int:
    """``--seed``: a whole number (``3.0`` and ``1e3`` too); its sign is checked by the run."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value.is_integer():  # nan and inf are not whole either
        raise argparse.ArgumentTypeError(f"{text!r} is not {SEED_ALLOWED}")
    return int(value)


def _seconds(text: str) -> float:
    """``--until``: a number of seconds; the run checks it is finite and > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if math.isinf(value) and "inf" not in text.lower():  # 1e400 overflowed to inf
        raise argparse.ArgumentTypeError(f"{text!r} is too large: a finite time in seconds > 0")
    return value


def _count(text: str) -> int:
    """``--seeds`` / ``--records``: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return value


def _size(text: str) -> int:
    """``--memory-budget``: bytes, or a size such as 4G (:func:`simcomm.guard.parse_size`)."""
    try:
        return guard.parse_size(text, "--memory-budget")
    except ParamError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {guard.SIZE_ALLOWED}") from None


def _parser() -> _Parser:
    p = _Parser(prog="simcomm", description="Simulate inter-process communication "
                "in microservices: run a scenario, print its summary.",
                epilog="Run 'simcomm describe SCENARIO' for its parameters.")
    p.add_argument("--version", action="version", version=f"simcomm {__version__}")
    sub = p.add_subparsers(dest="command", title="commands", metavar="COMMAND")
    sub.add_parser("list", help="list the scenarios")
    d = sub.add_parser("describe", help="show a scenario's parameters")
    d.add_argument("scenario")
    r = sub.add_parser("run", help="run a scenario and print its summary")
    r.add_argument("scenario")
    r.add_argument("--seed", type=_seed, default=0, help=f"{SEED_HELP} (default 0)")
    r.add_argument("--until", type=_seconds, default=None, metavar="SECONDS",
                   help=f"{UNTIL_HELP} (default: the scenario's; see describe)")
    r.add_argument("--set", dest="sets", action="append", default=[], metavar="FIELD=VALUE",
                   help="set a parameter; repeat for several (choices ignore case)")
    r.add_argument("--json", action="store_true", help="print the summary as JSON")
    r.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="also write the summary, request table (CSV) and figures (PNG: the "
                        "scenario's views, its topology and a sequence diagram) into DIR, "
                        "created if new; in an existing directory these files are "
                        "overwritten. Refused before the run if DIR is a file or cannot "
                        "be written")
    r.add_argument("--no-trace", dest="trace", action="store_false",
                   help="record only requests and timeline events, not every message: "
                        "faster and smaller for long runs (a report then has no sequence "
                        "diagram)")
    r.add_argument("--memory-budget", type=_size, default=None, metavar="SIZE",
                   help="refuse runs estimated to need more memory than SIZE (e.g. 4G); "
                        f"default: ${guard.BUDGET_ENV}, else {guard.BUDGET_SHARE:.0%}% of this "
                        "machine's memory")
    w = sub.add_parser("sweep", help="run a scenario over a grid of parameters and several "
                       "seeds; print each combination's mean ± confidence interval")
    w.add_argument("scenario")
    w.add_argument("--grid", dest="grids", action="append", default=[],
                   metavar="FIELD=V1,V2,...",
                   help="sweep FIELD over these values (read like --set's; choices ignore "
                        "case); repeat for several fields: every combination runs")
    w.add_argument("--reps", type=_count, default=1, metavar="N",
                   help="replications: runs of each combination, each with its own seed "
                        "(default 1; 2 or more give a confidence interval)")
    w.add_argument("--seed", type=_seed, default=0,
                   help="root seed: replication r runs with a seed derived from it, the same "
                        "in every combination (default 0)")
    w.add_argument("--until", type=_seconds, default=None, metavar="SECONDS",
                   help="simulated seconds of each run (default: the scenario's; see "
                        "describe)")
    w.add_argument("--metric", dest="metrics", action="append", default=None, metavar="NAME",
                   help="a summary key to keep and show; repeat for several (default: keep "
                        "every number, show the headline ones)")
    w.add_argument("--set", dest="sets", action="append", default=[], metavar="FIELD=VALUE",
                   help="set a parameter for every run; repeat for several")
    where = w.add_mutually_exclusive_group()
    where.add_argument("--workers", type=_count, default=None, metavar="N",
                       help="run on N local processes (default: one run after the other, "
                            "here)")
    where.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="run on a Dask cluster, e.g. tcp://10.0.0.5:8786 (needs the "
                            "distributed extra: pip install 'simcomm[distributed]')")
    w.add_argument("--out", type=Path, default=None, metavar="FILE",
                   help="also write the runs table (one row per run) to FILE.csv or "
                        "FILE.parquet (needs pyarrow); refused before the runs if it cannot "
                        "be written")
    w.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress bar (default: a bar on a terminal once the sweep takes "
                        "a couple of seconds)")
    m = sub.add_parser("delivery-matrix",
                       help="run delivery-guarantees over acks x idempotence x commit x dedup "
                            "and print lost / duplicated / reordered per 10 000 records")
    m.add_argument("--seeds", type=_count, default=3, metavar="N",
                   help="run each combination with seeds 1..N (default 3)")
    m.add_argument("--until", type=_seconds, default=20.0, metavar="SECONDS",
                   help=f"{UNTIL_HELP} per run (default 20)")
    m.add_argument("--records", type=_count, default=None, metavar="N",
                   help="events each run produces (default: 60 a simulated second)")
    m.add_argument("--json", action="store_true", help="print the table as JSON records")
    options = [o for parser in (p, d, r, w, m) for a in parser._actions
               for o in a.option_strings]
    p.known_options = tuple(dict.fromkeys(options))
    return p


def _parse_sets(scenario: base.Scenario, sets: Sequence[str]) -> dict[str, Any]:
    """``--set`` items as field values; an unknown field is left for
    :func:`~simcomm.scenarios.base.make_params` to refuse (with its did-you-mean)."""
    specs = {f.name: f for f in scenario.fields()}
    values: dict[str, Any] = {}
    for item in sets:
        name, sep, text = item.partition("=")
        name, text = name.strip(), text.strip()
        if not sep or not name:
            raise ParamError("--set", item, "FIELD=VALUE, e.g. --set servers=3")
        values[name] = base.parse_value(specs[name], text) if name in specs else text
    return values


def _check_out(out: Path) -> bool:
    """Refuse an ``--out`` that is a file or cannot be written, before the run.

    Returns whether the directory is new (to be created after the run, so a
    refused or interrupted run leaves nothing behind).
    """
    if out.is_dir():
        if not os.access(out, os.W_OK | os.X_OK):
            raise ParamError("--out", str(out), "a directory you can write to")
        return False
    if out.exists() or out.is_symlink():
        raise ParamError("--out", str(out), "a directory (new, or existing: its report "
                         "files are overwritten), not an existing file")
    ancestor = out.absolute().parent
    while not ancestor.exists():  # ends at the root, which exists
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ParamError("--out", str(out), f"a directory that can be created; {ancestor} "
                         "is a file")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ParamError("--out", str(out), f"a directory that can be created; {ancestor} "
                         "is not writable")
    return True


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.6g}"
    return str(v)


def _with_unit(key: str, value: Any) -> str:
    """``value`` with the unit of summary ``key`` ("s", "req/s"); fractions also in %."""
    text = _fmt(value)
    unit = SUMMARY_UNITS.get(key, "")
    if unit == "fraction":
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return f"{text} ({value * 100:.1f} %)" if is_number and math.isfinite(value) else text
    return f"{text} {unit}" if unit and text != "nan" else text


def _table(rows: Sequence[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def _summary_text(summary: dict[str, Any]) -> str:
    """The summary as a table with units, and a footnote saying what availability counts."""
    rows = [(k, _with_unit(k, v)) for k, v in summary.items()]
    note = SUMMARY_HELP.get("availability")
    if "availability" in summary and note:
        rows = [(k + ("*" if k == "availability" else ""), v) for k, v in rows]
        return f"{_table(rows)}\n* availability: {note}"
    return _table(rows)


def _json_safe(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in summary.items()}


def _write_report(out: Path, res: Any, new: bool) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    if new:  # a folder the CLI made is nobody's source: keep it out of git
        (out / ".gitignore").write_text("# written by simcomm run --out\n*\n")
    written = [out / "summary.json", out / "requests.csv"]
    written[0].write_text(json.dumps(_json_safe(res.summary()), indent=2) + "\n")
    res.requests.to_csv(written[1], index=False)
    from simcomm import viz

    # a report has no redraw budget: add the pictures a dashboard leaves out
    names = dict.fromkeys((*res.scenario.views, "topology", "sequence_diagram"))
    if not res.world.trace.enabled:  # it draws the traced messages
        names.pop("sequence_diagram")
    for name in names:
        fig = viz.view(name, res)
        path = out / f"{name}.png"
        fig.savefig(path, dpi=110)
        written.append(path)
        viz.close(fig)
    return written


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _interrupted(exc: KeyboardInterrupt) -> str:
    """``simcomm: interrupted``, with the simulated time reached (``api.run`` sets it)."""
    reached = getattr(exc, "simcomm_time", None)
    return "simcomm: interrupted" + (f" at t={reached:g}s of simulated time"
                                     if isinstance(reached, (int, float)) else "")


def _run(args: argparse.Namespace) -> int:
    sc = base.get(args.scenario)
    params = _parse_sets(sc, args.sets)
    new_out = _check_out(args.out) if args.out is not None else False
    # a bar (for runs over ~2 s) only where someone watches: in a log file
    # its redraws would bury the one-line warnings and errors
    progress = None if sys.stderr.isatty() else False
    res = api.run(sc, seed=args.seed, until=args.until, trace=args.trace,
                  memory_budget=args.memory_budget, progress=progress, warn=False,
                  **params)
    summary = res.summary()
    if args.json:
        print(json.dumps(_json_safe(summary)))
    else:
        print(f"{sc.name} seed={args.seed} until={res.until:g}s")
        print(_summary_text(summary))
    warnings = res.warnings()
    if warnings:
        sys.stdout.flush()  # the table first, then the warning under it, even through a pipe
        print(f"simcomm: warning: {_one_line(' '.join(warnings))}", file=sys.stderr)
    if args.out is not None:
        try:
            written = _write_report(args.out, res, new_out)
        except OSError as exc:
            print(f"simcomm: error: cannot write the report to {args.out}: "
                  f"{_one_line(exc.strerror or exc)}", file=sys.stderr)
            return 2
        for path in written:
            print(f"wrote {path}", file=sys.stderr)
    return 0


def _matrix(args: argparse.Namespace) -> int:
    """``simcomm delivery-matrix``: :func:`simcomm.sweeps.delivery_matrix` as a table."""
    from simcomm.sweeps import delivery_matrix

    df = delivery_matrix(seeds=tuple(range(1, args.seeds + 1)), until=args.until,
                         records=args.records,
                         progress=None if sys.stderr.isatty() else False)
    rows = [{str(k): v for k, v in row.items()} for row in df.to_dict(orient="records")]
    if args.json:
        print(json.dumps([_json_safe(row) for row in rows]))
        return 0
    print(f"delivery-guarantees: seeds 1..{args.seeds}, until={df.attrs['until']:g}s; "
          "per 10 000 records produced, mean ± standard error over the seeds")
    head = ("acks", "idempotence", "commit", "dedup", "records", "lost", "duplicated",
            "reordered")
    table: list[tuple[str, ...]] = [head]
    for row in rows:
        table.append((str(row["acks"]), "on" if row["idempotence"] else "off",
                      str(row["commit"]), str(row["dedup"]), f"{row['records']:.0f}",
                      _pm(row["lost_per_10k"], row["lost_se"]),
                      _pm(row["duplicated_per_10k"], row["duplicated_se"]),
                      _pm(row["reordered_per_10k"], row["reordered_se"])))
    widths = [max(len(str(r[i])) for r in table) for i in range(len(head))]
    for r in table:
        print("  ".join(str(v).rjust(w) if i >= 4 else str(v).ljust(w)
                        for i, (v, w) in enumerate(zip(r, widths, strict=True))).rstrip())
    return 0


#: The summary keys ``simcomm sweep`` shows without --metric: the first four
#: a run reports, so a run of requests shows its latency, availability and
#: throughput, a run of records or messages its own.
HEADLINE = ("mean_latency", "p99", "availability", "throughput",
            "record_mean_latency", "record_p99_latency", "lost_per_10k", "duplicated_per_10k",
            "message_p95_latency", "messages_consumed", "messages_lost")

#: Confidence level of ``simcomm sweep``'s intervals.
SWEEP_CONFIDENCE = 0.95


def _parse_grid(scenario: base.Scenario, items: Sequence[str]) -> dict[str, list[Any]]:
    """``--grid FIELD=V1,V2,...`` items as ``{field: values}``, each value read like
    ``--set``'s and checked against the field (the rest is checked before any run)."""
    specs = {f.name: f for f in scenario.fields()}
    grid: dict[str, list[Any]] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name or not text.strip():
            raise ParamError("--grid", item, "FIELD=V1,V2,..., e.g. --grid depth=1,2,3")
        if name not in specs:
            raise ParamError(name, text, f"not a field of {scenario.name}; "
                             f"{base.did_you_mean(name, specs)}fields: {', '.join(specs)}")
        if name in grid:
            raise ParamError("--grid", item, f"each field once: {name} is swept already")
        spec = specs[name]  # the table then shows what ran: json for JSON, 3 for 3.0
        grid[name] = [spec.check(base.parse_value(spec, v.strip())) for v in text.split(",")]
    return grid


def _check_table_out(out: Path) -> None:
    """Refuse an ``--out`` the runs table cannot be written to, before the runs."""
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ParamError("--out", str(out), "a file name ending in .csv or .parquet")
    if suffix == ".parquet" and importlib.util.find_spec("pyarrow") is None:
        raise ParamError("--out", str(out), "a .csv file: writing .parquet needs pyarrow "
                         "(pip install 'simcomm[parquet]')")
    if out.is_dir():
        raise ParamError("--out", str(out), "a file (.csv or .parquet), not a directory")
    parent = out.absolute().parent
    if not parent.is_dir():
        raise ParamError("--out", str(out), f"a file in an existing directory; {parent} is "
                         "not one")
    writable = os.access(out, os.W_OK) if out.exists() else os.access(parent, os.W_OK | os.X_OK)
    if not writable:
        raise ParamError("--out", str(out), "a file you can write")


def _headline(runs: Any, asked: Sequence[str] | None) -> list[str]:
    """The metric columns the summary table shows."""
    if asked:
        return list(asked)
    found = [k for k in HEADLINE if k in runs.columns and runs[k].notna().any()]
    return found[:4]


def _mean_ci(mean: float, low: float, high: float, unit: str) -> str:
    """``0.0412 ± 0.0011``: the mean and the interval's half-width (a fraction in %)."""
    scale = 100.0 if unit == "fraction" else 1.0
    if not math.isfinite(mean):
        return _fmt(mean)
    if not (math.isfinite(low) and math.isfinite(high)):
        return f"{mean * scale:.4g}"
    return f"{mean * scale:.4g} ± {(high - low) / 2 * scale:.2g}"


def _sweep_table(runs: Any, shown: Sequence[str]) -> str:
    """One line per combination: its grid values, then mean ± half-width per metric."""
    from simcomm.sweeps import summarize

    grid = list(runs.attrs["grid"])
    summary = summarize(runs, shown, confidence=SWEEP_CONFIDENCE)
    head: list[str] = list(grid)
    for key in shown:
        unit = SUMMARY_UNITS.get(key, "")
        label = {"fraction": "%", "": ""}.get(unit, unit)
        head.append(f"{key} ({label})" if label else key)
    table: list[list[str]] = [head]
    per = len(shown)
    for start in range(0, len(summary), per):
        rows = summary.iloc[start:start + per]
        cells = [_fmt(rows.iloc[0][g]) for g in grid]
        for (_, row), key in zip(rows.iterrows(), shown, strict=True):
            cells.append(_mean_ci(float(row["mean"]), float(row["ci_low"]),
                                  float(row["ci_high"]), SUMMARY_UNITS.get(key, "")))
        table.append(cells)
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    return "\n".join("  ".join(v.ljust(w) if i < len(grid) else v.rjust(w)
                               for i, (v, w) in enumerate(zip(r, widths, strict=True))).rstrip()
                     for r in table)


def _overloaded(runs: Any) -> str | None:
    """One line naming the combinations with overloaded runs (``stable`` False), if any."""
    if "stable" not in runs.columns:
        return None
    bad = runs[runs["stable"] == False]  # noqa: E712 (a column of bools)
    if bad.empty:
        return None
    grid = list(runs.attrs["grid"])
    where = []
    if grid:
        for combo, group in bad.groupby(grid, sort=False):
            values = combo if isinstance(combo, tuple) else (combo,)
            name = " ".join(f"{g}={_fmt(v)}" for g, v in zip(grid, values, strict=True))
            where.append(f"{name} ({len(group)} of {runs.attrs['replications']})")
    return (f"{len(bad)} of {len(runs)} runs were overloaded (stable=False), so their "
            "means describe a growing backlog, not a steady state"
            + (": " + ", ".join(where) if where else ""))


def _sweep(args: argparse.Namespace) -> int:
    """``simcomm sweep``: :func:`simcomm.sweep` as a table of means and intervals."""
    from simcomm import sweeps

    sc = base.get(args.scenario)
    grid = _parse_grid(sc, args.grids)
    fixed = _parse_sets(sc, args.sets)
    if args.out is not None:
        _check_table_out(args.out)
    if args.scheduler is not None and importlib.util.find_spec("distributed") is None:
        raise ParamError("--scheduler", args.scheduler, "a Dask scheduler needs the "
                         "distributed package: pip install 'simcomm[distributed]'")
    planned = sweeps.plan(sc, grid, replications=args.reps, seed=args.seed, until=args.until,
                          metrics=args.metrics, **fixed)
    progress = None if args.progress and sys.stderr.isatty() else False
    if args.scheduler is not None:
        from distributed import Client

        try:
            client = Client(args.scheduler, timeout="10s")
        except (OSError, TimeoutError, ValueError) as exc:
            print(f"simcomm: error: cannot reach the Dask scheduler at {args.scheduler}: "
                  f"{_one_line(exc)}", file=sys.stderr)
            return 2
        try:
            runs = planned.run(client.get_executor(), progress=progress)
        finally:
            client.close()
    else:
        runs = planned.run("processes" if args.workers else None, workers=args.workers,
                           progress=progress)
    combos, reps = len(planned.combos), len(planned.seeds)
    level = f"{SWEEP_CONFIDENCE:.0%}".replace("%", " %")
    print(f"{sc.name}: {combos} combination{'s' if combos != 1 else ''} × {reps} "
          f"replication{'s' if reps != 1 else ''} = {len(runs)} runs of {planned.until:g}s, "
          f"root seed {args.seed}")
    print(f"mean ± half-width of the {level} confidence interval (Student t, "
          f"{reps - 1} degrees of freedom)" if reps > 1 else
          "mean of one run per combination (--reps 2 or more for a confidence interval)")
    print(_sweep_table(runs, _headline(runs, args.metrics)))
    warning = _overloaded(runs)
    if warning:
        sys.stdout.flush()
        print(f"simcomm: warning: {warning}", file=sys.stderr)
    if args.out is not None:
        try:
            if args.out.suffix.lower() == ".parquet":
                runs.to_parquet(args.out, index=False)
            else:
                runs.to_csv(args.out, index=False)
        except OSError as exc:
            print(f"simcomm: error: cannot write the runs table to {args.out}: "
                  f"{_one_line(exc.strerror or exc)}", file=sys.stderr)
            return 2
        print(f"wrote {args.out} ({len(runs)} runs)", file=sys.stderr)
    return 0


def _pm(mean: float, se: float) -> str:
    """``12.3 ± 4.5`` (the ± part left out when there is no standard error)."""
    return f"{mean:.1f}" if math.isnan(se) else f"{mean:.1f} ± {se:.1f}"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (argparse exits by itself on bad syntax)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    if not argv:  # a newcomer typing just `simcomm` gets the help, not an error
        parser.print_help()
        return 0
    if not argv[0].startswith("-") and argv[0] not in COMMANDS:
        parser.error(f"no command {argv[0]!r}; {base.did_you_mean(argv[0], COMMANDS)}"
                     f"commands: {', '.join(COMMANDS)}")
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            names = api.scenarios()
            print(_table([(name, base.get(name).title) for name in names]))
            return 0
        if args.command == "describe":
            sc = base.get(args.scenario)
            print(f"{sc.name}: {sc.title}\n{sc.description}\n")
            rows = [(f["field"], f"{f['type']}, default {f['default']!r}; {f['allowed']}. "
                     f"{f['help']}") for f in api.describe(sc)]
            rows += [("seed", f"int, default 0; {SEED_ALLOWED}. {SEED_HELP} (--seed)"),
                     ("until", f"float, default {sc.until:g} s; a time in seconds > 0. "
                      f"{UNTIL_HELP} (--until)")]
            print(_table(rows))
            return 0
        if args.command == "delivery-matrix":
            return _matrix(args)
        if args.command == "sweep":
            return _sweep(args)
        return _run(args)
    except ParamError as exc:  # RunTooLarge is one too
        print(f"simcomm: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(_interrupted(exc), file=sys.stderr)
        return EXIT_INTERRUPTED


def _entry() -> int:
    """Console entry point: like main, but quiet when the reader goes away
    (``simcomm describe chain | head``)."""
    try:
        return main()
    except BrokenPipeError:
        # stdout's reader closed early; point stdout at devnull so the
        # interpreter's final flush does not raise again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(_entry())
