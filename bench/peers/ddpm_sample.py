"""Draw images from a checkpoint of diffusers' unconditional example (see bench/diffusion.py) with its own
DDPMPipeline: the UNet2DModel saved in the checkpoint and the DDPMScheduler the example trains with (1000 linear
steps, epsilon prediction). Run by the peer venv's python.

    python ddpm_sample.py UNET_DIR N STEPS SEED OUT.npy

Batches of $TETRAGEN_PEER_BATCH (default 100), batch i seeded with SEED + i. The pipeline's images in [0, 1] become
uint8 as the example makes them ((x * 255).round()), and the 32x32 pictures are cropped back to the 28x28 they were
padded from: (N, 28, 28, 1) uint8. The seconds the pipeline calls take are printed as JSON.
"""
import json
import os
import sys
import time

import numpy as np
import torch
from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel


def main() -> None:
    unet_dir, n, steps, seed, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    batch = int(os.environ.get("TETRAGEN_PEER_BATCH", "100"))
    unet = UNet2DModel.from_pretrained(unet_dir)
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", prediction_type="epsilon")
    pipeline = DDPMPipeline(unet=unet, scheduler=scheduler)
    pipeline.set_progress_bar_config(disable=True)
    images = []
    t0 = time.perf_counter()
    for i, start in enumerate(range(0, n, batch)):
        generator = torch.Generator(device="cpu").manual_seed(seed + i)
        x = pipeline(generator=generator, batch_size=min(batch, n - start), num_inference_steps=steps,
                     output_type="np").images
        images.append((x * 255).round().astype("uint8"))
    forward_s = time.perf_counter() - t0
    grey = np.concatenate(images)[:, 2:30, 2:30, :1]
    np.save(out, np.ascontiguousarray(grey))
    print(json.dumps({"forward_s": forward_s}))


if __name__ == "__main__":
    main()
