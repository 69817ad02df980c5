"""A pool of rollout workers, in-process or as Ray actors, behind one submit/wait interface.

In-process workers run their collection in a background thread, so `runtime.mode=async` overlaps
collection and learning even without Ray; Ray workers are threaded actors (max_concurrency=2) so
`set_weights` lands while `collect_segments` is running and is picked up at the next chunk-step.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import torch

from rl_post.actors.rollout_worker import RolloutWorker


class LocalRolloutPool:
    def __init__(self, workers: list[RolloutWorker]):
        self.workers = workers
        self._threads = [
            ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"rollout-{i}")
            for i in range(len(workers))
        ]

    def __len__(self) -> int:
        return len(self.workers)

    def submit_collect(self, index: int, num_steps: int, resets: list[bool]) -> Future:
        """Worker `index` collects len(resets) segments back to back (see collect_segments)."""
        return self._threads[index].submit(self.workers[index].collect_segments, num_steps, resets)

    def ready(self, pending: list[Any], timeout: float | None = None) -> list[int]:
        from concurrent.futures import FIRST_COMPLETED, wait

        done, _ = wait(
            [p for p in pending if p is not None], timeout=timeout, return_when=FIRST_COMPLETED
        )
        return [i for i, p in enumerate(pending) if p is not None and p in done]

    def result(self, pending: Any) -> Any:
        return pending.result()

    def push_weights(self, version: int, state: dict[str, torch.Tensor]) -> None:
        for worker in self.workers:
            worker.set_weights(version, state)

    def call(self, method: str, *args: Any) -> list[Any]:
        return [getattr(w, method)(*args) for w in self.workers]

    def close(self) -> None:
        for worker in self.workers:
            worker.close()
        for thread in self._threads:
            thread.shutdown(wait=False, cancel_futures=True)


class RayRolloutPool:
    def __init__(self, actors: list[Any]):
        self.workers = actors

    def __len__(self) -> int:
        return len(self.workers)

    def submit_collect(self, index: int, num_steps: int, resets: list[bool]) -> Any:
        return self.workers[index].collect_segments.remote(num_steps, resets)

    def ready(self, pending: list[Any], timeout: float | None = None) -> list[int]:
        import ray

        refs = [p for p in pending if p is not None]
        done, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        done_ids = {r.hex() for r in done}
        return [i for i, p in enumerate(pending) if p is not None and p.hex() in done_ids]

    def result(self, pending: Any) -> Any:
        import ray

        return ray.get(pending)

    def push_weights(self, version: int, state: dict[str, torch.Tensor]) -> None:
        import ray

        ref = ray.put(state)  # one copy in the object store, shared by every rollout worker
        ray.get([w.set_weights.remote(version, ref) for w in self.workers])

    def call(self, method: str, *args: Any) -> list[Any]:
        import ray

        return ray.get([getattr(w, method).remote(*args) for w in self.workers])

    def close(self) -> None:
        import ray

        for actor in self.workers:
            try:
                ray.get(actor.close.remote(), timeout=60)
            except Exception:  # noqa: BLE001 - best effort; the actor is killed next anyway
                pass
            ray.kill(actor, no_restart=True)
