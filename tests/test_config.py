"""Config files and overrides: typed, validated, and errors that say which key."""

from __future__ import annotations

from pathlib import Path

import pytest

from arena_core.config import (
    ConfigError,
    RunConfig,
    apply_overrides,
    config_to_dict,
    load_config,
    save_config,
)

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_load(path):
    cfg = load_config(path)
    assert cfg.encoding.strategy in ("adaptive", "thirds")
    assert cfg.model.quantization in ("none", "8bit", "4bit")


def test_overrides_are_typed():
    cfg = apply_overrides(
        RunConfig(),
        [
            "train.learning_rate=1e-4",
            "lora.r=32",
            "model.gradient_checkpointing=true",
            "lora.target_modules=q_proj,v_proj",
            "encoding.part_weights=[0.5,1,1]",
            "predict.time_budget_s=none",
        ],
    )
    assert cfg.train.learning_rate == 1e-4 and cfg.lora.r == 32
    assert cfg.model.gradient_checkpointing is True
    assert cfg.lora.target_modules == ["q_proj", "v_proj"]
    assert cfg.encoding.part_weights == (0.5, 1.0, 1.0)
    assert cfg.predict.time_budget_s is None


def test_bad_overrides_and_keys_named(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'train.lr'"):
        apply_overrides(RunConfig(), ["train.lr=1"])
    with pytest.raises(ConfigError, match="expected section.key=value"):
        apply_overrides(RunConfig(), ["train.learning_rate"])
    with pytest.raises(ConfigError, match=r"override lora.r: cannot read 'big'"):
        apply_overrides(RunConfig(), ["lora.r=big"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  learning_rat: 1\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.train: unknown key\(s\) \['learning_rat'\]"):
        load_config(bad)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")


def test_round_trip(tmp_path):
    cfg = apply_overrides(RunConfig(), ["lora.r=4", "encoding.max_length=300"])
    save_config(cfg, tmp_path / "c.yaml")
    again = load_config(tmp_path / "c.yaml")
    assert config_to_dict(again) == config_to_dict(cfg)
    (tmp_path / "c.json").write_text('{"lora": {"r": 2}}')
    assert load_config(tmp_path / "c.json").lora.r == 2
