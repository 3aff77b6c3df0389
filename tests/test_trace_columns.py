"""The trace in typed columns, and spilled to Parquet (issue 11, item 6).

A :class:`~simcomm.engine.trace.Table` takes tuples as the hot path appends
them and keeps them in typed columns (floats, the narrowest ints, strings
as codes into a dictionary, None as a mask); with ``spill`` it streams them
to Parquet files and reads them back when asked.  Checked here: any rows
of a table's column types come back the same (repr and all) through
memory and through Parquet, across chunk boundaries; values the columns
cannot hold are kept exactly; DataFrames built column by column equal
those pandas builds from the rows; a spilled chain run gives the same
tables, ledger, ``hops`` and fingerprint as one in memory; bad ``spill``
arguments are refused before time zero.
"""

from __future__ import annotations

import hashlib
import math
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simcomm
from simcomm.engine.trace import SCHEMAS, Table, Trace, check_spill
from simcomm.engine.world import World
from simcomm.errors import ParamError
from simcomm.result import Result

pa = pytest.importorskip("pyarrow")

VALUES = {
    "f": st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
    "i": st.one_of(st.none(), st.integers(-(1 << 63), (1 << 63) - 1),
                   st.integers(-300, 300)),
    "s": st.one_of(st.none(), st.sampled_from(["send", "deliver", "", "api-gateway-1"]),
                   st.text(max_size=8)),
    "o": st.one_of(st.none(), st.integers(-(1 << 63), (1 << 63) - 1), st.text(max_size=6)),
}


def rows_of(kinds: str) -> st.SearchStrategy[list[tuple]]:
    return st.lists(st.tuples(*(VALUES[k] for k in kinds)), max_size=40)


def table_and_rows() -> st.SearchStrategy[tuple[str, list[tuple]]]:
    return st.sampled_from(sorted(SCHEMAS)).flatmap(
        lambda name: st.tuples(st.just(name), rows_of(SCHEMAS[name][1])))


def filled(name: str, rows: list[tuple], tmp: Path | None = None, chunk: int = 7,
           group: int = 10) -> Table:
    """A table holding ``rows``, appended one by one and compacted as the world
    does (every few rows, and forced now and then as at the end of a slice of
    a run, which joins small chunks), spilled to ``tmp`` if given."""
    t = Table(name, chunk_rows=chunk, spill=tmp, row_group_rows=group)
    for i, row in enumerate(rows):
        t.append(row)
        if i % 5 == 4:
            t.compact()
        if i % 7 == 3:
            t.compact(force=True)
    return t


def frame_of(rows: list[tuple], name: str) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(SCHEMAS[name][0]))


# -- round trips -----------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(table_and_rows())
def test_rows_come_back_the_same_from_memory(case):
    name, rows = case
    t = filled(name, rows)
    assert repr(t) == repr(rows)  # values, their types, None, -0.0 and NaN
    assert len(t) == len(rows) and repr(list(t)) == repr(rows)
    t.compact(force=True)
    assert repr(t) == repr(rows)
    pd.testing.assert_frame_equal(t.to_frame(), frame_of(rows, name))
    if rows:
        k = len(rows) // 2
        assert repr((t[k], t[-1])) == repr((rows[k], rows[-1]))


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=table_and_rows())
def test_rows_come_back_the_same_from_parquet(tmp_path_factory, case):
    name, rows = case
    tmp = tmp_path_factory.mktemp("spill")
    t = filled(name, rows, tmp)
    t.flush()
    assert repr(t) == repr(rows)
    pd.testing.assert_frame_equal(t.to_frame(), frame_of(rows, name))
    if rows:  # the files are complete Parquet any reader can open
        assert pa.parquet.read_table(tmp / f"{name}.parquet").num_rows == len(rows)
    more = [rows[0]] * 3 if rows else []
    t.extend(more)  # rows after a read-back go to a new file
    t.flush()
    assert repr(t) == repr(rows + more)


def test_values_the_columns_cannot_hold_are_kept_exactly(tmp_path):
    odd = [(0.5, "send", 1, "command", "a", "b", 7, 10, "", None, "ok"),
           ("late", 3.5, 2.0, ("x", 1), None, b"raw", 7, 2**70, "x", 5, True),
           (float("nan"), "drop", -1, "reply", "b", "a", None, 0, "loss", -2, "error")]
    rows = odd * 5
    for tmp in (None, tmp_path):
        t = filled("messages", rows, tmp, chunk=4, group=6)
        t.flush()
        assert repr(t) == repr(rows)
        pd.testing.assert_frame_equal(t.to_frame(), frame_of(rows, "messages"))
        # a str UTF-8 cannot hold (pandas cannot build its frame either)
        events = [(1.0, "a", "crash", "\udcff"), (2.0, "\ud800x", "restart", "")] * 3
        t = filled("events", events, tmp and tmp / "events", chunk=2, group=4)
        t.flush()
        assert repr(t) == repr(events)


def test_a_value_equal_to_one_of_the_columns_type_comes_back_in_that_type():
    """An int in a float column (SimPy's time zero) comes back a float, numpy
    numbers as Python numbers: equal, as a list of tuples compared them."""
    t = Table("pools")
    rows = [(0, "srv", np.int64(1), 0), (np.float64(0.25), np.str_("srv"), True, 1)]
    t.extend(rows)
    t.compact(force=True)
    assert t == rows
    assert [tuple(map(type, r)) for r in t] == [(float, str, int, int)] * 2


def test_chunk_boundaries_and_small_chunks_merged():
    t = Table("events", chunk_rows=3)
    rows = [(float(i), f"n{i % 2}", "crash", f"d{i}") for i in range(10)]
    for row in rows:
        t.append(row)
        t.compact()  # at 3 rows
    assert [c.n for c in t._chunks] == [3, 3, 3] and len(t._buf) == 1
    for _ in range(5):
        t.compact(force=True)  # a small last chunk is merged, never piled up
    assert [c.n for c in t._chunks] == [3, 3, 3, 1] and t == rows
    t.append((10.0, "n0", "crash", "d10"))
    t.compact(force=True)
    assert [c.n for c in t._chunks] == [3, 3, 3, 2]
    assert t == [*rows, (10.0, "n0", "crash", "d10")]


def test_none_in_columns_and_the_frames_pandas_would_build():
    rows = [(1, "users", "gw", 0.5, None, "pending", None),
            (2, "users", "gw", 0.75, 1.0, "ok", None)]
    t = Table("requests")
    t.extend(rows)
    t.compact(force=True)
    df = t.to_frame()
    pd.testing.assert_frame_equal(df, frame_of(rows, "requests"))
    assert df["endpoint"].dtype == object and df["end"].isna().tolist() == [True, False]
    routes = Table("routes")
    routes.extend([(0.1, None, "gw", "svc", None, "client", 1, "no_instance", 0.1),
                   (0.2, 7, "gw", "svc", "svc-1", "client", 1, "ok", 0.3)])
    routes.compact(force=True)
    ints = routes.to_frame(dtypes={"trace_id": "Int64"})["trace_id"]
    assert str(ints.dtype) == "Int64" and ints.isna().tolist() == [True, False]
    assert routes.to_frame()["trace_id"].dtype == np.float64  # as pandas infers it


def test_strings_are_objects_where_pandas_keeps_objects(monkeypatch):
    """pandas 2 (Pyodide's) builds string columns from rows as objects, None
    kept: the frame does the same there."""
    import simcomm.engine.trace as trace_module

    monkeypatch.setattr(trace_module, "_string_dtype", lambda: np.dtype(object))
    t = Table("events")
    t.extend([(1.0, "a", "crash", None), (2.0, "b", "restart", "x")])
    t.compact(force=True)
    chunk = t._chunks[0]
    col = trace_module._frame_column("detail", [chunk.cols[3]], [chunk.n], t._strings[3], None)
    assert col.dtype == object and col.tolist() == [None, "x"]


def test_strings_are_stored_once_as_small_codes_and_rows_take_few_bytes():
    t = Table("messages")
    for i in range(20_000):
        t.append((i * 0.001, ("send", "deliver")[i % 2], 1 + i // 2, "command", f"svc-{i % 5}",
                  f"svc-{(i + 1) % 5}", 1 + i // 16, 339, "", None if i % 4 else i - 1, "ok"))
    t.compact(force=True)
    st_event = t._strings[1]
    assert st_event.values == [None, "deliver", "send"]  # None, then each string once
    data = sum(col.data.nbytes + (0 if col.nulls is None else col.nulls.nbytes)
               for c in t._chunks for col in c.cols)
    assert data / len(t) <= 24  # 8 (time) + 4x2 (ids, size) + 6x1 (codes) + a mask bit
    assert all(c.cols[1].data.dtype == np.uint8 for c in t._chunks)
    assert type(t.append) is type([].append)  # the hot path: a plain list append


def test_a_table_is_a_list_of_tuples_to_the_code_that_reads_it():
    t = Table("discovery")
    rows = [(float(i), "register", "eureka-1", "order", f"order-{i}", "self") for i in range(6)]
    t.extend(rows)
    t.compact(force=True)
    t.append((9.0, "renew", "eureka-1", "order", "order-1", ""))
    assert t + [] == [*rows, t[-1]] and [] + t == list(t)  # noqa: RUF005
    assert t.count(rows[2]) == 1 and t.index(rows[3]) == 3 and rows[4] in t
    assert next(r for r in reversed(t) if r[1] == "register") == rows[-1]
    assert t[1:3] == rows[1:3] and bool(t) and not Table("discovery")
    t[0] = (*t[0][:4], "order-9", *t[0][5:])
    assert t[0][4] == "order-9"
    t.sort(key=lambda r: -r[0])
    assert t[0][1] == "renew"
    del t[0]
    t[:] = [r for r in t if r[4] != "order-9"]
    assert t == rows[1:][::-1]
    t.clear()
    assert t == [] and len(t) == 0


def test_a_spilled_table_is_append_only(tmp_path):
    t = Table("events", chunk_rows=2, spill=tmp_path, row_group_rows=2)
    t.extend([(1.0, "a", "crash", ""), (2.0, "a", "restart", "")])
    t.compact()
    assert t.spilled == 2 and t.files == [tmp_path / "events.parquet"]
    with pytest.raises(TypeError, match="spilled"):
        t[0] = (0.0, "b", "crash", "")
    assert t == [(1.0, "a", "crash", ""), (2.0, "a", "restart", "")]


# -- whole runs ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def chain_runs(tmp_path_factory):
    """The same chain run (with crashes and drops) in memory and spilled, the
    spill in row groups of 600 rows and chunks of 256 (many of each)."""
    import simcomm.engine.world as world_module

    kw = {"depth": 3, "request_rate": 20.0, "service_availability": 0.9,
          "mean_time_to_repair": 2.0}
    mem = simcomm.run("chain", seed=4, until=60, progress=False, warn=False, **kw)
    spill = tmp_path_factory.mktemp("chain") / "trace"
    sc, p, until = simcomm.prepare("chain", seed=4, until=60, spill=spill, **kw)
    w = World(4)
    w.trace = Trace(spill=spill, chunk_rows=256, row_group_rows=600)
    old = world_module.CHECK_EVERY
    world_module.CHECK_EVERY = 128
    try:
        sc.build(w, p)
        w.run(until)
    finally:
        world_module.CHECK_EVERY = old
    return mem, Result(w, sc, p), spill


def test_a_spilled_run_reads_back_the_tables_of_one_in_memory(chain_runs):
    mem, spilled, spill = chain_runs
    tables = spilled.world.trace.tables()
    assert tables["messages"].spilled == len(mem.world.trace.messages) > 3000
    assert all(t.spilled == len(t) for t in tables.values())  # all on disk at the end
    for name, t in tables.items():
        pd.testing.assert_frame_equal(t.to_frame(), getattr(mem.world.trace, name).to_frame())
    for name in ("requests", "trace", "messages", "pools", "attempts", "events"):
        pd.testing.assert_frame_equal(getattr(spilled, name), getattr(mem, name))
    assert spilled.fingerprint() == mem.fingerprint()
    assert spilled.summary() == mem.summary()
    assert sorted(p.name for p in spill.iterdir()) == sorted(
        ["trace.json", *(f"{name}.parquet" for name, t in tables.items() if len(t))])


def test_the_ledger_and_hops_are_exact_on_a_spilled_run(chain_runs):
    mem, spilled, _ = chain_runs
    led = spilled.ledger()
    assert led == mem.ledger() and led["balanced"] and led["dropped"] > 0
    rows = list(mem.world.trace.messages)
    hops = Counter(m[6] for m in rows if m[1] == "send" and m[3] != "reply")
    tries = Counter(a[1] for a in mem.world.trace.attempts)
    df = spilled.requests
    assert df["hops"].tolist() == [hops.get(r, 0) for r in df["request_id"]]
    assert df["attempts"].tolist() == [tries.get(r, 0) for r in df["request_id"]]



def test_the_ledger_of_a_spilled_run_sees_a_message_ended_twice(tmp_path):
    res = simcomm.run("chain", seed=1, until=20, spill=tmp_path / "t", progress=False)
    assert res.ledger()["balanced"]
    w = res.world
    end = next(r for r in reversed(w.trace.messages) if r[1] != "send")
    w.trace.messages.append(end)  # written to a second file
    assert not Result(w).ledger()["balanced"]
    assert (tmp_path / "t" / "messages.1.parquet").exists()


def test_the_fingerprint_is_the_hash_of_the_rows_as_lists_of_tuples(chain_runs):
    mem, _, _ = chain_runs
    tr = mem.world.trace
    h = hashlib.sha256()
    for table in (tr.messages, tr.requests, tr.pools, tr.events, tr.attempts, tr.breakers):
        h.update(repr(list(table)).encode())
    assert mem.fingerprint() == h.hexdigest()


def test_utilisation_from_a_later_start_streams_the_pools_table(chain_runs):
    from simcomm.analysis.metrics import time_average

    mem, spilled, _ = chain_runs
    late = spilled.utilisation(start=20.0)
    for name, u in late.items():
        workers = spilled.world.nodes[name].workers
        expect = time_average(mem.pools, name, "busy", 20.0, 60.0) / workers
        assert u == pytest.approx(expect, rel=1e-9, abs=1e-12)
    assert not math.isnan(sum(late.values()))


def test_a_traced_chain_run_holds_less_than_a_kilobyte_per_request():
    """Issue 11's target, measured as benchmarks/bench_memory.py does (tracemalloc,
    the libraries imported first): at the end of the run and after summary(),
    ledger() and the requests table (650 and 720 B at 1 200 requests, where
    the fixed costs still show; 630 and 680 B at 20 000)."""
    import gc
    import tracemalloc

    from simcomm.scenarios import get, make_params

    sc = get("chain")
    p = make_params(sc, {"depth": 3, "request_rate": 10.0})
    warm = World(1)
    sc.build(warm, p)
    warm.run(5.0)
    warmed = Result(warm, sc, p)
    warmed.summary()
    warmed.ledger()  # numpy, pandas and the analysis imported
    gc.collect()
    tracemalloc.start()
    try:
        w = World(1)
        sc.build(w, p)
        base = tracemalloc.get_traced_memory()[0]
        w.run(120.0)
        gc.collect()
        end = tracemalloc.get_traced_memory()[0] - base
        res = Result(w, sc, p)
        res.summary()
        res.ledger()
        gc.collect()
        tables = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    n = w.request_count
    assert n > 1100
    assert end / n < 1000 and tables / n < 1000, (end / n, tables / n)


# -- the spill argument ----------------------------------------------------------------

@pytest.mark.parametrize("bad", [123, b"dir", "", ["x"], 1.5])
def test_bad_spill_values_are_refused_before_time_zero(bad, monkeypatch):
    built = []
    monkeypatch.setattr(World, "run", lambda *a, **k: built.append(a))
    with pytest.raises(ParamError) as info:
        simcomm.run("chain", until=10, spill=bad)
    assert info.value.field == "spill" and not built


def test_a_spill_directory_must_be_new_or_empty(tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "messages.parquet").write_bytes(b"x")
    (tmp_path / "file").write_text("x")
    for path in (tmp_path / "old", tmp_path / "file"):
        with pytest.raises(ParamError) as info:
            simcomm.run("chain", until=10, spill=path)
        assert info.value.field == "spill"
    assert check_spill(tmp_path / "new" / "dir") == tmp_path / "new" / "dir"
    res = simcomm.run("chain", until=10, spill=tmp_path / "new" / "dir", progress=False)
    assert res.ledger()["balanced"]
    with pytest.raises(ParamError):  # the directory now holds that run's trace
        simcomm.run("chain", until=10, spill=tmp_path / "new" / "dir")


def test_spilling_without_pyarrow_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow fails
    with pytest.raises(ParamError, match=r"simcomm\[parquet\]") as info:
        simcomm.run("chain", until=10, spill=tmp_path / "t")
    assert info.value.field == "spill"
    assert not (tmp_path / "t").exists()
    res = simcomm.run("chain", until=10, progress=False)  # in memory: no pyarrow needed
    assert len(res.world.trace.messages) > 0 and res.ledger()["balanced"]
