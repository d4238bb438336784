"""What a canary run is asked to do: `CanaryConfig`, the target, and version references."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tfship.steps.canary.judge import JudgeConfig
from tfship.errors import ConfigError
from tfship.tfserving import SERVING_DEFAULT

_TARGET = re.compile(r"(grpc|http)://(\[[0-9a-fA-F:]+\]|[^:/\s]+):(\d{1,5})/?")


@dataclass(frozen=True)
class Target:
    """A serving endpoint: `grpc://host:port` (TF Serving's 8500) or `http://host:port` (8501)."""

    scheme: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Target:
        match = _TARGET.fullmatch(text.strip())
        if not match or not 0 < int(match.group(3)) < 65536:
            raise ConfigError(
                f"Invalid value for argument `--target`. Received: {text!r}. Expected grpc://host:port "
                "or http://host:port, e.g. grpc://127.0.0.1:8500 (TF Serving's gRPC port) or "
                "http://127.0.0.1:8501 (its REST port)."
            )
        return cls(match.group(1), match.group(2), int(match.group(3)))

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.address}"


@dataclass(frozen=True)
class VersionRef:
    """A model version named by number or by label (`--candidate 124`, `--candidate canary`)."""

    label: str | None = None
    version: int | None = None

    @classmethod
    def parse(cls, text: str, flag: str) -> VersionRef:
        text = str(text).strip()
        if text.isdigit():
            return cls(version=int(text))
        if not re.fullmatch(r"[A-Za-z0-9_]+", text):
            raise ConfigError(
                f"Invalid value for argument `{flag}`. Received: {text!r}. Expected a version number "
                "or a version label ([A-Za-z0-9_]+, TF Serving's rule), e.g. canary or stable."
            )
        return cls(label=text)

    def __str__(self) -> str:
        return f"label {self.label!r}" if self.label is not None else f"version {self.version}"


@dataclass(frozen=True)
class CanaryConfig:
    """A canary run: the same requests to two versions of one model, then a verdict.

    Attributes:
        target: the serving endpoint, grpc://host:port or http://host:port (any TF Serving).
        name: the model name.
        examples: JSONL (one object per line mapping input names to values, e.g. {"x": [1.5]}) or
            CSV with a header; local or gs://. Requests cycle through the rows.
        traffic: instead of `examples`, a glob of logged requests to replay (PredictionLog
            TFRecords from `tfship serve --request-log-dir`, or KServe logger JSON lines), each on
            its own API and signature, over gRPC or REST (see `tfship.steps.canary.traffic`).
        candidate, baseline: version labels or numbers (default `canary` vs `stable`).
        requests: paired requests to send (each goes to both versions). Default 500.
        concurrency: pairs in flight at once. Default 8.
        deadline_s: the deadline of every request. Default 10 s.
        signature: the signature to call. Default serving_default.
        promote: on PASS move `stable` to the candidate version in `repo`; on FAIL remove the
            candidate's label there (automatic rollback). NODATA or an error changes nothing.
        repo: the model repository holding models.config (needed by `promote`).
        rollback_on_fail: only the FAIL half of `promote`: remove the candidate's label on FAIL and
            leave the labels alone on PASS (the chain's canary before a progressive rollout, which
            promotes only once live traffic passed; needs `repo`).
        report_dir: where report.json / report.md / report.html go ("" = no files).
        judge: the judge's settings (docs/serve-canary.md).
        seed: seeds the request order and the bootstraps.
        abort_after: stop after this many requests in a row fail as unreachable (UNAVAILABLE or
            DEADLINE_EXCEEDED on both versions alike): the endpoint is gone, the verdict NODATA.
        warmup_requests: pairs sent first and not measured: a version's first requests pay
            one-off costs (graph optimisation, connection set-up) that would count against
            whichever version happens to be colder. Default 20.
    """

    target: str
    name: str
    examples: str = ""
    traffic: str = ""
    candidate: str = "canary"
    baseline: str = "stable"
    requests: int = 500
    concurrency: int = 8
    deadline_s: float = 10.0
    signature: str = SERVING_DEFAULT
    promote: bool = False
    repo: str = ""
    rollback_on_fail: bool = False
    report_dir: str = ""
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    seed: int = 0
    abort_after: int = 20
    warmup_requests: int = 20

    def __post_init__(self) -> None:
        from tfship.models_config import check_model_name

        Target.parse(self.target)
        check_model_name(self.name)
        if bool(self.examples) == bool(self.traffic):
            raise ConfigError(
                "Pass exactly one of --examples (a JSONL or CSV file of rows) and --traffic (a glob of logged "
                f"requests). Received: examples={self.examples!r}, traffic={self.traffic!r}."
            )
        candidate = VersionRef.parse(self.candidate, "--candidate")
        baseline = VersionRef.parse(self.baseline, "--baseline")
        if candidate == baseline:
            raise ConfigError(
                f"--candidate and --baseline both name {candidate}: a canary needs two versions to compare."
            )
        for flag, value, low, high in (
            ("--requests", self.requests, 1, 10_000_000),
            ("--concurrency", self.concurrency, 1, 256),
            ("abort_after", self.abort_after, 1, 1_000_000),
            ("warmup_requests", self.warmup_requests, 0, 100_000),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise ConfigError(
                    f"Invalid value for argument `{flag}`. Received: {value!r}. Expected an integer {low}-{high}."
                )
        if not 0 < self.deadline_s <= 3600:
            raise ConfigError(
                f"Invalid value for argument `--deadline`. Received: {self.deadline_s!r}. Expected 0-3600 seconds."
            )
        if (self.promote or self.rollback_on_fail) and not self.repo:
            flag = "--promote" if self.promote else "--rollback-on-fail"
            raise ConfigError(
                f"{flag} needs --repo: the model repository whose models.config the labels live in."
            )

    @property
    def target_ref(self) -> Target:
        return Target.parse(self.target)

    @property
    def candidate_ref(self) -> VersionRef:
        return VersionRef.parse(self.candidate, "--candidate")

    @property
    def baseline_ref(self) -> VersionRef:
        return VersionRef.parse(self.baseline, "--baseline")
