"""Every number notebooks 00-04's prose states is recomputed here (DESIGN.md, principle 10).

Each test below checks one claim of a notebook against the same package calls
the notebook's cells make, and registers the exact phrases it checks with
:func:`claim`.  The machinery is ``tests/claims_kit.py``, which later
notebooks' claim modules use too.  Three more tests make the rule enforceable:

* every registered phrase must still be in its notebook's markdown (change the
  words and the check goes with them, or the test fails);
* every digit in a notebook's markdown must sit inside a registered phrase, an
  entry of :data:`ALLOWED` (a parameter the cells set, a question's givens,
  a name), or a ``claims_kit.GENERIC`` pattern (book sections, links,
  instance names, list numbers);
* the code cells must still make the calls the fixtures below repeat
  (:data:`CALLS`).  A new number in the prose fails until it is checked here or
  allowed with a reason.

Numbers written as words ("about fifty times", "eight") are not scanned, but
the quantitative ones are claimed and checked like the rest.  Spacing and line
breaks do not matter when phrases are matched.

Runs are shared through module-scoped fixtures and kept as short as each claim
allows; each fixture names the notebook cell it repeats, and
:func:`test_the_notebooks_still_make_the_calls_checked_here` fails if a cell's
call changes.  Simulations are deterministic for a seed, so the tolerances
below are not about flakiness: they say how far the model may move before the
prose has to be rewritten, and each is justified by the length of the run.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable

import pandas as pd
import pytest
from claims_kit import Prose, default, enforce, quiet

import simcomm
from simcomm.errors import OverloadWarning
from simcomm.scenarios import base
from simcomm.scenarios import formats as fs
from simcomm.sweeps import format_sweep, theory_sweep

TOUR, SYNC, FORMATS_NB = "00-tour", "01-sync-request-response", "02-message-formats"
PARTIAL, STORMS = "03-partial-failure", "04-retries-and-storms"
NOTEBOOKS = (TOUR, SYNC, FORMATS_NB, PARTIAL, STORMS)


#: Numbers in the prose that are not claims, each with the reason.
ALLOWED: dict[str, dict[str, str]] = {
    TOUR: {
        "chapter 3": "the book's chapter",
        "request number 1": "the request the next cell selects (trace_id == 1)",
        "their 99th percentile": "names what the dashed line is",
        "notebook 01": "a notebook's number",
        "`simcomm run chain --set depth=5`": "an example command",
        "chains of depth 1 to 3 at 10 and 30 requests a second": "the sweep cell's grid",
        "five replications of 10 simulated seconds each": "the sweep cell's settings",
        "At 10 requests a second": "the sweep cell's lower rate",
        "At 30 a second": "the sweep cell's higher rate",
    },
    SYNC: {
        "Follow request #1": "the request the sequence diagram starts with",
        "at depths 1 to 6 (with crashes switched off, `service_availability=1.0`":
            "the settings the depth-table cell uses",
        "depth 1 and depth 6 side by side": "the settings the compare cell uses",
        "**depth** 1": "a dashboard setting for the learner to try",
        "99.9 % of the time and each service is up 99.95 %": "a question's givens",
        "A timeout of 1 s": "a question's hypothetical setting",
    },
    FORMATS_NB: {
        "2000 line items": "the order size the cells set",
        "2000-line": "the order size the cells set",
        "100 Mbit/s": "the bandwidth the cells set",
        "10 Gbit/s": "the bandwidth the cells set",
        "10 000 Mbit/s": "the dashboard setting to try (10 Gbit/s)",
        "10 Mbit/s (an old office network)": "the bandwidth sweep's first value",
        "orders of 500 line items, 2 orders per second":
            "the settings of the latency sweep",
        "orders of 200 line items": "a question's setting to try",
    },
    PARTIAL: {
        "as in notebook 01": "a notebook's number",
        "With `order_bulkhead=5` at most five": "the setting the bulkhead cell uses",
        "so each breaker below runs with `call_timeout=1.0`": "the setting the breaker cell uses",
        "95th percentile": "names a percentile",
        "a **call timeout** of 0.5, then 1, then 2 s": "dashboard settings for the learner to try",
        "**max attempts** 3 with a timeout": "a dashboard setting for the learner to try",
        "answered normally in 50 ms": "a question's givens",
    },
    STORMS: {
        "(Bronson et al., HotOS 2021)": "a citation",
        "Tighten the timeout to 0.7 s and switch the trigger off (`slowdown_factor=1.0`)":
            "the settings the lucky-retries cell uses",
        "99th percentile": "names a percentile",
        "Picture 100 clients": "the number of clients the jitter cell draws waits for",
        "The first wait of 100 such clients": "the number of clients the jitter cell draws",
        "(notebook 03)": "a notebook's number",
        "**max attempts** 2 and 3": "dashboard settings for the learner to try",
    },
}

#: The calls the fixtures below repeat, as each notebook's code cells make them.
CALLS = {
    TOUR: ['res = simcomm.run("chain")',
           'replies = res.trace[(res.trace["event"] == "send") & (res.trace["kind"] == "reply")]',
           'simcomm.run("mmc", seed=1, until=10_000, arrival_rate=2.4, service_rate=1.0, '
           'servers=3)',
           'runs = simcomm.sweep("chain", {"depth": [1, 2, 3], "request_rate": [10, 30]}, '
           'replications=5, until=10, gateway_workers=3)',
           'simcomm.summarize(runs, ["mean_latency", "p99"])',
           'viz.sweep_lines(runs, "depth", "mean_latency", hue="request_rate")'],
    SYNC: ['world = World(seed=1)', 'Instance(world, "order-1", workers=1, service_time=0.01)',
           'client.request("order-1", {"orderId": 42})', 'world.run(1.0)',
           'res = simcomm.run("chain", seed=1, until=30, depth=2)',
           'depths = range(1, 7)',
           'simcomm.run("chain", seed=1, depth=d, service_availability=1.0)',
           'for depth in (1, 3, 6):',
           'simcomm.run("chain", seed=1, until=10_000, depth=depth, request_rate=2, '
           'mean_time_to_repair=0.5, trace=False)',
           'hung = simcomm.run("chain", seed=1, last_service_hangs=True)'],
    FORMATS_NB: [
        'formats.format_table(2000, bandwidth_mbps=100)', 'formats.format_table(1)',
        'formats.format_ceilings(order_lines=2000, bandwidth_mbps=100)',
        'format_sweep("request_rate", [50, 100, 150, 200, 250, 300, 350], '
        'order_lines=2000, until=20)',
        'load[load["request_rate"] == 350]',
        'simcomm.run("formats", order_lines=2000, request_rate=150, until=20)',
        'formats.format_ceilings(order_lines=2000, bandwidth_mbps=10_000)',
        'format_sweep("request_rate", [100, 200, 300, 400, 500], order_lines=2000, '
        'bandwidth_mbps=10_000, until=10)',
        'fast[fast["request_rate"] == 500]',
        'simcomm.run("formats", order_lines=2000, request_rate=500, bandwidth_mbps=10_000, '
        'message_format="xml", until=10)',
        'format_sweep("bandwidth_mbps", [50, 100, 200, 300, 400, 600], '
        'order_lines=2000, request_rate=500, until=5)',
        'format_sweep("bandwidth_mbps", [10, 30, 100, 1000, 10_000], order_lines=500, '
        'request_rate=2, until=120)',
        'simcomm.explore("formats", order_lines=2000, request_rate=150)',
        'large = {"order_lines": 2000, "request_rate": 150}',
        'a={"message_format": "json", **large}', 'b={"message_format": "protobuf", **large}'],
    PARTIAL: [
        'cascade = simcomm.run("gateway", seed=1)',
        'in_hang = f"{p.hang_at} <= start < {p.hang_at + p.hang_duration}"',
        'for timeout in (0.5, 1.0, 2.0, 5.0):',
        'simcomm.run("gateway", seed=1, call_timeout=timeout, trace=False)',
        'bulkhead = simcomm.run("gateway", seed=1, order_bulkhead=5)',
        'simcomm.run("gateway", seed=1, call_timeout=1.0, breaker=kind) for kind in '
        '("none", "resilience4j", "consecutive", "hystrix")',
        'blind = simcomm.run("gateway", seed=1, breaker="resilience4j")',
        'fallback = simcomm.run("gateway", seed=1, call_timeout=1.0, breaker="resilience4j", '
        'fallback="value")',
        'alone = simcomm.run("gateway", seed=1, fallback="value")'],
    STORMS: [
        'lucky = {"call_timeout": 0.7, "slowdown_factor": 1.0}',
        'simcomm.run("retry-storm", seed=1, max_attempts=attempts, **lucky).summary() '
        'for attempts in (1, 4)',
        'storm = simcomm.run("retry-storm", seed=1)',
        'calm = simcomm.run("retry-storm", seed=1, max_attempts=1)',
        'after = storm.attempts.query("time >= @end")',
        'simcomm.run("retry-storm", seed=1, retry_backoff=kind) for kind in '
        '("none", "constant", "exponential")',
        'rng = random.Random(1)',
        'waits = {"exponential": exponential(1.0, 2.0, 10.0), '
        '"full jitter": full_jitter(1.0, 10.0, rng=rng)}',
        'first_retry = pd.DataFrame({name: [wait(1) for _ in range(100)] '
        'for name, wait in waits.items()})',
        '(first_retry // 0.1).apply(pd.Series.value_counts).max()',
        'simcomm.run("retry-storm", seed=1, retry_backoff=kind) for kind in '
        '("exponential", "full_jitter", "equal_jitter", "decorrelated_jitter")',
        'budget = simcomm.run("retry-storm", seed=1, retry_budget=True)',
        'simcomm.run("retry-storm", seed=1, max_attempts=4, retry_budget=True, '
        '**lucky).summary()["timeout"]',
        'breaker = simcomm.run("retry-storm", seed=1, breaker="resilience4j")',
        'res = simcomm.run("retry-storm", seed=1, **settings)'],
}


PROSE = {stem: Prose(stem, allowed=ALLOWED[stem], calls=CALLS[stem]) for stem in NOTEBOOKS}


def claim(stem: str, *phrases: str) -> Callable:
    """Mark a test as the check of ``phrases`` (exact words) in notebook ``stem``."""
    return PROSE[stem].claim(*phrases)


(test_every_claimed_or_allowed_phrase_is_in_its_notebook,
 test_every_number_in_the_prose_is_checked_or_allowed,
 test_the_notebooks_still_make_the_calls_checked_here) = enforce(*PROSE.values())


def test_an_unchecked_number_would_be_caught():
    """The scanner is not vacuous: a new number in the prose is reported."""
    tour = PROSE[TOUR]
    left = tour.unclaimed_numbers(tour.markdown + "\n\nIt is 42 % faster.")
    assert any("42 %" in s for s in left)


_quiet, _default = quiet, default


# == 00-tour ======================================================================

@pytest.fixture(scope="module")
def tour():
    """The tour's run: ``simcomm.run("chain")``."""
    return _quiet(lambda: simcomm.run("chain"))


@claim(TOUR, "(100 simulated seconds for `chain`)")
def test_tour_default_duration(tour):
    assert base.get("chain").until == 100
    assert tour.until == 100


@claim(TOUR, "Half of them took less than `p50`, 99 % less than `p99`")
def test_tour_percentiles_mean_what_the_text_says(tour):
    s = tour.summary()
    ok = tour.requests.query("outcome == 'ok'")
    latency = ok["end"] - ok["start"]
    # a sample quantile splits the n values to within one value
    assert (latency < s["p50"]).mean() == pytest.approx(0.5, abs=1 / len(ok) + 1e-9)
    assert (latency < s["p99"]).mean() == pytest.approx(0.99, abs=1 / len(ok) + 1e-9)


@claim(TOUR, "`service_availability` = 99.5 % of the time")
def test_tour_service_availability_default():
    assert _default("chain", "service_availability") == 0.995


@claim(TOUR, "A request that succeeds costs eight here — a request and a reply on each of "
             "the four hops")
def test_tour_eight_messages_per_request(tour):
    assert _default("chain", "depth") + 1 == 4  # users->gateway and three services
    sends = tour.trace.query("event == 'send'")
    ok_ids = set(tour.requests.query("outcome == 'ok'")["request_id"])
    per_request = sends[sends["trace_id"].isin(ok_ids)].groupby("trace_id").size()
    assert len(per_request) == tour.summary()["completed"]
    assert set(per_request) == {8}


@claim(TOUR, "this run caught a crash of `payment-1`")
def test_tour_run_caught_a_crash_of_payment(tour):
    crashes = tour.events.query("event == 'crash'")
    assert list(crashes["node"]) == ["payment-1"]
    assert tour.summary()["failed"] > 0


@claim(TOUR, "Look at the failed requests during the crash: they are *faster* than the "
             "successful ones")
def test_tour_failures_during_the_crash_are_fast(tour):
    r = tour.requests
    latency = r["end"] - r["start"]
    assert latency[r["outcome"] == "error"].median() < 0.5 * latency[r["outcome"] == "ok"].median()


@claim(TOUR, "The failures of the crash are counted as `error` in the summary, not as "
             "`refused`, although `payment-1` was down",
       "`refused` is what `order-1` was told when it called `payment-1`",
       "Every `refused` reply from `payment-1` became one `error` reply at each hop above it",
       "users never see `refused`: it stays at 0 in the summary")
def test_tour_users_see_error_not_refused(tour):
    s = tour.summary()
    assert s["refused"] == 0
    assert s["error"] == s["failed"] > 0
    tr = tour.trace
    replies = tr[(tr["event"] == "send") & (tr["kind"] == "reply")]
    counts = replies.groupby(["source", "dest", "status"]).size()
    refused = counts[("payment-1", "order-1", "refused")]
    assert refused == s["error"]
    assert counts[("order-1", "api-gateway-1", "error")] == refused
    assert counts[("api-gateway-1", "users", "error")] == refused
    assert set(replies.loc[replies["status"] == "refused", "source"]) == {"payment-1"}


@claim(TOUR, "At ten requests a second with 20 ms of work each, every instance has on "
             "average less than one of its ten workers busy")
def test_tour_pools_are_nearly_idle(tour):
    assert _default("chain", "request_rate") == 10
    assert _default("chain", "service_time") == 0.02
    assert _default("chain", "service_workers") == _default("chain", "gateway_workers") == 10
    for name, u in tour.utilisation().items():
        assert u * 10 < 1, name


@claim(TOUR, "at 80 % utilisation (2.4 requests per second on three workers that each "
             "finish one per second)")
def test_tour_mmc_utilisation():
    assert pytest.approx(0.80) == 2.4 / (3 * 1.0)


@claim(TOUR, "with a 95 % confidence bar")
def test_tour_confidence_bar_is_95_percent():
    from simcomm.viz import theory

    assert pytest.approx(statistics.NormalDist().inv_cdf(0.975)) == theory._Z95


@claim(TOUR, "runs the queue at nine loads")
def test_tour_theory_sweep_has_nine_loads():
    import inspect


    default = inspect.signature(theory_sweep).parameters["utilisations"].default
    assert len(default) == 9


@pytest.fixture(scope="module")
def tour_sweep() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The sweep cell's runs and their mean latency summarised (30 runs of 10 s)."""
    runs = _quiet(lambda: simcomm.sweep("chain", {"depth": [1, 2, 3], "request_rate": [10, 30]},
                                        replications=5, until=10, gateway_workers=3,
                                        progress=False))
    summary = simcomm.summarize(runs, ["mean_latency", "bottleneck_utilisation"])
    return runs, summary.set_index(["metric", "request_rate", "depth"])


@claim(TOUR, "gives each combination's mean with a 95 % confidence interval (Student t)")
def test_tour_summary_is_a_95_percent_student_t_interval(tour_sweep):
    import inspect

    from scipy import stats

    assert inspect.signature(simcomm.summarize).parameters["confidence"].default == 0.95
    runs, summary = tour_sweep
    v = runs.query("depth == 3 and request_rate == 30")["mean_latency"]
    row = summary.loc[("mean_latency", 30, 3)]
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(
        stats.t.interval(0.95, len(v) - 1, loc=v.mean(), scale=stats.sem(v)))
    # the same five seeds in every combination (common random numbers)
    assert runs.groupby(["depth", "request_rate"])["seed"].apply(tuple).nunique() == 1


@claim(TOUR, "each service adds about 24 ms and no band is wider than 6 ms")
def test_tour_sweep_at_ten_per_second_is_settled(tour_sweep):
    _, summary = tour_sweep
    calm = summary.loc["mean_latency"].loc[10]
    # 20 ms of work and two 2 ms network hops per service; ~100 requests a run
    assert calm["mean"].diff().dropna().to_numpy() == pytest.approx(0.024, abs=0.0015)
    assert (calm["ci_high"] - calm["ci_low"]).max() < 0.006


@claim(TOUR, "the gateway's workers, each held until the whole chain answers, are about "
             "three quarters busy at depth 3",
       "the band there spans 47 ms")
def test_tour_sweep_at_thirty_per_second_queues_at_the_gateway(tour_sweep):
    runs, summary = tour_sweep
    assert summary.loc[("bottleneck_utilisation", 30, 3), "mean"] == pytest.approx(0.75,
                                                                                   abs=0.05)
    # the busiest resource is the gateway's pool, and it is that busy because
    # its workers wait for the chain: the same requests at depth 1 keep it
    # about a third as busy, and the services behind it are far from full
    one = _quiet(lambda: simcomm.run("chain", seed=int(runs["seed"].iloc[0]), until=10, depth=3,
                                     request_rate=30, gateway_workers=3, trace=False))
    assert one.summary()["bottleneck"] == "api-gateway-1"
    assert max(u for name, u in one.utilisation().items() if name != "api-gateway-1") < 0.3
    assert summary.loc[("bottleneck_utilisation", 30, 1), "mean"] < 0.3
    row = summary.loc[("mean_latency", 30, 3)]
    assert row["ci_high"] - row["ci_low"] == pytest.approx(0.047, abs=0.0005)
    calm = summary.loc[("mean_latency", 10, 3)]
    assert row["ci_high"] - row["ci_low"] > 5 * (calm["ci_high"] - calm["ci_low"])


# == 01-sync-request-response =====================================================

@claim(SYNC, "The reply is message 2, and its correlation id is 1")
def test_sync_reply_is_message_two_correlated_to_one():
    from simcomm import Instance, Node, World

    world = World(seed=1)
    Instance(world, "order-1", workers=1, service_time=0.01)
    client = Node(world, "client")
    waiting = client.request("order-1", {"orderId": 42})
    world.run(1.0)
    assert (waiting.request_id, waiting.value.id, waiting.value.correlation_id) == (1, 2, 1)


@claim(SYNC, "With `depth=2` each user request causes three requests and three replies")
def test_sync_depth_two_means_three_calls():
    res = _quiet(lambda: simcomm.run("chain", seed=1, until=30, depth=2))
    sends = res.trace.query("event == 'send'")
    ok = set(res.trace.query("kind == 'reply' and dest == 'users' and status == 'ok'")
             ["trace_id"])
    assert ok
    per = sends[sends["trace_id"].isin(ok)].groupby("trace_id")["kind"]
    assert set(per.apply(lambda k: (k != "reply").sum())) == {3}
    assert set(per.apply(lambda k: (k == "reply").sum())) == {3}


@pytest.fixture(scope="module")
def depth_latency() -> pd.Series:
    """The depth table: mean latency at depths 1..6 without crashes (100 s each)."""
    depths = range(1, 7)
    return pd.Series([_quiet(lambda d=d: simcomm.run(
        "chain", seed=1, depth=d, service_availability=1.0)).summary()["mean_latency"]
        for d in depths], index=depths)


@claim(SYNC, "about its mean `service_time` (20 ms) plus one network round trip (2 × 2 ms)",
       "Each service in the depth table added about 24 ms")
def test_sync_each_service_adds_about_24_ms(depth_latency):
    assert _default("chain", "service_time") == 0.02
    assert _default("chain", "network_latency") == 0.002
    steps = depth_latency.diff().dropna()
    # ~1 000 requests per 100 s run, the same arrivals at every depth: an
    # increment's noise is well under a millisecond; 2.5 ms leaves room
    assert steps.to_numpy() == pytest.approx(0.020 + 2 * 0.002, abs=0.0025)


@pytest.fixture(scope="module")
def long_runs() -> dict:
    """The availability table's runs: 10 000 s at depths 1, 3 and 6 (trace off)."""
    return {d: _quiet(lambda d=d: simcomm.run(
        "chain", seed=1, until=10_000, depth=d, request_rate=2, mean_time_to_repair=0.5,
        trace=False)) for d in (1, 3, 6)}


@claim(SYNC, "three services each up 99.5 % of the time give a chain that works only "
             "≈ 98.5 % of the time",
       "0.995³ ≈ 0.985")
def test_sync_availability_multiplies(long_runs):
    assert round(0.995 ** 3, 3) == 0.985
    # ~100 outages of each service (10 % noise on each one's downtime) and
    # ~20 000 requests: the measured share is good to about 0.001; 0.004 is 4 sigma
    assert long_runs[3].summary()["availability"] == pytest.approx(0.985, abs=0.004)


@claim(SYNC, "That is two and a half hours of outage per week for the chain, from services "
             "that are each down less than an hour a week")
def test_sync_outage_per_week():
    week_h = 7 * 24
    assert (1 - 0.995 ** 3) * week_h == pytest.approx(2.5, abs=0.1)
    assert (1 - 0.995) * week_h < 1


@claim(SYNC, "with a mean time to repair of 0.5 s, each service crashes about every 100 s, "
             "so 10 000 simulated seconds hold about a hundred outages per service")
def test_sync_a_hundred_outages(long_runs):
    assert pytest.approx(100, rel=0.01) == 0.5 * 0.995 / (1 - 0.995)  # MTTR * A / (1 - A)
    for res in long_runs.values():
        crashes = res.events.query("event == 'crash'").groupby("node").size()
        # Poisson with mean ~100: 70..130 is three standard deviations
        assert crashes.between(70, 130).all(), crashes.to_dict()


@claim(SYNC, "The measured availability follows the product",
       "a little lower for long chains")
def test_sync_measured_availability_follows_the_product(long_runs):
    for depth in (1, 3):
        got = long_runs[depth].summary()["availability"]
        assert got == pytest.approx(0.995 ** depth, abs=0.004)
    deep = long_runs[6].summary()["availability"]
    # requests in progress in a crashing service fail too: below the product
    assert 0.995 ** 6 - 0.015 < deep < 0.995 ** 6


@pytest.fixture(scope="module")
def hung():
    """The hang section's run: ``simcomm.run("chain", seed=1, last_service_hangs=True)``."""
    return _quiet(lambda: simcomm.run("chain", seed=1, last_service_hangs=True))


@claim(SYNC, "hangs at 40 s for 30 s. The users give up after `user_patience` = 10 s")
def test_sync_hang_settings():
    assert _default("chain", "hang_at") == 40
    assert _default("chain", "hang_duration") == 30
    assert _default("chain", "user_patience") == 10


@claim(SYNC, "At 40 s all ten of `kitchen`'s workers pick up a request and stay stuck on it")
def test_sync_hung_pools_fill_at_40_s(hung):
    pools = hung.pools
    for node in ("kitchen-1", "payment-1", "order-1", "api-gateway-1"):
        full = pools[(pools["node"] == node) & (pools["busy"] == 10)]["time"].min()
        assert 40 <= full < 41, node  # ten requests arrive within a second or so


@claim(SYNC, "grows by ten every second — the arrival rate")
def test_sync_gateway_queue_grows_by_ten_a_second(hung):
    import numpy as np

    g = hung.pools[(hung.pools["node"] == "api-gateway-1")
                   & hung.pools["time"].between(45, 69)]
    slope = np.polyfit(g["time"], g["queued"], 1)[0]
    # Poisson arrivals at 10/s over 24 s: the slope's noise is ~0.65/s
    assert slope == pytest.approx(10, abs=2)


@claim(SYNC, "From 40 s on, every request is abandoned: the user gave up after 10 s",
       "Requests sent in roughly the last 8 s of the hang succeed — late — because when the "
       "hung process is restarted at 70 s")
def test_sync_who_was_abandoned(hung):
    r = hung.requests
    during = r[r["start"].between(40, 61)]
    assert len(during) > 150 and (during["outcome"] == "abandoned").all()
    after = r[(r["start"] >= 40) & (r["outcome"] == "ok")]
    first_ok = after["start"].min()
    assert 70 - 8 - 1 <= first_ok <= 70 - 8 + 1
    late = r[r["start"].between(63, 70, inclusive="left")]
    assert (late["outcome"] == "ok").all()
    assert ((late["end"] - late["start"]) > 1).all()  # late: they waited for the restart
    assert list(hung.events.query("event == 'unhang'")["time"]) == [70]


# == 02-message-formats ===========================================================

@pytest.fixture(scope="module")
def table_2000() -> pd.DataFrame:
    return fs.format_table(2000, bandwidth_mbps=100).set_index("format")


@claim(FORMATS_NB, "XML is about half as big again as JSON",
       "Protocol Buffers and Avro are about half JSON's size and less",
       "more than fifty times as much CPU as Protocol Buffers")
def test_formats_size_and_cpu_ratios(table_2000):
    t = table_2000
    assert t.loc["xml", "vs_json"] == pytest.approx(1.5, abs=0.1)
    assert t.loc["avro", "vs_json"] < t.loc["protobuf", "vs_json"] <= 0.55
    assert 50 < t.loc["xml", "cpu_s"] / t.loc["protobuf", "cpu_s"] < 60


@claim(FORMATS_NB, "For an order of a single line item the ratios change little",
       "Whatever the order's size, Protocol Buffers and Avro stay at about half of JSON's "
       "bytes or less")
def test_formats_ratios_for_one_line(table_2000):
    one = fs.format_table(1).set_index("format")
    assert (one["vs_json"] - table_2000["vs_json"]).abs().max() < 0.15
    assert one.loc[["protobuf", "avro"], "vs_json"].max() <= 0.55


@claim(FORMATS_NB, "XML's CPU per message is about five times JSON's, though it is only half "
                   "as big again")
def test_formats_xml_cpu_five_times_json(table_2000):
    assert table_2000.loc["xml", "cpu_s"] / table_2000.loc["json", "cpu_s"] == \
        pytest.approx(5, abs=0.5)


@pytest.fixture(scope="module")
def ceilings() -> pd.DataFrame:
    """``formats.format_ceilings(order_lines=2000, bandwidth_mbps=100)``."""
    return fs.format_ceilings(order_lines=2000, bandwidth_mbps=100).set_index("format")


@pytest.fixture(scope="module")
def fast_ceilings() -> pd.DataFrame:
    """``formats.format_ceilings(order_lines=2000, bandwidth_mbps=10_000)``."""
    return fs.format_ceilings(order_lines=2000, bandwidth_mbps=10_000).set_index("format")


@claim(FORMATS_NB, "A 100 Mbit/s link moves 12.5 MB per second; a 2000-line JSON order is "
                   "about 146 kB, so that is about 86 orders per second")
def test_formats_json_link_ceiling_by_hand(ceilings):
    assert 100e6 / 8 == 12.5e6
    assert round(ceilings.loc["json", "link_bytes"] / 1000) == 146
    assert round(12.5e6 / ceilings.loc["json", "link_bytes"]) == 86
    assert round(ceilings.loc["json", "link_ceiling"]) == 86


@claim(FORMATS_NB, "The order service has 4 workers. Each order costs one of them 10 ms of "
                   "business logic",
       "and 4 workers ÷ the CPU seconds of one order",
       "The gateway has 20 workers and a tenth of the business logic, so here the order "
       "service is the busier pool")
def test_formats_pools(ceilings):
    assert _default("formats", "service_workers") == 4
    assert _default("formats", "service_time") == 0.01
    assert _default("formats", "gateway_workers") == 20
    assert (ceilings["cpu_pool"] == fs.SERVICE).all()


@claim(FORMATS_NB, "At 100 Mbit/s the link binds for every format: it lets through about 56 "
                   "XML, 86 JSON, 173 Protobuf or 207 Avro orders per second",
       "could finish 200 XML, 336 JSON and about 390 Protobuf or Avro orders")
def test_formats_predicted_ceilings_at_100_mbit(ceilings):
    assert (ceilings["binds"] == "link").all()
    assert ceilings["link_ceiling"].round().to_dict() == {"json": 86, "xml": 56,
                                                          "protobuf": 173, "avro": 207}
    cpu = ceilings["cpu_ceiling"]
    assert (round(cpu["xml"]), round(cpu["json"])) == (200, 336)
    assert cpu[["protobuf", "avro"]].to_numpy() == pytest.approx(390, abs=5)


@claim(FORMATS_NB, "from 50 to 350 orders per second (28 runs of 20 simulated seconds)")
def test_formats_load_sweep_size():
    assert 4 * len([50, 100, 150, 200, 250, 300, 350]) == 28


@pytest.fixture(scope="module")
def load_top() -> pd.DataFrame:
    """The load sweep's rows at 350 orders/s (each run stands alone: same seed, same rows)."""
    return format_sweep("request_rate", [350], order_lines=2000, until=20,
                        progress=False).set_index("format")


@claim(FORMATS_NB, "Throughput flattens within about 1 % of the prediction — at about 56 "
                   "(XML), 85 (JSON), 172 (Protobuf) and 206 (Avro) orders per second — while "
                   "the order service's workers are only 26–53 % busy")
def test_formats_link_limited_plateau(load_top, ceilings):
    measured = load_top["throughput"]
    # transmission times are fixed: only the empty start and the orders in
    # flight at the end (a fraction of a second of 20 s) keep it below
    ratio = measured / ceilings["ceiling"]
    assert ratio.between(0.985, 1.0).all(), ratio.to_dict()
    assert measured.round().to_dict() == {"json": 85, "xml": 56, "protobuf": 172, "avro": 206}
    busy = load_top["service_busy"]
    assert (round(busy.min(), 2), round(busy.max(), 2)) == (0.26, 0.53)


@pytest.fixture(scope="module")
def jammed():
    """``simcomm.run("formats", order_lines=2000, request_rate=150, until=20)``."""
    with pytest.warns(OverloadWarning, match="link is 100 % busy"):
        return simcomm.run("formats", order_lines=2000, request_rate=150, until=20)


@claim(FORMATS_NB, "Here is JSON at 150 orders per second, beyond its link ceiling (the run "
                   "also warns that it was overloaded)",
       "All four link directions are about 100 % busy",
       "the workers are busy only about 30 % (gateway) and 26 % (order service) of the time",
       "The way in heads the list: the users keep sending faster than it can carry")
def test_formats_jammed_run_names_the_link(jammed, ceilings):
    assert ceilings.loc["json", "ceiling"] < 150
    links = jammed.link_utilisation()
    assert len(links) == 4 and min(links.values()) > 0.99
    assert jammed.bottleneck()["resource"] == f"{fs.USERS} → {fs.GATEWAY}"
    assert jammed.summary()["pending_share"] > 0.3
    busy = jammed.utilisation()
    # ~1 700 orders in 20 s: a pool's busy share is good to about 0.01
    assert busy[fs.GATEWAY] == pytest.approx(0.30, abs=0.015)
    assert busy[fs.SERVICE] == pytest.approx(0.26, abs=0.015)


@claim(FORMATS_NB, "the links are a hundred times faster",
       "At 10 Gbit/s the link ceilings are in the thousands of orders per second, and the CPU "
       "binds instead",
       "XML 200, JSON 336, Protobuf and Avro about 390 orders per second")
def test_formats_predicted_ceilings_at_10_gbit(fast_ceilings):
    assert 10_000 / 100 == 100
    assert (fast_ceilings["link_ceiling"] > 1000).all()
    assert (fast_ceilings["binds"] == "cpu").all()
    cpu = fast_ceilings["ceiling"]
    assert (round(cpu["xml"]), round(cpu["json"])) == (200, 336)
    assert cpu[["protobuf", "avro"]].to_numpy() == pytest.approx(390, abs=5)


@claim(FORMATS_NB, "up to 500 orders per second (20 runs of 10 simulated seconds)")
def test_formats_fast_sweep_size():
    assert 4 * len([100, 200, 300, 400, 500]) == 20


@pytest.fixture(scope="module")
def fast_top() -> pd.DataFrame:
    """The 10 Gbit/s sweep's rows at 500 orders/s."""
    return format_sweep("request_rate", [500], order_lines=2000, bandwidth_mbps=10_000,
                        until=10, progress=False).set_index("format")


@claim(FORMATS_NB, "XML flattens at about 196, JSON at about 334 and the binary formats at "
                   "about 388 orders per second, with the order service's workers 100 % busy",
       "A short run lands a little below the prediction")
def test_formats_cpu_limited_plateau(fast_top, fast_ceilings):
    measured = fast_top["throughput"]
    assert measured.to_numpy() == pytest.approx(
        [334, 196, 388, 388], abs=1.5)  # json, xml, protobuf, avro
    # 10 s from empty, ~20 orders in flight at the end, exponential service
    # times (2 000-3 900 orders: ~2 % noise): 0.95..1.0 of the prediction
    ratio = measured / fast_ceilings["ceiling"]
    assert ratio.between(0.95, 1.0).all(), ratio.to_dict()
    assert (fast_top["service_busy"] > 0.995).all()


@pytest.fixture(scope="module")
def cpu_bound():
    """``simcomm.run("formats", ..., request_rate=500, bandwidth_mbps=10_000, xml, until=10)``."""
    return _quiet(lambda: simcomm.run("formats", order_lines=2000, request_rate=500,
                                      bandwidth_mbps=10_000, message_format="xml", until=10))


@claim(FORMATS_NB, "The gateway's workers look as busy as the order service's",
       "its own CPU fills less than a quarter of that time. The links are almost idle")
def test_formats_cpu_bound_gateway_waits(cpu_bound, fast_ceilings):
    busy = cpu_bound.utilisation()
    assert cpu_bound.bottleneck()["resource"] == fs.SERVICE
    assert busy[fs.GATEWAY] > 0.95 and busy[fs.SERVICE] > 0.95
    cpu_share = (cpu_bound.summary()["throughput"] * fast_ceilings.loc["xml", "gateway_cpu_s"]
                 / _default("formats", "gateway_workers"))
    assert cpu_share / busy[fs.GATEWAY] < 0.25
    assert max(cpu_bound.link_utilisation().values()) < 0.1


@claim(FORMATS_NB, "Between 100 Mbit/s and 10 Gbit/s each format's bottleneck moves from the "
                   "link to the CPU",
       "Offer more than any format can carry, 500 orders per second",
       "(24 runs of 5 simulated seconds)",
       "The binary formats flatten first",
       "XML and JSON flatten last, at nearly the same bandwidth: XML's orders are half as big "
       "again as JSON's, but its CPU ceiling is lower still")
def test_formats_crossover(ceilings):
    cross = ceilings["crossover_mbps"]
    assert cross.between(100, 10_000).all()
    assert ceilings["cpu_ceiling"].max() < 500
    assert 4 * len([50, 100, 200, 300, 400, 600]) == 24
    assert max(cross["avro"], cross["protobuf"]) < min(cross["xml"], cross["json"])
    assert abs(cross["xml"] - cross["json"]) / cross["json"] < 0.15
    size = ceilings.loc["xml", "link_bytes"] / ceilings.loc["json", "link_bytes"]
    cpu = ceilings.loc["xml", "cpu_ceiling"] / ceilings.loc["json", "cpu_ceiling"]
    assert size == pytest.approx(1.5, abs=0.1) and cpu < 1 / size


@pytest.fixture(scope="module")
def links() -> pd.DataFrame:
    """The latency sweep's two ends (10 Mbit/s and 10 Gbit/s, 500 lines, 2 orders/s)."""
    return format_sweep("bandwidth_mbps", [10, 10_000], order_lines=500, request_rate=2,
                        until=120, progress=False)


@claim(FORMATS_NB, "each order crosses four links, so XML's extra bytes are paid four times",
       "the formats' lines come together, except for XML's parsing cost",
       "On a 10 Gbit/s link the formats' latencies came close together")
def test_formats_latency_against_bandwidth(links):
    lat = links.pivot(index="bandwidth_mbps", columns="format", values="mean_latency")
    t = fs.format_table(500).set_index("format")
    extra_bytes = 4 * (t.loc["xml", "bytes"] - t.loc["json", "bytes"]) * 8 / 10e6
    # gateway codes the order 4 times, the service twice: 3 messages' encode + decode
    extra_cpu = 3 * (t.loc["xml", "cpu_s"] - t.loc["json", "cpu_s"])
    # 240 orders of two minutes, mild link queueing: within 15 %
    assert lat.loc[10, "xml"] - lat.loc[10, "json"] == pytest.approx(extra_bytes + extra_cpu,
                                                                      rel=0.15)
    fast = lat.loc[10_000]
    others = fast[["json", "protobuf", "avro"]]
    assert others.max() - others.min() < 0.002
    assert fast["xml"] - fast["json"] == pytest.approx(extra_cpu, rel=0.2)


@claim(FORMATS_NB, "starting with 2000-line orders at 150 per second on 100 Mbit/s links: "
                   "more than JSON's and XML's links can carry, less than Protobuf's and Avro's",
       "every format keeps up, and the order service's pool carries the load instead")
def test_formats_dashboard_hint(ceilings, fast_ceilings):
    c = ceilings["ceiling"]
    assert c["json"] < 150 and c["xml"] < 150
    assert c["protobuf"] > 150 and c["avro"] > 150
    assert (fast_ceilings["ceiling"] > 150).all() and (fast_ceilings["binds"] == "cpu").all()


@pytest.fixture(scope="module")
def compared() -> dict:
    """The compare cell's two runs (20 s instead of the dashboard's 60: the claims are
    about a backlog that grows, or not, from the start)."""
    large = {"order_lines": 2000, "request_rate": 150}
    return {fmt: _quiet(lambda fmt=fmt: simcomm.run("formats", message_format=fmt,
                                                    until=20, **large))
            for fmt in ("json", "protobuf")}


@claim(FORMATS_NB, "above JSON's link ceiling (about 86 orders per second), well below "
                   "Protobuf's (about 173). JSON's backlog and latency grow for as long as the "
                   "run lasts; Protobuf's latency stays flat")
def test_formats_compare_json_and_protobuf(compared, ceilings):
    assert round(ceilings.loc["json", "ceiling"]) == 86
    assert round(ceilings.loc["protobuf", "ceiling"]) == 173

    def halves(res):
        ok = res.requests.query("outcome == 'ok'")
        latency = ok["end"] - ok["start"]
        mid = res.until / 2
        return latency[ok["start"] < mid].mean(), latency[ok["start"] >= mid].mean()

    json_run, proto_run = compared["json"], compared["protobuf"]
    assert json_run.summary()["pending_share"] > 0.3
    first, second = halves(json_run)
    assert second > 1.5 * first
    assert proto_run.summary()["pending_share"] < 0.02
    first, second = halves(proto_run)
    assert second < 1.3 * first
    assert math.isfinite(first)


# == 03-partial-failure ===========================================================
#
# The gateway's runs are 60 simulated seconds at 20 requests per second, the
# hang 25 s of them: counts of a few hundred requests.  A count or a time is
# checked to the digits the prose gives; the seed fixes the run.

def _gw(**settings):
    """``simcomm.run("gateway", seed=1, ...)``, the notebook's runs."""
    return _quiet(lambda: simcomm.run("gateway", seed=1, **settings))


def _in_hang(res) -> pd.DataFrame:
    """The notebook's ``res.requests.query(in_hang)``: requests sent during the hang."""
    p = res.params
    return res.requests.query(f"{p.hang_at} <= start < {p.hang_at + p.hang_duration}")


def _endpoint(res, endpoint: str) -> pd.DataFrame:
    d = _in_hang(res)
    return d[d["endpoint"] == endpoint]


def _ok_p95(d: pd.DataFrame) -> float:
    return float(d.query("outcome == 'ok'")["latency"].quantile(0.95))


@pytest.fixture(scope="module")
def cascade():
    """``cascade = simcomm.run("gateway", seed=1)``."""
    return _gw()


@pytest.fixture(scope="module")
def timeouts() -> dict:
    """The timeout table's runs (without the trace, as the cell makes them)."""
    return {t: _gw(call_timeout=t, trace=False) for t in (0.5, 1.0, 2.0)}


@pytest.fixture(scope="module")
def breakers() -> dict:
    """The breaker table's runs: every kind with ``call_timeout=1.0``."""
    return {kind: _gw(call_timeout=1.0, breaker=kind)
            for kind in ("none", "resilience4j", "consecutive", "hystrix")}


def _order_edge(res) -> pd.DataFrame:
    return res.breaker_events.query("callee == 'order'")


@claim(PARTIAL, "The order service hangs for 25 seconds",
       "the users give up after 5 s")
def test_partial_hang_settings():
    assert _default("gateway", "hang_duration") == 25
    assert _default("gateway", "user_patience") == 5


@claim(PARTIAL, "Within a second of the hang all 10 of the gateway's workers are blue: each "
                "holds a `createOrder` call that will never be answered")
def test_partial_cascade_fills_the_gateway(cascade):
    p = cascade.params
    assert p.gateway_workers == 10
    gateway = cascade.pools.query("node == 'api-gateway-1' and time >= @p.hang_at")
    assert gateway.query("busy == 10")["time"].min() < p.hang_at + 1
    a = cascade.attempts
    t = p.hang_at + 1
    held = a[(a["time"] <= t) & ~(a["end"] <= t)]
    assert list(held["callee"]) == ["order-1"] * 10
    assert (held["outcome"] == "reset").all()  # never answered: reset when the hang ends


@claim(PARTIAL, "its queue, which grows to about 470",
       "When the order service is restarted at 40 s the held calls are reset",
       "the gateway works through its queue in about three seconds — for users who left "
       "long ago")
def test_partial_cascade_queue_and_restart(cascade):
    gateway = cascade.pools.query("node == 'api-gateway-1'")
    assert gateway["queued"].max() == pytest.approx(470, abs=10)
    assert list(cascade.events.query("event == 'unhang'")["time"]) == [40]
    resets = cascade.attempts.query("outcome == 'reset'")
    assert len(resets) == 10 and resets["end"].between(40, 40.01).all()  # + the reply hop
    drained = gateway.query("time > 40 and queued == 0")["time"].min()
    assert 42 <= drained <= 44
    # the requests served then were for users who had given up: orphan replies
    s = cascade.summary()
    assert s["orphan_replies"] == s["abandoned"] > 400


@claim(PARTIAL, "Both endpoints fail together",
       "Only the requests sent in the last seconds of the hang are answered, late",
       "Only 36 of the 256 `getCustomer` requests sent during the hang were answered")
def test_partial_cascade_hits_both_endpoints(cascade):
    d = _in_hang(cascade)
    table = pd.crosstab(d["endpoint"], d["outcome"])
    assert set(table.columns) == {"abandoned", "ok"}
    assert table.loc["getCustomer", "ok"] == 36 and table.loc["getCustomer"].sum() == 256
    assert (table["ok"] / table.sum(axis=1) < 0.15).all()
    ok = d.query("outcome == 'ok' and start > 16")
    assert ok["start"].min() > 35 and (ok["end"] > 40).all()


@claim(PARTIAL, "With 10 `createOrder` requests per second, a timeout of 0.5 s holds 5 of the "
                "10 workers, 1 s (the default of Resilience4j's TimeLimiter) all of them")
def test_partial_littles_law_for_timeouts():
    from simcomm.resilience import TimeLimiter

    rate = _default("gateway", "request_rate") * _default("gateway", "create_order_share")
    assert rate == 10 and _default("gateway", "gateway_workers") == 10
    assert (rate * 0.5, rate * 1.0) == (5, 10)
    assert TimeLimiter().timeout_duration == 1.0


@claim(PARTIAL, "At 0.5 s every `getCustomer` was answered, 95 % of them within 0.14 s. At 1 s "
                "they were still all answered, but the hung calls held nearly the whole pool "
                "and the 95th percentile waited 1.76 s in the gateway's queue. From 2 s on the "
                "hung calls need more workers than the gateway has, and the cascade is back: "
                "only 32 % of `getCustomer` requests were answered at 2 s",
       "every `createOrder` during the hang still failed, now as `timeout`")
def test_partial_timeout_table(timeouts):
    customers = {t: _endpoint(res, "getCustomer") for t, res in timeouts.items()}
    answered = {t: (d["outcome"] == "ok").mean() for t, d in customers.items()}
    assert answered[0.5] == answered[1.0] == 1.0
    assert round(_ok_p95(customers[0.5]), 2) == 0.14
    assert round(_ok_p95(customers[1.0]), 2) == 1.76
    assert round(answered[2.0], 2) == 0.32
    for t in (0.5, 1.0):
        orders = _endpoint(timeouts[t], "createOrder")
        assert (orders["outcome"] == "timeout").all()


@claim(PARTIAL, "Five workers stay blue for the whole hang",
       "answered every time (256 of 256)",
       "the 5 that got in were abandoned by their users",
       "The `createOrder` requests that found the bulkhead full failed at once")
def test_partial_bulkhead():
    res = _gw(order_bulkhead=5)
    customers = _endpoint(res, "getCustomer")
    assert len(customers) == 256 and (customers["outcome"] == "ok").all()
    orders = _endpoint(res, "createOrder")
    assert (orders["outcome"] == "abandoned").sum() == 5
    full = orders.query("outcome == 'bulkhead_full'")
    assert len(full) + 5 == len(orders) and full["latency"].max() < 0.05
    a = res.attempts
    t = res.params.hang_at + res.params.hang_duration / 2
    held = a[(a["time"] <= t) & ~(a["end"] <= t) & (a["callee"] == "order-1")]
    assert len(held) == 5 and (held["time"] < res.params.hang_at + 1).all()


@claim(PARTIAL, "(here 20, `breaker_minimum_calls`)", "(`breaker_failure_rate`, 50 %)",
       "it lets 10 trial calls through", "(`breaker_fail_max`, 5)",
       "in a rolling 10 s window", "a health snapshot every half second",
       "`breaker_open_wait` (5 s)")
def test_partial_breaker_settings():
    from simcomm.resilience import CircuitBreaker, HystrixBreaker

    assert _default("gateway", "breaker_minimum_calls") == 20
    assert _default("gateway", "breaker_failure_rate") == 50
    assert _default("gateway", "breaker_fail_max") == 5
    assert _default("gateway", "breaker_open_wait") == 5
    assert CircuitBreaker().permitted_number_of_calls_in_half_open_state == 10
    hystrix = HystrixBreaker()
    assert (hystrix.rolling_window, hystrix.health_snapshot_interval) == (10, 0.5)


@claim(PARTIAL, "Every breaker turns most of the hang's `createOrder` calls from one-second "
                "timeouts into instant `short_circuited` failures",
       "`getCustomer`'s 95th percentile drops from 1.76 s to a few tenths of a second with the "
       "Resilience4j and consecutive breakers")
def test_partial_breakers_free_the_gateway(breakers):
    for kind in ("resilience4j", "consecutive", "hystrix"):
        orders = _endpoint(breakers[kind], "createOrder")
        short = orders.query("outcome == 'short_circuited'")
        assert len(short) > 0.75 * len(orders) and short["latency"].median() < 0.02
    p95 = {kind: _ok_p95(_endpoint(res, "getCustomer")) for kind, res in breakers.items()}
    assert round(p95["none"], 2) == 1.76
    assert 0.1 < p95["resilience4j"] < 0.5 and 0.1 < p95["consecutive"] < 0.5


@claim(PARTIAL, "the consecutive breaker opens first, at 16.4 s: five timeouts in a row is all "
                "it needs, and only 16 `createOrder` calls timed out",
       "Resilience4j's opens at 16.8 s, once half of its last 20 calls have failed; each "
       "half-open phase lets 10 trial calls through, and each trial waits out its timeout: 48 "
       "timeouts in all",
       "Hystrix opens last, at 20.5 s: its 10-second window still holds the successes from "
       "before the hang, and the error percentage must reach 50 % of all of them. 55 timeouts, "
       "and `getCustomer`'s 95th percentile was still 1.18 s")
def test_partial_breaker_kinds(breakers):
    first = {kind: _order_edge(res).query("to_state == 'open'")["time"].min()
             for kind, res in breakers.items() if kind != "none"}
    assert {k: round(v, 1) for k, v in first.items()} == {
        "consecutive": 16.4, "resilience4j": 16.8, "hystrix": 20.5}
    timeouts = {kind: (_endpoint(res, "createOrder")["outcome"] == "timeout").sum()
                for kind, res in breakers.items()}
    assert (timeouts["consecutive"], timeouts["resilience4j"], timeouts["hystrix"]) == \
        (16, 48, 55)
    why = _order_edge(breakers["consecutive"]).iloc[0]["why"]
    assert "5 consecutive failures" in why
    why = _order_edge(breakers["resilience4j"]).iloc[0]["why"]
    assert "50 %" in why and "20 calls" in why
    why = _order_edge(breakers["resilience4j"]).iloc[2]["why"]
    assert "10 calls in half-open" in why
    # Hystrix judged its whole window: the hang's failures against the calls before it
    assert "50 %" in _order_edge(breakers["hystrix"]).iloc[0]["why"] or \
        "53 %" in _order_edge(breakers["hystrix"]).iloc[0]["why"]
    assert round(_ok_p95(_endpoint(breakers["hystrix"], "getCustomer")), 2) == 1.18


@claim(PARTIAL, "every 5 s the breaker tries the order service, the trial calls time out, and "
                "it opens for another 5 s. The edge to the customer service never opens",
       "After the hang ends at 40 s the breaker keeps short-circuiting a service that is "
       "healthy again, until its next trial succeeds: it closed at 43.9 s")
def test_partial_resilience4j_timeline(breakers):
    ev = breakers["resilience4j"].breaker_events
    assert (ev["callee"] == "order").all()  # the customer edge never changed state
    order = _order_edge(breakers["resilience4j"])
    opened = order.query("to_state == 'open'")["time"].to_numpy()
    tried = order.query("to_state == 'half_open'")["time"].to_numpy()
    waits = tried - opened[: len(tried)]
    assert waits == pytest.approx(5, abs=0.3)  # the first call after 5 s
    assert list(order["to_state"])[-1] == "closed"
    closed = order.query("to_state == 'closed'")["time"].to_numpy()
    assert len(closed) == 1 and round(closed[0], 1) == 43.9


@claim(PARTIAL, "It opens at 40 s, when the hang is over and the damage done, and then "
                "short-circuits the healthy order service for 5 s")
def test_partial_breaker_without_timeout():
    blind = _gw(breaker="resilience4j")
    order = _order_edge(blind)
    assert round(order.iloc[0]["time"]) == 40 and order.iloc[0]["to_state"] == "open"
    assert order.iloc[1]["time"] - order.iloc[0]["time"] == pytest.approx(5, abs=0.1)
    assert (blind.requests.query("outcome == 'short_circuited'")["end"] > 40).all()


@pytest.fixture(scope="module")
def with_fallback():
    """``simcomm.run("gateway", seed=1, call_timeout=1.0, breaker="resilience4j",
    fallback="value")``."""
    return _gw(call_timeout=1.0, breaker="resilience4j", fallback="value")


@claim(PARTIAL, "Every `createOrder` of the hang was answered — by the fallback — and nobody "
                "saw a failure: `availability` is 1.0",
       "The fallback answers go on for a few seconds after the hang, while the breaker is "
       "still open",
       "But only 77.9 % of the requests were answered by the service itself (`success_rate`)",
       "`availability` was 1.0 with the fallback and `success_rate` 77.9 %")
def test_partial_fallback(with_fallback):
    orders = _endpoint(with_fallback, "createOrder")
    assert (orders["outcome"] == "fallback").all()
    s = with_fallback.summary()
    assert s["failed"] == 0 and s["availability"] == 1.0
    assert round(s["success_rate"] * 100, 1) == 77.9
    late = with_fallback.requests.query("outcome == 'fallback' and start >= 40")
    closed = _order_edge(with_fallback).query("to_state == 'closed'")["time"].max()
    assert len(late) > 0 and late["start"].max() < closed < 45


@claim(PARTIAL, "before any call has succeeded it has nothing to give, and the original "
                "failure goes through")
def test_partial_cache_fallback_needs_a_good_reply_first():
    res = _gw(call_timeout=1.0, fallback="cache", hang_at=0.0)
    orders = _endpoint(res, "createOrder")
    assert "fallback" not in set(orders["outcome"])
    assert (orders["outcome"] == "timeout").mean() > 0.9


@claim(PARTIAL, "Alone, without a timeout, bulkhead or breaker to make the hung calls fail, it "
                "never acts: the run is the cascade again")
def test_partial_fallback_alone(cascade):
    alone = _gw(fallback="value").summary()
    before = cascade.summary()
    assert alone["fallback"] == 0
    assert (alone["completed"], alone["abandoned"]) == (before["completed"], before["abandoned"])


@claim(PARTIAL, "The Resilience4j breaker let 10 trial calls through every half-open phase")
def test_partial_question_trial_calls(breakers):
    order = _order_edge(breakers["resilience4j"])
    assert "10 calls in half-open" in order.query("from_state == 'half_open'").iloc[0]["why"]


# == 04-retries-and-storms ========================================================
#
# The storm's runs are 80 simulated seconds of 47 users: about 700 requests
# and, in the storm, 20 attempts a second.  Rates are checked to the digits
# the prose gives; the seed fixes the run.

def _rs(**settings):
    """``simcomm.run("retry-storm", seed=1, ...)``, the notebook's runs."""
    return _quiet(lambda: simcomm.run("retry-storm", seed=1, **settings))


def _storm_default(field: str):
    return _default("retry-storm", field)


def _attempts_per_bin(res, width: float) -> pd.Series:
    """Attempts sent to the order service per second, in bins of ``width`` seconds."""
    tr = res.trace
    sent = tr[(tr["event"] == "send") & (tr["dest"] == "order-1") & (tr["kind"] != "reply")]
    bins = (sent["time"] // width).astype(int)
    return bins.value_counts().sort_index().reindex(
        range(int(res.until // width)), fill_value=0) / width


@pytest.fixture(scope="module")
def storm():
    """``storm = simcomm.run("retry-storm", seed=1)``."""
    return _rs()


@pytest.fixture(scope="module")
def storm_reports(storm) -> dict:
    """``storm_report`` of the runs the notebook compares, by the cells' names."""
    from simcomm.scenarios.retry_storm import storm_report

    runs = {"eager": storm, "calm": _rs(max_attempts=1),
            "constant": _rs(retry_backoff="constant"),
            "exponential": _rs(retry_backoff="exponential"),
            "budget": _rs(retry_budget=True), "breaker": _rs(breaker="resilience4j"),
            **{kind: _rs(retry_backoff=kind)
               for kind in ("full_jitter", "equal_jitter", "decorrelated_jitter")}}
    return {name: {"res": res, **storm_report(res)} for name, res in runs.items()}


@claim(STORMS, "Then a slowdown of five seconds tips the same system",
       "47 mobile `users` each think for 5 s on average",
       "which has 4 workers and spends 0.25 s of work on each attempt on average: it can serve "
       "4 ÷ 0.25 = 16 attempts per second",
       "`call_timeout` = 1 s", "`max_attempts` = 4 attempts in all",
       "from 20 s the order service is 4 times slower for 5 s",
       "Back to the default timeout of 1 s")
def test_storms_settings():
    from simcomm.scenarios import retry_storm

    d = {name: _storm_default(name) for name in (
        "users", "think_time", "service_workers", "service_time", "call_timeout",
        "max_attempts", "slowdown_at", "slowdown_factor", "slowdown_duration",
        "retry_backoff")}
    assert d == {"users": 47, "think_time": 5, "service_workers": 4, "service_time": 0.25,
                 "call_timeout": 1, "max_attempts": 4, "slowdown_at": 20,
                 "slowdown_factor": 4, "slowdown_duration": 5, "retry_backoff": "none"}
    assert retry_storm.capacity(base.make_params(base.get("retry-storm"), {})) == 16


@claim(STORMS, "Normally the users send about 9 requests per second, a little over half of "
               "what the order service can serve, and answers take about a quarter of a second")
def test_storms_normal_load():
    quiet = _rs(slowdown_factor=1.0).summary()
    # ~720 requests in 80 s: the rate is good to about 4 %
    assert quiet["offered_rate"] == pytest.approx(9, abs=0.5)
    assert 0.5 < quiet["bottleneck_utilisation"] < 0.6
    assert quiet["mean_latency"] == pytest.approx(0.25, abs=0.05)


@claim(STORMS, "Without retries 5 requests timed out; with up to four attempts none did, and "
               "it took only 4 retries")
def test_storms_retries_help():
    lucky = {"call_timeout": 0.7, "slowdown_factor": 1.0}
    one, four = (_rs(max_attempts=a, **lucky).summary() for a in (1, 4))
    assert (one["timeout"], four["timeout"], four["retries"]) == (5, 0, 4)
    assert four["success_rate"] == 1.0


@claim(STORMS, "When the slowdown ends at 25 s the capacity is back at 16 — but the calls "
               "reaching the service stay well above it for the rest of the run, and the "
               "goodput stays at zero",
       "The service's queue only grows")
def test_storms_the_overload_outlives_the_trigger(storm, storm_reports):
    rep = storm_reports["eager"]
    end = _storm_default("slowdown_at") + _storm_default("slowdown_duration")
    assert end == 25 and rep["capacity"] == 16
    rates = _attempts_per_bin(storm, 5.0)
    from_30s = 30 // 5  # bins of 5 s: a 2 s bin may dip below, a 5 s one does not
    assert (rates.loc[from_30s:] > 16).all(), rates.to_dict()
    assert rep["offered_after"] > 1.25 * rep["capacity"]
    assert rep["goodput_after"] == 0
    queue = storm.pools.query("node == 'order-1' and time >= 30")
    by_10s = queue.groupby(queue["time"] // 10)["queued"].max()
    assert by_10s.is_monotonic_increasing


@claim(STORMS, "Without retries the slowdown costs what it must — goodput falls to 2.6 "
               "requests per second while it lasts — and the system is back to normal as soon "
               "as it ends",
       "With retries the goodput after the slowdown is 0.0, and the order service is offered "
       "21.4 attempts per second against a capacity of 16")
def test_storms_report_with_and_without_retries(storm_reports):
    calm, eager = storm_reports["calm"], storm_reports["eager"]
    assert round(calm["goodput_during"], 1) == round(eager["goodput_during"], 1) == 2.6
    assert calm["recovered"] and calm["goodput_after"] > 0.95 * calm["goodput_before"]
    assert eager["goodput_after"] == 0.0 and round(eager["offered_after"], 1) == 21.4


@claim(STORMS, "All four attempts of every request time out",
       "Each user request now costs the order service 4 attempts of work",
       "930 retries, and 902 replies that came after their caller had stopped waiting",
       "Over the whole run 2.84 calls reached the order service per user request")
def test_storms_every_attempt_times_out(storm):
    after = storm.attempts.query("time >= 25")
    assert set(after["outcome"]) == {"timeout"}
    assert set(after["attempt"]) == {1, 2, 3, 4}
    s = storm.summary()
    assert (s["retries"], s["orphan_replies"]) == (930, 902)
    assert round(s["max_amplification"], 2) == 2.84
    assert round(storm.amplification()["order"], 2) == 2.84


@claim(STORMS, "In the storm a user's cycle is 5 s of thinking plus 4 attempts of 1 s each, "
               "9 s, during which it sends 4 attempts. So the users offer 47 × 4 ÷ 9 ≈ 20.9 "
               "attempts per second — above the capacity of 16. The queue grows by about five "
               "attempts every second",
       "Without retries the same sum gives 47 ÷ (5 + 1) ≈ 7.8 requests per second, well "
       "below 16")
def test_storms_the_sum_by_hand(storm, storm_reports):
    import numpy as np

    from simcomm.exercises.nb04_retries import storm_load

    p = storm.params
    assert 5 + 4 * 1 == 9 and round(47 * 4 / 9, 1) == 20.9
    assert round(storm_load(p), 1) == 20.9 and round(47 / 6, 1) == 7.8
    # the sum leaves out the network and the few attempts that succeed: within 5 %
    assert storm_reports["eager"]["offered_after"] == pytest.approx(20.9, rel=0.05)
    queue = storm.pools.query("node == 'order-1' and time >= 30")
    slope = np.polyfit(queue["time"], queue["queued"], 1)[0]
    assert slope == pytest.approx(5, abs=1)


@claim(STORMS, "it ran for 20 s without a problem",
       "6.3 per second over the whole run, fewer than the 8.9 before the trigger, because "
       "each now waits 4 s for its timeouts")
def test_storms_the_users_ask_for_less(storm, storm_reports):
    before = storm.requests.query("start < 20")
    assert (before.query("end < 20")["outcome"] == "ok").all()
    assert round(storm.summary()["offered_rate"], 1) == 6.3
    assert round(storm_reports["eager"]["offered_before"], 1) == 8.9
    late = storm.requests.query("start >= 30 and outcome == 'timeout'")
    assert late["latency"].median() == pytest.approx(4, abs=0.1)


@claim(STORMS, "A `constant` wait of `retry_wait` (1 s) between attempts, and an `exponential` "
               "one that doubles (1 s, 2 s, 4 s)",
       "The constant wait does not end the storm within the run: 6.1 requests per second "
       "answered at the end, against 8.65 before the trigger. The exponential one does")
def test_storms_backoff(storm_reports):
    from simcomm.scenarios import _policies

    assert _storm_default("retry_wait") == 1 and _policies.MULTIPLIER == 2
    constant, exponential = storm_reports["constant"], storm_reports["exponential"]
    assert not constant["recovered"] and round(constant["goodput_last"], 1) == 6.1
    assert constant["goodput_before"] == 8.65
    assert exponential["recovered"]


@claim(STORMS, "5 + 4 × 1 + 3 × 1 = 12 s, so the users offer 47 × 4 ÷ 12 ≈ 15.7 attempts per "
               "second — just below the capacity",
       "With waits of 1, 2 and 4 s the cycle is 16 s and the users offer about 11.8 attempts "
       "per second")
def test_storms_backoff_sums():
    assert 5 + 4 * 1 + 3 * 1 == 12 and round(47 * 4 / 12, 1) == 15.7 < 16
    assert 5 + 4 * 1 + (1 + 2 + 4) == 16 and round(47 * 4 / 16, 1) == 11.8


@claim(STORMS, "The calls reaching the order service peak a little below its capacity just "
               "after the slowdown, while the retries back off, and within ten seconds of its "
               "end the goodput is back",
       "a request that needed all four attempts now waited 7 s between them. The 99th "
       "percentile of the successful requests rose to 10.4 s, where the eager retries' was "
       "under a second")
def test_storms_exponential_recovers_at_a_price(storm_reports, storm):
    run = storm_reports["exponential"]["res"]
    rates = _attempts_per_bin(run, 2.0)
    from_24s = 25 // 2  # bins of 2 s: the one the slowdown ends in, and on
    after = rates.loc[from_24s:]
    assert 12 < after.max() < 16
    ok = run.requests.query("outcome == 'ok'")
    good = ok[ok["end"].between(35, 80, inclusive="left")]
    assert len(good) / 45 >= 0.9 * storm_reports["exponential"]["goodput_before"]
    assert 1 + 2 + 4 == 7
    assert round(run.summary()["p99"], 1) == 10.4 and storm.summary()["p99"] < 1


@claim(STORMS, "With exponential backoff all 100 retries come 1.00 s after the failure; with "
               "full jitter they spread over 0 to 2 s",
       "All 100 in one tenth of a second, against at most 10",
       "With plain exponential backoff all their first retries arrive 1 s later, at the same "
       "instant",
       "full jitter draws it uniformly between 0 and the exponential wait")
def test_storms_jitter_spreads_the_retries():
    import random

    from simcomm.resilience import exponential, full_jitter

    rng = random.Random(1)
    waits = {"exponential": exponential(1.0, 2.0, 10.0),
             "full jitter": full_jitter(1.0, 10.0, rng=rng)}
    first_retry = pd.DataFrame({name: [wait(1) for _ in range(100)]
                                for name, wait in waits.items()})
    assert (first_retry["exponential"] == 1.0).all()
    jitter = first_retry["full jitter"]
    assert jitter.min() < 0.1 and 1.9 < jitter.max() < 2
    busiest = (first_retry // 0.1).apply(pd.Series.value_counts).max()
    assert busiest.to_dict() == {"exponential": 100, "full jitter": 10}


@claim(STORMS, "All four recover")
def test_storms_every_growing_wait_recovers(storm_reports):
    kinds = ("exponential", "full_jitter", "equal_jitter", "decorrelated_jitter")
    assert all(storm_reports[kind]["recovered"] for kind in kinds)


@claim(STORMS, "(10 here, `budget_max_tokens`)",
       "every success gives back a tenth (`budget_token_ratio`)",
       "When many calls fail, the bucket empties within a few failures and the retries stop")
def test_storms_budget_settings():
    from simcomm.resilience import RetryBudget

    assert _storm_default("budget_max_tokens") == 10
    assert _storm_default("budget_token_ratio") == 0.1
    budget = RetryBudget(10, 0.1)
    allowed = [budget.record_failure() for _ in range(6)]
    assert allowed == [True, True, True, True, False, False]  # retries stop at the 5th


@claim(STORMS, "the budget allowed only 5 retries in the whole run, against 930 without it — "
               "and the system is back to normal as soon as the slowdown ends",
       "the bucket stays full and the budget rescues the slow calls as before")
def test_storms_budget(storm_reports):
    run = storm_reports["budget"]
    assert run["res"].summary()["retries"] == 5
    assert storm_reports["eager"]["res"].summary()["retries"] == 930
    assert run["recovered"] and run["goodput_after"] > 0.95 * run["goodput_before"]
    lucky = _rs(max_attempts=4, retry_budget=True, call_timeout=0.7, slowdown_factor=1.0)
    assert lucky.summary()["timeout"] == 0


@claim(STORMS, "It opened once, at 23.0 s during the slowdown, let its trial calls through 5 s "
               "later and closed for good at 29.1 s",
       "While it was open the users' requests failed at once (`short_circuited`)")
def test_storms_breaker(storm_reports):
    run = storm_reports["breaker"]["res"]
    ev = run.breaker_events
    assert list(ev["to_state"]) == ["open", "half_open", "closed"]
    opened, tried, closed = ev["time"]
    assert round(opened, 1) == 23.0 and 20 < opened < 25
    assert tried - opened == pytest.approx(5, abs=0.1)
    assert round(closed, 1) == 29.1
    short = run.requests.query("outcome == 'short_circuited'")
    assert len(short) > 0 and short["latency"].median() < 0.01


@claim(STORMS, "The eager retries never recover; the constant wait recovers too slowly for "
               "this run. The others all recover, each at its own price: backoff and jitter in "
               "latency (seconds, for the requests that needed retries), the budget and the "
               "breaker in failures while the trouble lasts")
def test_storms_what_ends_it(storm_reports):
    r = storm_reports
    assert not r["eager"]["recovered"] and not r["constant"]["recovered"]
    recovered = ("calm", "exponential", "full_jitter", "budget", "breaker")
    assert all(r[name]["recovered"] for name in recovered)
    summary = {name: r[name]["res"].summary() for name in recovered}
    for name in ("exponential", "full_jitter"):
        assert summary[name]["p99"] > 5 and summary[name]["success_rate"] > 0.98
    for name in ("budget", "breaker"):
        assert summary[name]["p99"] < 1 and summary[name]["success_rate"] < 0.95


@claim(STORMS, "`users × attempts ÷ (think_time + attempts × call_timeout)` against 16",
       "three layers of three attempts each make up to 27 calls")
def test_storms_your_turn_and_questions():
    from simcomm.scenarios import retry_storm

    assert retry_storm.capacity(base.make_params(base.get("retry-storm"), {})) == 16
    assert 3 ** 3 == 27
