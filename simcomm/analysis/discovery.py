"""Service discovery seen from its results: who was serving, who was called, and the lag.

Pure functions over DataFrames (issue 10's tables, see
:mod:`simcomm.engine.trace`): the timeline ``events`` (``EVENT_COLUMNS``:
``launch``, ``start``, ``crash``, ``restart``, ``hang``, ``unhang``,
``stop``, and the churn's ``drain`` and ``node_failure``), the ``routes``
(``ROUTE_COLUMNS``: one row per call a discovery client or a router sent)
and the ``discovery`` rows (``DISCOVERY_COLUMNS``: what registries and views
did).  :class:`~simcomm.result.Result` wraps them as ``res.routes``,
``res.detection()``, ``res.discovery`` and the summary's
:data:`~simcomm.result.DISCOVERY_KEYS`; the figures
(:mod:`simcomm.viz.discovery`) draw them.  Each step is a pandas column
operation (``merge_asof``, ``searchsorted``): the only Python loops run over
timeline events (a few per instance), never over calls.

**An instance's state** (:func:`instance_states`), one at a time:

* ``starting`` -- launched, its process not up yet (``launch`` → ``start``);
* ``serving`` -- up and answering (from time 0 for an instance created
  without ``start_at``; after ``start``, ``restart`` or ``unhang``);
* ``hung`` -- accepts requests and never answers (``hang`` → ``unhang``);
* ``down`` -- its process is dead (``crash`` or ``node_failure`` →
  ``restart``, or for good);
* ``draining`` -- deregistered and waiting for its last calls before it
  stops (``drain`` → ``stop``): it still serves;
* ``stopped`` -- exited cleanly, for good (``stop``).

**A stale call** is one a client or router sent to an instance that was
``starting``, ``hung``, ``down`` or ``stopped`` at the moment it was sent
(:data:`STALE_STATES`): the caller's picture of the service was behind the
service.  A call to a draining instance is not stale: it is answered.

**A death** (:func:`deaths`) is the start of a run of ``hung`` / ``down`` /
``stopped`` intervals of one instance (a hang that ends in a crash is one
death, the hang's); its **detection lag** (:func:`detection`) is the time
from the death to the last call routed to the instance while that run
lasted -- the moment the callers' lists, every cache on the way included,
had caught up -- and 0 when no call reached it after it died (a graceful
shutdown whose cancel went round before the stop).  :func:`lag_bounds`
computes, term by term from a registry's configured periods, the interval
this lag falls in after a crash: the worked sum of the course's notebook 05.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from simcomm._checks import as_real, is_flag, is_whole
from simcomm.engine.trace import DISCOVERY_COLUMNS, EVENT_COLUMNS, ROUTE_COLUMNS, Table
from simcomm.errors import ParamError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    import pandas as pd

__all__ = ["CLOSE_EVENTS", "DEAD_STATES", "LIFECYCLE_EVENTS", "OPEN_EVENTS", "REGISTRIES",
           "STALE_STATES", "STATES", "LagBounds", "LagTerm", "churn_windows", "deaths",
           "detection", "discovery_keys", "instance_states", "lag_bounds",
           "registered_intervals", "routes_with_state", "visible_intervals"]

#: Every state :func:`instance_states` gives an instance.
STATES = ("starting", "serving", "hung", "down", "draining", "stopped")

#: States in which a call sent to the instance is stale (it cannot answer).
STALE_STATES = ("starting", "hung", "down", "stopped")

#: States that make a death: the instance stopped answering.
DEAD_STATES = ("hung", "down", "stopped")

#: The timeline events that change an instance's state, and the state each
#: leads to (``unhang`` "ended by crash/stop" is left to the crash or stop
#: recorded with it; ``crash_skipped`` and ``hang_skipped`` change nothing).
LIFECYCLE_EVENTS = {"launch": "starting", "start": "serving", "restart": "serving",
                    "unhang": "serving", "hang": "hung", "crash": "down",
                    "node_failure": "down", "drain": "draining", "stop": "stopped"}

#: ``trace.discovery`` events that put an instance in a registry's answers,
#: and those that take it out (the contract's "registered").
OPEN_EVENTS = ("register", "passing", "ready")
CLOSE_EVENTS = ("cancel", "evict", "critical", "reap", "unready")

_STATE_COLUMNS = ["instance", "start", "end", "state", "event"]
_DEATH_COLUMNS = ["instance", "died", "kind", "until"]
_DETECTION_COLUMNS = ["instance", "died", "kind", "stale_calls", "last_stale_call", "lag"]


def _frame(rows: Any, columns: tuple[str, ...]) -> pd.DataFrame:
    """A DataFrame of ``rows`` (a DataFrame already, or tuples in ``columns``)."""
    import pandas as pd

    if isinstance(rows, pd.DataFrame):
        return rows
    if isinstance(rows, Table):  # the trace's own table: built column by column
        return rows.to_frame()
    return pd.DataFrame(list(rows), columns=list(columns))


# -- states ------------------------------------------------------------------------------

def instance_states(events: Any, until: float = math.inf) -> pd.DataFrame:
    """Every instance's state over time from the timeline events.

    ``events``: the events table (a DataFrame with ``EVENT_COLUMNS``, or its
    tuples).  Returns one row per interval, ``instance, start, end, state,
    event`` (``event``: the timeline event that began it, ``"initial"`` for
    an instance serving from time 0), in instance order of first appearance
    and then time; the last interval of each instance ends at ``until``.
    Only nodes with a lifecycle event (:data:`LIFECYCLE_EVENTS`) are listed:
    an instance that never had one served the whole run.

    Rules, one event at a time in the order recorded: an instance whose
    first lifecycle event is not ``launch`` was serving from time 0; an
    event leading to the state the instance is in already changes nothing
    (``node_failure`` then its ``crash`` is one ``down``, begun by
    ``node_failure``); several changes at one time leave the last one
    (``launch`` and ``start`` at once: serving); an ``unhang`` whose detail
    says "ended by ..." is left to the crash or stop that ended the hang; a
    ``drain`` of a hung or down instance leaves it dead, and once drained an
    instance that answers again is ``draining``, not ``serving``.
    """
    import pandas as pd

    df = _frame(events, EVENT_COLUMNS)
    df = df[df["event"].isin(tuple(LIFECYCLE_EVENTS))]
    per: dict[str, list[list[Any]]] = {}
    draining: set[str] = set()
    for time, node, event, detail in zip(df["time"], df["node"], df["event"], df["detail"],
                                         strict=True):
        if event == "unhang" and str(detail).startswith("ended by"):
            continue
        state = LIFECYCLE_EVENTS[event]
        rows = per.get(node)
        if rows is None:
            rows = per[node] = []
            if event != "launch" and time > 0:
                rows.append([node, 0.0, None, "serving", "initial"])
        if event == "drain":
            draining.add(node)
            if rows and rows[-1][3] in DEAD_STATES:
                continue  # a dead instance drains nothing: it stays dead
        elif state == "serving" and node in draining:
            state = "draining"  # back from a hang during the drain: still leaving
        if rows:
            last = rows[-1]
            if last[3] == "stopped" or last[3] == state:
                continue  # nothing after a stop; no change of state
            if last[1] == time:  # a zero-length interval: the later change wins
                rows.pop()
                if rows and rows[-1][3] == state:
                    continue  # back to the state before it (e.g. hang, unhang at once)
        rows.append([node, float(time), None, state, event])
    out = [row for rows in per.values() for row in rows]
    for rows in per.values():
        for a, b in itertools.pairwise(rows):
            a[2] = b[1]
        rows[-1][2] = float(until)
    frame = pd.DataFrame(out, columns=_STATE_COLUMNS)
    frame["start"] = frame["start"].astype(float)
    frame["end"] = frame["end"].astype(float)
    return frame


def routes_with_state(routes: Any, states: pd.DataFrame) -> pd.DataFrame:
    """The routes table with the called instance's ``state`` when each call
    was sent, and ``stale`` (that state is one of :data:`STALE_STATES`).

    ``routes``: a DataFrame with ``ROUTE_COLUMNS`` (or its tuples);
    ``states``: :func:`instance_states`.  An instance without states served
    the whole run (``serving``); a call before an instance's first interval
    (a name known before its launch) is ``starting``.  A call that found no
    instance (``instance`` None, outcome ``no_instance``) has state None and
    is not stale.  Rows keep their order; ``trace_id`` is nullable integer.
    """
    import numpy as np
    import pandas as pd

    df = _frame(routes, ROUTE_COLUMNS).reset_index(drop=True)
    df["trace_id"] = df["trace_id"].astype("Int64")
    state = pd.Series([None] * len(df), index=df.index, dtype=object)
    called = df["instance"].notna()
    if called.any():
        state[called] = "serving"
        known = called & df["instance"].isin(set(states["instance"]))
        if known.any():
            left = pd.DataFrame({"time": df.loc[known, "time"].astype(float),
                                 "instance": df.loc[known, "instance"].astype(str),
                                 "row": df.index[known]}).sort_values("time", kind="stable")
            right = states[["start", "instance", "state"]].astype(
                {"start": float, "instance": str}).sort_values("start", kind="stable")
            hit = pd.merge_asof(left, right, left_on="time", right_on="start",
                                by="instance", direction="backward")
            state[hit["row"].to_numpy()] = hit["state"].fillna("starting").to_numpy()
    df["state"] = state
    df["stale"] = np.asarray(state.isin(STALE_STATES), dtype=bool)
    return df


def deaths(states: pd.DataFrame) -> pd.DataFrame:
    """Each time an instance stopped answering: ``instance, died, kind,
    until``.

    A death is the start of a run of :data:`DEAD_STATES` intervals;
    ``kind`` is the event that began it (``crash``, ``hang``, ``stop`` or
    ``node_failure``) and ``until`` when the run ended (a restart or an
    unhang; the end of the states, the run's end, for good).  A hang that
    ended in a crash, or a crashed instance later stopped, is one death.
    """
    import pandas as pd

    rows: list[tuple[str, float, str, float]] = []
    current: list[Any] | None = None
    prev_instance = None
    for inst, start, end, state, event in zip(states["instance"], states["start"],
                                              states["end"], states["state"],
                                              states["event"], strict=True):
        if inst != prev_instance:
            if current is not None:
                rows.append(tuple(current))  # type: ignore[arg-type]
            current, prev_instance = None, inst
        if state in DEAD_STATES:
            if current is None:
                current = [inst, float(start), event, float(end)]
            else:
                current[3] = float(end)
        elif current is not None:
            rows.append(tuple(current))  # type: ignore[arg-type]
            current = None
    if current is not None:
        rows.append(tuple(current))  # type: ignore[arg-type]
    return pd.DataFrame(rows, columns=_DEATH_COLUMNS).astype({"died": float, "until": float})


def detection(routes: pd.DataFrame, states: pd.DataFrame) -> pd.DataFrame:
    """How long the callers kept calling each dead instance: one row per
    death (:func:`deaths`), ``instance, died, kind, stale_calls`` (calls sent
    to it while it stayed dead), ``last_stale_call`` (when the last of them
    was sent; NaN for none) and ``lag`` = ``last_stale_call - died`` (0 for
    none: nobody called it after it died).

    ``routes``: the routes table (its ``time`` and ``instance`` are read;
    :func:`routes_with_state`'s or the raw one); ``states``:
    :func:`instance_states`.
    """
    import pandas as pd

    dead = deaths(states).reset_index(drop=True)
    out = dead[["instance", "died", "kind"]].copy()
    out["stale_calls"] = 0
    out["last_stale_call"] = math.nan
    calls = routes[routes["instance"].notna()]
    if len(dead) and len(calls):
        left = pd.DataFrame({"time": calls["time"].astype(float),
                             "instance": calls["instance"].astype(str)}
                            ).sort_values("time", kind="stable")
        right = dead.assign(death=dead.index).astype({"instance": str}).sort_values(
            "died", kind="stable")
        hit = pd.merge_asof(left, right[["died", "instance", "until", "death"]],
                            left_on="time", right_on="died", by="instance",
                            direction="backward")
        hit = hit[hit["death"].notna() & (hit["time"] < hit["until"])]
        grouped = hit.groupby(hit["death"].astype(int))["time"]
        counts, last = grouped.size(), grouped.max()
        out.loc[counts.index, "stale_calls"] = counts.to_numpy()
        out.loc[last.index, "last_stale_call"] = last.to_numpy()
    out["stale_calls"] = out["stale_calls"].astype(int)
    out["lag"] = (out["last_stale_call"] - out["died"]).fillna(0.0)
    return out[_DETECTION_COLUMNS]


def churn_windows(states: pd.DataFrame, detections: pd.DataFrame | None = None
                  ) -> list[tuple[float, float]]:
    """The times when some instance was not serving, as sorted, disjoint
    half-open ``(start, end)`` windows.

    Every interval whose state is not ``serving`` counts (``draining``
    included: the fleet is changing), except the first deployment (an
    instance ``starting`` from time 0 is the system coming up, not churn)
    and that a death lasting to the end of the states (a crash for good, a
    stop) counts only until its detection (``died`` + ``lag`` of
    :func:`detection`, given or computed with no calls): an instance gone
    for good that nobody calls any more has left the fleet, and the run
    after that is not churn.
    """
    if detections is None:
        import pandas as pd

        detections = detection(pd.DataFrame(columns=list(ROUTE_COLUMNS)), states)
    final = dict(zip(zip(detections["instance"], detections["died"], strict=True),
                     detections["lag"], strict=True))
    dead = deaths(states)
    forever: dict[str, float] = {}
    ends = states.groupby("instance", sort=False)["end"].max()
    for inst, died, until in zip(dead["instance"], dead["died"], dead["until"], strict=True):
        if until >= ends[inst]:
            forever[inst] = died
    spans: list[tuple[float, float]] = []
    for inst, start, end, state in zip(states["instance"], states["start"], states["end"],
                                       states["state"], strict=True):
        if state == "serving" or (state == "starting" and start == 0.0):
            continue
        died = forever.get(inst)
        if died is not None and start >= died:
            if start == died:
                spans.append((died, died + float(final.get((inst, died), 0.0))))
            continue
        spans.append((float(start), float(end)))
    spans = sorted(s for s in spans if s[1] > s[0])
    merged: list[tuple[float, float]] = []
    for s, e in spans:
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return merged


def discovery_keys(routes: pd.DataFrame, states: pd.DataFrame, requests: pd.DataFrame,
                   discovery_messages: int, until: float) -> dict[str, Any]:
    """The summary's discovery keys (see :data:`simcomm.result.DISCOVERY_KEYS`).

    * ``routed_calls`` -- calls sent to an instance a client or router picked;
    * ``stale_calls`` -- of them, sent to a starting, hung, down or stopped
      instance; ``stale_share`` = stale / routed (NaN with none routed);
    * ``detection_lag`` -- the mean ``lag`` of :func:`detection` over the
      deaths (NaN with no death);
    * ``registry_messages_per_s`` -- ``discovery_messages`` (the counter of
      every registration, renewal, cancel, query, probe and reply) / ``until``;
    * ``availability_during_churn`` -- answered / finished (answered: ok or
      fallback; finished: not pending) of the user ``requests`` that started
      inside a :func:`churn_windows` window (NaN with none);
    * ``no_instance_calls`` -- calls that found no instance to send to.

    ``routes``: :func:`routes_with_state`; ``states``: the instances that
    count (:class:`~simcomm.result.Result` passes those of the services
    routed to, so a registry's own crash is not an instance's death).
    """
    import numpy as np

    called = routes["instance"].notna()
    routed = int(called.sum())
    stale = int(routes["stale"].sum())
    found = detection(routes, states)
    windows = churn_windows(states, found)
    during = math.nan
    if windows and len(requests):
        starts = np.array([w[0] for w in windows])
        ends = np.array([w[1] for w in windows])
        t = requests["start"].to_numpy(dtype=float)
        i = np.searchsorted(starts, t, side="right") - 1
        inside = (i >= 0) & (t < ends[np.maximum(i, 0)])
        outcome = requests["outcome"].to_numpy()[inside]
        finished = int((outcome != "pending").sum())
        answered = int(np.isin(outcome, ("ok", "fallback")).sum())
        during = answered / finished if finished else math.nan
    return {
        "routed_calls": routed,
        "stale_calls": stale,
        "stale_share": stale / routed if routed else math.nan,
        "detection_lag": float(found["lag"].mean()) if len(found) else math.nan,
        "registry_messages_per_s": discovery_messages / until,
        "availability_during_churn": during,
        "no_instance_calls": int((~called).sum()),
    }


# -- registered and visible ------------------------------------------------------------------

def _intervals(rows: pd.DataFrame, key: str, opens: tuple[str, ...], closes: tuple[str, ...],
               until: float) -> list[list[Any]]:
    """[instance, key value, start, end] from open / close events per (key, instance)."""
    open_at: dict[tuple[Any, Any], float] = {}
    out: list[list[Any]] = []
    for time, event, owner, inst in zip(rows["time"], rows["event"], rows[key],
                                        rows["instance"], strict=True):
        if inst is None or (isinstance(inst, float) and math.isnan(inst)):
            continue
        k = (owner, inst)
        if event in opens:
            open_at.setdefault(k, float(time))
        elif event in closes and k in open_at:
            out.append([inst, owner, open_at.pop(k), float(time)])
    out.extend([inst, owner, start, float(until)] for (owner, inst), start in open_at.items())
    out.sort(key=lambda r: (r[2], str(r[0])))
    return out


def registered_intervals(discovery_rows: Any, until: float = math.inf) -> pd.DataFrame:
    """When each instance was in each registry's answers: ``instance,
    registry, start, end``, one row per interval.

    From a ``register``, ``passing`` or ``ready`` row of the registry (the
    row's ``node``) to its next ``cancel``, ``evict``, ``critical``,
    ``reap`` or ``unready`` row for that instance (or ``until``): Eureka's
    lease from registration to cancel or eviction, Consul's passing state
    (a critical instance drops out of ``?passing`` queries at once, before
    the reaper deregisters it), a Kubernetes endpoint from ready to unready.
    Renewals change nothing.  ``discovery_rows``: ``trace.discovery`` (a
    DataFrame with ``DISCOVERY_COLUMNS`` or its tuples).
    """
    import pandas as pd

    df = _frame(discovery_rows, DISCOVERY_COLUMNS)
    rows = _intervals(df, "node", OPEN_EVENTS, CLOSE_EVENTS, until)
    return pd.DataFrame(rows, columns=["instance", "registry", "start", "end"])


def visible_intervals(discovery_rows: Any, until: float = math.inf, *,
                      by_owner: bool = False) -> pd.DataFrame:
    """When each instance was visible to callers: from a ``visible`` row to
    the next ``hidden`` row of the same view (its ``node``, the owner).

    By default the union over owners, "in at least one owner's view":
    ``instance, start, end``.  With ``by_owner=True``, one row per view:
    ``instance, owner, start, end``.
    """
    import pandas as pd

    if not is_flag(by_owner):
        raise ParamError("by_owner", by_owner, "True or False")
    df = _frame(discovery_rows, DISCOVERY_COLUMNS)
    rows = _intervals(df, "node", ("visible",), ("hidden",), until)
    if by_owner:
        return pd.DataFrame(rows, columns=["instance", "owner", "start", "end"])
    merged: dict[Any, list[list[float]]] = {}
    for inst, _owner, start, end in sorted(rows, key=lambda r: (str(r[0]), r[2])):
        spans = merged.setdefault(inst, [])
        if spans and start <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], end)
        else:
            spans.append([start, end])
    out = [[inst, s, e] for inst, spans in merged.items() for s, e in spans]
    out.sort(key=lambda r: (r[1], str(r[0])))
    return pd.DataFrame(out, columns=["instance", "start", "end"])


# -- the worked sum: bounds on the detection lag from the configured periods ---------------------

#: The registries :func:`lag_bounds` knows.
REGISTRIES = ("eureka", "consul", "kubernetes", "dns")


class LagTerm(NamedTuple):
    """One stage on the way from a death to the callers' lists: the least,
    the most and the mean seconds it adds (a periodic task met at a random
    phase adds 0 to its period, half of it on average)."""

    name: str
    lo: float
    hi: float
    mean: float


@dataclass(frozen=True)
class LagBounds:
    """The detection lag's worked sum: ``terms`` in the order they happen,
    their ``formulas`` (how each follows from the configured periods, with
    the numbers), and the sums ``lower``, ``upper`` and ``mean``.

    ``str()`` gives the sum as a learner checks it against a figure::

        lease expiry    150 .. 180  (mean 165)  2 × duration 90 − time since the ...
        ...
        total           150 .. 330  (mean 240)
    """

    registry: str
    fault: str
    terms: tuple[LagTerm, ...]
    formulas: tuple[str, ...]

    @property
    def lower(self) -> float:
        """The least the lag can be: every term at its least."""
        return math.fsum(t.lo for t in self.terms)

    @property
    def upper(self) -> float:
        """The most the lag can be: every term at its most (inf: never detected)."""
        return math.fsum(t.hi for t in self.terms)

    @property
    def mean(self) -> float:
        """The mean lag: the terms' means added (each timer's phase is independent)."""
        return math.fsum(t.mean for t in self.terms)

    def table(self) -> pd.DataFrame:
        """The terms as a table: ``term, lower, upper, mean, formula`` and a
        last row ``total``."""
        import pandas as pd

        rows = [(t.name, t.lo, t.hi, t.mean, f)
                for t, f in zip(self.terms, self.formulas, strict=True)]
        rows.append(("total", self.lower, self.upper, self.mean, "the sum of the terms"))
        return pd.DataFrame(rows, columns=["term", "lower", "upper", "mean", "formula"])

    def __str__(self) -> str:
        width = max(len(t.name) for t in (*self.terms, LagTerm("total", 0, 0, 0)))
        lines = [f"{t.name:<{width}}  {t.lo:g} .. {t.hi:g}  (mean {t.mean:g})  {f}"
                 for t, f in zip(self.terms, self.formulas, strict=True)]
        lines.append(f"{'total':<{width}}  {self.lower:g} .. {self.upper:g}  "
                     f"(mean {self.mean:g})")
        return "\n".join(lines)


#: Each registry's timings and their defaults (the real systems', REFERENCE §5).
_TIMINGS: dict[str, dict[str, Any]] = {
    "eureka": {"renewal_interval": 30.0, "lease_duration": 90.0, "eviction_interval": 60.0,
               "response_cache_update_interval": 30.0, "use_read_only_response_cache": True,
               "registry_fetch_interval": 30.0, "server_list_refresh_interval": 30.0,
               "lease_expiry_quirk": True, "registration": "self", "period": 10.0,
               "timeout": 1.0, "failure_threshold": 3, "latency": 0.0},
    "consul": {"ttl": 30.0, "heartbeat_interval": None, "check": "ttl",
               "check_interval": 10.0, "check_timeout": 10.0, "latency": 0.0},
    "kubernetes": {"period": 10.0, "timeout": 1.0, "failure_threshold": 3,
                   "pleg_period": 1.0, "proxy_sync": 1.0, "heartbeat_interval": 10.0,
                   "node_monitor_grace_period": 40.0, "node_monitor_period": 5.0,
                   "latency": 0.0},
    "dns": {"ttl": 60.0, "period": 30.0, "timeout": 4.0, "failure_threshold": 3,
            "latency": 0.0},
}

#: Timings that may be 0: the stage is not there (a client that asks the
#: registry on every call has no fetch and no list refresh), or no latency.
_MAY_BE_ZERO = ("response_cache_update_interval", "registry_fetch_interval",
                "server_list_refresh_interval", "proxy_sync", "pleg_period", "latency")

_CHOICES = {"registration": ("self", "registrar"), "check": ("ttl", "http")}


def _timings(registry: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """``given`` checked against ``registry``'s timings and merged with the defaults."""
    known = _TIMINGS[registry]
    out = dict(known)
    for name, value in given.items():
        if name not in known:
            raise ParamError(name, value,
                             f"one of the {registry} timings: {', '.join(sorted(known))}")
        default = known[name]
        if name in _CHOICES:
            if value not in _CHOICES[name]:
                raise ParamError(name, value, " or ".join(map(repr, _CHOICES[name])))
        elif isinstance(default, bool):
            if not is_flag(value):
                raise ParamError(name, value, "True or False")
            value = bool(value)
        elif name == "failure_threshold":
            if not is_whole(value) or value < 1:
                raise ParamError(name, value, "a whole number >= 1")
            value = int(value)
        elif name == "heartbeat_interval" and value is None:
            pass
        else:
            x = as_real(value)
            least = 0.0 if name in _MAY_BE_ZERO else None
            if x is None or math.isnan(x) or math.isinf(x) or (
                    x < 0 if least is not None else x <= 0):
                allowed = "a finite number of seconds " + (">= 0 (0: no such stage)"
                                                           if least is not None else "> 0")
                raise ParamError(name, value, allowed)
            value = x
        out[name] = value
    return out


def _periodic(name: str, period: float, what: str) -> tuple[LagTerm, str]:
    """A periodic task met at a random phase: 0 to ``period``, mean half."""
    return (LagTerm(name, 0.0, period, period / 2),
            f"waiting for {what}, met at a random phase: 0 .. {period:g}")


def _hops(n: int, latency: float, what: str) -> tuple[LagTerm, str]:
    """``n`` one-way network trips on the critical path."""
    return (LagTerm("network", n * latency, n * latency, n * latency),
            f"{n} × latency {latency:g}: {what}")


def _probes(t: dict[str, Any], fault: str, who: str) -> list[tuple[LagTerm, str]]:
    """A prober's detection: ``failure_threshold`` consecutive failures of a
    probe every ``period`` (Kubernetes ``periodSeconds`` / ``failureThreshold``),
    each failure known when the refused reply comes back (a crash: a closed
    port answers at once) or after ``timeout`` (a hang: no answer)."""
    p, f, to = t["period"], t["failure_threshold"], t["timeout"]
    out = [_periodic("first failing probe", p, f"{who}'s probe (period {p:g})"),
           (LagTerm("more failures", (f - 1) * p, (f - 1) * p, (f - 1) * p),
            f"(failure_threshold {f} − 1) × period {p:g}")]
    if fault == "hang":
        out.append((LagTerm("probe timeout", to, to, to),
                     f"a hung instance never answers: timeout {to:g}"))
    return out


def lag_bounds(registry: str, *, fault: str = "crash", **timings: Any) -> LagBounds:
    """The detection lag's bounds, term by term, from ``registry``'s timings.

    What happens between an instance's death (``fault``: ``"crash"``, the
    process dies without a cancel; ``"hang"``, it stops answering;
    ``"node_failure"``, Kubernetes' node dies with it -- elsewhere the same
    as a crash) and the moment the callers' lists drop it, as a sum of
    stages (:class:`LagBounds`).  A periodic task met at a random phase (as
    every simulated timer starts) adds 0 to its period, half on average;
    one-way ``latency`` trips on the way are added as a ``network`` term.
    The measured lag (:func:`detection`) is the last call *sent* before the
    lists caught up, so it sits inside the bounds, a call gap below the
    stage sum.  Unknown timing names and bad values raise ParamError.

    **eureka** (``registration="self"``, Netflix/eureka): the last renewal
    was 0 to ``renewal_interval`` before the crash
    (``eureka.instance.lease-renewal-interval-in-seconds`` 30).
    ``Lease.renew()`` sets ``lastUpdateTimestamp = now + duration`` and
    ``Lease.isExpired()`` tests ``now > lastUpdateTimestamp + duration``:
    with ``lease_expiry_quirk`` (upstream keeps it) the lease expires
    2 × ``lease_duration`` (``lease-expiration-duration-in-seconds`` 90)
    after the last renewal, without it 1 ×
    (:class:`simcomm.discovery.eureka.Lease`);
    ``AbstractInstanceRegistry.evict()`` runs every ``eviction_interval``
    (``eureka.server.eviction-interval-timer-in-ms`` 60 s); then the
    read-only response cache (``ResponseCacheImpl``, refreshed every
    ``response_cache_update_interval``,
    ``eureka.server.response-cache-update-interval-ms`` 30 s; 0 or
    ``use_read_only_response_cache=False``: none); the client's
    ``CacheRefreshThread`` every ``registry_fetch_interval``
    (``eureka.client.registry-fetch-interval-seconds`` 30; a fetch round
    trip, 2 latencies); Ribbon's ``PollingServerListUpdater`` every
    ``server_list_refresh_interval`` (``ServerListRefreshInterval`` 30 s).
    Defaults: 150 .. 330 s, mean 240 s.  It assumes self-preservation lets
    the eviction happen (with few instances one lost renewer can switch it
    on: then nothing is evicted and the lag is the run's), and an instance
    that renewed at least once (one only registered expires 1 × duration
    after it).  A hang: the heartbeat thread keeps renewing -- never
    detected (inf).  ``registration="registrar"`` (Netflix Prana's sidecar,
    a third-party registrar): its probes (``period``, ``timeout``,
    ``failure_threshold``) find the death, it cancels the lease, and the
    response cache, fetch and list refresh follow.

    **consul**: ``check="ttl"`` (self-registration, Spring Cloud Consul's
    heartbeat): the last pass was 0 to ``heartbeat_interval`` before the
    crash (default ``ttl`` × 2/3 within [1, ``ttl`` − 1], Spring Cloud
    Consul's ``HeartbeatProperties.computeHeartbeatInterval``: 20 s), and
    the check turns critical ``ttl`` (the check's ``TTL``, 30 s) after it:
    ``ttl − heartbeat_interval`` .. ``ttl``; a critical instance drops out
    of ``?passing`` queries at once and the parked blocking query is
    answered (1 latency).  A hang: the heartbeat goes on (inf).
    ``check="http"`` (the agent probes: ``Interval`` ``check_interval``
    10 s, ``Timeout`` ``check_timeout`` 10 s, ``failures_before_critical``
    0): critical at the first failed check.

    **kubernetes**: a crash -- the kubelet's PLEG relist (``relistPeriod``,
    ``pleg_period`` 1 s) sees the container exit and marks the pod unready;
    a hang -- ``failure_threshold`` failed readiness probes
    (``periodSeconds`` ``period`` 10, ``timeoutSeconds`` ``timeout`` 1,
    ``failureThreshold`` 3); a node failure -- its lease was renewed 0 to
    ``heartbeat_interval`` (the kubelet's node lease renewal, 10 s) before;
    the node lifecycle controller (every ``node_monitor_period``,
    ``--node-monitor-period`` 5 s) sees that renewal at its next pass (0 ..
    5 s) and stamps the node with its own clock (``tryUpdateNodeHealth``:
    ``probeTimestamp = nc.now()``), then marks it NotReady at the first
    pass strictly more than ``node_monitor_grace_period``
    (``--node-monitor-grace-period`` 40 s) after the stamp -- on the same
    grid, so ``k × period`` after it (45 s by default).  From the last
    renewal that is 45 .. 50 s (:func:`simcomm.discovery.kubernetes.
    node_not_ready_bounds`), so 35 .. 50 s after the failure.  Then the
    endpoints watch answers and kube-proxy applies it
    within ``proxy_sync`` (``--iptables-min-sync-period`` 1 s: at once after
    a quiet second, else at the end of it).

    **dns**: a registrar's probes find the death and delete the A record --
    by default Route 53's health checks (``RequestInterval`` ``period`` 30 s,
    about ``timeout`` 4 s to answer, ``FailureThreshold`` 3, as
    :data:`simcomm.discovery.registrar.ROUTE53_PROBE`); a client's cached
    answer lives on until its ``ttl`` (60 s) runs out: 0 .. ``ttl``.
    Defaults: 60 .. 150 s after a crash.
    """
    if registry not in REGISTRIES:
        raise ParamError("registry", registry, f"one of {', '.join(REGISTRIES)}")
    if fault not in ("crash", "hang", "node_failure"):
        raise ParamError("fault", fault, "'crash', 'hang' or 'node_failure'")
    t = _timings(registry, timings)
    lat = t["latency"]
    kind = "crash" if fault == "node_failure" and registry != "kubernetes" else fault
    parts: list[tuple[LagTerm, str]] = []
    never = (LagTerm("never detected", math.inf, math.inf, math.inf),
             "the heartbeat thread keeps renewing while the instance hangs")
    if registry == "eureka":
        if t["registration"] == "self":
            if kind == "hang":
                return _bounds(registry, fault, [never])
            d, r = t["lease_duration"], t["renewal_interval"]
            k = 2 if t["lease_expiry_quirk"] else 1
            parts.append((LagTerm("lease expiry", k * d - r, k * d, k * d - r / 2),
                          f"{k} × lease_duration {d:g} − time since the last renewal "
                          f"(0 .. renewal_interval {r:g})"))
            parts.append(_periodic("eviction wait", t["eviction_interval"],
                                   f"the eviction task (eviction_interval "
                                   f"{t['eviction_interval']:g})"))
            hops = 2
        else:
            parts.extend(_probes(t, kind, "the registrar"))
            hops = (2 if kind == "crash" else 1) + 1 + 2
        cache = (t["response_cache_update_interval"]
                 if t["use_read_only_response_cache"] else 0.0)
        parts.append(_periodic("response cache", cache, "the read-only response cache's "
                               f"refresh (response_cache_update_interval {cache:g})"))
        f = t["registry_fetch_interval"]
        parts.append(_periodic("client fetch", f, f"the client's registry fetch "
                               f"(registry_fetch_interval {f:g})"))
        s = t["server_list_refresh_interval"]
        parts.append(_periodic("ribbon refresh", s, f"Ribbon's server list refresh "
                               f"(ServerListRefreshInterval {s:g})"))
        parts.append(_hops(hops, lat, "probe, cancel and fetch messages on the way"
                           if t["registration"] == "registrar" else "the fetch round trip"))
    elif registry == "consul":
        if t["check"] == "ttl":
            if kind == "hang":
                return _bounds(registry, fault, [never])
            ttl = t["ttl"]
            hb = t["heartbeat_interval"]
            if hb is None:
                # Spring Cloud Consul's HeartbeatProperties.computeHeartbeatInterval:
                # ttl × 2/3, at least 1 s, at most ttl − 1 s (the later bound wins)
                hb = round(1000.0 * min(ttl - 1.0, max(ttl * 2 / 3, 1.0))) / 1000.0
                if hb <= 0:
                    hb = ttl * 2 / 3
            if hb > ttl:
                raise ParamError("heartbeat_interval", hb, f"at most ttl ({ttl:g})")
            parts.append((LagTerm("ttl expiry", ttl - hb, ttl, ttl - hb / 2),
                          f"ttl {ttl:g} − time since the last pass "
                          f"(0 .. heartbeat_interval {hb:g})"))
            hops = 1
        else:
            ci, ct = t["check_interval"], t["check_timeout"]
            parts.append(_periodic("next check", ci, f"the agent's HTTP check "
                                   f"(check_interval {ci:g})"))
            if kind == "hang":
                parts.append((LagTerm("check timeout", ct, ct, ct),
                              f"a hung instance never answers: check_timeout {ct:g}"))
            hops = 3 if kind == "crash" else 2
        parts.append((LagTerm("blocking query", 0.0, 0.0, 0.0),
                      "the parked query is answered as soon as the instance turns critical"))
        parts.append(_hops(hops, lat, "check and blocking-query messages on the way"))
    elif registry == "kubernetes":
        if kind == "crash":
            parts.append(_periodic("PLEG relist", t["pleg_period"],
                                   f"the kubelet's PLEG relist (pleg_period {t['pleg_period']:g})"))
            hops = 2
        elif kind == "hang":
            parts.extend(_probes(t, kind, "the kubelet"))
            hops = 3
        else:
            hb, g, m = (t["heartbeat_interval"], t["node_monitor_grace_period"],
                        t["node_monitor_period"])
            parts.append((LagTerm("lease age", -hb, 0.0, -hb / 2),
                          f"minus the node lease's age at the failure "
                          f"(0 .. heartbeat_interval {hb:g})"))
            parts.append((LagTerm("grace period", g, g, g),
                          f"node_monitor_grace_period {g:g}"))
            parts.append(_periodic("lease seen", m, f"the node lifecycle controller to see "
                                   f"the last renewal and stamp it with its own clock "
                                   f"(node_monitor_period {m:g})"))
            # its passes keep the grid of the stamping pass: the first one strictly
            # more than the grace after the stamp is k × m after it
            k = math.floor(g / m + 1e-9) + 1
            c = k * m - g
            parts.append((LagTerm("pass after grace", c, c, c),
                          f"the first pass strictly after the grace: {k} × "
                          f"node_monitor_period {m:g} − grace {g:g}"))
            hops = 1
        ps = t["proxy_sync"]
        parts.append((LagTerm("kube-proxy sync", 0.0, ps, ps / 2),
                      f"kube-proxy's rule sync (0 .. proxy_sync {ps:g})"))
        parts.append(_hops(hops, lat, "status and watch messages on the way"))
    else:  # dns
        parts.extend(_probes(t, kind, "the registrar"))
        ttl = t["ttl"]
        parts.append(_periodic("cached answer", ttl, f"the expiry of the client's cached "
                               f"answer (ttl {ttl:g})"))
        hops = (2 if kind == "crash" else 1) + 1 + 2
        parts.append(_hops(hops, lat, "probe, deregister and query messages on the way"))
    return _bounds(registry, fault, parts)


def _bounds(registry: str, fault: str, parts: Iterable[tuple[LagTerm, str]]) -> LagBounds:
    """A :class:`LagBounds` of the (term, formula) pairs, leaving out network
    terms of 0 (no latency given)."""
    kept = [(t, f) for t, f in parts if not (t.name == "network" and t.hi == 0.0)]
    return LagBounds(registry, fault, tuple(t for t, _ in kept), tuple(f for _, f in kept))
