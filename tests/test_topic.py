"""Topic matching and exchange routing follow RabbitMQ (REFERENCE §4).

The REFERENCE examples first, then cases that follow from the same rule
(RabbitMQ's ``split_topic_key`` and word matching), then a property: the
fast matcher agrees with a literal transcription of the rule (a recursive
word matcher) on generated keys.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simcomm.errors import ParamError
from simcomm.messaging import Exchange, topic_matches
from simcomm.messaging.exchanges import default_exchange
from simcomm.messaging.topic import split_key

# -- REFERENCE §4 examples ---------------------------------------------------


def test_star_matches_exactly_one_word():
    """"regions.na.cities.*" matches "regions.na.cities.toronto" but not "regions.na.cities"."""
    assert topic_matches("regions.na.cities.*", "regions.na.cities.toronto")
    assert not topic_matches("regions.na.cities.*", "regions.na.cities")


def test_hash_matches_zero_or_more_words():
    """"audit.events.#" matches "audit.events" and "audit.events.users.signup",
    not "audit.users"."""
    assert topic_matches("audit.events.#", "audit.events")
    assert topic_matches("audit.events.#", "audit.events.users.signup")
    assert not topic_matches("audit.events.#", "audit.users")


def test_hash_alone_acts_as_fanout():
    """"#" alone matches every key, the empty one too."""
    for key in ("", "a", "a.b.c", "regions.na.cities.toronto", ".", "a..b"):
        assert topic_matches("#", key)


def test_a_message_matching_two_bindings_of_one_queue_arrives_once():
    ex = Exchange("logs", "topic")
    ex.bind("q1", "*.error")
    ex.bind("q1", "kern.#")
    ex.bind("q2", "#")
    assert ex.route("kern.error") == ["q1", "q2"]


# -- more cases from the same rule ---------------------------------------------


@pytest.mark.parametrize(("binding", "key", "expected"), [
    ("*", "a", True),
    ("*", "", False),  # the empty key has no words
    ("*", "a.b", False),
    ("*.*", "a.b", True),
    ("*.*", "a", False),
    ("a.*.c", "a.b.c", True),
    ("a.*.c", "a.c", False),
    ("a.#.c", "a.c", True),
    ("a.#.c", "a.b.x.c", True),
    ("a.#.c", "a.b.x.d", False),
    ("#.c", "c", True),
    ("#.c", "a.b.c", True),
    ("#.c", "a.b.c.d", False),
    ("#.#", "", True),
    ("#.*", "", False),
    ("#.*", "a", True),
    ("*.#", "a", True),
    ("*.#.*", "a", False),
    ("*.#.*", "a.b", True),
    ("a.#.#.b", "a.b", True),
    ("a.#.b.#.c", "a.x.b.y.b.c", True),
    ("a.#.b.#.c", "a.x.c.b", False),
    ("a.b", "a.b", True),  # no wildcard: equal keys
    ("a.b", "a.B", False),  # case-sensitive
    ("", "", True),
    ("", "a", False),
    ("a*", "ab", False),  # '*' is a wildcard only as a whole word
    ("a*", "a*", True),
    ("a#", "a", False),
    ("a.", "a", False),  # "a." is two words: "a" and ""
    ("a.*", "a.", True),  # ... so '*' matches the empty word
    ("*", ".", False),  # "." is two empty words
    ("*.*", ".", True),
])
def test_topic_rule_cases(binding, key, expected):
    assert topic_matches(binding, key) is expected


def test_keys_split_like_rabbitmq():
    """split_topic_key: "" has no words; empty words count."""
    assert split_key("") == []
    assert split_key("a") == ["a"]
    assert split_key("a..b") == ["a", "", "b"]
    assert split_key(".") == ["", ""]


def reference_match(pattern: list[str], words: list[str]) -> bool:
    """The rule written out literally: '#' takes any number of words, '*' one."""
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(reference_match(rest, words[k:]) for k in range(len(words) + 1))
    if not words:
        return False
    return (head == "*" or head == words[0]) and reference_match(rest, words[1:])


WORDS = st.sampled_from(["a", "b", "c", ""])
PATTERN_WORDS = st.sampled_from(["a", "b", "c", "", "*", "#"])


@settings(max_examples=600, deadline=None)
@given(st.lists(PATTERN_WORDS, max_size=6), st.lists(WORDS, max_size=7))
def test_matcher_agrees_with_the_literal_rule(pattern, words):
    binding, key = ".".join(pattern), ".".join(words)
    assert topic_matches(binding, key) is reference_match(split_key(binding), split_key(key))


def test_bad_keys_are_refused_naming_the_field():
    with pytest.raises(ParamError, match="binding_key"):
        topic_matches(None, "a")  # type: ignore[arg-type]
    with pytest.raises(ParamError, match="routing_key"):
        topic_matches("a", 3)  # type: ignore[arg-type]


# -- exchanges -----------------------------------------------------------------


def test_direct_routes_on_the_exact_key_in_binding_order():
    ex = Exchange("orders", "direct")
    ex.bind("billing", "created")
    ex.bind("audit", "created")
    ex.bind("audit", "cancelled")
    assert ex.route("created") == ["billing", "audit"]
    assert ex.route("cancelled") == ["audit"]
    assert ex.route("created.eu") == []
    assert ex.route("") == []


def test_fanout_ignores_the_key_and_copies_once_per_queue():
    ex = Exchange("events", "fanout")
    ex.bind("a")
    ex.bind("b", "x")
    ex.bind("a", "y")  # a second binding of a: still one copy
    assert ex.route("anything") == ["a", "b"]
    assert ex.route("") == ["a", "b"]


def test_the_same_binding_twice_is_one_binding():
    ex = Exchange("e", "direct")
    ex.bind("q", "k")
    ex.bind("q", "k")
    assert ex.bindings == [("q", "k")]
    ex.unbind("q", "k")
    assert ex.route("k") == []


def test_unbinding_keeps_the_other_bindings_and_their_order():
    ex = Exchange("t", "topic")
    ex.bind("q1", "a.*")
    ex.bind("q2", "#")
    ex.bind("q1", "#")
    assert ex.route("a.b") == ["q1", "q2"]
    ex.unbind("q1", "a.*")
    # q1's remaining binding came after q2's
    assert ex.route("a.b") == ["q2", "q1"]
    ex.unbind_queue("q2")
    assert ex.route("z") == ["q1"]


def test_topic_routing_remembers_keys_but_forgets_on_a_new_binding():
    ex = Exchange("t", "topic")
    ex.bind("q1", "a.#")
    assert ex.route("a.b") == ["q1"]
    ex.bind("q2", "*.b")
    assert ex.route("a.b") == ["q1", "q2"]


def test_default_exchange_routes_to_the_queue_named_by_the_key():
    ex = default_exchange()
    ex.bind("orders", "orders")
    ex.bind("payments", "payments")
    assert ex.name == ""
    assert ex.route("orders") == ["orders"]
    assert ex.route("nobody") == []


def test_exchange_arguments_are_checked():
    with pytest.raises(ParamError, match="type"):
        Exchange("x", "headers")
    with pytest.raises(ParamError, match="name"):
        Exchange(None)  # type: ignore[arg-type]
    ex = Exchange("x", "topic")
    with pytest.raises(ParamError, match="queue"):
        ex.bind("", "a")
    with pytest.raises(ParamError, match="key"):
        ex.bind("q", 5)  # type: ignore[arg-type]
    with pytest.raises(ParamError, match="key"):
        ex.bind("q", "w." * 200)
    with pytest.raises(ParamError, match="routing_key"):
        ex.route(None)  # type: ignore[arg-type]
