"""The memory estimator's figures (gsedit/edit/memory.py): one turn's estimate, and the settings it
picks for common cards. Estimates until tools/gpu_checks.sh measures them on a device.

    python tools/memory_table.py                        # the README table (3 M Gaussians, SH 3, 60 views)
    python tools/memory_table.py --gaussians 3000000 --size 1024 --segmenter adss
"""

from __future__ import annotations

import argparse

from gsedit.edit.memory import GB, TurnShape, estimate, gb, plan, segmenter_bytes
from gsedit.models.footprint import blip_large_params, editor_architecture, sam_params
from gsedit.models.ip2p.config import IP2PConfig

CARDS = (8, 12, 16, 24, 80)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gaussians", type=int, default=3_000_000)
    parser.add_argument("--sh-degree", type=int, default=3)
    parser.add_argument("--views", type=int, default=60)
    parser.add_argument("--size", type=int, nargs="*", default=[512, 1024], help="image sides (square)")
    parser.add_argument("--segmenter", default="none", choices=["none", "adss"])
    parser.add_argument("--model", default="timbrooks/instruct-pix2pix")
    args = parser.parse_args()
    arch = editor_architecture(args.model)
    seg = segmenter_bytes(sam_params("vit_h"), blip_large_params()) if args.segmenter == "adss" else 0.0
    print(f"editor: {arch.source}: UNet {arch.unet_params:,}, VAE {arch.vae_params:,}, "
          f"text encoder {arch.text_params:,} parameters")
    config = IP2PConfig(dtype="float16")  # what auto means on CUDA
    for size in args.size:
        shape = TurnShape(args.gaussians, args.sh_degree, 2, args.views, size, size, segmenter=args.segmenter)
        print(f"{args.gaussians:,} Gaussians, {size}x{size}, {args.views} views, segmenter {args.segmenter}: "
              f"{estimate(shape, config, arch, seg).describe()}")
    print("\n| card | " + " | ".join(f"{s} px" for s in args.size) + " |")
    print("|---|" + "---|" * len(args.size))
    for card in CARDS:
        cells = []
        for size in args.size:
            shape = TurnShape(args.gaussians, args.sh_degree, 2, args.views, size, size, segmenter=args.segmenter)
            chosen = plan(shape, config, arch, card * GB, seg)
            settings = ", ".join(label.split(" (")[0] for label in chosen.chosen) or "defaults"
            cells.append(f"{settings} ({gb(chosen.estimate.total)})" if chosen.fits
                         else f"does not fit ({gb(chosen.estimate.total)})")
        print(f"| {card} GB | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
