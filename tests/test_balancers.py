"""The load balancers against the rules of Ribbon and Envoy, without a World.

Each test drives a balancer with explicit times and a seeded
``random.Random`` and checks one rule: round robin's exact fairness and
Ribbon's counter, random's binomial shares, BestAvailableRule's ties and
connection circuit, Envoy's draws with replacement, and the
WeightedResponseTimeRule arithmetic.  A tiny discrete loop (fixed latencies,
calls at a fixed gap) stands in for a run when the property is about load:
the load-aware balancers send less to a slow instance.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import Counter
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simcomm.discovery.balancers import (
    BALANCERS,
    Balancer,
    LeastOutstanding,
    PowerOfTwoChoices,
    RandomChoice,
    RoundRobin,
    WeightedResponseTime,
    balancer,
)
from simcomm.errors import ParamError

FAST = settings(max_examples=40, deadline=None)


def names(n: int) -> tuple[str, ...]:
    """A view's candidates: sorted instance names."""
    return tuple(f"order-{i}" for i in range(n))


class Scripted(random.Random):
    """A Random whose ``randrange`` and ``random`` return scripted values."""

    def __init__(self, indexes: Sequence[int] = (), uniforms: Sequence[float] = ()) -> None:
        super().__init__(0)
        self.indexes = list(indexes)
        self.uniforms = list(uniforms)

    def randrange(self, n, *args, **kwargs):  # type: ignore[override]
        value = self.indexes.pop(0)
        assert 0 <= value < n
        return value

    def random(self) -> float:
        return self.uniforms.pop(0)


def slow_instance_loop(bal: Balancer, n: int, slow: float, seed: int,
                       calls: int = 400, gap: float = 0.25) -> Counter[str]:
    """Send ``calls`` calls ``gap`` seconds apart; instance 0 takes ``slow``
    seconds per call, the others 1 s (each serves any number at once).
    Returns the calls each instance got."""
    rng = random.Random(seed)
    candidates = names(n)
    latency = dict.fromkeys(candidates, 1.0)
    latency[candidates[0]] = slow
    pending: list[tuple[float, int, str]] = []
    got: Counter[str] = Counter()
    for k in range(calls):
        now = k * gap
        while pending and pending[0][0] <= now:
            end, _, name = heapq.heappop(pending)
            bal.finished(name, latency[name], True, end)
        name = bal.choose(candidates, rng, now)
        bal.started(name, now)
        got[name] += 1
        heapq.heappush(pending, (now + latency[name], k, name))
    return got


# -- the registry of balancers -------------------------------------------------------------

def test_every_name_gives_a_fresh_balancer_of_its_kind():
    """``balancer(name)`` builds the class BALANCERS names, with that name, anew each time."""
    for name, cls in BALANCERS.items():
        made = balancer(name)
        assert type(made) is cls and made.name == name
        assert balancer(name) is not made
    assert set(BALANCERS) == {"round_robin", "random", "least_outstanding", "power_of_two",
                              "weighted_response_time"}


@pytest.mark.parametrize("bad", ["roundrobin", "", None, 3, "Random"])
def test_an_unknown_balancer_is_a_param_error_naming_the_knob(bad):
    """The error names the field ``balancer`` and lists the names allowed."""
    with pytest.raises(ParamError) as err:
        balancer(bad)
    assert err.value.field == "balancer"
    assert "'power_of_two'" in str(err.value)


@pytest.mark.parametrize("name", sorted(BALANCERS))
def test_no_candidates_is_a_param_error(name):
    """An empty view is the client's ``no_instance``, never a balancer's pick."""
    with pytest.raises(ParamError) as err:
        balancer(name).choose((), random.Random(1), 0.0)
    assert err.value.field == "candidates"


@pytest.mark.parametrize(("cls", "field", "value"), [
    (LeastOutstanding, "connection_failure_threshold", 0),
    (LeastOutstanding, "connection_failure_threshold", True),
    (LeastOutstanding, "connection_failure_threshold", 2.5),
    (LeastOutstanding, "circuit_trip_timeout_factor", -1.0),
    (LeastOutstanding, "circuit_trip_max_timeout", math.inf),
    (LeastOutstanding, "active_requests_window", 0),
    (LeastOutstanding, "active_requests_window", "600"),
    (PowerOfTwoChoices, "choice_count", 1),
    (PowerOfTwoChoices, "choice_count", False),
    (WeightedResponseTime, "interval", 0.0),
    (WeightedResponseTime, "interval", math.nan),
    (WeightedResponseTime, "phase", -1.0),
    (WeightedResponseTime, "phase", True),
])
def test_a_bad_setting_is_a_param_error_naming_it(cls, field, value):
    """Each setting is checked in the constructor (before time zero)."""
    with pytest.raises(ParamError) as err:
        cls(**{field: value})
    assert err.value.field == field


def test_numpy_numbers_are_settings_too():
    """A sweep over ``np.arange`` passes numpy numbers: they are accepted."""
    lo = LeastOutstanding(connection_failure_threshold=np.int64(2),
                          circuit_trip_timeout_factor=np.float64(5.0))
    assert lo.connection_failure_threshold == 2 and type(lo.connection_failure_threshold) is int
    assert PowerOfTwoChoices(choice_count=np.int32(3)).choice_count == 3
    assert WeightedResponseTime(interval=np.float32(15.0)).interval == 15.0


# -- round robin ----------------------------------------------------------------------------

def test_round_robin_starts_at_the_second_instance_as_ribbon():
    """RoundRobinRule: counter 0, then (counter + 1) % n is picked: index 1 first."""
    rr = RoundRobin()
    picks = [rr.choose(names(3), random.Random(1), float(t)) for t in range(7)]
    assert picks == ["order-1", "order-2", "order-0", "order-1", "order-2", "order-0",
                     "order-1"]


@FAST
@given(n=st.integers(1, 12), calls=st.integers(0, 500))
def test_round_robin_is_exactly_fair(n, calls):
    """Over any run on an unchanged list, counts per instance differ by at most one."""
    rr = RoundRobin()
    rng = random.Random(0)
    got = Counter(rr.choose(names(n), rng, float(k)) for k in range(calls))
    counts = [got[name] for name in names(n)]
    assert sum(counts) == calls
    assert max(counts) - min(counts) <= 1


def test_round_robin_keeps_its_counter_when_the_list_changes():
    """A list change does not restart the cycle: the counter is taken modulo the new size."""
    rr = RoundRobin()
    rng = random.Random(0)
    assert [rr.choose(names(3), rng, 0.0) for _ in range(2)] == ["order-1", "order-2"]
    assert rr.counter == 2
    # a fourth instance appears: index 3 is next, not index 1
    assert rr.choose(names(4), rng, 1.0) == "order-3"
    # back to two: (3 + 1) % 2 = 0
    assert rr.choose(names(2), rng, 2.0) == "order-0"


def test_round_robin_uses_no_randomness():
    """Round robin never draws: the caller's stream is left as it was."""
    rng = random.Random(7)
    state = rng.getstate()
    rr = RoundRobin()
    for k in range(10):
        rr.choose(names(4), rng, float(k))
    assert rng.getstate() == state


# -- random ---------------------------------------------------------------------------------

@FAST
@given(n=st.integers(2, 8), seed=st.integers(0, 2**32 - 1))
def test_random_shares_are_within_a_binomial_bound(n, seed):
    """Each instance's count is Binomial(N, 1/n): within 5 standard deviations."""
    draws = 3000
    rc = RandomChoice()
    rng = random.Random(seed)
    got = Counter(rc.choose(names(n), rng, 0.0) for _ in range(draws))
    p = 1 / n
    sigma = math.sqrt(draws * p * (1 - p))
    for name in names(n):
        assert abs(got[name] - draws * p) <= 5 * sigma


def test_random_is_one_uniform_draw_from_the_callers_stream():
    """The pick is ``rng.choice``: the same seed gives the same picks."""
    a = [RandomChoice().choose(names(5), random.Random(42), 0.0) for _ in range(3)]
    rng = random.Random(42)
    assert a[0] == rng.choice(names(5))
    rc = RandomChoice()
    r1, r2 = random.Random(3), random.Random(3)
    assert [rc.choose(names(5), r1, 0.0) for _ in range(50)] == \
        [rc.choose(names(5), r2, 0.0) for _ in range(50)]


# -- least outstanding (BestAvailableRule) ------------------------------------------------------

def test_least_outstanding_picks_the_fewest_active_and_ties_go_to_the_first():
    """Strictly fewer wins; at equal counts the first in the view's order is picked."""
    lo = LeastOutstanding()
    rng = random.Random(0)
    c = names(3)
    assert lo.choose(c, rng, 0.0) == "order-0"            # all 0: the first
    lo.started("order-0", 0.0)
    assert lo.choose(c, rng, 0.0) == "order-1"            # 1, 0, 0
    lo.started("order-1", 0.0)
    lo.started("order-2", 0.0)
    assert lo.choose(c, rng, 0.0) == "order-0"            # 1, 1, 1
    lo.started("order-0", 0.0)
    lo.finished("order-2", 0.5, True, 0.5)
    assert lo.choose(c, rng, 0.5) == "order-2"            # 2, 1, 0
    assert [lo.outstanding(n) for n in c] == [2, 1, 0]


def test_least_outstanding_never_counts_below_zero():
    """decrementActiveRequestsCount floors at 0: a stray end does not lend credit."""
    lo = LeastOutstanding()
    lo.finished("order-1", 0.1, True, 1.0)
    assert lo.outstanding("order-1") == 0


def test_an_active_count_unchanged_for_the_window_counts_as_zero():
    """effectiveWindowSeconds (600 s): a count that has not moved for longer is reset."""
    lo = LeastOutstanding()
    rng = random.Random(0)
    c = names(2)
    lo.started("order-0", 0.0)
    lo.started("order-0", 0.0)
    lo.started("order-1", 10.0)
    assert lo.choose(c, rng, 600.0) == "order-1"          # 2 vs 1: not yet stale
    assert lo.active_requests("order-0", 600.0) == 2
    assert lo.choose(c, rng, 600.5) == "order-0"          # 0 (stale) vs 1
    assert lo.outstanding("order-0") == 0


def test_three_failures_trip_the_circuit_for_ten_then_twenty_then_thirty_seconds():
    """2^min(failures - 3, 16) x 10 s, capped at 30 s, from the last failure."""
    lo = LeastOutstanding()
    rng = random.Random(0)
    c = names(2)
    for t in (1.0, 2.0):
        lo.finished("order-0", 0.001, False, t)
    assert lo.blackout("order-0") == 0 and lo.choose(c, rng, 2.0) == "order-0"
    lo.finished("order-0", 0.001, False, 3.0)             # the 3rd: 10 s
    assert lo.blackout("order-0") == 10.0
    assert lo.choose(c, rng, 3.0) == "order-1"
    assert lo.choose(c, rng, 12.999) == "order-1"
    assert lo.choose(c, rng, 13.0) == "order-0"           # strictly after: back in
    lo.finished("order-0", 0.001, False, 20.0)            # the 4th: 20 s
    assert lo.blackout("order-0") == 20.0
    assert lo.tripped("order-0", 39.9) and not lo.tripped("order-0", 40.0)
    lo.finished("order-0", 0.001, False, 50.0)            # the 5th: 40 s, capped at 30
    assert lo.blackout("order-0") == 30.0
    for _ in range(30):
        lo.finished("order-0", 0.001, False, 50.0)
    assert lo.blackout("order-0") == 30.0
    lo.finished("order-0", 0.2, True, 51.0)               # an answer clears it
    assert lo.blackout("order-0") == 0 and not lo.tripped("order-0", 51.0)


def test_when_every_circuit_is_tripped_it_falls_back_to_round_robin():
    """BestAvailableRule with no eligible server: ClientConfigEnabledRoundRobinRule."""
    lo = LeastOutstanding(connection_failure_threshold=1)
    rng = random.Random(0)
    c = names(3)
    for name in c:
        lo.finished(name, 0.001, False, 0.0)
    assert [lo.choose(c, rng, 1.0) for _ in range(4)] == \
        ["order-1", "order-2", "order-0", "order-1"]


def test_a_zero_trip_factor_never_trips():
    """A blackout of 0 s is no circuit (getCircuitBreakerTimeout <= 0)."""
    lo = LeastOutstanding(circuit_trip_timeout_factor=0)
    for t in range(10):
        lo.finished("order-0", 0.001, False, float(t))
    assert not lo.tripped("order-0", 9.0)
    assert lo.choose(names(2), random.Random(0), 9.0) == "order-0"


# -- power of two choices (Envoy LEAST_REQUEST) -------------------------------------------------

def test_p2c_keeps_the_first_draw_unless_the_second_has_strictly_fewer():
    """unweightedHostPickNChoices: strict <, so a tie keeps the first drawn."""
    p2c = PowerOfTwoChoices()
    c = names(4)
    p2c.started("order-2", 0.0)
    # draws 2 then 3: 1 vs 0 -> 3
    assert p2c.choose(c, Scripted([2, 3]), 0.0) == "order-3"
    # draws 3 then 1: 0 vs 0 -> the first, 3
    assert p2c.choose(c, Scripted([3, 1]), 0.0) == "order-3"
    # draws 1 then 2: 0 vs 1 -> 1
    assert p2c.choose(c, Scripted([1, 2]), 0.0) == "order-1"


def test_p2c_draws_with_replacement_as_envoy():
    """Both draws may be the same instance (random() % size, no dedup): then
    that instance is picked whatever the others' load."""
    p2c = PowerOfTwoChoices()
    c = names(3)
    for _ in range(5):
        p2c.started("order-0", 0.0)
    assert p2c.choose(c, Scripted([0, 0]), 0.0) == "order-0"


def test_p2c_with_more_choices_looks_at_that_many_draws():
    """choice_count = 3: the least loaded of three draws."""
    p2c = PowerOfTwoChoices(choice_count=3)
    c = names(4)
    p2c.started("order-0", 0.0)
    p2c.started("order-0", 0.0)
    p2c.started("order-1", 0.0)
    assert p2c.choose(c, Scripted([0, 1, 2]), 0.0) == "order-2"
    assert p2c.choose(c, Scripted([0, 1, 0]), 0.0) == "order-1"


def test_p2c_with_no_load_is_uniform():
    """With no call outstanding the first draw always wins: a uniform pick."""
    draws = 4000
    p2c = PowerOfTwoChoices()
    rng = random.Random(5)
    got = Counter(p2c.choose(names(4), rng, 0.0) for _ in range(draws))
    sigma = math.sqrt(draws * 0.25 * 0.75)
    assert all(abs(got[n] - draws / 4) <= 5 * sigma for n in names(4))


# -- the slow instance ------------------------------------------------------------------------

@FAST
@given(n=st.integers(2, 6), slow=st.floats(4.0, 20.0), seed=st.integers(0, 2**32 - 1),
       name=st.sampled_from(["least_outstanding", "power_of_two", "weighted_response_time"]))
def test_load_aware_balancers_send_less_to_a_slow_instance(n, slow, seed, name):
    """An instance whose calls take 4-20 x longer gets less than a fair share
    from every load-aware balancer (its calls pile up, or its mean grows)."""
    got = slow_instance_loop(balancer(name), n, slow, seed)
    share = got["order-0"] / sum(got.values())
    assert share < 1 / n


@FAST
@given(n=st.integers(2, 6), slow=st.floats(4.0, 20.0), seed=st.integers(0, 2**32 - 1))
def test_least_outstanding_sends_the_slow_instance_about_its_speed_share(n, slow, seed):
    """Active counts equalise, so calls split in proportion to 1 / latency:
    the slow instance's share is near (1/slow) / (n - 1 + 1/slow)."""
    got = slow_instance_loop(LeastOutstanding(), n, slow, seed)
    share = got["order-0"] / sum(got.values())
    expected = (1 / slow) / (n - 1 + 1 / slow)
    assert share <= expected + 0.05


def test_round_robin_is_blind_to_a_slow_instance():
    """The contrast: round robin gives the slow instance its full 1/n."""
    got = slow_instance_loop(RoundRobin(), 4, 10.0, 1)
    assert max(got.values()) - min(got.values()) <= 1


# -- weighted response time -------------------------------------------------------------------

@FAST
@given(latencies=st.lists(st.lists(st.floats(0.001, 5.0), min_size=0, max_size=6),
                          min_size=1, max_size=6))
def test_wrt_weights_are_ribbons_formula(latencies):
    """maintainWeights: weight_i = sum of the mean response times - mean_i, and
    the accumulated weights are their running sums in the list's order."""
    c = names(len(latencies))
    wrt = WeightedResponseTime(phase=30.0)
    for name, lats in zip(c, latencies, strict=True):
        for lat in lats:
            wrt.finished(name, lat, True, 1.0)
    wrt.choose(c, random.Random(0), 30.0)
    means = [sum(lats) / len(lats) if lats else 0.0 for lats in latencies]
    total = sum(means)
    assert [wrt.weights[n] for n in c] == pytest.approx([total - m for m in means])
    assert list(wrt.accumulated) == pytest.approx(
        [sum(total - m for m in means[:i + 1]) for i in range(len(c))])
    for name, m in zip(c, means, strict=True):
        assert wrt.mean_response_time(name) == pytest.approx(m)


def test_wrt_picks_by_accumulated_weight_as_ribbons_javadoc():
    """A(10) B(30) C(40) D(20): a draw r picks the first with accumulated >= r:
    1..10 A, 11..40 B, 41..80 C, 81..100 D."""
    c = ("a", "b", "c", "d")
    wanted = {"a": 10.0, "b": 30.0, "c": 40.0, "d": 20.0}
    total = sum(wanted.values()) / 3          # sum of means, since sum of weights = 3 x it
    wrt = WeightedResponseTime(phase=1.0)
    for name in c:
        wrt.finished(name, total - wanted[name], True, 0.0)
    assert wrt.choose(c, Scripted(uniforms=[0.05]), 1.0) == "a"      # weights computed now
    assert wrt.weights == pytest.approx(wanted)
    for u, expected in [(0.0999, "a"), (0.1001, "b"), (0.3999, "b"), (0.4001, "c"),
                        (0.7999, "c"), (0.8001, "d"), (0.9999, "d")]:
        assert wrt.choose(c, Scripted(uniforms=[u]), 1.0) == expected


def test_wrt_is_round_robin_until_calls_have_finished():
    """Before any weights (no recompute yet, or all means 0): RoundRobinRule."""
    wrt = WeightedResponseTime(phase=0.0)
    rng = random.Random(0)
    picks = [wrt.choose(names(3), rng, float(t)) for t in range(4)]
    assert picks == ["order-1", "order-2", "order-0", "order-1"]
    assert wrt.weights == dict.fromkeys(names(3), 0.0)


def test_wrt_recomputes_only_every_interval_on_its_grid():
    """ServerWeightTaskTimerInterval (30 s): weights stay as computed until the
    next due time; due times stay on phase + k x interval even when idle."""
    wrt = WeightedResponseTime(phase=5.0)
    c = names(2)
    rng = random.Random(0)
    wrt.choose(c, rng, 5.0)                   # recompute at 5: no stats, weights 0
    assert wrt.next_update == 35.0
    wrt.finished("order-0", 1.0, True, 6.0)
    wrt.finished("order-1", 3.0, True, 6.0)
    wrt.choose(c, rng, 34.9)
    assert wrt.weights == {"order-0": 0.0, "order-1": 0.0}
    wrt.choose(c, rng, 35.0)
    assert wrt.weights == {"order-0": 3.0, "order-1": 1.0}
    assert wrt.next_update == 65.0
    wrt.finished("order-1", 1.0, True, 130.0)  # due times 65, 95, 125 passed idle
    assert wrt.next_update == 155.0
    # the recompute at the due time used the stats of then: order-1's mean was 3
    assert wrt.weights == {"order-0": 3.0, "order-1": 1.0}
    wrt.choose(c, rng, 155.0)
    assert wrt.weights == {"order-0": 2.0, "order-1": 1.0}


def test_wrt_first_due_time_is_a_random_phase_from_the_callers_stream():
    """phase=None: the first recompute is at the first call + U[0, interval)."""
    wrt = WeightedResponseTime()
    rng = random.Random(11)
    expected = 100.0 + random.Random(11).random() * 30.0
    wrt.choose(names(2), rng, 100.0)
    assert wrt.next_update == pytest.approx(expected)
    assert 100.0 <= wrt.next_update < 130.0


def test_wrt_counts_failed_calls_so_a_dead_instance_looks_fast():
    """recordStats notes every completion: fast refusals lower the mean."""
    wrt = WeightedResponseTime(phase=10.0)
    c = names(2)
    for _ in range(5):
        wrt.finished("order-0", 0.002, False, 1.0)
        wrt.finished("order-1", 0.050, True, 1.0)
    wrt.choose(c, random.Random(0), 10.0)
    assert wrt.weights["order-0"] > wrt.weights["order-1"]


def test_wrt_falls_back_to_round_robin_for_an_instance_without_a_weight():
    """A new instance since the last recompute: serverCount != weights -> round robin;
    a subset (a retry on the next server) keeps the weights it has."""
    wrt = WeightedResponseTime(phase=1.0)
    c = names(2)
    wrt.finished("order-0", 1.0, True, 0.0)
    wrt.finished("order-1", 3.0, True, 0.0)
    assert wrt.choose(c, Scripted(uniforms=[0.9]), 1.0) == "order-1"   # weights 3, 1
    assert wrt.weights == {"order-0": 3.0, "order-1": 1.0}
    counter = wrt.counter
    assert wrt.choose(names(3), Scripted(), 2.0) == names(3)[(counter + 1) % 3]
    # the subset: order-1 alone, by its weight (one draw), not round robin
    scripted = Scripted(uniforms=[0.5])
    assert wrt.choose(["order-1"], scripted, 2.0) == "order-1"
    assert scripted.uniforms == []


# -- determinism ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(BALANCERS))
def test_the_same_seed_gives_the_same_picks(name):
    """Randomness comes only from the stream passed in: two runs agree pick by pick."""
    a = slow_instance_loop(balancer(name), 4, 5.0, 99, calls=300)
    b = slow_instance_loop(balancer(name), 4, 5.0, 99, calls=300)
    assert a == b
