"""Every number notebook 10's prose states is recomputed here (DESIGN.md, principle 10).

Each test repeats the calls of the cells it checks (module-scoped fixtures, so
each run is made once) and registers the exact phrases it checks with
:func:`claim`; ``claims_kit.enforce`` adds three tests: the phrases are still in
the notebook, every digit of its prose is claimed or allowed (with a reason,
:data:`ALLOWED`), and the cells still make the calls repeated here
(:data:`CALLS`).

Runs are deterministic for a seed, so a count or a time the prose gives to its
digits is checked to those digits.  The lessons drawn from the seed-1 runs --
a dual write loses or invents an event at each crash between its writes, the
outbox never does, its relays send again after their crashes, a log tailer
more than a poller, dedup absorbs every repeat -- are checked on more seeds
(shorter runs with one crash of each, to keep this file fast).
"""

from __future__ import annotations

import numpy as np
import pytest
from claims_kit import Prose, default, enforce, quiet

import simcomm
from simcomm.messaging import LogTailer, PollingPublisher
from simcomm.messaging.group import GroupState
from simcomm.scenarios import outbox
from simcomm.scenarios.payloads import ORDER_EVENTS

NB = "10-transactional-outbox"

ALLOWED = {
    "(exercise 10.1)": "an exercise's number",
    "(exercise 10.2 asks": "an exercise's number",
    "With `poll_interval=2.0`": "the setting of the slow-poll cell (checked in "
                                "test_a_longer_poll_interval)",
    "with batches of at most 5 rows": "the setting of the small-batch cell (checked in "
                                      "test_small_batches)",
    "**service crash every** 5 s": "a dashboard setting for the learner to try",
    "**poll interval** 0.05 s and 5 s": "dashboard settings for the learner to try",
    "**offset flush interval** 60 s (Kafka Connect's default)": "a dashboard setting for "
        "the learner to try (the default is checked in test_the_scenario_defaults)",
}

CALLS = [
    'pd.DataFrame(simcomm.describe("outbox")).set_index("field")',
    'runs = {design: simcomm.run("outbox", seed=1, design=design) for design in '
    'outbox.DESIGNS}',
    'runs["dual-write"].delivery_anomalies()',
    'viz.outbox_lag(runs["dual-write"])',
    'runs["publish-first"].delivery_anomalies()',
    'viz.outbox_lag(runs["publish-first"])',
    'viz.outbox_lag(runs["polling"])',
    'slow_poll = simcomm.run("outbox", seed=1, poll_interval=2.0)',
    'viz.outbox_lag(slow_poll)',
    'small_batches = simcomm.run("outbox", seed=1, poll_interval=2.0, batch_size=5)',
    'pd.DataFrame({"batch_size=1000": outbox.outbox_report(slow_poll), '
    '"batch_size=5": outbox.outbox_report(small_batches)})',
    'viz.outbox_lag(runs["log-tailing"])',
    'flushed = simcomm.run("outbox", seed=1, design="log-tailing", '
    'offset_flush_interval=1.0)',
    'outbox.outbox_report(flushed)',
    'pd.DataFrame([outbox.outbox_report(res) for res in runs.values()]).set_index("design")',
    'viz.delivery_causes(runs["log-tailing"])',
    'deduped = simcomm.run("outbox", seed=1, design="log-tailing", dedup="processed_ids")',
    'viz.key_order(deduped)',
    'deduped.key_order()["kind"].value_counts()',
    'simcomm.explore("outbox")',
]

PROSE = Prose(NB, allowed=ALLOWED, calls=CALLS)
claim = PROSE.claim

(test_every_claimed_or_allowed_phrase_is_in_its_notebook,
 test_every_number_in_the_prose_is_checked_or_allowed,
 test_the_notebooks_still_make_the_calls_checked_here) = enforce(PROSE)


def _run(**kwargs):
    return quiet(lambda: simcomm.run("outbox", progress=False, **kwargs))


# == fixtures: the notebook's runs ==================================================

@pytest.fixture(scope="module")
def runs():
    """The four designs, seed 1, the scenario's defaults otherwise."""
    return {design: _run(seed=1, design=design) for design in outbox.DESIGNS}


@pytest.fixture(scope="module")
def reports(runs):
    return {design: outbox.outbox_report(res) for design, res in runs.items()}


@pytest.fixture(scope="module")
def slow_poll():
    return _run(seed=1, poll_interval=2.0)


@pytest.fixture(scope="module")
def small_batches():
    return _run(seed=1, poll_interval=2.0, batch_size=5)


@pytest.fixture(scope="module")
def flushed():
    return _run(seed=1, design="log-tailing", offset_flush_interval=1.0)


@pytest.fixture(scope="module")
def deduped():
    return _run(seed=1, design="log-tailing", dedup="processed_ids")


def _crashes(res, node):
    return [e[0] for e in res.world.trace.events if e[1] == node and e[2] == "crash"]


def _relay_share(res):
    """commit -> the first send of each sent event (Result.outbox_lag), seconds."""
    lag = res.outbox_lag()
    return (lag["sent"] - lag["committed"]).dropna()


def _resent_ids(res):
    """record id -> its sends beyond the first (label relay)."""
    sends: dict[int, int] = {}
    for r in res.world.trace.records:
        if r[1] == "send" and r[8] == "relay":
            sends[r[2]] = sends.get(r[2], 0) + 1
    return {rid: n - 1 for rid, n in sends.items() if n > 1}


def _commit_times(res):
    return {r[2]: r[0] for r in res.world.trace.records
            if r[1] == "produce" and r[8] in ("outbox", "dual_write")}


# == the scenario ====================================================================

@claim("new orders at about 5 a second", "about 1 s apart, so three events per order",
       "(3 partitions, keyed by order id)", "a consumer group of 2 members",
       "The order service crashes every 20 s", "the relay crashes every 20 s too",
       "Each crash lasts 2 s, and a run lasts a minute",
       "`poll_interval` (0.5 s, Eventuate's default)", "at most `batch_size` of them (1000)",
       "`tail_lag` (0.2 s)",
       "10 s here, Kafka Connect's `offset.flush.interval.ms` is 60 s by default")
def test_the_scenario_defaults(runs):
    assert default("outbox", "order_rate") == 5.0
    assert default("outbox", "event_gap") == 1.0 and len(ORDER_EVENTS) == 3
    assert default("outbox", "partitions") == 3 and default("outbox", "consumers") == 2
    assert default("outbox", "service_crash_every") == 20.0
    assert default("outbox", "relay_crash_every") == 20.0
    assert default("outbox", "crash_duration") == 2.0
    assert runs["polling"].until == 60.0
    assert default("outbox", "poll_interval") == 0.5
    assert default("outbox", "batch_size") == 1000
    import inspect
    poll = inspect.signature(PollingPublisher).parameters
    assert poll["poll_interval"].default == 0.5 and poll["batch_size"].default == 1000
    assert default("outbox", "tail_lag") == 0.2
    assert default("outbox", "offset_flush_interval") == 10.0
    assert inspect.signature(LogTailer).parameters["offset_flush_interval"].default == 60.0
    res = runs["polling"]
    members = [n for n in res.world.nodes if n.startswith(outbox.GROUP + "-")]
    assert len(members) == 2
    assert res.world.nodes[outbox.CLUSTER + "-0"] is not None
    # three events per order: the keys of the produced records each come up to 3 times
    keys = res.records.query("event == 'produce'")["key"].value_counts()
    assert keys.max() == 3


# == commit, then send ===============================================================

@claim("Two events lost, one at each crash of the order service (at 20 s and 40 s)",
       "(`lost` 2)")
def test_the_dual_write_loses_an_event_at_each_crash(runs, reports):
    res = runs["dual-write"]
    anomalies = res.delivery_anomalies()
    assert anomalies["anomaly"].tolist() == ["lost", "lost"]
    assert set(anomalies["cause"]) == {"dual write"}
    crashes = _crashes(res, outbox.SERVICE)
    assert [round(t) for t in crashes] == [20, 40]
    commits = _commit_times(res)
    for rid, crash in zip(anomalies["record_id"], crashes, strict=True):
        assert 0 <= crash - commits[rid] < 0.01  # committed just before its crash
    assert reports["dual-write"]["lost"] == 2


@claim("The median event was applied 14 ms after its commit",
       "one committed in the run's last instant, still on its way")
def test_the_dual_write_is_quick(runs, reports):
    res = runs["dual-write"]
    assert round(res.outbox_lag()["lag"].median() * 1000) == 14
    assert reports["dual-write"]["pending"] == 1
    pending = [rid for rid, t in _commit_times(res).items()
               if rid not in set(res.records.query("event == 'apply'")["record_id"])]
    assert len(pending) == 3  # the two lost, and the last one
    late = max(_commit_times(res)[rid] for rid in pending)
    assert late > res.until - 0.05


@claim("waited up to about 3 s", "`group.initial.rebalance.delay.ms` (3 s)")
def test_the_first_events_wait_for_the_group(runs):
    import inspect
    assert inspect.signature(GroupState).parameters["initial_rebalance_delay"].default == 3.0
    for res in runs.values():
        lag = res.outbox_lag()
        first = lag[lag["committed"] < 1.0]
        assert 2.5 < first["lag"].max() <= 3.0
        assert res.records.query("event == 'apply'")["time"].min() == pytest.approx(3.0,
                                                                                    abs=0.1)


# == publish first ===================================================================

@claim("Two phantoms, again one per crash", "(`phantom` 2)",
       "288 events were applied before their commit",
       "the two phantoms beside the crash bands, and one sent in the run's last instant "
       "whose commit had not come yet")
def test_publish_first_invents_an_event_at_each_crash(runs, reports):
    res = runs["publish-first"]
    anomalies = res.delivery_anomalies()
    assert anomalies["anomaly"].tolist() == ["phantom", "phantom"]
    assert set(anomalies["cause"]) == {"dual write"}
    crashes = _crashes(res, outbox.SERVICE)
    for t, crash in zip(anomalies["time"], crashes, strict=True):
        assert 0 <= t - crash < 0.1
    assert reports["publish-first"]["phantom"] == 2
    lag = res.outbox_lag()
    assert int((lag["lag"] < 0).sum()) == 288
    commits = _commit_times(res)
    never = [r for r in res.world.trace.records if r[1] == "send" and r[2] not in commits]
    assert len(never) == 3
    last = max(never, key=lambda r: r[0])
    assert last[0] > res.until - 0.05 and last[2] not in set(anomalies["record_id"])


# == the polling publisher ===========================================================

@claim("749 events committed, none lost, none invented",
       "the median event took 0.285 s", "spreads from nothing up to 0.52 s",
       "10 events the relay sent twice, 5 at each of its crashes")
def test_the_polling_publisher(runs, reports):
    r = reports["polling"]
    assert (r["events_committed"], r["lost"], r["phantom"]) == (749, 0, 0)
    res = runs["polling"]
    assert round(res.outbox_lag()["lag"].median(), 3) == 0.285
    share = _relay_share(res)
    assert share.min() < 0.01 and round(share.max(), 2) == 0.52
    assert r["relay_resends"] == 10
    resent = _resent_ids(res)
    commits = _commit_times(res)
    crashes = _crashes(res, outbox.RELAY)
    per_crash = [sum(1 for rid in resent if crash - 1.0 < commits[rid] < crash)
                 for crash in crashes]
    assert per_crash == [5, 5]


@claim("about half the interval")
def test_the_relay_waits_half_a_poll_on_average(runs):
    share = _relay_share(runs["polling"])
    assert share.mean() == pytest.approx(default("outbox", "poll_interval") / 2, rel=0.1)


@claim("reaches 2 s", "the events wait for the relay 0.97 s on average",
       "the median event is applied 1.05 s after its commit",
       "37 events were sent twice", "A longer interval means larger batches, and more sent "
       "twice at each crash")
def test_a_longer_poll_interval(slow_poll, reports):
    assert slow_poll.params.poll_interval == 2.0
    share = _relay_share(slow_poll)
    assert round(share.max()) == 2 and round(share.mean(), 2) == 0.97
    assert round(slow_poll.outbox_lag()["lag"].median(), 2) == 1.05
    assert outbox.outbox_report(slow_poll)["relay_resends"] == 37 > \
        reports["polling"]["relay_resends"]


@claim("8 events sent twice instead of 37, at most 5 at each crash",
       "small batches hardly lengthen the wait")
def test_small_batches(slow_poll, small_batches):
    assert small_batches.params.batch_size == 5
    assert outbox.outbox_report(small_batches)["relay_resends"] == 8
    assert outbox.outbox_report(slow_poll)["relay_resends"] == 37
    resent = _resent_ids(small_batches)
    commits = _commit_times(small_batches)
    crashes = _crashes(small_batches, outbox.RELAY)
    per_crash = [sum(n for rid, n in resent.items() if crash - 4.0 < commits[rid] < crash)
                 for crash in crashes]
    assert sum(per_crash) == 8 and max(per_crash) <= 5
    assert _relay_share(small_batches).mean() == pytest.approx(
        _relay_share(slow_poll).mean(), rel=0.1)


# == the log tailer ==================================================================

@claim("most events are sent exactly 0.2 s after their commit",
       "the median event was applied 0.213 s after its commit, faster and steadier than "
       "the poll", "251 events sent twice")
def test_the_log_tailer(runs, reports):
    res = runs["log-tailing"]
    share = _relay_share(res)
    assert (np.abs(share - 0.2) < 0.001).mean() > 0.9
    lag = res.outbox_lag()["lag"]
    assert round(lag.median(), 3) == 0.213
    polled = runs["polling"].outbox_lag()["lag"]
    assert lag.median() < polled.median() and lag.quantile(0.75) - lag.quantile(0.25) < \
        polled.quantile(0.75) - polled.quantile(0.25)
    assert reports["log-tailing"]["relay_resends"] == 251


@claim("The relay saved its position at 10 s, crashed at 20 s just before its next save",
       "from the position of 10 s: everything of those 10 s went out a second time; the same "
       "from 30 s to 40 s")
def test_a_crash_resends_since_the_last_save(runs):
    res = runs["log-tailing"]
    flushes = [e[0] for e in res.world.trace.events
               if e[1] == outbox.RELAY and e[2] == "offset_flush"]
    assert flushes == [10.0, 30.0, 50.0]
    assert _crashes(res, outbox.RELAY) == [20.0, 40.0]
    commits = _commit_times(res)
    resent = sorted(commits[rid] for rid in _resent_ids(res))
    tail = default("outbox", "tail_lag")
    first = [t for t in resent if t < 25]
    second = [t for t in resent if t > 25]
    # what was sent between the save and the crash: committed a tail lag before each
    assert 10.0 - tail - 0.05 < min(first) and max(first) < 20.0 - tail
    assert 30.0 - tail - 0.05 < min(second) and max(second) < 40.0 - tail
    sent_between = [t for t in commits.values() if 10.0 - tail < t < 20.0 - tail]
    assert len(first) >= len(sent_between) - 2


@claim("18 events sent twice instead of 251", "at most a second's worth per crash",
       "Fewer, never none")
def test_saving_every_second(flushed, reports):
    r = outbox.outbox_report(flushed)
    assert r["relay_resends"] == 18 and reports["log-tailing"]["relay_resends"] == 251
    commits = _commit_times(flushed)
    tail = default("outbox", "tail_lag")
    crashes = _crashes(flushed, outbox.RELAY)
    for rid in _resent_ids(flushed):
        assert any(crash - 1.0 - tail - 0.05 < commits[rid] < crash for crash in crashes)


# == all four ========================================================================

@claim("(`applied_twice` 10 and 251)")
def test_the_table(reports):
    assert [reports[d]["lost"] for d in outbox.DESIGNS] == [2, 0, 0, 0]
    assert [reports[d]["phantom"] for d in outbox.DESIGNS] == [0, 2, 0, 0]
    assert [reports[d]["applied_twice"] for d in outbox.DESIGNS] == [0, 0, 10, 251]
    assert reports["polling"]["relay_resends"] == reports["polling"]["applied_twice"]


@claim("Every one of the 251 duplicates has the cause `relay crash`")
def test_the_causes(runs):
    causes = runs["log-tailing"].delivery_causes()
    assert causes[["anomaly", "cause", "count"]].values.tolist() == [
        ["duplicated", "relay crash", 251]]


# == dedup ===========================================================================

@claim("746 events applied once each, in order, and 251 repeats skipped")
def test_dedup_absorbs_the_repeats(deduped):
    kinds = deduped.key_order()["kind"].value_counts().to_dict()
    assert kinds == {"in_order": 746, "skipped": 251}
    r = outbox.outbox_report(deduped)
    assert r["applied_twice"] == 0 and r["relay_resends"] == 251
    assert deduped.delivery_causes().empty


# == the lessons on more seeds =======================================================

@pytest.fixture(scope="module")
def other_seeds():
    """Seeds 2 and 3, 30 s: one crash of the service and of the relay, at 20 s."""
    return {(seed, design, dedup): _run(seed=seed, design=design, dedup=dedup, until=30.0)
            for seed in (2, 3)
            for design, dedup in (("dual-write", "none"), ("publish-first", "none"),
                                  ("polling", "none"), ("log-tailing", "none"),
                                  ("log-tailing", "processed_ids"))}


def test_the_lessons_hold_on_other_seeds(other_seeds):
    for seed in (2, 3):
        rep = {(d, dd): outbox.outbox_report(other_seeds[seed, d, dd])
               for (s, d, dd) in other_seeds if s == seed}
        assert rep["dual-write", "none"]["lost"] == 1
        assert rep["dual-write", "none"]["phantom"] == 0
        assert rep["publish-first", "none"]["phantom"] == 1
        assert rep["publish-first", "none"]["lost"] == 0
        for design in ("polling", "log-tailing"):
            r = rep[design, "none"]
            assert r["lost"] == 0 and r["phantom"] == 0
            assert r["relay_resends"] >= 1 and r["applied_twice"] == r["relay_resends"]
        assert rep["log-tailing", "none"]["relay_resends"] > \
            rep["polling", "none"]["relay_resends"]
        deduped = rep["log-tailing", "processed_ids"]
        assert deduped["applied_twice"] == 0 and deduped["relay_resends"] >= 1
        res = other_seeds[seed, "polling", "none"]
        assert _relay_share(res).mean() == pytest.approx(
            default("outbox", "poll_interval") / 2, rel=0.15)


@pytest.mark.parametrize("seed", [2, 3])
def test_saving_every_second_leaves_fewer_repeats_never_none(seed, other_seeds):
    """A 1 s offset flush on other seeds: fewer resends than the 10 s default, never none."""
    res = _run(seed=seed, design="log-tailing", offset_flush_interval=1.0, until=30.0)
    resends = outbox.outbox_report(res)["relay_resends"]
    assert 1 <= resends < outbox.outbox_report(other_seeds[seed, "log-tailing", "none"])[
        "relay_resends"]
