"""The chain's one definition: configs checked when built, arguments, retries, the gate, placement."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from tfship import chain
from tfship.k8s import pods
from tfship.cli import build_parser
from tfship.errors import ConfigError

CONFIG = chain.ChainConfig(data="gs://b/d.csv", schema="gs://b/s.yaml", runs_root="gs://b/runs",
                           repo="gs://m/repo", name="penguins")
ROLLOUT = dataclasses.replace(CONFIG, rollout_steps=(10, 50, 100), rollout_interval="5m",
                              prometheus="http://prometheus:9090", rollout_apply="virtualservice")


def plan(stable=2, versions=(1, 2)):
    return chain.plan_run(CONFIG, "r1", versions, stable)


def test_chain_order_and_placement_of_the_gpu():
    assert [s.name for s in chain.CHAIN] == [
        "train", "export", "validate", "push", "serve", "canary", "rollout", "promote"]
    assert [s.name for s in chain.CHAIN if s.gpu] == ["train"]
    assert [s.name for s in chain.job_steps()] == [
        "train", "export", "validate", "push", "canary", "rollout", "promote"]


@pytest.mark.parametrize("name", [step.name for step in chain.CHAIN])
def test_every_step_argument_list_parses_with_the_real_cli(name):
    args = chain.step_args(name, ROLLOUT, plan(), target="grpc://127.0.0.1:1")
    assert args[0] == name
    parsed = build_parser(name).parse_args(args)  # the step's own flags accept them
    assert parsed.command == name


def test_arguments_key_the_job_dir_on_the_run_and_carry_the_version():
    run_plan = plan()
    train = chain.step_args("train", CONFIG, run_plan)
    assert train[train.index("--job-dir") + 1] == "gs://b/runs/r1/job"
    export = chain.step_args("export", CONFIG, run_plan)
    assert export[export.index("--version") + 1] == "3"
    push = chain.step_args("push", CONFIG, run_plan)
    assert push[push.index("--model") + 1] == "gs://b/runs/r1/export/3"
    assert push[push.index("--label") + 1] == "canary"
    assert "--serving-target" not in push  # locally the server starts after the push
    on_cluster = chain.step_args("push", CONFIG, run_plan, target=chain.DEFAULT_SERVING_TARGET)
    assert on_cluster[-2:] == ["--serving-target", "tfship-serving.tfship.svc.cluster.local:8500"]
    validate = chain.step_args("validate", CONFIG, run_plan)
    assert validate[validate.index("--baseline") + 1] == "gs://m/repo/penguins/2"
    first = chain.step_args("validate", CONFIG, plan(stable=None, versions=()))
    assert "--baseline" not in first


def test_train_options_reach_tfship_train_and_parse_there():
    options = chain.ChainConfig(**{**CONFIG.to_dict(), "mixed_precision": True, "jit_compile": True,
                                   "input_fn": "team.pipes:penguins"})
    args = chain.step_args("train", options, plan())
    parsed = build_parser("train").parse_args(args)
    assert (parsed.mixed_precision, parsed.jit, parsed.input_fn) == (True, True, "team.pipes:penguins")
    plain = build_parser("train").parse_args(chain.step_args("train", CONFIG, plan()))
    assert (plain.mixed_precision, plain.jit, plain.input_fn) == (False, False, "")


def test_canary_needs_a_target():
    with pytest.raises(ConfigError, match="needs `target`"):
        chain.step_args("canary", CONFIG, plan())


def test_canary_moves_the_labels_with_its_verdict():
    canary = chain.step_args("canary", CONFIG, plan(), target="grpc://127.0.0.1:8500")
    assert "--promote" in canary  # PASS -> stable; FAIL -> the canary label is removed
    assert canary[canary.index("--repo") + 1] == CONFIG.repo


def test_the_rollout_step_is_off_unless_configured_and_then_owns_the_promotion():
    second = plan()
    assert "rollout" not in [s.name for s in chain.steps_for(second, CONFIG)]
    with pytest.raises(ConfigError, match="rollout step is off"):
        chain.step_args("rollout", CONFIG, second, target="grpc://t:8500")
    with_rollout = chain.plan_run(ROLLOUT, "r1", (1, 2), 2)
    assert [s.name for s in chain.steps_for(with_rollout, ROLLOUT)][-3:] == ["canary", "rollout", "promote"]
    first = chain.plan_run(ROLLOUT, "r1", (), None)
    assert "rollout" not in [s.name for s in chain.steps_for(first, ROLLOUT)]  # nothing to roll out against
    # The canary before a rollout only rolls back on FAIL; the rollout moves the labels with its outcome.
    canary = chain.step_args("canary", ROLLOUT, with_rollout, target="grpc://t:8500")
    assert "--rollback-on-fail" in canary and "--promote" not in canary
    rollout = chain.step_args("rollout", ROLLOUT, with_rollout, target="grpc://t:8500")
    parsed = build_parser("rollout").parse_args(rollout)
    assert (parsed.target, parsed.name, parsed.prometheus) == ("grpc://t:8500", "penguins", "http://prometheus:9090")
    assert (parsed.steps, parsed.interval, parsed.apply) == ("10,50,100", "5m", "virtualservice")
    assert parsed.out_dir == "gs://b/runs/r1/reports/rollout" and parsed.repo == CONFIG.repo and parsed.promote
    with pytest.raises(ConfigError, match="The rollout step needs `target`"):
        chain.step_args("rollout", ROLLOUT, with_rollout)
    # The gate: with a rollout, both verdicts must PASS.
    assert chain.promotion_decision(with_rollout, chain.PASS, chain.PASS).promote
    refused = chain.promotion_decision(with_rollout, chain.PASS, chain.FAIL)
    assert not refused.promote and refused.reason == "canary PASS, rollout FAIL: version 2 stays stable"


def test_rollout_settings_are_checked_when_built():
    with pytest.raises(ConfigError, match=r"Received: prometheus=''.*rollout_steps=\(5, 100\)"):
        dataclasses.replace(CONFIG, rollout_steps=(5, 100))
    with pytest.raises(ConfigError, match=r"`--steps`\. Received: '50,5,100'"):
        dataclasses.replace(ROLLOUT, rollout_steps=(50, 5, 100))
    with pytest.raises(ConfigError, match=r"Received: rollout_steps=\[5, 100\]. Expected a tuple"):
        dataclasses.replace(ROLLOUT, rollout_steps=[5, 100])
    # DAG params and pipeline parameters give the steps as text; a JSON round trip gives a list.
    assert chain.ChainConfig.from_mapping({**ROLLOUT.to_dict(), "rollout_steps": "10,50,100"}) == ROLLOUT
    assert chain.ChainConfig.from_mapping({**ROLLOUT.to_dict(), "rollout_steps": [10, 50, 100]}) == ROLLOUT
    assert chain.ChainConfig.from_mapping({**CONFIG.to_dict(), "rollout_steps": ""}) == CONFIG


def test_a_saved_model_replaces_train_and_needs_no_data():
    imported = chain.ChainConfig(data="", schema="", runs_root="gs://b/runs", repo="gs://m/repo",
                                 saved_model="gs://elsewhere/model/7")
    run_plan = chain.plan_run(imported, "r1", (1,), 1)
    assert [s.name for s in chain.steps_for(run_plan, imported)][:2] == ["export", "validate"]
    assert chain.step_args("export", imported, run_plan) == [
        "export", "--saved-model", "gs://elsewhere/model/7", "--export-dir", "gs://b/runs/r1/export",
        "--version", "2"]
    assert chain.steps_for(run_plan, CONFIG)[0].name == "train"
    assert "--job-dir" in chain.step_args("export", CONFIG, run_plan)
    with pytest.raises(ConfigError, match=r"Received: data=''"):  # training needs data
        chain.ChainConfig(data="", schema="", runs_root="r", repo="m")
    # A DAG param or pipeline parameter: "" trains.
    assert chain.ChainConfig.from_mapping({**CONFIG.to_dict(), "saved_model": ""}) == CONFIG


def test_retries_only_on_the_documented_exit_codes():
    train = chain.STEPS["train"]
    assert train.is_retryable(143)
    assert train.is_retryable(None)  # the pod vanished with its spot node
    assert not train.is_retryable(1)
    assert not train.is_retryable(2)
    assert chain.STEPS["push"].is_retryable(75)
    for name in ("export", "validate", "canary", "promote"):
        assert not chain.STEPS[name].is_retryable(143)
        assert not chain.STEPS[name].is_retryable(None)
    assert chain.train_step(chain.ChainConfig(**{**CONFIG.to_dict(), "train_retries": 0})).retries == 0


def test_the_gate_promotes_only_on_pass_or_the_first_version():
    first = plan(stable=None, versions=())
    assert first.version == 1 and first.first_version
    assert chain.promotion_decision(first, None).promote
    assert "first version" in chain.promotion_decision(first, None).reason
    second = plan()
    assert chain.promotion_decision(second, chain.PASS).promote
    assert not chain.promotion_decision(second, chain.FAIL).promote
    assert not chain.promotion_decision(second, None).promote
    assert [s.name for s in chain.steps_for(first, CONFIG)] == ["train", "export", "validate", "push", "promote"]
    assert "canary" in [s.name for s in chain.steps_for(second, CONFIG)]


def test_verdict_from_exit_code():
    assert chain.verdict_from_exit_code(0) == chain.PASS
    assert chain.verdict_from_exit_code(1) == chain.FAIL
    with pytest.raises(ConfigError, match="exited with 2: an error, not a verdict"):
        chain.verdict_from_exit_code(2)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("name", "a/b", r"Received: name='a/b'"),
        ("name", "..", r"no `\.\.`"),
        # TF Serving's limit, which the chain's own copy of the name rule once lacked: the run went
        # through train and export and only push refused it.
        ("name", "m" * 129, r"at most 128"),
        ("steps", 0, r"Received: steps=0. Expected an integer >= 1"),
        ("batch_size", True, r"Received: batch_size=True"),
        ("seed", -1, r"Received: seed=-1. Expected an integer >= 0"),
        ("repo", "", r"Received: repo=''"),
        ("gpu_type", "", r"Received: gpu_type=''"),
        ("mixed_precision", "yes", r"Received: mixed_precision='yes'. Expected true or false"),
        ("input_fn", "pipes", r"Received: input_fn='pipes'. Expected 'package.module:function'"),
        ("rollout_interval", "10 minutes", r"`rollout_interval`. Received: '10 minutes'. Expected a duration"),
        ("rollout_check_every", "0s", r"`rollout_check_every`. Received: '0s'"),
    ],
)
def test_config_rejects_bad_values(field, value, match):
    with pytest.raises(ConfigError, match=match):
        chain.ChainConfig(**{**CONFIG.to_dict(), field: value})


def test_config_from_mapping_rejects_unknown_keys():
    with pytest.raises(ConfigError, match=r"Unknown chain parameter\(s\) \['stepz'\]"):
        chain.ChainConfig.from_mapping({**CONFIG.to_dict(), "stepz": 3})
    assert chain.ChainConfig.from_mapping(CONFIG.to_dict()) == CONFIG


def test_plan_round_trips_and_checks_run_ids():
    run_plan = plan()
    assert chain.RunPlan.from_dict(run_plan.to_dict()) == run_plan
    with pytest.raises(ConfigError, match="Invalid run id"):
        chain.plan_run(CONFIG, "a/b", [], None)
    assert chain.safe_run_id("manual__2025-01-02T03:04:05+00:00") == "manual__2025-01-02T03-04-05-00-00"
    assert chain.next_version([3, 10, 2]) == 11


def test_placement_gpu_only_for_train():
    train = pods.placement(chain.STEPS["train"], CONFIG)
    assert train.limits["nvidia.com/gpu"] == "1"
    assert train.node_selector == {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4",
                                   "cloud.google.com/gke-spot": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in train.tolerations
    on_demand = pods.placement(chain.STEPS["train"],
                                chain.ChainConfig(**{**CONFIG.to_dict(), "spot": False, "gpu_count": 2}))
    assert on_demand.node_selector == {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}
    assert on_demand.limits["nvidia.com/gpu"] == "2"
    for name in ("export", "validate", "push", "canary", "promote"):
        cpu = pods.placement(chain.STEPS[name], CONFIG)
        assert "nvidia.com/gpu" not in cpu.limits and not cpu.node_selector and not cpu.tolerations


def test_step_rejects_bad_quantities():
    with pytest.raises(ConfigError, match=r"Received: '2 GB'. Expected a Kubernetes quantity"):
        chain.Step("x", memory="2 GB")


def test_chain_module_imports_no_tensorflow_nor_orchestrator():
    code = ("import sys, tfship.chain; bad = [m for m in ('tensorflow', 'kfp', 'airflow') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
