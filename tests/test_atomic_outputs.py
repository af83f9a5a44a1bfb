"""Every table the tool writes is written whole or not at all: a full disk mid-write leaves the
previous file readable (``--save-probs``, OOF files), and no temporary file behind."""

from __future__ import annotations

import errno

import numpy as np
import pandas as pd
import pytest

from arena_core.data.atomic_write import SubmissionWriteError, write_parquet_atomically
from arena_core.inference.ensemble import save_probs
from arena_core.inference.result import PredictionResult


def _result(p_a: float) -> PredictionResult:
    ids = np.array(["a", "b"], dtype=object)
    probs = np.array([[p_a, 1 - p_a], [0.5, 0.5]])
    nan = np.full((2, 2), np.nan)
    return PredictionResult(ids, probs, np.array(["model", "model"], dtype=object), {}, probs, nan)


def _disk_full_after_some_bytes(monkeypatch):
    def torn(self, name, **kwargs):
        with open(name, "wb") as f:
            f.write(b"PAR1 half a file")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", torn)


def test_save_probs_on_a_full_disk_keeps_the_previous_file_readable(tmp_path, monkeypatch):
    path = tmp_path / "probs.parquet"
    save_probs(_result(0.9), path, name="m")
    before = pd.read_parquet(path)
    _disk_full_after_some_bytes(monkeypatch)
    with pytest.raises(
        SubmissionWriteError,
        match=r"probs.parquet: writing the per-model probabilities failed: .*previous file is unchanged",
    ):
        save_probs(_result(0.1), path, name="m")
    monkeypatch.undo()
    pd.testing.assert_frame_equal(pd.read_parquet(path), before)
    assert [p.name for p in tmp_path.iterdir()] == ["probs.parquet"]


def test_a_new_table_is_not_left_half_written(tmp_path, monkeypatch):
    _disk_full_after_some_bytes(monkeypatch)
    with pytest.raises(SubmissionWriteError, match="nothing was written"):
        write_parquet_atomically(pd.DataFrame({"id": [1]}), tmp_path / "oof.parquet", "OOF predictions")
    assert list(tmp_path.iterdir()) == []
