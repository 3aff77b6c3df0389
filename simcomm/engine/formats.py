"""Message formats: how many bytes a payload takes, and what coding it costs.

A format turns a message body (dicts, lists, strings, numbers, booleans,
``None``) into a number of bytes on the wire, and charges CPU time per byte
to encode (sender) and decode (receiver).  The size model follows each
format's real encoding rules field by field:

* **JSON** (RFC 8259), compact: ``{"key":value,...}``; strings quoted,
  numbers in decimal text.  Field names travel in every message.
* **XML**: one element per field, ``<key>value</key>``, list items as
  ``<item>``; names travel twice (open and close tag).
* **Protocol Buffers** (proto3 wire format): per field a varint tag
  (1 byte for field numbers below 16), ints as varints, doubles in 8 bytes,
  strings and nested messages length-prefixed; repeated numbers packed.
  Names never travel: they live in the ``.proto`` schema.  Fields are
  modelled with explicit presence (proto3 ``optional``): ``None`` is left
  out, a value that is set -- even 0 or "" -- is sent.
* **Avro** (binary encoding): no tags at all, fields in schema order; ints
  and longs as zig-zag varints, doubles in 8 bytes, strings length-prefixed,
  arrays as counted blocks ending in a zero.

The CPU figures are orders of magnitude, not measurements of one library:
text codecs typically run at tens to a few hundred MB/s (Jackson-class JSON
about 100-200 MB/s, JAXB-class XML tens of MB/s), binary codecs such as
protobuf-java and Avro at roughly 0.5-1 GB/s, as reported by public
serializer benchmarks (e.g. the jvm-serializers suite).  Decoding text is
slower than encoding it.  Pass your own :class:`Format` to study a codec
you have measured.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from simcomm._checks import as_real, is_real, is_whole
from simcomm.errors import ParamError

__all__ = ["FORMATS", "Format", "get_format"]


def _plain(v: Any) -> int | float:
    """A number as the plain int or float it stands for (numpy's too)."""
    return int(v) if is_whole(v) else float(v)


def _varint_len(n: int) -> int:
    """Bytes of a base-128 varint for a non-negative integer."""
    if n < 0:
        return 10  # proto3 int64: negative numbers always take ten bytes
    length = 1
    while n >= 0x80:
        n >>= 7
        length += 1
    return length


def _zigzag_len(n: int) -> int:
    return _varint_len((n << 1) if n >= 0 else ((-n) << 1) - 1)


def _json_size(v: Any) -> int:
    if v is None:
        return 4
    if isinstance(v, bool):
        return 4 if v else 5
    if isinstance(v, int):
        return len(str(v))
    if isinstance(v, float):
        return len(repr(float(v)))  # numpy's float64 is a float; its repr is not JSON
    if isinstance(v, str):
        return len(v.encode()) + 2
    if isinstance(v, Mapping):
        if not v:
            return 2
        return 1 + sum(len(str(k).encode()) + 3 + _json_size(x) + 1 for k, x in v.items())
    if isinstance(v, (list, tuple)):
        if not v:
            return 2
        return 1 + sum(_json_size(x) + 1 for x in v)
    if is_real(v):  # a numpy number travels as the plain number it stands for
        return _json_size(_plain(v))
    raise TypeError(f"cannot size a {type(v).__name__} as JSON")


def _xml_text(v: Any) -> int:
    if v is None:
        return 0
    if isinstance(v, bool):
        return 4 if v else 5
    if isinstance(v, (int, float)):
        return len(str(_plain(v)))
    if isinstance(v, str):
        return len(v.encode())
    if isinstance(v, Mapping):
        return sum(_xml_element(str(k), x) for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return sum(_xml_element("item", x) for x in v)
    if is_real(v):
        return _xml_text(_plain(v))
    raise TypeError(f"cannot size a {type(v).__name__} as XML")


def _xml_element(name: str, v: Any) -> int:
    n = len(name.encode())
    return 2 * n + 5 + _xml_text(v)


def _proto_value(field_no: int, v: Any) -> int:
    tag = _varint_len(field_no << 3)
    if v is None:
        return 0  # proto3 omits unset fields
    if isinstance(v, bool):
        return tag + 1
    if isinstance(v, int):
        return tag + _varint_len(v)
    if isinstance(v, float):
        return tag + 8
    if isinstance(v, str):
        n = len(v.encode())
        return tag + _varint_len(n) + n
    if isinstance(v, Mapping):
        n = _proto_message(v)
        return tag + _varint_len(n) + n
    if isinstance(v, (list, tuple)):
        if v and all(is_real(x) for x in v):
            n = sum(_varint_len(int(x)) if is_whole(x) else 8 for x in v)
            return tag + _varint_len(n) + n  # packed repeated scalars
        return sum(_proto_value(field_no, x) for x in v)
    if is_real(v):
        return _proto_value(field_no, _plain(v))
    raise TypeError(f"cannot size a {type(v).__name__} as Protobuf")


def _proto_message(v: Mapping) -> int:
    return sum(_proto_value(i, x) for i, x in enumerate(v.values(), start=1))


def _proto_size(v: Any) -> int:
    if isinstance(v, Mapping):
        return _proto_message(v)
    return _proto_value(1, v)


def _avro_size(v: Any) -> int:
    if v is None:
        return 0
    if isinstance(v, bool):
        return 1
    if isinstance(v, int):
        return _zigzag_len(v)
    if isinstance(v, float):
        return 8
    if isinstance(v, str):
        n = len(v.encode())
        return _zigzag_len(n) + n
    if isinstance(v, Mapping):
        return sum(_avro_size(x) for x in v.values())
    if isinstance(v, (list, tuple)):
        if not v:
            return 1
        return _zigzag_len(len(v)) + sum(_avro_size(x) for x in v) + 1
    if is_real(v):
        return _avro_size(_plain(v))
    raise TypeError(f"cannot size a {type(v).__name__} as Avro")


_SIZERS = {"json": _json_size, "xml": None, "protobuf": _proto_size, "avro": _avro_size}


@dataclass(frozen=True)
class Format:
    """A wire format: its size model and its coding cost in seconds per byte.

    ``name`` picks the size model (``json``, ``xml``, ``protobuf`` or
    ``avro``); a codec you have measured is a Format with that model and
    your own costs.  ``envelope`` bytes are added to every message (XML
    declaration and root element; Avro's single-object header; nothing for
    JSON and Protobuf).
    """

    name: str
    encode_per_byte: float
    decode_per_byte: float
    envelope: int = 0
    text: bool = True
    # sizes of the bodies seen lately, by object identity (see ``size``)
    _cache: dict[int, tuple[Any, int]] = field(default_factory=dict, init=False,
                                               repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.name not in _SIZERS:
            raise ParamError("name", self.name, "the size model to use: one of "
                             + ", ".join(_SIZERS))
        for name in ("encode_per_byte", "decode_per_byte", "envelope"):
            v = getattr(self, name)
            number = as_real(v)
            if number is None or not number >= 0 or math.isinf(number):
                raise ParamError(name, v, "a finite number >= 0")
            if name == "envelope":
                if not number.is_integer():
                    raise ParamError(name, v, "a whole number of bytes >= 0")
                number = int(number)
            object.__setattr__(self, name, number)

    def size(self, body: Any) -> int:
        """Bytes on the wire for ``body`` in this format.

        Bodies are treated as immutable: the size of a body object is
        computed once and remembered, since the same payload is usually
        forwarded hop after hop.
        """
        cache = self._cache
        hit = cache.get(id(body))
        if hit is not None and hit[0] is body:
            return hit[1]
        if self.name == "xml":
            n = self.envelope + _xml_element("message", body)
        else:
            sizer = _SIZERS[self.name]
            assert sizer is not None  # only XML has none, handled above
            n = self.envelope + sizer(body)
        if len(cache) >= 4096:
            cache.clear()
        cache[id(body)] = (body, n)
        return n

    def encode_cost(self, nbytes: int) -> float:
        """Seconds of CPU to encode ``nbytes``."""
        return self.encode_per_byte * nbytes

    def decode_cost(self, nbytes: int) -> float:
        """Seconds of CPU to decode ``nbytes``."""
        return self.decode_per_byte * nbytes


FORMATS: dict[str, Format] = {
    "json": Format("json", encode_per_byte=5e-9, decode_per_byte=8e-9),
    "xml": Format("xml", encode_per_byte=15e-9, decode_per_byte=30e-9, envelope=38),
    "protobuf": Format("protobuf", encode_per_byte=1e-9, decode_per_byte=1.5e-9, text=False),
    "avro": Format("avro", encode_per_byte=1.2e-9, decode_per_byte=2e-9, envelope=10,
                   text=False),
}


def get_format(name: str | Format, field: str = "message_format") -> Format:
    """The format called ``name`` (or ``name`` itself if it is a Format)."""
    if isinstance(name, Format):
        return name
    fmt = FORMATS.get(name)
    if fmt is None:
        raise ParamError(field, name, f"one of {', '.join(FORMATS)}")
    return fmt
