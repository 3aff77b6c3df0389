"""Asynchronous messaging: channels, a RabbitMQ-like broker, and consumers.

*Microservices Patterns* ch. 3.3: services exchange messages over channels
-- point-to-point (one consumer gets each message: commands) and
publish-subscribe (each subscription gets a copy: events).  This package
holds the broker core that follows RabbitMQ's documented semantics
(REFERENCE §4): exchanges and their routing rules, queues with competing
consumers, acknowledgements, redelivery and dead-lettering.
"""

from simcomm.messaging.envelope import Delivery, Envelope
from simcomm.messaging.exchanges import DEFAULT_EXCHANGE, EXCHANGE_TYPES, Exchange
from simcomm.messaging.topic import topic_matches

__all__ = ["DEFAULT_EXCHANGE", "EXCHANGE_TYPES", "Delivery", "Envelope", "Exchange",
           "topic_matches"]
