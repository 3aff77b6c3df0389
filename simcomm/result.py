"""The outcome of a run: summary numbers and tables, built when asked for."""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from functools import cached_property
from typing import TYPE_CHECKING, Any

from simcomm.engine.trace import EVENT_COLUMNS, MESSAGE_COLUMNS, POOL_COLUMNS, REQUEST_COLUMNS
from simcomm.engine.workload import _Client

if TYPE_CHECKING:
    import pandas as pd

    from simcomm.engine.world import World
    from simcomm.scenarios.base import Scenario

__all__ = ["FAILURES", "Result"]

#: Request outcomes that count as failures (``pending`` is neither).
FAILURES = ("error", "refused", "rejected", "reset", "abandoned")


class Result:
    """What :func:`simcomm.run` returns.

    * ``summary()`` -- a dict of headline numbers.
    * ``requests`` -- one row per client request: ``request_id, client,
      target, start, end, outcome, latency, hops`` (``hops``: how many
      service calls the request caused).
    * ``trace`` -- one row per message event (send / deliver / drop).
    * ``messages`` -- the ledger: one row per message with its fate.
    * ``pools`` -- busy workers and queue length of every instance over time.
    * ``events`` -- faults, repairs, partitions and other timeline events.
    """

    def __init__(self, world: World, scenario: Scenario | None = None,
                 params: Any = None) -> None:
        if world.until is None:
            raise ValueError("the world has not been run yet: call world.run(until) first")
        self.world = world
        self.scenario = scenario
        self.params = params
        self.seed = world.seed
        self.until = world.until

    # -- tables --------------------------------------------------------
    @cached_property
    def requests(self) -> pd.DataFrame:
        import pandas as pd

        rows = list(self.world.trace.requests)
        for node in self.world.nodes.values():
            if isinstance(node, _Client):
                rows.extend(node.pending())
        df = pd.DataFrame(rows, columns=list(REQUEST_COLUMNS))
        df = df.sort_values("request_id", kind="stable").reset_index(drop=True)
        df["latency"] = df["end"] - df["start"]
        if self.world.trace.enabled:
            hops = Counter(m[6] for m in self.world.trace.messages
                           if m[1] == "send" and m[3] != "reply")
            df["hops"] = [hops.get(r, 0) for r in df["request_id"].tolist()]
        else:
            df["hops"] = math.nan
        return df

    @cached_property
    def trace(self) -> pd.DataFrame:
        import pandas as pd

        df = pd.DataFrame(self.world.trace.messages, columns=list(MESSAGE_COLUMNS))
        df["trace_id"] = df["trace_id"].astype("Int64")
        df["correlation_id"] = df["correlation_id"].astype("Int64")
        return df

    @cached_property
    def pools(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.world.trace.pools, columns=list(POOL_COLUMNS))

    @cached_property
    def events(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.world.trace.events, columns=list(EVENT_COLUMNS))

    @cached_property
    def messages(self) -> pd.DataFrame:
        """The ledger: each message once, with ``fate`` delivered / dropped /
        in_flight, the drop ``reason`` and the time it was ``sent`` and ``ended``."""
        tr = self.trace
        sent = tr[tr["event"] == "send"].set_index("message_id")
        ends = tr[tr["event"] != "send"].drop_duplicates("message_id", keep="last")
        ends = ends.set_index("message_id")
        out = sent[["kind", "source", "dest", "trace_id", "size"]].copy()
        out["sent"] = sent["time"]
        out["fate"] = ends["event"].reindex(out.index).map(
            {"deliver": "delivered", "drop": "dropped"}).fillna("in_flight")
        out["reason"] = ends["reason"].reindex(out.index).fillna("")
        out["ended"] = ends["time"].reindex(out.index)
        return out.reset_index()

    def ledger(self) -> dict[str, Any]:
        """Counts of message fates; ``balanced`` if each sent message has
        exactly one fate and they agree with the network's own counters."""
        net = self.world.network
        counts: dict[str, Any] = {"sent": net.sent, "delivered": net.delivered,
                                  "dropped": sum(net.dropped.values()),
                                  "in_flight": net.in_flight,
                                  "dropped_by_reason": dict(sorted(net.dropped.items()))}
        balanced = counts["sent"] == (counts["delivered"] + counts["dropped"]
                                      + counts["in_flight"])
        if self.world.trace.enabled:
            m = self.messages
            fates = m["fate"].value_counts()
            tr = self.trace
            terminal = tr[tr["event"] != "send"]["message_id"]
            balanced = (balanced and len(m) == net.sent and terminal.is_unique
                        and set(terminal) <= set(m["message_id"])
                        and fates.get("delivered", 0) == net.delivered
                        and fates.get("dropped", 0) == counts["dropped"]
                        and fates.get("in_flight", 0) == net.in_flight)
        counts["balanced"] = bool(balanced)
        return counts

    # -- numbers -------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """Headline numbers (seconds, per second, fractions)."""
        import numpy as np

        df = self.requests
        ok = df[df["outcome"] == "ok"]
        lat = ok["latency"].to_numpy()
        failed = int(df["outcome"].isin(FAILURES).sum())
        finished = len(ok) + failed
        out: dict[str, Any] = {
            "requests": len(df),
            "completed": len(ok),
            "failed": failed,
            "pending": int((df["outcome"] == "pending").sum()),
        }
        for outcome in FAILURES:
            out[outcome] = int((df["outcome"] == outcome).sum())
        pct = np.percentile(lat, [50, 95, 99]) if lat.size else [math.nan] * 3
        out.update({
            "mean_latency": float(lat.mean()) if lat.size else math.nan,
            "p50": float(pct[0]),
            "p95": float(pct[1]),
            "p99": float(pct[2]),
            "throughput": len(ok) / self.until,
            "availability": len(ok) / finished if finished else math.nan,
            "messages_sent": self.world.network.sent,
            "messages_dropped": sum(self.world.network.dropped.values()),
        })
        return out

    def utilisation(self, start: float = 0.0) -> dict[str, float]:
        """Mean fraction of busy workers per instance over ``[start, until]``."""
        from simcomm.analysis.metrics import time_average
        from simcomm.engine.nodes import Instance

        return {name: time_average(self.pools, name, "busy", start, self.until) / node.workers
                for name, node in self.world.nodes.items() if isinstance(node, Instance)}

    def fingerprint(self) -> str:
        """SHA-256 of every traced event: equal fingerprints, identical runs."""
        h = hashlib.sha256()
        tr = self.world.trace
        for table in (tr.messages, tr.requests, tr.pools, tr.events):
            h.update(repr(table).encode())
        return h.hexdigest()

    def __repr__(self) -> str:
        name = self.scenario.name if self.scenario else "world"
        s = self.summary()
        return (f"<Result {name} seed={self.seed} until={self.until:g}s: "
                f"{s['requests']} requests, availability {s['availability']:.4f}, "
                f"p50 {s['p50']:.4g}s>")
