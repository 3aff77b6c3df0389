"""Handlers the scenarios build services from.

A handler is a generator function ``handler(ctx, request)`` (see
:class:`simcomm.engine.nodes.Context`) that yields SimPy events and returns
the reply body, or raises :class:`~simcomm.engine.nodes.ServiceError` for
an error reply.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import Any

from simcomm.engine.messages import Message
from simcomm.engine.nodes import Context, Handler, ServiceError
from simcomm.engine.workload import endpoint_of, payload_of

__all__ = ["answer", "forward", "route"]


def forward(next_hop: str) -> Handler:
    """Do one unit of work, call ``next_hop`` with the request's body and
    answer with its reply's body -- an API gateway, or a link in a chain.

    A call that did not end ``ok`` becomes an error reply naming the callee
    and what happened, so the failure travels back to the caller.
    """

    def handler(ctx: Context, request: Message) -> Generator[Any, Any, Any]:
        yield ctx.work()
        reply = yield from ctx.call(next_hop, request.body)
        if reply.status != "ok":
            raise ServiceError(f"{next_hop}: {reply.status}")
        return reply.body

    return handler


def route(routes: Mapping[str, str]) -> Handler:
    """Do one unit of work, then call the instance ``routes`` names for the
    request's endpoint (see :func:`simcomm.engine.workload.request_body`) with
    its payload, and answer with the reply's body -- an API gateway that
    serves several endpoints from one worker pool.

    An endpoint it has no route for is an error reply (HTTP 404), and so is
    a call that did not end ``ok``, naming the callee and what happened.
    """
    table = dict(routes)

    def handler(ctx: Context, request: Message) -> Generator[Any, Any, Any]:
        yield ctx.work()
        endpoint = endpoint_of(request.body)
        dest = table.get(endpoint) if endpoint is not None else None
        if dest is None:
            raise ServiceError(f"no route for endpoint {endpoint!r}")
        reply = yield from ctx.call(dest, payload_of(request.body))
        if reply.status != "ok":
            raise ServiceError(f"{dest}: {reply.status}")
        return reply.body

    return handler


def answer(body: Any) -> Handler:
    """Do one unit of work, then answer with ``body`` (the end of a chain)."""

    def handler(ctx: Context, request: Message) -> Generator[Any, Any, Any]:
        yield ctx.work()
        return body

    return handler
