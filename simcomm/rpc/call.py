"""A synchronous call: send a request, wait for the reply with its correlation id."""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from simpy.events import Event

from simcomm.engine.messages import COMMAND, REPLY, Message

if TYPE_CHECKING:
    from simcomm.engine.nodes import Context

__all__ = ["OUTCOMES", "call"]

#: What a caller can learn about a call, from the reply's status.
OUTCOMES = {
    "ok": "the callee answered successfully",
    "error": "the callee answered with an error (its own failure or a downstream one)",
    "refused": "the callee was down: nothing listened on its port",
    "rejected": "the callee's queue was full",
    "reset": "the callee crashed while the request was queued or being served",
}


def call(ctx: Context, dest: str, body: Any = None, *, kind: str = COMMAND,
         key: Any = None) -> Generator[Event, Any, Message]:
    """Call ``dest`` from the worker serving ``ctx`` and return the reply message.

    The request and the reply are Messages through the network; the reply
    is matched to this call by correlation id.  The worker stays busy all
    the while (thread-per-request, as in a servlet container).  Encoding the
    request in the caller's format is paid before it is sent; decoding the
    reply is owed to the worker's next unit of work.  The call waits as long
    as it takes: a hung callee holds the worker.
    """
    caller = ctx.instance
    fmt = caller.format
    size = None
    if fmt is not None and body is not None:
        size = fmt.size(body)
        ctx.debt += fmt.encode_cost(size) * caller.slowdown
    if ctx.debt > 0:
        debt, ctx.debt = ctx.debt, 0.0
        yield caller.env.timeout(debt)
    reply: Message = yield caller.request(dest, body, kind=kind, key=key,
                                          trace_id=ctx.request.trace_id, format=fmt, size=size)
    assert reply.kind == REPLY
    if fmt is not None and reply.format is not None and reply.body is not None:
        ctx.debt += fmt.decode_cost(reply.size) * caller.slowdown
    return reply
