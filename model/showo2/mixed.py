"""The released mixed-modality loop (`inference_mixed_modality.py`), the reference mode of `Showo2Pipeline.storyboard`.

It differs from the cached storyboard in these ways, each reproduced here:

- the history is a string: every round tokenises the whole history again, and after each image the token ids
  (bos, text, `<|vision_start|>`, pads, `<|vision_end|>`) are decoded back to text (pads removed) and re-tokenised
  the next round, so non-canonical sampled tokens can shift the history and its stored image offsets;
- a round is text until `<|vision_start|>` (then an image), `<|im_end|>` or the token cap (text only: the next
  round continues the text); `num_steps` counts rounds, not images;
- text after an image is generated with the history images' time slots at t = 0, the images themselves at t = 1
  when the next image is sampled;
- rounds after the first use guidance 5.0 whatever was asked;
- each image is sampled on the full right-padded sequence (a multiple of 128) of `[cond; null]` rows, the history
  latents prepended to the noise, only the last image's velocity kept; the null row is built from a history
  string that loses 16 characters meant for `<|vision_start|>` (from the second image on, a dangling
  `<|image_pad` fragment) and all of its entries sit at offset 2;
- the sampler counts grid points and the noise is rounded to bfloat16 (`FlowConfig.reference`); text is sampled
  token by token recomputing the whole sequence, stopping after the stop token (which stays in the history).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from model.sampling.ar import sample_next
from model.sampling.flow import FlowConfig, flow_sample, initial_noise
from model.showo2.prompting import TOKEN_STRINGS, additive_mask, encode, omni_mask

GUIDANCE_AFTER_FIRST_ROUND = 5.0
PAD_MULTIPLE = 128


@dataclass
class _History:
    text: str  # the cond history string
    null: str  # the null history string
    latents: list[torch.Tensor]  # (1, C, h, w) per image
    spans: list[tuple[int, int]]  # the offsets the release stored for them


def reference_storyboard(pipe, prompt: str, *, num_steps: int, max_caption_tokens: int, steps: int,
                         guidance_scale: float, generator: torch.Generator, temperature: float = 1.0,
                         top_k: int | None = None) -> list:
    """`num_steps` rounds of the released loop; returns one `Showo2StoryStep` per round (`keyframe` and `latents`
    None for a round that ended without `<|vision_start|>`)."""
    from model.showo2.pipeline import Showo2StoryStep

    if guidance_scale <= 0:
        raise ValueError("reference storyboards need guidance_scale > 0: the released loop builds its rounds after "
                         "the first as a guided [cond; null] batch")
    bos = TOKEN_STRINGS["bos"]
    boi = TOKEN_STRINGS["boi"]
    hist = _History(prompt, "", [], [])
    out = []
    for round_index in range(num_steps):
        if not hist.text.startswith(bos):
            hist.text = bos + hist.text
        ids = _reference_text(pipe, hist, encode(pipe.tokenizer, hist.text), max_caption_tokens, generator,
                              temperature, top_k)
        hist.text += pipe.tokenizer.decode(ids, skip_special_tokens=False)
        caption_ids = [i for i in ids if i not in (pipe.tokens.eos, pipe.tokens.boi)]
        caption = pipe.tokenizer.decode(caption_ids, skip_special_tokens=True)
        if not hist.text.endswith(boi):
            out.append(Showo2StoryStep(caption, caption_ids, None, None))
            continue
        hist.text = hist.text[len(bos):][: -len(boi)]
        hist.null = hist.null[len(bos):][: -len(boi)]
        w = guidance_scale if round_index == 0 else GUIDANCE_AFTER_FIRST_ROUND
        z = _reference_image(pipe, hist, w, steps, generator)
        hist.latents.append(z)
        image = pipe.decode(z[:, :, None])[0, :, 0]
        out.append(Showo2StoryStep(caption, caption_ids, image, z[0]))
    return out


@torch.no_grad()
def history_logits(pipe, ids: list[int], latents: torch.Tensor | None, spans: list[tuple[int, int]]) -> torch.Tensor:
    """Next-token logits `(V,)` of the released text rounds: `lm_generate` without images (causal), `mm_generate`
    with the history `latents (k, C, h, w)` at `spans`, their time slots at t = 0 and their blocks bidirectional."""
    model = pipe.model
    device = pipe.device
    tokens = torch.tensor([ids], device=device)
    if latents is None:
        return model.logits(model.run_llm(model.embed(tokens, None, None, None), None)[:, -1])[0]
    latents = latents.to(device, model.dtype)
    _, token = model.time_embeddings(torch.zeros(latents.shape[0], device=device))
    positions = torch.tensor([spans], device=device)
    embeds = model.embed(tokens, model.visual_embeddings(latents), token, positions)
    mask = additive_mask(omni_mask(1, len(ids), positions, device=device), model.dtype)
    return model.logits(model.run_llm(embeds, mask)[:, -1])[0]


def _reference_text(pipe, hist: _History, ids: list[int], max_new: int, generator, temperature, top_k) -> list[int]:
    """The released text round, recomputing the whole sequence per token; the stop token is kept."""
    tok = pipe.tokens
    latents = torch.cat(hist.latents) if hist.latents else None
    seq, out = list(ids), []
    for _ in range(max_new):
        logits = history_logits(pipe, seq, latents, hist.spans)
        nxt = int(sample_next(logits[None], generator=generator, temperature=temperature, top_k=top_k)[0])
        seq.append(nxt)
        out.append(nxt)
        if nxt in (tok.eos, tok.boi):
            break
    return out


def _padded(ids: list[int], length: int, pad: int) -> list[int]:
    return ids + [pad] * (length - len(ids))


def _reference_image(pipe, hist: _History, guidance_scale: float, steps: int, generator) -> torch.Tensor:
    """`prepare_mixed_modal_gen_input`, then the released ODE over the full `[cond; null]` batch; updates the
    history strings and spans; returns the new latents `(1, C, h, w)`."""
    model, tok, tokenizer = pipe.model, pipe.tokens, pipe.tokenizer
    device = pipe.device
    slots = model.config.num_image_tokens + 1
    text_ids, null_ids = encode(tokenizer, hist.text), encode(tokenizer, hist.null)
    block = [tok.boi, *[tok.img_pad] * slots, tok.eoi]
    cond = [tok.bos, *text_ids, *block]
    null = [tok.bos, *null_ids, *block]
    length = -(-max(len(cond), len(null)) // PAD_MULTIPLE) * PAD_MULTIPLE
    cond, null = _padded(cond, length, tok.pad), _padded(null, length, tok.pad)
    span = (len(text_ids) + 2, slots)
    hist.text = tokenizer.decode(cond, skip_special_tokens=False).replace(TOKEN_STRINGS["pad"], "")
    hist.null = tokenizer.decode(null, skip_special_tokens=False).replace(TOKEN_STRINGS["pad"], "")
    k = len(hist.latents)
    cond_spans = [*hist.spans, span]
    null_spans = [(2, slots)] * (k + 1)  # the release forces every null entry to (2, N + 1)
    hist.spans = cond_spans
    ids = torch.tensor([cond, null], device=device)
    spans = torch.tensor([cond_spans, null_spans], device=device)
    mask = additive_mask(omni_mask(2, length, spans, device=device), model.dtype)
    config = FlowConfig.reference(steps=steps, guidance_scale=guidance_scale)
    shape = (1, model.config.latent_channels, *pipe.latent_size)
    noise = initial_noise(shape, generator=generator, config=config, device=device)
    history = [z.to(device).float() for z in hist.latents]
    null_history = noise.repeat(k, 1, 1, 1)  # the null copies of the noise stay noise (their velocity is zeroed)

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        xc, xu = x.chunk(2)
        latents = torch.cat([*history, xc, null_history, xu]).to(model.dtype)
        times = torch.ones(2 * (k + 1), device=device)
        times[k], times[2 * k + 1] = t[0], t[1]  # earlier images are clean (t = 1)
        with torch.no_grad():
            v = model(ids, image_latents=latents, t=times, attention_mask=mask, modality_positions=spans).velocity
        return torch.cat([v[k : k + 1], v[2 * k + 1 :]]).float()

    return flow_sample(velocity, noise, config).latents
