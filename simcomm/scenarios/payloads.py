"""The payloads the scenarios send: orders from the book's FTGO application."""

from __future__ import annotations

from typing import Any

from simcomm._checks import is_whole
from simcomm.errors import ParamError

__all__ = ["MAX_LINES", "ORDER_EVENTS", "order", "order_cancelled", "order_created",
           "order_event", "order_reply", "order_revised", "ticket"]

#: Most line items an order may have.
MAX_LINES = 2000

_MENU = ("Chicken Vindaloo", "Lamb Rogan Josh", "Palak Paneer", "Garlic Naan",
         "Mango Lassi", "Vegetable Samosa", "Chana Masala", "Basmati Rice")


def order(lines: int = 500) -> dict[str, Any]:
    """An FTGO-style order with ``lines`` line items (a request body).

    Deterministic: the same ``lines`` gives an equal order.  Each line item
    has a menu item id, a dish name, a quantity and a price.  Any whole
    number type will do (``numpy.int64`` from ``np.arange`` too).
    """
    if not is_whole(lines) or not 1 <= lines <= MAX_LINES:
        raise ParamError("order_lines", lines, f"a whole number from 1 to {MAX_LINES}")
    lines = int(lines)
    return {
        "orderId": 123456789, "consumerId": 4711, "restaurantId": 42,
        "deliveryAddress": {"street": "1 Main Street", "city": "Oakland", "zip": "94611"},
        "lineItems": [{"menuItemId": f"m-{1000 + i}", "name": _MENU[i % len(_MENU)],
                       "quantity": 1 + i % 3, "price": round(4.5 + (i * 37 % 200) / 10, 2)}
                      for i in range(lines)],
        "paymentToken": "tok_visa_4242424242424242",
    }


def order_reply(body: dict[str, Any]) -> dict[str, Any]:
    """The order service's reply: the order as stored, with its state."""
    return {"orderId": body["orderId"], "state": "APPROVED",
            **{k: v for k, v in body.items() if k != "orderId"}}


def ticket(i: int) -> dict[str, Any]:
    """The body of the ``i``-th CreateTicket command the order service sends the
    kitchen (the book's FTGO example), small: what the messaging scenarios carry."""
    return {"command": "CreateTicket", "orderId": 1000 + i}


#: The order lifecycle's domain events, in the order the order service emits them for
#: one order (FTGO's Order aggregate: created, then revised, then cancelled).
ORDER_EVENTS = ("OrderCreated", "OrderRevised", "OrderCancelled")


def order_created(order_id: int, customer_id: int) -> dict[str, Any]:
    """The body of ``OrderCreated`` for order ``order_id`` of customer ``customer_id``:
    the first event of an order's life (version 1), small -- what the ordering
    scenarios carry."""
    return {"event": "OrderCreated", "orderId": order_id, "consumerId": customer_id,
            "version": 1}


def order_revised(order_id: int, customer_id: int) -> dict[str, Any]:
    """The body of ``OrderRevised``: the order's line items changed (version 2).
    Applied before its ``OrderCreated`` it revises an order that does not exist yet
    -- the ordering bug the sharded channel removes."""
    return {"event": "OrderRevised", "orderId": order_id, "consumerId": customer_id,
            "version": 2}


def order_cancelled(order_id: int, customer_id: int) -> dict[str, Any]:
    """The body of ``OrderCancelled``: the order's last event (version 3).  Applied
    before its ``OrderRevised``, a consumer revives a cancelled order."""
    return {"event": "OrderCancelled", "orderId": order_id, "consumerId": customer_id,
            "version": 3}


_BODIES = (order_created, order_revised, order_cancelled)


def order_event(step: int, order_id: int, customer_id: int) -> dict[str, Any]:
    """The body of the ``step``-th event (0, 1, 2: :data:`ORDER_EVENTS`) of an order."""
    if not is_whole(step) or not 0 <= step < len(_BODIES):
        raise ParamError("step", step, f"a whole number from 0 to {len(_BODIES) - 1}")
    return _BODIES[int(step)](order_id, customer_id)
