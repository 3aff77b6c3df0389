"""The ``styles`` scenario: the five interaction styles of *Microservices Patterns*
§3.1.1 and what the requester waits for in each (scenarios/styles.py).

The network delay is constant and the order service's work draws from its own
stream, so two runs that differ only in the style give each user request the
same work in the order service: latencies compare request by request, and the
only tolerance needed is for the work of the services behind it (log-normal,
mean ``service_time``), estimated from the run.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import simcomm
from simcomm.cli import main
from simcomm.errors import ParamError
from simcomm.scenarios import get, make_params
from simcomm.scenarios.styles import (
    BROKER,
    COMMANDS,
    EVENTS,
    KITCHEN,
    ORDER,
    REPLIES,
    REPLY_CONSUMER,
    STYLES,
    SUBSCRIBERS,
    USERS,
    Requester,
    capacity,
    styles_table,
)

SC = get("styles")
P = SC.defaults()
HOP = P.network_latency
DOWN_AT, DOWN_FOR = 20.0, 10.0


def run(style: str, seed: int = 1, **params):
    return simcomm.run("styles", seed=seed, style=style, warn=False, progress=False, **params)


@pytest.fixture(scope="module")
def default_runs():
    return {style: run(style) for style in STYLES}


def latencies(res):
    rq = res.requests
    return rq.set_index("request_id")["latency"]


def row(res):
    return styles_table(res).iloc[0]


# -- what it is ---------------------------------------------------------------------------

def test_registered_with_its_views_and_a_model_of_its_load():
    assert "styles" in simcomm.scenarios()
    assert SC.views == ("message_sequence", "latency_over_time", "message_flow")
    assert P.style == "request-response" and P.transport == "broker"
    for style in STYLES:
        for transport in ("broker", "brokerless"):
            est = simcomm.estimate("styles", style=style, transport=transport)
            assert est.source == "model"
            assert est.requests == pytest.approx(P.request_rate * SC.until)
    # the order service holds a worker for its own work, plus the round trip when
    # it waits for replies: two hops each way through a broker, one without
    st, w = P.service_time, P.service_workers

    def cap(**kw):
        return capacity(make_params(SC, kw))

    assert cap(style="notification") == pytest.approx(w / st)
    assert cap(style="publish-subscribe") == pytest.approx(w / st)
    assert cap(style="request-response") == pytest.approx(w / (2 * st + 2 * HOP))
    assert cap(style="request-async-response") == pytest.approx(w / (2 * st + 4 * HOP))
    assert cap(style="request-async-response", transport="brokerless") == \
        pytest.approx(w / (2 * st + 2 * HOP))


def test_the_topology_of_each_style(default_runs):
    nodes = {style: set(res.world.nodes) for style, res in default_runs.items()}
    assert nodes["request-response"] == {USERS, ORDER, KITCHEN}
    assert nodes["notification"] == {USERS, ORDER, KITCHEN, BROKER}
    assert nodes["request-async-response"] == {USERS, ORDER, KITCHEN, BROKER, REPLY_CONSUMER}
    subs = {f"{s}-1" for s in SUBSCRIBERS[: P.subscribers]}
    assert nodes["publish-subscribe"] == {USERS, ORDER, BROKER} | subs
    assert nodes["publish-async-responses"] == {USERS, ORDER, BROKER, REPLY_CONSUMER} | subs
    for res in default_runs.values():
        assert res.ledger()["balanced"]
        if res.world.trace.mq:
            assert res.message_ledger()["balanced"]


def test_bad_values_are_refused_before_anything_runs(default_runs):
    for values, field in (({"style": "rpc"}, "style"), ({"transport": "kafka"}, "transport"),
                          ({"subscribers": 0}, "subscribers"),
                          ({"subscribers": len(SUBSCRIBERS) + 1}, "subscribers"),
                          ({"replies_to_collect": -1}, "replies_to_collect"),
                          ({"reply_timeout": 0.0}, "reply_timeout")):
        with pytest.raises(ParamError) as info:
            make_params(SC, values)
        assert info.value.field == field
    other = simcomm.run("mmc", until=5.0, warn=False)
    with pytest.raises(ParamError) as info:
        styles_table(other)
    assert info.value.field == "results"
    with pytest.raises(ParamError) as info:
        styles_table([default_runs["notification"], other])
    assert info.value.field == "results[1]"


# -- what the requester waits for --------------------------------------------------------------

def test_one_way_styles_answer_before_anything_is_done_downstream(default_runs):
    """Notification and publish/subscribe: the user waits for the order service's own
    work and the two hops to it, nothing else -- the same in both, request by request."""
    rr = latencies(default_runs["request-response"])
    note = latencies(default_runs["notification"])
    pub = latencies(default_runs["publish-subscribe"])
    assert (note == pub).all()
    assert note.index.equals(rr.index)
    assert note.max() < 0.2 and (default_runs["notification"].requests.outcome == "ok").all()
    # a synchronous call adds, to each request, the kitchen's round trip and work
    extra = rr - note
    assert (extra >= 2 * HOP - 1e-12).all()
    kitchen_work = extra - 2 * HOP
    se = kitchen_work.std() / math.sqrt(len(kitchen_work))
    assert abs(kitchen_work.mean() - P.service_time) < 4 * se + 0.002  # + a little queueing
    t = styles_table(list(default_runs.values())).set_index("style")
    assert t.loc["notification", "wait_p50"] < t.loc["request-response", "wait_p50"]
    assert t.loc["publish-subscribe", "wait_p50"] < t.loc["request-response", "wait_p50"]


def test_a_notification_is_handled_once_and_every_event_reaches_every_subscriber(
        default_runs):
    note = default_runs["notification"].deliveries
    assert set(note.channel) == {COMMANDS} and set(note.consumer) == {KITCHEN}
    assert set(note.kind) == {"command"}
    assert (note.fate == "consumed").sum() >= len(note) - 1  # the last may be under way
    events = default_runs["publish-subscribe"].deliveries
    assert set(events.kind) == {"event"}
    published = events.message_id.nunique()
    for name in SUBSCRIBERS[: P.subscribers]:
        mine = events[events.channel == f"{EVENTS}.{name}"]
        assert len(mine) == published and set(mine.consumer) == {f"{name}-1"}
    r = row(default_runs["publish-subscribe"])  # nobody answers an event
    assert math.isnan(r.replies_per_request) and r.orphan_replies == 0


def test_request_async_response_matches_replies_by_correlation_id():
    """Under load replies come back in another order than the requests went out;
    each request still gets the reply about its own order (the order service checks)."""
    res = run("request-async-response", until=10.0, request_rate=100.0, service_time=0.02)
    rq = res.requests
    rq = rq[rq.outcome != "pending"]  # (the last few are under way at the end)
    assert len(rq) > 800 and (rq.outcome == "ok").all()
    # the user request each command and each reply was sent for
    tr = res.trace
    sends = tr[tr.event == "send"].set_index("message_id")["trace_id"]
    mq = res.world.trace.mq
    sent = [sends[m] for _, ev, m, ch, node, _ in mq
            if ev == "publish" and ch == COMMANDS and node == ORDER]
    answered = [sends[m] for _, ev, m, ch, node, _ in mq
                if ev == "consume" and ch == REPLIES and node == REPLY_CONSUMER]
    assert sorted(answered) == sorted(rq.request_id) and len(sent) == len(res.requests)
    sent = [t for t in sent if t in set(answered)]
    assert sent != answered  # overtaking: matching by arrival order would go wrong
    assert sum(a != b for a, b in zip(sent, answered, strict=True)) > 50
    r = row(res)
    assert r.orphan_replies == 0 and r.answered == 1.0
    st = res.world.nodes[REPLY_CONSUMER].stats  # every reply matched, a few still awaited
    assert st["replies"] == len(rq) and st["replies"] + st["waiting"] == st["requests"]
    # the reply is a document on the reply channel; the command carried that channel
    d = res.deliveries
    assert set(d.loc[d.channel == REPLIES, "kind"]) == {"document"}
    assert set(d.loc[d.channel == COMMANDS, "kind"]) == {"command"}


def test_request_async_response_waits_for_the_reply_and_times_out_when_the_replier_is_down():
    res = run("request-async-response", service_down_for=DOWN_FOR, service_down_at=DOWN_AT)
    rq = res.requests
    timeout = P.reply_timeout
    # made while the kitchen was down, early enough that it is not back before the timeout
    during = rq[(rq.start >= DOWN_AT) & (rq.start < DOWN_AT + DOWN_FOR - timeout - 0.05)]
    assert len(during) > 30 and (during.outcome == "timeout").all()
    # they waited the timeout (after the order service's work and the hop to it)
    assert during.latency.min() >= timeout and during.latency.max() < timeout + 0.1
    outside = rq[(rq.start < DOWN_AT - 0.1) | (rq.start > DOWN_AT + DOWN_FOR + 0.1)]
    assert (outside.outcome == "ok").all()
    # the broker kept their commands: the kitchen handled them when it was back and
    # its replies came to nobody -- one orphan per timed-out request, nothing lost
    r = row(res)
    timed_out = int((rq.outcome == "timeout").sum())
    assert r.orphan_replies == timed_out == res.summary()["timeout"]
    assert res.summary()["messages_lost"] == 0
    ev = res.events
    assert (ev[ev.event == "orphan_reply"].node == REPLY_CONSUMER).all()
    # a synchronous call to the down kitchen is refused at once instead
    sync = run("request-response", service_down_for=DOWN_FOR, service_down_at=DOWN_AT).requests
    refused = sync[(sync.start >= DOWN_AT) & (sync.start < DOWN_AT + DOWN_FOR - 0.05)]
    assert (refused.outcome == "error").all() and refused.latency.max() < 0.1


def test_a_one_way_notification_is_accepted_while_the_kitchen_is_down_and_handled_late():
    res = run("notification", service_down_for=DOWN_FOR, service_down_at=DOWN_AT)
    assert (res.requests.outcome == "ok").all()
    d = res.deliveries
    held = d[(d.published > DOWN_AT + 0.1) & (d.published < DOWN_AT + DOWN_FOR)]
    assert len(held) > 30 and (held.fate == "consumed").all()
    # handled only once the kitchen was back
    assert (held.applied > DOWN_AT + DOWN_FOR).all()
    assert (held.latency >= DOWN_AT + DOWN_FOR - held.published).all()
    assert res.summary()["messages_lost"] == 0


# -- publish / async responses ----------------------------------------------------------------

def test_publish_async_responses_collects_a_reply_from_every_subscriber(default_runs):
    res = default_runs["publish-async-responses"]
    r = row(res)
    assert r.answered == 1.0 and r.replies_per_request == P.subscribers
    assert r.orphan_replies == 0 and r.surplus_replies == 0
    requester = res.world.nodes[REPLY_CONSUMER]
    assert isinstance(requester, Requester)
    st = requester.stats
    assert st["replies"] == P.subscribers * st["requests"]  # none still waiting here
    assert st["timeouts"] == 0 and st["waiting"] == 0
    # waiting for the slowest of three takes longer than for one reply
    one = row(default_runs["request-async-response"])
    assert r.wait_p50 > one.wait_p50
    five = row(run("publish-async-responses", subscribers=5))
    assert five.replies_per_request == 5 and five.wait_p50 > r.wait_p50


def test_collecting_fewer_replies_than_subscribers_answers_sooner_and_leaves_a_surplus(
        default_runs):
    res = run("publish-async-responses", subscribers=5, replies_to_collect=2)
    r = row(res)
    assert r.answered == 1.0 and r.replies_per_request == 2.0
    # the other three replies of each request come after it was answered
    assert 3 * r.requests - 3 <= r.surplus_replies <= 3 * r.requests
    assert r.orphan_replies == 0
    assert r.wait_p50 < row(default_runs["publish-async-responses"]).wait_p50


def test_asking_for_more_replies_than_there_are_subscribers_waits_for_the_timeout():
    res = run("publish-async-responses", subscribers=3, replies_to_collect=4,
              reply_timeout=0.5)
    rq = res.requests
    rq = rq[rq.outcome != "pending"]  # (the last half second's are still waiting)
    assert len(rq) > 250 and (rq.outcome == "timeout").all()
    assert rq.latency.min() >= 0.5 and rq.latency.max() < 0.6
    r = row(res)
    assert r.replies_per_request == 3.0 and r.timeout == 1.0


def test_one_subscriber_down_times_out_a_full_collection_but_not_a_partial_one():
    down = {"service_down_at": DOWN_AT, "service_down_for": DOWN_FOR}
    full = run("publish-async-responses", **down).requests
    during = full[(full.start >= DOWN_AT) & (full.start < DOWN_AT + DOWN_FOR - 1.05)]
    assert len(during) > 30 and (during.outcome == "timeout").all()
    partial = run("publish-async-responses", replies_to_collect=P.subscribers - 1, **down)
    assert (partial.requests.outcome == "ok").all()


# -- the transport ----------------------------------------------------------------------------

def test_brokerless_takes_one_hop_instead_of_two_and_sends_fewer_messages():
    for style in ("notification", "publish-subscribe", "request-async-response"):
        broker, direct = run(style), run(style, transport="brokerless")
        assert BROKER not in direct.world.nodes
        b, d = broker.deliveries, direct.deliveries
        assert len(b) == len(d)
        # the order service's messages (the same ones, the same work downstream):
        # one network delay less on the way
        b, d = b[b.producer == ORDER], d[d.producer == ORDER]
        merged = b.merge(d, on=["channel", "published"], suffixes=("_b", "_d"))
        consumed = merged[(merged.fate_b == "consumed") & (merged.fate_d == "consumed")]
        assert len(consumed) >= len(b) - P.subscribers
        consumed = consumed.sort_values("published")
        first = consumed.published == consumed.published.min()
        gain = (consumed.latency_b - consumed.latency_d).to_numpy()
        assert np.allclose(gain[~first], HOP, atol=1e-9)
        # the very first message waits for the pipe's handshake (ZeroMQ connects
        # lazily): a round trip more than through the broker's open connection
        assert np.allclose(gain[first], HOP - 2 * HOP, atol=1e-9)
        # no acks and no broker hop
        assert row(direct).messages_per_request < row(broker).messages_per_request


def test_the_synchronous_style_does_not_use_the_transport(default_runs):
    direct = run("request-response", transport="brokerless")
    assert direct.fingerprint() == default_runs["request-response"].fingerprint()
    assert styles_table(direct).iloc[0]["transport"] == "none"


# -- the run itself -----------------------------------------------------------------------

def test_deterministic_and_the_same_without_the_trace(default_runs):
    res = default_runs["publish-async-responses"]
    assert run("publish-async-responses").fingerprint() == res.fingerprint()
    bare = run("publish-async-responses", trace=False)
    plain = {k: v for k, v in bare.summary().items()
             if not (isinstance(v, float) and math.isnan(v))}
    traced = res.summary()
    assert plain == pytest.approx({k: traced[k] for k in plain})
    t, u = styles_table(res).iloc[0], styles_table(bare).iloc[0]
    assert t.drop("delivery_p95").equals(u.drop("delivery_p95"))


def test_the_cli_runs_it_with_json(capsys):
    assert main(["run", "styles", "--set", "style=request-async-response", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["requests"] > 250 and out["availability"] == 1.0
    # a command and its reply per request, each published once and consumed once
    assert out["messages_published"] == out["messages_consumed"] == 2 * out["requests"]
