"""The orders the demo places, and what the services must end up with because of them."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class PlannedOrder:
    body: dict[str, Any]
    kind: str  # "normal", "flaky" (SMTP 451 once), "bounce" (SMTP 550)

    @property
    def total_cents(self) -> int:
        return sum(i["quantity"] * i["unit_price_cents"] for i in self.body["items"])


@dataclass
class Scenario:
    orders: list[PlannedOrder]
    cancel_every: int
    duplicates: int
    poison: int
    order_ids: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)

    @property
    def flaky(self) -> int:
        return sum(o.kind == "flaky" for o in self.orders)

    @property
    def bounces(self) -> int:
        return sum(o.kind == "bounce" for o in self.orders)


PRICES = {
    "MUG-CLASSIC-WHT": 1200, "MUG-TRAVEL-BLK": 2400, "TEE-LOGO-M": 1900, "TEE-LOGO-L": 1900,
    "HOODIE-GRY-L": 4900, "CAP-SNAPBACK-NVY": 2200, "STICKER-PACK-10": 500,
    "NOTEBOOK-A5-DOT": 1400, "POSTER-A2-LTD": 3500, "KEYBOARD-MECH-TKL": 12900,
}


def plan(count: int, stock: dict[str, int], seed: int = 7) -> Scenario:
    """``count`` orders: SKUs weighted by stock (so most succeed and a few sell out),
    a few customers whose mail server fails once or rejects, some cancellations."""
    rng = random.Random(seed)
    skus = sorted(stock)
    weights = [max(stock[sku], 20) for sku in skus]
    step = max(1, count // max(3, count // 200))
    flaky = set(range(1, count, step))
    bounce = {count // 3 + 1, 2 * count // 3 + 1} - flaky if count >= 50 else set()
    orders = []
    for index in range(count):
        chosen = dict.fromkeys(rng.choices(skus, weights, k=rng.randint(1, 2)))
        kind = "bounce" if index in bounce else "flaky" if index in flaky else "normal"
        tag = {"normal": "", "flaky": "+flaky", "bounce": "+bounce"}[kind]
        orders.append(PlannedOrder({
            "customer_id": f"cust-{rng.randint(1, 400)}",
            "customer_email": f"customer{index}{tag}@shop.example",
            "currency": "EUR",
            "items": [{"sku": sku, "quantity": rng.randint(1, 2),
                       "unit_price_cents": PRICES.get(sku, 1000)} for sku in chosen],
        }, kind))
    return Scenario(orders, cancel_every=20, duplicates=5 if count >= 20 else 0,
                    poison=3)
