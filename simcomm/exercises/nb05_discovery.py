"""Exercises of notebook 05, service discovery: the lag, a graceful shutdown, self-preservation.

* **05.1** -- the longest detection lag after a crash without cancel, with
  Eureka's lease tuned down (renewal 10 s, duration 30 s) and every other
  timing left at Netflix's default: the worked sum of
  :func:`simcomm.analysis.discovery.lag_bounds`, term by term (lease expiry
  with the expiry quirk, the eviction task, the read-only response cache,
  the client's fetch, Ribbon's list refresh).
* **05.2** -- a clean shutdown that no call reaches after the stop: the
  cancel only starts the caches' lag, so the drain
  (``discovery``'s ``drain``, Spring's
  ``server.shutdown=graceful`` + a pre-stop wait) must outlast the response
  cache, the client's fetch and Ribbon's refresh -- or the caches must be
  made shorter.  The checker runs ``discovery`` with the learner's settings.
* **05.3** -- self-preservation in a small fleet: Eureka stops evicting when
  the renewals of the last minute are not above ``int(expected × 0.85)``
  (``PeerAwareInstanceRegistryImpl.isLeaseExpirationEnabled``), so one dead
  instance among few blocks its own eviction.  The smallest fleet in which
  a crashed instance (not replaced) is still evicted comes from
  :class:`simcomm.discovery.eureka.EurekaRegistry`'s own threshold.

Expected values come from the ``discovery`` scenario's defaults and the
package's arithmetic, never typed in; tests/test_exercises_05.py holds each
premise against runs.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from simcomm.exercises._core import (
    Exercise,
    Feedback,
    Miss,
    Number,
    Settings,
    not_yet,
    params,
    register,
    right,
)
from simcomm.scenarios import discovery as _discovery

if TYPE_CHECKING:
    from simcomm.analysis.discovery import LagBounds
    from simcomm.result import Result

NOTEBOOK = "05-service-discovery"
SCENARIO = "discovery"


_params = functools.partial(params, SCENARIO)


def eureka_bounds(p: Any, **override: Any) -> LagBounds:
    """The Eureka lag's bounds for ``discovery`` Params ``p`` (self-registration,
    client-side), each knob passed to :func:`lag_bounds` under its name there;
    ``override`` replaces any of them."""
    from simcomm.analysis.discovery import lag_bounds

    timings = {"renewal_interval": p.eureka_renewal_interval,
               "lease_duration": p.eureka_lease_duration,
               "eviction_interval": p.eureka_eviction_interval,
               "response_cache_update_interval": p.eureka_cache_interval,
               "registry_fetch_interval": p.eureka_fetch_interval,
               "server_list_refresh_interval": p.ribbon_refresh_interval,
               "lease_expiry_quirk": p.eureka_quirk}
    timings.update(override)
    return lag_bounds("eureka", **timings)


# -- 05.1: the longest lag with a shorter lease -------------------------------------------

#: 05.1's tuning: renew every 10 s, a lease of 30 s; every other timing the default.
LEASE_SETTINGS: dict[str, Any] = {"eureka_renewal_interval": 10.0,
                                  "eureka_lease_duration": 30.0}


def _lease_params() -> Any:
    return _params(**LEASE_SETTINGS)


def _longest() -> float:
    return eureka_bounds(_lease_params()).upper


def _explain_longest() -> str:
    b = eureka_bounds(_lease_params())
    terms = " + ".join(f"{t.hi:g} ({t.name})" for t in b.terms)
    return (f"{terms} = {b.upper:g} s. The lease part is what the tuning shortened; the "
            f"other {b.upper - b.terms[0].hi:g} s are the eviction task and three caches, "
            f"each met at a random phase, untouched. On average a crash is noticed after "
            f"{b.mean:g} s, at the soonest after {b.lower:g} s. Shortening the lease costs "
            f"renewals: three times as many messages to the registry.")


register(Exercise(
    id="05.1",
    notebook=NOTEBOOK,
    title="The longest lag with a shorter lease",
    question=(
        f"In `discovery` (Eureka, client-side), the team shortens the lease: each order "
        f"instance renews every {LEASE_SETTINGS['eureka_renewal_interval']:g} s and a lease "
        f"not renewed for {LEASE_SETTINGS['eureka_lease_duration']:g} s expires "
        f"(`eureka_renewal_interval={LEASE_SETTINGS['eureka_renewal_interval']:g}, "
        f"eureka_lease_duration={LEASE_SETTINGS['eureka_lease_duration']:g}`); every other "
        f"timing keeps its default, the expiry quirk included. An instance crashes without "
        f"a cancel. At the **most**, how many seconds after the crash can the gateway still "
        f"send it a call (the upper bound of the worked sum)? Answers within ±1 % count."),
    check=Number(
        _longest, unit="s", rel=0.01,
        misses=[
            Miss(lambda: eureka_bounds(_lease_params(), lease_expiry_quirk=False).upper,
                 "that leaves out the expiry quirk: a renewal sets the expiry one lease "
                 "duration too far, so the lease runs out 2 × the duration after the last "
                 "renewal."),
            Miss(lambda: _longest() - _lease_params().eureka_eviction_interval,
                 "an expired lease stays until the eviction task runs; add its period."),
            Miss(lambda: eureka_bounds(_lease_params()).mean,
                 "that is the average lag, each timer met half-way; the question asks for "
                 "the longest."),
            Miss(lambda: eureka_bounds(_lease_params()).lower,
                 "that is the shortest lag; the question asks for the longest."),
            Miss(lambda: eureka_bounds(_params()).upper,
                 "that is the longest lag with the default lease (30 s renewals, 90 s "
                 "duration)."),
        ],
        explain=_explain_longest, digits=4),
    hints=(
        "Follow the dead instance's entry from the registry to the gateway: when does its "
        "lease run out, who removes it, and which caches hold it after that?",
        "Worst case: the crash came just after a renewal, and every periodic task on the "
        "way had just run. The lease (with the quirk) ends 2 × 30 s after the last renewal; "
        "then the eviction task, the response cache, the client's fetch and Ribbon's "
        "refresh each add up to one period.",
        lambda: " + ".join(f"{t.hi:g}" for t in eureka_bounds(_lease_params()).terms) + ".",
    ),
))

# -- 05.2: a clean shutdown that no call reaches --------------------------------------------

#: 05.2's churn: one order instance shuts down cleanly at churn_at (a cancel first).
SHUTDOWN_FIXED: dict[str, Any] = {"churn": "shutdown"}
SHUTDOWN_ALLOWED = ("drain", "eureka_cache_interval", "eureka_fetch_interval",
                    "ribbon_refresh_interval", "retry_next_server")
#: The checker's run: long enough for the longest drain the answer may sensibly give.
SHUTDOWN_UNTIL = 400.0


def cache_lag(p: Any) -> float:
    """The longest time from a cancel to the gateway's list dropping the instance, for
    ``discovery`` Params ``p``: the response cache, the client's fetch and Ribbon's
    refresh, each a whole period at worst (the network's milliseconds left out)."""
    return p.eureka_cache_interval + p.eureka_fetch_interval + p.ribbon_refresh_interval


def shutdown_report(res: Result) -> dict[str, Any]:
    """Of a ``discovery`` run with one clean shutdown: ``stale`` (calls sent to the
    instance after it stopped), ``failed`` (user requests not answered), ``last``
    (when the gateway sent it its last call), ``stopped`` (when it stopped) and the
    registry's messages per second."""
    s = res.summary()
    det = res.detection()
    stopped = float(det["died"].iloc[0]) if len(det) else math.nan
    routes = res.routes
    gone = str(det["instance"].iloc[0]) if len(det) else None
    last = float(routes.loc[routes["instance"] == gone, "time"].max()) if gone else math.nan
    return {"instance": gone, "stale": int(s["stale_calls"]), "failed": int(s["failed"]),
            "last": last,
            "stopped": stopped, "messages_per_s": float(s["registry_messages_per_s"])}


def _judge_shutdown(res: Result, answer: Mapping[str, Any]) -> Feedback:
    p = res.params
    rep = shutdown_report(res)
    lag = cache_lag(p)
    said = (f"{rep['instance']} deregistered at {p.churn_at:g} s and stopped at "
            f"{rep['stopped']:g} s after a drain of {p.drain:g} s; the gateway sent it its "
            f"last call at "
            f"{rep['last']:.1f} s")
    if rep["stale"] == 0 and rep["failed"] == 0:
        cost = (f" The price of shorter caches: {rep['messages_per_s']:.2f} registry "
                f"messages per second." if lag < cache_lag(_params()) else "")
        return right(
            f"{said}: no call reached it after the stop, and every request was answered. "
            f"The cancel reaches the registry at once, but the gateway learns of it only "
            f"through the response cache ({p.eureka_cache_interval:g} s), its own fetch "
            f"({p.eureka_fetch_interval:g} s) and Ribbon's refresh "
            f"({p.ribbon_refresh_interval:g} s): up to {lag:g} s, which the drain "
            f"({p.drain:g} s) outlasts.{cost}")
    if rep["stale"] and rep["failed"] == 0:
        return not_yet(
            f"{said}: {rep['stale']} calls still went to it after it stopped. The retry on "
            f"another instance answered the users, but each of those calls failed first "
            f"and cost a round trip -- the stopped instance was still in the gateway's "
            f"list. Make the list let go before the stop.")
    return not_yet(
        f"{said}: {rep['stale']} calls reached it after it stopped and {rep['failed']} "
        f"requests failed. The caches between the registry and the gateway can keep the "
        f"instance in the list for up to {lag:g} s after the cancel, and a drain of "
        f"{p.drain:g} s is shorter than that.")


register(Exercise(
    id="05.2",
    notebook=NOTEBOOK,
    title="A clean shutdown that no call reaches",
    question=(
        f"In `discovery` (Eureka, client-side) with `churn=\"shutdown\"`, order-2 shuts "
        f"down cleanly at {_params().churn_at:g} s: it cancels its lease at once, serves "
        f"for `drain` seconds (default {_params().drain:g}), then stops. Choose settings so "
        f"that **no call reaches it after it stops** and every user request is answered. "
        f"You may set `drain` and the three cache periods (`eureka_cache_interval`, "
        f"`eureka_fetch_interval`, `ribbon_refresh_interval`), and `retry_next_server`. "
        f"Give a dict such as `{{\"drain\": 10}}`. The checker runs `discovery` with your "
        f"settings and says when the last call went to order-2."),
    check=Settings(
        SCENARIO, allowed=SHUTDOWN_ALLOWED, fixed=SHUTDOWN_FIXED, judge=_judge_shutdown,
        solution={"drain": cache_lag(_params()) + 5.0}, seed=1, until=SHUTDOWN_UNTIL,
        trace=False),
    hints=(
        "The cancel removes order-2 from the registry at once. How long can the gateway's "
        "list still hold it after that?",
        "Three periodic caches stand between the registry and the balancer: the server's "
        "response cache, the client's fetch and Ribbon's list refresh. At worst each "
        "takes a whole period.",
        lambda: (f"Drain longer than {_params().eureka_cache_interval:g} + "
                 f"{_params().eureka_fetch_interval:g} + "
                 f"{_params().ribbon_refresh_interval:g} s."),
    ),
))

# -- 05.3: the smallest fleet that still evicts ------------------------------------------

#: 05.3's churn: one instance crashes and is not replaced.
EVICT_SETTINGS: dict[str, Any] = {"churn": "crash", "replace_after": 0.0}


def evicts(n: int, p: Any | None = None) -> bool:
    """Whether Eureka evicts one crashed (not replaced) instance among ``n``: the
    ``n − 1`` live ones renew ``n − 1`` × (60 / renewal interval) times a minute,
    which must be strictly above the threshold the registry computes for ``n``
    leases (:attr:`EurekaRegistry.renews_threshold`)."""
    from simcomm.discovery.eureka import EurekaRegistry

    p = p if p is not None else _params(**EVICT_SETTINGS)
    registry = EurekaRegistry(renewal_interval=p.eureka_renewal_interval,
                              lease_duration=p.eureka_lease_duration)
    for i in range(1, n + 1):
        registry.register(_discovery.SERVICE, f"{_discovery.SERVICE}-{i}", 0.0)
    renews = (n - 1) * 60.0 / p.eureka_renewal_interval
    return renews > registry.renews_threshold


def _pct_threshold() -> float:
    """Eureka's ``renewal-percent-threshold`` default (0.85)."""
    from simcomm.discovery.eureka import EurekaRegistry

    return float(EurekaRegistry().renewal_percent_threshold)


def smallest_evicting_fleet() -> int:
    """The smallest ``instances`` (at least 2) for which :func:`evicts` holds."""
    n = 2
    while not evicts(n):
        n += 1
    return n


def _explain_fleet() -> str:
    n = smallest_evicting_fleet()
    p = _params(**EVICT_SETTINGS)
    per = 60.0 / p.eureka_renewal_interval
    pct = _pct_threshold()

    def thr(k: int) -> int:
        return int(k * per * pct)

    return (f"With {n} instances the registry expects {n} × {per:g} = {n * per:g} renewals "
            f"a minute and switches eviction off at {thr(n)} or fewer ({pct * 100:g} %, "
            f"truncated); the {n - 1} live ones send {(n - 1) * per:g}, so the dead one is "
            f"evicted. With {n - 1}: {(n - 2) * per:g} renewals against a threshold of "
            f"{thr(n - 1)} -- self-preservation holds the dead instance forever. Eureka "
            f"reads a missing renewal as a network problem, not a death; in a small fleet "
            f"one death is already too many missing renewals.")


register(Exercise(
    id="05.3",
    notebook=NOTEBOOK,
    title="Too few instances to evict",
    question=(
        "In `discovery` (Eureka, self-preservation on, as by default) one order instance "
        "crashes and is not replaced (`replace_after=0`). Eureka evicts it only if the "
        f"renewals of the last minute are strictly above {_pct_threshold() * 100:g} % of "
        "those it expects "
        "(truncated to a whole number), each instance renewing every "
        f"{_params().eureka_renewal_interval:g} s. What is the **smallest number of "
        "instances** (`instances`) for which the crashed one is still evicted? Give a "
        "whole number."),
    check=Number(
        smallest_evicting_fleet, unit="instances", whole=True,
        misses=[
            Miss(lambda: smallest_evicting_fleet() - 1,
                 "with that many the live ones renew exactly as often as the threshold, "
                 "and eviction needs strictly more."),
        ],
        explain=_explain_fleet),
    hints=(
        "With n instances the registry expects 2n renewals a minute; after one crash, "
        "n − 1 instances renew.",
        "Eviction needs 2(n − 1) > int(0.85 × 2n). Try n = 4, 5, 6, ...",
    ),
))
