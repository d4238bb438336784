"""Kubernetes objects the orchestrators submit: pod placement and the multi-worker training workloads.

Pure Python (no kubernetes client, no orchestrator): `pods` (a step's node pool, GPU,
tolerations and image), `workers` (JobSet, Trainer v2 TrainJob and the deprecated TFJob for
multi-worker training, and reading their state back).
"""
