"""The order confirmation mail: plain text with an HTML alternative."""

from __future__ import annotations

import html
from decimal import Decimal
from email.message import EmailMessage
from email.utils import formatdate

from schemas import OrderCreated, OrderReminder

# ISO 4217 currencies whose minor unit is not the cent; every other has two decimals.
_MINOR_DIGITS = {
    **dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF",
                     "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
}


def format_money(minor_units: int, currency: str) -> str:
    """``1234, "EUR"`` as ``"EUR 12.34"`` (minor units as the currency defines them)."""
    digits = _MINOR_DIGITS.get(currency, 2)
    amount = Decimal(minor_units).scaleb(-digits)
    return f"{currency} {amount:,.{digits}f}"


def message_id_for(event_id: str) -> str:
    """The Message-ID of the mail an event causes: a resend is recognisably the same mail."""
    return f"<{event_id}@tidings>"


def subject_for(event: OrderCreated) -> str:
    """The confirmation's subject line."""
    return f"Your order {event.order_id} has been received"


def render_confirmation(event: OrderCreated, *, sender: str, event_id: str) -> EmailMessage:
    """The confirmation of ``event`` to its customer, ready to send."""
    lines = [
        (item.sku, item.quantity, format_money(item.unit_price_cents, event.currency),
         format_money(item.quantity * item.unit_price_cents, event.currency))
        for item in event.items
    ]
    total = format_money(event.total_cents, event.currency)
    coupon = f"Coupon {event.coupon_code} applied.\n" if event.coupon_code else ""
    text = (
        f"Thank you for your order {event.order_id}.\n\n"
        + "".join(f"  {qty} x {sku} at {unit} = {amount}\n" for sku, qty, unit, amount in lines)
        + f"\n{coupon}Total: {total}\n\n"
        "We will let you know when it ships.\n"
    )
    rows = "".join(
        f"<tr><td>{html.escape(sku)}</td><td>{qty}</td><td>{html.escape(unit)}</td>"
        f"<td>{html.escape(amount)}</td></tr>"
        for sku, qty, unit, amount in lines
    )
    coupon_html = f"<p>Coupon {html.escape(event.coupon_code)} applied.</p>" \
        if event.coupon_code else ""
    body = (
        "<html><body>"
        f"<p>Thank you for your order <b>{html.escape(event.order_id)}</b>.</p>"
        "<table><tr><th>SKU</th><th>Qty</th><th>Unit price</th><th>Amount</th></tr>"
        f"{rows}</table>{coupon_html}<p><b>Total: {html.escape(total)}</b></p>"
        "<p>We will let you know when it ships.</p></body></html>"
    )
    message = EmailMessage()
    message["From"] = sender
    message["To"] = event.customer_email
    message["Subject"] = subject_for(event)
    message["Date"] = formatdate(event.created_at.timestamp())
    message["Message-ID"] = message_id_for(event_id)
    message.set_content(text)
    message.add_alternative(body, subtype="html")
    return message


def reminder_subject(event: OrderReminder) -> str:
    return f"Reminder about your order {event.order_id}"


def render_reminder(event: OrderReminder, *, sender: str, event_id: str) -> EmailMessage:
    """A reminder (an ``order.reminder``, delivered when it fell due) to its customer."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = event.customer_email
    message["Subject"] = reminder_subject(event)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = message_id_for(event_id)
    message.set_content(f"A reminder about your order {event.order_id}:\n\n{event.note}\n")
    return message
