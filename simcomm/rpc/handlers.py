"""Handlers the scenarios build services from.

A handler is a generator function ``handler(ctx, request)`` (see
:class:`simcomm.engine.nodes.Context`) that yields SimPy events and returns
the reply body, or raises :class:`~simcomm.engine.nodes.ServiceError` for
an error reply.  It calls other services with ``reply = yield from
call(ctx, dest, body)`` (:func:`simcomm.rpc.call`).

What a handler that calls another service answers when the call did not
end ``ok`` (:func:`answer_for`): a ``fallback`` answer is passed on as a
degraded answer (status ``fallback``); an outcome decided by a policy
(``timeout``, ``deadline_exceeded``, ``bulkhead_full``, ``short_circuited``,
``rate_limited``) is passed on as this reply's status, as a gateway answers
504 or 503; any other failure (``error``, ``refused``, ``rejected``,
``reset``) becomes an ``error`` reply naming the callee and what happened,
as a gateway answers 502.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import Any

from simcomm.engine.messages import Message
from simcomm.engine.nodes import Context, Handler, ServiceError
from simcomm.engine.workload import endpoint_of, payload_of
from simcomm.rpc.call import ANSWERS, POLICY_OUTCOMES, call

__all__ = ["answer", "answer_for", "forward", "route"]


def answer_for(dest: str, reply: Message) -> Any:
    """The body to answer with after a call to ``dest`` gave ``reply`` -- or
    raise the :class:`ServiceError` that passes its failure on (see the module
    docstring)."""
    status = reply.status
    if status in ANSWERS:
        return reply.body
    raise ServiceError(f"{dest}: {status}",
                       status=status if status in POLICY_OUTCOMES else "error")


def forward(next_hop: str) -> Handler:
    """Do one unit of work, call ``next_hop`` with the request's body and
    answer with its reply's body -- an API gateway, or a link in a chain.

    A call that did not end ``ok`` travels back as :func:`answer_for` says:
    a fallback's answer as a degraded answer, a policy's verdict as this
    reply's status, any other failure as an error naming the callee.
    """

    def handler(ctx: Context, request: Message) -> Generator[Any, Any, Any]:
        yield ctx.work()
        reply = yield from call(ctx, next_hop, request.body)
        return answer_for(next_hop, reply)

    return handler


def route(routes: Mapping[str, str]) -> Handler:
    """Do one unit of work, then call the instance ``routes`` names for the
    request's endpoint (see :func:`simcomm.engine.workload.request_body`) with
    its payload, and answer with the reply's body -- an API gateway that
    serves several endpoints from one worker pool.

    An endpoint it has no route for is an error reply (HTTP 404); a call
    that did not end ``ok`` travels back as :func:`answer_for` says.
    """
    table = dict(routes)

    def handler(ctx: Context, request: Message) -> Generator[Any, Any, Any]:
        yield ctx.work()
        endpoint = endpoint_of(request.body)
        dest = table.get(endpoint) if endpoint is not None else None
        if dest is None:
            raise ServiceError(f"no route for endpoint {endpoint!r}")
        reply = yield from call(ctx, dest, payload_of(request.body))
        return answer_for(dest, reply)

    return handler


def answer(body: Any) -> Handler:
    """Do one unit of work, then answer with ``body`` (the end of a chain)."""

    def handler(ctx: Context, request: Message) -> Generator[Any, Any, Any]:
        yield ctx.work()
        return body

    return handler
