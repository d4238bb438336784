"""Apply the traffic split to a cluster with server-side apply, through the Kubernetes API.

`tfship rollout --apply virtualservice,httproute` applies those manifests at every step (and on
rollback) as field manager `tfship`, with `force` so tfship owns the weights even when another
manager (a deploy tool) set them last. The kubernetes client's dynamic client finds each kind by
discovery, so a cluster without the CRD (no Istio, no KServe) is named in one line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from tfship.errors import ConfigError, EndpointError
from tfship.steps.rollout.manifests import KINDS

FIELD_MANAGER = "tfship"
_IN_POD_ENV = "KUBERNETES_SERVICE_HOST"  # set by the kubelet in every pod


def parse_kinds(text: str) -> tuple[str, ...]:
    """"virtualservice,httproute" -> the kinds to apply ("" -> none)."""
    kinds = tuple(part.strip().lower() for part in text.split(",") if part.strip())
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise ConfigError(f"Invalid value for argument `--apply`. Received: {text!r}. Expected some of {', '.join(KINDS)}.")
    return kinds


def cluster_client(kubeconfig: str | None = None, context: str | None = None) -> Any:
    """A Kubernetes API client: from `kubeconfig` (and `context`) when given; else, in a pod (the
    Airflow and KFP rollout tasks), the pod's service account, as `kubectl` does there; else the
    default kubeconfig. ConfigError in one line when the chosen credentials cannot be used."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    if kubeconfig is None and context is None and os.environ.get(_IN_POD_ENV):
        configuration = client.Configuration()
        try:
            config.load_incluster_config(client_configuration=configuration)
        except (ConfigException, OSError) as error:
            raise ConfigError(f"--apply in a pod: its service account cannot be used: {error}") from error
        return client.ApiClient(configuration)
    try:
        return config.new_client_from_config(config_file=kubeconfig, context=context)
    except (ConfigException, OSError) as error:
        raise ConfigError(f"--kubeconfig {kubeconfig or '(default)'}: cannot use it: {error}") from error


class ClusterApplier:
    """Server-side applies manifests to a cluster (the credentials `cluster_client` picks)."""

    def __init__(self, kinds: Sequence[str], kubeconfig: str | None = None, context: str | None = None) -> None:
        from kubernetes import dynamic
        from urllib3.exceptions import HTTPError

        self.kinds = tuple(kinds)
        api = cluster_client(kubeconfig, context)
        try:
            self._client = dynamic.DynamicClient(api)  # reads the server's version
        except HTTPError as error:
            raise EndpointError(f"--apply {','.join(self.kinds)}: the cluster does not answer: {error}") from error

    def apply(self, manifests: Mapping[str, Mapping[str, Any]]) -> None:
        """Apply the manifests of `self.kinds` (raises EndpointError naming the kind on failure)."""
        from kubernetes.dynamic.exceptions import DynamicApiError, ResourceNotFoundError
        from urllib3.exceptions import HTTPError

        for kind in self.kinds:
            manifest = manifests[kind]
            what = f"{manifest['apiVersion']} {manifest['kind']} {manifest['metadata']['name']}"
            try:
                resource = self._client.resources.get(api_version=manifest["apiVersion"], kind=manifest["kind"])
                resource.server_side_apply(
                    body=dict(manifest), namespace=manifest["metadata"].get("namespace"),
                    field_manager=FIELD_MANAGER, force_conflicts=True,
                )
            except ResourceNotFoundError as error:
                raise EndpointError(
                    f"--apply {kind}: the cluster has no {manifest['apiVersion']} {manifest['kind']} (is its CRD "
                    f"installed?): {error}"
                ) from error
            except DynamicApiError as error:
                raise EndpointError(f"--apply {kind}: applying {what} failed: {error.status} {error.reason}") from error
            except HTTPError as error:
                raise EndpointError(f"--apply {kind}: the cluster does not answer: {error}") from error
