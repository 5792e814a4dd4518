"""Draw clips from a trained WaveGAN-pytorch run (Thrcle421/WaveGAN-pytorch, see bench/sound.py) with the peer's own
generator class and forward pass (batches of 16; the seconds they take are printed as JSON); run by the peer venv's python with the peer checkout as the working directory.

    python wavegan_sample.py MODEL_DIR N SEED OUT.npy

MODEL_DIR is the folder train_wavegan.py wrote (config.json, model_gen.pkl). The latent is drawn as its training
draws it, uniform in [-1, 1]; the clips (N, 16384) float32 are saved as they come out of the generator.
"""
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, ".")  # the peer checkout
from wavegan import WaveGANGenerator  # noqa: E402


def main() -> None:
    model_dir, n, seed, out = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    args = json.loads((model_dir / "config.json").read_text())
    # built exactly as train_wavegan.py builds it (ngpus=0: on the CPU)
    gen = WaveGANGenerator(model_size=args["model_size"], ngpus=0, latent_dim=args["latent_dim"],
                           post_proc_filt_len=args["post_proc_filt_len"], upsample=True)
    # it saves with pickle protocol 5, which torch's weights-only loader refuses; the file is the one the bench's own
    # run of the peer has just written
    gen.load_state_dict(torch.load(model_dir / "model_gen.pkl", map_location="cpu", weights_only=False))
    gen.eval()
    torch.manual_seed(seed)
    clips = []
    t0 = time.perf_counter()
    with torch.no_grad():
        for i in range(0, n, 16):  # batch 16, as tetragen's audio-per-second figure
            z = torch.Tensor(min(16, n - i), args["latent_dim"]).uniform_(-1, 1)
            clips.append(gen(z)[:, 0].numpy())
    forward_s = time.perf_counter() - t0
    np.save(out, np.concatenate(clips).astype(np.float32))
    print(json.dumps({"forward_s": forward_s}))


if __name__ == "__main__":
    main()
