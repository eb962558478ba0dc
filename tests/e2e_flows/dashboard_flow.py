"""A flow with something of every kind for the dashboard to show, run as a script:

    python dashboard_flow.py WORKDIR TOPIC

An agent (Pydantic AI's `TestModel`, no network) runs inside a checkpoint, so its model
requests and tool calls are child events of that call; a chart is saved as PNG bytes; the
report is markdown; the flow writes a memory key. WORKDIR/exec_id gets the execution id.
"""

from __future__ import annotations

import sys
import zlib
from pathlib import Path
from struct import pack

from pydantic_ai import Agent
from pydantic_ai.models.test import TestModel

import kitaru
from kitaru import checkpoint, flow
from kitaru.adapters.pydantic_ai import KitaruAgent


def lookup(topic: str) -> str:
    """Facts about a topic."""
    return f"{topic}: durable, resumable, observable"


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A plain PNG image of one colour."""
    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return pack(">I", len(data)) + kind + data + pack(">I", zlib.crc32(kind + data))

    header = pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


@checkpoint(type="agent_run")
def research(topic: str) -> str:
    agent = Agent(TestModel(), name="researcher", tools=[lookup])
    print(f"researching {topic}")
    return KitaruAgent(agent).run_sync(f"Research {topic}").output


@checkpoint
def chart(topic: str) -> bytes:
    return png(48, 24, (61, 90, 254) if "agents" in topic else (200, 80, 40))


@checkpoint
def write_report(topic: str, notes: str) -> str:
    kitaru.log(words=len(notes.split()))
    return f"# Report on {topic}\n\n- **notes**: {notes}\n- status: *draft*\n"


@flow
def dashboard_demo(topic: str) -> dict[str, str]:
    notes = research(topic)
    chart(topic)
    report = write_report(topic, notes)
    kitaru.memory.set("last_topic", {"topic": topic})
    return {"topic": topic, "report": report.load()}


if __name__ == "__main__":
    work, topic = Path(sys.argv[1]), sys.argv[2]
    handle = dashboard_demo.run(topic)
    handle.wait(timeout=120)
    (work / "exec_id").write_text(handle.exec_id)
