"""Message formats: size models against real encodings, coding costs (engine.formats)."""

from __future__ import annotations

import json
import math
import string
import struct
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simcomm.engine import FORMATS, Format, get_format
from simcomm.errors import ParamError
from simcomm.scenarios.payloads import order

JSON, XML, PROTO, AVRO = (FORMATS[n] for n in ("json", "xml", "protobuf", "avro"))


# -- reference encoders: they produce the actual bytes ------------------------------

def varint(n: int) -> bytes:
    """Base-128 varint; negative numbers as 64-bit two's complement (proto int64)."""
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def zigzag(n: int) -> int:
    return (n << 1) if n >= 0 else ((-n) << 1) - 1


def proto_encode(body: dict[str, Any]) -> bytes:
    """proto3 wire format of a message whose fields are numbered in dict order.

    ints are int64 varints, floats doubles (fixed64), strings and nested
    messages length-delimited, lists of numbers packed, other lists repeated;
    None is an unset field (explicit presence: a set 0 is sent).
    """
    out = bytearray()
    for number, value in enumerate(body.values(), start=1):
        out += proto_field(number, value)
    return bytes(out)


def proto_field(number: int, v: Any) -> bytes:
    def tag(wire: int) -> bytes:
        return varint(number << 3 | wire)

    if v is None:
        return b""
    if isinstance(v, bool):
        return tag(0) + varint(int(v))
    if isinstance(v, int):
        return tag(0) + varint(v)
    if isinstance(v, float):
        return tag(1) + struct.pack("<d", v)
    if isinstance(v, str):
        data = v.encode()
        return tag(2) + varint(len(data)) + data
    if isinstance(v, dict):
        data = proto_encode(v)
        return tag(2) + varint(len(data)) + data
    if isinstance(v, list):
        if v and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
            data = b"".join(struct.pack("<d", x) if isinstance(x, float) else varint(x)
                            for x in v)
            return tag(2) + varint(len(data)) + data
        return b"".join(proto_field(number, x) for x in v)
    raise TypeError(v)


def avro_encode(v: Any) -> bytes:
    """Avro binary encoding (dicts as records, lists as one counted block)."""
    if v is None:
        return b""
    if isinstance(v, bool):
        return b"\x01" if v else b"\x00"
    if isinstance(v, int):
        return varint(zigzag(v))
    if isinstance(v, float):
        return struct.pack("<d", v)
    if isinstance(v, str):
        data = v.encode()
        return varint(zigzag(len(data))) + data
    if isinstance(v, dict):
        return b"".join(avro_encode(x) for x in v.values())
    if isinstance(v, list):
        if not v:
            return b"\x00"
        return varint(zigzag(len(v))) + b"".join(avro_encode(x) for x in v) + b"\x00"
    raise TypeError(v)


def xml_encode(body: Any) -> bytes:
    def element(name: str, v: Any) -> ET.Element:
        el = ET.Element(name)
        if isinstance(v, dict):
            el.extend(element(k, x) for k, x in v.items())
        elif isinstance(v, list):
            el.extend(element("item", x) for x in v)
        elif isinstance(v, bool):
            el.text = "true" if v else "false"
        elif v is not None:
            el.text = str(v)
        return el

    declaration = '<?xml version="1.0" encoding="UTF-8"?>'
    return (declaration + ET.tostring(element("message", body), encoding="unicode",
                                      short_empty_elements=False)).encode()


def compact_json(body: Any, ascii_only: bool = True) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=ascii_only,
                      allow_nan=False).encode()


# -- body strategies ---------------------------------------------------------------

# characters JSON never escapes: printable ASCII without '"' and '\'
SAFE_ASCII = "".join(c for c in string.printable if c not in '"\\' and c >= " ")
safe_text = st.text(alphabet=SAFE_ASCII, max_size=12)
names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,9}", fullmatch=True)
finite = st.floats(allow_nan=False, allow_infinity=False)
ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
scalars = st.none() | st.booleans() | ints | finite | safe_text


def nested(leaves, keys=names):
    return st.recursive(
        leaves,
        lambda children: st.lists(children, max_size=4)
        | st.dictionaries(keys, children, max_size=4),
        max_leaves=20,
    )


json_bodies = nested(scalars, keys=safe_text)


# -- JSON --------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(json_bodies)
def test_json_size_is_the_length_of_compact_json(body):
    assert JSON.size(body) == len(compact_json(body))


unicode_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)


@settings(max_examples=200, deadline=None)
@given(nested(st.none() | st.booleans() | ints | finite | unicode_text, keys=unicode_text))
def test_json_size_never_exceeds_the_real_utf8_encoding(body):
    # the model does not count escapes ('"', '\\', control characters), so it
    # is exact for escape-free text and a lower bound otherwise
    real = len(compact_json(body, ascii_only=False))
    assert JSON.size(body) <= real
    if "\\" not in json.dumps(body, ensure_ascii=False):  # nothing was escaped
        assert JSON.size(body) == real


@pytest.mark.parametrize("body", [
    {}, [], None, True, False, 0, -7, 3.5, 1e-07, 1e300, "", "a b",
    {"a": [1, 2.5, None, True, {"b": []}]}, order(2),
])
def test_json_examples(body):
    assert JSON.size(body) == len(compact_json(body))


def test_json_tuples_are_arrays():
    assert JSON.size({"a": (1, 2)}) == len(b'{"a":[1,2]}')


# -- XML ---------------------------------------------------------------------------

XML_TEXT = "".join(c for c in string.printable if c not in "&<>" and c >= " ")
xml_bodies = nested(st.none() | st.booleans() | ints | finite
                    | st.text(alphabet=XML_TEXT, max_size=12))


def test_xml_envelope_is_the_xml_declaration():
    assert XML.envelope == len('<?xml version="1.0" encoding="UTF-8"?>')


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(names, xml_bodies, max_size=5))
def test_xml_size_is_the_length_of_the_document(body):
    assert XML.size(body) == len(xml_encode(body))


def test_xml_example():
    body = {"id": 7, "ok": True, "tags": ["x", "y"], "note": None}
    doc = ('<?xml version="1.0" encoding="UTF-8"?><message><id>7</id><ok>true</ok>'
           "<tags><item>x</item><item>y</item></tags><note></note></message>")
    assert XML.size(body) == len(doc)


# -- Protocol Buffers ------------------------------------------------------------------

@pytest.mark.parametrize(("n", "nbytes"), [
    (0, 1), (1, 1), (127, 1), (128, 2), (300, 2), (16_383, 2), (16_384, 3),
    (2**35, 6), (2**63 - 1, 9), (-1, 10), (-(2**63), 10),
])
def test_protobuf_varint_lengths(n, nbytes):
    assert len(varint(n)) == nbytes  # the reference agrees with the spec table
    assert PROTO.size({"a": n}) == 1 + nbytes  # one-byte tag for field 1


def test_protobuf_examples_from_the_encoding_guide():
    # protobuf.dev/programming-guides/encoding: 150 in field 1 is 08 96 01
    assert PROTO.size({"a": 150}) == 3
    # "testing" in field 2 is 12 07 74 65 73 74 69 6e 67
    assert PROTO.size({"a": None, "b": "testing"}) == 9
    # packed [3, 270, 86942] in field 4 is 22 06 03 8e 02 9e a7 05
    assert PROTO.size({"a": None, "b": None, "c": None, "d": [3, 270, 86942]}) == 8


def test_protobuf_tags_take_two_bytes_from_field_16():
    body = {f"f{i}": 1 for i in range(1, 17)}
    assert PROTO.size(body) == 15 * 2 + 3


proto_scalar = st.booleans() | ints | finite | safe_text
proto_lists = (st.lists(ints, max_size=5) | st.lists(finite, max_size=5)
               | st.lists(safe_text, max_size=5))
proto_messages = st.recursive(
    st.dictionaries(names, st.none() | proto_scalar | proto_lists, max_size=5),
    lambda msgs: st.dictionaries(names, st.none() | proto_scalar | proto_lists | msgs
                                 | st.lists(msgs, max_size=3), max_size=5),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None)
@given(proto_messages)
def test_protobuf_size_is_the_length_of_the_wire_encoding(body):
    assert PROTO.size(body) == len(proto_encode(body))


# -- Avro --------------------------------------------------------------------------

@pytest.mark.parametrize(("n", "zz", "nbytes"), [
    (0, 0, 1), (-1, 1, 1), (1, 2, 1), (-2, 3, 1), (63, 126, 1), (-64, 127, 1),
    (64, 128, 2), (-65, 129, 2), (2**31 - 1, 2**32 - 2, 5), (-(2**31), 2**32 - 1, 5),
    (-(2**63), 2**64 - 1, 10),
])
def test_avro_zigzag(n, zz, nbytes):
    assert zigzag(n) == zz  # the spec's table: 0->0, -1->1, 1->2, -2->3, ...
    assert len(varint(zz)) == nbytes
    assert AVRO.size(n) == AVRO.envelope + nbytes


def test_avro_examples_from_the_specification():
    # avro.apache.org/docs/current/specification: "foo" is 06 66 6f 6f,
    # the array [3, 27] is 04 06 36 00
    assert AVRO.size("foo") == AVRO.envelope + 4
    assert AVRO.size([3, 27]) == AVRO.envelope + 4
    assert AVRO.size([]) == AVRO.envelope + 1
    # single-object encoding header: 2 marker bytes + 8-byte schema fingerprint
    assert AVRO.envelope == 10


@settings(max_examples=200, deadline=None)
@given(nested(st.none() | st.booleans() | ints | finite | safe_text))
def test_avro_size_is_the_length_of_the_binary_encoding(body):
    assert AVRO.size(body) == AVRO.envelope + len(avro_encode(body))


# -- comparing formats ------------------------------------------------------------------

def test_typical_record_xml_is_biggest_then_json_then_binary():
    body = order(2)
    sizes = {name: fmt.size(body) for name, fmt in FORMATS.items()}
    assert sizes["xml"] > sizes["json"] > max(sizes["avro"], sizes["protobuf"])
    # names travel in text formats, not in binary ones: at least 2x here
    assert sizes["json"] > 2 * max(sizes["avro"], sizes["protobuf"])


def test_cpu_cost_per_byte_xml_then_json_then_binary():
    for per_byte in ("encode_per_byte", "decode_per_byte"):
        xml, js = getattr(XML, per_byte), getattr(JSON, per_byte)
        binary = max(getattr(PROTO, per_byte), getattr(AVRO, per_byte))
        assert xml > js > binary > 0
    for fmt in (JSON, XML):  # decoding text is slower than encoding it
        assert fmt.decode_per_byte > fmt.encode_per_byte
        assert fmt.text
    assert not PROTO.text and not AVRO.text


def test_coding_cost_is_per_byte():
    for fmt in FORMATS.values():
        assert fmt.encode_cost(0) == 0
        assert fmt.encode_cost(1000) == pytest.approx(1000 * fmt.encode_per_byte)
        assert fmt.decode_cost(1000) == pytest.approx(1000 * fmt.decode_per_byte)
    # a typical 1 kB message costs microseconds, not milliseconds
    assert 1e-7 < JSON.decode_cost(1000) < 1e-4


def test_size_is_remembered_per_body_object_but_not_confused_between_bodies():
    a = {"x": "a" * 10}
    b = {"x": "a" * 20}
    assert JSON.size(a) == len(compact_json(a))
    assert JSON.size(b) == len(compact_json(b))
    assert JSON.size(a) == len(compact_json(a))
    for _ in range(5000):  # churn through the cache
        JSON.size({"n": 1})
    assert JSON.size(b) == len(compact_json(b))


# -- your own format ------------------------------------------------------------------------

def test_a_measured_codec_with_a_known_size_model():
    # same bytes as JSON, a faster codec, a 5-byte frame around each message
    fast = Format("json", encode_per_byte=1e-9, decode_per_byte=2e-9, envelope=5)
    body = {"id": 1, "name": "x"}
    assert JSON.size(body) == len(compact_json(body))  # the standard one first
    assert fast.size(body) == len(compact_json(body)) + 5
    assert get_format(fast) is fast


def test_a_format_without_a_size_model_is_refused_at_once():
    with pytest.raises(ParamError) as info:
        Format("yaml", encode_per_byte=1e-8, decode_per_byte=1e-8)
    assert info.value.field == "name"
    assert "json" in info.value.allowed


@pytest.mark.parametrize("field", ["encode_per_byte", "decode_per_byte", "envelope"])
@pytest.mark.parametrize("value", [-1, math.nan, math.inf])
def test_format_costs_and_envelope_are_checked(field, value):
    kwargs = {"encode_per_byte": 1e-9, "decode_per_byte": 1e-9, "envelope": 0}
    kwargs[field] = value
    with pytest.raises(ParamError) as info:
        Format("json", **kwargs)
    assert info.value.field == field


# -- get_format --------------------------------------------------------------------------

def test_get_format_by_name_and_errors():
    for name, fmt in FORMATS.items():
        assert get_format(name) is fmt
        assert fmt.name == name
    with pytest.raises(ParamError) as info:
        get_format("yaml")
    err = info.value
    assert err.field == "message_format"
    assert err.value == "yaml"
    assert all(name in err.allowed for name in FORMATS)
    with pytest.raises(ParamError) as info:
        get_format("JSON", field="format")
    assert info.value.field == "format"
    with pytest.raises(ParamError):
        get_format(None)  # type: ignore[arg-type]


def test_unsizable_body_is_a_type_error():
    for fmt in FORMATS.values():
        with pytest.raises(TypeError):
            fmt.size({"a": object()})
