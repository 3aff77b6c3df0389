"""The world the patterns live in: clock, randomness, network, nodes, trace."""

from simcomm.engine.faults import Crash, ErrorRate, Fault, Hang, Outages, Slowdown, install
from simcomm.engine.formats import FORMATS, Format, get_format
from simcomm.engine.messages import COMMAND, CONTROL, DOCUMENT, EVENT, KINDS, REPLY, Message
from simcomm.engine.network import Link, Network
from simcomm.engine.nodes import Context, Instance, Node, Service, ServiceError, serve
from simcomm.engine.randomness import (
    Constant,
    Distribution,
    Empirical,
    Exponential,
    LogNormal,
    Streams,
    Uniform,
    distribution,
)
from simcomm.engine.trace import Trace
from simcomm.engine.workload import Client, ClosedLoop, OpenLoop, RateSchedule, spike
from simcomm.engine.world import World

__all__ = [
    "COMMAND", "CONTROL", "DOCUMENT", "EVENT", "FORMATS", "KINDS", "REPLY",
    "Client", "ClosedLoop", "Constant", "Context", "Crash", "Distribution", "Empirical",
    "ErrorRate",
    "Exponential", "Fault", "Format", "Hang", "Instance", "Link", "LogNormal", "Message",
    "Network", "Node", "OpenLoop", "Outages", "RateSchedule", "Service", "ServiceError",
    "Slowdown", "Streams", "Trace", "Uniform", "World", "distribution", "get_format",
    "install", "serve", "spike",
]
