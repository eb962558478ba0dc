"""The order flow. Run it as a module from the package's parent folder:

    python -m shop.orders WORKDIR [ORDER_ID]
"""

from __future__ import annotations

import sys
from pathlib import Path

from kitaru import flow

from .steps import charge, load_order, price


@flow
def process_order(workdir: str, order_id: int) -> str:
    order = load_order(workdir, order_id)
    total = price(workdir, order)
    return charge(workdir, order, total)


def main(argv: list[str]) -> None:
    workdir = argv[0]
    order_id = int(argv[1]) if len(argv) > 1 else 7
    handle = process_order.run(workdir, order_id)
    (Path(workdir) / "exec_id").write_text(handle.exec_id)
    print(handle.wait())


if __name__ == "__main__":
    main(sys.argv[1:])
