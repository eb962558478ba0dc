"""A crawler that prints as it goes, run as `python chatty_flow.py WORKDIR`.

`crawl` prints a line per page, writes WORKDIR/ready and then waits for
WORKDIR/release before it finishes, so a test can watch its output live.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from kitaru import checkpoint, flow


@checkpoint
def crawl(workdir: str, pages: int) -> list[str]:
    for n in range(1, pages + 1):
        print(f"crawled page {n}/{pages}", flush=True)
    (Path(workdir) / "ready").write_text("crawling")
    release = Path(workdir) / "release"
    deadline = time.monotonic() + 60
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    print("crawl done")
    return [f"/page/{n}" for n in range(1, pages + 1)]


@checkpoint
def build_index(urls: list[str]) -> dict[str, int]:
    print(f"indexed {len(urls)} pages")
    return {url: len(url) for url in urls}


@flow
def crawl_site(workdir: str, pages: int) -> dict[str, int]:
    return build_index(crawl(workdir, pages))


if __name__ == "__main__":
    handle = crawl_site.run(sys.argv[1], 3)
    (Path(sys.argv[1]) / "exec_id").write_text(handle.exec_id)
    print(handle.wait())
