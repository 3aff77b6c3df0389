"""The ``simcomm`` command: list, describe and run scenarios.

    simcomm list
    simcomm describe chain
    simcomm run mmc --seed 1 --until 10000 --set servers=3 --json
    simcomm run chain --out report/

A wrong scenario, field or value prints one line naming it and what is
allowed, and exits with status 2 before anything runs.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from simcomm import api
from simcomm.errors import ParamError
from simcomm.scenarios import base

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        self.exit(2, f"simcomm: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="simcomm", description="Simulate inter-process communication "
                "in microservices: run a scenario, print its summary.")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the scenarios")
    d = sub.add_parser("describe", help="show a scenario's parameters")
    d.add_argument("scenario")
    r = sub.add_parser("run", help="run a scenario and print its summary")
    r.add_argument("scenario")
    r.add_argument("--seed", type=int, default=0, help="root random seed (default 0)")
    r.add_argument("--until", type=float, default=None,
                   help="simulated seconds to run (default: the scenario's)")
    r.add_argument("--set", dest="sets", action="append", default=[], metavar="FIELD=VALUE",
                   help="set a parameter; repeat for several")
    r.add_argument("--json", action="store_true", help="print the summary as JSON")
    r.add_argument("--out", type=Path, default=None,
                   help="also write the summary, request table (CSV) and figures (PNG: the "
                        "scenario's views, its topology and a sequence diagram) here")
    return p


def _parse_sets(scenario: base.Scenario, sets: Sequence[str]) -> dict[str, Any]:
    specs = {f.name: f for f in scenario.fields()}
    values: dict[str, Any] = {}
    for item in sets:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep:
            raise ParamError("--set", item, "FIELD=VALUE, e.g. --set servers=3")
        if name not in specs:
            raise ParamError(name, text, f"not a field of {scenario.name}; "
                             f"fields: {', '.join(specs)}")
        values[name] = base.parse_value(specs[name], text)
    return values


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.6g}"
    return str(v)


def _table(rows: Sequence[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def _json_safe(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in summary.items()}


def _write_report(out: Path, res: Any) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "summary.json", out / "requests.csv"]
    written[0].write_text(json.dumps(_json_safe(res.summary()), indent=2) + "\n")
    res.requests.to_csv(written[1], index=False)
    from simcomm import viz

    # a report has no redraw budget: add the pictures a dashboard leaves out
    names = dict.fromkeys((*res.scenario.views, "topology", "sequence_diagram"))
    for name in names:
        fig = viz.view(name, res)
        path = out / f"{name}.png"
        fig.savefig(path, dpi=110)
        written.append(path)
        viz.close(fig)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "list":
            for name in api.scenarios():
                print(f"{name:10s} {base.get(name).title}")
            return 0
        if args.command == "describe":
            sc = base.get(args.scenario)
            print(f"{sc.name}: {sc.title}\n{sc.description}\n")
            rows = [(f["field"], f"{f['type']}, default {f['default']!r}; {f['allowed']}. "
                     f"{f['help']}") for f in api.describe(sc)]
            print(_table(rows))
            return 0
        sc = base.get(args.scenario)
        params = _parse_sets(sc, args.sets)
        res = api.run(sc, seed=args.seed, until=args.until, **params)
    except ParamError as exc:
        print(f"simcomm: error: {exc}", file=sys.stderr)
        return 2
    summary = res.summary()
    if args.json:
        print(json.dumps(_json_safe(summary)))
    else:
        print(f"{sc.name} seed={args.seed} until={res.until:g}s")
        print(_table([(k, _fmt(v)) for k, v in summary.items()]))
    if args.out is not None:
        for path in _write_report(args.out, res):
            print(f"wrote {path}", file=sys.stderr)
    return 0


def _entry() -> int:
    """Console entry point: like main, but quiet when the reader goes away
    (``simcomm describe chain | head``)."""
    try:
        return main()
    except BrokenPipeError:
        # stdout's reader closed early; point stdout at devnull so the
        # interpreter's final flush does not raise again
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(_entry())
