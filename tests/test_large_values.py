"""Large values are serialized in chunks straight to the store: same bytes and key as in one
piece, read back exactly, in flows and in isolated workers."""

from __future__ import annotations

import hashlib

import pytest

from kitaru import KitaruClient, checkpoint, flow
from kitaru_core import serializers
from kitaru_core.serializers import deserialize, serialize, serialize_chunks
from kitaru_core.stack import get_stack


@pytest.fixture
def small_pieces(monkeypatch):
    """Stream from 64 characters on, in pieces of 10: every boundary case in a small value."""
    monkeypatch.setattr(serializers, "STREAM_MIN_CHARS", 64)
    monkeypatch.setattr(serializers, "_PIECE_CHARS", 10)


@pytest.mark.parametrize("text", [
    "plain ascii " * 20,
    "quotes \" and back\\slashes \n\t and controls \x00\x1f " * 5,
    "non-ascii: é, 漢字, emoji 🎉 (astral), " * 5,
    "lone surrogates \ud800 and \udfff stay as they were " * 5,
])
def test_chunks_join_to_exactly_the_bytes_of_one_piece(small_pieces, text):
    streamed = serialize_chunks(text)
    assert streamed is not None
    chunks, name = streamed
    joined = b"".join(chunks)
    assert (joined, name) == serialize(text)
    assert deserialize(joined, name) == text


def test_small_values_and_other_types_are_not_streamed():
    assert serialize_chunks("short") is None
    assert serialize_chunks(b"x" * (serializers.STREAM_MIN_CHARS + 1)) is None
    assert serialize_chunks({"a": "x" * 10}) is None


@checkpoint
def produce(n: int) -> str:
    return "ab\"c\\é" * n


@checkpoint(runtime="isolated")
def produce_elsewhere(n: int) -> str:
    return "isolated é " * n


@flow
def large(n: int) -> str:
    return produce(n).load()


def test_a_large_output_is_streamed_to_its_content_key_and_read_back(small_pieces):
    handle = large.run(100)
    value = handle.wait()
    assert value == "ab\"c\\é" * 100
    output = KitaruClient().executions.get(handle.exec_id).checkpoints[0].output
    data, _ = serialize(value)
    assert output.key == hashlib.sha256(data).hexdigest() and output.size == len(data)
    assert get_stack().artifact_store.get_blob(output.key) == data
    assert output.load() == value
    assert large.run(100).wait() == value  # the same content again: found in place


@pytest.mark.slow
def test_an_isolated_worker_streams_its_large_output(small_pieces, tmp_path, kitaru_home):
    # The worker is another process: its threshold is the default, so make the value large.
    n = serializers.STREAM_MIN_CHARS // 5
    stack_file = tmp_path / "iso.yaml"
    stack_file.write_text(
        "name: iso\nregistry: {flavor: sqlite}\nartifact_store: {flavor: local}\n"
        "orchestrator: {flavor: local}\nexecution_target: {flavor: process}\n"
    )
    from kitaru_core.stack import StackStore, clear_stack_cache

    StackStore(kitaru_home).register(stack_file)
    clear_stack_cache()

    @flow(stack="iso")
    def elsewhere(n: int) -> int:
        return len(produce_elsewhere(n).load())

    assert elsewhere.run(n).wait() == len("isolated é " * n)
