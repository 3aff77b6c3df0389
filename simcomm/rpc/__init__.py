"""Synchronous request/response between services.

``call`` is the one place where a request is sent and its reply awaited;
the resilience policies of the partial-failure capability (timeout,
bulkhead, circuit breaker, retry, fallback) will wrap it.
"""

from simcomm.rpc.call import OUTCOMES, call
from simcomm.rpc.handlers import answer, forward

__all__ = ["OUTCOMES", "answer", "call", "forward"]
