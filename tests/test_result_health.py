"""What a Result says about load (issue 6, items 3, 4 and 10): the busy-time
integrals behind utilisation, every pool and link, the bottleneck, the
summary's overload keys and the overload warnings.

The small worlds here are built so that every number can be worked out by
hand; the scenario runs are the cases the issue quoted.
"""

from __future__ import annotations

import math
import warnings
from types import SimpleNamespace

import pytest

import simcomm
from simcomm.analysis.metrics import time_average
from simcomm.engine import ClosedLoop, Constant, Instance, Node, World
from simcomm.errors import OverloadWarning, ParamError
from simcomm.result import (
    MESSAGING_KEYS,
    MIN_PENDING,
    PENDING_SHARE,
    REQUEST_KEYS,
    SATURATED,
    SUMMARY_HELP,
    SUMMARY_UNITS,
    Result,
)
from simcomm.scenarios import base

HEALTH_KEYS = ("completed_share", "pending_share", "offered_rate", "capacity", "offered_load",
               "bottleneck", "bottleneck_utilisation", "stable")


def quiet_run(*args, **kwargs) -> Result:
    """simcomm.run without the OverloadWarning it issues for an overloaded run
    (that is simcomm.run's business, tested with it; here we read the Result)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OverloadWarning)
        return simcomm.run(*args, **kwargs)


def one_user(trace: bool = True, **instance) -> World:
    """One user who thinks 1 s, asks, waits; a one-worker server that takes
    1 s; an instant network; run to t=10.

    Requests go at 1, 3, 5, 7 and 9 and are answered 1 s later, except the
    last, still in service when the run stops at 10: 5 requests, 4
    completed, 1 pending; the worker is busy 1-2, 3-4, 5-6, 7-8 and 9-10,
    5 s of 10.
    """
    w = World(0, trace=trace)
    Instance(w, "srv", service_time=Constant(1.0), **instance)
    ClosedLoop(w, "users", "srv", 1, Constant(1.0))
    w.run(10)
    return w


# -- utilisation from the integrals ---------------------------------------------------------

@pytest.mark.parametrize("trace", [True, False])
def test_summary_health_keys_of_a_run_worked_out_by_hand(trace):
    res = Result(one_user(trace))
    s = res.summary()
    assert (s["requests"], s["completed"], s["pending"]) == (5, 4, 1)
    assert s["completed_share"] == 4 / 5
    assert s["pending_share"] == 1 / 5
    assert s["offered_rate"] == 5 / 10
    assert s["throughput"] == 4 / 10
    assert s["bottleneck"] == "srv"
    assert s["bottleneck_utilisation"] == 5 / 10
    # no model of the scenario: the utilisation law, throughput / utilisation
    assert s["capacity"] == pytest.approx(0.4 / 0.5)
    assert s["offered_load"] == pytest.approx(0.5 / 0.8)
    # one pending request of five is a large share but a handful: no backlog
    assert s["stable"] is True and res.warnings() == []


def test_trace_on_and_off_give_the_same_utilisation_and_summary():
    run = dict(seed=2, until=2000, arrival_rate=0.9, service_distribution="constant")
    on = quiet_run("mmc", **run)
    off = quiet_run("mmc", **run, trace=False)
    assert off.pools.empty
    assert on.utilisation() == off.utilisation()
    u = on.utilisation()["server-1"]
    # every service takes 1 s: busy time = completed requests x 1 s, plus
    # less than 1 s of the one in service at the end
    assert 0 <= u * 2000 - on.summary()["completed"] < 1
    # the integral agrees with the step integral of the traced pool table
    assert u == pytest.approx(time_average(on.pools, "server-1", "busy", 0.0, 2000.0),
                              rel=1e-9)
    assert on.summary() == off.summary()


def test_links_trace_on_and_off_agree():
    on = quiet_run("formats", seed=1, until=5.0)
    off = quiet_run("formats", seed=1, until=5.0, trace=False)
    assert on.link_utilisation() == off.link_utilisation()
    assert len(on.link_utilisation()) == 4  # both directions of both hops
    assert on.summary() == off.summary()


def test_link_utilisation_from_message_sizes_and_bandwidth():
    """The user's 2000-byte request crosses a 1000 B/s link in 2 s, then the
    server takes 0.5 s and answers with an empty reply.  Requests go at 1,
    4.5 and 8: the link is busy 1-3, 4.5-6.5 and 8-10 (6 s of 10), the
    worker 3-3.5 and 6.5-7 (1 s of 10)."""
    w = World(0, trace=False)
    Instance(w, "srv", service_time=Constant(0.5))
    ClosedLoop(w, "users", "srv", 1, Constant(1.0), body={"text": "x" * 1989},
               format="json")
    w.network.link("users", "srv", bandwidth=1000.0)
    w.run(10)
    res = Result(w)
    assert res.link_utilisation() == {"users → srv": pytest.approx(0.6)}  # the reply is 0 B
    assert res.utilisation() == {"srv": pytest.approx(0.1)}
    table = res.resources()
    assert list(table.columns) == ["resource", "kind", "utilisation"]
    assert table.values.tolist() == [["users → srv", "link", pytest.approx(0.6)],
                                     ["srv", "workers", pytest.approx(0.1)]]
    neck = res.bottleneck()
    assert neck == {"resource": "users → srv", "kind": "link",
                    "utilisation": pytest.approx(0.6), "text": "the users → srv link is 60 % busy"}


def test_workers_bottleneck_text():
    neck = Result(one_user()).bottleneck()
    assert neck == {"resource": "srv", "kind": "workers", "utilisation": 0.5,
                    "text": "srv's workers are 50 % busy"}


def test_a_world_without_pools_or_links_has_no_bottleneck():
    w = World(0)
    Node(w, "lonely")
    w.run(1)
    res = Result(w)
    assert res.resources().empty
    neck = res.bottleneck()
    assert neck["resource"] is None and neck["kind"] is None
    assert math.isnan(neck["utilisation"])
    s = res.summary()
    assert s["requests"] == 0 and math.isnan(s["pending_share"]) and math.isnan(s["capacity"])
    assert s["stable"] is True and res.warnings() == []


def test_utilisation_from_a_later_start_needs_the_trace():
    on = quiet_run("mmc", seed=3, until=1000)
    late = on.utilisation(start=500)["server-1"]
    assert late == pytest.approx(time_average(on.pools, "server-1", "busy", 500, 1000))
    off = quiet_run("mmc", seed=3, until=1000, trace=False)
    with pytest.raises(ParamError) as info:
        off.utilisation(start=500)
    assert info.value.field == "start" and "trace=True" in str(info.value)
    for bad in (-1.0, 1000, math.nan, "10", None):
        with pytest.raises(ParamError) as info:
            on.utilisation(start=bad)
        assert info.value.field == "start"


# -- the summary's units and meanings ------------------------------------------------------

def test_every_summary_key_has_a_unit_and_a_meaning():
    s = Result(one_user()).summary()
    assert set(HEALTH_KEYS) <= set(s)
    # a run without messaging has no messaging keys (tests/test_messaging_results.py),
    # nor the load keys of a run of messages alone
    alone = {"publish_rate", "message_capacity"}
    # nor the keys of keyed records (issue 9: tests/test_result_records.py)
    from simcomm.result import DELIVERY_KEYS, RECORD_KEYS

    alone |= ({*DELIVERY_KEYS, *RECORD_KEYS, "records_pending", "produce_rate",
               "record_capacity"} - {"pending"})
    # nor the keys of service discovery (issue 10: tests/test_discovery_analysis.py)
    from simcomm.result import DISCOVERY_KEYS

    alone |= set(DISCOVERY_KEYS)
    assert set(SUMMARY_UNITS) - set(MESSAGING_KEYS) - alone == set(s) == (
        set(SUMMARY_HELP) - set(MESSAGING_KEYS) - alone)
    assert SUMMARY_UNITS["capacity"] == SUMMARY_UNITS["offered_rate"] == "req/s"
    assert SUMMARY_UNITS["pending_share"] == SUMMARY_UNITS["availability"] == "fraction"
    assert "pending" in SUMMARY_HELP["availability"]  # what availability leaves out
    assert all(text and "\n" not in text for text in SUMMARY_HELP.values())


# -- overload --------------------------------------------------------------------------------

def test_mmc_at_twice_its_capacity_is_unmistakable():
    """The issue's case: lambda = 2, mu = 1, one server.  Availability stays
    1.0 (nothing failed), but half the requests never finished."""
    res = quiet_run("mmc", seed=1, until=10_000, arrival_rate=2.0, service_rate=1.0,
                    servers=1)
    s = res.summary()
    assert s["availability"] == 1.0
    assert s["pending_share"] == pytest.approx(0.5, abs=0.03)
    assert s["completed_share"] + s["pending_share"] == pytest.approx(1.0)
    assert s["bottleneck"] == "server-1" and s["bottleneck_utilisation"] >= SATURATED
    assert s["offered_rate"] == pytest.approx(2.0, rel=0.02)
    assert s["capacity"] == pytest.approx(1.0, rel=0.02)
    assert s["offered_load"] == pytest.approx(2.0, rel=0.03)
    assert s["stable"] is False
    [text] = res.warnings()
    pending, n = s["pending"], s["requests"]
    assert text.startswith(f"overloaded: {pending:,} of {n:,} requests".replace(",", " "))
    assert f"({s['pending_share'] * 100:.0f} %) were still pending at the end" in text
    assert "server-1's workers are 100 % busy" in text
    assert "offered 2.0 req/s against" in text and "capacity of about 1.0 req/s" in text
    assert text.endswith("availability counts finished requests only.")
    assert "\n" not in text


def test_formats_run_limited_by_the_link_names_the_link():
    """At 1000 orders/s of 2000 lines over 100 Mbit/s the wire, not the CPU,
    saturates: the bottleneck is a link and the run is flagged."""
    res = quiet_run("formats", request_rate=1000, order_lines=2000, until=10.0)
    s = res.summary()
    neck = res.bottleneck()
    assert neck["kind"] == "link" and neck["resource"] == s["bottleneck"]
    assert " → " in neck["resource"] and neck["utilisation"] >= SATURATED
    links = res.resources()
    assert (links[links["kind"] == "workers"]["utilisation"] < 0.9).all()  # CPU has room
    assert s["stable"] is False and s["pending_share"] > 0.5 and s["offered_load"] > 1
    [text] = res.warnings()
    assert text.startswith("overloaded: ") and f"the {neck['resource']} link is 100 % busy" in text


@pytest.mark.parametrize(("scenario", "params"), [
    ("mmc", {}),  # rho 0.8
    ("chain", {}),
    ("chain", {"last_service_hangs": True}),  # a hang of 30 s that ends: not overload
    ("formats", {"until": 10.0}),
])
def test_healthy_defaults_have_no_warnings(scenario, params):
    res = quiet_run(scenario, **params)
    s = res.summary()
    assert res.warnings() == []
    assert s["stable"] is True
    assert s["bottleneck_utilisation"] < SATURATED and s["offered_load"] < 1
    assert s["pending_share"] <= PENDING_SHARE


def test_a_hang_lasting_to_the_end_is_reported_as_stuck_not_overloaded():
    res = quiet_run("chain", last_service_hangs=True, hang_at=0.0, hang_duration=3600.0)
    s = res.summary()
    assert s["stable"] is False and s["completed"] == 0
    assert s["offered_load"] < 1  # the model says the chain could carry the load
    [text] = res.warnings()
    assert text.startswith("stuck: ") and "kitchen-1 was hanging at the end" in text
    assert f"{s['bottleneck']}'s workers are" in text


def test_a_backlog_alone_is_reported_as_unfinished():
    """Twenty users each ask once at t=1 a server of 100 workers that takes
    100 s: at t=50 all 20 are pending, the pool is only 20 * 49 / (100 * 50)
    = 19.6 % busy -- not overloaded, but the summary covers nothing."""
    w = World(0)
    Instance(w, "srv", workers=100, service_time=Constant(100.0))
    ClosedLoop(w, "users", "srv", 20, Constant(1.0))
    w.run(50)
    res = Result(w)
    s = res.summary()
    assert s["pending"] == 20 >= MIN_PENDING and s["pending_share"] == 1.0
    assert s["bottleneck_utilisation"] == pytest.approx(0.196)
    assert math.isnan(s["capacity"])  # nothing completed: no estimate
    assert s["stable"] is False
    [text] = res.warnings()
    assert text.startswith("unfinished: 20 of 20 requests (100 %) were still pending")
    assert "srv's workers are 20 % busy" in text and "too short" in text


def test_a_capacity_from_the_scenarios_model_judges_the_offered_load():
    """The same hand-worked run against a model that says 0.25 req/s: the
    offered 0.5 req/s is twice that, so the run is overloaded even though
    the server was only half busy."""
    model = SimpleNamespace(name="toy", capacity=lambda p: 0.25)
    res = Result(one_user(), scenario=model, params=object())
    s = res.summary()
    assert s["capacity"] == 0.25 and s["offered_load"] == 2.0
    assert s["stable"] is False
    [text] = res.warnings()
    assert text.startswith("overloaded: 1 of 5 requests (20 %)")
    assert "offered 0.5 req/s against a capacity of about 0.25 req/s" in text
    # a scenario without a model (or a hand-built world) falls back to the estimate
    assert Result(one_user(), scenario=SimpleNamespace(name="toy"), params=object()
                  ).summary()["capacity"] == pytest.approx(0.8)


def test_result_itself_issues_no_python_warning():
    res = quiet_run("mmc", seed=1, until=2000, arrival_rate=2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert res.warnings() and res.summary()["stable"] is False
        res.bottleneck()
        res.resources()


def test_a_retry_storm_that_outlives_its_trigger_is_not_called_stable():
    """Metastable failure: the service stays saturated after the slowdown ends,
    though the whole-run mean is below saturation and users wait in a closed
    loop (no backlog).  The last quarter of the run gives it away."""
    storm = simcomm.run("retry-storm", seed=1, warn=False, progress=False)
    s = storm.summary()
    assert s["bottleneck_utilisation"] < SATURATED  # diluted by the calm before
    assert not s["stable"]
    (text,) = storm.warnings()
    assert text.startswith("overloaded:")
    assert "busy over the last 25 % of the run: the overload outlived what started it" in text
    calm = simcomm.run("retry-storm", seed=1, retry_backoff="exponential", warn=False,
                       progress=False)
    assert calm.summary()["stable"] and calm.warnings() == []


def test_a_short_run_busy_at_its_end_by_chance_is_not_overload():
    """50 s of M/M/1 at 80 %: its last 12.5 s can be busy throughout, but a
    dozen arrivals say nothing about overload (LATE_MIN_ARRIVALS)."""
    res = simcomm.run("mmc", seed=0, until=50, warn=False, progress=False)
    assert res.utilisation(start=37.5)["server-1"] >= SATURATED  # busy at the end...
    assert res.summary()["stable"] and res.warnings() == []      # ...by chance


# -- a run of messages alone ------------------------------------------------------------------

def test_a_run_of_messages_alone_is_summarised_in_messages():
    """No users wait for replies: no request keys (a row of zeros and NaNs says
    nothing), the load in messages per second, and the warning counts messages."""
    res = quiet_run("competing-consumers", seed=1, until=30, prefetch=0, slow_consumer=4)
    s = res.summary()
    assert not set(s) & set(REQUEST_KEYS)
    assert set(MESSAGING_KEYS) <= set(s) and {"publish_rate", "message_capacity"} <= set(s)
    assert set(s) <= set(SUMMARY_UNITS) and set(s) <= set(SUMMARY_HELP)
    assert s["publish_rate"] == pytest.approx(s["messages_published"] / 30)
    assert s["offered_load"] == pytest.approx(
        base.get("competing-consumers").load(res.params).requests_per_s
        / s["message_capacity"])
    assert not s["stable"] and s["messages_queued"] > 0
    (text,) = res.warnings()
    assert text.startswith(f"overloaded: {s['messages_queued']} of "
                           f"{s['messages_published']:,} messages".replace(",", " "))
    assert "still queued" in text and "msg/s" in text and "req/s" not in text
    assert "requests" not in text
    assert "messages published" in repr(res)
