"""Every number notebook 09's prose states is recomputed here (DESIGN.md, principle 10).

Each test repeats the calls of the cells it checks (module-scoped fixtures, so
each run is made once) and registers the exact phrases it checks with
:func:`claim`; ``claims_kit.enforce`` adds three tests: the phrases are still in
the notebook, every digit of its prose is claimed or allowed (with a reason,
:data:`ALLOWED`), and the cells still make the calls repeated here
(:data:`CALLS`).

Runs are deterministic for a seed, so a count the prose gives is checked to its
digits.  Where the prose draws a lesson from one run -- a commit after
processing duplicates and never loses, a commit before loses and never
duplicates, acks=1 loses at a leader failover and acks=all does not, the
idempotent producer removes the retries' duplicates and reorders, a
processed-ids table removes the re-deliveries' effects -- the lesson is checked
on more seeds too (:func:`test_the_lessons_hold_on_other_seeds`).
"""

from __future__ import annotations

import pandas as pd
import pytest
from claims_kit import Prose, default, enforce, quiet

import simcomm
from simcomm.scenarios import order_lifecycle as ol

NB = "09-duplicates-and-delivery-guarantees"
SCENARIO = "delivery-guarantees"

ALLOWED = {
    "`acks=1`": "the name of a setting (Kafka's acks)",
    "`acks=0`": "the name of a setting (Kafka's acks)",
    "`acks` 0, 1 and all": "the settings of acks the matrix runs",
    "(`crash_leader=False, produce_loss=0`)": "the settings the consumer-crash cells use",
    "(`crash_consumer=False, produce_loss=0`)": "the settings the leader-crash cells use",
    "**acks** `1` and `all`": "dashboard settings for the learner to try",
    "a **produce loss** of 0.05": "a dashboard setting for the learner to try",
    "a **request timeout** of 30 s (Kafka's default)": "a dashboard setting for the learner "
                                                       "to try, Kafka's request.timeout.ms",
    "(Notebook 10, the transactional outbox, meets this.)": "the next notebook's number",
    "per 10 000": "the unit of the delivery matrix",
}

CALLS = [
    'pd.DataFrame(simcomm.describe("delivery-guarantees")).set_index("field")',
    'consumer_crash = {"crash_leader": False, "produce_loss": 0.0}',
    'after = simcomm.run("delivery-guarantees", seed=1, **consumer_crash)',
    'viz.delivery_causes(after)',
    'viz.key_order(after)',
    'before = simcomm.run("delivery-guarantees", seed=1, commit="before", **consumer_crash)',
    'viz.delivery_causes(before)',
    'leader_crash = {"crash_consumer": False, "produce_loss": 0.0}',
    'acks_1 = simcomm.run("delivery-guarantees", seed=1, acks="1", idempotence=False, '
    '**leader_crash)',
    'viz.delivery_causes(acks_1)',
    'acks_all = simcomm.run("delivery-guarantees", seed=1, **leader_crash)',
    'acks_all_plain = simcomm.run("delivery-guarantees", seed=1, idempotence=False, '
    '**leader_crash)',
    'retries = {"crash_leader": False, "crash_consumer": False}',
    'plain = simcomm.run("delivery-guarantees", seed=1, idempotence=False, **retries)',
    'viz.key_order(plain)',
    'idempotent = simcomm.run("delivery-guarantees", seed=1, **retries)',
    'viz.key_order(idempotent)',
    'deduped = simcomm.run("delivery-guarantees", seed=1, dedup="processed_ids", '
    '**consumer_crash)',
    'viz.key_order(deduped)',
    'protected = simcomm.run("delivery-guarantees", seed=1, dedup="processed_ids")',
    'viz.delivery_causes(protected)',
    'matrix = simcomm.delivery_matrix(seeds=(1,))',
    'viz.delivery_matrix_figure(matrix)',
    'simcomm.explore("delivery-guarantees")',
]

PROSE = Prose(NB, allowed=ALLOWED, calls=CALLS)
claim = PROSE.claim

(test_every_claimed_or_allowed_phrase_is_in_its_notebook,
 test_every_number_in_the_prose_is_checked_or_allowed,
 test_the_notebooks_still_make_the_calls_checked_here) = enforce(PROSE)

CONSUMER_CRASH = {"crash_leader": False, "produce_loss": 0.0}
LEADER_CRASH = {"crash_consumer": False, "produce_loss": 0.0}
RETRIES = {"crash_leader": False, "crash_consumer": False}


def _run(seed: int = 1, **kwargs):
    return quiet(lambda: simcomm.run(SCENARIO, seed=seed, progress=False, **kwargs))


#: The other seeds' runs are shorter: 20 s still sees the leader's failover (at 17 s)
#: and the crashed consumer's return (at 8.5 s).
LESSON_UNTIL = 20.0


def _causes(res) -> dict[tuple[str, str], int]:
    return {(a, c): int(n) for a, c, n in
            res.delivery_causes()[["anomaly", "cause", "count"]].itertuples(index=False)}


def _s(res) -> dict:
    return res.summary()


# == fixtures: the notebook's runs ==================================================

@pytest.fixture(scope="module")
def after():
    return _run(**CONSUMER_CRASH)


@pytest.fixture(scope="module")
def before():
    return _run(commit="before", **CONSUMER_CRASH)


@pytest.fixture(scope="module")
def acks_1():
    return _run(acks="1", idempotence=False, **LEADER_CRASH)


@pytest.fixture(scope="module")
def acks_all():
    return _run(**LEADER_CRASH)


@pytest.fixture(scope="module")
def acks_all_plain():
    return _run(idempotence=False, **LEADER_CRASH)


@pytest.fixture(scope="module")
def plain():
    return _run(idempotence=False, **RETRIES)


@pytest.fixture(scope="module")
def idempotent():
    return _run(**RETRIES)


@pytest.fixture(scope="module")
def deduped():
    return _run(dedup="processed_ids", **CONSUMER_CRASH)


@pytest.fixture(scope="module")
def protected():
    return _run(dedup="processed_ids")


@pytest.fixture(scope="module")
def matrix():
    return quiet(lambda: simcomm.delivery_matrix(seeds=(1,)))


def cell(df: pd.DataFrame, acks: str, idempotence: bool, commit: str, dedup: str) -> pd.Series:
    row = df[(df["acks"] == acks) & (df["idempotence"] == idempotence)
             & (df["commit"] == commit) & (df["dedup"] == dedup)]
    assert len(row) == 1
    return row.iloc[0]


def per10k(df, acks, idempotence, commit, dedup, what) -> int:
    """A matrix number as the figure writes it: a whole number per 10 000."""
    return round(float(cell(df, acks, idempotence, commit, dedup)[f"{what}_per_10k"]))


# == the scenario ====================================================================

@claim("to the topic `order-events`, 6 partitions on a cluster of 3 brokers, every "
       "partition replicated on all three", "The 3 members of the `order-history` consumer "
       "group apply them", "About 20 new orders a second, for 30 s.",
       "1 % of the messages between the order service and the brokers are lost, both ways",
       "the broker leading partition 0 is cut off from its",
       "followers 2 s before it crashes at 8 s; a follower takes over 9 s later",
       "`order-history-1` crashes at 3.5 s, in the middle of its first batch, and restarts "
       "5 s later")
def test_the_scenario_defaults(after, acks_1):
    from simcomm.scenarios import base

    assert default(SCENARIO, "partitions") == 6
    assert default(SCENARIO, "consumers") == 3
    assert default(SCENARIO, "order_rate") == 20
    assert base.get(SCENARIO).until == 30
    assert default(SCENARIO, "produce_loss") == 0.01
    assert default(SCENARIO, "leader_isolation") == 2.0
    assert default(SCENARIO, "crash_leader_at") == 8.0
    assert default(SCENARIO, "crash_at") == 3.5
    assert default(SCENARIO, "crash_duration") == 5.0
    assert all(default(SCENARIO, f) for f in ("crash_leader", "crash_consumer"))
    assert ol.TOPIC == "order-events"
    brokers = [n for n in after.world.nodes if n.startswith(f"{ol.CLUSTER}-")]
    assert len(brokers) == 3
    cluster = after.world.nodes[brokers[0]].cluster
    assert cluster.replication_factor == 3
    assert cluster.partitions(ol.TOPIC) == 6
    members = [n for n in after.world.nodes if n.startswith("order-history-")]
    assert len(members) == 3
    # the failover: 9 s after the crash (broker.session.timeout.ms)
    ev = acks_1.events
    assert float(ev.query("event == 'crash'")["time"].iloc[0]) == 8.0
    assert ev.query("event == 'leader_election'")["time"].min() == pytest.approx(8.0 + 9.0)
    # the crashed broker led partition 0: a new leader is elected for it
    assert ev["detail"].astype(str).str.startswith(f"{ol.TOPIC}-0 ").any()
    truncated = acks_1.records.query("event == 'truncate'")
    assert 0 in set(truncated["partition"])
    # the crashed member: down at 3.5 s, back 5 s later
    ev = after.events
    assert ev.query("event == 'crash'")[["time", "node"]].values.tolist() == [
        [3.5, "order-history-1"]]
    assert float(ev.query("event == 'restart'")["time"].iloc[0]) == 8.5


# == the consumer crash ==============================================================

@claim("Of 1,729 events, 17 were applied twice, all with the cause *crash before commit*",
       "`order-history-1` had applied 17 events of its batch and committed none of them",
       "Nothing was lost.")
def test_commit_after_duplicates(after):
    s = _s(after)
    assert s["records_produced"] == 1729
    assert (s["duplicated"], s["lost"]) == (17, 0)
    assert _causes(after) == {("duplicated", "crash before commit"): 17}
    r = after.records
    mine = r[(r["node"] == "order-history-1") & (r["time"] < 3.5)]
    assert (mine["event"] == "apply").sum() == 17
    assert not (mine["event"] == "commit").any()


@claim("All 577 orders had their events applied in the order they were produced",
       "The 17 rings are the repeats",
       "most come after the order's third event")
def test_the_repeats_come_after_later_events(after):
    ko = after.key_order()
    assert ko["key"].nunique() == 577
    assert set(ko["kind"]) == {"in_order", "duplicate"}
    dups = ko[ko["kind"] == "duplicate"]
    assert len(dups) == 17
    # where each repeat came: after how many first applications of its order
    first = ko[ko["kind"] == "in_order"]
    after_third = 0
    for row in dups.itertuples():
        done = ((first["key"] == row.key) & (first["time"] < row.time)).sum()
        after_third += done == 3
    assert after_third > len(dups) / 2


@claim("Now nothing is applied twice, and 36 events are lost — cause *commit before "
       "processing*", "One *gap* too")
def test_commit_before_loses(before):
    s = _s(before)
    assert (s["duplicated"], s["lost"], s["gaps"]) == (0, 36, 1)
    assert _causes(before) == {("lost", "commit before processing"): 36,
                               ("gap", "commit before processing"): 1}
    # the lost ones are on the crashed member's partitions, below what it committed
    r = before.records
    lost = before.delivery_anomalies().query("anomaly == 'lost'")["record_id"]
    appended = r[(r["event"] == "append") & r["record_id"].isin(lost)]
    commits = r[(r["event"] == "commit") & (r["node"] == "order-history-1")
                & (r["time"] < 3.5)]
    top = commits.groupby("partition")["offset"].max()
    for row in appended.itertuples():
        assert row.partition in top.index and row.offset < top[row.partition]


@claim("The consumer crash applied 17 events twice with a commit after processing "
       "and lost 36 with a commit before")
def test_the_question_quotes_the_runs(after, before):
    assert _s(after)["duplicated"] == 17 and _s(before)["lost"] == 36


# == the leader crash ================================================================

@claim("51 events lost, all to the *leader failover*, and 4 gaps",
       "went on appending and acknowledging for 2 s")
def test_acks_1_loses_at_the_failover(acks_1):
    s = _s(acks_1)
    assert (s["lost"], s["gaps"], s["duplicated"]) == (51, 4, 0)
    assert _causes(acks_1) == {("lost", "leader failover"): 51,
                               ("gap", "leader failover"): 4}
    r = acks_1.records
    truncated = r[r["event"] == "truncate"]
    acked = r[(r["event"] == "ack") & r["record_id"].isin(truncated["record_id"])]
    # acknowledged, then truncated away: appended while the leader was cut off
    assert len(acked) >= 51
    assert acked["time"].between(6.0, 8.0).all()


@claim("all 1,729 events were applied, none lost",
       "But `acks=all` alone applied 432 events twice",
       "(`request_timeout`, 1 s)", "one event was applied 8 times")
def test_acks_all(acks_all, acks_all_plain):
    s = _s(acks_all)
    assert (s["records_produced"], s["records_applied"], s["lost"]) == (1729, 1729, 0)
    assert s["duplicated"] == 0
    p = _s(acks_all_plain)
    assert p["lost"] == 0 and p["duplicated"] == 432
    assert default(SCENARIO, "request_timeout") == 1.0
    applies = acks_all_plain.records.query("event == 'apply'").groupby("record_id").size()
    assert applies.max() == 8
    # the isolated leader acknowledged nothing: what it held was truncated, and acked
    # only once the new leader had it
    r = acks_all.records
    truncated = r[r["event"] == "truncate"]
    assert len(truncated) > 0
    acked = r[(r["event"] == "ack") & r["record_id"].isin(truncated["record_id"])]
    assert len(acked) == len(truncated) and acked["time"].min() > truncated["time"].max()
    # the repeats: retries after timeouts, appended by the leaders of other partitions
    rp = acks_all_plain.records
    dup_ids = acks_all_plain.delivery_anomalies().query("anomaly == 'duplicated'")["record_id"]
    retried = rp[(rp["event"] == "retry") & rp["record_id"].isin(dup_ids)]
    assert set(retried["detail"]) == {"timeout"}
    appended = rp[(rp["event"] == "append") & rp["record_id"].isin(dup_ids)]
    assert 0 not in set(appended["partition"]) and "kafka-0" not in set(appended["node"])
    assert set(c for _, c in _causes(acks_all_plain)) == {"retry in flight"}


# == retries ======================================================================

@claim("1 % of the produce requests and responses are lost",
       "times out after 1 s and the batch is sent again",
       "up to 5 requests in flight to each broker")
def test_the_retry_settings(plain):
    from simcomm.messaging.log_producer import LogProducer

    assert default(SCENARIO, "produce_loss") == 0.01
    assert default(SCENARIO, "request_timeout") == 1.0
    producer = plain.world.nodes[ol.PRODUCER]
    assert isinstance(producer, LogProducer)
    assert producer.max_in_flight == 5


@claim("95 events applied twice (the blue rings) and 6 out of order (the blue ✕)",
       "all with the cause *retry in flight*")
def test_retries_without_idempotence(plain):
    s = _s(plain)
    assert (s["duplicated"], s["reordered"], s["lost"]) == (95, 6, 0)
    assert {c for _, c in _causes(plain)} == {"retry in flight"}


@claim("Every event on the diagonal, no ring and no ✕",
       "it remembers the last 5 of each producer")
def test_the_idempotent_producer(idempotent):
    from simcomm.messaging.log_producer import MAX_IN_FLIGHT_IDEMPOTENT

    s = _s(idempotent)
    assert (s["duplicated"], s["reordered"], s["lost"], s["gaps"]) == (0, 0, 0, 0)
    assert set(idempotent.key_order()["kind"]) == {"in_order"}
    assert MAX_IN_FLIGHT_IDEMPOTENT == 5
    # the leaders did drop repeats and refuse overtakers
    events = set(idempotent.records["event"])
    assert "dedup" in events or "refuse" in events


# == dedup ==========================================================================

@claim("The same 17 events were delivered again, and each was skipped",
       "every event applied once, in order")
def test_processed_ids_skip_the_repeats(deduped):
    ko = deduped.key_order()
    assert (ko["kind"] == "skipped").sum() == 17
    assert set(ko["kind"]) == {"in_order", "skipped"}
    s = _s(deduped)
    assert (s["duplicated"], s["lost"], s["reordered"], s["records_applied"]) == (
        0, 0, 0, s["records_produced"])


@claim("of 1,729 events none lost, none applied twice, none out of order; 34 were still on "
       "their way when the run ended")
def test_everything_together(protected):
    s = _s(protected)
    assert s["records_produced"] == 1729
    assert (s["lost"], s["duplicated"], s["reordered"], s["gaps"]) == (0, 0, 0, 0)
    assert s["pending"] == 34
    assert protected.delivery_causes().empty


# == the matrix =======================================================================

@claim("16 settings, here one run each (seed 1; the function's default takes three seeds), "
       "20 s each", "a green frame marks the settings that lose and duplicate nothing")
def test_the_matrix_call(matrix):
    import inspect

    assert len(matrix) == 16 and (matrix["runs"] == 1).all()
    assert matrix.attrs["until"] == 20.0
    from simcomm import sweeps

    assert inspect.signature(sweeps.delivery_matrix).parameters["seeds"].default == (1, 2, 3)
    assert matrix.attrs["seeds"] == [1]
    framed = matrix[(matrix["lost_per_10k"] == 0) & (matrix["duplicated_per_10k"] == 0)]
    assert len(framed) == 2


@claim("2,238 per 10 000 with a commit before processing, 1,932 after",
       "`acks=1` loses 349 per 10 000 to the leader's failover even with a commit after "
       "processing", "(26 per 10 000 reordered, whatever the consumer does)",
       "but duplicates 4,664 per 10 000", "60 per 10 000 in the bottom panel",
       "145 per 10 000 duplicated — the consumer's crash, the same as in the `acks=0` row",
       "0 in every panel once the consumer deduplicates",
       "a commit before processing adds 306 per 10 000 lost to every `acks=all` row",
       "the processed-ids table takes the duplicates to 0 in every row",
       "Only one cell is 0 in all three panels")
def test_the_matrix_row_by_row(matrix):
    m = matrix
    assert per10k(m, "0", False, "before", "none", "lost") == 2238
    assert per10k(m, "0", False, "after", "none", "lost") == 1932
    assert per10k(m, "1", False, "after", "none", "lost") == 349
    assert all(per10k(m, "1", False, c, d, "reordered") == 26
               for c in ("before", "after") for d in ("none", "processed_ids"))
    assert per10k(m, "1", False, "after", "processed_ids", "lost") == 349
    assert per10k(m, "1", False, "after", "none", "duplicated") > 0
    assert per10k(m, "all", False, "after", "none", "lost") == 0
    assert per10k(m, "all", False, "after", "none", "duplicated") == 4664
    framed = cell(m, "all", False, "after", "processed_ids")
    assert framed["lost_per_10k"] == framed["duplicated_per_10k"] == 0
    assert per10k(m, "all", False, "after", "processed_ids", "reordered") == 60
    assert per10k(m, "all", True, "after", "none", "lost") == 0
    assert per10k(m, "all", True, "after", "none", "duplicated") == 145
    assert per10k(m, "0", False, "after", "none", "duplicated") == 145
    clean = cell(m, "all", True, "after", "processed_ids")
    assert clean["lost_per_10k"] == clean["duplicated_per_10k"] == clean[
        "reordered_per_10k"] == 0
    for idem in (False, True):
        gap = (cell(m, "all", idem, "before", "none")["lost_per_10k"]
               - cell(m, "all", idem, "after", "none")["lost_per_10k"])
        assert round(gap) == 306
    assert (m.loc[m["dedup"] == "processed_ids", "duplicated_per_10k"] == 0).all()
    # processed_ids does not touch losses or reorders (same seeds, same faults)
    for _, g in m.groupby(["acks", "idempotence", "commit"]):
        d = g.set_index("dedup")
        assert d.loc["processed_ids", "lost_per_10k"] == d.loc["none", "lost_per_10k"]
    zero = m[(m["lost_per_10k"] == 0) & (m["duplicated_per_10k"] == 0)
             & (m["reordered_per_10k"] == 0)]
    assert len(zero) == 1


# == the lessons on other seeds ==========================================================

@pytest.mark.parametrize("seed", [2, 3])
def test_the_lessons_hold_on_other_seeds(seed):
    """Each lesson, not the run: on other seeds the same settings give the same kinds of
    anomaly, with the same causes, and the protections together give none (five runs
    a seed: the protections are checked at once, under all three faults)."""
    after = _run(seed, until=LESSON_UNTIL, **CONSUMER_CRASH)
    assert _s(after)["lost"] == 0 and _s(after)["duplicated"] > 0
    assert {c for _, c in _causes(after)} == {"crash before commit"}
    before = _run(seed, until=LESSON_UNTIL, commit="before", **CONSUMER_CRASH)
    assert _s(before)["duplicated"] == 0 and _s(before)["lost"] > 0
    assert {c for _, c in _causes(before)} == {"commit before processing"}
    acks_1 = _run(seed, until=LESSON_UNTIL, acks="1", idempotence=False, **LEADER_CRASH)
    assert _s(acks_1)["lost"] > 0
    assert {c for a, c in _causes(acks_1) if a == "lost"} == {"leader failover"}
    plain = _run(seed, until=LESSON_UNTIL, idempotence=False, **RETRIES)
    assert _s(plain)["duplicated"] > 0 and _s(plain)["reordered"] > 0
    # acks=all, the idempotent producer and the processed-ids table, under all three
    # faults at once: nothing lost, duplicated or reordered
    assert _run(seed, until=LESSON_UNTIL, dedup="processed_ids").delivery_causes().empty
