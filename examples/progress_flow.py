"""Run options and live events, written as for Kitaru 0.21.

    python examples/progress_flow.py
    kitaru executions logs <id> --follow      # the same events, from another shell

`@flow(retries=1)` runs the body again when the upload fails once (the crunching is not
redone: its checkpoint completed), `.run(..., cache=False)` makes every checkpoint of this
run fresh, and the progress of `crunch` is printed while it runs.
"""

from __future__ import annotations

import time

import kitaru
from kitaru import checkpoint, flow

# Recorded with each execution for a remote orchestrator; the local stack ignores it.
kitaru.configure(image=kitaru.ImageSettings(base_image="python:3.12-slim"))

uploads = 0


@checkpoint
def crunch(rows: int) -> int:
    done = 0
    for batch in range(4):
        time.sleep(0.3)  # the work
        done += rows // 4
        kitaru.progress(f"batch {batch + 1} of 4", percent=(batch + 1) / 4, rows=done)
    kitaru.events.publish("crunch.done", {"rows": done}, message="all batches crunched")
    return done


@checkpoint
def upload(total: int) -> str:
    global uploads
    uploads += 1
    if uploads == 1:
        raise ConnectionError("the upload service hiccuped")
    return f"uploaded {total} rows"


@flow(retries=1)
def nightly(rows: int) -> str:
    return upload(crunch(rows)).load()


if __name__ == "__main__":
    handle = nightly.run(1000, cache=False)
    client = kitaru.KitaruClient()
    for event in client.executions.events(handle.exec_id):  # ends when the run ends
        print(f"[{event.checkpoint_id}] {event.kind}: {event.message} {event.data}")
    print(handle.wait())
    print("options:", client.executions.get(handle.exec_id).options)
