"""The checkpoints of the order flow; each appends its name to WORKDIR/runs.log."""

from __future__ import annotations

import time
from pathlib import Path

from kitaru import checkpoint


def note(workdir: str, what: str) -> None:
    with open(Path(workdir) / "runs.log", "a") as fh:
        fh.write(what + "\n")


@checkpoint
def load_order(workdir: str, order_id: int) -> dict:
    note(workdir, "load_order")
    return {"id": order_id, "items": [{"sku": "tea", "qty": 2, "price": 4.5},
                                      {"sku": "mug", "qty": 1, "price": 12.0}]}


@checkpoint
def price(workdir: str, order: dict) -> float:
    note(workdir, "price")
    return sum(item["qty"] * item["price"] for item in order["items"])


@checkpoint
def charge(workdir: str, order: dict, total: float) -> str:
    """Blocks (after writing WORKDIR/ready) while WORKDIR/hold exists."""
    note(workdir, "charge")
    hold = Path(workdir) / "hold"
    if hold.exists():
        (Path(workdir) / "ready").write_text("charging")
        while hold.exists():
            time.sleep(0.05)
    return f"charged order {order['id']}: {total:.2f}"
