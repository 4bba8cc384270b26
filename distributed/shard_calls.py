"""Calling every shard actor: all answers or a typed error, never a partial result.

A shard that dies is restarted by Ray (``max_restarts``) and reloads; a call to it is
retried ``retries`` times within ``timeout_s``, then
:class:`~latestore.errors.ShardUnavailableError` is raised.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import ActorDiedError, GetTimeoutError, RayActorError

from latestore.errors import ShardUnavailableError

DIED_CONFIRMATIONS = 3

# submit(shard number, actor) -> the ObjectRef of one remote call
Submit = Callable[[int, Any], Any]


@dataclass(frozen=True)
class ShardCalls:
    retries: int
    timeout_s: float
    max_restarts: int

    def call_all(self, actors: Sequence[Any], submit: Submit, shards: Sequence[int]) -> list[Any]:
        """Call every actor; retry one that died after it restarts; all or an error."""
        deadline = time.monotonic() + self.timeout_s
        pending = {
            pos: submit(shard, actor)
            for pos, (shard, actor) in enumerate(zip(shards, actors, strict=True))
        }
        attempts = dict.fromkeys(pending, 0)
        results: dict[int, Any] = {}
        while pending:
            pos, ref = next(iter(pending.items()))
            shard = shards[pos]
            try:
                results[pos] = ray.get(ref, timeout=max(0.0, deadline - time.monotonic()))
                del pending[pos]
            except GetTimeoutError as exc:
                raise ShardUnavailableError(
                    f"shard {shard} did not answer within {self.timeout_s:.0f} s"
                ) from exc
            except RayActorError as exc:
                attempts[pos] += 1
                if attempts[pos] > self.retries:
                    raise ShardUnavailableError(
                        f"shard {shard} failed {attempts[pos]} times: {type(exc).__name__}"
                    ) from exc
                self._await_ready(actors[pos], shard, deadline)
                pending[pos] = submit(shard, actors[pos])
        return [results[pos] for pos in range(len(actors))]

    def _await_ready(self, actor: Any, shard: int, deadline: float) -> None:
        """Wait for a restarting shard to load again, up to ``deadline``.

        Ray answers a call to a restarting actor with ActorUnavailableError (or queues
        it), and one to an actor past ``max_restarts`` with ActorDiedError at once; a
        few of those in a row (the first may race Ray's own notice of the restart)
        mean the shard is gone for good, and waiting longer would not help.
        """
        died = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ShardUnavailableError(
                    f"shard {shard} did not come back within {self.timeout_s:.0f} s"
                )
            try:
                ray.get(actor.ready.remote(), timeout=left)
                return
            except GetTimeoutError:
                continue
            except ActorDiedError as exc:
                died += 1
                if died >= DIED_CONFIRMATIONS:
                    raise ShardUnavailableError(
                        f"shard {shard} is dead and Ray will not restart it "
                        f"(max_restarts={self.max_restarts})"
                    ) from exc
            except RayActorError:
                died = 0
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
