"""The held-bytes bookkeeping (``Channel.held``, ``held_bytes``) is shared by the
listener's thread (``accept``, ``receive``) and the flushing thread (``flush`` spools
the own records, and trims what was delivered): every write into it holds the pipeline's
``_held_lock``, whichever path stores the batch."""

from __future__ import annotations

from pathlib import Path

from lambda_wrapper.export import Pipeline
from lambda_wrapper.instruments import own_event
from test_pipeline import Recorder, body


class LockCheckingPipeline(Pipeline):
    """Records, for every batch stored, whether the held-bytes lock was held."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.stored_under_lock: list[bool] = []

    def _store(self, *args, **kwargs) -> None:
        self.stored_under_lock.append(self._held_lock.locked())
        super()._store(*args, **kwargs)


def test_every_stored_batch_is_counted_under_the_held_bytes_lock(tmp_path: Path) -> None:
    exporter = Recorder("file")
    exporter.local = True
    pipeline = LockCheckingPipeline([exporter], str(tmp_path), 1 << 20)
    pipeline.accept(body("platform batch"))
    pipeline.submit(own_event("lambda_wrapper.test", {"n": 1}))
    pipeline.receive(body("after own records"))  # spools the own record first
    pipeline.submit(own_event("lambda_wrapper.test", {"n": 2}))
    pipeline.flush(1.0)  # spools the own record submitted since, on the flushing thread
    assert pipeline.stored_under_lock == [True, True, True, True]
    assert pipeline.held_bytes() == 0
    assert [channel.held_bytes for channel in pipeline.channels] == [0]
