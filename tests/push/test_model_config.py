"""models.config: parsing TF Serving's own files, and the label transitions as pure functions."""

from __future__ import annotations

import os

import pytest

from tfship import models_config as mc
from tfship.errors import ConfigError, LabelError


def _config(*versions: int, **labels: int):
    config = mc.parse_models_config("")
    for v in versions:
        config = mc.with_version(config, "m", "/repo/m", v)
    for label, v in labels.items():
        config = mc.with_label(config, "m", label, v)
    return config


def test_parses_tf_servings_good_config_and_rejects_the_bad_one(tf_serving_testdata) -> None:
    good = mc.parse_models_config((tf_serving_testdata / "good_model_config.txt").read_text())
    assert [c.name for c in good.model_config_list.config] == ["half_plus_two", "half_plus_three"]
    assert mc.parse_models_config(mc.format_models_config(good)) == good
    with pytest.raises(ConfigError, match="Invalid models.config: .*Expected a ModelServerConfig"):
        mc.parse_models_config((tf_serving_testdata / "bad_model_config.txt").read_text())


def test_a_missing_config_reads_as_empty(tmp_path) -> None:
    assert mc.config_uri(str(tmp_path)) == os.path.join(str(tmp_path), "models.config")
    assert mc.read_models_config(str(tmp_path)) == mc.parse_models_config("")


def test_update_writes_once_and_skips_an_unchanged_config(tmp_path) -> None:
    repo = str(tmp_path)
    add = lambda c: mc.with_version(c, "m", mc.model_base_path(repo, "m"), 1)  # noqa: E731
    config, changed = mc.update_models_config(repo, add)
    assert changed and mc.served_versions(config, "m") == (1,)
    assert mc.find_model(config, "m").base_path == os.path.join(str(tmp_path), "m")
    before = os.stat(mc.config_uri(repo)).st_mtime_ns
    _, changed = mc.update_models_config(repo, add)
    assert not changed and os.stat(mc.config_uri(repo)).st_mtime_ns == before
    assert mc.read_models_config(repo) == config


def test_gcs_base_path_is_the_uri() -> None:
    assert mc.model_base_path("gs://bucket/models", "m") == "gs://bucket/models/m"


@pytest.mark.parametrize("name", ["a/b", "..", "a..b", ".hidden", "", "x" * 129, "sp ace", "é"])
def test_bad_model_names_are_rejected(name: str) -> None:
    with pytest.raises(ConfigError, match=r"argument `name`. Received: name=.*no '/' and no '\.\.'"):
        mc.check_model_name(name)


@pytest.mark.parametrize("label", ["", "a-b", "stable!", "x y"])
def test_bad_labels_are_rejected(label: str) -> None:
    with pytest.raises(ConfigError, match=r"argument `label`. Received: label=.*letters, digits and '_'"):
        mc.check_label(label)
    with pytest.raises(ConfigError, match="managed by `tfship promote`"):
        mc.check_label("previous")


def test_a_label_needs_a_served_version() -> None:
    with pytest.raises(LabelError, match="Cannot label version 2 .* not a served version .*push that"):
        mc.with_label(_config(1), "m", "canary", 2)
    with pytest.raises(LabelError, match="Model 'x' is not in models.config"):
        mc.with_label(_config(1), "x", "canary", 1)


def test_adding_a_version_never_moves_a_label() -> None:
    config = mc.with_version(_config(1, stable=1), "m", "/repo/m", 2)
    assert mc.served_versions(config, "m") == (1, 2)
    assert mc.version_labels(config, "m") == {"stable": 1}


def test_promote_keeps_the_previous_stable_loaded_and_rollback_returns_to_it() -> None:
    config = _config(1, 2, stable=1, canary=2)
    promoted, version = mc.promoted(config, "m")
    assert version == 2
    assert mc.version_labels(promoted, "m") == {"stable": 2, "canary": 2, "previous": 1}
    assert mc.served_versions(promoted, "m") == (1, 2)
    back, version = mc.rolled_back(promoted, "m")
    assert version == 1
    assert mc.version_labels(back, "m") == {"stable": 1, "canary": 2}
    with pytest.raises(LabelError, match="Cannot roll back model 'm': no previous stable"):
        mc.rolled_back(back, "m")


def test_a_version_leaves_specific_when_its_last_label_moves_away() -> None:
    config = _config(1, 2, 3, stable=1, canary=2)
    config, _ = mc.promoted(config, "m")  # stable 2, previous 1
    config = mc.with_label(config, "m", "canary", 3)
    config, _ = mc.promoted(config, "m")  # stable 3, previous 2: version 1 is released
    assert mc.version_labels(config, "m") == {"stable": 3, "canary": 3, "previous": 2}
    assert mc.served_versions(config, "m") == (2, 3)
    config = mc.without_label(config, "m", "previous")
    assert mc.served_versions(config, "m") == (3,)


def test_restoring_labels_replaces_them_all_and_needs_their_versions_served() -> None:
    promoted, _ = mc.promoted(_config(1, 2, stable=1, canary=2), "m")  # stable 2, previous 1
    restored = mc.with_labels(promoted, "m", {"stable": 1, "canary": 2})
    assert mc.version_labels(restored, "m") == {"stable": 1, "canary": 2}
    assert mc.served_versions(restored, "m") == (1, 2)
    only_stable = mc.with_labels(restored, "m", {"stable": 1})
    assert mc.served_versions(only_stable, "m") == (1,)  # version 2 lost its last label
    assert mc.with_labels(only_stable, "m", {"stable": 1}) == only_stable
    with pytest.raises(LabelError, match=r"version\(s\) \[2\] are no longer served"):
        mc.with_labels(only_stable, "m", {"stable": 1, "canary": 2})
    with pytest.raises(ConfigError, match="label='bad-label'"):
        mc.with_labels(restored, "m", {"bad-label": 1})


def test_an_unlabelled_pushed_version_is_not_released_by_other_moves() -> None:
    config = mc.with_version(_config(1, 2, stable=1, canary=2), "m", "/repo/m", 3)
    config = mc.without_label(config, "m", "canary")
    assert mc.served_versions(config, "m") == (1, 3)


def test_promote_without_canary_and_foreign_policies_are_clear_errors() -> None:
    with pytest.raises(LabelError, match="Cannot promote model 'm': it has no 'canary' label"):
        mc.promoted(_config(1, stable=1), "m")
    latest = mc.parse_models_config(
        'model_config_list { config { name: "m" base_path: "/repo/m" model_platform: "tensorflow" '
        "model_version_policy { latest { num_versions: 1 } } } }"
    )
    with pytest.raises(ConfigError, match="uses the latest version policy. tfship manages only"):
        mc.with_version(latest, "m", "/repo/m", 1)
    with pytest.raises(ConfigError, match="has base_path '/repo/m', but this push writes to '/other/m'"):
        mc.with_version(_config(1), "m", "/other/m", 2)


def test_an_existing_empty_config_is_not_a_fresh_start(tmp_path) -> None:
    """A 0-byte models.config is refused as the base of an update unless the caller says it may be replaced."""
    repo = str(tmp_path)
    (tmp_path / "models.config").write_bytes(b"")
    add = lambda c: mc.with_version(c, "m", "/models/m", 1)  # noqa: E731
    with pytest.raises(ConfigError, match=r"models.config at .* names no model \(0 bytes\), but the repository "
                                          r"may hold pushed versions: .* Nothing was changed"):
        mc.update_models_config(repo, add)
    assert (tmp_path / "models.config").read_bytes() == b""
    config, changed = mc.update_models_config(repo, add, replace_empty=True)
    assert changed and mc.served_versions(config, "m") == (1,)


def test_a_model_cannot_share_a_base_path_or_take_the_config_file_name() -> None:
    config = mc.with_version(mc.parse_models_config(""), "a", "/models/b", 1)
    with pytest.raises(ConfigError, match=r"Model 'b' would be written to '/models/b/', the base_path of model 'a'"):
        mc.with_version(config, "b", "/models/b/", 1)
    with pytest.raises(ConfigError, match=r"name='models.config', which is the repository's own models.config"):
        mc.check_model_name("models.config")
