"""Figures of sharded channels, consumer groups and delivery guarantees (issue 9
item 8): partition owners over time, consumer lag, per-key order, anomalies by
cause, outbox lag, and the delivery matrix as heat maps.

Each figure is checked against tables built by hand in the shapes
:mod:`simcomm.analysis.delivery` gives the Result (every interval, index and
cause known), so what it draws -- rectangles, marks, counts, titles -- is
held to the numbers; then on the scenarios' own runs, against the Result's
tables and summary.  Every view says what it cannot show for a run without
records or without the trace, redraws in place, and refuses bad arguments
with a ParamError naming the field.
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection, PolyCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

import simcomm
from simcomm import viz
from simcomm.engine import World
from simcomm.engine.faults import Crash, install
from simcomm.engine.nodes import Instance
from simcomm.errors import ParamError
from simcomm.result import Result
from simcomm.viz import ordering as vo

VIEWS = ("partition_assignment", "consumer_lag", "key_order", "delivery_causes", "outbox_lag")

# -- tables built by hand -------------------------------------------------------------------
#: Eager: c1 and c2 join (rebalance 1-2 s), c3 joins (10-11 s), c2 crashes at 20 s and
#: is expired at 30 s (30-31 s); every rebalance revokes everything.
EAGER_REBALANCES = [("g", 1.0, 2.0, "join", 1), ("g", 10.0, 11.0, "join", 2),
                    ("g", 30.0, 31.0, "session_timeout", 3)]
EAGER = [("g", "orders", 0, "c1", 2.0, 10.0, 1), ("g", "orders", 1, "c1", 2.0, 10.0, 1),
         ("g", "orders", 2, "c2", 2.0, 10.0, 1), ("g", "orders", 3, "c2", 2.0, 10.0, 1),
         ("g", "orders", 0, "c1", 11.0, 30.0, 2), ("g", "orders", 1, "c3", 11.0, 30.0, 2),
         ("g", "orders", 2, "c2", 11.0, 30.0, 2), ("g", "orders", 3, "c3", 11.0, 30.0, 2),
         ("g", "orders", 0, "c1", 31.0, 40.0, 3), ("g", "orders", 1, "c3", 31.0, 40.0, 3),
         ("g", "orders", 2, "c1", 31.0, 40.0, 3), ("g", "orders", 3, "c3", 31.0, 40.0, 3)]
#: Cooperative: the same story, each rebalance in two rounds; only the partitions
#: that move stop (p1, p3 when c3 joins; p2 when c2 is expired).
COOP_REBALANCES = [("g", 1.0, 2.0, "join", 1), ("g", 10.0, 10.5, "join", 2),
                   ("g", 10.5, 11.0, "follow_up", 3), ("g", 30.0, 30.5, "session_timeout", 4),
                   ("g", 30.5, 31.0, "follow_up", 5)]
COOP = [("g", "orders", 0, "c1", 2.0, 40.0, 1), ("g", "orders", 1, "c1", 2.0, 10.5, 1),
        ("g", "orders", 1, "c3", 11.0, 40.0, 3), ("g", "orders", 2, "c2", 2.0, 30.0, 1),
        ("g", "orders", 2, "c1", 31.0, 40.0, 5), ("g", "orders", 3, "c2", 2.0, 10.5, 1),
        ("g", "orders", 3, "c3", 11.0, 40.0, 3)]

#: Keys A (in order), B (index 1 overtakes index 0: competing consumers) and C
#: (index 1 applied twice after a crash before the commit; index 2's repeat
#: skipped by the dedup), a phantom and a null-keyed record (no produced index).
KEY_ORDER = [
    ("A", 1, 0, 0, 1.0, "c1", 0, 0, "in_order", ""),
    ("A", 2, 1, 1, 2.0, "c1", 0, 1, "in_order", ""),
    ("A", 3, 2, 2, 3.0, "c1", 0, 2, "in_order", ""),
    ("B", 5, 1, 0, 1.5, "c2", -1, -1, "in_order", ""),
    ("B", 4, 0, 1, 2.5, "c1", -1, -1, "reordered", "competing consumers"),
    ("B", 6, 2, 2, 3.5, "c1", -1, -1, "in_order", ""),
    ("C", 7, 0, 0, 1.2, "c2", 1, 0, "in_order", ""),
    ("C", 8, 1, 1, 2.2, "c2", 1, 1, "in_order", ""),
    ("C", 8, 1, math.nan, 2.4, "c3", 1, 1, "duplicate", "crash before commit"),
    ("C", 9, 2, 2, 3.2, "c3", 1, 2, "in_order", ""),
    ("C", 9, 2, math.nan, 3.3, "c3", 1, 2, "skipped", ""),
    ("D", 10, math.nan, math.nan, 3.6, "c3", 1, 3, "phantom", "dual write"),
    (None, 11, math.nan, 0, 3.7, "c3", 2, 0, "in_order", ""),
]
CAUSES = [("duplicated", "crash before commit", 1), ("reordered", "competing consumers", 1),
          ("gap", "competing consumers", 1), ("phantom", "dual write", 1)]
#: Six outbox records: record 3 sent twice by the relay, record 6 never sent.
OUTBOX = [(1, "o1", 1.0, 2.5, 2.6, 1.5), (2, "o2", 2.0, 2.5, 2.7, 0.5),
          (3, "o3", 3.0, 5.0, 5.1, 2.0), (4, "o4", 4.0, 5.0, 5.2, 1.0),
          (5, "o5", 4.5, 5.0, math.nan, 0.5), (6, "o6", 39.0, math.nan, math.nan, math.nan)]


def _lag_rows(parts: int, peak: tuple[int, float, int]) -> list[tuple]:
    """Lag rows every second on ``parts`` partitions: 3 records each, except one
    ``(partition, time, lag)`` peak."""
    rows = []
    for p in range(parts):
        for t in range(40):
            lag = peak[2] if (p, float(t)) == peak[:2] else 3
            rows.append((float(t), "g", "orders", p, 10 * t + lag, 10 * t, lag))
    return rows


def _frame(rows: list[tuple], name: str) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(vo._COLUMNS[name]))


def hand_run(*, cooperative: bool = False, trace: bool = True, parts: int = 4,
             peak: tuple[int, float, int] = (2, 25.0, 40), tables: bool = True) -> Result:
    """A run of three group members (c2 crashes at 20 s for good) whose delivery
    tables are the hand-made ones above (``tables=False``: none at all)."""
    w = World(seed=0, trace=trace)
    for name in ("c1", "c2", "c3"):
        Instance(w, name)
    install(w, [Crash("c2", at=20.0, duration=None)])
    w.run(40.0)
    if trace and tables:
        for rid in range(1, 10):  # nine records produced (A, B, C) and applied
            w.trace.records.append((0.1 * rid, "produce", rid, "orders", -1, -1,
                                    "ABC"[(rid - 1) // 3], "shop", ""))
        for key, rid, *_rest in KEY_ORDER[:11]:
            w.trace.records.append((1.0 + 0.1 * rid, "apply", rid, "orders", -1, -1, key,
                                    "c1", ""))
        for rid in (1, 2, 3, 3, 4, 5):
            w.trace.records.append((2.5, "send", rid, "orders", 0, -1, f"o{rid}", "relay",
                                    "relay"))
    res = Result(w)
    if tables:
        tabs = {"assignments": COOP if cooperative else EAGER,
                "rebalances": COOP_REBALANCES if cooperative else EAGER_REBALANCES,
                "consumer_lag": _lag_rows(parts, peak), "key_order": KEY_ORDER,
                "delivery_causes": CAUSES, "outbox_lag": OUTBOX}
        for name, rows in tabs.items():
            setattr(res, name, lambda rows=rows, name=name: _frame(rows, name))
    return res


@pytest.fixture(scope="module")
def eager() -> Result:
    return hand_run()


@pytest.fixture(scope="module")
def coop() -> Result:
    return hand_run(cooperative=True)


@pytest.fixture(scope="module")
def empty() -> Result:
    """A run with members and no delivery tables at all."""
    return hand_run(tables=False)


def _gid(fig: Figure, prefix: str, kind: type = object) -> list[Any]:
    return [a for ax in fig.axes for a in ax.get_children()
            if isinstance(a, kind) and (a.get_gid() or "").startswith(prefix)]


def _texts(fig: Figure) -> str:
    parts = [t.get_text() for ax in fig.axes for t in ax.texts]
    parts += [ax.get_title(loc=loc) for ax in fig.axes for loc in ("left", "right")]
    parts += [t.get_text() for t in fig.texts]
    suptitle = getattr(fig, "_suptitle", None)
    if suptitle is not None:
        parts.append(suptitle.get_text())
    return "\n".join(parts)


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=50)
    return buf.getvalue()


def _spans(coll: PolyCollection) -> list[tuple[float, float, float]]:
    """``(start, end, row)`` of each rectangle of a strip collection."""
    out = []
    for path in coll.get_paths():
        v = path.vertices
        out.append((float(v[:, 0].min()), float(v[:, 0].max()),
                    round(float(v[:, 1].min() + v[:, 1].max()) / 2, 6)))
    return sorted(out, key=lambda s: (s[2], s[0]))


# -- partition_assignment -------------------------------------------------------------------
def test_each_member_owns_the_stretches_the_assignments_give_it(eager: Result) -> None:
    fig = vo.partition_assignment(eager)
    colors = vo.member_colors(eager)
    assert list(colors) == ["c1", "c2", "c3"]  # the order the run added them
    assert len(set(colors.values())) == 3
    for member in ("c1", "c2", "c3"):
        (coll,) = _gid(fig, f"owner:{member}", PolyCollection)
        want = sorted(((s, e, float(p)) for _, _, p, m, s, e, _ in EAGER if m == member),
                      key=lambda s: (s[2], s[0]))
        assert _spans(coll) == want
        assert np.allclose(coll.get_facecolor()[0][:3],
                           np.array([int(colors[member][i:i + 2], 16)
                                     for i in (1, 3, 5)]) / 255)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["p0", "p1", "p2", "p3"]


def test_an_eager_rebalance_stops_every_partition(eager: Result) -> None:
    fig = vo.partition_assignment(eager)
    ax = fig.axes[0]
    # the first assignment is not a rebalance that stops anything; the other two
    # leave all four strips blank for a second each: 8 partition-seconds
    assert ax.get_title(loc="left") == (
        "Partition owners: each of 2 rebalances stopped all 4 partitions")
    assert "8 partition·s without an owner" in _texts(fig)
    (bands,) = _gid(fig, "rebalance", PolyCollection)
    assert len(bands.get_paths()) == 3
    # why each one began, above the axes
    assert {"join", "expired"} <= set(_texts(fig).split("\n"))


def test_a_cooperative_rebalance_stops_only_what_moves(coop: Result) -> None:
    fig = vo.partition_assignment(coop)
    # c3 joining moves p1 and p3; c2's expiry moves p2: 1.5 a rebalance, and the
    # follow-up rounds belong to the rebalance they finish
    assert fig.axes[0].get_title(loc="left") == (
        "Partition owners: 2 rebalances stopped 1.5 of 4 partitions on average")
    assert "two rounds each · 2 partition·s without an owner" in _texts(fig)


def test_a_dead_member_keeps_its_partitions_darkened_until_it_is_expired(eager: Result
                                                                          ) -> None:
    fig = vo.partition_assignment(eager)
    (dead,) = _gid(fig, "fault:down", PolyCollection)
    (owner,) = _gid(fig, "owner:c2", PolyCollection)
    # c2 crashed at 20 s holding p2; the coordinator took it away at 30 s
    assert _spans(dead) == [(20.0, 30.0, 2.0)]
    assert dead.get_zorder() > owner.get_zorder()
    legend = [t.get_text().replace("\n  ", " ") for t in fig.axes[0].get_legend().texts]
    assert "owner crashed, nobody reads it: c2" in legend


def test_partitions_picks_strips(eager: Result) -> None:
    fig = vo.partition_assignment(eager, partitions=[np.int64(1), 3])
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["p1", "p3"]
    assert viz.redraw("partition_assignment", eager, partitions=[1, 3]).get_figheight() < (
        viz.redraw("partition_assignment", eager).get_figheight())


# -- consumer_lag ------------------------------------------------------------------------------
def test_consumer_lag_draws_a_step_line_per_partition_and_names_the_peak(eager: Result
                                                                         ) -> None:
    fig = vo.consumer_lag(eager)
    lines = _gid(fig, "lag:", Line2D)
    assert sorted(line.get_gid() for line in lines) == ["lag:p0", "lag:p1", "lag:p2",
                                                        "lag:p3"]
    (p2,) = [line for line in lines if line.get_gid() == "lag:p2"]
    assert float(np.max(p2.get_ydata())) == 40
    assert fig.axes[0].get_title(loc="left") == (
        "Lag peaks at 40 records (p2 at 25 s, while c2 was down)")
    assert fig.axes[0].get_ylim()[1] >= 40


def test_consumer_lag_of_many_partitions_greys_all_but_the_furthest_behind() -> None:
    res = hand_run(parts=9, peak=(7, 10.0, 500))
    fig = vo.consumer_lag(res)
    lines = _gid(fig, "lag:", Line2D)
    assert len(lines) == 9
    (worst,) = [line for line in lines if line.get_gid() == "lag:p7"]
    assert worst.get_color() == vo.OKABE_ITO["vermillion"]
    labels = [t.get_text() for t in fig.axes[0].get_legend().texts]
    assert "p7: furthest behind" in labels and labels.count("another partition") == 1
    assert "during a rebalance" in fig.axes[0].get_title(loc="left")  # 10 s: c3 joining


def test_a_long_lag_series_keeps_its_peak_in_few_steps() -> None:
    t = np.linspace(0.0, 100.0, 50_000)
    v = np.where(np.abs(t - 61.2345) < 1e-3, 999.0, 1.0)
    x, y = vo._peaks(t, v, 100.0)
    assert len(x) <= vo.MAX_STEPS and y.max() == 999.0 and y[-1] == 1.0


# -- key_order ---------------------------------------------------------------------------------
def test_key_order_points_place_every_application_by_its_indices(eager: Result) -> None:
    pts = vo.key_order_points(eager)
    got = {(r.applied, r.produced, r.kind, r.cause): r.count
           for r in pts.itertuples(index=False)}
    # counted from 1; a repeat sits half-way after the first applications before it;
    # B's index 1 applied first is ahead of the missing index 0 (a gap)
    assert got == {(1.0, 1.0, "in_order", ""): 2, (2.0, 2.0, "in_order", ""): 2,
                   (3.0, 3.0, "in_order", ""): 3, (1.0, 2.0, "ahead", ""): 1,
                   (2.0, 1.0, "reordered", "competing consumers"): 1,
                   (2.5, 2.0, "duplicate", "crash before commit"): 1,
                   (3.5, 3.0, "skipped", ""): 1}
    assert set(vo.key_order_points(eager, keys="B")["kind"]) == {"in_order", "ahead",
                                                                 "reordered"}


def test_key_order_marks_violations_in_their_causes_colours(eager: Result) -> None:
    fig = vo.key_order(eager)
    (x_marks,) = _gid(fig, "order:reordered", PathCollection)
    assert x_marks.get_offsets().tolist() == [[2.0, 1.0]]
    assert np.allclose(x_marks.get_facecolor()[0][:3],
                       _rgb(vo.CAUSE_COLORS["competing consumers"]))
    (rings,) = _gid(fig, "order:duplicate", PathCollection)
    assert rings.get_offsets().tolist() == [[2.5, 2.0]]
    assert np.allclose(rings.get_edgecolor()[0][:3],
                       _rgb(vo.CAUSE_COLORS["crash before commit"]))
    assert min(x_marks.get_sizes()) >= vo._MARK_MIN  # a lone violation still shows
    ax = fig.axes[0]
    assert ax.get_title(loc="left") == ("Per-key order broken: 1 of 9 records out of order "
                                        "(competing consumers)")
    assert "3 keys · 1 duplicate · 1 skipped" in _texts(fig)
    legend = [t.get_text().replace("\n  ", " ") for t in ax.get_legend().texts]
    assert "cause: competing consumers" in legend and "cause: crash before commit" in legend


def test_key_order_of_an_ordered_run_says_order_is_kept() -> None:
    res = hand_run()
    rows = [r for r in KEY_ORDER if r[0] == "A"]
    res.key_order = lambda: _frame(rows, "key_order")  # type: ignore[method-assign]
    fig = vo.key_order(res)
    assert fig.axes[0].get_title(loc="left") == (
        "Per-key order kept: all 3 records applied in produced order")
    assert not _gid(fig, "order:reordered")


# -- delivery_causes ---------------------------------------------------------------------------
def test_delivery_causes_bars_are_the_counts_by_cause(eager: Result) -> None:
    fig = vo.delivery_causes(eager)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "lost", "duplicated", "reordered", "gaps", "phantoms"]  # every row, zero or not
    (cc,) = _gid(fig, "cause:competing consumers", PolyCollection)
    assert sorted((s[0], s[1], s[2]) for s in _spans(cc)) == [(0.0, 1.0, 2.0),
                                                             (0.0, 1.0, 3.0)]
    # per 10 000 of the nine records produced
    assert "1 · 1,111 per 10 000" in _texts(fig)
    assert ax.get_title(loc="left") == ("1 duplicated, 1 reordered, 1 gap, 1 phantom: "
                                        "mostly competing consumers")


def test_no_anomaly_is_said_plainly() -> None:
    res = hand_run()
    res.delivery_causes = lambda: _frame([], "delivery_causes")  # type: ignore[method-assign]
    fig = vo.delivery_causes(res)
    assert fig.axes[0].get_title(loc="left") == (
        "Every record applied exactly once, in order: no anomaly")
    res = hand_run()
    res.delivery_causes = lambda: _frame([], "delivery_causes")  # type: ignore[method-assign]
    res.world.trace.records[:] = [r for r in res.world.trace.records
                                  if not (r[1] == "apply" and r[2] > 6)]
    assert vo.delivery_causes(res).axes[0].get_title(loc="left") == (
        "No anomaly; 3 records still in flight at the end")


# -- outbox_lag --------------------------------------------------------------------------------
def _line(fig: Figure, gid: str) -> Line2D:
    (line,) = [line for line in fig.axes[0].get_lines() if line.get_gid() == gid]
    return line


def test_outbox_lag_points_the_relays_share_and_its_duplicates(eager: Result) -> None:
    fig = vo.outbox_lag(eager)
    # commit → first applied, beside the relay's share (commit → first sent)
    points = _line(fig, "points")
    assert points.get_xdata().tolist() == [1.0, 2.0, 3.0, 4.0]
    assert np.allclose(points.get_ydata(), [1.6, 0.7, 2.1, 1.2])
    relay = _line(fig, "relay")
    assert relay.get_xdata().tolist() == [1.0, 2.0, 3.0, 4.0, 4.5]
    assert np.allclose(relay.get_ydata(), [1.5, 0.5, 2.0, 1.0, 0.5])
    assert _line(fig, "again").get_xdata().tolist() == [3.0]  # record 3: sent twice
    assert _line(fig, "unapplied").get_xdata().tolist() == [4.5, 39.0]
    # an outbox record not sent by the end waits in the outbox: not a loss
    assert fig.axes[0].get_title(loc="left") == (
        "Outbox lag, commit → applied: median 1.4 s, p99 2.08 s; 1 sent twice")
    (bars,) = _gid(fig, "hist", PolyCollection)
    assert sum(float(p.vertices[:, 0].max()) for p in bars.get_paths()) == 4
    assert fig.axes[0].get_yscale() == "log"


def test_a_publish_first_dual_write_shows_its_phantoms_and_early_applications() -> None:
    res = hand_run()
    rows = [(1, "o1", 1.0, 0.99, 0.995, math.nan), (2, "o2", 2.0, 2.001, 2.01, math.nan),
            (3, "o3", math.nan, 3.0, 3.01, math.nan), (4, "o4", 5.0, math.nan, math.nan,
                                                         math.nan)]
    res.outbox_lag = lambda: _frame(rows, "outbox_lag")  # type: ignore[method-assign]
    res.world.trace.records.append((1.0, "produce", 1, "orders", -1, -1, "o1", "svc",
                                    "dual_write"))
    fig = vo.outbox_lag(res)
    assert _line(fig, "early").get_xdata().tolist() == [1.0]  # applied before its commit
    assert _line(fig, "phantom").get_xdata().tolist() == [3.0]
    title = fig.axes[0].get_title(loc="left")
    assert title.startswith("No outbox (dual write)") and (
        "1 applied before their commit" in title)


def test_a_run_without_an_outbox_says_so(empty: Result) -> None:
    assert "no record went through a transactional outbox" in _texts(
        vo.outbox_lag(empty)).replace("\n", " ")


# -- the delivery matrix -----------------------------------------------------------------------
def _matrix() -> pd.DataFrame:
    rows = []
    for acks, idem in (("0", False), ("1", False), ("all", False), ("all", True)):
        for commit in ("before", "after"):
            for dedup in ("none", "processed_ids"):
                lost = {"0": 40.0, "1": 8.0, "all": 0.0}[acks] + 20.0 * (commit == "before")
                dup = 0.0 if dedup != "none" else 12.0 * (not idem) + 30.0 * (commit == "after")
                rows.append({"acks": acks, "idempotence": idem, "commit": commit,
                             "dedup": dedup, "records": 1800.0, "lost_per_10k": lost,
                             "lost_se": lost / 10, "duplicated_per_10k": dup,
                             "duplicated_se": math.nan,
                             "reordered_per_10k": 0.0 if idem else 5.0,
                             "reordered_se": 1.0, "runs": 3})
    return pd.DataFrame(rows)


def test_delivery_matrix_figure_writes_each_cell_and_frames_exactly_once() -> None:
    df = _matrix()
    fig = vo.delivery_matrix_figure(df)
    assert len(fig.axes) == 3
    cells = {t.get_gid(): t.get_text() for ax in fig.axes for t in ax.texts
             if (t.get_gid() or "").startswith("cell:")}
    assert len(cells) == 3 * 4 * 4
    # rows acks=0, 1, all, all+idempotent; columns (before|after) × (none|processed_ids)
    assert cells["cell:lost:0:0"] == "60 ±6"
    assert cells["cell:lost:3:2"] == "0"
    assert cells["cell:duplicated:2:2"] == "42"  # no standard error given: none written
    assert cells["cell:reordered:0:0"] == "5 ±1"
    frames = [p for p in fig.axes[0].patches if p.get_edgecolor()[:3] == pytest.approx(
        _rgb(vo.OKABE_ITO["bluish_green"]))]
    # neither lost nor duplicated: acks=all (both), commit after, processed_ids
    want = int(((df["lost_per_10k"] == 0) & (df["duplicated_per_10k"] == 0)).sum())
    assert len(frames) == want == 2
    assert f"in {want} of 16 settings" in _texts(fig)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["acks=0, not idempotent", "acks=1, not idempotent",
                      "acks=all, not idempotent", "acks=all, idempotent"]


def test_delivery_matrix_figure_takes_records_or_the_settings_as_the_index() -> None:
    df = _matrix()
    a = vo.delivery_matrix_figure(df.to_dict("records"))
    b = vo.delivery_matrix_figure(df.set_index(["acks", "idempotence", "commit", "dedup"]))
    assert _texts(a) == _texts(b)
    assert len(vo.delivery_matrix_figure(df, metrics=["lost"]).axes) == 1


@pytest.mark.parametrize(("table", "kwargs", "field"), [
    (5, {}, "table"),
    (pd.DataFrame(), {}, "table"),
    (pd.DataFrame({"acks": ["1"], "lost_per_10k": [1.0]}), {}, "table"),
    (None, {"metrics": ["latency"]}, "metrics"),
    (None, {"metrics": []}, "metrics"),
])
def test_delivery_matrix_figure_refuses_what_is_not_a_matrix(table: Any, kwargs: Any,
                                                             field: str) -> None:
    with pytest.raises(ParamError) as err:
        vo.delivery_matrix_figure(_matrix() if table is None else table, **kwargs)
    assert err.value.field == field


# -- every view: empty states, redraws, arguments ----------------------------------------------
def test_every_view_is_registered_and_exported() -> None:
    for name in VIEWS:
        assert viz.VIEWS[name] is getattr(viz, name) is getattr(vo, name)
    assert viz.delivery_matrix_figure is vo.delivery_matrix_figure


@pytest.mark.parametrize("view", VIEWS)
def test_each_view_says_what_it_cannot_show_for_a_run_without_records(view: str,
                                                                      empty: Result) -> None:
    fig = viz.view(view, empty)
    assert fig.axes[0].get_title(loc="left")
    assert "in this run" in _texts(fig).replace("\n", " ")


@pytest.mark.parametrize("view", VIEWS)
def test_each_view_says_when_it_needs_the_trace(view: str) -> None:
    res = hand_run(trace=False, tables=False)
    assert "trace=True" in _texts(viz.view(view, res))


#: Pairs of hand-made runs of one shape and other contents.
PAIRS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "partition_assignment": ({}, {"cooperative": True}),
    "consumer_lag": ({}, {"peak": (1, 12.0, 90)}),
    "key_order": ({}, {"cooperative": True}),
    "delivery_causes": ({}, {"tables": False}),
    "outbox_lag": ({}, {"tables": False}),
}


@pytest.mark.parametrize("view", VIEWS)
def test_redraw_in_place_looks_like_a_fresh_figure(view: str) -> None:
    first, second = (hand_run(**kw) for kw in PAIRS[view])
    if view == "key_order":  # the second: key A alone, in order
        second.key_order = lambda: _frame(KEY_ORDER[:3], "key_order")  # type: ignore
    fig = viz.redraw(view, first)
    assert viz.redraw(view, second, fig) is fig
    fresh = viz.redraw(view, second)
    assert [len(ax.get_children()) for ax in fig.axes] == [
        len(ax.get_children()) for ax in fresh.axes]
    assert _png(fig) == _png(fresh)
    assert _png(viz.redraw(view, first, fig)) == _png(viz.redraw(view, first))


@pytest.mark.parametrize("view", VIEWS)
def test_labels_titles_and_small_print_stay_clear_of_each_other(view: str, eager: Result,
                                                                coop: Result) -> None:
    """Axis labels are pinned, not measured on every draw: they must still sit
    clear of the tick labels and inside the figure; a title must end before
    the small print beside it and inside the figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    for res in (eager, coop) if view == "partition_assignment" else (eager,):
        fig = viz.view(view, res)
        FigureCanvasAgg(fig).draw()
        renderer = fig.canvas.get_renderer()
        for ax in fig.axes:
            for axis, ticks in ((ax.xaxis, ax.get_xticklabels()),
                                (ax.yaxis, ax.get_yticklabels())):
                label = axis.label
                if not (label.get_visible() and label.get_text()):
                    continue
                box = label.get_window_extent(renderer)
                assert fig.bbox.x0 - 1 <= box.x0 and box.x1 <= fig.bbox.x1 + 1, label
                for t in ticks:
                    if t.get_visible() and t.get_text():
                        assert not box.overlaps(t.get_window_extent(renderer)), (
                            label.get_text(), t.get_text())
        small = [t for ax in fig.axes for t in ax.texts
                 if t.get_gid() == "small_print" and t.get_text()]
        for ax in fig.axes:
            for title in (ax.title, ax._left_title):
                if not title.get_text():
                    continue
                box = title.get_window_extent(renderer)
                assert box.x1 <= fig.bbox.x1 + 1, title.get_text()
                for t in small:
                    assert not box.overlaps(t.get_window_extent(renderer)), (
                        title.get_text(), t.get_text())


@pytest.mark.parametrize(("call", "field"), [
    (lambda r: vo.partition_assignment(r, partitions=[7]), "partitions"),
    (lambda r: vo.partition_assignment(r, partitions="p0"), "partitions"),
    (lambda r: vo.partition_assignment(r, faults="yes"), "faults"),
    (lambda r: vo.consumer_lag(r, faults=1), "faults"),
    (lambda r: vo.key_order(r, keys=["Z"]), "keys"),
    (lambda r: vo.key_order(r, keys=[]), "keys"),
    (lambda r: vo.outbox_lag(r, axes=[Figure().add_subplot()]), "axes"),
    (lambda r: vo.outbox_lag(r, faults=None), "faults"),
])
def test_bad_arguments_are_param_errors_naming_the_field(call: Any, field: str,
                                                         eager: Result) -> None:
    with pytest.raises(ParamError) as err:
        call(eager)
    assert err.value.field == field


def test_figures_are_bare_figures_unknown_to_pyplot(eager: Result) -> None:
    for name in VIEWS:
        fig = viz.view(name, eager)
        assert isinstance(fig, Figure) and fig.canvas.manager is None
    assert vo.delivery_matrix_figure(_matrix()).canvas.manager is None


# -- the dashboard's numbers -------------------------------------------------------------------
def test_the_summary_shows_the_records_numbers_and_the_rare_ones_only_when_they_happened(
        ) -> None:
    from simcomm.widgets._render import KEY_NUMBERS, diff_html, summary_html

    delivery_keys = ("records_produced", "records_applied", "lost", "duplicated",
                     "reordered", "gaps", "phantom", "pending", "lost_per_10k",
                     "duplicated_per_10k", "reordered_per_10k", "rebalances")
    assert set(delivery_keys) <= {key for key, _, _ in KEY_NUMBERS}
    s = dict.fromkeys(delivery_keys, 0)
    s.update(records_produced=1000, records_applied=990, lost=10, lost_per_10k=100.0)
    html = summary_html(s)
    for key in ("records_produced", "records_applied", "lost", "duplicated", "reordered",
                "lost_per_10k", "duplicated_per_10k", "reordered_per_10k"):
        assert f"data-key='{key}'" in html, key
    for key in ("gaps", "phantom", "pending", "rebalances"):
        assert f"data-key='{key}'" not in html, key
    assert "data-key='record_p95_latency'" in summary_html({**s, "record_p95_latency": 0.2})
    more = {**s, "phantom": 3, "rebalances": 2}
    assert "data-key='phantom'" in summary_html(more)
    assert "color:#D55E00" in diff_html(s, more)  # more phantoms: worse


def _rgb(color: str) -> np.ndarray:
    return np.array([int(color[i:i + 2], 16) for i in (1, 3, 5)]) / 255


def test_scenario_views_are_known_to_viz() -> None:
    for name in simcomm.api.base.names():
        scenario = simcomm.api.base.get(name)
        assert set(scenario.views) <= set(viz.VIEWS), name


# -- the scenarios' own runs ---------------------------------------------------------------
ISSUE9 = ("order-lifecycle", "rebalance", "delivery-guarantees", "outbox")


@pytest.fixture(scope="module")
def runs() -> dict[str, Result]:
    """The issue-9 scenarios' default runs, and the sharded and cooperative variants."""
    out = {name: simcomm.run(name, seed=0) for name in ISSUE9}
    out["sharded"] = simcomm.run("order-lifecycle", seed=0, channel="sharded")
    out["cooperative"] = simcomm.run("rebalance", seed=0, assignor="cooperative-sticky")
    return out


@pytest.mark.parametrize("scenario", ISSUE9)
def test_each_scenario_view_draws_its_run(scenario: str, runs: dict[str, Result]) -> None:
    res = runs[scenario]
    views = simcomm.api.base.get(scenario).views
    assert set(views) & set(VIEWS)
    for view in views:
        fig = viz.view(view, res)
        assert fig.axes[0].get_title(loc="left"), (scenario, view)
        assert "trace=True" not in _texts(fig), (scenario, view)


def test_competing_consumers_mark_what_the_summary_counts_and_a_sharded_channel_none(
        runs: dict[str, Result]) -> None:
    queue, sharded = runs["order-lifecycle"], runs["sharded"]
    reordered = queue.summary()["reordered"]
    assert reordered > 0
    fig = vo.key_order(queue)
    marks = vo.key_order_points(queue).query("kind == 'reordered'")
    assert int(marks["count"].sum()) == reordered
    (x,) = _gid(fig, "order:reordered", PathCollection)
    assert len(x.get_offsets()) == len(marks)
    assert set(marks["cause"]) == {"competing consumers"}
    assert f"{reordered} of" in fig.axes[0].get_title(loc="left")
    assert "no partitions in this run" in _texts(vo.partition_assignment(queue)).replace(
        "\n", " ")
    fig = vo.key_order(sharded)
    assert not _gid(fig, "order:reordered")
    assert fig.axes[0].get_title(loc="left").startswith("Per-key order kept")


def test_eager_stops_every_partition_and_cooperative_only_those_that_move(
        runs: dict[str, Result]) -> None:
    eager = vo.partition_assignment(runs["rebalance"]).axes[0].get_title(loc="left")
    assert eager.startswith("Partition owners: each of") and eager.endswith(
        "stopped all 6 partitions")
    coop = vo.partition_assignment(runs["cooperative"]).axes[0].get_title(loc="left")
    assert "on average" in coop
    stopped = float(coop.split(" stopped ")[1].split(" of ")[0])
    assert 0 < stopped < 6


def test_the_figures_hold_the_results_numbers(runs: dict[str, Result]) -> None:
    res = runs["delivery-guarantees"]
    causes = res.delivery_causes()
    fig = vo.delivery_causes(res)
    drawn = sum(float(p.vertices[:, 0].max() - p.vertices[:, 0].min())
                for c in _gid(fig, "cause:", PolyCollection) for p in c.get_paths())
    assert drawn == causes["count"].sum() > 0
    lag = res.consumer_lag()
    fig = vo.consumer_lag(res)
    peak = max(float(np.max(line.get_ydata())) for line in _gid(fig, "lag:", Line2D))
    assert peak == lag["lag"].max()
    assert f"{int(peak):,} records" in fig.axes[0].get_title(loc="left")


def test_the_outbox_relays_repeats_are_the_records_it_sent_twice(runs: dict[str, Result]
                                                                  ) -> None:
    res = runs["outbox"]
    twice = {rid for rid, n in vo._relay_sends(res).items() if n > 1}
    applied = res.outbox_lag().dropna(subset=["committed", "applied"])
    want = int(applied["record_id"].isin(twice).sum())
    assert want > 0  # the default run shows the relay's crash-after-publish duplicate
    fig = vo.outbox_lag(res)
    assert len(_line(fig, "again").get_xdata()) == want
    assert f"{want} sent twice" in fig.axes[0].get_title(loc="left")


@pytest.mark.parametrize(("name", "knobs"), [
    ("order-lifecycle", {"channel": "sharded"}),
    ("rebalance", {"assignor": "cooperative-sticky"}),
    ("delivery-guarantees", {"commit": "before"}),
    ("outbox", {"design": "dual-write"}),
])
def test_each_scenario_opens_in_explore_and_redraws_on_a_change(name: str,
                                                                 knobs: dict[str, Any]) -> None:
    """The mission's toggle, literally: one dashboard, a knob moved, the figures and
    the records' numbers drawn again."""
    from simcomm.widgets import explore

    dash = explore(name, until=20.0)
    assert dash.error is None and dash.views == simcomm.api.base.get(name).views
    before = {v: bytes(img.value) for v, img in dash.images.items()}
    dash.update(**knobs)
    assert dash.error is None and dash.runs == 2
    assert any(bytes(dash.images[v].value) != before[v] for v in dash.views)
    assert "data-key='records_produced'" in dash.summary.value
