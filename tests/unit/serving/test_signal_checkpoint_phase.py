"""Checkpoints of streams opened together are spread over the checkpoint period."""

from types import SimpleNamespace

from medseq.serving.signal_service import SignalStreams


def _checkpoints(stream_id: str, every: int, n_chunks: int) -> list[int]:
    service = SimpleNamespace(checkpoint_every=every)
    seqs, last = [], 0
    for seq in range(1, n_chunks + 1):
        if SignalStreams._checkpoint_due(service, stream_id, seq, last):  # type: ignore[arg-type]
            seqs.append(seq)
            last = seq
    return seqs


def test_streams_checkpoint_at_different_phases_and_never_further_apart_than_the_period():
    every, n = 30, 200
    firsts = set()
    for i in range(200):
        seqs = _checkpoints(f"stream-{i}", every, n)
        gaps = [b - a for a, b in zip([0, *seqs], seqs, strict=False)]
        assert max(gaps) <= every and n - seqs[-1] < every
        firsts.add(seqs[0] % every)
    # 200 streams opened in the same second: their first checkpoints fall on most of the 30
    # phases instead of all on chunk 30 (the burst that made the 99th percentile).
    assert len(firsts) >= 25
