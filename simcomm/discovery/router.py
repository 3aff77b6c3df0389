"""Server-side discovery: callers send to one address, a router picks the instance.

*Microservices Patterns* §3.2.4: with server-side discovery the client
sends every request to a router (a load balancer, a virtual IP) at a
fixed address; the router keeps its own view of the registry and forwards
each request to an available instance -- an AWS ELB, NGINX Plus, or
Kubernetes' Service, whose virtual IP kube-proxy turns into a backend on
the caller's machine.  The client knows nothing of the registry.

A :class:`Router` is a service instance (it can crash, hang and be cut
off: one more moving part, the book says) whose handler makes one
:class:`~simcomm.discovery.client.DiscoveryClient` call and passes the
answer back unchanged, failures included: kube-proxy picks a backend at
random per new connection and, if that backend does not answer, does not
try another (``retry_next_server=0``); a load balancer that retries may
be built with a higher value.  For kube-proxy, give the router a link with
no latency to its callers: its rules run on the caller's own machine.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from simcomm.discovery.client import DiscoveryClient
from simcomm.engine.nodes import Context, Instance, ServiceError
from simcomm.rpc.call import ANSWERS

if TYPE_CHECKING:
    from simcomm.discovery.balancers import Balancer
    from simcomm.discovery.registry import View
    from simcomm.engine.messages import Message
    from simcomm.engine.world import World

__all__ = ["Router"]


class Router(Instance):
    """Forwards each request to an instance of ``service`` picked from its own view.

    Build the router, then its view with ``owner=router``, and hand both
    the view and a balancer to :meth:`attach`.  ``workers`` bounds the requests it forwards at once
    (a proxy's connection limit; large by default), ``service_time`` its
    own time per request (0: kube-proxy's rules cost nothing measurable).
    """

    def __init__(self, world: World, name: str, *, service: str, workers: int = 1000,
                 service_time: Any = 0.0, **instance_args: Any) -> None:
        super().__init__(world, name, workers=workers, service_time=service_time,
                         handler=self._forward, service=f"{service}-router",
                         **instance_args)
        self.target = service
        self.client: DiscoveryClient | None = None
        self._works = not (isinstance(service_time, (int, float)) and service_time == 0)

    def attach(self, view: View, balancer: Balancer, *, retry_next_server: int = 0) -> None:
        """Give the router its view (kept by this router) and balancer; starts the view."""
        self.client = DiscoveryClient(self.world, self, self.target, view, balancer,
                                      retry_next_server=retry_next_server, via=self.name)

    def _forward(self, ctx: Context, request: Message) -> Generator[Any, Any, Any]:
        if self.client is None:
            raise ServiceError(f"router {self.name} has no view attached",
                               status="no_instance")
        if self._works:
            yield ctx.work()
        reply = yield from self.client.call(ctx, request.body, kind=request.kind)
        if reply.status in ANSWERS:
            return reply.body
        raise ServiceError(f"{self.target}: {reply.status}", status=reply.status)
