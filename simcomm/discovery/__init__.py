"""Service discovery: registries, registration, client- and server-side discovery.

*Microservices Patterns* §3.2.4.  The pieces (see :mod:`.registry` for how
they fit together):

* registry servers -- nodes on the network that can fail like any other;
* views -- a caller's (or a router's) cached picture of a service;
* registrations -- self-registration by the instance, or third-party
  registration by a registrar / the platform;
* :class:`DiscoveryClient` (client-side discovery) and :class:`Router`
  (server-side discovery), which pick an instance with a balancer.
"""

from simcomm.discovery.client import RETRY_NEXT_ON, DiscoveryClient
from simcomm.discovery.registry import (
    COUNTER,
    NoCacheView,
    Registration,
    RegistryServer,
    View,
    ask,
    count,
    record,
)
from simcomm.discovery.router import Router

__all__ = ["COUNTER", "RETRY_NEXT_ON", "DiscoveryClient", "NoCacheView", "Registration",
           "RegistryServer", "Router", "View", "ask", "count", "record"]
