"""A flow whose approval is answered at the terminal prompt of a local run."""

from kitaru import checkpoint, flow, wait


@checkpoint
def draft() -> str:
    return "a draft"


@flow
def prompted() -> str:
    text = draft()
    ok = wait(name="approve", question="Ship the draft?", schema=bool, timeout=30)
    return f"{text.load()} shipped" if ok else "rejected"


if __name__ == "__main__":
    print("RESULT:", prompted.run().wait(), flush=True)
