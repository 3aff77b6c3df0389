"""Runs of many simulations: the one place above the scenarios that sweeps.

viz draws results and never runs simulations; a sweep runs them and hands
viz a table.  :func:`theory_sweep` runs the ``mmc`` scenario at several
loads and holds each against queueing theory, for
:func:`simcomm.viz.theory_sweep_figure`; :func:`delivery_matrix` runs the
``delivery-guarantees`` scenario over Kafka's delivery settings, for
:func:`simcomm.viz.delivery_matrix_figure`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import Executor
from typing import Any

import pandas as pd

from simcomm._checks import as_real, is_whole
from simcomm.analysis.metrics import steady_mean
from simcomm.analysis.theory import theory_curve
from simcomm.api import run
from simcomm.errors import ParamError

__all__ = ["COMMIT_POINTS", "DEDUPS", "MATRIX_COLUMNS", "MATRIX_UNTIL", "PRODUCER_SETTINGS",
           "delivery_matrix", "theory_sweep"]


def theory_sweep(servers: int = 1, service_rate: float = 1.0,
                 utilisations: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8,
                                                  0.9),
                 seed: int = 0, until: float = 10_000.0,
                 service_distribution: str = "exponential", *, warmup: float = 0.1,
                 batches: int = 20) -> pd.DataFrame:
    """Run the mmc scenario at several loads and hold each against theory.

    One run per utilisation (arrival rate ``rho * servers * service_rate``,
    the same ``seed`` for all: common random numbers make the points move
    together and the curve's shape clearer), traced lightly
    (``trace=False``).  Returns a DataFrame with columns ``utilisation``,
    ``arrival_rate``, ``sim_mean`` (mean latency of ok requests after the
    ``warmup`` fraction, s), ``sim_se`` (its batch-means standard error),
    ``theory`` (mean response time, s) and ``requests``; ``attrs`` keeps
    the queue's parameters for :func:`simcomm.viz.theory_sweep_figure`.
    """
    rhos = [float(u) for u in utilisations]
    if not rhos:
        raise ParamError("utilisations", list(utilisations), "at least one utilisation")
    theory = theory_curve(servers, service_rate, service_distribution, rhos)
    rows = []
    for rho, lam, w in zip(rhos, theory["arrival_rate"], theory["response"], strict=True):
        res = run("mmc", seed=seed, until=until, trace=False, arrival_rate=float(lam),
                  service_rate=service_rate, servers=servers,
                  service_distribution=service_distribution)
        mean, se, n = steady_mean(res, warmup, batches)
        rows.append((rho, float(lam), mean, se, float(w), n))
    df = pd.DataFrame(rows, columns=["utilisation", "arrival_rate", "sim_mean", "sim_se",
                                     "theory", "requests"])
    df.attrs.update(servers=servers, service_rate=service_rate,
                    service_distribution=service_distribution, seed=seed, until=until,
                    model=theory.attrs["model"], warmup=warmup)
    return df


#: The producer settings of the delivery matrix, ``(acks, idempotence)``: Kafka
#: allows ``enable.idempotence`` only with ``acks=all``.
PRODUCER_SETTINGS: tuple[tuple[str, bool], ...] = (
    ("0", False), ("1", False), ("all", False), ("all", True))

#: The consumer's commit points of the matrix: at-most-once and at-least-once.
COMMIT_POINTS = ("before", "after")

#: The consumer's duplicate handling in the matrix.
DEDUPS = ("none", "processed_ids")

#: Columns of :func:`delivery_matrix`.
MATRIX_COLUMNS = ("acks", "idempotence", "commit", "dedup", "records", "lost_per_10k",
                  "lost_se", "duplicated_per_10k", "duplicated_se", "reordered_per_10k",
                  "reordered_se", "runs")

#: The leader crash's time as a fraction of delivery-guarantees' default 30 s run, so a
#: shorter or longer matrix run sees the same story (the consumer's crash stays in its
#: first batch, 3.5 s in: the group's first assignment comes at 3 s whatever the length).
_FAULT_FRACTIONS = {"crash_leader_at": 8.0 / 30.0}

_SCENARIO = "delivery-guarantees"

#: Simulated seconds of each run of the default delivery matrix: long enough for the
#: leader's failover (9 s after its crash at 27 % of the run) to be over by the end.
MATRIX_UNTIL = 20.0


def _mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (NaN with fewer than two values)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


def delivery_matrix(seeds: Sequence[int] = (1, 2, 3), *, until: float = MATRIX_UNTIL,
                    records: int | None = None,
                    producers: Sequence[tuple[str, bool]] = PRODUCER_SETTINGS,
                    commits: Sequence[str] = COMMIT_POINTS, dedups: Sequence[str] = DEDUPS,
                    executor: Executor | None = None, **params: Any) -> pd.DataFrame:
    """Kafka's delivery settings against the losses, duplicates and reorders they let through.

    Runs the ``delivery-guarantees`` scenario (a lossy produce path, a
    partition leader's crash and a consumer's crash in one run: see
    :mod:`simcomm.scenarios.delivery_guarantees`) for every producer setting
    ``(acks, enable.idempotence)`` in ``producers`` × commit point in
    ``commits`` × consumer dedup in ``dedups``, once per seed in ``seeds``
    (the same seeds for every row: common random numbers, so rows differ by
    their settings, not their luck).  Returns one row per combination
    (:data:`MATRIX_COLUMNS`): ``records`` produced (mean per run), and
    ``lost_per_10k`` / ``duplicated_per_10k`` / ``reordered_per_10k`` -- per
    10 000 records produced, the mean over the seeds of
    :func:`simcomm.analysis.delivery_row`, each with its standard error
    (``*_se``, NaN for one seed) -- and ``runs``.

    ``until`` (default :data:`MATRIX_UNTIL`, 20 s: the 48 runs of the default
    matrix take about 20 s of CPU) and ``records`` (events per run; default
    the scenario's 60 a second, ~1 200: sets ``order_rate``) size each run; the
    leader's crash keeps its place in the run (at 27 % of ``until``) unless
    ``params`` sets it.  ``params`` sets any other
    field of the scenario for every run.  Every run is checked before the
    first starts: a bad value raises :class:`~simcomm.errors.ParamError`.
    ``executor`` (a :class:`concurrent.futures.Executor`, e.g. a
    ``ProcessPoolExecutor``) runs them in parallel; the table is the same as
    run one by one (each run depends only on its settings and seed).

    What it shows, each number explained by one fault: ``acks=0`` and
    ``acks=1`` lose records (what the lossy network or the crashed leader
    swallowed after acknowledging it); ``acks=all`` without idempotence
    duplicates and reorders (retries of batches already appended, and
    retries overtaken by later batches); the idempotent producer removes
    both; committing ``before`` processing loses the crashed consumer's
    batch, committing ``after`` applies it twice -- and ``processed_ids``
    removes those duplicates.
    """
    from simcomm.api import prepare
    from simcomm.scenarios import base

    seed_list = list(seeds) if isinstance(seeds, Sequence) and not isinstance(
        seeds, (str, bytes)) else None
    if not seed_list:
        raise ParamError("seeds", seeds, "a non-empty sequence of seeds (whole numbers >= 0)")
    combos = [(acks, idem, commit, dedup) for acks, idem in _settings(producers)
              for commit in _choices("commits", commits)
              for dedup in _choices("dedups", dedups)]
    for name in ("acks", "idempotence", "commit", "dedup"):
        if name in params:
            raise ParamError(name, params[name], "left to the matrix: choose the rows with "
                             "producers=, commits= and dedups=")
    if records is not None and (not is_whole(records) or records < 3):
        raise ParamError("records", records, "a whole number of events per run >= 3, or None")
    sc = base.get(_SCENARIO)
    fixed = dict(params)
    end_value = as_real(until)
    if end_value is not None and end_value > 0 and math.isfinite(end_value):
        for name, fraction in _FAULT_FRACTIONS.items():
            fixed.setdefault(name, fraction * end_value)
        if records is not None:
            fixed.setdefault("order_rate", int(records) / 3.0 / end_value)
    planned = []
    for acks, idem, commit, dedup in combos:  # check everything before time zero
        settings = dict(fixed, acks=acks, idempotence=idem, commit=commit, dedup=dedup)
        for seed in seed_list:
            planned.append(((acks, idem, commit, dedup), seed,
                            prepare(sc, seed, until, **settings)))
    results: dict[tuple[str, bool, str, str], list[dict[str, Any]]] = {}
    jobs = [(p, seed, stop) for _, seed, (_, p, stop) in planned]
    if executor is None:
        rows_out = [_matrix_run(*job) for job in jobs]
    else:
        rows_out = list(executor.map(_matrix_run, *zip(*jobs, strict=True)))
    for (combo, _, _), out in zip(planned, rows_out, strict=True):
        results.setdefault(combo, []).append(out)
    rows = []
    for combo in combos:
        runs = results[combo]
        row: list[Any] = [*combo, sum(r["records_produced"] for r in runs) / len(runs)]
        for name in ("lost", "duplicated", "reordered"):
            row.extend(_mean_se([float(r[f"{name}_per_10k"]) for r in runs]))
        row.append(len(runs))
        rows.append(row)
    df = pd.DataFrame(rows, columns=list(MATRIX_COLUMNS))
    df.attrs.update(scenario=_SCENARIO, seeds=seed_list, until=float(planned[0][2][2]),
                    params=fixed)
    return df


def _matrix_run(params: Any, seed: int, until: float) -> dict[str, Any]:
    """One run of the matrix (checked already), reduced to its delivery row: what
    an executor's worker returns (a small dict, not the run)."""
    from simcomm.analysis.delivery import delivery_row
    from simcomm.api import simulate
    from simcomm.scenarios import base

    return delivery_row(simulate(base.get(_SCENARIO), params, seed, until))


def _settings(producers: Sequence[tuple[str, bool]]) -> list[tuple[str, bool]]:
    """The producer settings as ``(acks, idempotence)`` pairs, checked for shape (the
    scenario checks the values, and refuses idempotence without acks=all)."""
    out = []
    for item in producers if isinstance(producers, Sequence) else ():
        if not (isinstance(item, tuple) and len(item) == 2):
            raise ParamError("producers", producers,
                             "a sequence of (acks, idempotence) pairs, e.g. (('1', False),)")
        out.append((item[0], item[1]))
    if not out:
        raise ParamError("producers", producers, "at least one (acks, idempotence) pair")
    return out


def _choices(field: str, values: Sequence[str]) -> list[str]:
    if isinstance(values, str) or not isinstance(values, Sequence) or not values:
        raise ParamError(field, values, "a non-empty sequence of choices")
    return list(values)
