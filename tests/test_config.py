"""Config: strict keys everywhere, dotted overrides, clear errors."""

import pytest

from peakclips.config import ConfigError, RunConfig, load_config, valid_keys
from tests.conftest import REPO


def test_every_pipeline_yaml_loads_and_opens_with_a_comment():
    for path in (REPO / "pipelines").glob("*.yaml"):
        cfg = load_config(path)
        assert isinstance(cfg, RunConfig)
        assert path.read_text().startswith("#"), f"{path.name} must open with a comment saying what it runs"


def test_unknown_yaml_key_names_the_key_and_lists_valid_ones(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("clip:\n  modle: ViT-B-32\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert "clip.modle" in str(e.value) and "model" in str(e.value) and "pretrained" in str(e.value)


def test_set_overrides_parse_yaml_values():
    cfg = load_config(None, ["shard_size=7", "clip.required=false", "ingest.allowed_roots=[/a, /b]",
                             "annotator.base_url=http://127.0.0.1:9/v1"])
    assert cfg.shard_size == 7 and cfg.clip.required is False
    assert cfg.ingest.allowed_roots == ["/a", "/b"]
    assert cfg.annotator.base_url == "http://127.0.0.1:9/v1"


def test_set_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError) as e:
        load_config(None, ["annotator.modle=x"])
    assert "annotator.modle" in str(e.value) and "annotator.model" in str(e.value)


def test_set_into_a_value_is_an_error():
    with pytest.raises(ConfigError, match="is a value"):
        load_config(None, ["shard_size.x=1"])


def test_bad_value_names_the_key():
    with pytest.raises(ConfigError, match="annotator.backend"):
        load_config(None, ["annotator.backend=gemini"])
    with pytest.raises(ConfigError, match="alpha"):
        load_config(None, ["clip.alpha=0.5", "clip.beta=0.1"])


def test_keys_used_from_outside_exist():
    keys = set(valid_keys(RunConfig))
    for k in ["shard_size", "ingest.allowed_roots", "annotator.backend", "annotator.base_url",
              "annotator.model", "annotator.cache", "annotator.timeout_s", "clip.model",
              "clip.pretrained", "clip.required"]:
        assert k in keys


def test_config_hash_changes_with_content_not_ray_settings():
    a = load_config(None)
    assert a.hash() == load_config(None, ["ray.num_cpus=1"]).hash()
    assert a.hash() != load_config(None, ["highlights.w1=0.8"]).hash()


def test_config_hash_ignores_where_things_are_on_this_machine():
    a = load_config(None, ["ingest.allowed_roots=[/a]", "annotator.cache=/x.sqlite"])
    b = load_config(None, ["ingest.allowed_roots=[/b]", "annotator.reference_dir=/elsewhere"])
    assert a.hash() == b.hash()
