"""The OpenAI-compatible API: what the official `openai` clients (and LangChain, LiteLLM, ...) call, over the same
job store, runner, validation and limits as the native job API (`studio.api`).

```
GET    /v1/models                     the models served, the default first (GET /v1/models/{id}: one)
POST   /v1/chat/completions           one image or video part + text -> an answer (`qa` job, or a `workflow` job
                                      on an image); stream: true relays the answer as it is decoded
POST   /v1/images/generations         n `t2i` jobs -> b64_json or url
POST   /v1/videos                     a `t2v` job, or with `input_reference` (a clip or an image) `continue_video`
GET    /v1/videos                     video jobs (cursor: after, limit, order)
GET    /v1/videos/{id}                status and progress
GET    /v1/videos/{id}/content        the MP4
DELETE /v1/videos/{id}                a finished video job, its events and its files
```

A request's `model` chooses the model its jobs run on (none: the default model; an unknown one is a 404
`model_not_found` listing the models), and the answer names the model it ran on.

Every request is turned into the native parameters of a job kind and validated by that kind's model
(`studio.schemas.PARAMS`) and by `Service.submit` (media rules, `studio.limits`); their errors come back in the
OpenAI shape `{"error": {"message", "type", "param", "code"}}` with the parameter named as the client sent it.

A streamed chat relays the answer while the model decodes it: the understanding step reports each token's text as
job events (`text_delta`, `studio.runner`) and the stream sends each new piece. A chat's `usage` counts text with
the model's own text tokenizer (`ModelInfo.count_text_tokens`), the visual tokens included in the prompt.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from contextlib import aclosing
from typing import Any, AsyncIterator, Callable

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from studio.events import TooManyStreams
from studio.jobs import TERMINAL, Job
from studio.openai_common import (
    POLL_S, OpenAIError, cancel_quietly, check_model, finished, media, openai_error_body, submit_job, succeeded,
)
from studio.openai_schemas import (
    ChatCompletionOut, ChatRequest, ImageOut, ImageRequest, ImagesOut, ModelListOut, ModelOut, OpenAIErrorOut,
)
from studio.openai_videos import add_video_routes, check_size
from studio.schemas import PARAMS
from studio.service import Service

log = logging.getLogger("studio.openai")

KEEP_ALIVE_S = 15.0
WAKE_S = 1.0  # the longest a stream waits for the event hub before reading the job's events again
MAX_STOPS = 4
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": OpenAIErrorOut} for code in (400, 401, 404, 409, 413, 500)}

# Image understanding as a graph of built-in steps (the `workflow` kind): the `qa` kind reads videos only.
IMAGE_QA = {
    "name": "image_qa",
    "inputs": {"uri": "str", "question": "str", "options": "TextOptions"},
    "steps": [
        {"name": "image", "step": "load_image", "inputs": {"uri": {"input": "uri"}}},
        {"name": "codes", "step": "encode_image", "inputs": {"image": {"step": "image"}}},
        {"name": "answer", "step": "understand", "inputs": {"codes": {"step": "codes"}, "kind": "image",
                                                            "question": {"input": "question"},
                                                            "options": {"input": "options"}}},
    ],
    "outputs": {"answer": {"step": "answer"}},
}


# ---------------------------------------------------------------------------------------------- chat
def _counter(service: Service, model: str) -> Callable[[str], int]:
    """The text token counter of `model` (`ModelInfo.count_text_tokens`: its own text tokenizer)."""
    count = service.info(model).count_text_tokens
    if count is None:
        raise OpenAIError(500, f"the model {model!r} states no text tokenizer, so usage cannot be counted", None,
                          "no_tokenizer")
    return count


def _chat_job(service: Service, req: ChatRequest) -> tuple[str, int, str, int | None, str]:
    """The job of a chat request (its id and longest answer), the question, the video's latent frames (None: an
    image) and the model it runs on."""
    stops = _stops(req.stop)
    if len(stops) > MAX_STOPS or any(not s for s in stops):
        raise OpenAIError(400, f"stop takes 1 to {MAX_STOPS} non-empty strings", "stop")
    model = check_model(service, req.model)
    _counter(service, model)  # before any work: the answer's usage must be countable
    if req.n != 1:
        raise OpenAIError(400, f"n is {req.n}; this service answers with one choice per request (n=1)", "n")
    if any(m.role == "assistant" for m in req.messages):
        raise OpenAIError(400, "the model answers one question about one image or clip, without earlier turns: "
                               "send system messages and one user message", "messages")
    users = [i for i, m in enumerate(req.messages) if m.role == "user"]
    if len(users) != 1:
        raise OpenAIError(400, f"send exactly one user message (got {len(users)})", "messages")
    texts: list[str] = []
    visuals: list[tuple[str, str, str]] = []  # (kind, url, param)
    for index, message in enumerate(req.messages):
        parts = [message.content] if isinstance(message.content, str) else (message.content or [])
        for p_index, part in enumerate(parts):
            where = f"messages.{index}.content.{p_index}"
            if isinstance(part, str):
                texts.append(part)
            elif part.type == "text":
                texts.append(part.text)
            elif message.role != "user":
                raise OpenAIError(400, "images and videos go in the user message", where)
            elif part.type == "image_url":
                visuals.append(("image", part.image_url.url, f"{where}.image_url.url"))
            else:
                visuals.append(("video", part.video_url.url, f"{where}.video_url.url"))
    question = " ".join(t.strip() for t in texts if t.strip())
    if not question:
        raise OpenAIError(400, "the messages hold no text: ask a question about the image or video", "messages")
    if len(visuals) != 1:
        raise OpenAIError(400, f"the user message must hold exactly one image_url or video_url part (got "
                               f"{len(visuals)}): the model answers about one image or clip", "messages")
    kind, url, where = visuals[0]
    max_new = req.max_completion_tokens or req.max_tokens or PARAMS["qa"].model_fields["max_new_tokens"].default
    greedy = req.temperature == 0 or (req.temperature is None and req.top_p is None)
    sampling = {"top_k": 1} if greedy else {"top_k": None, "temperature": req.temperature or 1.0, "top_p": req.top_p}
    names = {"max_new_tokens": "max_tokens", "video": where, "uri": where, "question": "messages",
             "kind": "messages", "graph": "messages"}
    info = service.info(model)
    if kind == "video":
        video = {"num_frames": req.num_frames, "fps": req.fps}
        params = {"video": media(service, url, "video", where), "question": question, "max_new_tokens": max_new,
                  **sampling, **{k: v for k, v in video.items() if v is not None}}
        job, params = submit_job(service, "qa", params, req.seed, model, names)  # frame rule, limits: studio.limits
        return job.id, max_new, question, info.latent_frames(params["num_frames"]), model
    if req.num_frames is not None or req.fps is not None:
        raise OpenAIError(400, "num_frames and fps apply to a video part; this message holds an image",
                          "num_frames" if req.num_frames is not None else "fps")
    options = {"max_new_tokens": max_new, **{k: v for k, v in sampling.items() if v is not None or k == "top_k"}}
    params = {"graph": IMAGE_QA, "inputs": {"uri": media(service, url, "image", where), "question": question,
                                            "options": options}}
    job, _ = submit_job(service, "workflow", params, req.seed, model, names)
    return job.id, max_new, question, None, model


def _answer(job: Job) -> str:
    result = job.result or {}
    return str(result["answer"] if job.kind == "qa" else result["outputs"]["answer"])


def _stops(stop: str | list[str] | None) -> list[str]:
    return [stop] if isinstance(stop, str) else list(stop or [])


def _finish(service: Service, model: str, answer: str, stop: str | list[str] | None, max_new: int
            ) -> tuple[str, str, int]:
    """The answer cut before the first stop string, the finish reason and the answer's token count (by `model`'s
    text tokenizer)."""
    count = _counter(service, model)
    cut = min((answer.find(s) for s in _stops(stop) if s and s in answer), default=-1)
    if cut >= 0:
        return answer[:cut], "stop", count(answer[:cut])
    tokens = count(answer)
    return answer, "length" if tokens >= max_new else "stop", tokens


def _sendable(text: str, stops: list[str]) -> int:
    """How much of `text`, the answer decoded so far, a stream may send: up to the first stop string in it, and
    short of an ending that may be the start of one (`_finish` cuts the answer at the earliest stop string)."""
    end = len(text)
    for stop in stops:
        found = text.find(stop)
        if found >= 0:
            end = min(end, found)
        for k in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:k]):
                end = min(end, len(text) - k)
                break
    return end


def _usage(service: Service, model: str, question: str, latent: int | None, completion: int) -> dict[str, int]:
    """Prompt tokens: the question's by the model's text tokenizer, plus the visual tokens and the template around
    them (from the model's info: the positions of an understanding row without its question)."""
    info = service.info(model)
    if info.positions is not None and info.max_positions is not None:
        visual = info.understand_image_positions(0) if latent is None else info.understand_positions(latent, 0)
    else:
        visual = (latent or 1) * info.grid[0] * info.grid[1]
    prompt = visual + _counter(service, model)(question)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


async def _answer_text(service: Service, job_id: str) -> AsyncIterator[str | None]:
    """The job's answer as it is decoded: the new text of each batch of its events (`text_delta` of the
    `step_progress` events, `studio.runner`), or None after `KEEP_ALIVE_S` without any; ends with the job.

    The store holds the events; the job's subscription to the event hub only says when to read it again (without
    one, when the hub's streams are all taken, the store is polled every `POLL_S`)."""
    try:
        sub = service.hub.subscribe(job_id)
    except TooManyStreams:
        sub = None
    since, quiet = 0, 0.0
    try:
        while True:
            events = await asyncio.to_thread(service.events, job_id, since)
            pieces, ended = [], False
            for event in events:
                since = event.seq + 1
                delta = event.payload.get("text_delta") if event.type == "step_progress" else None
                if delta:  # the chat graphs have one answering step, of one row
                    pieces.append(delta[0])
                ended = ended or event.type in TERMINAL
            if pieces:
                quiet = 0.0
                yield "".join(pieces)
            if ended:
                return
            if events:
                continue  # there may be more stored already
            waited = time.monotonic()
            if sub is None:
                await asyncio.sleep(POLL_S)
            elif await sub.next(WAKE_S) is not None:
                sub.drain()  # woken: whatever came is read from the store
            quiet += time.monotonic() - waited
            if quiet >= KEEP_ALIVE_S:
                quiet = 0.0
                yield None
    finally:
        if sub is not None:
            sub.close()


async def _stream_chat(service: Service, req: ChatRequest, job_id: str, question: str, latent: int | None,
                       max_new: int, model: str) -> AsyncIterator[str]:
    """Chunks: the role, the answer as the model decodes it (each new piece of text once the job's events bring it,
    held back only where it may be the start of a stop string), the finish reason, the usage (with
    `stream_options.include_usage`), then `[DONE]`; a comment every 15 s keeps the connection open. The pieces join
    to the answer the same request gets without `stream`."""
    cid, created = f"chatcmpl-{job_id}", int(time.time())
    with_usage = bool(req.stream_options and req.stream_options.include_usage)
    stops = _stops(req.stop)  # non-empty: `_chat_job` refused the request otherwise
    done = False

    def chunk(delta: dict[str, Any] | None, finish: str | None = None, usage: dict[str, int] | None = None) -> str:
        """A chunk of `delta` (None: of no choice, for the usage); `usage` is sent with `include_usage` only."""
        choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]
        body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model, "choices": choices}
        return f"data: {json.dumps(body | ({'usage': usage} if with_usage else {}))}\n\n"

    try:
        yield chunk({"role": "assistant", "content": ""})
        text, sent = "", 0
        async with aclosing(_answer_text(service, job_id)) as pieces:  # its subscription ends with the stream
            async for piece in pieces:
                if piece is None:
                    yield ": keep-alive\n\n"
                    continue
                text += piece
                end = _sendable(text, stops)
                if end > sent:
                    yield chunk({"content": text[sent:end]})
                    sent = end
        done = True
        job = await asyncio.to_thread(service.get, job_id)
        try:
            answer, reason, completion = _finish(service, model, _answer(succeeded(job)), req.stop, max_new)
        except OpenAIError as err:
            yield f"data: {json.dumps(openai_error_body(err.status, err.message, err.param, err.code))}\n\n"
            return
        if not answer.startswith(text[:sent]):  # decoding more tokens changed text already decoded
            log.error("job %s: the streamed answer %r is not a prefix of the final answer %r", job_id, text[:sent],
                      answer)
        if answer[sent:]:  # what the events did not bring (the last moments before the job ended)
            yield chunk({"content": answer[sent:]})
        yield chunk({}, reason)
        if with_usage:
            yield chunk(None, usage=_usage(service, model, question, latent, completion))
        yield "data: [DONE]\n\n"
    finally:
        if not done:  # the client went away: stop the work nobody will read
            job = await asyncio.to_thread(service.get, job_id)
            if not job.finished:
                await asyncio.to_thread(cancel_quietly, service, job_id)


# ---------------------------------------------------------------------------------------------- routes
def openai_router(service: Service) -> APIRouter:
    """The OpenAI-compatible routes (tag `openai`)."""
    router = APIRouter(prefix="/v1", tags=["openai"], responses=ERRORS)

    @router.get("/models", response_model=ModelListOut)
    def list_models() -> ModelListOut:
        """The models jobs run on, the default first (a request that names none runs on it)."""
        return ModelListOut(data=[_model(service, name) for name in service.models])

    @router.get("/models/{model}", response_model=ModelOut)
    def get_model(model: str) -> ModelOut:
        return _model(service, check_model(service, model))

    @router.post("/chat/completions", response_model=ChatCompletionOut,
                 responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                                  "description": "the completion, or with stream: true its chunks"}})
    async def chat(req: ChatRequest, request: Request) -> Any:
        """Answer a question about one image or video (an understanding job); with `stream: true`, chunked
        deltas (the answer's text as the model decodes it, token by token) ending with `[DONE]`."""
        job_id, max_new, question, latent, model = await asyncio.to_thread(_chat_job, service, req)
        if req.stream:
            return StreamingResponse(_stream_chat(service, req, job_id, question, latent, max_new, model),
                                     media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        job = succeeded(await finished(service, job_id, request))
        answer, reason, completion = _finish(service, model, _answer(job), req.stop, max_new)
        return ChatCompletionOut(
            id=f"chatcmpl-{job.id}", created=int(job.created_at), model=model,
            choices=[{"index": 0, "message": {"content": answer}, "finish_reason": reason}],
            usage=_usage(service, model, question, latent, completion), job_id=job.id)

    @router.post("/images/generations", response_model=ImagesOut)
    async def images(req: ImageRequest, request: Request) -> ImagesOut:
        """`n` images from a prompt, each a `t2i` job with its artifacts (`job_id`); `b64_json` (the default) or
        `url` (`GET /v1/artifacts/...`, with the same bearer token)."""
        model = check_model(service, req.model)
        check_size(service, req.size, model)
        params = {"prompt": req.prompt, **{k: v for k in ("steps", "guidance_scale", "code_temperature")
                                           if (v := getattr(req, k)) is not None}}

        def submit() -> list[str]:
            return [submit_job(service, "t2i", params, None if req.seed is None else (req.seed + i) % 2**63, model,
                               {})[0].id for i in range(req.n)]

        ids = await asyncio.to_thread(submit)
        try:
            jobs = [succeeded(await finished(service, job_id, request)) for job_id in ids]
        except OpenAIError:
            for job_id in ids:  # one failed or the client went away: the others' images would go unread
                await asyncio.to_thread(cancel_quietly, service, job_id)
            raise
        base = str(request.base_url).rstrip("/")
        data = []
        for job in jobs:
            name = job.result["image"]
            if req.response_format == "url":
                data.append(ImageOut(url=f"{base}/v1/artifacts/{job.id}/{name}", job_id=job.id))
            else:
                png, _ = await asyncio.to_thread(service.artifact, job.id, name)
                data.append(ImageOut(b64_json=base64.b64encode(png).decode(), job_id=job.id))
        return ImagesOut(created=int(time.time()), data=data, model=model)

    add_video_routes(router, service)
    return router


def _model(service: Service, name: str) -> ModelOut:
    return ModelOut(id=name, created=int(service.started_at or time.time()))
