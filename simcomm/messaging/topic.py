"""Topic matching: which routing keys a topic binding catches (RabbitMQ's rule).

A topic exchange compares the routing key a message was published with to
the binding key of each binding, word by word.  Both are split on ``.``
into words; in the binding key ``*`` stands for exactly one word and ``#``
for zero or more words; any other word must be equal.  (REFERENCE §4, as
in RabbitMQ's ``rabbit_exchange_type_topic``.)  Details that follow from
RabbitMQ's own splitting (``split_topic_key``):

* the empty key has no words at all, so ``#`` matches it and ``*`` does
  not; ``"a."`` is two words, ``"a"`` and the empty word;
* ``*`` and ``#`` are wildcards only as whole words: ``"a*"`` is the
  literal word ``a*``;
* words are compared exactly (case-sensitive).

Examples (REFERENCE §4): ``regions.na.cities.*`` matches
``regions.na.cities.toronto`` but not ``regions.na.cities``;
``audit.events.#`` matches ``audit.events`` and ``audit.events.users.signup``
but not ``audit.users``; ``#`` alone matches every key, so a topic exchange
bound with ``#`` acts as a fanout.

Pure functions, no simulation: they are tested on their own.
"""

from __future__ import annotations

from simcomm.errors import ParamError

__all__ = ["MAX_KEY_BYTES", "check_key", "split_key", "topic_matches"]

#: AMQP 0-9-1 carries routing and binding keys as a short string: at most 255 bytes.
MAX_KEY_BYTES = 255


def split_key(key: str) -> list[str]:
    """The words of a routing or binding key (``""`` has none), as RabbitMQ splits them."""
    return key.split(".") if key else []


def check_key(field: str, key: object) -> str:
    """``key`` if it is a valid AMQP routing / binding key, else a ParamError naming ``field``."""
    if not isinstance(key, str):
        raise ParamError(field, key, "a string of dot-separated words, e.g. 'orders.created'")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise ParamError(field, key, f"at most {MAX_KEY_BYTES} bytes (an AMQP short string)")
    return key


def _words_match(pattern: list[str], words: list[str]) -> bool:
    """Greedy wildcard matching with backtracking to the last ``#``.

    ``#`` plays the role of a glob's ``*`` (any run of words, even none) and
    ``*`` that of a glob's ``?`` (one word).  When a literal or ``*`` fails,
    the last ``#`` seen swallows one more word and matching resumes after it;
    an earlier ``#`` never needs to take more, because the later one can.
    Linear in practice, O(len(pattern) * len(words)) at worst.
    """
    i = j = 0
    n, m = len(pattern), len(words)
    hash_at = -1  # position of the last '#' in the pattern
    resume = 0  # the word the last '#' would swallow up to
    while j < m:
        if i < n:
            p = pattern[i]
            if p == "#":
                hash_at, resume = i, j
                i += 1
                continue
            if p == "*" or p == words[j]:
                i += 1
                j += 1
                continue
        if hash_at < 0:
            return False
        resume += 1
        i, j = hash_at + 1, resume
    while i < n and pattern[i] == "#":
        i += 1
    return i == n


def topic_matches(binding_key: str, routing_key: str) -> bool:
    """True if a topic binding with ``binding_key`` catches ``routing_key``.

    RabbitMQ's topic rule (see the module docstring): dot-separated words,
    ``*`` exactly one word, ``#`` zero or more words.

    >>> topic_matches("regions.na.cities.*", "regions.na.cities.toronto")
    True
    >>> topic_matches("regions.na.cities.*", "regions.na.cities")
    False
    >>> topic_matches("audit.events.#", "audit.events")
    True
    >>> topic_matches("#", "anything.at.all")
    True
    """
    if not isinstance(binding_key, str):
        raise ParamError("binding_key", binding_key, "a string of dot-separated words")
    if not isinstance(routing_key, str):
        raise ParamError("routing_key", routing_key, "a string of dot-separated words")
    if binding_key == "#":
        return True
    if "*" not in binding_key and "#" not in binding_key:
        return binding_key == routing_key
    return _words_match(split_key(binding_key), split_key(routing_key))
