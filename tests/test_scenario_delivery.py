"""delivery-guarantees: each setting lets through exactly the anomalies its rule says.

Kafka's rules (REFERENCE §3): acks=1 can lose what the leader acknowledged,
acks=all cannot; retries without the idempotent producer duplicate; committing
before processing is at-most-once (never a duplicate by the consumer),
after is at-least-once (never a loss); a processed-ids table removes the
duplicates.  Runs are the default 30 s (about 1 750 events) unless a test says
otherwise; the tolerances come from seeds 1-8 (quoted), with room to spare.
"""

from __future__ import annotations

import math

import pytest

import simcomm
from simcomm.errors import ParamError
from simcomm.scenarios import get, make_params
from simcomm.scenarios.delivery_guarantees import capacity, lifecycle_params, load

NAME = "delivery-guarantees"

#: only the consumer's crash (3.5 s in, half a second into its first batch): acks=all
#: with the idempotent producer, no lossy network, no leader crash; 12 s is enough for
#: its partitions to be reassigned (session timeout 6 s) and the re-deliveries applied
CONSUMER_ONLY = {"produce_loss": 0.0, "crash_leader": False, "until": 12.0}

#: only the producer's side: no consumer crash, 20 s (the leader fails over at 17 s)
PRODUCER_ONLY = {"crash_consumer": False, "until": 20.0}


def run(seed: int = 1, **params):
    return simcomm.run(NAME, seed=seed, warn=False, **params)


def causes(res, anomaly: str) -> set[str]:
    table = res.delivery_causes()
    return set(table.loc[table["anomaly"] == anomaly, "cause"])


@pytest.fixture(scope="module")
def default():
    return run()


@pytest.fixture(scope="module")
def no_idempotence():
    return run(**PRODUCER_ONLY, idempotence=False)


# -- the scenario as a scenario ---------------------------------------------------------------

def test_registered_with_its_views_and_model():
    sc = get(NAME)
    assert sc.views == ("delivery_causes", "key_order", "consumer_lag")
    assert sc.capacity is capacity and sc.load is load and sc.check is not None
    p = make_params(sc)
    lp = lifecycle_params(p)
    assert lp.channel == "sharded" and lp.key == "order_id"
    assert (lp.acks, lp.idempotence, lp.commit, lp.dedup) == ("all", True, "after", "none")
    assert capacity(p) == pytest.approx(3 / 0.02)
    assert load(p).requests_per_s == pytest.approx(60.0)


def test_the_same_seed_gives_the_same_run():
    assert run(until=6.0).fingerprint() == run(until=6.0).fingerprint()
    assert run(until=6.0).fingerprint() != run(2, until=6.0).fingerprint()


def test_the_defaults_lose_nothing_and_duplicate_only_by_the_consumers_crash(default):
    """acks=all + idempotence + commit after: the leader's crash and the lossy
    network cost nothing (no loss, no producer duplicate, no reorder); the
    consumer's crash re-delivers what it applied after its last commit.
    Seeds 1-8: 17-29 duplicates of ~1 800 records."""
    s = default.summary()
    assert s["records_produced"] > 1500
    assert s["lost"] == 0 and s["reordered"] == 0
    assert s["duplicated"] > 0
    assert causes(default, "duplicated") == {"crash before commit"}


# -- the producer ------------------------------------------------------------------------------

def test_acks_1_loses_what_the_isolated_leader_acknowledged():
    """The leader, cut off from its followers for 2 s, acknowledges with acks=1
    what no follower has; the follower elected 9 s after its crash truncates
    them.  Seeds 1-8: 26-61 records lost, by leader failover."""
    res = run(**PRODUCER_ONLY, acks="1", idempotence=False)
    assert res.summary()["lost"] >= 10
    assert causes(res, "lost") == {"leader failover"}


def test_acks_all_loses_nothing_to_the_leaders_crash(default, no_idempotence):
    """The same crash with acks=all: what the isolated leader appended was never
    acknowledged (the high watermark stopped), so the producer sends it again."""
    for res in (default, no_idempotence):
        assert res.summary()["lost"] == 0
        assert "leader failover" not in causes(res, "lost")
        assert (res.records["event"] == "truncate").any()  # appended, truncated, resent


def test_retries_without_idempotence_duplicate_and_reorder(no_idempotence):
    """A batch whose first try was appended is appended again when retried (a
    request timed out: the response lost, or the high watermark stalled while
    the dead broker was still in the ISR); a batch retried behind a later one
    lands after it.  Seeds 1-8: 227-295 duplicates and 0-4 reorders of ~1 200
    records, every one a retry in flight."""
    assert no_idempotence.summary()["duplicated"] > 100
    assert causes(no_idempotence, "duplicated") == {"retry in flight"}
    assert causes(no_idempotence, "reordered") <= {"retry in flight"}


def test_the_idempotent_producer_neither_duplicates_nor_reorders():
    """The same faults with enable.idempotence: the leader acknowledges a repeat
    of one of its last 5 batches without appending it (dedup rows) and refuses
    a batch that overtook another; nothing is duplicated or reordered."""
    res = run(**PRODUCER_ONLY)
    s = res.summary()
    assert s["duplicated"] == 0 and s["reordered"] == 0 and s["lost"] == 0
    assert (res.records["event"] == "dedup").any()


# -- the consumer ------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [1, 2, 3])
def test_commit_after_never_loses_and_re_applies_the_uncommitted(seed):
    """At-least-once: process, then commit.  The crash re-delivers what it
    applied since its last commit; nothing is skipped.  Seeds 1-8: 17-29
    duplicates, all caused by the crash before the commit."""
    res = run(seed, **CONSUMER_ONLY, commit="after")
    s = res.summary()
    assert s["lost"] == 0
    assert s["duplicated"] > 0
    assert causes(res, "duplicated") == {"crash before commit"}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_commit_before_never_duplicates_and_loses_the_rest_of_the_batch(seed):
    """At-most-once: commit, then process.  The crash loses the rest of the
    polled batch; nothing is applied twice.  Seeds 1-8: 23-51 lost, all by
    the commit before processing."""
    res = run(seed, **CONSUMER_ONLY, commit="before")
    s = res.summary()
    assert s["duplicated"] == 0
    assert s["lost"] > 0
    assert causes(res, "lost") == {"commit before processing"}


def test_a_processed_ids_table_removes_the_duplicates():
    """The same crash, with the record ids kept in the service's database: the
    re-delivered records are skipped, not applied again -- exactly once."""
    res = run(**CONSUMER_ONLY, commit="after", dedup="processed_ids")
    s = res.summary()
    assert s["duplicated"] == 0 and s["lost"] == 0
    assert (res.records["event"] == "skip").sum() >= 10


# -- bad knobs ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("field", "value"), [
    ("acks", "2"), ("acks", True), ("idempotence", 1), ("commit", "sometimes"),
    ("dedup", "bloom"), ("produce_loss", 0.51), ("request_timeout", 0.0),
    ("crash_leader", "yes"), ("crash_leader_at", -1.0), ("crash_leader_for", 0.0),
    ("leader_isolation", -0.1), ("crash_consumer", 0), ("crash_at", math.inf),
    ("crash_duration", 0.0), ("partitions", 0), ("consumers", 13), ("order_rate", 0.0),
    ("service_time", 0.0), ("session_timeout", 0.5), ("network_latency", -1.0),
])
def test_bad_values_are_refused_before_time_zero(field, value):
    with pytest.raises(ParamError) as info:
        simcomm.run(NAME, until=1.0, **{field: value})
    assert info.value.field == field


def test_idempotence_without_acks_all_is_refused_as_kafka_does():
    with pytest.raises(ParamError, match="acks=all") as info:
        simcomm.run(NAME, until=1.0, acks="1")
    assert info.value.field == "idempotence"


def test_acks_given_as_a_number_is_the_choice_of_that_name():
    """``acks=1`` (Kafka's own spelling, a number) is the choice "1"; 2 and True are not."""
    spec = next(f for f in simcomm.describe("delivery-guarantees") if f["field"] == "acks")
    assert "1" in spec["allowed"]
    params = make_params(get("delivery-guarantees"), {"acks": 1, "idempotence": False})
    assert params.acks == "1"
    for bad in (2, True):
        with pytest.raises(ParamError, match="acks"):
            make_params(get("delivery-guarantees"), {"acks": bad})
