"""Nodes and instances: worker pools, queues, faults, handlers (engine.nodes, faults)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simcomm.engine import (
    FORMATS,
    Constant,
    Crash,
    ErrorRate,
    Exponential,
    Hang,
    Instance,
    Node,
    Outages,
    Service,
    ServiceError,
    Slowdown,
    World,
    install,
)
from simcomm.errors import ParamError
from simcomm.result import Result
from simcomm.rpc import call


class Caller(Node):
    """A client that sends requests at given times and records the replies."""

    def __init__(self, world: World, name: str = "cli") -> None:
        super().__init__(world, name)
        self.replies: dict[int, tuple[float, float, str, object]] = {}
        self.order: list[int] = []

    def ask(self, dest: str, t: float, body=None, **kw) -> None:
        def go() -> None:
            start = self.env.now
            ev = self.request(dest, body, **kw)
            rid = ev.request_id
            self.order.append(rid)

            def done(e) -> None:
                self.replies[rid] = (start, self.env.now, e.value.status, e.value.body)

            ev.callbacks.append(done)

        self.world.at(t, go)

    def statuses(self) -> list[str | None]:
        return [self.replies[r][2] if r in self.replies else None for r in self.order]

    def ends(self) -> list[float | None]:
        return [self.replies[r][1] if r in self.replies else None for r in self.order]


def balanced(world: World) -> dict:
    led = Result(world).ledger()
    assert led["balanced"], led
    return led


# -- worker pool ---------------------------------------------------------------------

def test_workers_serve_concurrently_up_to_the_pool_size():
    w = World(0)
    Instance(w, "srv", workers=3, service_time=Constant(1.0))
    cli = Caller(w)
    for _ in range(10):
        cli.ask("srv", 0.0)
    w.run(10)
    assert cli.ends() == [1, 1, 1, 2, 2, 2, 3, 3, 3, 4]
    pools = Result(w).pools
    assert pools["busy"].max() == 3
    assert pools["queued"].max() == 7
    assert (pools["busy"] >= 0).all()
    assert pools.iloc[-1][["busy", "queued"]].tolist() == [0, 0]


@pytest.mark.parametrize("workers", [1, 2, 5])
def test_never_more_than_n_busy_and_service_starts_in_fifo_order(workers):
    w = World(4)
    started: list[int] = []

    def record(ctx, request):
        started.append(request.id)
        yield ctx.work()

    Instance(w, "srv", workers=workers, service_time=Exponential(1.0), handler=record)
    cli = Caller(w)
    rng = w.stream("test:arrivals")
    t = 0.0
    for _ in range(400):
        t += rng.expovariate(0.9 * workers)  # heavy load: long queues
        cli.ask("srv", t)
    w.run(t + 1000)
    assert started == cli.order  # first come, first served
    pools = Result(w).pools
    assert pools["busy"].max() == workers
    assert pools["queued"].max() > workers  # there was a queue to order
    # busy counts add up: at every instant busy <= workers
    assert ((pools["busy"] >= 0) & (pools["busy"] <= workers)).all()
    assert cli.statuses() == ["ok"] * 400
    balanced(w)


def test_bounded_queue_rejects_at_once():
    w = World(0)
    Instance(w, "srv", workers=1, queue_capacity=2, service_time=Constant(1.0))
    cli = Caller(w)
    for _ in range(5):
        cli.ask("srv", 0.0)
    cli.ask("srv", 0.5)  # queue still full
    cli.ask("srv", 1.5)  # one left the queue at 1: room again
    w.run(10)
    assert cli.statuses() == ["ok", "ok", "ok", "rejected", "rejected", "rejected", "ok"]
    assert cli.ends() == [1, 2, 3, 0, 0, 0.5, 4]
    led = balanced(w)
    assert led["dropped_by_reason"] == {"rejected": 3}


def test_queue_capacity_zero_means_only_idle_workers_take_requests():
    w = World(0)
    Instance(w, "srv", workers=2, queue_capacity=0, service_time=Constant(1.0))
    cli = Caller(w)
    for _ in range(3):
        cli.ask("srv", 0.0)
    w.run(5)
    assert cli.statuses() == ["ok", "ok", "rejected"]


# -- crash -----------------------------------------------------------------------------

def test_crash_resets_queued_and_in_flight_then_refuses_then_restarts():
    w = World(0)
    srv = Instance(w, "srv", workers=1, service_time=Constant(10.0))
    cli = Caller(w)
    for _ in range(3):
        cli.ask("srv", 0.0)  # one in service, two queued
    install(w, [Crash("srv", at=5, duration=7)])
    cli.ask("srv", 8.0)  # down: nothing listens
    cli.ask("srv", 12.5)  # restarted at 12
    w.run(40)
    assert cli.statuses() == ["reset", "reset", "reset", "refused", "ok"]
    assert cli.ends() == [5, 5, 5, 8, 22.5]
    ev = Result(w).events
    assert ev[["time", "event"]].values.tolist() == [[5, "crash"], [12, "restart"]]
    assert srv.up and srv.busy == 0 and not srv.queue
    led = balanced(w)
    assert led["dropped_by_reason"] == {"node_down": 1}


def test_a_request_handed_to_a_worker_in_the_instant_of_a_crash_is_reset():
    # the request arrives at t=5 (before the crash in the event order) and is
    # handed to the idle worker, which has not resumed when the crash comes
    w = World(0)
    Instance(w, "srv", workers=1, service_time=Constant(1.0))
    cli = Caller(w)
    cli.ask("srv", 5.0)
    install(w, [Crash("srv", at=5, duration=1)])
    w.run(10)
    assert cli.statuses() == ["reset"]
    assert cli.ends() == [5]


def test_crash_before_the_run_then_normal_service():
    # the workers have not started when the instance crashes
    w = World(0)
    srv = Instance(w, "srv", workers=2, service_time=Constant(1.0))
    srv.crash(repair_after=5)
    cli = Caller(w)
    for t in (1.0, 6.0, 6.5, 7.0):
        cli.ask("srv", t)
    w.run(20)
    assert cli.statuses() == ["refused", "ok", "ok", "ok"]
    assert cli.ends() == [1, 7, 7.5, 8]
    assert len(srv._idle) == 2  # exactly the two live workers wait for work


def test_crash_again_in_the_instant_of_a_restart():
    w = World(0)
    Instance(w, "srv", workers=1, service_time=Constant(1.0))
    cli = Caller(w)
    # the first crash is repaired at once; the second, in the same instant,
    # takes the fresh instance down again for 3 s
    install(w, [Crash("srv", at=5, duration=0), Crash("srv", at=5, duration=3)])
    cli.ask("srv", 6.0)
    cli.ask("srv", 9.0)
    cli.ask("srv", 9.5)
    w.run(20)
    assert cli.statuses() == ["refused", "ok", "ok"]
    assert cli.ends() == [6, 10, 11]


def test_crash_without_repair_stays_down():
    w = World(0)
    srv = Instance(w, "srv", service_time=Constant(1.0))
    cli = Caller(w)
    install(w, [Crash("srv", at=1)])
    cli.ask("srv", 100)
    w.run(200)
    assert cli.statuses() == ["refused"]
    assert not srv.up


def test_crash_while_calling_another_service_resets_the_caller():
    w = World(0)

    def forward(ctx, request):
        reply = yield from call(ctx, "back")
        return reply.status

    Instance(w, "back", service_time=Constant(3.0))
    Instance(w, "front", handler=forward)
    cli = Caller(w)
    cli.ask("front", 0)
    install(w, [Crash("front", at=1, duration=1)])
    cli.ask("front", 5)
    w.run(20)
    assert cli.statuses() == ["reset", "ok"]
    # back's reply at t=3 reached a restarted front that no longer waited
    assert "orphan_reply" in set(Result(w).events["event"])
    balanced(w)


# -- hang ------------------------------------------------------------------------------

def test_hang_accepts_and_never_replies_until_the_hang_ends_then_resets():
    w = World(0)
    Instance(w, "srv", workers=2, service_time=Constant(2.0))
    cli = Caller(w)
    cli.ask("srv", 4.0)  # in service when the hang starts at 5: finishes, stuck
    install(w, [Hang("srv", at=5, duration=10)])
    cli.ask("srv", 6.0)  # accepted, stuck
    cli.ask("srv", 7.0)  # accepted, queued: both workers hold a request
    cli.ask("srv", 8.0)  # queued
    cli.ask("srv", 16.0)  # after the hang, behind the two queued ones
    w.run(40)
    # the stuck ones are reset when the hang ends; the queued ones are served
    assert cli.statuses() == ["reset", "reset", "ok", "ok", "ok"]
    assert cli.ends() == [15, 15, 17, 17, 19]
    tr = Result(w).trace
    # nothing was refused or dropped: the hung process accepted everything
    assert (tr["event"] != "drop").all()
    ev = Result(w).events
    assert ev.query("event == 'abandoned'")["time"].tolist() == [15, 15]
    balanced(w)


def test_hang_forever_leaves_requests_pending():
    w = World(0)
    Instance(w, "srv", service_time=Constant(1.0))
    cli = Caller(w)
    install(w, [Hang("srv", at=0)])
    cli.ask("srv", 1.0)
    w.run(100)
    assert cli.statuses() == [None]
    led = balanced(w)
    assert led["in_flight"] == 0 and led["delivered"] == 1


def test_a_crash_ends_a_hang():
    w = World(0)
    Instance(w, "srv", service_time=Constant(1.0))
    cli = Caller(w)
    install(w, [Hang("srv", at=1, duration=50), Crash("srv", at=3, duration=2)])
    cli.ask("srv", 2.0)
    cli.ask("srv", 6.0)
    w.run(20)
    assert cli.statuses() == ["reset", "ok"]
    assert cli.ends() == [3, 7]


def events_of(w: World, node: str = "srv") -> list[list]:
    """The node's timeline: [time, event, detail] rows in the order recorded."""
    ev = Result(w).events
    return ev[ev["node"] == node][["time", "event", "detail"]].values.tolist()


def test_a_crash_during_a_hang_ends_it_with_an_unhang_event_first():
    """The timeline shows hang, unhang (ended by crash), crash, restart -- and the
    hang's own scheduled end, after the restart, records nothing."""
    w = World(0)
    Instance(w, "srv", service_time=Constant(1.0))
    cli = Caller(w)
    install(w, [Hang("srv", at=1, duration=10), Crash("srv", at=3, duration=2)])
    cli.ask("srv", 2.0)  # stuck in the hang, reset by the crash
    cli.ask("srv", 6.0)  # after the restart: served normally, not stuck
    w.run(20)
    assert cli.statuses() == ["reset", "ok"]
    assert cli.ends() == [3, 7]
    assert events_of(w) == [[1, "hang", ""], [3, "unhang", "ended by crash"],
                            [3, "crash", "restart after 2"], [5, "restart", ""]]
    # the request was reset once (by the crash), not abandoned again at t=11
    assert "abandoned" not in set(Result(w).events["event"])
    balanced(w)


def test_a_hang_that_starts_while_the_instance_is_down_does_not_happen():
    """It is recorded as hang_skipped, and its end (t=12) cannot cut short a
    later hang (t=7 to 26)."""
    w = World(0)
    Instance(w, "srv", service_time=Constant(1.0))
    cli = Caller(w)
    install(w, [Crash("srv", at=1, duration=4), Hang("srv", at=2, duration=10),
                Hang("srv", at=7, duration=19)])
    cli.ask("srv", 5.5)  # up and not hung: served
    cli.ask("srv", 8.0)  # stuck in the second hang until it ends at 26
    w.run(40)
    assert cli.statuses() == ["ok", "reset"]
    assert cli.ends() == [6.5, 26]
    assert events_of(w) == [[1, "crash", "restart after 4"],
                            [2, "hang_skipped", "instance down"], [5, "restart", ""],
                            [7, "hang", ""], [26, "unhang", ""],
                            [26, "abandoned", "request 3 held during a hang"]]


def test_a_hang_while_hung_is_skipped_and_the_first_runs_to_its_own_end():
    w = World(0)
    Instance(w, "srv", service_time=Constant(1.0))
    cli = Caller(w)
    install(w, [Hang("srv", at=1, duration=20), Hang("srv", at=5, duration=2)])
    cli.ask("srv", 2.0)
    w.run(40)
    assert cli.ends() == [21]  # not 7, when the skipped hang would have ended
    assert [r[:2] for r in events_of(w)] == [[1, "hang"], [5, "hang_skipped"],
                                             [21, "unhang"], [21, "abandoned"]]
    assert events_of(w)[1][2] == "already hung"


def test_a_crash_while_down_is_recorded_and_schedules_no_restart():
    w = World(0)
    Instance(w, "srv", service_time=Constant(1.0))
    install(w, [Crash("srv", at=1, duration=10), Crash("srv", at=2, duration=1)])
    w.run(20)
    assert events_of(w) == [[1, "crash", "restart after 10"],
                            [2, "crash_skipped", "instance down"], [11, "restart", ""]]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["crash", "hang"]),
                          st.integers(0, 30), st.one_of(st.none(), st.integers(0, 15))),
                max_size=8))
def test_the_timeline_never_shows_a_state_the_instance_was_not_in(faults):
    """Random overlapping crashes and hangs: replaying the events table as a
    state machine (up/down x hung/not) never meets an impossible step, and
    a request is only ever stuck while a hang is on."""
    w = World(0)
    Instance(w, "srv", workers=2, service_time=Constant(1.0))
    cli = Caller(w)
    for t in range(0, 40, 3):
        cli.ask("srv", t + 0.5)
    install(w, [Crash("srv", at, d) if kind == "crash" else Hang("srv", at, d)
                for kind, at, d in faults])
    w.run(60)
    up, hung = True, False
    for _t, event, _detail in events_of(w):
        if event == "crash":
            assert up and not hung  # a hang is closed before the crash
            up = False
        elif event == "restart":
            assert not up
            up = True
        elif event == "hang":
            assert up and not hung
            hung = True
        elif event == "unhang":
            assert up and hung
            hung = False
        elif event == "crash_skipped":
            assert not up
        elif event == "hang_skipped":
            assert not up or hung
        elif event == "abandoned":
            assert up  # stuck requests are reset by the end of a hang, not after a crash
    assert hung == w.nodes["srv"].hung and up == w.nodes["srv"].up
    balanced(w)


# -- busy-time integral ----------------------------------------------------------------------

@pytest.mark.parametrize("trace", [True, False])
def test_busy_seconds_is_the_integral_of_busy_workers(trace):
    """Two workers, 2 s per request, requests at 0, 0, 1 and 10, and one at 19
    still in service at the end: busy 2 + 2 + 2 (the one queued at 1 runs
    2-4) + 2 + 1 = 9 worker-seconds by t=20, whether traced or not."""
    w = World(0, trace=trace)
    srv = Instance(w, "srv", workers=2, service_time=Constant(2.0))
    cli = Caller(w)
    for t in (0.0, 0.0, 1.0, 10.0, 19.0):
        cli.ask("srv", t)
    w.run(20)
    assert srv.busy_seconds(20) == 9.0
    # past the present the current count (1 busy) is assumed to hold: no future
    assert srv.busy_seconds(25) == 14.0
    assert Result(w).utilisation() == {"srv": 9.0 / 40}
    with pytest.raises(ParamError) as info:
        srv.busy_seconds(19.5)  # before the present: no history is kept
    assert info.value.field == "until"


def test_busy_seconds_accepts_an_end_a_rounding_error_short_of_now():
    """A run in slices (0.7 then 2.9) ends at 2.9000000000000004 in SimPy's
    arithmetic; the result asks for the integral at 2.9 and gets it."""
    w = World(0)
    srv = Instance(w, "srv", service_time=Constant(1.0))
    Caller(w).ask("srv", 0.0)
    w.run(0.7)
    w.run(2.9)
    assert w.now != 2.9  # the rounding this test is about
    assert srv.busy_seconds(2.9) == 1.0
    assert w.network.link_busy_seconds(2.9) == {}


def test_a_crash_ends_every_busy_stretch_and_a_hang_keeps_workers_busy():
    """Busy 0-1.5 (crash), down to 3, then a request at 4 that hangs until 10:
    1.5 + 6 = 7.5 worker-seconds; the trace's step integral agrees."""
    from simcomm.analysis.metrics import time_average

    w = World(0)
    srv = Instance(w, "srv", service_time=Constant(2.0))
    cli = Caller(w)
    cli.ask("srv", 0.0)
    install(w, [Crash("srv", at=1.5, duration=1.5), Hang("srv", at=3.5, duration=6.5)])
    cli.ask("srv", 4.0)
    w.run(12)
    assert cli.statuses() == ["reset", "reset"]
    assert srv.busy_seconds(12) == 7.5
    res = Result(w)
    assert time_average(res.pools, "srv", "busy", 0, 12) * 12 == pytest.approx(7.5)


# -- slowdown, error rate ------------------------------------------------------------------

def test_slowdown_multiplies_service_times():
    w = World(0)
    Instance(w, "srv", service_time=Constant(1.0))
    cli = Caller(w)
    install(w, [Slowdown("srv", at=10, duration=10, factor=3.0)])
    for t in (0, 12, 30):
        cli.ask("srv", t)
    w.run(50)
    lat = [e - s for s, e, _, _ in (cli.replies[r] for r in cli.order)]
    assert lat == [1.0, 3.0, 1.0]


def test_slowdown_scales_the_mean_of_random_service_times():
    def mean_latency(factor: float) -> float:
        w = World(8)
        Instance(w, "srv", workers=1000, service_time=Exponential(0.1))
        cli = Caller(w)
        if factor != 1:
            install(w, [Slowdown("srv", at=0, factor=factor)])
        for i in range(4000):
            cli.ask("srv", i * 0.01)
        w.run(100)
        return sum(e - s for s, e, _, _ in cli.replies.values()) / len(cli.replies)

    # no queueing (1000 workers): the same draws stretched exactly
    assert mean_latency(4.0) == pytest.approx(4.0 * mean_latency(1.0), rel=1e-9)


def test_error_rate_fails_that_fraction_of_requests():
    w = World(5)
    Instance(w, "srv", workers=100, service_time=Exponential(0.01))
    cli = Caller(w)
    install(w, [ErrorRate("srv", at=0, rate=0.2)])
    n = 5000
    for i in range(n):
        cli.ask("srv", i * 0.01)
    w.run(100)
    errors = cli.statuses().count("error")
    assert cli.statuses().count("ok") + errors == n
    # binomial(n, 0.2): 5 standard deviations
    assert abs(errors - 0.2 * n) < 5 * math.sqrt(n * 0.2 * 0.8)
    bodies = {cli.replies[r][3] for r in cli.order if cli.replies[r][2] == "error"}
    assert bodies == {"injected error"}


def test_error_rate_ends_after_its_duration():
    w = World(5)
    Instance(w, "srv", workers=10, service_time=Constant(0.01))
    cli = Caller(w)
    install(w, [ErrorRate("srv", at=0, duration=10, rate=1.0)])
    for t in (1, 5, 11, 20):
        cli.ask("srv", t)
    w.run(30)
    assert cli.statuses() == ["error", "error", "ok", "ok"]


# -- handlers ------------------------------------------------------------------------------

def test_handler_calls_another_service_and_replies_find_their_callers():
    w = World(6)
    answered: list[int] = []

    def echo(ctx, request):
        yield ctx.work()
        return request.body

    def front(ctx, request):
        yield ctx.work(0.001)
        reply = yield from call(ctx, "back", {"n": request.body["n"]})
        assert reply.kind == "reply"
        answered.append(reply.correlation_id)
        return {"n": reply.body["n"], "via": reply.source}

    # back's service times vary a lot and it has many workers, so its replies
    # come back in a different order than the calls went out
    Instance(w, "back", workers=50, service_time=Exponential(1.0), handler=echo)
    Instance(w, "front", workers=50, handler=front)
    cli = Caller(w)
    for i in range(100):
        cli.ask("front", i * 0.05, {"n": i})
    w.run(100)
    # each user got the answer to its own request
    assert [cli.replies[r][3] for r in cli.order] == [{"n": i, "via": "back"}
                                                     for i in range(100)]
    tr = Result(w).trace
    calls = tr[(tr.event == "send") & (tr.source == "front") & (tr.kind == "command")]
    call_ids = calls["message_id"].tolist()
    assert len(call_ids) == 100
    # replies came back out of order, each carrying the id of its call
    assert answered != sorted(answered)
    assert sorted(answered) == call_ids
    # and the calls carry the user's request as trace id
    assert calls["trace_id"].isna().all()  # Caller sent no trace id ...
    balanced(w)


def test_calls_carry_the_trace_id_of_the_request_they_serve():
    w = World(0)

    def front(ctx, request):
        reply = yield from call(ctx, "back")
        return reply.status

    Instance(w, "back")
    Instance(w, "front", handler=front)
    cli = Caller(w)
    cli.ask("front", 1, trace_id=77)
    w.run(5)
    tr = Result(w).trace
    assert tr["trace_id"].tolist() == [77] * len(tr)
    assert len(tr[tr.event == "send"]) == 4  # request, call, reply, reply


def test_service_error_becomes_an_error_reply():
    w = World(0)

    def picky(ctx, request):
        yield ctx.work(0.5)
        if request.body == "bad":
            raise ServiceError("no such order")
        return "fine"

    Instance(w, "srv", handler=picky)
    cli = Caller(w)
    cli.ask("srv", 0, "good")
    cli.ask("srv", 1, "bad")
    w.run(5)
    assert [cli.replies[r][2:] for r in cli.order] == [("ok", "fine"),
                                                       ("error", "no such order")]
    assert cli.ends() == [0.5, 1.5]


def test_a_bigger_body_in_a_slower_format_makes_a_service_slower():
    big = {"items": [{"name": f"item-{i}", "qty": i, "price": i * 1.5}
                     for i in range(20_000)]}

    def latency(fmt_name: str | None) -> tuple[float, int]:
        w = World(0)
        fmt = FORMATS[fmt_name] if fmt_name else None
        Instance(w, "srv", service_time=Constant(0.001), format=fmt,
                 handler=lambda ctx, req: _echo(ctx, req))
        cli = Caller(w)
        cli.ask("srv", 0, big, format=fmt)
        w.run(100)
        (start, end, status, _), = cli.replies.values()
        assert status == "ok"
        return end - start, (fmt.size(big) if fmt else 0)

    base, _ = latency(None)
    assert base == pytest.approx(0.001)
    costs = {}
    for name in ("xml", "json", "protobuf", "avro"):
        lat, size = latency(name)
        fmt = FORMATS[name]
        # decode the request, serve, encode the same body back
        assert lat == pytest.approx(0.001 + size * (fmt.decode_per_byte + fmt.encode_per_byte))
        costs[name] = lat
    assert costs["xml"] > costs["json"] > max(costs["protobuf"], costs["avro"]) > base
    assert costs["xml"] > 0.01  # megabytes of XML cost milliseconds


def _echo(ctx, request):
    yield ctx.work()
    return request.body


def test_format_cost_is_stretched_by_a_slowdown():
    body = {"blob": "x" * 1_000_000}
    w = World(0)
    Instance(w, "srv", service_time=Constant(0.0), format="json", handler=_echo)
    install(w, [Slowdown("srv", at=0, factor=2.0)])
    cli = Caller(w)
    cli.ask("srv", 0, body, format=FORMATS["json"])
    w.run(10)
    (start, end, _, _), = cli.replies.values()
    n = FORMATS["json"].size(body)
    assert end - start == pytest.approx(2.0 * n * (8e-9 + 5e-9))


# -- Service, Outages, validation ------------------------------------------------------------

def test_service_has_numbered_instances():
    w = World(0)
    svc = Service(w, "order", instances=3, workers=2)
    assert [i.name for i in svc.instances] == ["order-1", "order-2", "order-3"]
    assert len(svc) == 3 and svc[0].service == "order" and svc[2].workers == 2


def test_outages_give_the_long_run_availability():
    w = World(9)
    Instance(w, "srv")
    Outages(w, "srv", availability=0.9, mean_time_to_repair=1.0)
    w.run(20_000)
    ev = Result(w).events
    crashes = ev[ev.event == "crash"]["time"].to_numpy()
    restarts = ev[ev.event == "restart"]["time"].to_numpy()
    n = min(len(crashes), len(restarts))
    down = float((restarts[:n] - crashes[:n]).sum())
    # ~2000 outages of mean 1 s: down time has sd ~ sqrt(2n) s
    assert abs(down / 20_000 - 0.1) < 5 * math.sqrt(2 * n) / 20_000


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"workers": 0}, "workers"), ({"workers": 1.5}, "workers"), ({"workers": True}, "workers"),
    ({"queue_capacity": -1}, "queue_capacity"), ({"format": "yaml"}, "message_format"),
    ({"service_time": -1.0}, "value"),
])
def test_instance_arguments_are_checked(kwargs, field):
    w = World(0)
    with pytest.raises(ParamError) as info:
        Instance(w, "srv", **kwargs)
    assert info.value.field == field
    assert "srv" not in w.nodes


@pytest.mark.parametrize(("fault", "field"), [
    (lambda: Crash("srv", at=-1), "at"),
    (lambda: Hang("srv", at=1, duration=math.inf), "duration"),
    (lambda: Slowdown("srv", at=1, factor=0), "factor"),
    (lambda: ErrorRate("srv", at=1, rate=1.5), "rate"),
    (lambda: Crash("nosuch", at=1), "node"),
])
def test_fault_schedules_are_checked_before_anything_runs(fault, field):
    w = World(0)
    Instance(w, "srv")
    Node(w, "plain")
    with pytest.raises(ParamError) as info:
        install(w, [Slowdown("srv", at=0, factor=2.0), fault()])
    assert info.value.field == field
    w.run(5)  # nothing was scheduled, not even the valid fault
    assert "slowdown" not in set(Result(w).events["event"])


def test_faults_only_apply_to_instances():
    w = World(0)
    Node(w, "plain")
    with pytest.raises(ParamError) as info:
        install(w, [Crash("plain", at=1)])
    assert info.value.field == "node"
    with pytest.raises(ParamError):
        Outages(w, "plain", 0.9, 1.0)
