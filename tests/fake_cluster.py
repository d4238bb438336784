"""A stand-in for the GKE cluster's Kubernetes API (kubernetes' CustomObjectsApi): the one mock of
the engine tests, since no cluster can be reached from here.

It stores what is created (a second create of the same name gets the API's 409 AlreadyExists) and
reports the status conditions the engine's controller would write, one list of condition types
per poll (an empty list: no condition is true yet).
"""

from __future__ import annotations

from kubernetes.client.exceptions import ApiException


class FakeCluster:
    def __init__(self, conditions_per_poll: list[list[str]]) -> None:
        self.objects: dict[tuple, dict] = {}
        self.creates = 0
        self.polls = list(conditions_per_poll)

    def create_namespaced_custom_object(self, group, version, namespace, plural, body):
        self.creates += 1
        key = (group, version, namespace, plural, body["metadata"]["name"])
        if key in self.objects:
            raise ApiException(status=409, reason="AlreadyExists")
        self.objects[key] = body

    def get_namespaced_custom_object(self, group, version, namespace, plural, name):
        body = self.objects[(group, version, namespace, plural, name)]
        poll = self.polls.pop(0) if self.polls else []
        if isinstance(poll, Exception):
            raise poll
        return {**body, "status": {"conditions": [{"type": t, "status": "True"} for t in poll]}}
