"""The Ray workers: thin shells around `LocalBackend` (the in-process pipeline), one model per actor.

Why pools of named actors rather than Ray Serve deployments: a workflow graph calls a handful of request/response
operations (encode, understand, generate a frame block, a storyboard step) from Python, not over HTTP, so an actor
call skips the HTTP/proxy hop; every worker is a named actor (`show-studio/transformer-0`) that an operator finds
in the dashboard and a driver finds with `ray.get_actor`; retries are fine-grained (Ray restarts a dead worker and
re-runs just the call that was in flight, not a whole job); progress and cancellation are plain actor calls. Serve
can still front the studio's HTTP API later, calling these pools from its ingress.

The classes are plain Python here; `ray_cluster.pools` turns them into actors with `ray.remote(...).options(...)`
(names, `num_cpus`/`num_gpus`, `max_restarts`, `max_task_retries`, `max_concurrency`). They are async actors: calls
arrive concurrently on an event loop, wait in a `Batcher`, and run one at a time on a single model thread, so
concurrent understanding queries and compatible image generations go through the model as one batch.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Callable

from ray_cluster.batching import Batcher
from ray_cluster.config import ModelConfig, PoolConfig

MASKGIT_STAGES = frozenset({"image", "frame", "keyframe"})


@dataclass
class _Request:
    """What the worker knows about one call in flight: its latest progress and whether it was cancelled."""

    progress: tuple | None = None
    cancelled: bool = False
    steps: int = 0


class _Worker:
    pool = "worker"

    def __init__(self, name: str, model: ModelConfig, pool: PoolConfig, factory=None, batch_images: bool = True) -> None:
        # Heavy imports and the model load happen here, once per actor process (again only after a restart).
        import ray
        import torch

        from ray_cluster.loading import load_pipeline
        from ray_cluster.local import LocalBackend
        from ray_cluster.metrics import WorkerMetrics

        device = model.device
        if device == "auto":
            device = "cuda" if ray.get_gpu_ids() and torch.cuda.is_available() else "cpu"
        self.name = name
        self.config = pool
        self.batch_images = batch_images
        self.backend = LocalBackend(load_pipeline(model, device, factory))
        self.metrics = WorkerMetrics(self.pool, name)
        self.batcher = Batcher(wait_s=pool.batch_wait_s, max_rows=pool.max_batch_size,
                               on_queue=self.metrics.queued, on_busy=self.metrics.working)
        self.requests: dict[str, _Request] = {}
        self.pid = os.getpid()  # a new pid after a restart
        self.started = time.time()

    # ------------------------------------------------------------------------------------------ control
    async def info(self, request_id: str | None = None):
        """The `BackendInfo` of the served pipeline."""
        return self.backend.info()

    async def ping(self) -> dict:
        """Who answers: name, process id (new after a restart), start time, what it serves."""
        return {"name": self.name, "pid": self.pid, "started": self.started, "device": str(self.backend.device)}

    async def progress(self, request_id: str) -> tuple | None:
        """The latest `Progress` of a call in flight as a tuple (None when it has none or is done)."""
        request = self.requests.get(request_id)
        return None if request is None else request.progress

    async def cancel(self, request_id: str) -> bool:
        """Ask a call in flight to stop at its next step (it then raises `Cancelled`)."""
        request = self.requests.get(request_id)
        if request is not None:
            request.cancelled = True
        return request is not None

    async def stats(self) -> dict:
        """The worker's counters: requests by op and outcome, batch sizes per model call, tokens, MaskGIT steps."""
        return {"name": self.name, "pid": self.pid, "started": self.started, **self.metrics.snapshot()}

    # ------------------------------------------------------------------------------------------ plumbing
    async def _serve(self, op: str, request_id: str, call: Callable[[_Request], Any]) -> Any:
        """Run one call with its bookkeeping: the request's state, and its outcome and latency as metrics."""
        from workflows.errors import Cancelled

        started = time.perf_counter()
        request = self.requests[request_id] = _Request()
        outcome = "error"
        try:
            result = await call(request)
            outcome = "ok"
            return result
        except Cancelled:
            outcome = "cancelled"
            raise
        finally:
            self.requests.pop(request_id, None)
            self.metrics.request(op, outcome, started)

    def _hooks(self, requests: list[_Request]):
        """Progress and stop callbacks for a model call serving `requests` (one, or a whole batch)."""

        def progress(event) -> None:
            record = (event.task, event.stage, event.step, event.total, event.inner_step, event.inner_total)
            for request in requests:
                request.progress = record
                if event.stage in MASKGIT_STAGES:
                    request.steps += 1

        def should_stop() -> bool:  # a batch stops only when all its callers gave up
            return all(request.cancelled for request in requests)

        return progress, should_stop

    async def _alone(self, op: str, request_id: str, fn: Callable, tokens: Callable[[Any], int] = lambda out: 0):
        """An unbatched operation: `fn(progress, should_stop)` on the model thread."""

        async def call(request: _Request):
            def job():
                progress, should_stop = self._hooks([request])
                started = time.perf_counter()
                out = fn(progress, should_stop)
                self.metrics.model_call(op, 1, time.perf_counter() - started, tokens(out), request.steps)
                return out

            return await self.batcher.run(job)

        return await self._serve(op, request_id, call)

    def _op(self, op: str, request_id: str, args: tuple, kwargs: dict, tokens=lambda out: 0, hooks: bool = True):
        method = getattr(self.backend, op)
        if not hooks:  # media reads take no progress / should_stop
            return self._alone(op, request_id, lambda p, s: method(*args, **kwargs), tokens)
        return self._alone(op, request_id, lambda p, s: method(*args, progress=p, should_stop=s, **kwargs), tokens)


class TokenizerWorker(_Worker):
    """Images and videos to codes and back, and reading media files (paths and fsspec URLs resolve on the worker)."""

    pool = "tokenizer"

    async def load_video(self, request_id: str, uri, **kwargs):
        return await self._op("load_video", request_id, (uri,), kwargs, hooks=False)

    async def load_image(self, request_id: str, uri, **kwargs):
        return await self._op("load_image", request_id, (uri,), kwargs, hooks=False)

    async def encode_image(self, request_id: str, image):
        return await self._op("encode_image", request_id, (image,), {})

    async def decode_image(self, request_id: str, codes):
        return await self._op("decode_image", request_id, (codes,), {})

    async def encode_video(self, request_id: str, video):
        return await self._op("encode_video", request_id, (video,), {})

    async def decode_video(self, request_id: str, codes):
        return await self._op("decode_video", request_id, (codes,), {})


@dataclass
class _Call:
    request: _Request
    args: dict


class TransformerWorker(_Worker):
    """Show-o: understanding (batched across concurrent calls), images (batched on request), video, storyboards."""

    pool = "transformer"

    async def understand(self, request_id: str, visual_codes, kinds, questions, *, options, seed: int) -> list[str]:
        """`LocalBackend.understand`; concurrent greedy calls with the same options run as one batch.

        Greedy decoding with pad-aware positions gives every row the tokens it would get alone, so batching never
        changes an answer. Sampled answers (top_k != 1) run alone with their own seed.
        """
        from ray_cluster.local import as_options
        from workflows.backend import TextOptions

        options = as_options(options, TextOptions)
        key = ("understand", options) if options.top_k == 1 else None
        args = dict(visual_codes=list(visual_codes), kinds=list(kinds), questions=list(questions), options=options,
                    seed=seed)

        async def call(request: _Request):
            rows = len(args["visual_codes"])
            return await self.batcher.submit(key, _Call(request, args), rows, self._understand_batch)

        return await self._serve("understand", request_id, call)

    def _understand_batch(self, key, calls: list[_Call]) -> list:
        merged = {name: [x for c in calls for x in c.args[name]] for name in ("visual_codes", "kinds", "questions")}
        progress, should_stop = self._hooks([c.request for c in calls])
        started = time.perf_counter()
        texts, ids = self.backend.understand_ids(**merged, options=calls[0].args["options"], seed=calls[0].args["seed"],
                                                 progress=progress, should_stop=should_stop)
        self.metrics.model_call("understand", len(texts), time.perf_counter() - started, tokens=sum(map(len, ids)))
        results, start = [], 0
        for c in calls:
            end = start + len(c.args["visual_codes"])
            results.append(_cancelled() if c.request.cancelled else texts[start:end])
            start = end
        return results

    async def generate_image(self, request_id: str, prompt: str, known_codes=None, regenerate=None, *, options,
                             seed: int):
        """`LocalBackend.generate_image`. With `batch_images`, concurrent calls with the same options run as one
        batch that samples from one random stream (the first call's generator): faster under load, but a batched
        image then depends on its companions. Off by default, which keeps every image a function of its seed."""
        from ray_cluster.local import as_options, make_generator
        from workflows.backend import ImageOptions

        options = as_options(options, ImageOptions)
        generator = make_generator(seed, self.backend.device)
        tokens = self.backend.image_tokens(known_codes, regenerate, generator)  # bad input fails before queueing
        key = ("image", options) if self.batch_images else None
        args = dict(prompt=prompt, tokens=tokens, options=options, generator=generator)

        async def call(request: _Request):
            return await self.batcher.submit(key, _Call(request, args), 1, self._image_batch)

        return await self._serve("generate_image", request_id, call)

    def _image_batch(self, key, calls: list[_Call]) -> list:
        import torch

        progress, should_stop = self._hooks([c.request for c in calls])
        started = time.perf_counter()
        codes = self.backend.generate_image_rows(
            [c.args["prompt"] for c in calls], torch.cat([c.args["tokens"] for c in calls]), calls[0].args["options"],
            calls[0].args["generator"], progress, should_stop,
        )
        self.metrics.model_call("generate_image", len(calls), time.perf_counter() - started, steps=calls[0].request.steps)
        return [_cancelled() if c.request.cancelled else row for c, row in zip(calls, codes)]

    async def extrapolate_image(self, request_id: str, prompt, codes, direction, new_size=None, **kwargs):
        return await self._op("extrapolate_image", request_id, (prompt, codes, direction, new_size), kwargs)

    async def generate_video(self, request_id: str, prompt, given_codes, num_latent_frames, **kwargs):
        return await self._op("generate_video", request_id, (prompt, given_codes, num_latent_frames), kwargs)

    async def storyboard_step(self, request_id: str, question, history, **kwargs):
        return await self._op("storyboard_step", request_id, (question, history), kwargs,
                              tokens=lambda out: len(out.caption_ids or ()))


def _cancelled():
    from workflows.errors import Cancelled

    return Cancelled("cancelled by the caller")
