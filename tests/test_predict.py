"""The inference engine: same numbers whatever the batching, exact TTA maths, a time contract, OOM."""

from __future__ import annotations

import argparse
import copy
import json
import time
import warnings
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from arena_core.config import EncodingConfig, ModelConfig, PredictConfig
from arena_core.data.submission import write_submission
from arena_core.data.submission_checks import validate_submission
from arena_core.evaluation.length import length_baseline
from arena_core.evaluation.metrics import position_bias
from arena_core.inference.combine import combine
from arena_core.inference.encoding_cache import encode_cached, make_reencoder
from arena_core.inference.engine import predict_probs
from arena_core.inference.ensemble import Member, predict_ensemble, save_probs
from arena_core.inference.scoring import Scorer, is_oom

ENC = EncodingConfig(max_length=192, min_part_tokens=8)


# ----------------------------------------------------------------------------- fixtures and fakes


def make_frame(n: int = 24, seed: int = 0, string_ids: bool = False) -> pd.DataFrame:
    """Rows with a wide length spread (a few words up to well past max_length)."""
    rng = np.random.default_rng(seed)
    words = "the answer is short clear helpful Paris Madrid 北京 ответ réponse 1 2 3".split()

    def text(lo, hi):
        return " ".join(rng.choice(words, size=int(rng.integers(lo, hi))))

    ids = rng.permutation(np.arange(1000, 1000 + n)).astype(np.int64)
    frame = pd.DataFrame(
        {
            "id": [f"row-{i:04d}" for i in ids] if string_ids else ids,
            "prompt": [text(1, 30) for _ in range(n)],
            "response_a": [text(1, 120) for _ in range(n)],
            "response_b": [text(1, 120) for _ in range(n)],
        }
    )
    if string_ids:
        frame["id"] = frame["id"].astype(object)
    return frame


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from arena_core.models.backbones import make_tiny_gemma2
    from arena_core.models.loading import load_classifier

    path = make_tiny_gemma2(tmp_path_factory.mktemp("tiny") / "gemma2")
    torch.manual_seed(0)
    with warnings.catch_warnings():  # the fresh, untrained head is the point here
        warnings.simplefilter("ignore")
        model, tok = load_classifier(
            ModelConfig(path=str(path), dtype="fp32"), None, device="cpu", for_training=False
        )
    with torch.no_grad():
        model.score.weight.mul_(30.0)  # spread the probabilities so differences would show
    return model, tok


@pytest.fixture(scope="module")
def encoded(tiny):
    return encode_cached(make_frame(), tiny[1], ENC)


def scorer_of(tiny, model=None):
    return Scorer(model or tiny[0], tiny[1].pad_token_id, device="cpu")


def by_id(result) -> pd.DataFrame:
    return result.frame().set_index("id").sort_index()


class FakeModel(torch.nn.Module):
    """Logits from the tokens (mean id, length) plus a bias; raises OOM above ``max_rows``; sleeps per token."""

    def __init__(self, bias=(0.0, 0.0), max_rows=None, sleep_per_token=0.0, content=True, oom=RuntimeError):
        super().__init__()
        self.bias = torch.tensor(bias, dtype=torch.float32)
        self.max_rows, self.sleep, self.content, self.oom = max_rows, sleep_per_token, content, oom
        self.calls: list[int] = []

    def forward(self, input_ids, attention_mask=None, **kwargs):
        n = int(input_ids.shape[0])
        self.calls.append(n)
        if self.max_rows is not None and n > self.max_rows:
            raise self.oom("CUDA out of memory. Tried to allocate 2.00 GiB (fake)")
        if self.sleep:
            time.sleep(self.sleep * input_ids.numel())
        mask = attention_mask.float()
        logits = torch.zeros(n, len(self.bias))
        if self.content:
            mean_id = (input_ids.float() * mask).sum(1) / mask.sum(1)
            logits[:, 0] = mean_id / 50.0
            logits[:, 1] = mask.sum(1) / 100.0
        return SimpleNamespace(logits=logits + self.bias)


def fake_scorer(**kw):
    return Scorer(FakeModel(**kw), pad_token_id=0, device="cpu")


# ----------------------------------------------------------------------------- invariance


def test_same_predictions_whatever_budget_order_and_workers(tiny, encoded):
    cfg = PredictConfig(token_budget=4096, max_rows_per_batch=64, tta="swap")
    base = predict_probs([scorer_of(tiny)], encoded, cfg, progress=False)
    assert base.coverage["model+swap"] == len(encoded.ids)
    assert base.stats["batches"] >= 2

    # Unbatched reference: each row alone, no padding at all.
    scorer = scorer_of(tiny)
    one = np.stack(
        [
            torch.softmax(torch.from_numpy(scorer.score_sequences([s])), -1).numpy()[0]
            for s in encoded.input_ids
        ]
    )
    assert np.allclose(base.probs_first, one, atol=1e-5)

    small = PredictConfig(token_budget=400, max_rows_per_batch=3, tta="swap")
    variants = [predict_probs([scorer_of(tiny)], encoded, small, progress=False)]
    shuffled = make_frame().sample(frac=1.0, random_state=3).reset_index(drop=True)
    variants.append(
        predict_probs([scorer_of(tiny)], encode_cached(shuffled, tiny[1], ENC), cfg, progress=False)
    )
    workers = [scorer_of(tiny, copy.deepcopy(tiny[0])) for _ in range(3)]
    variants.append(predict_probs(workers, encoded, small, progress=False))
    ref = by_id(base)
    for v in variants:
        got = by_id(v)
        assert list(got.index) == list(ref.index)
        assert np.allclose(got.to_numpy(), ref.to_numpy(), atol=1e-5)


@pytest.mark.parametrize("string_ids", [False, True])
def test_ids_preserved_exactly(tiny, string_ids):
    frame = make_frame(9, seed=5, string_ids=string_ids)
    res = predict_probs(
        [scorer_of(tiny)], encode_cached(frame, tiny[1], ENC), PredictConfig(tta="none"), progress=False
    )
    out = res.frame()
    assert out["id"].tolist() == frame["id"].tolist()
    if string_ids:
        assert all(isinstance(i, str) for i in out["id"])
    else:
        assert out["id"].dtype == np.int64
    assert np.allclose(out[["p_a", "p_b"]].sum(axis=1), 1.0)


# ----------------------------------------------------------------------------- TTA


def test_swap_tta_cancels_position_bias_exactly(tiny, encoded):
    # Prob mode, content-blind model that always favours the first-shown answer: swap gives exactly 0.5.
    blind = fake_scorer(bias=(6.0, 0.0), content=False)
    cfg = PredictConfig(ensemble_mode="prob")
    no_tta = predict_probs([blind], encoded, cfg, tta="none", progress=False)
    assert np.all(no_tta.probs[:, 0] > 0.99)
    swap = predict_probs([blind], encoded, cfg, tta="swap", progress=False)
    assert np.allclose(swap.probs, 0.5, atol=1e-12)
    bias = position_bias(swap.probs_first, swap.probs_swapped)
    assert bias["first_minus_second"] > 0.95 and bias["flip_rate"] == 1.0

    # Logit mode, real model + constant first-position bonus: TTA equals the unbiased model's TTA.
    class Biased(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, **kw):
            return SimpleNamespace(logits=self.inner(**kw).logits + torch.tensor([8.0, 0.0]))

    lcfg = PredictConfig(ensemble_mode="logit")
    biased = scorer_of(tiny, Biased(tiny[0]))
    plain = predict_probs([scorer_of(tiny)], encoded, lcfg, tta="swap", progress=False)
    raw = predict_probs([biased], encoded, lcfg, tta="none", progress=False)
    fixed = predict_probs([biased], encoded, lcfg, tta="swap", progress=False)
    assert raw.probs[:, 0].mean() > 0.9
    assert np.allclose(fixed.probs, plain.probs, atol=1e-5)


def test_three_class_swap_maps_a_b_and_keeps_tie(encoded):
    blind = fake_scorer(bias=(5.0, 0.0, 1.0), content=False)
    res = predict_probs([blind], encoded, PredictConfig(ensemble_mode="logit"), tta="swap", progress=False)
    assert res.n_classes == 3 and list(res.frame().columns) == ["id", "p_a", "p_b", "p_tie"]
    assert np.allclose(res.probs[:, 0], res.probs[:, 1], atol=1e-12)
    assert np.allclose(res.probs_swapped[:, [1, 0, 2]], res.probs_first, atol=1e-12)


def test_uncertain_tta_rescores_least_certain_first(encoded):
    scorer = fake_scorer(sleep_per_token=0.0)
    res = predict_probs(
        [scorer], encoded, PredictConfig(max_rows_per_batch=4), tta="uncertain", progress=False
    )
    assert res.coverage["model+swap"] == len(encoded.ids)  # no deadline: every row gets swapped
    full = predict_probs([fake_scorer()], encoded, PredictConfig(), tta="swap", progress=False)
    assert np.allclose(by_id(res).to_numpy(), by_id(full).to_numpy(), atol=1e-12)


# ----------------------------------------------------------------------------- time budget


def test_deadline_already_passed_gives_complete_fallback(tiny, encoded):
    frame = make_frame()
    fb = length_baseline(frame)
    res = predict_probs(
        [scorer_of(tiny)],
        encoded,
        PredictConfig(),
        tta="swap",
        deadline=time.monotonic() - 1,
        fallback_probs=fb,
        progress=False,
    )
    assert res.coverage == {"model+swap": 0, "model": 0, "model@short": 0, "fallback": len(frame)}
    merged = res.frame().merge(fb, on="id", suffixes=("", "_fb"))
    assert np.allclose(merged["p_a"], merged["p_a_fb"])


def test_tiny_budget_yields_complete_valid_submission(tmp_path, encoded):
    frame = make_frame()
    slow = fake_scorer(sleep_per_token=2e-4)  # a 400-token batch takes ~0.08 s
    res = predict_probs(
        [slow],
        encoded,
        PredictConfig(token_budget=400),
        tta="swap",
        deadline=time.monotonic() + 0.01,
        fallback_probs=length_baseline(frame),
        progress=False,
    )
    assert sum(res.coverage.values()) == len(frame)
    assert res.coverage["fallback"] > 0
    assert np.isfinite(res.probs).all() and np.allclose(res.probs.sum(axis=1), 1.0)
    out = write_submission(res.frame(), tmp_path / "submission.csv", fmt="lmsys", test_ids=frame["id"])
    validate_submission(out, frame["id"], "lmsys")


def test_partial_tta_when_only_one_pass_fits(encoded):
    # One pass ~0.5 s; budget 0.9 s: every row scored, the swapped pass only while time remains.
    total = int(encoded.lengths.sum())
    slow = fake_scorer(sleep_per_token=0.5 / total)
    res = predict_probs(
        [slow],
        encoded,
        PredictConfig(token_budget=300),
        tta="swap",
        deadline=time.monotonic() + 0.9,
        progress=False,
    )
    assert res.coverage["fallback"] == 0 and res.coverage["model@short"] == 0
    assert res.coverage["model+swap"] > 0 and res.coverage["model"] > 0
    assert any("only while time remains" in line for line in res.log)


def test_overshoot_drops_tta_then_shortens_then_falls_back(tiny, encoded):
    frame = make_frame()
    total = int(encoded.lengths.sum())
    slow = fake_scorer(sleep_per_token=3.0 / total)  # one full-length pass ~3 s, budget 1.2 s
    res = predict_probs(
        [slow],
        encoded,
        PredictConfig(token_budget=200, max_rows_per_batch=2),
        tta="swap",
        deadline=time.monotonic() + 1.2,
        fallback_probs=length_baseline(frame),
        progress=False,
        reencode=make_reencoder(frame, tiny[1], ENC),
    )
    log = "\n".join(res.log)
    assert "dropped TTA" in log and "re-encoded" in log
    assert res.coverage["model+swap"] == 0
    assert res.coverage["model@short"] > 0
    assert sum(res.coverage.values()) == len(frame)
    assert set(res.stats["short_lengths"]) <= {144, 96}


# ----------------------------------------------------------------------------- OOM


@pytest.mark.parametrize("oom", [RuntimeError, torch.cuda.OutOfMemoryError])
def test_oom_splits_batches_and_never_ends_the_run(encoded, oom):
    cfg = PredictConfig(token_budget=100_000, max_rows_per_batch=64)
    ref = predict_probs([fake_scorer()], encoded, cfg, tta="swap", progress=False)
    flaky = fake_scorer(max_rows=3, oom=oom)
    res = predict_probs([flaky], encoded, cfg, tta="swap", progress=False)
    assert res.stats["oom_splits"] > 0 and max(flaky.model.calls) > 3
    assert np.array_equal(res.ids, ref.ids) and np.allclose(res.probs, ref.probs, atol=1e-12)

    hopeless = fake_scorer(max_rows=0, oom=oom)
    with pytest.raises(oom):
        hopeless.score_sequences([np.array([2, 5, 6])])
    res = predict_probs([hopeless], encoded, cfg, tta="none", progress=False)
    assert res.coverage["fallback"] == len(encoded.ids)
    assert is_oom(oom("CUDA out of memory")) and not is_oom(ValueError("out of memory"))


class PickyOOM(FakeModel):
    """Out of memory for any batch holding a row whose token ids sum to a multiple of 3: such rows
    fall back (after splitting down to single rows), the others score."""

    def forward(self, input_ids, attention_mask=None, **kwargs):
        if ((input_ids * attention_mask).sum(1) % 3 == 0).any():
            raise RuntimeError("CUDA out of memory. Tried to allocate 1.00 GiB (fake)")
        return super().forward(input_ids, attention_mask)


@pytest.mark.parametrize("as_array", [True, False])
def test_fallback_array_fills_only_the_rows_that_fall_back(tiny, encoded, as_array):
    fb_frame = pd.DataFrame({"id": encoded.ids, "p_a": 0.2, "p_b": 0.8})
    fb_frame.loc[::2, ["p_a", "p_b"]] = [0.7, 0.3]  # row-specific values, so misplaced rows would show
    expected = fb_frame[["p_a", "p_b"]].to_numpy()
    fallback = expected if as_array else fb_frame
    cfg = PredictConfig(max_rows_per_batch=4)
    scorer = Scorer(PickyOOM(), pad_token_id=0, device="cpu")
    res = predict_probs([scorer], encoded, cfg, tta="none", fallback_probs=fallback, progress=False)
    fb = res.path == "fallback"
    assert 0 < fb.sum() < len(encoded.ids)
    assert np.allclose(res.probs[fb], expected[fb])

    member = Member("m", lambda: ([Scorer(PickyOOM(), 0, "cpu")], tiny[1], ENC))
    ens = predict_ensemble([member], make_frame(), cfg, tta="none", fallback_probs=fallback, progress=False)
    assert ens.coverage["fallback"] == fb.sum()
    assert np.allclose(ens.probs, res.probs)


def test_other_errors_propagate(encoded):
    class Broken(torch.nn.Module):
        def forward(self, **kw):
            raise KeyError("bug")

    with pytest.raises(KeyError):
        predict_probs([Scorer(Broken(), 0, "cpu")], encoded, PredictConfig(), tta="none", progress=False)


# ----------------------------------------------------------------------------- ensembles


def test_predict_ensemble_weights_cache_and_save_probs(tmp_path, tiny):
    frame = make_frame(10, seed=2)
    loads = []

    def member(name, model, weight):
        def load():
            loads.append(name)
            return [scorer_of(tiny, model)], tiny[1], ENC

        return Member(name, load, weight)

    blind = FakeModel(bias=(2.0, 0.0), content=False)
    cache: dict = {}
    res = predict_ensemble(
        [member("tiny", tiny[0], 3.0), member("blind", blind, 1.0)],
        frame,
        PredictConfig(),
        tta="none",
        progress=False,
        encode_cache=cache,
    )
    assert loads == ["tiny", "blind"] and len(cache) == 1  # same tokenizer + config: encoded once
    expected = combine([res.members["tiny"].probs, res.members["blind"].probs], [3, 1])
    assert np.allclose(res.probs, expected)
    assert res.coverage == {"all models": 10, "some models": 0, "fallback": 0}
    saved = pd.read_parquet(save_probs(res, tmp_path / "probs.parquet"))
    assert list(saved.columns) == [
        "id",
        "model",
        "p_a",
        "p_b",
        "p_a_ab",
        "p_b_ab",
        "p_a_ba",
        "p_b_ba",
        "path",
    ]
    assert saved.groupby("model").size().to_dict() == {"blind": 10, "ensemble": 10, "tiny": 10}
    members = saved[saved["model"] != "ensemble"]
    assert np.allclose(members["p_a_ab"], members["p_a"])  # tta=none: one order, scored as shown
    assert members["p_a_ba"].isna().all()

    late = predict_ensemble(
        [member("tiny", tiny[0], 1.0)],
        frame,
        PredictConfig(),
        deadline=time.monotonic() - 1,
        fallback_probs=length_baseline(frame),
        progress=False,
    )
    assert late.coverage["fallback"] == 10 and np.isfinite(late.probs).all()


# ----------------------------------------------------------------------------- CLI


def test_cli_predict_and_plan_end_to_end(tmp_path, tiny, capsys):
    from arena_core.cli.predict import register
    from arena_core.config import RunConfig
    from arena_core.models.runs import write_manifest

    model, tok = tiny
    run = tmp_path / "run"
    model.save_pretrained(run / "merged")
    tok.save_pretrained(run / "merged")
    tok.save_pretrained(run / "tokenizer")
    cfg = RunConfig(encoding=ENC)
    cfg.model.dtype = "fp32"
    write_manifest(run, cfg, base_path=run / "merged", fingerprint="x", metrics={})
    frame = make_frame(12, seed=4, string_ids=True)
    test = tmp_path / "comp" / "test.parquet"
    test.parent.mkdir()
    frame.to_parquet(test)

    parser = argparse.ArgumentParser(prog="arena")
    register(parser.add_subparsers(dest="command"))
    out = tmp_path / "submission.csv"
    args = parser.parse_args(
        [
            "predict",
            "--test",
            str(test),
            "--model",
            str(run),
            "--out",
            str(out),
            "--tta",
            "swap",
            "--time-budget",
            "10m",
            "--save-probs",
            str(tmp_path / "p.parquet"),
            "--device",
            "cpu",
            "--no-progress",
        ]
    )
    assert args.func(args) == 0
    sub = pd.read_csv(out, dtype={"id": str})
    assert sorted(sub["id"]) == sorted(frame["id"]) and set(sub.columns) == {"id", "winner"}
    assert "model+swap 12" in capsys.readouterr().out

    args = parser.parse_args(
        ["plan", "--test", str(test), "--model", str(run), "--gpu", "t4x2", "--rows-per-s", "2"]
    )
    assert args.func(args) == 0
    assert "plan for t4 x2" in capsys.readouterr().out
    args = parser.parse_args(
        ["plan", "--test", str(test), "--model", str(run), "--gpu", "cpu", "--device", "cpu"]
    )
    assert args.func(args) == 0
    assert "measured" in capsys.readouterr().out


def tiny_run(tmp_path, tiny, train_labels=None):
    """A merged 2-class run directory from the tiny model, its manifest optionally recording train_labels."""
    from arena_core.config import RunConfig
    from arena_core.models.runs import write_manifest

    model, tok = tiny
    run = tmp_path / "run"
    model.save_pretrained(run / "merged")
    tok.save_pretrained(run / "merged")
    tok.save_pretrained(run / "tokenizer")
    cfg = RunConfig(encoding=ENC)
    cfg.model.dtype = "fp32"
    extra = {"train_labels": train_labels} if train_labels else None
    write_manifest(run, cfg, base_path=run / "merged", fingerprint="x", metrics={}, extra=extra)
    return run


def lmsys_test_csv(path, n: int = 12):
    frame = make_frame(n, seed=5)
    pd.DataFrame(
        {
            "id": frame["id"],
            **{c: [json.dumps([t]) for t in frame[c]] for c in ("prompt", "response_a", "response_b")},
        }
    ).to_csv(path, index=False)
    return frame


def test_two_class_model_gets_the_training_tie_rate_in_an_lmsys_submission(tmp_path, tiny, capsys):
    from arena_core.cli import main

    run = tiny_run(tmp_path, tiny, train_labels={"model_a": 30, "model_b": 45, "tie": 25})
    lmsys_test_csv(tmp_path / "test.csv")
    out = tmp_path / "submission.csv"
    argv = ["predict", "--test", str(tmp_path / "test.csv"), "--model", str(run), "--out", str(out)]
    assert main([*argv, "--tta", "none", "--device", "cpu", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert (
        "warning: the model(s) predict 2 classes but the lmsys format scores ties: winner_tie = 0.250"
        in printed
    )
    assert f"the training data's tie rate ({run / 'manifest.json'}: 0.250)" in printed
    sub = pd.read_csv(out)
    assert np.allclose(sub["winner_tie"], 0.25)
    assert np.allclose(sub[["winner_model_a", "winner_model_b", "winner_tie"]].sum(axis=1), 1.0)
    assert sub["winner_model_a"].nunique() > 1  # the model's own A/B split survives the scaling


def test_training_records_winner_counts_before_dropping_ties(tmp_path):
    from arena_core.inference.fallback import choose_tie_rate, training_tie_rate
    from arena_core.training.frames import training_frame

    path = tmp_path / "train.csv"
    lmsys = {c: ['["x"]'] * 4 for c in ("prompt", "response_a", "response_b")}
    one_hot = {"winner_model_a": [1, 0, 0, 0], "winner_model_b": [0, 1, 0, 0], "winner_tie": [0, 0, 1, 1]}
    pd.DataFrame({"id": [1, 2, 3, 4], **lmsys, **one_hot}).to_csv(path, index=False)
    frame = training_frame(path, num_labels=2)  # what train() trains on; the counts go to the manifest
    counts = frame.attrs["winner_counts"]
    assert len(frame) == 2 and counts == {"model_a": 1, "model_b": 1, "tie": 2}
    assert training_tie_rate({"train_labels": counts}) == 0.5
    assert choose_tie_rate({"m.json": {"train_labels": counts}})[0] == 0.5
    wsdm_only = {"train_labels": {"model_a": 5, "model_b": 5, "tie": 0}}
    assert choose_tie_rate({"m.json": wsdm_only}) == (
        0.31,
        "LMSYS's known tie rate (the training data had no ties)",
    )
    assert choose_tie_rate({"m.json": {}}) == (0.31, "LMSYS's known tie rate (no run records one)")


def test_failed_final_write_keeps_the_safety_net(tmp_path, tiny, capsys, monkeypatch):
    import errno
    import os

    from arena_core.cli import main

    run = tiny_run(tmp_path, tiny)
    frame = lmsys_test_csv(tmp_path / "test.csv")
    out = tmp_path / "submission.csv"
    real_fsync, calls = os.fsync, []

    def full_after_the_first(fd):
        calls.append(fd)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full_after_the_first)
    argv = ["predict", "--test", str(tmp_path / "test.csv"), "--model", str(run), "--out", str(out)]
    assert main([*argv, "--tta", "none", "--device", "cpu", "--no-progress"]) == 1
    stderr = capsys.readouterr().err
    errors = [line for line in stderr.splitlines() if line.startswith("arena: error")]
    assert len(errors) == 1 and "Traceback" not in stderr  # (model-loading progress bars share stderr)
    assert f"{out}: writing the submission failed: No space left on device" in errors[0]
    assert "the previous file is unchanged" in errors[0]
    sub = pd.read_csv(out).set_index("id").loc[frame["id"]]
    safety = length_baseline(frame, with_tie=True, tie_prob=0.31).set_index("id")
    assert np.allclose(
        sub[["winner_model_a", "winner_model_b", "winner_tie"]], safety[["p_a", "p_b", "p_tie"]]
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "submission.csv", "test.csv"]
