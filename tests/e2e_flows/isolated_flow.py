"""Billing with isolated checkpoints. The stack decides where they run:

    KITARU_STACK=isolated python isolated_flow.py WORKDIR   # each in its own worker process
    python isolated_flow.py WORKDIR                          # the local stack: in this process

Returns the process ids that did the work, so a caller can see which ran where.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from pydantic import BaseModel

import kitaru
from kitaru import checkpoint, flow


class Invoice(BaseModel):
    customer: str
    lines: list[float]


class Summary(BaseModel):
    customer: str
    net: float
    gross: float
    computed_in: int


def note(workdir: str, what: str) -> None:
    with open(Path(workdir) / "runs.log", "a") as fh:
        fh.write(what + "\n")


@checkpoint
def gather(workdir: str, customer: str) -> Invoice:
    note(workdir, "gather")
    return Invoice(customer=customer, lines=[12.5, 7.5, 30.0])


@checkpoint(runtime="isolated")
def total(invoice: Invoice, tax_rate: float) -> Summary:
    print(f"totalling {len(invoice.lines)} lines for {invoice.customer}")
    net = sum(invoice.lines)
    kitaru.save("breakdown", {"lines": invoice.lines, "tax_rate": tax_rate})
    kitaru.log(line_count=len(invoice.lines))
    kitaru.progress("totalled", percent=1.0, lines=len(invoice.lines))  # recorded when it ends
    return Summary(customer=invoice.customer, net=net, gross=round(net * (1 + tax_rate), 2),
                   computed_in=os.getpid())


def make_formatter(currency: str):
    """A checkpoint built at run time: a worker gets it by value (cloudpickle)."""

    @checkpoint(runtime="isolated")
    def format_summary(summary: Summary) -> dict:
        return {"text": f"{summary.customer} owes {summary.gross:.2f} {currency}",
                "pid": os.getpid()}

    return format_summary


@checkpoint(runtime="isolated", retries=1, retry_delay=0.05)
def charge_card(workdir: str, amount: float) -> str:
    note(workdir, "charge_card")
    raise ConnectionError(f"payment provider unavailable while charging {amount:.2f}")


@flow
def billing(workdir: str, customer: str) -> dict:
    invoice = gather(workdir, customer)
    summary = total(invoice, 0.2)
    formatted = make_formatter("EUR")(summary)
    return {"summary": summary.load().model_dump(), "formatted": formatted.load(),
            "runner_pid": os.getpid()}


@flow
def settle(workdir: str, amount: float) -> str:
    return charge_card(workdir, amount)


if __name__ == "__main__":
    handle = billing.run(sys.argv[1], "ACME")
    print(json.dumps({"exec_id": handle.exec_id, "result": handle.wait()}))
