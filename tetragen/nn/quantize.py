"""Vector quantisation: a learned codebook, nearest-code lookup, the straight-through estimator, codebook statistics.

Neural Discrete Representation Learning (van den Oord et al. 2017), arXiv:1711.00937: nearest-neighbour lookup,
straight-through gradients, loss ||sg(z) - e||^2 + beta ||z - sg(e)||^2 (eq. 3); appendix A.1: the codebook as an
exponential moving average of its assigned encodings instead of the first term.
Generating Diverse High-Fidelity Images with VQ-VAE-2 (Razavi et al. 2019), arXiv:1906.00446: the EMA update (its
reference code, DeepMind's Sonnet, Laplace-smooths the cluster sizes).
Vector-quantized Image Modeling with Improved VQGAN (Yu et al. 2021), arXiv:2110.04627: low-dimensional,
l2-normalised codes. Dead-code restarts from batch encodings: Jukebox (Dhariwal et al. 2020), arXiv:2005.00341.
k-means(++) initialisation of the codebook: Lancucki et al. 2020, arXiv:2005.08520.

    quantized, indices, vq_loss = quantizer(z)    # z (B, D, H, W) -> (B, D, H, W), int64 (B, H, W), scalar
    quantizer.lookup(z)                           # == indices, never updating the codebook
    quantizer.embed(indices)                      # == quantized, exactly, outside training

Every piece of state (codebook, EMA statistics, the k-means `initialized` flag) is a parameter or a buffer, so a
state_dict round trip (save, load, resume) reproduces the quantiser exactly.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

LAPLACE_EPS = 1e-5


def codebook_stats(indices: torch.Tensor, codebook_size: int) -> dict[str, float]:
    """Code use of a set of indices (any shape): "usage", the fraction of the codebook_size codes used at least once,
    and "perplexity", exp(entropy in nats of the code histogram): 1 when one code takes everything, codebook_size
    when all are used equally."""
    counts = torch.bincount(indices.reshape(-1).long(), minlength=codebook_size).double()
    if counts.sum() == 0:
        return {"usage": 0.0, "perplexity": 1.0}
    p = counts / counts.sum()
    entropy = -(p[p > 0] * p[p > 0].log()).sum()
    return {"usage": float((counts > 0).sum()) / codebook_size, "perplexity": float(entropy.exp())}


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _all_reduce(t: torch.Tensor) -> torch.Tensor:
    """Sum over processes (data-parallel training: every process sees its own batch, the codebook must agree)."""
    if _distributed():
        dist.all_reduce(t)
    return t


def _broadcast(t: torch.Tensor) -> torch.Tensor:
    """Rank 0's tensor everywhere: random choices (restarts, k-means seeds) are made once, not once per process."""
    if _distributed():
        dist.broadcast(t, 0)
    return t


def _nearest(flat: torch.Tensor, codes: torch.Tensor, cosine: bool) -> torch.Tensor:
    """flat (N, c), codes (K, c) -> index of each row's nearest code, int64 (N,). Ties go to the lowest index."""
    if cosine:  # unit vectors: the nearest code is the most similar one
        return (flat @ codes.t()).argmax(1)
    distances = flat.pow(2).sum(1, keepdim=True) - 2.0 * flat @ codes.t() + codes.pow(2).sum(1)[None]  # (N, K)
    return distances.argmin(1)


def _sample_rows(flat: torch.Tensor, k: int) -> torch.Tensor:
    """k rows of flat (N, c), without replacement when N >= k; drawn on the CPU from torch's global generator, so
    the choice depends on the seed only, not on the device."""
    n = flat.size(0)
    idx = torch.randperm(n)[:k] if n >= k else torch.randint(n, (k,))
    return flat[idx.to(flat.device)]


def kmeans_plus_plus(samples: torch.Tensor, k: int) -> torch.Tensor:
    """k rows of samples (N, c) chosen by k-means++ seeding (Arthur & Vassilvitskii 2007): each next one with
    probability proportional to its squared distance from the nearest already chosen. Drawn on the CPU from torch's
    global generator."""
    norms = samples.pow(2).sum(1)                                                # (N,)

    def distances_to(i: int) -> torch.Tensor:                                    # squared, (N,); a mat-vec
        return (norms - 2.0 * (samples @ samples[i]) + norms[i]).clamp_min(0.0)
    chosen = [int(torch.randint(samples.size(0), (1,)))]
    d2 = distances_to(chosen[0])
    for _ in range(k - 1):
        weights = d2.double().cpu()
        if not weights.sum() > 0:                                                # every sample already chosen
            weights = torch.ones_like(weights)
        chosen.append(int(torch.multinomial(weights, 1)))
        d2 = torch.minimum(d2, distances_to(chosen[-1]))
    return samples[torch.tensor(chosen, device=samples.device)]


def kmeans(samples: torch.Tensor, k: int, iters: int = 10, cosine: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means on samples (N, c) from k-means++ seeds: -> centroids (k, c), cluster sizes (k,) of the last
    assignment. Empty clusters keep their centroid. `cosine`: unit-norm samples and centroids (spherical k-means)."""
    centroids = kmeans_plus_plus(samples, k)
    counts = torch.zeros(k, device=samples.device)
    for _ in range(iters):
        assign = _nearest(samples, centroids, cosine)
        counts = torch.bincount(assign, minlength=k).to(samples.dtype)
        sums = torch.zeros_like(centroids).index_add_(0, assign, samples)
        new = sums / counts.clamp_min(1.0)[:, None]
        if cosine:
            new = F.normalize(new, dim=1)
        centroids = torch.where(counts[:, None] > 0, new, centroids)
    return centroids, counts


class VectorQuantizer(nn.Module):
    """Replaces each D-vector of z (B, D, H, W) by its nearest of `codebook_size` learned codes.

    `beta`: weight of the commitment term beta * ||z - sg(q)||^2, the only loss with `ema` (the codebook then follows
    an exponential moving average, `decay`, of the encodings assigned to each code, with Laplace-smoothed cluster
    sizes). Without `ema` the codebook is a parameter trained by ||sg(z) - q||^2 (weight 1) + the commitment term.
    `dead_code_threshold` (0: off): in training, codes whose moving-average cluster size (encodings per batch) falls
    below it are restarted from random encodings of the batch. `kmeans_init`: the first training batch sets the
    codebook by k-means. `code_dim` (0: D): look codes up in a code_dim-dimensional space (1x1 convolutions project
    z down before the lookup and the codes back up after). `cosine`: l2-normalised codes and encodings.
    """

    def __init__(self, codebook_size: int, dim: int, *, beta: float = 0.25, ema: bool = True, decay: float = 0.99,
                 dead_code_threshold: float = 0.0, kmeans_init: bool = False, kmeans_iters: int = 10,
                 code_dim: int = 0, cosine: bool = False):
        super().__init__()
        self.codebook_size, self.dim = codebook_size, dim
        self.code_dim = c = code_dim or dim
        self.beta, self.ema, self.decay = beta, ema, decay
        self.dead_code_threshold, self.kmeans_iters, self.cosine = dead_code_threshold, kmeans_iters, cosine
        low = c != dim
        self.project_in = nn.Conv2d(dim, c, 1) if low else nn.Identity()
        self.project_out = nn.Conv2d(c, dim, 1) if low else nn.Identity()
        codebook = torch.randn(codebook_size, c)  # unit scale, like a normalised encoder's output
        if cosine:
            codebook = F.normalize(codebook, dim=1)
        if ema:  # no gradient reaches the codebook: it is a buffer, moved by `_update`
            self.register_buffer("codebook", codebook)
            # each code starts as if it had been assigned itself once, so the first averages are well defined
            self.register_buffer("embed_sum", codebook.clone())
        else:
            self.codebook = nn.Parameter(codebook)
        # moving average of the encodings per batch assigned to each code (both modes: dead codes are found by it)
        self.register_buffer("cluster_size", torch.ones(codebook_size))
        self.register_buffer("initialized", torch.tensor(not kmeans_init))

    def codes(self) -> torch.Tensor:
        """The codebook as used for lookup, (K, code_dim): unit rows in cosine mode."""
        return F.normalize(self.codebook, dim=1) if self.cosine else self.codebook

    def _flatten(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, D, H, W) -> encodings (B*H*W, code_dim) in float32, unit rows in cosine mode."""
        return self._rows(self.project_in(z.float()))

    def _rows(self, e: torch.Tensor) -> torch.Tensor:
        """Encodings in the code space (B, code_dim, H, W) -> (B*H*W, code_dim) in float32, unit rows in cosine
        mode: what is compared with the codes."""
        flat = e.permute(0, 2, 3, 1).reshape(-1, self.code_dim).float()
        return F.normalize(flat, dim=1) if self.cosine else flat

    def _unflatten(self, flat: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
        """(B*H*W, code_dim) -> (B, D, H, W): the one path both forward and `embed` go through."""
        b, h, w = shape
        return self.project_out(flat.view(b, h, w, self.code_dim).permute(0, 3, 1, 2))

    def embed(self, indices: torch.Tensor) -> torch.Tensor:
        """indices (B, H, W) int64 -> the codes' vectors (B, D, H, W): decoding from indices."""
        return self._unflatten(self.codes()[indices.reshape(-1)], tuple(indices.shape))

    @torch.no_grad()
    def to_code_space(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, D, H, W) -> the encodings where codes are looked up, (B, code_dim, H, W), before the snap to a code:
        the continuous latents a denoiser can learn (code_dim of them a cell rather than D)."""
        with torch.autocast(device_type=z.device.type, enabled=False):
            b, _, h, w = z.shape
            return self._flatten(z).view(b, h, w, self.code_dim).permute(0, 3, 1, 2).contiguous()

    @torch.no_grad()
    def from_code_space(self, e: torch.Tensor) -> torch.Tensor:
        """Encodings (B, code_dim, H, W) -> each snapped to its nearest code and projected out, (B, D, H, W): what the
        decoder was trained on."""
        b, _, h, w = e.shape
        with torch.autocast(device_type=e.device.type, enabled=False):
            return self.embed(_nearest(self._rows(e), self.codes(), self.cosine).view(b, h, w))

    @torch.no_grad()
    def lookup(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, D, H, W) -> indices (B, H, W) int64, the same as forward's, without touching the codebook's state in
        either mode (an encoder's tokens)."""
        b, _, h, w = z.shape
        with torch.autocast(device_type=z.device.type, enabled=False):
            return _nearest(self._flatten(z), self.codes(), self.cosine).view(b, h, w)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """z (B, D, H, W) -> quantized (B, D, H, W) (straight-through: its gradient goes to z unchanged), indices
        (B, H, W) int64, vq_loss (scalar). In training mode the codebook statistics are updated."""
        b, _, h, w = z.shape
        # the lookup in float32 even under bf16 autocast: low-precision distances pick the wrong codes
        with torch.autocast(device_type=z.device.type, enabled=False):
            flat = self._flatten(z)                                          # (N, c), N = B*H*W
            if self.training:
                self._prepare(flat.detach())
            indices = _nearest(flat.detach(), self.codes().detach(), self.cosine)  # (N,)
            q = self.codes()[indices]                                        # (N, c); grad to the codebook (no EMA)
            loss = self.beta * F.mse_loss(flat, q.detach())                  # commitment: the encoder moves to q
            if not self.ema:
                loss = loss + F.mse_loss(flat.detach(), q)                   # codebook: q moves to the encoder
            # straight-through: the value of q, the gradient of flat. Written q + (flat - flat) rather than
            # flat + (q - flat) because x - x is exactly 0, so the output equals embed(indices) bitwise.
            q = q.detach() + (flat - flat.detach())
            if self.training:
                self._update(flat.detach(), indices)
        return self._unflatten(q, (b, h, w)), indices.view(b, h, w), loss

    @torch.no_grad()
    def _prepare(self, flat: torch.Tensor) -> None:
        """Before a training batch's lookup (so that no gradient ever sees a codebook changed under it): k-means on
        the first batch, then restarts of the codes found dead by the statistics of the batches before."""
        if not bool(self.initialized):
            centroids, counts = kmeans(flat, self.codebook_size, self.kmeans_iters, self.cosine)
            centroids, counts = _broadcast(centroids.contiguous()), _broadcast(counts.contiguous())
            self.codebook.data.copy_(centroids)
            self.cluster_size.copy_(counts)
            if self.ema:
                self.embed_sum.copy_(centroids * counts[:, None])
            self.initialized.fill_(True)
        if self.dead_code_threshold <= 0:
            return
        dead = self.cluster_size < self.dead_code_threshold                                          # (K,)
        k = int(dead.sum())
        if k == 0:
            return
        # random encodings of this batch: each restarted code is then the nearest code of at least (about) one
        # encoding, so it wins assignments at once; one that wins too few is restarted again next batch
        fresh = _broadcast(_sample_rows(flat, k).contiguous())                                       # (k, c)
        self.codebook.data[dead] = fresh
        self.cluster_size[dead] = self.dead_code_threshold
        if self.ema:
            self.embed_sum[dead] = fresh * self.dead_code_threshold

    @torch.no_grad()
    def _update(self, flat: torch.Tensor, indices: torch.Tensor) -> None:
        """After a training batch's lookup: the moving averages of cluster sizes (and, with EMA, of the assigned
        encodings' sums), and the EMA codebook (a buffer: no gradient depends on it)."""
        counts = _all_reduce(torch.bincount(indices, minlength=self.codebook_size).float())          # (K,)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1.0 - self.decay)
        if not self.ema:
            return
        sums = _all_reduce(torch.zeros_like(self.embed_sum).index_add_(0, indices, flat))            # (K, c)
        self.embed_sum.mul_(self.decay).add_(sums, alpha=1.0 - self.decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + LAPLACE_EPS) / (n + self.codebook_size * LAPLACE_EPS) * n
        new = self.embed_sum / smoothed[:, None]
        if self.cosine:
            new = F.normalize(new, dim=1)
        # a code with no encodings in this batch keeps its vector: its sum and size decay alike, so the ratio would
        # not move, but the smoothing would slowly shrink it towards zero
        self.codebook.copy_(torch.where(counts[:, None] > 0, new, self.codebook))

    def extra_repr(self) -> str:
        return (f"codebook_size={self.codebook_size}, dim={self.dim}, code_dim={self.code_dim}, beta={self.beta}, "
                f"ema={self.ema}, decay={self.decay}, dead_code_threshold={self.dead_code_threshold}, "
                f"cosine={self.cosine}")

