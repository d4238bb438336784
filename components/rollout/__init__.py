"""`tfship rollout`: move traffic to a candidate version in steps, judging each on live metrics.

Modules: `manifests` (the traffic split as Istio, Gateway API and KServe manifests, validated),
`runner` (the steps, the live judge with sequential early stopping, rollback).
"""
