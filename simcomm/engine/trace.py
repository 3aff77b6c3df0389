"""The event log of a run: rows appended as tuples, kept in typed columns.

Recording is a tuple append per event (principle 8): ``trace.messages``
and the other tables are :class:`Table` objects whose ``append`` is the
bound ``append`` of a plain list, so the hot path costs what it always
did.  Every few thousand rows (:data:`CHUNK_ROWS`; the world looks every
:data:`CHECK_EVERY` messages and at the end of each run) a table moves its
buffered tuples into a *chunk* of typed columns: floats in float64
arrays, integers in the narrowest integer array that holds them, strings
as codes into the column's dictionary of distinct strings, None as a bit
mask.  A ``chain`` message row then takes 25-30 bytes instead of about 250
as a tuple, and a traced ``chain`` run holds about 630 bytes per request
instead of 4 200 (issue 11; ``benchmarks/bench_memory.py``).  DataFrames are
built only when a :class:`~simcomm.result.Result` is asked for one, column
by column (:meth:`Table.to_frame`).

With ``spill`` (a directory; needs pyarrow, the ``parquet`` extra) each
table streams its chunks to Parquet files there (``messages.parquet``,
``pools.parquet``, ...; a row group per :data:`ROW_GROUP_ROWS` rows) and
keeps only the rows not written yet: a run's memory then no longer grows
with its trace, and the tables are read back, lazily, when asked for.

A table behaves as the list of tuples it used to be: ``len``, iteration,
indexing, ``==`` with a list, ``repr``, ``+`` (a list), ``count``,
``index``; rewriting rows (``table[i] = row``, ``del``, ``sort``) works on
a table in memory (it is rare: tests and hand-made traces).  A value comes
back as it went in, with the column's type: an int in a float column (the
integer time zero SimPy starts from) comes back a float, a numpy number a
Python number, a str subclass a str (they compare equal); None, and a
value the column's type cannot hold (a str in a number column), come back
exactly.

Tables (column names are the DataFrame columns):

* ``messages`` -- one row per message event: ``send``, ``deliver`` or
  ``drop`` (with a reason such as ``loss``, ``partition``, ``node_down``,
  ``rejected``).  Together they form the message ledger.  A reply's
  ``correlation_id`` is the ``message_id`` of the request it answers, and
  its ``status`` says how the call went (``ok``, ``error``, ``refused``,
  ``rejected``, ``reset``); other messages have status ``ok``.
* ``requests`` -- one row per finished client request (``endpoint``: the
  endpoint a client with a mix of endpoints called, else None).
* ``pools`` -- each worker pool's busy count and queue length whenever one
  of them changes.
* ``events`` -- everything else worth seeing on a timeline: faults,
  repairs, partitions, abandoned work, replies nobody waited for.
* ``attempts`` -- one row per attempt of a call from a service's handler
  (the first try and every retry): when it started and ended, the client
  request it serves, caller, callee, the attempt number (from 1), its
  outcome and the wait before it.  Kept with ``enabled`` only, as messages.
* ``breakers`` -- every state change of every circuit breaker on a
  protected edge: time, caller instance, callee service, from, to, why.
  Always kept: they are few.
* ``mq`` -- the life of every application message on a channel (see
  :mod:`simcomm.messaging`): ``publish``, ``enqueue``, ``deliver``,
  ``ack``, ``nack``, ``requeue``, ``dead_letter``, ``drop``, ``consume``,
  ``confirm``.  ``message_id`` is the application message's id (that of
  the network message that first carried it), the same on every hop and
  every copy; ``channel`` is the queue, exchange or brokerless channel;
  ``node`` who did it; ``detail`` a routing key or a reason.  Kept with
  ``enabled`` only, as messages.
* ``queues`` -- each broker queue's ready and unacknowledged counts
  whenever one of them changes (``enabled`` only).
* ``records`` -- the life of every keyed application record (see
  :mod:`simcomm.messaging`, issue 9): ``produce`` (the application emitted
  it: the per-key produced order), ``retry``, ``append``, ``dedup``,
  ``refuse``, ``ack``, ``fail``, ``truncate`` (on a partitioned log),
  ``apply`` / ``skip`` (a consumer applied its effect, or skipped a
  duplicate), ``commit``, ``commit_failed``, ``assign``, ``revoke``,
  ``rebalance_start``, ``rebalance_end``, ``join``, ``leave``, ``expire``,
  ``reset`` (consumer groups), ``send`` (a record sent under an id given
  by its caller: a relay or a dual write), ``tx_commit``, ``tx_abort``
  (a service's database).  ``record_id`` is the application record's id,
  the same on every copy; ``partition`` and ``offset`` are -1 where they
  do not apply; ``detail`` a reason or a mode.  Kept with ``enabled``
  only, as messages.  ``key`` is whatever the application keyed by (an
  int, a str or None).
* ``discovery`` -- what service discovery did (see
  :mod:`simcomm.discovery`): a registry's ``register``, ``renew``,
  ``cancel``, ``evict``, ``critical``, ``passing``, ``reap``, ``ready``,
  ``unready`` and ``self_preservation``; a prober's ``probe_failed``; a
  client's or router's view: ``visible``, ``hidden``, ``lookup_failed``.
  ``node`` is who did it, ``instance`` the instance it is about.  Kept with
  ``enabled`` only, as messages.
* ``routes`` -- one row per call a discovery client or a router sent to an
  instance it picked: when it was sent, the client request it serves, the
  caller, the service, the instance (None when none could be found), how it
  was found (``via``: ``client``, or the router's name), the attempt (from
  1; the next one went to another instance), the outcome and when it ended.
  Always kept, as requests: the stale-call counts need it.
* ``counters`` -- named counts kept whether or not the run is traced
  (``discovery_messages``: every discovery message put on the network).

The engine only holds these tables; what fills ``attempts`` and
``breakers`` is the call path above it (:mod:`simcomm.rpc`), and what fills
``mq``, ``queues`` and ``records`` is the messaging layer
(:mod:`simcomm.messaging`), and what fills ``discovery``, ``routes`` and
``counters`` is service discovery (:mod:`simcomm.discovery`).
"""

from __future__ import annotations

import ast
import json
import os
import pickle
import struct
from array import array
from collections.abc import Callable, Iterable, Iterator
from itertools import repeat
from operator import is_
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simcomm.errors import ParamError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["ATTEMPT_COLUMNS", "BREAKER_COLUMNS", "CHECK_EVERY", "CHUNK_ROWS",
           "DISCOVERY_COLUMNS", "EVENT_COLUMNS", "MESSAGE_COLUMNS", "MQ_COLUMNS",
           "POOL_COLUMNS", "QUEUE_COLUMNS", "RECORD_COLUMNS", "REQUEST_COLUMNS",
           "ROUTE_COLUMNS", "ROW_GROUP_ROWS", "SCHEMAS", "SPILL_ALLOWED", "Batch", "Table",
           "Trace", "check_spill"]

MESSAGE_COLUMNS = ("time", "event", "message_id", "kind", "source", "dest",
                   "trace_id", "size", "reason", "correlation_id", "status")
REQUEST_COLUMNS = ("request_id", "client", "target", "start", "end", "outcome",
                   "endpoint")
POOL_COLUMNS = ("time", "node", "busy", "queued")
EVENT_COLUMNS = ("time", "node", "event", "detail")
ATTEMPT_COLUMNS = ("time", "trace_id", "caller", "callee", "attempt", "outcome",
                   "wait_before", "end")
BREAKER_COLUMNS = ("time", "caller", "callee", "from_state", "to_state", "why")
MQ_COLUMNS = ("time", "event", "message_id", "channel", "node", "detail")
QUEUE_COLUMNS = ("time", "node", "queue", "ready", "unacked")
RECORD_COLUMNS = ("time", "event", "record_id", "topic", "partition", "offset", "key", "node",
                  "detail")
DISCOVERY_COLUMNS = ("time", "event", "node", "service", "instance", "detail")
ROUTE_COLUMNS = ("time", "trace_id", "caller", "service", "instance", "via", "attempt",
                 "outcome", "end")

#: Every table: its columns and their kinds, one letter per column: ``f``
#: a float, ``i`` an int, ``s`` a str, ``o`` any of int, str (a record's
#: key); each may also be None.
SCHEMAS: dict[str, tuple[tuple[str, ...], str]] = {
    "messages": (MESSAGE_COLUMNS, "fsisssiisis"),
    "requests": (REQUEST_COLUMNS, "issffss"),
    "pools": (POOL_COLUMNS, "fsii"),
    "events": (EVENT_COLUMNS, "fsss"),
    "attempts": (ATTEMPT_COLUMNS, "fissisff"),
    "breakers": (BREAKER_COLUMNS, "fsssss"),
    "mq": (MQ_COLUMNS, "fsisss"),
    "queues": (QUEUE_COLUMNS, "fssii"),
    "records": (RECORD_COLUMNS, "fsisiioss"),
    "discovery": (DISCOVERY_COLUMNS, "fsssss"),
    "routes": (ROUTE_COLUMNS, "fissssisf"),
}

#: A table compacts its buffered tuples into typed columns once it holds
#: this many (when the world looks: every :data:`CHECK_EVERY` messages, and
#: at the end of a run, when it compacts whatever is left).
CHUNK_ROWS = 4096
#: The world asks the trace to compact every this many messages (a power of 2).
CHECK_EVERY = 4096
#: A spilled table writes a Parquet row group once this many compacted rows wait.
ROW_GROUP_ROWS = 65_536
#: Name of the file a spilling trace writes first into its directory (the
#: schema of every table), which also claims the directory for one run.
MANIFEST = "trace.json"
SPILL_ALLOWED = ("None, or a directory to stream the trace to as Parquet files (one that "
                 "does not exist yet, or an empty one; needs pyarrow: "
                 "pip install 'simcomm[parquet]')")

#: the placeholders of None while a column of numbers is packed (a NaN with
#: a payload no arithmetic makes; the smallest int64), and the NaN's bits
_NAN_BITS = 0x7FF8_0000_5C0C_0DE5
_SENTINEL: dict[str, Any] = {"f": struct.unpack("<d", struct.pack("<q", _NAN_BITS))[0],
                             "i": -(1 << 63)}
#: a column whose values the typed array cannot hold in more than this share
#: of a chunk's rows keeps that chunk's values as they are (a list)
_MAX_EXCEPTIONS = 0.25


def _np() -> Any:
    """numpy, imported when first needed (``import simcomm`` stays light)."""
    import numpy

    return numpy


# -- one column of one chunk -------------------------------------------------------------

class _Strings:
    """The distinct strings of one column, each with a code (0 is None), in the
    order they were first met (a chunk's new ones sorted, so it is the same
    in every run)."""

    __slots__ = ("_array", "_arrow", "codes", "values")

    def __init__(self) -> None:
        self.codes: dict[Any, int] = {None: 0}
        self.values: list[str | None] = [None]
        self._array: Any = None
        self._arrow: Any = None

    def add(self, value: str) -> int:
        code = self.codes[value] = len(self.values)
        self.values.append(value)
        return code

    def dtype(self) -> Any:
        """The narrowest unsigned type that holds every code."""
        np = _np()
        n = len(self.values)
        return np.uint8 if n <= 1 << 8 else np.uint16 if n <= 1 << 16 else np.uint32

    def array(self) -> Any:
        """The values as a numpy object array (code -> value), cached."""
        if self._array is None or len(self._array) != len(self.values):
            np = _np()
            arr = np.empty(len(self.values), dtype=object)
            arr[:] = self.values
            self._array = arr
        return self._array

    def arrow(self) -> Any:
        """The values as a pyarrow string array (code 0 and strings UTF-8
        cannot hold are null), cached and extended as values are added."""
        import pyarrow as pa  # type: ignore[import-untyped]

        old = self._arrow
        k = 0 if old is None else len(old)
        if k == len(self.values):
            return old
        new = [v if v is not None and _utf8(v) else None for v in self.values[k:]]
        part = pa.array(new, type=pa.string())
        self._arrow = part if old is None else pa.concat_arrays([old, part])
        return self._arrow


def _utf8(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class _Col:
    """One column of one chunk.

    ``tag``: ``f`` float64 array, ``i`` the narrowest integer array, ``s``
    codes into the column's :class:`_Strings`, ``o`` a list of the values as
    given.  ``nulls``: packed bits of the rows holding None (``f`` and
    ``i``; code 0 is None for ``s``), or None.  ``exc``: ``{row: value}`` of
    the values the typed array could not hold (kept exactly), or None.
    """

    __slots__ = ("data", "exc", "nulls", "tag")

    def __init__(self, tag: str, data: Any, nulls: Any = None,
                 exc: dict[int, Any] | None = None) -> None:
        self.tag = tag
        self.data = data
        self.nulls = nulls
        self.exc = exc or None

    def null_mask(self, n: int) -> Any:
        """A bool array of the rows holding None, or None if there are none."""
        np = _np()
        if self.tag == "s":
            mask = self.data == 0
            if self.exc:
                mask[list(self.exc)] = False
            return mask if mask.any() else None
        if self.tag == "o":
            mask = np.fromiter(map(is_, self.data, repeat(None)), dtype=bool, count=n)
            return mask if mask.any() else None
        if self.nulls is None:
            return None
        return np.unpackbits(self.nulls, count=n).view(bool)

    def decode(self, strings: _Strings | None, n: int) -> list[Any]:
        """The column's values as Python objects."""
        if self.tag == "o":
            return list(self.data)
        if self.tag == "s":
            assert strings is not None
            out = strings.array()[self.data].tolist()
        elif self.nulls is not None:
            obj = self.data.astype(object)
            obj[self.null_mask(n)] = None
            out = obj.tolist()
        else:
            out = self.data.tolist()
        if self.exc:
            for i, v in self.exc.items():
                out[i] = v
        return out

    @property
    def clean(self) -> bool:
        """Typed, with nothing kept aside."""
        return self.tag != "o" and self.exc is None


def _narrow(a: Any) -> Any:
    """An int64 array in the narrowest signed type that holds its values."""
    np = _np()
    if not a.size:
        return a.astype(np.int8)
    lo, hi = int(a.min()), int(a.max())
    for bits, t in ((7, np.int8), (15, np.int16), (31, np.int32)):
        if -(1 << bits) <= lo and hi < (1 << bits):
            return a.astype(t)
    return a


def _numbers(kind: str, col: tuple | list, keep_list: bool = True) -> _Col:
    """A column of floats (``kind`` "f") or ints ("i"), None allowed."""
    np = _np()
    code, dtype = ("d", np.float64) if kind == "f" else ("q", np.int64)
    try:
        a = np.frombuffer(array(code, col), dtype=dtype)
        return _Col(kind, a if kind == "f" else _narrow(a))
    except (TypeError, OverflowError):
        pass
    n = len(col)
    nones = col.count(None)
    if nones:  # None here and there: a placeholder in their place, and a mask
        sentinel = _SENTINEL[kind]
        try:
            a = np.frombuffer(array(code, [sentinel if v is None else v for v in col]),
                              dtype=dtype)
        except (TypeError, OverflowError):
            pass
        else:
            mask = a == sentinel if kind == "i" else a.view(np.int64) == _NAN_BITS
            if int(mask.sum()) == nones:  # no value of its own was the placeholder
                a = a.copy()
                a[mask] = 0
                return _Col(kind, a if kind == "f" else _narrow(a), np.packbits(mask))
    out = array(code)
    push = out.append
    nulls = bytearray(n)
    exc: dict[int, Any] = {}
    for i, v in enumerate(col):
        if v is None:
            nulls[i] = 1
            push(0)
            continue
        try:
            push(v)
        except (TypeError, OverflowError):
            exc[i] = v
            push(0)
    if keep_list and len(exc) > _MAX_EXCEPTIONS * n:
        return _Col("o", list(col))
    a = np.frombuffer(out, dtype=dtype) if n else np.zeros(0, dtype=dtype)
    mask = np.frombuffer(bytes(nulls), dtype=bool)
    return _Col(kind, a if kind == "f" else _narrow(a),
                np.packbits(mask) if mask.any() else None, exc)


def _strs(col: tuple | list, strings: _Strings, keep_list: bool = True) -> _Col:
    """A column of str (or None) as codes into ``strings``."""
    np = _np()
    codes = strings.codes
    for _ in range(2):
        try:
            if len(strings.values) <= 256:
                return _Col("s", np.frombuffer(bytes(map(codes.__getitem__, col)),
                                               dtype=np.uint8))
            return _Col("s", np.array(list(map(codes.__getitem__, col)),
                                      dtype=strings.dtype()))
        except (KeyError, TypeError):  # a new value (or an unhashable one)
            try:
                new = set(col).difference(codes)
            except TypeError:
                break
            if not all(type(v) is str for v in new):
                break
            for v in sorted(new):
                strings.add(v)
    out: list[int] = []
    exc: dict[int, Any] = {}
    for i, v in enumerate(col):
        if v is None:
            out.append(0)
        elif type(v) is str:
            c = codes.get(v)
            out.append(strings.add(v) if c is None else c)
        else:
            exc[i] = v
            out.append(0)
    if keep_list and len(exc) > _MAX_EXCEPTIONS * len(col):
        return _Col("o", list(col))
    return _Col("s", np.array(out, dtype=strings.dtype()), None, exc)


def _anything(col: tuple | list, strings: _Strings) -> _Col:
    """A column of ints or strs (or None): typed if it is all one of them."""
    c = _numbers("i", col)
    if c.clean:
        return c
    c = _strs(col, strings)
    return c if c.clean else _Col("o", list(col))


class _Chunk:
    """Rows in typed columns: ``n`` rows, one :class:`_Col` per column."""

    __slots__ = ("cols", "n")

    def __init__(self, n: int, cols: list[_Col]) -> None:
        self.n = n
        self.cols = cols


def _encode(rows: list[tuple], kinds: str, strings: list[_Strings | None]) -> _Chunk:
    """Rows (tuples of the table's width) into a chunk of typed columns; rows
    of another width keep the chunk as a list of values per column."""
    width = len(kinds)
    n = len(rows)
    if n == 0:
        return _Chunk(0, [_Col(k if k in "fi" else "o", _np().zeros(0) if k in "fi" else [])
                          for k in kinds])
    try:
        columns = list(zip(*rows, strict=True))
    except (ValueError, TypeError):  # rows of other lengths (or not tuples)
        raise _Ragged from None
    if len(columns) != width:
        raise _Ragged
    cols: list[_Col] = []
    for kind, col, st in zip(kinds, columns, strings, strict=True):
        if kind == "s":
            assert st is not None
            cols.append(_strs(col, st))
        elif kind == "o":
            assert st is not None
            cols.append(_anything(col, st))
        else:
            cols.append(_numbers(kind, col))
    return _Chunk(n, cols)


def _merge(a: _Chunk, b: _Chunk, kinds: str, strings: list[_Strings | None]) -> _Chunk:
    """One chunk of ``a``'s rows then ``b``'s, column by column (typed
    arrays joined; a column whose chunks differ in kind is encoded again)."""
    np = _np()
    cols: list[_Col] = []
    for kind, x, y, st in zip(kinds, a.cols, b.cols, strings, strict=True):
        if x.tag != y.tag or x.tag == "o":
            values = x.decode(st, a.n) + y.decode(st, b.n)
            if kind in "fi":
                cols.append(_numbers(kind, values))
            else:
                assert st is not None
                cols.append(_strs(values, st) if kind == "s" else _anything(values, st))
            continue
        exc = {**(x.exc or {}), **{i + a.n: v for i, v in (y.exc or {}).items()}}
        nulls = None
        if x.tag != "s":
            mx, my = x.null_mask(a.n), y.null_mask(b.n)
            if mx is not None or my is not None:
                nulls = np.packbits(np.concatenate([
                    np.zeros(a.n, dtype=bool) if mx is None else mx,
                    np.zeros(b.n, dtype=bool) if my is None else my]))
        cols.append(_Col(x.tag, np.concatenate([x.data, y.data]), nulls, exc))
    return _Chunk(a.n + b.n, cols)


class _Ragged(Exception):
    """Rows of another width than the table's: they stay tuples."""


def _rows(chunk: _Chunk, strings: list[_Strings | None]) -> Iterator[tuple]:
    """The chunk's rows as tuples."""
    cols = [c.decode(st, chunk.n) for c, st in zip(chunk.cols, strings, strict=True)]
    return zip(*cols, strict=True)


# -- spilling to Parquet ------------------------------------------------------------------

def check_spill(value: object) -> Path | None:
    """``value`` (the ``spill`` argument of a run) as a directory to stream the
    trace to, or None; ParamError naming ``spill`` if it cannot be one.

    Refused before time zero: anything but None, a str or a path; a path
    that exists and is not an empty directory (the files of another run
    are never mixed with these); a directory that cannot be made or written
    to; and any directory when pyarrow is missing (the ``parquet`` extra:
    ``pip install 'simcomm[parquet]'``; in JupyterLite, Pyodide's
    ``await piplite.install("pyarrow")`` where it is available).
    """
    if value is None:
        return None
    if isinstance(value, bytes) or not isinstance(value, (str, os.PathLike)) \
            or not os.fspath(value):
        raise ParamError("spill", value, SPILL_ALLOWED)
    try:
        import pyarrow  # type: ignore[import-untyped]
        import pyarrow.parquet  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        raise ParamError("spill", value, "None: spilling the trace to Parquet needs "
                         "pyarrow, which is not installed (pip install "
                         "'simcomm[parquet]')") from None
    path = Path(os.fspath(value))
    if path.exists() and not path.is_dir():
        raise ParamError("spill", value, SPILL_ALLOWED + f"; {path} is a file")
    if path.is_dir() and any(path.iterdir()):
        raise ParamError("spill", value, SPILL_ALLOWED + f"; {path} is not empty (another "
                         "run's trace? pick a new directory)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ParamError("spill", value, SPILL_ALLOWED + f"; cannot make it: {exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ParamError("spill", value, SPILL_ALLOWED + f"; {path} is not writable")
    return path


def _pack(value: Any) -> bytes:
    """A value kept aside, as bytes: its repr when that reads back the same
    (``ast.literal_eval``), else a pickle (only this process reads it back:
    the files are the run's own)."""
    text = repr(value)
    try:
        back = ast.literal_eval(text)
        same = type(back) is type(value) and back == value
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        same = False
    if same:
        return b"r" + text.encode("utf-8", "surrogatepass")
    return b"p" + pickle.dumps(value, protocol=4)


def _unpack(data: bytes) -> Any:
    if data[:1] == b"r":
        return ast.literal_eval(data[1:].decode("utf-8", "surrogatepass"))
    return pickle.loads(data[1:])  # the run's own files


def _tagged(value: Any) -> bytes | None:
    """A value of an ``o`` column as bytes (None stays None)."""
    if value is None:
        return None
    if type(value) is int:
        return b"i" + str(value).encode()
    if type(value) is str:
        return b"s" + value.encode("utf-8", "surrogatepass")
    return b"x" + _pack(value)


def _untagged(data: bytes | None) -> Any:
    if data is None:
        return None
    tag, body = data[:1], data[1:]
    if tag == b"i":
        return int(body)
    if tag == b"s":
        return body.decode("utf-8", "surrogatepass")
    return _unpack(body)


class _Parquet:
    """Where one table's chunks go: Parquet files in the spill directory.

    The first file is ``<table>.parquet``; once it has been read back (a
    file can be read only when closed), later rows go to
    ``<table>.1.parquet`` and so on.  Each file has the table's columns
    (float64, int64, string; a record's ``key`` as tagged bytes) and
    ``_kept``: per row, the values the typed columns could not hold."""

    def __init__(self, directory: Path, name: str, columns: tuple[str, ...],
                 kinds: str) -> None:
        import pyarrow as pa  # type: ignore[import-untyped]

        self.directory = directory
        self.name = name
        self.kinds = kinds
        types = {"f": pa.float64(), "i": pa.int64(), "s": pa.string(), "o": pa.binary()}
        self.schema = pa.schema([*(pa.field(c, types[k]) for c, k in zip(columns, kinds,
                                                                         strict=True)),
                                 pa.field("_kept", pa.binary())])
        self.parts: list[Path] = []
        self.rows = 0
        self._writer: Any = None
        self._path: Path | None = None

    def write(self, chunks: list[_Chunk], strings: list[_Strings | None]) -> None:
        """Write ``chunks`` as one row group."""
        import pyarrow as pa  # type: ignore[import-untyped]
        import pyarrow.parquet as pq  # type: ignore[import-untyped]

        batches = [self._batch(c, strings) for c in chunks if c.n]
        if not batches:
            return
        table = pa.Table.from_batches(batches, schema=self.schema)
        if self._writer is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            k = len(self.parts)
            self._path = self.directory / (f"{self.name}.parquet" if k == 0
                                           else f"{self.name}.{k}.parquet")
            self._writer = pq.ParquetWriter(self._path, self.schema)
        self._writer.write_table(table, row_group_size=table.num_rows)
        self.rows += table.num_rows

    def close(self) -> None:
        """Finish the file being written (so it can be read)."""
        if self._writer is not None:
            self._writer.close()
            assert self._path is not None
            self.parts.append(self._path)
            self._writer = None
            self._path = None

    def _batch(self, chunk: _Chunk, strings: list[_Strings | None]) -> Any:
        import pyarrow as pa  # type: ignore[import-untyped]

        np = _np()
        n = chunk.n
        arrays = []
        kept: dict[int, dict[int, Any]] = {}
        for j, (kind, col, st) in enumerate(zip(self.kinds, chunk.cols, strings,
                                                strict=True)):
            if kind == "o":
                values = col.decode(st, n)
                arrays.append(pa.array([_tagged(v) for v in values], type=pa.binary()))
                continue
            if col.tag == "o":  # typed again for the file, the rest kept aside
                assert st is not None or kind != "s"
                col = (_strs(col.data, st, keep_list=False) if kind == "s"  # type: ignore[arg-type]
                       else _numbers(kind, col.data, keep_list=False))
            if col.exc:
                for i, v in col.exc.items():
                    kept.setdefault(i, {})[j] = v
            if kind == "s":
                assert st is not None
                dictionary = st.arrow()
                arr = dictionary.take(pa.array(col.data))
                bad = arr.is_null().to_numpy(zero_copy_only=False) & (col.data != 0)
                if col.exc:
                    bad[list(col.exc)] = False
                for i in np.flatnonzero(bad).tolist():  # strings UTF-8 cannot hold
                    kept.setdefault(i, {})[j] = st.values[int(col.data[i])]
                arrays.append(arr)
            else:
                mask = col.null_mask(n)
                arrays.append(pa.array(col.data.astype(np.float64 if kind == "f" else np.int64),
                                       mask=mask))
        extra: list[bytes | None] = [None] * n
        for i, aside in kept.items():
            extra[i] = _pack(aside)
        arrays.append(pa.array(extra, type=pa.binary()))
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    def read(self, strings: list[_Strings | None]) -> Iterator[_Chunk]:
        """Every row group written so far, as chunks (the open file is closed first)."""
        import pyarrow.parquet as pq  # type: ignore[import-untyped]

        self.close()
        for path in list(self.parts):
            f = pq.ParquetFile(path)
            for g in range(f.num_row_groups):
                yield self._chunk(f.read_row_group(g), strings)

    def _chunk(self, table: Any, strings: list[_Strings | None]) -> _Chunk:
        import pyarrow.compute as pc  # type: ignore[import-untyped]

        np = _np()
        n = table.num_rows
        cols: list[_Col] = []
        for j, (kind, st) in enumerate(zip(self.kinds, strings, strict=True)):
            arr = table.column(j).combine_chunks()
            if kind == "o":
                assert st is not None
                cols.append(_anything([_untagged(b) for b in arr.to_pylist()], st))
            elif kind == "s":
                assert st is not None
                enc = arr.dictionary_encode()
                lookup = np.array([st.codes.get(v) if v in st.codes else st.add(v)
                                   for v in enc.dictionary.to_pylist()] or [0],
                                  dtype=np.int64)
                idx = pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False)
                codes = np.where(idx >= 0, lookup[np.clip(idx, 0, None)], 0)
                cols.append(_Col("s", codes.astype(st.dtype())))
            else:
                mask = arr.is_null().to_numpy(zero_copy_only=False)
                data = pc.fill_null(arr, 0).to_numpy(zero_copy_only=False)
                data = data.astype(np.float64) if kind == "f" else _narrow(data.astype(np.int64))
                cols.append(_Col(kind, data, np.packbits(mask) if mask.any() else None))
        kept = table.column(len(self.kinds)).to_pylist()
        for i, packed in enumerate(kept):
            if packed is not None:
                for j, v in _unpack(packed).items():
                    col = cols[j]
                    if col.exc is None:
                        col.exc = {}
                    col.exc[i] = v
                    if col.tag in "fi" and col.nulls is not None:
                        mask = np.unpackbits(col.nulls, count=n).view(bool).copy()
                        mask[i] = False
                        col.nulls = np.packbits(mask) if mask.any() else None
        return _Chunk(n, cols)


# -- a table ------------------------------------------------------------------------------

class Table:
    """One table of the trace: rows appended as tuples, kept in typed columns.

    ``append`` and ``extend`` are those of a plain list (the buffer of rows
    not yet compacted), so recording costs what a list append costs.
    :meth:`compact` moves the buffer into a chunk of typed columns (see the
    module docstring); with a spill directory the chunks go on to Parquet.
    Reading: ``len``, iteration (tuples), indexing, :meth:`to_frame` (a
    DataFrame, column by column) and :meth:`batches` (numpy columns a chunk
    at a time, for counting over a table too large to build).
    """

    __slots__ = ("_buf", "_chunks", "_held", "_spill", "_strings", "append", "chunk_rows",
                 "columns", "extend", "kinds", "name", "row_group_rows")

    def __init__(self, name: str, columns: tuple[str, ...] | None = None,
                 kinds: str | None = None, *, chunk_rows: int = CHUNK_ROWS,
                 spill: Path | None = None, row_group_rows: int = ROW_GROUP_ROWS) -> None:
        if columns is None or kinds is None:
            columns, kinds = SCHEMAS[name]
        if len(columns) != len(kinds) or set(kinds) - set("fiso"):
            raise ValueError(f"table {name}: one kind (f, i, s, o) per column")
        self.name = name
        self.columns = tuple(columns)
        self.kinds = kinds
        self.chunk_rows = int(chunk_rows)
        self.row_group_rows = int(row_group_rows)
        self._buf: list[tuple] = []
        self.append: Callable[[tuple], None] = self._buf.append
        self.extend: Callable[[Iterable[tuple]], None] = self._buf.extend
        self._chunks: list[_Chunk | list[tuple]] = []
        self._held = 0  # rows in self._chunks
        self._strings: list[_Strings | None] = [_Strings() if k in "so" else None
                                                for k in kinds]
        self._spill = (None if spill is None
                       else _Parquet(spill, name, self.columns, kinds))

    # -- compaction and spilling ---------------------------------------------------
    def compact(self, force: bool = False) -> None:
        """Move the buffered rows into typed columns: once they are
        :attr:`chunk_rows` or more, or any with ``force`` (at the end of
        every run, and of every slice of one a progress bar makes).  A small
        last chunk is joined with the new one, array by array, so repeated
        forcing neither leaves many small chunks nor packs a row twice.  A
        spilled table then writes a row group if enough rows wait."""
        buf = self._buf
        if not buf or (len(buf) < self.chunk_rows and not force):
            return
        rows = buf.copy()
        buf.clear()
        try:
            chunk: _Chunk | list[tuple] = _encode(rows, self.kinds, self._strings)
        except _Ragged:
            chunk = rows
        last = self._chunks[-1] if self._chunks else None
        if isinstance(last, _Chunk) and isinstance(chunk, _Chunk) and last.n < self.chunk_rows:
            self._chunks[-1] = _merge(last, chunk, self.kinds, self._strings)
        else:
            self._chunks.append(chunk)
        self._held += len(rows)
        if self._spill is not None and self._held >= self.row_group_rows:
            self._write()

    def _write(self) -> None:
        assert self._spill is not None
        chunks: list[_Chunk] = []
        for c in self._chunks:
            if isinstance(c, _Chunk):
                chunks.append(c)
            else:  # ragged rows cannot go to a file of the table's columns
                raise ValueError(f"the {self.name} table cannot be spilled: it has rows "
                                 f"that are not {len(self.columns)}-tuples")
        self._spill.write(chunks, self._strings)
        self._chunks = []
        self._held = 0

    def flush(self) -> None:
        """Compact everything; a spilled table writes every row it holds and
        closes its file, which is then complete on disk."""
        self.compact(force=True)
        if self._spill is not None:
            if self._chunks:
                self._write()
            self._spill.close()

    @property
    def spilled(self) -> int:
        """Rows written to Parquet (0 for a table in memory)."""
        return 0 if self._spill is None else self._spill.rows

    @property
    def files(self) -> list[Path]:
        """The Parquet files written so far (closed ones and the one open)."""
        if self._spill is None:
            return []
        sp = self._spill
        return [*sp.parts, *([sp._path] if sp._path is not None else [])]

    # -- reading ---------------------------------------------------------------------
    def _stored(self) -> Iterator[_Chunk | list[tuple]]:
        """Every stored chunk in order: spilled ones, then those in memory."""
        if self._spill is not None and self._spill.rows:
            yield from self._spill.read(self._strings)
        yield from list(self._chunks)

    def chunks(self) -> Iterator[_Chunk]:
        """Every row as typed chunks, in order (the buffer compacted first)."""
        self.compact(force=True)
        for c in self._stored():
            if isinstance(c, _Chunk):
                yield c
            else:
                yield _Chunk(len(c), [_Col("o", list(col)) for col in _columns(c, self)])

    def __len__(self) -> int:
        return self.spilled + self._held + len(self._buf)

    def __bool__(self) -> bool:
        return bool(self._buf) or bool(self._chunks) or self.spilled > 0

    def __iter__(self) -> Iterator[tuple]:
        buf = self._buf.copy()
        for c in self._stored():
            if isinstance(c, _Chunk):
                yield from _rows(c, self._strings)
            else:
                yield from c
        yield from buf

    def __reversed__(self) -> Iterator[tuple]:
        return reversed(list(self))

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return list(self)[index]
        i = index.__index__()
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("table index out of range")
        tail = n - len(self._buf)
        if i >= tail:
            return self._buf[i - tail]
        for c in self._stored():
            size = c.n if isinstance(c, _Chunk) else len(c)
            if i < size:
                if isinstance(c, _Chunk):
                    return tuple(col.decode(st, c.n)[i]
                                 for col, st in zip(c.cols, self._strings, strict=True))
                return c[i]
            i -= size
        raise IndexError("table index out of range")  # pragma: no cover

    def _rewrite(self, change: Callable[[list[tuple]], Any]) -> Any:
        """Apply ``change`` to the rows as a list (a table in memory only)."""
        if self.spilled:
            raise TypeError(f"the {self.name} table was spilled to Parquet: rows can be "
                            "appended, not changed")
        rows = list(self)
        out = change(rows)
        self._chunks = []
        self._held = 0
        self._buf[:] = rows
        return out

    def __setitem__(self, index: Any, value: Any) -> None:
        def change(rows: list[tuple]) -> None:
            rows[index] = value
        self._rewrite(change)

    def __delitem__(self, index: Any) -> None:
        def change(rows: list[tuple]) -> None:
            del rows[index]
        self._rewrite(change)

    def insert(self, index: int, row: tuple) -> None:
        self._rewrite(lambda rows: rows.insert(index, row))

    def pop(self, index: int = -1) -> tuple:
        return self._rewrite(lambda rows: rows.pop(index))  # type: ignore[no-any-return]

    def remove(self, row: tuple) -> None:
        self._rewrite(lambda rows: rows.remove(row))

    def sort(self, *, key: Callable[[tuple], Any] | None = None, reverse: bool = False) -> None:
        self._rewrite(lambda rows: rows.sort(key=key, reverse=reverse))

    def reverse(self) -> None:
        self._rewrite(lambda rows: rows.reverse())

    def clear(self) -> None:
        self._rewrite(lambda rows: rows.clear())

    def __iadd__(self, rows: Iterable[tuple]) -> Table:  # type: ignore[misc]
        self.extend(rows)
        return self

    def __add__(self, other: Any) -> list[tuple]:
        if isinstance(other, (list, Table)):
            return [*self, *other]
        return NotImplemented

    def __radd__(self, other: Any) -> list[tuple]:
        if isinstance(other, list):
            return [*other, *self]
        return NotImplemented

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (list, tuple, Table)):
            if len(self) != len(other):
                return False
            return all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __contains__(self, row: object) -> bool:
        return any(r == row for r in self)

    def count(self, row: object) -> int:
        return sum(1 for r in self if r == row)

    def index(self, row: object) -> int:
        for i, r in enumerate(self):
            if r == row:
                return i
        raise ValueError(f"{row!r} is not in the {self.name} table")

    def copy(self) -> list[tuple]:
        return list(self)

    def __repr__(self) -> str:
        return repr(list(self))

    def write_repr(self, write: Callable[[bytes], Any]) -> None:
        """Write ``repr(list(self)).encode()`` to ``write`` piece by piece
        (a fingerprint of a table too large to hold as one string)."""
        write(b"[")
        first = True
        for c in self._pieces():
            if first:
                first = False
            else:
                write(b", ")
            write(", ".join(map(repr, c)).encode())
        write(b"]")

    def _pieces(self) -> Iterator[list[tuple]]:
        buf = self._buf.copy()
        for c in self._stored():
            rows = list(_rows(c, self._strings)) if isinstance(c, _Chunk) else c
            if rows:
                yield rows
        if buf:
            yield buf

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.name, self.columns, self.kinds, list(self), self.chunk_rows))

    # -- tables ---------------------------------------------------------------------
    def to_frame(self, dtypes: dict[str, str] | None = None,
                 extra: list[tuple] | None = None, order: Any = None) -> pd.DataFrame:
        """The table as a DataFrame, built column by column from the typed
        columns: the same frame ``pd.DataFrame(list(table), columns=...)``
        gives (float64, int64 -- float64 with NaN if a None is among the
        ints --, pandas' ``str`` with NaN for None, object where values are
        mixed), with less memory and time.  ``dtypes``: a column as
        ``"Int64"`` (nullable ints) or ``"category"`` (strings) instead.
        ``extra``: rows appended after the table's own (not stored).
        ``order``: the row positions to take, in that order (a sort), taken
        column by column so the table is never held twice."""
        import pandas as pd

        chunks = list(self.chunks())
        if extra:
            try:
                chunks.append(_encode(list(extra), self.kinds, self._strings))
            except _Ragged:
                rows = list(extra)
                chunks.append(_Chunk(len(rows), [_Col("o", list(col))
                                                 for col in _columns(rows, self)]))
        n = sum(c.n for c in chunks)
        dtypes = dtypes or {}
        if n == 0:
            df = pd.DataFrame([], columns=list(self.columns))
            return df.astype({c: t for c, t in dtypes.items() if c in df.columns})
        data = {}
        for j, name in enumerate(self.columns):
            cols = [c.cols[j] for c in chunks]
            data[name] = _frame_column(name, cols, [c.n for c in chunks], self._strings[j],
                                       dtypes.get(name), order)
        return pd.DataFrame(data, copy=False)

    def batches(self) -> Iterator[Batch]:
        """The table a chunk at a time, as numpy columns (see :class:`Batch`)."""
        for c in self.chunks():
            yield Batch(self, c)


def _columns(rows: list[tuple], table: Table) -> list[list[Any]]:
    """Ragged rows as columns of the table's width (missing values None)."""
    width = len(table.columns)
    return [[r[j] if j < len(r) else None for r in rows] for j in range(width)]


def _rebuild(name: str, columns: tuple[str, ...], kinds: str, rows: list[tuple],
             chunk_rows: int) -> Table:
    t = Table(name, columns, kinds, chunk_rows=chunk_rows)
    t.extend(rows)
    t.compact()
    return t


def _frame_column(name: str, cols: list[_Col], sizes: list[int], strings: _Strings | None,
                  dtype: str | None, order: Any = None) -> Any:
    """One DataFrame column from its chunks' columns (see :meth:`Table.to_frame`)."""
    import pandas as pd

    np = _np()
    tags = {c.tag for c in cols}
    if len(tags) == 1 and all(c.clean for c in cols):
        tag = tags.pop()
        if tag == "s":
            assert strings is not None
            codes = np.concatenate([c.data for c in cols]).astype(np.int64)
            if order is not None:
                codes = codes[order]
            if not codes.any() and dtype != "category":
                out = np.empty(len(codes), dtype=object)  # all None: pandas keeps objects
                return out
            if dtype != "category":
                inferred = _string_dtype()
                if inferred == np.dtype(object):  # pandas 2 (Pyodide): objects, None kept
                    return strings.array()[codes]
            cat = pd.Categorical.from_codes(codes - 1, categories=pd.Index(
                strings.values[1:], dtype=object))
            return cat if dtype == "category" else pd.Series(cat, copy=False).astype(inferred)
        data = np.concatenate([c.data for c in cols])
        if tag == "i":
            data = data.astype(np.int64, copy=False)
        masks = [c.null_mask(k) for c, k in zip(cols, sizes, strict=True)]
        nulls = (None if all(m is None for m in masks) else np.concatenate(
            [np.zeros(k, dtype=bool) if m is None else m
             for m, k in zip(masks, sizes, strict=True)]))
        if order is not None:
            data = data[order]
            nulls = None if nulls is None else nulls[order]
        if nulls is None:
            if dtype == "Int64" and tag == "i":
                return pd.arrays.IntegerArray(data, np.zeros(len(data), dtype=bool))
            return data
        if dtype == "Int64" and tag == "i":
            return pd.arrays.IntegerArray(data, nulls)
        if nulls.all():
            return np.empty(len(data), dtype=object)
        out = data.astype(np.float64)
        out[nulls] = np.nan
        return out
    # mixed or kept-aside values: pandas' own inference, as from the rows
    values: list[Any] = []
    for c, k in zip(cols, sizes, strict=True):
        values.extend(c.decode(strings, k))
    if order is not None:
        values = [values[i] for i in order.tolist()]
    col = pd.DataFrame(zip(values), columns=[name])[name]
    return col.astype(dtype) if dtype else col


def _string_dtype() -> Any:
    """The dtype pandas gives a column of strings and None built from rows:
    ``str`` (NaN for None) in pandas 3, objects in pandas 2."""
    import pandas as pd

    return pd.DataFrame([("a",), (None,)]).dtypes.iloc[0]


class Batch:
    """Rows of one chunk of a table as numpy columns, for counting over a
    table without building it (the ledger, ``hops``, utilisation)."""

    __slots__ = ("_chunk", "_table", "n")

    def __init__(self, table: Table, chunk: _Chunk) -> None:
        self._table = table
        self._chunk = chunk
        self.n = chunk.n

    def _col(self, name: str) -> tuple[_Col, _Strings | None]:
        j = self._table.columns.index(name)
        return self._chunk.cols[j], self._table._strings[j]

    def values(self, name: str) -> list[Any]:
        """The column as Python values."""
        col, st = self._col(name)
        return col.decode(st, self.n)

    def equals(self, name: str, value: Any) -> np.ndarray:
        """Bool array: the rows whose ``name`` equals ``value``."""
        np = _np()
        col, st = self._col(name)
        if col.tag == "s" and col.clean and (value is None or type(value) is str):
            assert st is not None
            code = st.codes.get(value)
            if code is None:
                return np.zeros(self.n, dtype=bool)
            return np.asarray(col.data == code)
        return np.fromiter((v == value for v in self.values(name)), dtype=bool,
                           count=self.n)

    def ints(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(values, valid)``: the column as int64 (0 where not an int) and
        a bool array of the rows holding an int."""
        np = _np()
        col, _ = self._col(name)
        if col.tag == "i" and col.exc is None:
            data = col.data.astype(np.int64)
            mask = col.null_mask(self.n)
            return data, (np.ones(self.n, dtype=bool) if mask is None else ~mask)
        vals = self.values(name)
        valid = np.fromiter((isinstance(v, int) and not isinstance(v, bool)
                             and -(1 << 63) <= v < (1 << 63) for v in vals),
                            dtype=bool, count=self.n)
        data = np.zeros(self.n, dtype=np.int64)
        if valid.any():
            data[valid] = [v for v, ok in zip(vals, valid.tolist(), strict=True) if ok]
        return data, valid

    def floats(self, name: str) -> np.ndarray:
        """The column as float64, NaN where it holds no number."""
        np = _np()
        col, _ = self._col(name)
        if col.tag in "fi" and col.exc is None:
            out = col.data.astype(np.float64)
            mask = col.null_mask(self.n)
            if mask is not None:
                out[mask] = np.nan
            return out
        return np.array([float(v) if isinstance(v, (int, float)) else np.nan
                         for v in self.values(name)], dtype=np.float64)

    def codes(self, name: str) -> tuple[np.ndarray, list[Any]]:
        """``(codes, values)``: the column factorized, ``values[codes[i]]``
        being row i's value (the same codes in every batch of a string
        column without values kept aside)."""
        np = _np()
        col, st = self._col(name)
        if col.tag == "s" and col.clean:
            assert st is not None
            return col.data.astype(np.int64), st.values
        seen: dict[Any, int] = {}
        vals = self.values(name)
        out = np.fromiter((seen.setdefault(v, len(seen)) for v in vals), dtype=np.int64,
                          count=self.n)
        return out, list(seen)


# -- the trace ------------------------------------------------------------------------

class Trace:
    """The run's tables (:class:`Table`, see :data:`SCHEMAS`) and counters.

    ``enabled=False`` keeps only requests, timeline events, breakers and
    routes.  ``spill``: a directory to stream the tables to as Parquet
    (see :func:`check_spill`), or None to keep them in memory.
    """

    __slots__ = ("attempts", "breakers", "counters", "discovery", "enabled", "events",
                 "messages", "mq", "pools", "queues", "records", "requests", "routes",
                 "spill")

    messages: Table
    requests: Table
    pools: Table
    events: Table
    attempts: Table
    breakers: Table
    mq: Table
    queues: Table
    records: Table
    discovery: Table
    routes: Table

    def __init__(self, enabled: bool = True, *, spill: str | os.PathLike[str] | None = None,
                 chunk_rows: int = CHUNK_ROWS, row_group_rows: int = ROW_GROUP_ROWS) -> None:
        self.enabled = enabled
        self.spill = check_spill(spill)
        if self.spill is not None:
            manifest = {"format": "simcomm trace 1",
                        "tables": {name: {"columns": list(cols), "kinds": kinds}
                                   for name, (cols, kinds) in SCHEMAS.items()}}
            try:
                with open(self.spill / MANIFEST, "x", encoding="utf-8") as f:
                    json.dump(manifest, f, indent=1)
            except FileExistsError:
                raise ParamError("spill", str(spill), SPILL_ALLOWED + "; another run "
                                 "writes there") from None
        for name in SCHEMAS:
            setattr(self, name, Table(name, chunk_rows=chunk_rows, spill=self.spill,
                                                 row_group_rows=row_group_rows))
        self.counters: dict[str, int] = {}

    def tables(self) -> dict[str, Table]:
        """Every table by name, in :data:`SCHEMAS` order."""
        return {name: getattr(self, name) for name in SCHEMAS}

    def compact(self, force: bool = False) -> None:
        """Compact every table's buffer (see :meth:`Table.compact`)."""
        for name in SCHEMAS:
            getattr(self, name).compact(force)

    def flush(self) -> None:
        """Compact every table; with ``spill``, write every row and close the
        files, so the directory holds the whole trace as complete Parquet
        files (a later run of the same world adds new files)."""
        for name in SCHEMAS:
            getattr(self, name).flush()

    def event(self, time: float, node: str, event: str, detail: str = "") -> None:
        """Record a timeline event (always kept: they are few)."""
        self.events.append((time, node, event, detail))
