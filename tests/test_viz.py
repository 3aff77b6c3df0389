"""simcomm.viz: every figure is a bare Figure with the artists it promises."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
from types import SimpleNamespace

import matplotlib
import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch

import simcomm
from simcomm import viz
from simcomm.analysis import theory
from simcomm.engine import Instance, OpenLoop, World
from simcomm.engine.workload import RateSchedule
from simcomm.errors import ParamError
from simcomm.result import Result
from simcomm.sweeps import theory_sweep

CHAIN_NODES = ["users", "api-gateway-1", "order-1", "payment-1", "kitchen-1"]


# -- runs shared by the tests -------------------------------------------------------
@pytest.fixture(scope="module")
def chain() -> Result:
    return simcomm.run("chain", seed=0)


@pytest.fixture(scope="module")
def hang() -> Result:
    return simcomm.run("chain", seed=0, until=80, last_service_hangs=True, hang_at=20,
                       hang_duration=30, service_availability=1.0)


@pytest.fixture(scope="module")
def mmc3() -> Result:
    return simcomm.run("mmc", seed=1, until=3000, servers=3, arrival_rate=2.0)


@pytest.fixture(scope="module")
def lossy() -> Result:
    """A world whose link loses a third of the messages, both ways."""
    w = World(seed=3)
    Instance(w, "server-1", workers=2, service_time=0.05)
    OpenLoop(w, "users", "server-1", 4.0, patience=1.0)
    w.network.link("users", "server-1", latency=0.01, loss=0.3)
    w.run(30)
    return Result(w)


def _by_gid(fig: Figure, prefix: str, kind: type = object) -> list:
    return [a for ax in fig.axes for a in ax.get_children()
            if isinstance(a, kind) and (a.get_gid() or "").startswith(prefix)]


def _labelled(ax) -> None:
    assert ax.get_xlabel() and ax.get_ylabel()


# -- packaging and global state -----------------------------------------------------
def test_import_simcomm_does_not_import_matplotlib():
    code = "import simcomm, sys; assert 'matplotlib' not in sys.modules, 'matplotlib'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_viz_does_not_import_pyplot():
    code = ("import simcomm.viz, sys; "
            "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_no_pyplot_figures_and_no_rcparams_change(chain, mmc3, lossy):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    rc = dict(matplotlib.rcParams)
    figs = [viz.view(name, chain) for name in chain.scenario.views]
    figs += [viz.view(name, mmc3) for name in mmc3.scenario.views]
    figs += [viz.sequence_diagram(lossy), viz.topology(chain, color_by="health")]
    assert all(isinstance(f, Figure) for f in figs)
    assert plt.get_fignums() == before
    assert dict(matplotlib.rcParams) == rc
    for f in figs:
        viz.close(f)
        assert not f.axes


# -- the registry -------------------------------------------------------------------
def test_views_cover_every_scenario_view():
    for name in simcomm.scenarios():
        sc = simcomm.api.base.get(name)
        assert set(sc.views) <= set(viz.VIEWS), name


def test_unknown_view_is_a_clear_error(chain):
    with pytest.raises(ParamError) as err:
        viz.view("latency_over_tim", chain)
    msg = str(err.value)
    assert "latency_over_tim" in msg and "latency_over_time" in msg and "topology" in msg


# -- time series --------------------------------------------------------------------
def test_latency_over_time(chain):
    fig = viz.latency_over_time(chain)
    (ax,) = fig.axes
    _labelled(ax)
    assert "latency" in ax.get_title(loc="left").lower()
    rq = chain.requests
    ok = _by_gid(fig, "outcome:ok", Line2D)[0]
    assert len(ok.get_xdata()) == int((rq["outcome"] == "ok").sum())
    assert {"p50", "p99"} <= {a.get_gid() for a in ax.patches}
    assert ax.get_legend() is not None


def test_binned_percentiles_agree_with_pandas():
    import pandas as pd

    from simcomm.viz.timeseries import binned_percentiles

    rng = np.random.default_rng(7)
    start = rng.uniform(-1, 61, 400)  # some outside the bins
    lat = np.round(rng.exponential(0.1, 400), 2)  # with ties
    edges = np.arange(0.0, 61.0, 5.0)
    got = binned_percentiles(start, lat, edges, (50, 99))
    idx = np.searchsorted(edges, start, side="right") - 1
    groups = pd.Series(lat).groupby(idx)
    for q in (50, 99):
        want = groups.quantile(q / 100).reindex(range(len(edges) - 1))
        want[groups.size().reindex(range(len(edges) - 1), fill_value=0) < 5] = np.nan
        np.testing.assert_allclose(got[q], want.to_numpy(), rtol=1e-12)
    sparse = binned_percentiles(np.array([1.0, 2.0]), np.array([0.1, 0.2]), edges, (50,))
    assert np.isnan(sparse[50]).all()  # fewer than five a bin: no line


def test_latency_shades_faults_and_goes_log_for_a_hang(hang):
    fig = viz.latency_over_time(hang)
    (ax,) = fig.axes
    assert ax.get_yscale() == "log"
    (band,) = _by_gid(fig, "fault:hung", PolyCollection)
    (verts,) = band.get_paths()[0].vertices[None]  # one hang: one rectangle
    assert verts[:, 0].min() == pytest.approx(20.0)
    assert verts[:, 0].max() == pytest.approx(50.0)
    intervals = viz.fault_intervals(hang)
    assert intervals[["node", "kind"]].values.tolist() == [["kitchen-1", "hung"]]


def test_latency_title_says_what_did_not_finish_beside_availability():
    res = simcomm.run("mmc", seed=1, until=300, arrival_rate=2.0, warn=False)
    pending = int((res.requests["outcome"] == "pending").sum())
    title = viz.latency_over_time(res).axes[0].get_title(loc="right")
    assert "availability 100.0 %" in title
    assert f"{100 * pending / len(res.requests):.0f} % still pending" in title
    w = World(seed=1)  # nothing left over: nothing said
    Instance(w, "server-1", workers=1, service_time=0.01)
    OpenLoop(w, "users", "server-1", RateSchedule([(0.0, 1.0), (50.0, 0.0)]))
    w.network.link("users", "server-1", latency=0.001)
    w.run(60)
    calm = Result(w)
    assert not (calm.requests["outcome"] == "pending").any()
    assert "pending" not in viz.latency_over_time(calm).axes[0].get_title(loc="right")


def test_latency_into_given_axes(chain):
    fig = Figure()
    ax = fig.add_subplot()
    assert viz.latency_over_time(chain, ax=ax) is fig
    assert fig.axes == [ax]


def test_outcomes_over_time(hang):
    fig = viz.outcomes_over_time(hang, bin=5)
    (ax,) = fig.axes
    _labelled(ax)
    assert "req/s" in ax.get_ylabel()
    rates = viz.outcome_rates(hang, bin=5)
    # by start time, every request is in exactly one bin and one outcome
    assert (rates.to_numpy() * 5).sum() == pytest.approx(len(hang.requests))
    assert {"ok", "abandoned"} <= set(rates.columns)
    gids = {a.get_gid() for a in ax.patches}
    assert {f"outcome:{o}" for o in rates.columns} <= gids
    with pytest.raises(ParamError):
        viz.outcomes_over_time(hang, bin=0)


def _pool_rows(fig: Figure) -> list:
    """The rows of a pool figure (each has a twin for its queue, labelled "queue")."""
    return [ax for ax in fig.axes if ax.get_label() != "queue"]


def test_pool_usage_one_row_per_instance(chain, hang):
    fig = viz.pool_usage(chain)
    inst = [n for n in CHAIN_NODES if n != "users"]
    assert len(_pool_rows(fig)) == len(inst)
    for ax, name in zip(_pool_rows(fig), inst, strict=True):
        assert name in ax.get_title(loc="left")
        assert ax.get_ylabel()
        (pool,) = [ln for ln in ax.get_lines() if ln.get_gid() == "pool_size"]
        assert pool.get_ydata()[0] == chain.world.nodes[name].workers
    assert _pool_rows(fig)[-1].get_xlabel() == "time (s)"
    fig = viz.pool_usage(hang, nodes=["kitchen-1"])
    assert len(_pool_rows(fig)) == 1
    assert _by_gid(fig, "fault:hung", PolyCollection)
    with pytest.raises(ParamError):
        viz.pool_usage(chain, nodes=["nope-1"])
    own = Figure()
    ax = own.add_subplot()
    assert viz.pool_usage(chain, nodes=["order-1"], ax=ax) is own and _pool_rows(own) == [ax]


def test_a_long_queue_has_its_own_scale_and_does_not_flatten_the_workers():
    """The hung chain's gateway queues ~300 requests on 10 workers: the busy
    workers keep the left scale (0 .. a bit over the pool), the queue gets the
    twin's right-hand scale, stretched to hold it."""
    res = simcomm.run("chain", seed=1, until=100, last_service_hangs=True)
    fig = viz.pool_usage(res, nodes=["api-gateway-1", "kitchen-1"])
    gateway = _pool_rows(fig)[0]
    queue_axes = [ax for ax in fig.axes if ax.get_label() == "queue"]
    assert len(queue_axes) == 2 and queue_axes[0].get_shared_x_axes().joined(
        queue_axes[0], gateway)
    longest = int(res.pools.query("node == 'api-gateway-1'")["queued"].max())
    assert longest > 200
    assert gateway.get_ylim()[1] == pytest.approx(1.15 * 10 + 0.3)  # workers keep their scale
    assert queue_axes[0].get_ylim()[1] >= longest
    (queue,) = [p for p in queue_axes[0].patches if p.get_gid() == "queued"]
    assert queue.get_data().values.max() == pytest.approx(longest, rel=0.02)  # bin means
    # a short queue (none here) reads on the same scale as the workers
    assert queue_axes[1].get_ylim() == pytest.approx(_pool_rows(fig)[1].get_ylim())


def test_queue_and_hang_band_have_clearly_different_named_colours():
    from matplotlib.colors import to_hex, to_rgb

    res = simcomm.run("chain", seed=1, until=100, last_service_hangs=True)
    fig = viz.pool_usage(res, nodes=["kitchen-1"])
    (queue,) = _by_gid(fig, "queued")
    bands = _by_gid(fig, "fault:hung", PolyCollection)
    assert bands
    queue_colour = to_hex(queue.get_edgecolor())
    band_colour = to_hex(bands[0].get_facecolor()[0], keep_alpha=False)
    assert viz.style.color_name(queue_colour) == "vermillion"
    assert viz.style.color_name(band_colour) == "yellow"
    assert viz.style.color_name(viz.style.POOL_COLORS["busy"]) == "blue"
    # far apart in colour, not neighbours like orange and yellow
    dist = np.linalg.norm(np.subtract(to_rgb(queue_colour), to_rgb(band_colour)))
    assert dist > 0.5
    # the docstring uses the same words, for notebooks to cite
    doc = viz.pool_usage.__doc__
    assert all(w in doc for w in ("blue area", "vermillion line", "yellow", "grey"))


# -- sequence diagram -----------------------------------------------------------------
def _messages_of_first(res: Result, n: int):
    ids = res.requests["request_id"].head(n)
    m = res.messages
    return m[m["trace_id"].isin(ids)]


def test_sequence_diagram_one_arrow_per_message(chain):
    fig = viz.sequence_diagram(chain, first=5)
    (ax,) = fig.axes
    arrows = _by_gid(fig, "message:", FancyArrowPatch)
    msgs = _messages_of_first(chain, 5)
    assert sorted(int(a.get_gid().split(":")[1]) for a in arrows) == sorted(msgs["message_id"])
    assert len(arrows) == len(msgs) == 5 * 8  # 4 hops there, 4 back
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == CHAIN_NODES  # lifelines in call order
    replies = [a for a in arrows if a.get_linestyle() == "--"]
    assert len(replies) == (msgs["kind"] == "reply").sum()
    assert ax.get_ylabel() and ax.get_title(loc="left")


def test_sequence_diagram_marks_each_drop(lossy):
    first = 12
    msgs = _messages_of_first(lossy, first)
    dropped = msgs[msgs["fate"] == "dropped"]
    assert len(dropped) >= 2  # the fixture is lossy enough to show some
    fig = viz.sequence_diagram(lossy, first=first)
    assert len(_by_gid(fig, "message:", FancyArrowPatch)) == len(msgs)
    (drops,) = _by_gid(fig, "drops", Line2D)
    assert len(drops.get_xdata()) == len(dropped)
    assert sorted(drops.get_ydata()) == pytest.approx(sorted(dropped["ended"]))
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert sum("loss" in t for t in texts) == len(dropped)


def test_sequence_diagram_compresses_a_hang(hang):
    fig = viz.sequence_diagram(hang, first=3, since=19.9)
    (ax,) = fig.axes
    assert ax.get_yscale() == "function"  # quiet gaps shortened
    assert any("later" in t.get_text() for t in ax.texts)
    with pytest.raises(ParamError):
        viz.sequence_diagram(hang, first=0)


def _overlaps(texts, fig) -> list[tuple[str, str]]:
    """Pairs of visible, non-empty texts whose drawn boxes overlap."""
    renderer = fig.canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts
             if t.get_visible() and t.get_text().strip()]
    return [(a, b) for (a, ba), (b, bb) in itertools.combinations(boxes, 2)
            if ba.overlaps(bb)]


@pytest.mark.parametrize("case", ["chain", "hang", "lossy"])
def test_sequence_labels_never_overlap(case, chain, lossy):
    """Requests sent a moment apart would put their numbers on top of each other;
    the diagram spreads them apart (in display space, after the scale is known)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    res, kw = {"chain": (chain, {}), "lossy": (lossy, {"first": 12}),
               "hang": (simcomm.run("chain", seed=1, last_service_hangs=True),
                        {"first": 6, "since": 39.5})}[case]
    fig = viz.sequence_diagram(res, **kw)
    FigureCanvasAgg(fig)
    (ax,) = fig.axes
    numbers = [t for t in ax.texts if (t.get_gid() or "").startswith("number:")]
    assert len(numbers) == kw.get("first", 10)
    assert _overlaps(ax.texts, fig) == []
    # and some did need spreading: at least two requests closer than a line apart
    wanted = sorted(float(res.requests.set_index("request_id").loc[int(t.get_text()), "start"])
                    for t in numbers)
    assert min(np.diff(wanted)) < 0.02 * (wanted[-1] - wanted[0]) or case == "lossy"


def test_sequence_replies_are_numbered_like_their_requests(chain):
    fig = viz.sequence_diagram(chain, first=4)
    (ax,) = fig.axes
    texts = {t.get_gid(): t for t in ax.texts}
    for rid, end in chain.requests.head(4)[["request_id", "end"]].itertuples(index=False):
        assert texts[f"number:{rid}"].get_text() == str(rid)
        reply = texts[f"outcome:{rid}"]
        assert reply.get_text() == f"{rid}'"
        assert reply.get_position()[1] == pytest.approx(end, abs=0.05)  # near its arrow


def test_sequence_says_how_a_request_without_a_reply_ended(hang):
    res = simcomm.run("chain", seed=1, last_service_hangs=True)
    fig = viz.sequence_diagram(res, first=6, since=39.5)
    words = [t.get_text() for t in fig.axes[0].texts]
    gave_up = [w for w in words if w.endswith("gave up")]
    assert gave_up and all("'" not in w for w in gave_up)  # no reply: no prime
    assert any(w.endswith("' too late") for w in words)  # the reply after giving up


def test_sequence_legend_lists_only_what_is_drawn(chain, lossy):
    fig = viz.sequence_diagram(chain, first=3)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["request ended ok", "request (solid)", "reply (dashed)",
                      "node working on it"]
    fig = viz.sequence_diagram(lossy, first=12, activations=False, color_by="request")
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert not any(lab.startswith("request ended") for lab in labels)  # colours are ids
    assert "node working on it" not in labels
    assert any(lab.startswith("dropped message (") for lab in labels)


def test_sequence_drawn_again_updates_in_place(chain):
    fig = Figure()
    ax = fig.add_subplot()
    viz.sequence_diagram(chain, first=3, ax=ax)
    arrows = _by_gid(fig, "message:", FancyArrowPatch)
    n = len(ax.get_children())
    viz.sequence_diagram(chain, first=3, ax=ax)
    assert len(ax.get_children()) == n
    assert _by_gid(fig, "message:", FancyArrowPatch) == arrows  # the same objects
    viz.sequence_diagram(chain, first=2, ax=ax)  # fewer requests: the rest is removed
    assert len(_by_gid(fig, "message:", FancyArrowPatch)) == 2 * 8


# -- topology -------------------------------------------------------------------------
def test_topology_nodes_and_edges(chain):
    fig = viz.topology(chain)
    ax = fig.axes[0]
    nodes = _by_gid(fig, "node:", Line2D)
    assert sorted(n.get_gid()[5:] for n in nodes) == sorted(chain.world.nodes)
    edges = {a.get_gid() for a in _by_gid(fig, "edge:", FancyArrowPatch)}
    assert edges == {f"edge:{u}->{v}" for u, v in itertools.pairwise(CHAIN_NODES)}
    assert ax.get_title(loc="left").startswith("Topology")
    g = viz.call_graph(chain)
    assert set(g.edges) == {(u, v) for u, v in itertools.pairwise(CHAIN_NODES)}
    xs = [g.nodes[n]["pos"][0] for n in CHAIN_NODES]
    assert xs == sorted(xs) and len(set(xs)) == len(xs)  # layered left to right


def test_topology_state_and_cheap_redraw(hang):
    st = viz.topology_state(hang, at=35, window=5)
    nodes, edges = st["nodes"], st["edges"]
    assert nodes.loc["kitchen-1", "health"] == "hung"
    assert nodes.loc["order-1", "health"] == "up"
    assert nodes.loc["payment-1", "utilisation"] == pytest.approx(1.0)  # stuck waiting
    assert math.isnan(nodes.loc["users", "utilisation"])
    e = edges.set_index(["source", "dest"])
    assert e.loc[("users", "api-gateway-1"), "rate"] > 5
    assert e.loc[("payment-1", "kitchen-1"), "calls"] == 0  # nothing gets through
    assert viz.topology_state(hang, at=70)["nodes"].loc["kitchen-1", "health"] == "up"

    fig = Figure()
    ax = fig.add_subplot()
    viz.topology(hang, at=10, ax=ax)
    n_children = len(ax.get_children())
    node = next(a for a in ax.lines if a.get_gid() == "node:payment-1")
    calm = node.get_markerfacecolor()
    assert viz.topology(hang, at=40, ax=ax) is fig
    assert len(ax.get_children()) == n_children  # updated in place, nothing added
    assert node.get_markerfacecolor() != calm
    with pytest.raises(ParamError):
        viz.topology_state(hang, at=1e9)


@pytest.mark.parametrize("depth", [1, 3, 4, 6])
def test_topology_text_is_readable_at_notebook_width(depth):
    """At most 9 in wide (a notebook column shows ~650 px without shrinking much),
    text of 8 pt or more, and no two texts on top of each other -- even in the
    longest chain, with a hang's long "busy · queued" labels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.text import Text

    res = simcomm.run("chain", seed=1, until=60, depth=depth, last_service_hangs=True,
                      hang_at=20)
    for at in (10.0, 45.0):
        fig = viz.topology(res, at=at)
        FigureCanvasAgg(fig)
        assert fig.get_figwidth() <= 9.0
        ax = fig.axes[0]
        texts = [t for t in ax.texts if t.get_text()]
        assert all(t.get_fontsize() >= 8 for t in texts)
        assert _overlaps([*texts, ax.title, ax._left_title], fig) == []
        # and nothing pokes out of the figure
        box = fig.bbox
        renderer = fig.canvas.get_renderer()
        for t in fig.findobj(Text):
            if t.get_visible() and t.get_text():
                e = t.get_window_extent(renderer)
                assert e.x0 >= box.x0 - 1 and e.x1 <= box.x1 + 1, t.get_text()


def test_topology_of_another_run_updates_the_same_artists(chain):
    other = simcomm.run("chain", seed=5)
    fig = viz.topology(chain)
    ax = fig.axes[0]
    node = next(a for a in ax.lines if a.get_gid() == "node:order-1")
    n = len(ax.get_children())
    assert viz.topology(other, ax=ax) is fig
    assert len(ax.get_children()) == n and node in ax.lines
    label = next(t for t in ax.texts if t.get_gid() == "label:order-1").get_text()
    busy = viz.topology_state(other)["nodes"].loc["order-1", "utilisation"]
    assert f"{100 * busy:.0f} % busy" in label
    deeper = simcomm.run("chain", seed=5, depth=4, until=20)  # other nodes: drawn afresh
    viz.topology(deeper, ax=ax)
    assert node not in ax.lines
    assert sorted(a.get_gid() for a in ax.lines) == sorted(
        f"node:{n}" for n in deeper.world.nodes)


# -- theory ---------------------------------------------------------------------------
@pytest.mark.parametrize(("dist", "servers"), [("exponential", 3), ("constant", 1),
                                                ("constant", 3)])
def test_theory_curve_matches_the_formulas(dist, servers):
    df = viz.theory_curve(servers, 2.0, dist, [0.2, 0.5, 0.8])
    for rho, w, wq in zip(df["utilisation"], df["response"], df["wait"], strict=True):
        lam = rho * servers * 2.0
        if dist == "exponential":
            expected = theory.mmc(lam, 2.0, servers).wait
        elif servers == 1:
            expected = theory.md1(lam, 2.0).wait
        else:  # Allen-Cunneen
            expected = theory.mmc(lam, 2.0, servers).wait * (1 + 0) / 2
        assert wq == pytest.approx(expected)
        assert w == pytest.approx(expected + 0.5)
    assert ("approximation" in df.attrs["model"]) == (dist == "constant" and servers > 1)


def test_theory_vs_simulation(mmc3, chain):
    fig = viz.theory_vs_simulation(mmc3)
    (ax,) = fig.axes
    _labelled(ax)
    (curve,) = [ln for ln in ax.get_lines() if ln.get_gid() == "theory_response"]
    rho, w = curve.get_xdata(), curve.get_ydata()
    for i in (0, 100, 250):
        assert w[i] == pytest.approx(theory.mmc(rho[i] * 3.0, 1.0, 3).response)
    (wait,) = [ln for ln in ax.get_lines() if ln.get_gid() == "theory_wait"]
    assert wait.get_ydata()[250] == pytest.approx(theory.mmc(rho[250] * 3.0, 1.0, 3).wait)
    assert "M/M/3" in curve.get_label()
    sim = [c for c in ax.containers if c.get_label().startswith("simulation")]
    assert len(sim) == 1
    x, y = sim[0].lines[0].get_data()
    assert x[0] == pytest.approx(2.0 / 3.0, abs=0.03)
    assert y[0] == pytest.approx(theory.mmc(2.0, 1.0, 3).response, rel=0.1)
    with pytest.raises(ParamError, match="mmc"):
        viz.theory_vs_simulation(chain)


def _unstable_band(ax) -> PolyCollection:
    (band,) = [c for c in ax.collections if c.get_gid() == "unstable"]
    return band


def test_theory_figure_says_how_much_warm_up_was_dropped(mmc3):
    """The point's mean leaves out the warm-up; the box says how much and gives
    the summary's mean beside it, so the two numbers can be reconciled."""
    fig = viz.theory_vs_simulation(mmc3, warmup=0.1)
    box = next(t for t in fig.axes[0].texts if t.get_gid() == "numbers").get_text()
    assert "first 10 % (300 s) dropped as warm-up" in box
    ok = mmc3.requests.query("outcome == 'ok'")
    kept = int((ok["start"] >= 300).sum())
    assert f"{kept:,} of {len(ok):,} ok requests".replace(",", " ") in box
    s = mmc3.summary()
    assert f"summary's mean latency = {s['mean_latency']:.4g} s" in box
    box0 = next(t for t in viz.theory_vs_simulation(mmc3, warmup=0).axes[0].texts
                if t.get_gid() == "numbers").get_text()
    assert "no warm-up dropped" in box0


def test_theory_marks_rho_at_least_one_unstable_and_plots_no_point_there():
    res = simcomm.run("mmc", seed=1, until=400, arrival_rate=2.0, service_rate=1.0,
                      warn=False)
    fig = viz.theory_vs_simulation(res)
    (ax,) = fig.axes
    band = _unstable_band(ax)
    xs = band.get_paths()[0].vertices[:, 0]
    assert xs.min() == pytest.approx(1.0) and xs.max() >= ax.get_xlim()[1]
    assert "unstable" in band.get_label() and band in ax.get_legend_handles_labels()[0]
    assert not [c for c in ax.containers if c.get_label().startswith("simulation")]
    assert not [ln for ln in ax.get_lines() if ln.get_gid() == "theory_point"]
    box = next(t for t in ax.texts if t.get_gid() == "numbers").get_text()
    assert "offered ρ = 2 ≥ 1: unstable" in box
    # the band is there for a stable run too, and its point sits left of it
    stable = viz.theory_vs_simulation(simcomm.run("mmc", seed=1, until=400))
    assert _unstable_band(stable.axes[0]) is not None


def test_theory_sweep_leaves_unstable_loads_out_and_says_so():
    from simcomm.errors import OverloadWarning

    with pytest.warns(OverloadWarning, match="overloaded"):  # the run at 1.25 says so too
        df = theory_sweep(utilisations=(0.5, 1.25), until=300)
    fig = viz.theory_sweep_figure(df)
    ax = fig.axes[0]
    (sim,) = [c for c in ax.containers if c.get_label().startswith("simulation")]
    assert list(sim.lines[0].get_xdata()) == [0.5]
    assert "ρ = 1.25" in next(t for t in ax.texts if t.get_gid() == "unstable_runs").get_text()
    assert _unstable_band(ax) is not None
    assert "first 10 % of each run (30 s) dropped as warm-up" in ax.get_title(loc="right")


def test_theory_drawn_again_updates_in_place(mmc3):
    fig = viz.theory_vs_simulation(mmc3)
    ax = fig.axes[0]
    n = len(ax.get_children())
    curve = next(ln for ln in ax.get_lines() if ln.get_gid() == "theory_response")
    viz.theory_vs_simulation(simcomm.run("mmc", seed=2, until=3000, servers=3,
                                         arrival_rate=2.0), ax=ax)
    assert len(ax.get_children()) == n and curve in ax.get_lines()
    assert len([c for c in ax.containers if c.get_label().startswith("simulation")]) == 1


def test_theory_sweep_small():
    df = theory_sweep(servers=2, service_rate=1.0, utilisations=(0.3, 0.6), until=800)
    assert list(df.columns) == ["utilisation", "arrival_rate", "sim_mean", "sim_se",
                                "theory", "requests"]
    assert df["theory"].tolist() == pytest.approx(
        [theory.mmc(lam, 1.0, 2).response for lam in (0.6, 1.2)])
    assert np.all(np.abs(df["sim_mean"] - df["theory"]) < 0.5)
    fig = viz.theory_sweep_figure(df)
    sim = [c for c in fig.axes[0].containers if c.get_label().startswith("simulation")]
    assert len(sim[0].lines[0].get_xdata()) == 2


# -- drawing again ----------------------------------------------------------------------
def _png(fig: Figure) -> bytes:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=50)
    return buf.getvalue()


@pytest.mark.parametrize("name", sorted(viz.VIEWS))
def test_redraw_into_a_used_figure_looks_exactly_like_a_fresh_one(name, hang):
    """The dashboards' fast path: a figure drawn for one run, then redrawn for
    another, holds the same artists and renders to the same pixels as a
    figure drawn for the second run from scratch."""
    if name == "theory_vs_simulation":
        first = simcomm.run("mmc", seed=1, until=300, arrival_rate=0.5)
        second = simcomm.run("mmc", seed=2, until=300, arrival_rate=0.8)
    else:  # a fault-free run, then one with a hang: bands and a log scale appear
        first, second = simcomm.run("chain", seed=0, until=80), hang
    fig = viz.redraw(name, first)
    again = viz.redraw(name, second, fig)
    assert again is fig
    fresh = viz.redraw(name, second)
    assert [len(ax.get_children()) for ax in fig.axes] == [
        len(ax.get_children()) for ax in fresh.axes]
    assert _png(fig) == _png(fresh)
    back = viz.redraw(name, first, fig)  # and back: what appeared goes again
    assert _png(back) == _png(viz.redraw(name, first))


def test_another_figure_drawn_on_the_same_axes_replaces_the_first(hang):
    fig = Figure()
    ax = fig.add_subplot()
    viz.latency_over_time(hang, ax=ax)  # log scale, points, percentile steps
    viz.outcomes_over_time(hang, ax=ax)
    fresh = viz.outcomes_over_time(hang)
    assert ax.get_yscale() == "linear" and not ax.lines
    assert sorted(p.get_gid() for p in ax.patches) == sorted(
        p.get_gid() for p in fresh.axes[0].patches)
    ax.patches[0].remove()  # an artist removed by hand is made again
    viz.outcomes_over_time(hang, ax=ax)
    assert len(ax.patches) == len(fresh.axes[0].patches)


def test_redraw_makes_a_new_figure_for_a_system_of_another_shape(chain):
    fig = viz.redraw("pool_usage", chain)
    deeper = simcomm.run("chain", seed=0, until=20, depth=5)
    other = viz.redraw("pool_usage", deeper, fig)
    assert other is not fig and len(_pool_rows(other)) == 6
    assert viz.redraw("latency_over_time", chain, fig) is not fig  # another view


@pytest.mark.parametrize("name", sorted(viz.VIEWS))
def test_axis_labels_are_placed_clear_of_the_tick_labels(name, hang, mmc3):
    """Labels are pinned (not measured on every draw, which is slow): they must
    still sit clear of the tick labels, and inside the figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    res = mmc3 if name == "theory_vs_simulation" else hang
    fig = viz.view(name, res)
    FigureCanvasAgg(fig).draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        for axis, ticks in ((ax.xaxis, ax.get_xticklabels()), (ax.yaxis, ax.get_yticklabels())):
            label = axis.label
            if not (label.get_visible() and label.get_text()):
                continue
            box = label.get_window_extent(renderer)
            assert fig.bbox.x0 - 1 <= box.x0 and box.x1 <= fig.bbox.x1 + 1, label.get_text()
            for t in ticks:
                if t.get_visible() and t.get_text():
                    assert not box.overlaps(t.get_window_extent(renderer)), (
                        label.get_text(), t.get_text())


def test_nice_top_rounds_up_to_a_round_limit():
    from simcomm.viz.data import nice_top

    assert [nice_top(x) for x in (0.17, 0.21, 0.3, 7.2, 96, 1000)] == [
        0.2, 0.25, 0.3, 8.0, 100.0, 1000.0]
    assert nice_top(0) == nice_top(float("inf")) == 1.0
    # runs of one setting share the latency axis
    tops = {viz.latency_over_time(simcomm.run("chain", seed=s, until=60)).axes[0].get_ylim()
            for s in range(4)}
    assert len(tops) < 4


def test_figure_arguments_take_numpy_numbers_and_refuse_flags(chain, hang):
    """A sweep over np.arange hands numpy numbers to the figures too (issue item 7)."""
    df = viz.theory_curve(np.int64(3), np.float64(1.0), "exponential", [0.5])
    assert df["response"].iloc[0] == pytest.approx(theory.mmc(1.5, 1.0, 3).response)
    fig = viz.sequence_diagram(chain, first=np.int64(2))
    assert len(_by_gid(fig, "message:", FancyArrowPatch)) == 2 * 8
    assert viz.outcome_rates(hang, bin=np.float64(5)).attrs["bin"] == 5.0
    viz.latency_over_time(hang, window=np.int64(5))
    assert viz.topology_state(hang, at=30, window=np.float32(5))["window"] == 5
    for bad in (True, 0, -1.0):
        with pytest.raises(ParamError):
            viz.sequence_diagram(chain, first=bad)
    with pytest.raises(ParamError):
        viz.theory_curve(True, 1.0)
    with pytest.raises(ParamError):
        viz.outcome_rates(hang, bin=float("inf"))


# -- display in Jupyter -----------------------------------------------------------------
def test_enable_inline_registers_a_png_formatter(monkeypatch):
    from IPython.core.formatters import DisplayFormatter

    from simcomm.viz import display

    assert display.enable_inline() is False  # not in a kernel: nothing to do
    shell = SimpleNamespace(display_formatter=DisplayFormatter(), kernel=object())
    monkeypatch.setattr(display, "_shell", lambda: shell)
    fig = Figure(figsize=(2, 1))
    fig.add_subplot().plot([0, 1])
    assert "image/png" not in shell.display_formatter.format(fig)[0]
    assert display.enable_inline() is True
    assert "image/png" in shell.display_formatter.format(fig)[0]


def test_a_figure_displays_inline_in_a_real_kernel():
    """The end-to-end check: a notebook cell ending in a viz Figure gives a PNG,
    with no pyplot import anywhere."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("import simcomm\nfrom simcomm import viz\n"
                                  "res = simcomm.run('mmc', until=50)\n"
                                  "viz.latency_over_time(res)"),
        nbformat.v4.new_code_cell("import sys\n'matplotlib.pyplot' in sys.modules"),
    ]
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    first, second = (c.outputs for c in nb.cells)
    assert any("image/png" in o.get("data", {}) for o in first)
    assert second[0]["data"]["text/plain"] == "False"
