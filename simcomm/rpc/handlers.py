"""Handlers the scenarios build services from.

A handler is a generator function ``handler(ctx, request)`` (see
:class:`simcomm.engine.nodes.Context`) that yields SimPy events and returns
the reply body, or raises :class:`~simcomm.engine.nodes.ServiceError` for
an error reply.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from simcomm.engine.messages import Message
from simcomm.engine.nodes import Context, Handler, ServiceError

__all__ = ["answer", "forward"]


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


def answer(body: Any) -> Handler:
    """Do one unit of work, then answer with ``body`` (the end of a chain)."""

    def handler(ctx: Context, request: Message) -> Generator[Any, Any, Any]:
        yield ctx.work()
        return body

    return handler
