"""Every number the notebooks' prose states is recomputed here (DESIGN.md, principle 10).

Each test below checks one claim of a notebook against the same package calls
the notebook's cells make, and registers the exact phrases it checks with
:func:`claim`.  Two more tests make the rule enforceable:

* every registered phrase must still be in its notebook's markdown (change the
  words and the check goes with them, or the test fails);
* every digit in a notebook's markdown must sit inside a registered phrase, an
  entry of :data:`ALLOWED` (a parameter the cells set, a question's givens,
  a name), or a :data:`GENERIC` pattern (book sections, links, instance names,
  list numbers).  A new number in the prose fails until it is checked here or
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

import json
import math
import re
import statistics
import warnings
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

import simcomm
from simcomm.errors import OverloadWarning
from simcomm.scenarios import base
from simcomm.scenarios import formats as fs

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
TOUR, SYNC, FORMATS_NB = "00-tour", "01-sync-request-response", "02-message-formats"
NOTEBOOKS = (TOUR, SYNC, FORMATS_NB)


def _cells(stem: str, kind: str) -> list[str]:
    """The notebook's own cells of ``kind``.  The Exercises section is left out:
    tools/sync_exercises.py writes it from simcomm.exercises, whose numbers
    tests/test_exercises.py holds against the model."""
    nb = json.loads((NOTEBOOK_DIR / f"{stem}.ipynb").read_text())
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == kind
            and "exercise" not in c.get("metadata", {}).get("tags", [])]


def _squash(text: str) -> str:
    """Whitespace runs as one space: phrases match across line breaks."""
    return re.sub(r"\s+", " ", text).strip()


MARKDOWN = {stem: "\n\n".join(_cells(stem, "markdown")) for stem in NOTEBOOKS}
CODE = {stem: _squash("\n\n".join(_cells(stem, "code"))) for stem in NOTEBOOKS}

#: Phrases of each notebook's prose that a test below checks.
CLAIMS: dict[str, list[str]] = {stem: [] for stem in NOTEBOOKS}


def claim(stem: str, *phrases: str) -> Callable:
    """Mark a test as the check of ``phrases`` (exact words) in notebook ``stem``."""
    def mark(test: Callable) -> Callable:
        CLAIMS[stem].extend(phrases)
        return test
    return mark


#: Numbers in the prose that are not claims, each with the reason.
ALLOWED: dict[str, dict[str, str]] = {
    TOUR: {
        "chapter 3": "the book's chapter",
        "request number 1": "the request the next cell selects (trace_id == 1)",
        "their 99th percentile": "names what the dashed line is",
        "notebook 01": "a notebook's number",
        "`simcomm run chain --set depth=5`": "an example command",
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
}

#: Patterns whose digits are never claims.
GENERIC = [
    (r"§\d+(?:\.\d+)*", "a section of the book"),
    (r"\[\d\d — ", "a notebook's number in a link"),
    (r"\]\(\d\d-[\w-]+\.ipynb\)", "a link to a notebook"),
    (r"\b[a-z]+-\d+\b", "an instance name such as payment-1"),
    (r"`p\d\d`", "the name of a percentile column"),
    (r"(?m)^\d+\. ", "a question's number"),
]


def _unclaimed_numbers(stem: str) -> list[str]:
    text = MARKDOWN[stem]
    line_patterns = [p for p, _ in GENERIC if p.startswith("(?m)")]
    for pattern in line_patterns:  # before line breaks are squashed away
        text = re.sub(pattern, " ", text)
    text = _squash(text)
    for phrase in [*CLAIMS[stem], *ALLOWED[stem]]:
        text = text.replace(_squash(phrase), " ")
    for pattern, _reason in GENERIC:
        if pattern not in line_patterns:
            text = re.sub(pattern, " ", text)
    return [text[max(0, m.start() - 40): m.end() + 40]
            for m in re.finditer(r"\d+(?:[.,]\d+)*", text)]


# -- the rule, enforced -----------------------------------------------------------

@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_every_claimed_or_allowed_phrase_is_in_its_notebook(stem):
    prose = _squash(MARKDOWN[stem])
    missing = [p for p in [*CLAIMS[stem], *ALLOWED[stem]] if _squash(p) not in prose]
    assert not missing, f"{stem}: the prose no longer says {missing}; update the checks"


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_every_number_in_the_prose_is_checked_or_allowed(stem):
    assert CLAIMS[stem], "no claims registered"
    left = _unclaimed_numbers(stem)
    assert not left, (f"{stem}: numbers in the prose that no test checks (claim them in "
                      f"tests/test_notebook_claims.py or allow them with a reason): {left}")


def test_an_unchecked_number_would_be_caught(monkeypatch):
    """The scanner is not vacuous: a new number in the prose is reported."""
    monkeypatch.setitem(MARKDOWN, TOUR, MARKDOWN[TOUR] + "\n\nIt is 42 % faster.")
    assert any("42 %" in s for s in _unclaimed_numbers(TOUR))


#: The calls the fixtures below repeat, as each notebook's code cells make them.
CALLS = {
    TOUR: ['res = simcomm.run("chain")',
           'replies = res.trace[(res.trace["event"] == "send") & (res.trace["kind"] == "reply")]',
           'simcomm.run("mmc", seed=1, until=10_000, arrival_rate=2.4, service_rate=1.0, '
           'servers=3)'],
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
        'formats.format_sweep("request_rate", [50, 100, 150, 200, 250, 300, 350], '
        'order_lines=2000, until=20)',
        'load[load["request_rate"] == 350]',
        'simcomm.run("formats", order_lines=2000, request_rate=150, until=20)',
        'formats.format_ceilings(order_lines=2000, bandwidth_mbps=10_000)',
        'formats.format_sweep("request_rate", [100, 200, 300, 400, 500], order_lines=2000, '
        'bandwidth_mbps=10_000, until=10)',
        'fast[fast["request_rate"] == 500]',
        'simcomm.run("formats", order_lines=2000, request_rate=500, bandwidth_mbps=10_000, '
        'message_format="xml", until=10)',
        'formats.format_sweep("bandwidth_mbps", [50, 100, 200, 300, 400, 600], '
        'order_lines=2000, request_rate=500, until=5)',
        'formats.format_sweep("bandwidth_mbps", [10, 30, 100, 1000, 10_000], order_lines=500, '
        'request_rate=2, until=120)',
        'simcomm.explore("formats", order_lines=2000, request_rate=150)',
        'large = {"order_lines": 2000, "request_rate": 150}',
        'a={"message_format": "json", **large}', 'b={"message_format": "protobuf", **large}'],
}


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_the_notebooks_still_make_the_calls_checked_here(stem):
    missing = [call for call in CALLS[stem] if _squash(call) not in CODE[stem]]
    assert not missing, f"{stem}: cells changed; update the fixtures that repeat {missing}"


def _quiet(make: Callable):
    """Run ``make()`` without its overload warning (asserted where the prose says so)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OverloadWarning)
        return make()


def _default(scenario: str, field: str):
    return {f.name: f.default for f in base.get(scenario).fields()}[field]


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

    from simcomm import viz

    default = inspect.signature(viz.theory_sweep).parameters["utilisations"].default
    assert len(default) == 9


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
    return fs.format_sweep("request_rate", [350], order_lines=2000, until=20,
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
    return fs.format_sweep("request_rate", [500], order_lines=2000, bandwidth_mbps=10_000,
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
    return fs.format_sweep("bandwidth_mbps", [10, 10_000], order_lines=500, request_rate=2,
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
