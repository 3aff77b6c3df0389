"""The ``formats`` scenario and its format table."""

from __future__ import annotations

import pytest

import simcomm
from simcomm.engine.formats import FORMATS
from simcomm.errors import OverloadWarning
from simcomm.scenarios import formats as fs
from simcomm.sweeps import format_sweep


def _run(**params):
    return simcomm.run("formats", seed=3, **params)


def test_registered_and_described():
    assert "formats" in simcomm.scenarios()
    fields = {d["field"]: d for d in simcomm.describe("formats")}
    for name in ("request_rate", "message_format", "order_lines", "bandwidth_mbps",
                 "network_latency", "gateway_workers", "service_workers", "service_time"):
        assert name in fields
        assert fields[name]["help"]
    assert fields["order_lines"]["default"] >= 1
    assert "1 to 2000" in fields["order_lines"]["allowed"]
    assert fields["bandwidth_mbps"]["unit"] == "Mbit/s"


def test_default_run_completes_every_order_without_failures():
    # its speed is measured by benchmarks/bench_dashboard.py, not asserted here
    s = simcomm.run("formats", seed=1).summary()
    assert s["completed"] > 500
    assert s["failed"] == 0


def test_ledger_balances():
    res = _run(message_format="xml", order_lines=500)
    assert res.ledger()["balanced"]


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_bytes_on_the_wire_match_the_size_model(fmt):
    lines = 37
    res = _run(message_format=fmt, order_lines=lines, until=5.0)
    tr = res.trace
    sends = tr[tr["event"] == "send"]
    body = fs.order(lines)
    want_request = FORMATS[fmt].size(body)
    want_reply = FORMATS[fmt].size(fs.order_reply(body))
    requests = sends[sends["kind"] != "reply"]
    replies = sends[sends["kind"] == "reply"]
    assert len(requests) > 0 and len(replies) > 0
    assert set(requests["size"]) == {want_request}
    assert set(replies["size"]) == {want_reply}
    # and the table shows the same number
    table = fs.format_table(lines).set_index("format")
    assert table.loc[fmt, "bytes"] == want_request


def test_sizes_order_as_the_encodings_say():
    t = fs.format_table(2000).set_index("format")["bytes"]
    assert t["xml"] > t["json"] > t["protobuf"] > t["avro"]
    # names travel in JSON, not in the binary formats: at least twice the size
    assert t["json"] > 2 * t["protobuf"]


def test_format_table_columns_and_costs():
    df = fs.format_table(100, bandwidth_mbps=8)
    assert list(df["format"]) == list(FORMATS)
    assert {"bytes", "vs_json", "encode_s", "decode_s", "cpu_s", "transmit_s"} <= set(df)
    row = df.set_index("format").loc["json"]
    assert row["vs_json"] == 1.0
    fmt = FORMATS["json"]
    assert row["cpu_s"] == pytest.approx(fmt.encode_cost(row["bytes"])
                                         + fmt.decode_cost(row["bytes"]))
    # 8 Mbit/s is 1 byte per microsecond
    assert row["transmit_s"] == pytest.approx(row["bytes"] * 1e-6)
    # any body works, and a subset of formats
    small = fs.format_table({"a": 1}, formats=["protobuf", "avro"])
    assert list(small["format"]) == ["protobuf", "avro"]
    assert "vs_json" not in small


def test_order_payload_is_deterministic_and_sized_by_lines():
    assert fs.order(5) == fs.order(5)
    assert len(fs.order(1)["lineItems"]) == 1
    assert len(fs.order(2000)["lineItems"]) == 2000
    with pytest.raises(simcomm.ParamError, match="order_lines"):
        fs.order(0)


def test_xml_is_slower_than_protobuf_with_a_large_payload():
    common = dict(order_lines=2000, request_rate=50.0, until=30.0)
    xml = _run(message_format="xml", **common).summary()
    proto = _run(message_format="protobuf", **common).summary()
    assert xml["mean_latency"] > 1.5 * proto["mean_latency"]


def test_latency_grows_with_payload_and_shrinks_with_bandwidth():
    small = _run(order_lines=10, until=20.0).summary()["mean_latency"]
    large = _run(order_lines=2000, until=20.0).summary()["mean_latency"]
    assert large > small
    # at 2 orders/s, well below the 10 Mbit/s link's ceiling of ~8.6 (no backlog):
    # 4 hops of ~146 kB at 10 Mbit/s is ~0.47 s of transmission alone
    slow = _run(order_lines=2000, bandwidth_mbps=10.0, request_rate=2.0,
                until=20.0).summary()["mean_latency"]
    fast = _run(order_lines=2000, bandwidth_mbps=10_000.0, request_rate=2.0,
                until=20.0).summary()["mean_latency"]
    assert slow > fast + 0.4


def test_codec_cpu_lowers_the_saturation_point():
    # 4 service workers, 10 ms business logic + ~10 ms XML coding of 2000 lines:
    # about 200 orders/s for XML, about 390 for protobuf.  At 300 orders/s XML
    # falls behind and protobuf keeps up.
    common = dict(order_lines=2000, request_rate=300.0, until=15.0,
                  bandwidth_mbps=10_000.0, gateway_workers=200)
    with pytest.warns(OverloadWarning, match="order-1's workers are 100 % busy"):
        xml = _run(message_format="xml", **common)
    proto = _run(message_format="protobuf", **common)
    assert proto.summary()["throughput"] > 1.3 * xml.summary()["throughput"]
    assert xml.utilisation()[fs.SERVICE] > 0.95
    assert proto.utilisation()[fs.SERVICE] < 0.9


def test_same_seed_same_run():
    a = _run(message_format="avro", until=10.0)
    b = _run(message_format="avro", until=10.0)
    assert a.fingerprint() == b.fingerprint()


@pytest.mark.parametrize("field, value", [
    ("message_format", "yaml"),
    ("order_lines", 0),
    ("order_lines", 2001),
    ("order_lines", 2.5),
    ("bandwidth_mbps", 0.5),
    ("bandwidth_mbps", 20_000.0),
    ("request_rate", -1.0),
    ("network_latency", "fast"),
    ("service_workers", 0),
])
def test_bad_params_name_the_field(field, value):
    with pytest.raises(simcomm.ParamError) as info:
        simcomm.run("formats", **{field: value})
    assert info.value.field == field
    assert field in str(info.value)


def test_format_table_rejects_bad_input():
    with pytest.raises(simcomm.ParamError, match="formats='yaml'"):
        fs.format_table(10, formats=["yaml"])
    with pytest.raises(simcomm.ParamError, match="bandwidth_mbps"):
        fs.format_table(10, bandwidth_mbps=0)
    with pytest.raises(simcomm.ParamError, match="order_lines"):
        fs.format_table(5000)


def test_format_sweep_rows_and_attrs():
    df = format_sweep("request_rate", [20.0, 40.0], formats=["json", "avro"],
                      until=5.0, order_lines=50)
    assert list(df["format"]) == ["json", "json", "avro", "avro"]
    assert list(df["request_rate"]) == [20.0, 40.0, 20.0, 40.0]
    assert {"mean_latency", "p95", "throughput", "offered", "pending", "gateway_busy",
            "service_busy"} <= set(df)
    assert df.attrs["field"] == "request_rate"
    assert df.attrs["params"] == {"order_lines": 50}
    # same seed for every run: doubling the rate roughly doubles the offered load
    json_rows = df[df["format"] == "json"]
    assert json_rows["offered"].iloc[1] > 1.5 * json_rows["offered"].iloc[0]
    assert ((df["service_busy"] > 0) & (df["service_busy"] <= 1)).all()
    assert {"bottleneck", "bottleneck_busy"} <= set(df)


def test_format_sweep_names_each_run_s_bottleneck_and_does_not_warn():
    """Past the ceilings on purpose: the rows name the bottleneck, no warning per run."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        df = format_sweep("bandwidth_mbps", [100.0, 10_000.0], formats=["xml"],
                          order_lines=2000, request_rate=300.0, until=3.0)
    slow, fast = df.iloc[0], df.iloc[1]
    assert "→" in slow["bottleneck"] and slow["bottleneck_busy"] > 0.99  # a link
    assert fast["bottleneck"] == fs.SERVICE and fast["bottleneck_busy"] > 0.95
    with pytest.raises(simcomm.ParamError, match="progress"):
        format_sweep("request_rate", [10.0], progress="yes")


def test_format_sweep_checks_everything_before_running(monkeypatch):
    import simcomm.api

    calls = []
    monkeypatch.setattr(simcomm.api, "simulate", lambda *a, **k: calls.append(a))
    with pytest.raises(simcomm.ParamError) as info:
        format_sweep("bandwidth_mbps", [100.0, 0.5])
    assert info.value.field == "bandwidth_mbps"
    with pytest.raises(simcomm.ParamError, match="message_format"):
        format_sweep("request_rate", [10.0], message_format="xml")
    with pytest.raises(simcomm.ParamError, match="nonsense"):
        format_sweep("nonsense", [1])
    with pytest.raises(simcomm.ParamError, match="request_rate"):
        format_sweep("request_rate", [])
    assert calls == []


def test_viz_formats_figures():
    from simcomm.viz.formats import FORMAT_COLORS, formats_comparison, formats_sweep_figure

    fig = formats_comparison(fs.format_table(100, bandwidth_mbps=100))
    assert len(fig.axes) == 3
    bars = [p for p in fig.axes[0].patches]
    assert [b.get_facecolor()[:3] for b in bars] == [
        tuple(int(FORMAT_COLORS[f][i:i + 2], 16) / 255 for i in (1, 3, 5)) for f in FORMATS]
    assert len(formats_comparison(fs.format_table(100)).axes) == 2
    df = format_sweep("request_rate", [20.0, 40.0], formats=["json", "xml"], until=5.0)
    fig = formats_sweep_figure(df)
    assert len(fig.axes) == 2
    gids = {line.get_gid() for ax in fig.axes for line in ax.get_lines()}
    assert {"mean_latency:json", "throughput:xml", "offered"} <= gids
    assert len(formats_sweep_figure(df, panels="service_busy").axes) == 1
    with pytest.raises(simcomm.ParamError, match="df"):
        formats_sweep_figure(df, panels=("no_such_column",))
    with pytest.raises(simcomm.ParamError, match="df"):
        formats_comparison(df)


# -- the format list and the bandwidth are checked, not guessed at ------------

@pytest.mark.parametrize("make", [
    lambda **kw: fs.format_table(10, **kw),
    lambda **kw: fs.format_ceilings(10, **kw),
    lambda **kw: format_sweep("request_rate", [10.0], until=1.0, **kw),
], ids=["format_table", "format_ceilings", "format_sweep"])
@pytest.mark.parametrize("formats", [[], (), "json", "protobuf", b"json"])
def test_an_empty_list_or_a_string_of_formats_is_refused(make, formats, monkeypatch):
    """An empty list used to crash (UnboundLocalError, KeyError) and a string
    was read as a list of letters; both are a ParamError naming ``formats``."""
    import simcomm.api

    monkeypatch.setattr(simcomm.api, "simulate", lambda *a, **k: pytest.fail("ran"))
    with pytest.raises(simcomm.ParamError) as info:
        make(formats=formats)
    assert info.value.field == "formats"
    assert "list" in info.value.allowed


def test_one_format_in_a_list_is_fine():
    assert list(fs.format_table(10, formats=["xml"])["format"]) == ["xml"]
    assert list(fs.format_ceilings(10, formats=("avro",))["format"]) == ["avro"]
    with pytest.raises(simcomm.ParamError, match="formats='yaml'"):
        fs.format_table(10, formats=["json", "yaml"])


@pytest.mark.parametrize("bandwidth", [True, False, float("inf"), float("-inf"),
                                       float("nan"), 10**400, 0, -5.0, "100", [100]])
def test_format_table_bandwidth_must_be_a_finite_positive_number(bandwidth):
    with pytest.raises(simcomm.ParamError) as info:
        fs.format_table(10, bandwidth_mbps=bandwidth)
    assert info.value.field == "bandwidth_mbps"


@pytest.mark.parametrize("bandwidth", [True, float("inf"), float("nan"), 10**400, 0.5, "100"])
def test_format_ceilings_and_sweep_check_bandwidth_like_the_scenario(bandwidth):
    with pytest.raises(simcomm.ParamError) as info:
        fs.format_ceilings(10, bandwidth)
    assert info.value.field == "bandwidth_mbps"
    with pytest.raises(simcomm.ParamError) as info:
        format_sweep("request_rate", [10.0], bandwidth_mbps=bandwidth, until=1.0)
    assert info.value.field == "bandwidth_mbps"


def test_numpy_numbers_work_as_order_lines_and_bandwidth():
    np = pytest.importorskip("numpy")
    table = fs.format_table(np.int64(20), bandwidth_mbps=np.float64(8.0))
    assert table.equals(fs.format_table(20, bandwidth_mbps=8.0))
    assert fs.order(np.int64(3)) == fs.order(3)


def test_format_sweep_refuses_the_swept_field_as_a_setting_and_a_string_of_values():
    with pytest.raises(simcomm.ParamError) as info:
        format_sweep("request_rate", [10.0], request_rate=20.0)
    assert info.value.field == "request_rate"
    with pytest.raises(simcomm.ParamError) as info:
        format_sweep("order_lines", "123")
    assert info.value.field == "order_lines"


# -- the ceilings: what a link and a pool of workers can carry -----------------

def test_link_ceiling_is_bandwidth_over_the_bytes_of_the_bigger_message():
    """Each link direction carries one message per order; the reply (the order
    plus its state) is the bigger one, so it fills its links first."""
    df = fs.format_ceilings(2000, 100.0).set_index("format")
    for name, fmt in FORMATS.items():
        body = fs.order(2000)
        request, reply = fmt.size(body), fmt.size(fs.order_reply(body))
        row = df.loc[name]
        assert reply > request
        assert (row["request_bytes"], row["reply_bytes"]) == (request, reply)
        assert row["link_ceiling"] == pytest.approx(100e6 / 8 / reply)
    # twice the bandwidth, twice the link ceiling; the CPU does not care
    fast = fs.format_ceilings(2000, 200.0).set_index("format")
    assert (fast["link_ceiling"] / df["link_ceiling"]).to_numpy() == pytest.approx(2.0)
    assert (fast["cpu_ceiling"] == df["cpu_ceiling"]).all()


def test_cpu_ceiling_is_workers_over_cpu_per_order_on_the_busiest_pool():
    df = fs.format_ceilings(2000, 100.0, service_workers=4, service_time=0.01)
    row = df.set_index("format").loc["xml"]
    xml = FORMATS["xml"]
    request, reply = row["request_bytes"], row["reply_bytes"]
    service = xml.decode_cost(request) + 0.01 + xml.encode_cost(reply)
    gateway = (0.001 + xml.decode_cost(request) + xml.encode_cost(request)
               + xml.decode_cost(reply) + xml.encode_cost(reply))
    assert row["service_cpu_s"] == pytest.approx(service)
    assert row["gateway_cpu_s"] == pytest.approx(gateway)
    assert row["cpu_pool"] == fs.SERVICE
    assert row["cpu_ceiling"] == pytest.approx(4 / service)
    assert row["cpu_ceiling"] == pytest.approx(200, rel=0.01)  # 4 workers, ~20 ms each
    # double the workers, double the ceiling
    more = fs.format_ceilings(2000, 100.0, ["xml"], service_workers=8).iloc[0]
    assert more["cpu_ceiling"] == pytest.approx(2 * row["cpu_ceiling"])


def test_the_lowest_ceiling_binds_and_the_crossover_is_where_link_meets_cpu():
    slow = fs.format_ceilings(2000, 100.0).set_index("format")
    fast = fs.format_ceilings(2000, 10_000.0).set_index("format")
    assert (slow["binds"] == "link").all() and (fast["binds"] == "cpu").all()
    assert (slow["ceiling"] == slow["link_ceiling"]).all()
    assert (fast["ceiling"] == fast["cpu_ceiling"]).all()
    for name in FORMATS:
        cross = slow.loc[name, "crossover_mbps"]
        at = fs.format_ceilings(2000, cross, [name]).iloc[0]
        assert at["link_ceiling"] == pytest.approx(at["cpu_ceiling"])
        assert fs.format_ceilings(2000, 0.9 * cross, [name]).iloc[0]["binds"] == "link"
        assert fs.format_ceilings(2000, 1.1 * cross, [name]).iloc[0]["binds"] == "cpu"


def test_few_gateway_workers_are_held_by_the_call_and_bind_first():
    row = fs.format_ceilings(2000, 10_000.0, ["json"], gateway_workers=4).iloc[0]
    assert row["binds"] == "gateway workers"
    assert row["ceiling"] == pytest.approx(4 / row["hold_s"])
    assert row["hold_s"] > row["gateway_cpu_s"] + row["service_cpu_s"]


def test_format_ceilings_checks_its_settings_like_the_scenario():
    for field, value in [("order_lines", 0), ("service_workers", 0), ("gateway_workers", 2.5),
                         ("service_time", -1.0), ("network_latency", "x")]:
        with pytest.raises(simcomm.ParamError) as info:
            fs.format_ceilings(**{field: value})
        assert info.value.field == field


def test_capacity_is_the_binding_ceiling_of_the_chosen_format():
    p = fs.Params(message_format="protobuf", order_lines=2000, bandwidth_mbps=100.0)
    want = fs.format_ceilings(2000, 100.0, ["protobuf"]).iloc[0]["ceiling"]
    assert fs.capacity(p) == pytest.approx(want)
    if hasattr(fs.SCENARIO, "capacity"):
        assert fs.SCENARIO.capacity is fs.capacity


def _steady_throughput(res, warmup):
    """Completed requests per second after ``warmup`` s (the empty start excluded)."""
    r = res.requests
    done = r[(r["outcome"] == "ok") & (r["end"] >= warmup)]
    return len(done) / (res.until - warmup)


@pytest.mark.parametrize("bandwidth, kwargs, rel", [
    # the link: transmission times are fixed, so the flat throughput is tight
    (100.0, {}, 0.01),
    # the order service's CPU: exponential service times, ~3000 orders in 15 s
    (10_000.0, {}, 0.05),
    # the gateway's workers, held by each call
    (10_000.0, {"gateway_workers": 4}, 0.05),
])
def test_an_overloaded_run_flattens_at_the_predicted_ceiling(bandwidth, kwargs, rel):
    row = fs.format_ceilings(2000, bandwidth, ["xml"], **kwargs).iloc[0]
    # the run says so, naming the scenario's own capacity
    with pytest.warns(OverloadWarning,
                      match=f"a capacity of about {row['ceiling']:.3g} req/s"):
        res = _run(message_format="xml", order_lines=2000, bandwidth_mbps=bandwidth,
                   request_rate=1.5 * row["ceiling"], until=20.0, **kwargs)
    assert _steady_throughput(res, 5.0) == pytest.approx(row["ceiling"], rel=rel)
    assert res.summary()["capacity"] == pytest.approx(row["ceiling"])
    neck = res.bottleneck()
    if row["binds"] == "link":
        assert neck["kind"] == "link" and neck["utilisation"] > 0.99
    else:
        pool = fs.SERVICE if row["binds"] == "cpu" else fs.GATEWAY
        assert neck["resource"] == pool and neck["utilisation"] > 0.99
