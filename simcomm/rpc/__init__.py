"""Synchronous request/response between services: the call path.

``reply = yield from call(ctx, dest, body)`` is how a handler calls another
service; it lives here, above the engine, so that the engine imports
nothing above it.  The policies of :mod:`simcomm.resilience` (time limit,
bulkhead, circuit breaker, rate limiter, retry, fallback, deadline), once
declared on an edge with :func:`simcomm.resilience.protect`, wrap it
(:mod:`simcomm.rpc.policies`).
"""

from simcomm.rpc.call import ANSWERS, OUTCOMES, POLICY_OUTCOMES, call
from simcomm.rpc.handlers import answer, answer_for, forward, route

__all__ = ["ANSWERS", "OUTCOMES", "POLICY_OUTCOMES", "answer", "answer_for", "call", "forward",
           "route"]
