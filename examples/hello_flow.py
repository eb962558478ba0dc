"""The smallest durable flow: two checkpoints on the local stack."""

from kitaru import checkpoint, flow


@checkpoint
def research(topic: str) -> str:
    print(f"researching {topic}")
    return f"three facts about {topic}"


@checkpoint
def write_summary(notes: str) -> str:
    return f"Summary: {notes}."


@flow
def hello(topic: str) -> str:
    notes = research(topic)
    return write_summary(notes)


if __name__ == "__main__":
    handle = hello.run("durable agents")
    print(handle.wait())
    print(f"execution {handle.exec_id}: inspect it with `kitaru executions get {handle.exec_id}`")
