"""A synchronous call: send a request, wait for the reply with its correlation id.

``call(ctx, dest, body)`` is the one place where a handler's request is sent
and its reply awaited.  The engine does not know it exists (it imports
nothing above it): a handler calls it as ``reply = yield from call(ctx,
dest, body)``.  If the edge from the caller's service to the callee's is
protected (:func:`simcomm.resilience.protect`), or the request being served
carries a deadline, the call goes through the policies
(:mod:`simcomm.rpc.policies`); otherwise it is the plain path below, kept to
a few attribute reads.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from simpy.events import Event

from simcomm.engine.messages import COMMAND, Message
from simcomm.rpc.policies import CutOff, plain_edge

if TYPE_CHECKING:
    from simcomm.engine.nodes import Context

__all__ = ["ANSWERS", "OUTCOMES", "POLICY_OUTCOMES", "call"]

#: What a caller can learn about a call, from the reply's status (and so what a
#: user's request can end as, in ``Result.requests["outcome"]``).
OUTCOMES = {
    "ok": "the callee answered successfully",
    "error": "the callee answered with an error (its own failure or a downstream one)",
    "refused": "the callee was down: nothing listened on its port",
    "rejected": "the callee's queue was full",
    "reset": "the callee crashed while the request was queued or being served",
    "timeout": "the caller's time limit ran out before the reply came (the callee's work "
               "went on; its late reply is an orphan)",
    "deadline_exceeded": "the request's end-to-end deadline, carried in the message header, "
                         "passed before the reply came (or before the call could be sent)",
    "bulkhead_full": "the caller's bulkhead for that callee had no free slot: nothing was sent",
    "short_circuited": "the caller's circuit breaker was open: nothing was sent",
    "rate_limited": "no permit from a rate limiter: the caller's own (nothing was sent) or "
                    "the callee's load shedding (turned away at its door)",
    "fallback": "the call failed and a fallback answered instead (a degraded answer)",
    "no_instance": "service discovery found no instance to call: the caller's list was "
                   "empty or the registry could not be asked (nothing was sent)",
}

#: Outcomes that answer a call: the callee's answer, or a fallback's.
ANSWERS = frozenset({"ok", "fallback"})

#: Outcomes decided on the caller's side, by a policy or by service discovery.
#: A handler that cannot answer because of one passes it on as its own reply's
#: status (see :func:`simcomm.rpc.forward`), so the user's request ends with
#: what ended it, wherever that happened -- as an HTTP gateway answers 504 on a
#: timeout and 503 on an open breaker or when no instance is available.
POLICY_OUTCOMES = frozenset({"timeout", "deadline_exceeded", "bulkhead_full",
                             "short_circuited", "rate_limited", "no_instance"})


def call(ctx: Context, dest: str, body: Any = None, *, kind: str = COMMAND,
         key: Any = None) -> Generator[Event, Any, Message]:
    """Call ``dest`` from the worker serving ``ctx`` and return the reply message.

    The request and the reply are Messages through the network; the reply
    is matched to this call by correlation id.  The worker stays busy all
    the while (thread-per-request, as in a servlet container).  Encoding the
    request in the caller's format is paid before it is sent; decoding the
    reply is owed to the worker's next unit of work.  The reply's ``status``
    says how it went (:data:`OUTCOMES`).

    Unprotected, the call waits as long as it takes: a hung callee holds
    the worker.  On a protected edge the policies decide (a reply made by a
    policy -- a timeout, a short-circuit -- has id 0 and never crossed the
    network).  A call answered by a fallback marks ``ctx.status`` so the
    handler's own answer goes out as ``fallback`` too.  If the request being
    served carries a deadline, the call carries it on and stops waiting at
    it.  Every attempt is recorded in ``Result.attempts``.
    """
    caller = ctx.instance
    router = caller.outbound
    request = ctx.request
    edge = router[dest] if router is not None else None
    if edge is None and request.deadline is not None:
        edge = plain_edge(caller)
    if edge is not None:
        # Edge.call, in this frame: one generator fewer per protected call
        c = edge.begin(ctx, dest, body, kind, key)
        try:
            answer: Message = yield from edge.first(c, 1)
        except CutOff as exc:
            answer = edge.cut_off(c, exc)
        if answer.status == "fallback":
            ctx.status = "fallback"
        return answer
    env = caller.env
    start = env.now
    fmt = caller.format
    size = None
    if fmt is not None and body is not None:
        size = fmt.size(body)
        ctx.debt += fmt.encode_cost(size) * caller.slowdown
    if ctx.debt > 0:
        debt, ctx.debt = ctx.debt, 0.0
        yield env.timeout(debt)
    reply: Message = yield caller.request(dest, body, kind=kind, key=key,
                                          trace_id=request.trace_id, format=fmt, size=size)
    if fmt is not None and reply.format is not None and reply.body is not None:
        ctx.debt += fmt.decode_cost(reply.size) * caller.slowdown
    status = reply.status
    trace = caller.world.trace
    if trace.enabled:
        trace.attempts.append((start, request.trace_id, caller.name, dest, 1, status, 0.0,
                               env.now))
    if status == "fallback":
        ctx.status = "fallback"
    return reply
