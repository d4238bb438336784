"""Send the same requests to both versions, concurrently, and stop cleanly if the endpoint dies.

Request i goes to the baseline and to the candidate at (nearly) the same moment, in a seeded random
order within the pair, so both versions see the same load and any drift in the machine's speed
hits both alike: their latencies and answers are paired data. Up to `concurrency` pairs are in
flight. Every request has its own deadline, so the run always ends; if `abort_after` requests in a
row fail as unreachable (UNAVAILABLE or DEADLINE_EXCEEDED), the endpoint is treated as gone, the
requests not yet sent are dropped and the collection says why.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from tfship.steps.canary.metrics import Observation

UNREACHABLE_CODES = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED"})


@dataclass(frozen=True)
class Collection:
    """What was observed: complete pairs only (observation i of each list is the same request)."""

    baseline: list[Observation]
    candidate: list[Observation]
    aborted: str | None
    seconds: float


def collect(
    send_baseline: Callable[[int], Observation],
    send_candidate: Callable[[int], Observation],
    requests: int,
    concurrency: int,
    abort_after: int = 20,
    seed: int = 0,
) -> Collection:
    """Run `requests` pairs; `send_*(i)` sends request i to one version and never raises.

    Args:
        send_baseline, send_candidate: send request i; return its Observation (failures included).
        requests: pairs to send.
        concurrency: pairs in flight at once.
        abort_after: consecutive unreachable failures that end the run.
        seed: the order of the two versions within each pair.
    """
    results: dict[str, list[Observation | None]] = {"baseline": [None] * requests, "candidate": [None] * requests}
    senders = {"baseline": send_baseline, "candidate": send_candidate}
    stop = threading.Event()
    lock = threading.Lock()
    state: dict[str, object] = {"streak": 0, "aborted": None}

    def job(index: int, side: str) -> None:
        if stop.is_set():
            return
        observation = senders[side](index)
        with lock:
            results[side][index] = observation
            if not observation.ok and observation.code in UNREACHABLE_CODES:
                state["streak"] = int(state["streak"]) + 1  # type: ignore[call-overload]
                if int(state["streak"]) >= abort_after and not stop.is_set():  # type: ignore[call-overload]
                    state["aborted"] = (
                        f"the endpoint stopped answering: {state['streak']} requests in a row failed "
                        f"({observation.code}: {observation.message[:200]})"
                    )
                    stop.set()
            else:
                state["streak"] = 0

    order = random.Random(seed)
    started = time.monotonic()
    # Submitting lazily keeps at most ~2 * concurrency requests queued, so a stop takes effect at once.
    slots = threading.Semaphore(2 * concurrency)

    def release(_future: object) -> None:
        slots.release()

    with ThreadPoolExecutor(max_workers=2 * concurrency, thread_name_prefix="canary") as pool:
        for index in range(requests):
            sides = ["baseline", "candidate"]
            order.shuffle(sides)
            for side in sides:
                slots.acquire()
                if stop.is_set():
                    slots.release()
                    break
                pool.submit(job, index, side).add_done_callback(release)
            if stop.is_set():
                break
    complete = [i for i in range(requests) if results["baseline"][i] is not None and results["candidate"][i] is not None]
    return Collection(
        baseline=[results["baseline"][i] for i in complete],  # type: ignore[misc]
        candidate=[results["candidate"][i] for i in complete],  # type: ignore[misc]
        aborted=state["aborted"],  # type: ignore[arg-type]
        seconds=time.monotonic() - started,
    )
