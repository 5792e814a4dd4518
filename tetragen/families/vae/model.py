"""Variational autoencoder on images, optionally class-conditional (the cvae family) and semi-supervised (M2).

Auto-Encoding Variational Bayes (Kingma & Welling 2013), arXiv:1312.6114; beta-VAE (Higgins et al. 2017);
free bits (Kingma et al. 2016, arXiv:1606.04934, eq. 15); conditional VAE (Sohn et al. 2015); semi-supervised M2
(Kingma, Rezende, Mohamed & Welling 2014, https://arxiv.org/abs/1406.5298, eq. 6-9).
Encoder: image (+ one-hot class planes) -> stride-2 conv blocks (the trunk) -> linear -> (mu, logvar).
Decoder: z (+ one-hot class) -> linear -> (widest, s0, s0) -> 2x up-sampling blocks (batch norm per class when
conditional) -> 2x transposed conv to one logit per pixel. The blocks are the image families' (tetragen/nn/conv.py).
With a classifier (config `classifier`, M2) the class joins the encoder after the trunk instead of as input planes,
so one trunk pass serves q(y|x) (a small head on the trunk's features) and q(z|x, y) for every class y.

`forward(batch, kl_weight)` returns the training loss (negative ELBO per image, KL weighted and floored by free bits)
with its parts; `log_weights` gives log p(x, z) - log q(z|x) for importance sampling; `generate(z, labels)` is what
the shared image pipeline samples through.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...eval.likelihood import gaussian_log_density
from ...nn.conv import ConditionalBatchNorm2d, DownBlock, UpBlock, stage_widths, start_size

MIN_LOG_STD = math.log(1e-3)  # a learned Gaussian std may not collapse onto the (discrete) grey levels


class Encoder(nn.Module):
    def __init__(self, image_size: int, in_channels: int, width: int, latent_dim: int, class_dim: int = 0):
        super().__init__()
        s0 = start_size(image_size)
        widths = stage_widths(image_size, width)[::-1]                 # e.g. 28x28, width 32: [32, 64]
        self.blocks = nn.Sequential(*[DownBlock(a, b) for a, b in zip([in_channels, *widths[:-1]], widths)])
        self.feature_dim = widths[-1] * s0 * s0
        self.head = nn.Linear(self.feature_dim + class_dim, 2 * latent_dim)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C', H, W) -> features (B, feature_dim)."""
        return self.blocks(x).flatten(1)

    def posterior(self, h: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Features (B, feature_dim) (+ one-hot classes (B, K) when the class joins here) -> mu, logvar (B, latent)."""
        mu, logvar = self.head(h if y is None else torch.cat([h, y], dim=1)).chunk(2, dim=1)
        return mu, logvar

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, C', H, W) -> mu, logvar, each (B, latent_dim)."""
        return self.posterior(self.trunk(x), y)


class Decoder(nn.Module):
    def __init__(self, image_size: int, channels: int, width: int, in_dim: int, num_classes: int = 0):
        super().__init__()
        self.s0 = start_size(image_size)
        widths = stage_widths(image_size, width)                       # e.g. 28x28, width 32: [64, 32]
        self.project = nn.Linear(in_dim, widths[0] * self.s0 * self.s0, bias=False)
        self.norm0 = ConditionalBatchNorm2d(widths[0], num_classes) if num_classes else nn.BatchNorm2d(widths[0])
        self.blocks = nn.ModuleList([UpBlock(a, b, num_classes=num_classes) for a, b in zip(widths[:-1], widths[1:])])
        self.to_logits = nn.ConvTranspose2d(widths[-1], channels, 4, stride=2, padding=1)

    def forward(self, h: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """h (B, in_dim), labels (B,) or None -> logits (B, C, H, W)."""
        h = self.project(h).view(h.size(0), -1, self.s0, self.s0)     # (B, widest, s0, s0)
        h = self.norm0(h, labels) if isinstance(self.norm0, ConditionalBatchNorm2d) else self.norm0(h)
        h = torch.relu(h)
        for block in self.blocks:
            h = block(h, labels)                                       # (B, w, 2s, 2s)
        return self.to_logits(h)                                       # (B, C, H, W)


class VAE(nn.Module):
    def __init__(self, config):
        super().__init__()
        c = self.config = config
        self.num_classes = k = getattr(c, "num_classes", 0)
        self.latent_dim = c.latent_dim
        late = k > 0 and getattr(c, "classifier", False)               # the class joins after the trunk (M2)
        self.encoder = Encoder(c.image_size, c.channels + (0 if late else k), c.width, c.latent_dim,
                               class_dim=k if late else 0)
        self.decoder = Decoder(c.image_size, c.channels, c.width, c.latent_dim + k, k)
        # q(y|x): a small head on the trunk's features, so the classifier and the encoder learn one representation
        self.classifier = (nn.Sequential(nn.Linear(self.encoder.feature_dim, 4 * c.width), nn.LeakyReLU(0.2),
                                         nn.Linear(4 * c.width, k)) if late else None)
        self.log_std = None
        if c.likelihood == "gaussian":
            log_std = torch.full((c.channels,), math.log(c.gaussian_std))
            self.log_std = nn.Parameter(log_std, requires_grad=c.learn_std)
        # micro-batches trained on: the KL warm-up's clock, saved with the weights so that a resumed run continues it
        self.register_buffer("trained_batches", torch.zeros((), dtype=torch.long))

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    def _one_hot(self, labels: torch.Tensor | None) -> torch.Tensor | None:
        if not self.conditional:
            return None
        if labels is None:
            raise ValueError("a conditional VAE needs labels")
        return F.one_hot(labels, self.num_classes).float()            # (B, K)

    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, C, H, W) in [-1, 1] -> q(z|x) as mu, logvar (B, latent_dim)."""
        y = self._one_hot(labels)
        if self.classifier is not None:                                # the class joins after the trunk
            return self.encoder(x, y)
        if y is not None:                                              # class planes: (B, C + K, H, W)
            x = torch.cat([x, y[:, :, None, None].expand(-1, -1, *x.shape[2:])], dim=1)
        return self.encoder(x)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W) in [-1, 1] -> the classifier q(y|x)'s logits (B, K); models with a classifier only."""
        if self.classifier is None:
            raise ValueError("this model has no classifier (train a cvae with model.classifier=true or "
                             "data.label_fraction < 1)")
        return self.classifier(self.encoder.trunk(x))

    def decode_logits(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        y = self._one_hot(labels)
        h = torch.cat([z, y], dim=1) if y is not None else z          # (B, latent_dim + K)
        return self.decoder(h, labels if self.conditional else None)

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """z (B, latent_dim) -> the decoder's mean image (B, C, H, W) in [-1, 1]; `labels` (B,) when conditional."""
        return torch.sigmoid(self.decode_logits(z, labels)) * 2.0 - 1.0

    def log_likelihood(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log p(x|z) in nats per image (B,), from decoder logits and pixels x in [-1, 1]."""
        target = (x + 1.0) * 0.5                                       # grey values in [0, 1]
        if self.log_std is None:                                       # Bernoulli
            nll = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
            return -nll.flatten(1).sum(1)
        log_std = self.log_std.clamp_min(MIN_LOG_STD)[None, :, None, None]
        mean = torch.sigmoid(logits)
        log_p = -0.5 * ((target - mean) * torch.exp(-log_std)) ** 2 - log_std - 0.5 * math.log(2 * math.pi)
        return log_p.flatten(1).sum(1)

    def forward(self, batch: dict, kl_weight: float = 1.0, free_bits: float = 0.0,
                class_weight: float = 0.0) -> tuple[torch.Tensor, dict]:
        """Training loss: -log p(x|z) + kl_weight * KL, per image, with one reparameterised z ~ q(z|x).
        With free bits each dimension's batch-mean KL enters the loss as max(free_bits, KL_u). A model with a
        classifier trains with the M2 objective instead (`semi_supervised_loss`)."""
        if self.classifier is not None:
            return self.semi_supervised_loss(batch, kl_weight, free_bits, class_weight)
        x, labels = batch["x"], batch.get("y")
        labels = labels if self.conditional else None
        mu, logvar = self.encode(x, labels)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)        # reparameterisation trick
        log_px = self.log_likelihood(self.decode_logits(z, labels), x)  # (B,)
        kl_dims = 0.5 * (mu ** 2 + logvar.exp() - 1.0 - logvar)        # KL(q(z|x) || N(0, I)) per dim, (B, latent)
        kl = kl_dims.sum(1).mean()
        kl_term = kl_dims.mean(0).clamp_min(free_bits).sum() if free_bits > 0 else kl
        recon = -log_px.mean()
        loss = recon + kl_weight * kl_term
        return loss, {"neg_elbo": (recon + kl).detach(), "recon": recon.detach(), "kl": kl.detach(),
                      "kl_weight": torch.tensor(kl_weight)}

    def semi_supervised_loss(self, batch: dict, kl_weight: float, free_bits: float,
                             class_weight: float) -> tuple[torch.Tensor, dict]:
        """M2 (Kingma et al. 2014, eq. 6-9) per image. Labelled images ("x", "y"): -ELBO(x, y) + class_weight *
        cross-entropy(q(y|x), y). Unlabelled images ("x_u", when the batch has them): sum_y q(y|x) (-ELBO(x, y))
        - H(q(y|x)), every class enumerated. The constant log p(y) = -log K of a uniform class prior is left out, so
        -ELBO(x, y) is the same -log p(x|y) bound a cvae reports. One trunk pass covers every image, one decoder pass
        every (image, class) row."""
        x, y, x_u = batch["x"], batch["y"], batch.get("x_u")
        n, k = len(x), self.num_classes
        h = self.encoder.trunk(x if x_u is None else torch.cat([x, x_u]))  # (n + m, F)
        class_logits = self.classifier(h)                              # (n + m, K)
        rows_h, rows_y, rows_x = [h[:n]], [y], [x]
        if x_u is not None:                                            # row c*m + i: unlabelled image i with class c
            m = len(x_u)
            rows_h.append(h[n:].repeat(k, 1))                          # (K*m, F)
            rows_y.append(torch.arange(k, device=x.device).repeat_interleave(m))
            rows_x.append(x_u.repeat(k, 1, 1, 1))                      # (K*m, C, H, W)
        h_rows, y_rows, x_rows = torch.cat(rows_h), torch.cat(rows_y), torch.cat(rows_x)
        mu, logvar = self.encoder.posterior(h_rows, F.one_hot(y_rows, k).to(h_rows.dtype))
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)        # (R, latent)
        log_px = self.log_likelihood(self.decode_logits(z, y_rows), x_rows)  # (R,)
        kl_dims = 0.5 * (mu ** 2 + logvar.exp() - 1.0 - logvar)        # (R, latent)

        def kl_term(per_dim: torch.Tensor) -> torch.Tensor:           # (latent,) batch-mean KL, floored by free bits
            return per_dim.clamp_min(free_bits).sum() if free_bits > 0 else per_dim.sum()
        recon, kl_dims_l = -log_px[:n].mean(), kl_dims[:n].mean(0)
        cross_entropy = F.cross_entropy(class_logits[:n].float(), y)
        loss = recon + kl_weight * kl_term(kl_dims_l) + class_weight * cross_entropy
        kl = kl_dims_l.sum().detach()
        logs = {"neg_elbo": recon.detach() + kl, "recon": recon.detach(), "kl": kl,
                "kl_weight": torch.tensor(kl_weight), "class_ce": cross_entropy.detach(),
                "classifier_acc": (class_logits[:n].argmax(1) == y).float().mean()}
        if x_u is not None:
            log_q = F.log_softmax(class_logits[n:].float(), dim=1)     # (m, K)
            weight = log_q.exp().t().reshape(-1) / m                   # (K*m,) q(c|x_i) / m, in row order
            recon_u = -(weight * log_px[n:]).sum()
            kl_dims_u = (weight[:, None] * kl_dims[n:]).sum(0)         # (latent,) q-weighted batch mean
            entropy = -(log_q.exp() * log_q).sum(1).mean()
            loss = loss + recon_u + kl_weight * kl_term(kl_dims_u) - entropy
            logs["neg_elbo_unlabelled"] = (recon_u + kl_dims_u.sum() - entropy).detach()
            logs["class_entropy"] = entropy.detach()
        return loss, logs

    def log_weights(self, x: torch.Tensor, labels: torch.Tensor | None, k: int,
                    generator: torch.Generator | None = None) -> torch.Tensor:
        """log p(x, z_k) - log q(z_k|x) for k samples z_k ~ q(z|x) per image: (B, k). The mean over k is an ELBO
        estimate; the log-mean-exp the importance-weighted bound."""
        labels = labels if self.conditional else None
        mu, logvar = self.encode(x, labels)                            # (B, latent)
        eps = torch.randn(k, *mu.shape, generator=generator).to(mu.device)              # (k, B, latent)
        z = mu + torch.exp(0.5 * logvar) * eps                         # (k, B, latent)
        flat = z.reshape(-1, self.latent_dim)                          # (k*B, latent)
        rep = lambda t: None if t is None else t.repeat(k, *[1] * (t.dim() - 1))  # noqa: E731  (k*B, ...)
        log_px = self.log_likelihood(self.decode_logits(flat, rep(labels)), rep(x)).view(k, -1)  # (k, B)
        log_pz = gaussian_log_density(z, torch.zeros_like(z), torch.zeros_like(z))              # (k, B)
        log_qz = gaussian_log_density(z, mu, logvar)                                            # (k, B)
        return (log_px + log_pz - log_qz).t()                          # (B, k)
