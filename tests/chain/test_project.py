"""`tfship.yaml`: the loader, its JSON Schema, `tfship validate-config` and `tfship run --config`'s flags.

The whole chain from a tfship.yaml (`tfship run --config`, twice) runs in tests/chain/test_init.py, on the
project `tfship init` writes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from tfship import chain
from tfship.k8s import pods
from tfship.chain import project
from tfship.cli import main as tfship_main
from tfship.errors import ConfigError

MINIMAL = {"data": "data/rows.csv", "schema": "schema.yaml"}


def write(tmp_path: Path, document, name: str = "tfship.yaml") -> Path:
    path = tmp_path / name
    path.write_text(document if isinstance(document, str) else yaml.safe_dump(document))
    return path


def test_every_key_reaches_the_chain_config_and_relative_paths_are_from_the_file(tmp_path):
    document = {
        "name": "churn", "data": "data/rows.csv", "schema": "schema.yaml", "contract": "contract.yaml",
        "model": "model:build_model", "repo": "gs://team-models/repo",
        "train": {"steps": 50, "checkpoint_every": 10, "batch_size": 8, "seed": 3, "retries": 1},
        "canary": {"traffic": "logs/*.tfrecord", "thresholds": "judge.yaml", "requests": 30,
                   "concurrency": 2},
        "placement": {"accelerator": "nvidia-l4", "gpu_count": 2, "spot": False, "queue": "team-a",
                      "node_selector": {"team": "a"},
                      "tolerations": [{"key": "team", "operator": "Equal", "value": "a",
                                       "effect": "NoSchedule"}],
                      "workers": 2, "engine": "tfjob"},
        "tasks": {"train": {"cpu": "8", "memory": "32Gi"}, "validate": {"cache": False},
                  "push": {"retries": 5}},
        "schedule": {"cron": "0 5 * * *", "asset": "gs://team-data/churn/"},
        "images": {"cpu": "team/churn:1", "gpu": "team/churn-gpu:1"},
        "serving": {"target": "grpc://serving.team:8500", "namespace": "team-a"},
    }
    loaded = project.load_project(str(write(tmp_path, document)))
    config = loaded.chain
    assert (config.data, config.schema, config.contract) == (
        str(tmp_path / "data" / "rows.csv"), str(tmp_path / "schema.yaml"), str(tmp_path / "contract.yaml"))
    assert config.repo == "gs://team-models/repo"  # a URI is left alone
    assert config.runs_root == str(tmp_path / "runs" / "runs")  # the default, under the file's folder
    assert (config.steps, config.checkpoint_every, config.batch_size, config.seed, config.train_retries) == (
        50, 10, 8, 3, 1)
    assert config.canary_traffic == str(tmp_path / "logs" / "*.tfrecord")
    assert (config.canary_requests, config.canary_concurrency) == (30, 2)
    assert (config.gpu_type, config.gpu_count, config.spot, config.workers, config.engine) == (
        "nvidia-l4", 2, False, 2, "tfjob")
    assert (loaded.schedule, loaded.data_asset, loaded.image, loaded.gpu_image) == (
        "0 5 * * *", "gs://team-data/churn/", "team/churn:1", "team/churn-gpu:1")
    assert (loaded.serving_target, loaded.namespace, loaded.dag_id) == (
        "grpc://serving.team:8500", "team-a", "tfship_retrain_churn")
    # The placement every orchestrator builds pods from.
    train = pods.placement(chain.train_step(config), config)
    assert train.requests == {"cpu": "8", "memory": "32Gi"}
    assert train.limits == {"memory": "32Gi", "nvidia.com/gpu": "2"}
    assert train.node_selector == {"cloud.google.com/gke-accelerator": "nvidia-l4", "team": "a"}
    assert {"key": "team", "operator": "Equal", "value": "a", "effect": "NoSchedule"} in train.tolerations
    assert chain.step_for("push", config).retries == 5
    assert chain.step_for("validate", config).cacheable is False
    assert chain.train_step(config).retries == 1
    # The canary replays the traffic and reads the thresholds file.
    plan = chain.RunPlan("r1", "runs/r1", 2, 1)
    args = chain.step_args("canary", config, plan, target="grpc://127.0.0.1:1")
    assert args[args.index("--traffic") + 1] == config.canary_traffic and "--examples" not in args
    assert args[args.index("--judge-config") + 1] == str(tmp_path / "judge.yaml")


def test_a_model_trained_elsewhere_needs_no_data_or_schema_and_is_found_from_the_file(tmp_path, capsys):
    path = write(tmp_path, {"saved_model": "models/keras/1", "name": "m"})
    loaded = project.load_project(str(path))
    assert loaded.chain.saved_model == str(tmp_path / "models" / "keras" / "1")
    assert (loaded.chain.data, loaded.chain.schema) == ("", "")
    assert not chain.enabled(chain.STEPS["train"], loaded.chain)
    assert tfship_main(["validate-config", "--config", str(path)]) == 0
    summary = capsys.readouterr().out
    assert f"OK: model 'm' imports the SavedModel {tmp_path / 'models' / 'keras' / '1'} (no training)" in summary
    assert "trains on" not in summary
    with pytest.raises(ConfigError, match=r"tfship.yaml: schema: missing \(a required key\)$"):
        project.load_project(str(write(tmp_path, {"data": "rows.csv", "name": "m"})))


def test_a_minimal_file_gets_chain_config_defaults(tmp_path):
    loaded = project.load_project(str(write(tmp_path, MINIMAL)))
    defaults = chain.ChainConfig(data="-", schema="-", runs_root="-", repo="-")
    assert loaded.chain.steps == defaults.steps and loaded.chain.gpu_type == defaults.gpu_type
    assert loaded.image == chain.DEFAULT_IMAGE and loaded.schedule == "0 3 * * 1"


@pytest.mark.parametrize(("document", "line"), [
    ({**MINIMAL, "train": {"steps": -1}}, "tfship.yaml: train.steps: -1 is not an integer >= 1"),
    ({**MINIMAL, "train": {"stpes": 3}}, "tfship.yaml: train.stpes: unknown key (expected one of"),
    ({**MINIMAL, "gpu": 1}, "tfship.yaml: gpu: unknown key (expected one of canary, contract, data,"),
    ({**MINIMAL, "train": {"steps": "300"}}, "tfship.yaml: train.steps: '300' is not of type 'integer'"),
    ({**MINIMAL, "placement": {"spot": "yes"}}, "tfship.yaml: placement.spot: 'yes' is not of type 'boolean'"),
    ({"schema": "s.yaml"}, "tfship.yaml: data: missing (a required key)"),
    ({**MINIMAL, "name": "team/churn"}, "tfship.yaml: name: 'team/churn' is not a model name TF Serving"),
    ({**MINIMAL, "name": "a..b"}, "tfship.yaml: name: 'a..b' is not a model name TF Serving"),
    ({**MINIMAL, "placement": {"accelerator": "nvidia-tesla-t4", "gpu_count": 8}},
     "tfship.yaml: placement.gpu_count: 8 GPUs: a nvidia-tesla-t4 node has 1, 2, 4"),
    # The default accelerator (T4) is checked by ChainConfig, named by the file's key.
    ({**MINIMAL, "placement": {"gpu_count": 3}},
     "tfship.yaml: Invalid value for argument `placement.gpu_count`. Received: gpu_count=3. Expected one of 1, 2, 4"),
    ({**MINIMAL, "placement": {"engine": "mpijob"}}, "tfship.yaml: placement.engine: 'mpijob' is not one of"),
    ({**MINIMAL, "tasks": {"trian": {"cpu": "1"}}}, "tfship.yaml: tasks: 'trian' is not one of 'train'"),
    ({**MINIMAL, "tasks": {"export": {"cpu": "lots"}}}, "tfship.yaml: tasks.export.cpu: 'lots' does not match"),
    ({**MINIMAL, "tasks": {"train": {"retries": 2}}},
     "tfship.yaml: Invalid `tasks` of step 'train': set its retries with `train.retries`."),
    ({**MINIMAL, "canary": {"requests": 30}},
     "tfship.yaml: canary.requests: 30 is below the canary judge's min_samples (100): every canary would be NODATA"),
    (["data", "schema"], "tfship.yaml: expected a mapping of keys"),
    ("data: [unclosed\n", "tfship.yaml is not valid YAML (line 2, column 1)"),
])
def test_bad_files_are_one_line_naming_file_and_key(tmp_path, monkeypatch, document, line):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, document)
    with pytest.raises(ConfigError) as info:
        project.load_project("tfship.yaml")
    assert str(info.value).startswith(line), str(info.value)
    assert "\n" not in str(info.value)


def test_the_shipped_json_schema_is_the_generated_one_and_checks_files():
    shipped = Path(project.SCHEMA_FILE).read_text()
    assert shipped == project.schema_text(), "stale: run `python -m tfship.chain.project`"
    schema = json.loads(shipped)
    jsonschema.Draft202012Validator.check_schema(schema)
    # What an editor does with it: the same verdicts as the loader.
    validator = jsonschema.Draft202012Validator(schema)
    assert validator.is_valid(MINIMAL)
    assert not validator.is_valid({**MINIMAL, "placement": {"accelerator": "nvidia-l4", "gpu_count": 3}})
    # Every ChainConfig field has a key (a field added later appears without an edit here).
    properties = {k: v.get("properties", {}) for k, v in schema["properties"].items()}
    for field in chain.ChainConfig.__dataclass_fields__:
        path = project._field_key(field)
        assert (path[-1] in properties[path[0]]) if len(path) == 2 else path[0] in schema["properties"], field


def test_validate_config_exit_codes(tmp_path, capsys):
    good = write(tmp_path, MINIMAL)
    assert tfship_main(["validate-config", "--config", str(good)]) == 0
    assert "OK: model 'model'" in capsys.readouterr().out
    bad = write(tmp_path, {**MINIMAL, "train": {"steps": 0}}, name="bad.yaml")
    assert tfship_main(["validate-config", "--config", str(bad)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"tfship validate-config: error: {bad}: train.steps: 0 is not an integer >= 1")
    assert tfship_main(["validate-config", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml: cannot read it" in capsys.readouterr().err


def test_the_console_script_exits_2_on_a_bad_file(tmp_path):
    bad = write(tmp_path, {**MINIMAL, "gpu": 1})
    done = subprocess.run([sys.executable, "-m", "tfship.cli", "validate-config", "--config", str(bad)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"tfship validate-config: error: {bad}: gpu: unknown key (expected one of canary, contract, data, "
        "images, input, model, name, placement, repo, rollout, runs_root, saved_model, schedule, schema, serving, "
        "tasks, train)"]


@pytest.mark.parametrize(("flags", "message"), [
    (["--steps", "5"], "--steps with --config"),
    (["--data", "x.csv", "--schema", "s.yaml"], "--data, --schema with --config"),
    (["--chain-json", "{}"], "--config and --chain-json both set the chain"),
])
def test_run_config_takes_no_chain_flags(tmp_path, capsys, flags, message):
    config = write(tmp_path, MINIMAL)
    assert tfship_main(["run", "--config", str(config), *flags]) == 2
    assert message in capsys.readouterr().err


def test_run_plan_only_from_config_and_from_chain_json_agree(tmp_path, capsys):
    from tfship.demo import write_demo

    write_demo(str(tmp_path / "data"))
    config = write(tmp_path, {"data": "data/penguins.csv", "schema": "data/schema.yaml", "name": "penguins",
                              "train": {"steps": 7}})
    assert tfship_main(["run", "--config", str(config), "--plan-only", "--run-id", "r1"]) == 0
    from_file = json.loads(capsys.readouterr().out)
    assert from_file["args"]["train"][from_file["args"]["train"].index("--steps") + 1] == "7"
    assert from_file["plan"]["run_dir"] == str(tmp_path / "runs" / "runs" / "r1")
    assert tfship_main(["run", "--chain-json", json.dumps(from_file["config"]), "--plan-only",
                        "--run-id", "r1"]) == 0
    assert json.loads(capsys.readouterr().out) == from_file
    assert tfship_main(["run", "--chain-json", '{"data": "d", "schema": "s", "runs_root": "r", '
                        '"repo": "p", "stpes": 1}', "--plan-only"]) == 2
    assert "Unknown chain parameter(s) ['stpes']" in capsys.readouterr().err
