"""How much of a text-to-video target is what moved: the share of the target codes that differ from the
previous latent frame's code at the same place (`model.losses.changed_code_weights`), how many of those are
background (left behind by a moving sprite), and their share of the text-to-video loss with the recipe's
background weight, at `changed_weight` 1 and at the weights given.

    python docs/t2v_changed_share.py [--count 200] [--weights 3]

Counted on the training split's text-to-video windows as stage 3 draws them (the recipe's world, window and
data seed, the shipped tokenizer), every latent frame after a window's first, every code as a target.
"""

from __future__ import annotations

import argparse

import torch
from omegaconf import OmegaConf

from studio.defaults import DEFAULT_MODEL_DIR
from studio.shapesworld.data import ShapesWorldSource
from studio.shapesworld.train_default import background_codes, load_config


def shares(count: int, weights: list[float]) -> dict:
    cfg = load_config()
    tokenizer, world = str(DEFAULT_MODEL_DIR / "tokenizer"), OmegaConf.to_container(cfg.world)
    source = ShapesWorldSource(tokenizer, world=world, split=cfg.split, window_frames=int(cfg.window_frames))
    background = torch.tensor(background_codes(tokenizer, world))
    base_weight = float(cfg.background_weight)
    changed = codes = changed_background = 0
    loss_share = {w: [0.0, 0.0] for w in [1.0, *weights]}
    for sample in source.sample_many("t2v", seed=int(cfg.showo.data.seed), indices=range(count)):
        frames = sample["frames"]  # (F, P)
        moved = frames[1:].ne(frames[:-1])
        is_background = torch.isin(frames[1:], background)
        changed += int(moved.sum())
        codes += moved.numel()
        changed_background += int((moved & is_background).sum())
        base = torch.where(is_background, base_weight, 1.0)
        for w, acc in loss_share.items():
            weight = base * torch.where(moved, w, 1.0)
            acc[0] += float(weight[moved].sum())
            acc[1] += float(weight.sum())
    return {"windows": count, "target_codes": codes, "changed": changed, "changed_share": changed / codes,
            "changed_background": changed_background,
            "loss_share": {str(w): part / whole for w, (part, whole) in loss_share.items()}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=200, help="text-to-video windows (default 200)")
    parser.add_argument("--weights", type=float, nargs="*", default=[3.0], help="changed_weight values (default 3)")
    args = parser.parse_args(argv)
    out = shares(args.count, args.weights)
    print(f"{out['windows']} windows: {out['changed']} of {out['target_codes']} target codes differ from the previous "
          f"latent frame's ({out['changed_share']:.3f}), {out['changed_background']} of them background")
    for w, share in out["loss_share"].items():
        print(f"changed_weight {w}: their share of the text-to-video loss {share:.3f}")


if __name__ == "__main__":
    main()
