"""The released Show-o2 semantics, re-implemented in plain PyTorch from the facts of the release, reading a state
dict in the released key layout. Independent of `model.showo2`: used by the parity tests only.

Also builds tiny seeded checkpoints in the released layout (key names and shapes written out here from the
release's module structure, not taken from our model).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F

# A tiny configuration (the released structure at toy sizes).
TINY = dict(
    H=32, layers=2, heads=4, kv=2, hd=8, inter=48, vocab=300, eps=1e-6, theta=1e6,
    clip=24, clip_layers=2, clip_heads=2, clip_inter=40, clip_pos=16, grid=4,
    C=16, p=2, head=48, head_layers=2, head_heads=6, head_kv=2, head_inter=64, freq=32,
)


# ----------------------------------------------------------------------------------------------- layout
def released_shapes(c: dict) -> dict[str, tuple[int, ...]]:
    """Key -> shape of a released checkpoint (`Showo2Qwen2_5.state_dict()`), written from the release's modules."""
    H, D, hd, F_ = c["H"], c["head"], c["head"] // c["head_heads"], c["freq"]
    s: dict[str, tuple[int, ...]] = {"showo.model.embed_tokens.weight": (c["vocab"], H), "showo.model.norm.weight": (H,),
                                     "showo.lm_head.weight": (c["vocab"], H)}
    for i in range(c["layers"]):
        p = f"showo.model.layers.{i}."
        s.update({p + "self_attn.q_proj.weight": (c["heads"] * c["hd"], H), p + "self_attn.q_proj.bias": (c["heads"] * c["hd"],),
                  p + "self_attn.k_proj.weight": (c["kv"] * c["hd"], H), p + "self_attn.k_proj.bias": (c["kv"] * c["hd"],),
                  p + "self_attn.v_proj.weight": (c["kv"] * c["hd"], H), p + "self_attn.v_proj.bias": (c["kv"] * c["hd"],),
                  p + "self_attn.o_proj.weight": (H, c["heads"] * c["hd"]),
                  p + "mlp.gate_proj.weight": (c["inter"], H), p + "mlp.up_proj.weight": (c["inter"], H),
                  p + "mlp.down_proj.weight": (H, c["inter"]),
                  p + "input_layernorm.weight": (H,), p + "post_attention_layernorm.weight": (H,)})
    Dc = c["clip"]
    s.update({"image_embedder_und.proj.weight": (Dc, c["C"], c["p"], c["p"]), "image_embedder_und.proj.bias": (Dc,),
              "image_embedder_gen.proj.weight": (H, c["C"], c["p"], c["p"]), "image_embedder_gen.proj.bias": (H,),
              "position_embedding.weight": (c["clip_pos"], Dc)})
    for i in range(c["clip_layers"]):
        p = f"und_trans.layers.{i}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            s[p + f"self_attn.{proj}.weight"], s[p + f"self_attn.{proj}.bias"] = (Dc, Dc), (Dc,)
        for ln in ("layer_norm1", "layer_norm2"):
            s[p + f"{ln}.weight"], s[p + f"{ln}.bias"] = (Dc,), (Dc,)
        s.update({p + "mlp.fc1.weight": (c["clip_inter"], Dc), p + "mlp.fc1.bias": (c["clip_inter"],),
                  p + "mlp.fc2.weight": (Dc, c["clip_inter"]), p + "mlp.fc2.bias": (Dc,)})
    s.update({"fusion_proj.0.weight": (Dc + H,), "fusion_proj.1.weight": (H, Dc + H), "fusion_proj.1.bias": (H,),
              "fusion_proj.3.weight": (H, H), "fusion_proj.3.bias": (H,),
              "time_embed.mlp.0.weight": (D, F_), "time_embed.mlp.0.bias": (D,),
              "time_embed.mlp.2.weight": (D, D), "time_embed.mlp.2.bias": (D,),
              "diff_proj.0.weight": (D, H), "diff_proj.0.bias": (D,), "diff_proj.2.weight": (D, D), "diff_proj.2.bias": (D,),
              "time_embed_proj.weight": (H, D), "time_embed_proj.bias": (H,)})
    for i in range(c["head_layers"]):
        p = f"diffusion_head_a.{i}."
        s.update({p + "self_attn.q_proj.weight": (D, D), p + "self_attn.k_proj.weight": (c["head_kv"] * hd, D),
                  p + "self_attn.v_proj.weight": (c["head_kv"] * hd, D), p + "self_attn.o_proj.weight": (D, D),
                  p + "self_attn.q_norm.weight": (hd,), p + "self_attn.k_norm.weight": (hd,),
                  p + "mlp.gate_proj.weight": (c["head_inter"], D), p + "mlp.up_proj.weight": (c["head_inter"], D),
                  p + "mlp.down_proj.weight": (D, c["head_inter"]),
                  p + "input_layernorm.weight": (D,), p + "post_attention_layernorm.weight": (D,),
                  p + "adaLN_modulation.1.weight": (6 * D, D), p + "adaLN_modulation.1.bias": (6 * D,)})
    out = c["p"] * c["p"] * c["C"]
    s.update({"diffusion_head_b.norm_final.weight": (D,), "diffusion_head_b.linear.weight": (out, D),
              "diffusion_head_b.linear.bias": (out,), "diffusion_head_b.adaLN_modulation.1.weight": (2 * D, D),
              "diffusion_head_b.adaLN_modulation.1.bias": (2 * D,)})
    return s


def random_state(c: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded weights of a sensible scale (norm gains around 1, matrices ~ 1/sqrt(fan_in)), tied LM head."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in released_shapes(c).items():
        if len(shape) == 1 and ("norm" in key or key.endswith("fusion_proj.0.weight")):
            value = 1 + 0.2 * torch.randn(shape, generator=gen)
        elif len(shape) == 1:
            value = 0.1 * torch.randn(shape, generator=gen)
        else:
            fan_in = math.prod(shape[1:])
            value = torch.randn(shape, generator=gen) / math.sqrt(fan_in)
        state[key] = value
    state["showo.lm_head.weight"] = state["showo.model.embed_tokens.weight"]
    return state


def write_checkpoint(root: Path, c: dict, state: dict[str, torch.Tensor], *, shards: int = 1, **config) -> Path:
    """A checkpoint folder as released: diffusers-style config.json, pytorch_model.bin (or shards + index), and the
    base models' configs in `qwen/` and `siglip/` next to it (referred to relatively)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "qwen").mkdir(exist_ok=True)
    (root / "siglip").mkdir(exist_ok=True)
    (root / "qwen" / "config.json").write_text(json.dumps(dict(
        model_type="qwen2", hidden_size=c["H"], num_hidden_layers=c["layers"], num_attention_heads=c["heads"],
        num_key_value_heads=c["kv"], intermediate_size=c["inter"], rms_norm_eps=c["eps"], rope_theta=c["theta"],
        tie_word_embeddings=True, vocab_size=c["vocab"] + 10)))
    (root / "siglip" / "config.json").write_text(json.dumps(dict(model_type="siglip", vision_config=dict(
        hidden_size=c["clip"], num_attention_heads=c["clip_heads"], intermediate_size=c["clip_inter"],
        num_hidden_layers=c["clip_layers"] + 1, layer_norm_eps=1e-6))))
    (root / "config.json").write_text(json.dumps({
        "_class_name": "Showo2Qwen2_5", "llm_vocab_size": c["vocab"], "llm_model_path": "qwen", "load_from_showo": True,
        "image_latent_dim": c["C"], "image_latent_height": c["grid"], "image_latent_width": c["grid"],
        "video_latent_height": c["grid"], "video_latent_width": c["grid"], "patch_size": c["p"], "hidden_size": c["H"],
        "clip_latent_dim": c["clip"], "num_diffusion_layers": c["head_layers"], "add_time_embeds": True,
        "add_qk_norm": True, "clip_pretrained_model_path": "siglip", **config}))
    if shards == 1:
        torch.save(state, root / "pytorch_model.bin")
    else:
        keys = list(state)
        weight_map = {}
        for i in range(shards):
            name = f"pytorch_model-{i + 1:05d}-of-{shards:05d}.bin"
            part = {k: state[k] for k in keys[i::shards]}
            torch.save(part, root / name)
            weight_map.update({k: name for k in part})
        (root / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": weight_map}))
    return root


# ----------------------------------------------------------------------------------------------- pieces
def rms(x, w, eps):
    xf = x.float()
    return w * (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)


def rope_tables(positions, inv_freq):
    freqs = positions[:, None].float() * inv_freq[None]
    emb = torch.cat([freqs, freqs], -1)
    return emb.cos(), emb.sin()


def rotate(x, cos, sin):
    half = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], -1) * sin


def llama3_inv_freq(dim, theta=500000.0, factor=32.0, low=1.0, high=4.0, original=8192):
    inv = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float) / dim))
    low_wavelen, high_wavelen = original / low, original / high
    out = []
    for f in inv.tolist():
        wavelen = 2 * math.pi / f
        if wavelen < high_wavelen:
            out.append(f)
        elif wavelen > low_wavelen:
            out.append(f / factor)
        else:
            smooth = (original / wavelen - low) / (high - low)
            out.append((1 - smooth) * f / factor + smooth * f)
    return torch.tensor(out, dtype=torch.float)


def attend(q, k, v, mask_add):
    """q (B, h, L, d), k/v (B, kv, L, d) with GQA, additive mask (B, 1, L, L) or None (causal)."""
    rep = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if mask_add is None:
        L = q.shape[2]
        mask_add = torch.zeros(L, L).masked_fill(~torch.ones(L, L, dtype=torch.bool).tril(), float("-inf"))
    return torch.softmax(scores + mask_add, -1) @ v


def qwen2(sd, c, embeds, mask_add):
    """The LLM over embeddings -> final-normed hidden states (positions 0..L-1)."""
    B, L, _ = embeds.shape
    inv = 1.0 / (c["theta"] ** (torch.arange(0, c["hd"], 2, dtype=torch.float) / c["hd"]))
    cos, sin = rope_tables(torch.arange(L), inv)
    x = embeds
    for i in range(c["layers"]):
        p = f"showo.model.layers.{i}."
        h = rms(x, sd[p + "input_layernorm.weight"], c["eps"])
        q = F.linear(h, sd[p + "self_attn.q_proj.weight"], sd[p + "self_attn.q_proj.bias"]).view(B, L, -1, c["hd"]).transpose(1, 2)
        k = F.linear(h, sd[p + "self_attn.k_proj.weight"], sd[p + "self_attn.k_proj.bias"]).view(B, L, -1, c["hd"]).transpose(1, 2)
        v = F.linear(h, sd[p + "self_attn.v_proj.weight"], sd[p + "self_attn.v_proj.bias"]).view(B, L, -1, c["hd"]).transpose(1, 2)
        a = attend(rotate(q, cos, sin), rotate(k, cos, sin), v, mask_add).transpose(1, 2).reshape(B, L, -1)
        x = x + F.linear(a, sd[p + "self_attn.o_proj.weight"])
        h = rms(x, sd[p + "post_attention_layernorm.weight"], c["eps"])
        x = x + F.linear(F.silu(F.linear(h, sd[p + "mlp.gate_proj.weight"])) * F.linear(h, sd[p + "mlp.up_proj.weight"]),
                         sd[p + "mlp.down_proj.weight"])
    return rms(x, sd["showo.model.norm.weight"], c["eps"])


def siglip(sd, c, x):
    B, N, D = x.shape
    nh = c["clip_heads"]
    for i in range(c["clip_layers"]):
        p = f"und_trans.layers.{i}."
        h = F.layer_norm(x, (D,), sd[p + "layer_norm1.weight"], sd[p + "layer_norm1.bias"], 1e-6)
        q, k, v = (F.linear(h, sd[p + f"self_attn.{n}.weight"], sd[p + f"self_attn.{n}.bias"]).view(B, N, nh, -1).transpose(1, 2)
                   for n in ("q_proj", "k_proj", "v_proj"))
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(D // nh), -1) @ v
        x = x + F.linear(a.transpose(1, 2).reshape(B, N, D), sd[p + "self_attn.out_proj.weight"], sd[p + "self_attn.out_proj.bias"])
        h = F.layer_norm(x, (D,), sd[p + "layer_norm2.weight"], sd[p + "layer_norm2.bias"], 1e-6)
        h = F.gelu(F.linear(h, sd[p + "mlp.fc1.weight"], sd[p + "mlp.fc1.bias"]), approximate="tanh")
        x = x + F.linear(h, sd[p + "mlp.fc2.weight"], sd[p + "mlp.fc2.bias"])
    return x


def pos_table(sd, c, gh, gw):
    table = sd["position_embedding.weight"]
    if table.shape[0] == c["grid"] * c["grid"]:
        return table
    side = int(table.shape[0] ** 0.5)
    grid = table.reshape(1, side, side, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(gh, gw), mode="bicubic", align_corners=False)
    return grid.permute(0, 2, 3, 1).reshape(gh * gw, -1)


def fused(sd, c, latents):
    """(n, C, h, w) or (n, C, T, h, w) -> (n, [T*]N, H)."""
    video = latents.dim() == 5
    n = latents.shape[0]
    x = latents.permute(0, 2, 1, 3, 4).reshape(-1, *latents.shape[1:2], *latents.shape[3:]) if video else latents
    und = F.conv2d(x, sd["image_embedder_und.proj.weight"], sd["image_embedder_und.proj.bias"], stride=c["p"]).flatten(2).transpose(1, 2)
    gen = F.conv2d(x, sd["image_embedder_gen.proj.weight"], sd["image_embedder_gen.proj.bias"], stride=c["p"]).flatten(2).transpose(1, 2)
    und = siglip(sd, c, und + pos_table(sd, c, x.shape[2] // c["p"], x.shape[3] // c["p"]))
    cat = rms(torch.cat([und, gen], -1), sd["fusion_proj.0.weight"], 1e-6)
    out = F.linear(F.gelu(F.linear(cat, sd["fusion_proj.1.weight"], sd["fusion_proj.1.bias"])), sd["fusion_proj.3.weight"], sd["fusion_proj.3.bias"])
    return out.reshape(n, -1, out.shape[-1])


def time_embed(sd, c, t):
    half = c["freq"] // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    f = torch.cat([torch.cos(args), torch.sin(args)], -1)
    e = F.linear(F.silu(F.linear(f, sd["time_embed.mlp.0.weight"], sd["time_embed.mlp.0.bias"])), sd["time_embed.mlp.2.weight"], sd["time_embed.mlp.2.bias"])
    return e, F.linear(e, sd["time_embed_proj.weight"], sd["time_embed_proj.bias"])


def _spread(values, spans, B, L, fill):
    """The release's loop: per image, its span gets its vector; elsewhere `fill`."""
    out = torch.full((B, L, values.shape[-1]), float(fill))
    M = spans.shape[1]
    for i in range(B):
        for j in range(M):
            off, ln = spans[i, j].tolist()
            out[i, off:off + ln] = values[i * M + j]
    return out


def flow_head(sd, c, hidden, temb, spans, mask_add):
    B, L, _ = hidden.shape
    D, nh = c["head"], c["head_heads"]
    hd = D // nh
    x = F.linear(F.gelu(F.linear(hidden, sd["diff_proj.0.weight"], sd["diff_proj.0.bias"])), sd["diff_proj.2.weight"], sd["diff_proj.2.bias"])
    cos, sin = rope_tables(torch.arange(L), llama3_inv_freq(hd))
    for i in range(c["head_layers"]):
        p = f"diffusion_head_a.{i}."
        mods = F.linear(F.silu(temb), sd[p + "adaLN_modulation.1.weight"], sd[p + "adaLN_modulation.1.bias"]).chunk(6, 1)
        sa, ca, ga, sm, cm, gm = (_spread(m, spans, B, L, f) for m, f in zip(mods, (0, 0, 1, 0, 0, 1)))
        h = rms(x, sd[p + "input_layernorm.weight"], 1e-5) * (1 + ca) + sa
        q = F.linear(h, sd[p + "self_attn.q_proj.weight"]).view(B, L, -1, hd).transpose(1, 2)
        k = F.linear(h, sd[p + "self_attn.k_proj.weight"]).view(B, L, -1, hd).transpose(1, 2)
        v = F.linear(h, sd[p + "self_attn.v_proj.weight"]).view(B, L, -1, hd).transpose(1, 2)
        q, k = rms(q, sd[p + "self_attn.q_norm.weight"], 1e-6), rms(k, sd[p + "self_attn.k_norm.weight"], 1e-6)
        a = attend(rotate(q, cos, sin), rotate(k, cos, sin), v, mask_add).transpose(1, 2).reshape(B, L, -1)
        x = x + ga * F.linear(a, sd[p + "self_attn.o_proj.weight"])
        h = rms(x, sd[p + "post_attention_layernorm.weight"], 1e-5) * (1 + cm) + sm
        x = x + gm * F.linear(F.silu(F.linear(h, sd[p + "mlp.gate_proj.weight"])) * F.linear(h, sd[p + "mlp.up_proj.weight"]), sd[p + "mlp.down_proj.weight"])
    shift, scale = F.linear(F.silu(temb), sd["diffusion_head_b.adaLN_modulation.1.weight"], sd["diffusion_head_b.adaLN_modulation.1.bias"]).chunk(2, 1)
    h = rms(x, sd["diffusion_head_b.norm_final.weight"], 1e-6) * (1 + _spread(scale, spans, B, L, 0)) + _spread(shift, spans, B, L, 0)
    return F.linear(h, sd["diffusion_head_b.linear.weight"], sd["diffusion_head_b.linear.bias"])


def omni_additive(B, L, spans):
    """`omni_attn_mask_naive(..., inverted=True)` cast to float32."""
    m = torch.ones(B, 1, L, L, dtype=torch.long).tril()
    for i in range(B):
        for off, ln in spans[i].tolist():
            m[i, :, off:off + ln, off:off + ln] = 1
    inv = (1 - m).bool()
    return torch.zeros(B, 1, L, L).masked_fill(inv, float(torch.iinfo(torch.int64).min))


def forward(sd, c, ids, latents, t, mask_add, spans):
    """The released `forward` at inference: (logits, velocity)."""
    B, L = ids.shape
    M = spans.shape[1]
    embeds = sd["showo.model.embed_tokens.weight"][ids].clone()
    img = fused(sd, c, latents)
    temb, tok = time_embed(sd, c, t)
    for i in range(B):
        for j in range(M):
            off, ln = spans[i, j].tolist()
            embeds[i, off] = tok[i * M + j]
            embeds[i, off + 1:off + ln] = img[i * M + j, :max(ln - 1, 0)]
    hidden = qwen2(sd, c, embeds, mask_add)
    logits = F.linear(hidden, sd["showo.lm_head.weight"])
    vals = flow_head(sd, c, hidden, temb, spans, mask_add)
    rows = []
    for i in range(B):
        for j in range(M):
            off, ln = spans[i, j].tolist()
            if ln == 0:
                break
            rows.append(vals[i, off:off + ln])
    v = torch.stack(rows)[:, 1:]
    Cc = c["C"]
    if latents.dim() == 4:
        h, w = latents.shape[2:]
        v = v.reshape(v.shape[0], h * w, Cc).transpose(1, 2).reshape(-1, Cc, h, w)
    else:
        T, h, w = latents.shape[2:]
        v = v.reshape(v.shape[0], T, h * w, Cc).permute(0, 3, 1, 2).reshape(-1, Cc, T, h, w)
    return logits, v


# ----------------------------------------------------------------------------------------------- mixed modality
def _grow(mask):
    """`mm_generate`'s mask growth: a blocked new column for the old rows, the last row copied plus 0 on the
    diagonal."""
    m = mask.reshape(mask.shape[-2], mask.shape[-1])
    L = m.shape[-1]
    a = torch.hstack([m, torch.zeros(L, 1) + torch.finfo(torch.float32).min])
    return torch.vstack([a, torch.hstack([m[-1], torch.zeros(1)])[None]])[None, None]


def text_logits(sd, c, seq, latents, spans, mask, t=0.0):
    """Last-position logits of `lm_generate` (`latents` None, no mask) or `mm_generate`'s `forward_und_only`
    (history latents at t = 0 written at `spans`)."""
    embeds = sd["showo.model.embed_tokens.weight"][torch.tensor([seq])].clone()
    if latents is not None:
        img = fused(sd, c, latents)
        _, tok = time_embed(sd, c, torch.full((latents.shape[0],), t))
        for j, (off, ln) in enumerate(spans[0].tolist()):
            embeds[0, off] = tok[j]
            embeds[0, off + 1:off + ln] = img[j, :ln - 1]
    return F.linear(qwen2(sd, c, embeds, mask), sd["showo.lm_head.weight"])[:, -1]


def _sample_text(sd, c, ids, latents, spans, eos, boi, max_new, gen):
    """`lm_generate` (no latents: causal, no mask) or `mm_generate` (latents at t = 0, the mask grown per token)."""
    seq, out = list(ids), []
    mask = omni_additive(1, len(seq), spans) if latents is not None else None
    for _ in range(max_new):
        logits = text_logits(sd, c, seq, latents, spans, mask)
        nxt = int(torch.multinomial(F.softmax(logits, dim=-1), 1, generator=gen)[0, 0])
        seq.append(nxt)
        out.append(nxt)
        if nxt in (eos, boi):
            break
        if mask is not None:
            mask = _grow(mask)
    return out


def mixed_modality(sd, c, tokenizer, ids, prompt, *, rounds, max_new, grid_points, guidance, gen):
    """`inference_mixed_modality.py` for one prompt, written from the script: the history kept as a string and
    re-tokenised, `prepare_mixed_modal_gen_input` (pads to a multiple of 128), the null history cut by 16 characters
    and forced to (2, N + 1), history images at t = 0 for text and t = 1 for images, guidance 5.0 after the first
    round, only the last image denoised. `ids`: dict of bos/eos/boi/eoi/img_pad/pad ids. Returns per round
    (response ids, latents or None)."""
    slots = c["grid"] * c["grid"] + 1
    text, null = prompt, ""
    history, positions = [], None
    results = []
    for i in range(rounds):
        if not text.startswith("<|im_start|>"):
            text = "<|im_start|>" + text
        input_ids = tokenizer(text, add_special_tokens=False).input_ids
        lat = torch.cat(history) if history else None
        resp = _sample_text(sd, c, input_ids, lat, positions, ids["eos"], ids["boi"], max_new, gen)
        text += tokenizer.decode(resp, skip_special_tokens=False)
        if not text.endswith("<|vision_start|>"):
            results.append((resp, None))
            continue
        text = text[len("<|im_start|>"):][:-len("<|vision_start|>")]
        null = null[len("<|im_start|>"):][:-len("<|vision_start|>")]
        a = tokenizer(text, add_special_tokens=False).input_ids
        b = tokenizer(null, add_special_tokens=False).input_ids
        pos, pos_null = torch.tensor([[[len(a) + 2, slots]]]), torch.tensor([[[len(b) + 2, slots]]])
        a = [ids["bos"]] + a + [ids["boi"]] + [ids["img_pad"]] * slots + [ids["eoi"]]
        b = [ids["bos"]] + b + [ids["boi"]] + [ids["img_pad"]] * slots + [ids["eoi"]]
        L = max(len(a), len(b))
        L = L if L % 128 == 0 else (L // 128 + 1) * 128
        a, b = a + [ids["pad"]] * (L - len(a)), b + [ids["pad"]] * (L - len(b))
        text = tokenizer.decode(a, skip_special_tokens=False).replace("[PAD]", "")
        null = tokenizer.decode(b, skip_special_tokens=False).replace("[PAD]", "")
        z = torch.randn(1, c["C"], c["grid"] * c["p"], c["grid"] * c["p"], generator=gen).to(torch.bfloat16).float()
        if history:
            z_null = z.clone().repeat(len(history) + 1, 1, 1, 1)
            z = torch.cat([*history, z])
            pos = torch.cat([positions, pos], dim=1)
            pos_null = torch.zeros_like(pos)
            pos_null[:] = torch.tensor([2, slots])
        else:
            z_null = z.clone()
        positions = pos.clone()
        x = torch.cat([z, z_null])
        tokens = torch.tensor([a, b])
        spans = torch.cat([pos, pos_null])
        mask = omni_additive(2, L, spans)
        w = guidance if i == 0 else 5.0
        grid = torch.linspace(0, 1, grid_points)
        grid = grid / (grid + 3 - 3 * grid)
        for k in range(grid_points - 1):
            t = torch.ones(x.shape[0]) * grid[k]
            if t.shape[-1] != tokens.shape[0]:
                tc, tu = t.chunk(2)
                tc[:-1] = 1.0
                tu[:-1] = 1.0
                t = torch.cat([tc, tu])
            _, v = forward(sd, c, tokens, x, t, mask, spans)
            vc, vu = v.chunk(2)
            vc = torch.cat([torch.zeros_like(vc[:-1]), vc[-1:]])
            vu = torch.cat([torch.zeros_like(vu[:-1]), vu[-1:]])
            v = vu + w * (vc - vu)
            x = x + (grid[k + 1] - grid[k]) * torch.cat([v, v])
        sample = x.chunk(2)[0][-1:]
        history.append(sample)
        results.append((resp, sample))
    return results


# ----------------------------------------------------------------------------------------------- video understanding
def frame_indices(total, count=32):
    """`load_video(..., force_sample=True)`: numpy's linspace(0, total - 1, count) cast to int, by hand."""
    step = (total - 1) / (count - 1) if count > 1 else 0.0
    return [int(i * step) for i in range(count - 1)] + [total - 1]


def video_tokens(sd, c, frame_latents, pool):
    """`inference_mmu_vid.py`: every frame's fused 27x27 tokens resized bilinearly to pool x pool, frame-major."""
    x = fused(sd, c, frame_latents)  # (F, N, H)
    g = c["grid"]
    grid = x.reshape(x.shape[0], g, g, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(pool, pool), mode="bilinear")
    return grid.permute(0, 2, 3, 1).reshape(-1, x.shape[-1])


def greedy_answer(sd, c, embeds, span, steps, eos):
    """`mmu_generate` at top_k = 1 on `embeds (L, H)`: the whole sequence every token, one bidirectional `span`."""
    out, seq = [], embeds[None]
    spans = torch.tensor([[list(span)]])
    for _ in range(steps):
        logits = F.linear(qwen2(sd, c, seq, omni_additive(1, seq.shape[1], spans)), sd["showo.lm_head.weight"])[:, -1]
        nxt = int(logits.argmax())
        if nxt == eos:
            break
        out.append(nxt)
        seq = torch.cat([seq, sd["showo.model.embed_tokens.weight"][nxt][None, None]], dim=1)
    return out
