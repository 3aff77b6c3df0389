"""Client-side discovery: a caller picks an instance from its own view and calls it.

*Microservices Patterns* §3.2.4: with client-side discovery the service
client asks a service registry for the instances of a service (and caches
the answer), then a load balancer in the client picks one for each
request -- Netflix's Eureka client with Ribbon, Spring Cloud LoadBalancer.
A :class:`DiscoveryClient` is that library in a caller: a :class:`View`
(the cached list, refreshed the way its registry kind does it) and a
balancer (:mod:`simcomm.discovery.balancers`) that picks from it.

Every call it sends is a row of ``trace.routes`` (kept whether or not the
run is traced): when, for which client request, to which instance, which
attempt and how it ended -- so :meth:`simcomm.Result.routes` can say which
instance served each request and whether the view that picked it was stale
(the instance was down or unready when the call went out).

A failed call can be tried once more on **another** instance
(``retry_next_server``, Ribbon's ``MaxAutoRetriesNextServer``, default 1
there, 0 here so that a stale entry shows): the retry hides the stale
entry from the user, at the price of the failed attempt's time.  The call
itself goes through :func:`simcomm.rpc.call`, so the partial-failure
policies protecting the caller's edge to the service (a time limit, a
circuit breaker, ... -- :func:`simcomm.resilience.protect`) apply to each
attempt: without a time limit a call to a hung instance waits forever.
"""

from __future__ import annotations

import math
import random
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from simpy.events import Event

from simcomm.discovery.registry import View, check_count
from simcomm.engine.messages import COMMAND, REPLY, Message
from simcomm.errors import ParamError
from simcomm.rpc.call import ANSWERS, call

if TYPE_CHECKING:
    from simcomm.discovery.balancers import Balancer
    from simcomm.engine.nodes import Context, Node
    from simcomm.engine.world import World

__all__ = ["RETRY_NEXT_ON", "DiscoveryClient"]

#: The outcomes worth trying on another instance: the one picked was slow,
#: down, full, reset or failing (Ribbon retries connect failures, and read
#: timeouts when ``OkToRetryOnAllOperations``).  A call refused by the
#: caller's own policy (an open breaker, a full bulkhead) is not.
RETRY_NEXT_ON = frozenset({"timeout", "error", "reset", "refused", "rejected"})


class DiscoveryClient:
    """The discovery library in one caller (``owner``) for one ``service``.

    ``view`` is the caller's picture of the service (started here: it
    begins refreshing at once); ``balancer`` picks an instance from it for
    every call; ``retry_next_server`` failed calls are tried again on
    another instance not tried yet.  ``via`` names how the instance was
    found in ``trace.routes`` (``client``, or a router's name).
    """

    def __init__(self, world: World, owner: Node, service: str, view: View,
                 balancer: Balancer, *, retry_next_server: int = 0,
                 via: str = "client") -> None:
        if not isinstance(view, View):
            raise ParamError("view", view, "a View (the caller's picture of the service)")
        if view.owner is not owner:
            raise ParamError("view", view, f"a view kept by {owner.name} (its owner is "
                                           f"{view.owner.name})")
        if view.service != service:
            raise ParamError("view", view, f"a view of {service!r} (not {view.service!r})")
        if not callable(getattr(balancer, "choose", None)):
            raise ParamError("balancer", balancer,
                             "a Balancer (simcomm.discovery.balancers.balancer(name))")
        self.world = world
        self.owner = owner
        self.service = service
        self.view = view
        self.balancer = balancer
        self.retry_next_server = check_count("retry_next_server", retry_next_server)
        self.via = via
        self.rng: random.Random = world.stream(f"balancer:{owner.name}:{service}")
        self._routes = world.trace.routes
        view.start()

    def call(self, ctx: Context, body: Any = None, *, kind: str = COMMAND
             ) -> Generator[Event, Any, Message]:
        """Call one instance of the service from the worker serving ``ctx``.

        Use it in a handler as ``reply = yield from client.call(ctx, body)``.
        With an empty view (or a registry that could not be asked, for a
        view without a cache) nothing is sent and the reply's status is
        ``no_instance``.
        """
        view = self.view
        env = self.world.env
        trace_id = ctx.request.trace_id
        if view.cached:
            candidates = view.instances
        else:
            found = yield from view.lookup()
            candidates = found or ()
        tried: list[str] = []
        reply: Message | None = None
        attempt = 0
        balancer = self.balancer
        while True:
            attempt += 1
            pool = [c for c in candidates if c not in tried] if tried else candidates
            if not pool:
                if reply is not None:
                    return reply
                now = env.now
                self._routes.append((now, trace_id, self.owner.name, self.service, None,
                                     self.via, attempt, "no_instance", now))
                name = self.owner.name
                return Message(0, REPLY, name, name, now, None, trace_id=trace_id,
                               status="no_instance")
            instance = balancer.choose(pool, self.rng, env.now)
            start = env.now
            balancer.started(instance, start)
            # the row goes in when the call is sent (outcome "pending", end NaN until it
            # ends), so that a call still waiting at the end -- on a hung instance,
            # without a time limit -- is counted where it went
            row = len(self._routes)
            self._routes.append((start, trace_id, self.owner.name, self.service, instance,
                                 self.via, attempt, "pending", math.nan))
            reply = yield from call(ctx, instance, body, kind=kind)
            end = env.now
            status = reply.status
            balancer.finished(instance, end - start, status in ANSWERS, end)
            self._routes[row] = (start, trace_id, self.owner.name, self.service, instance,
                                 self.via, attempt, status, end)
            if status in ANSWERS or status not in RETRY_NEXT_ON \
                    or attempt > self.retry_next_server:
                return reply
            tried.append(instance)
