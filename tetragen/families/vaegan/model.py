"""VAE-GAN: a VAE whose reconstruction error is measured in a discriminator's features, plus an adversarial term.

Autoencoding beyond pixels using a learned similarity metric (Larsen, Sønderby, Larochelle & Winther 2016),
arXiv:1512.09300, Algorithm 1. The encoder and decoder are the VAE family's (tetragen/families/vae/model.py), the
decoder's output squashed by tanh into the data's [-1, 1]; the discriminator is dcgan's
(tetragen/families/dcgan/model.py), with the output of one of its blocks exposed as the feature space Dis_l.

With x~ = Dec(z), z ~ q(z|x), x_p = Dec(z_p), z_p ~ N(0, I) and
    L_rec = 0.5 ||Dis_l(x) - Dis_l(x~)||^2 (+ pixel_weight * 0.5 ||x - x~||^2), per image
the three updates of Algorithm 1 are three phases, each computing the forward pass it needs:
    "disc":    the GAN loss of D on x (real) vs x~ and x_p (fake, detached)
    "encoder": beta * KL(q(z|x) || N(0, I)) + L_rec            (decoder and D frozen: gradients pass through them)
    "decoder": gamma * L_rec + the generator's GAN loss on x~ and x_p   (z detached, D frozen)
so the encoder never sees the GAN term, and the discriminator is trained on the GAN loss alone, never on L_rec.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ...nn.gan_losses import discriminator_loss, generator_loss
from ...nn.init import frozen
from ..dcgan.model import Discriminator
from ..vae.model import Decoder, Encoder


class FeatureDiscriminator(nn.Module):
    """dcgan's (unconditional) discriminator, returning beside its logit the output of block `feature_layer`."""

    def __init__(self, image_size: int, channels: int, width: int, *, spectral_norm: bool, feature_layer: int):
        super().__init__()
        self.net = Discriminator(image_size, channels, width, spectral_norm=spectral_norm)
        self.feature_layer = feature_layer or len(self.net.blocks)     # 0: the last block

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, C, H, W) -> logits (B,), features (B, F) of block feature_layer."""
        features = self.net.blocks[:self.feature_layer](x)            # (B, w_l, H / 2^l, W / 2^l)
        h = self.net.blocks[self.feature_layer:](features).flatten(1)  # (B, widest * s0 * s0)
        return self.net.head(h).squeeze(1), features.flatten(1)


class VAEGAN(nn.Module):
    """Encoder + decoder + discriminator; `forward(batch, phase)` is the loss of phase "disc", "encoder" or
    "decoder" (one module, so that under DDP every phase goes through the wrapped module)."""

    def __init__(self, config):
        super().__init__()
        c = self.config = config
        self.num_classes = 0                                           # unconditional
        self.latent_dim = c.latent_dim
        self.encoder = Encoder(c.image_size, c.channels, c.width, c.latent_dim)
        self.decoder = Decoder(c.image_size, c.channels, c.width, c.latent_dim)
        self.discriminator = FeatureDiscriminator(c.image_size, c.channels, c.d_width, spectral_norm=c.spectral_norm,
                                                  feature_layer=c.feature_layer)

    @property
    def conditional(self) -> bool:
        return False

    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, C, H, W) in [-1, 1] -> q(z|x) as mu, logvar (B, latent_dim). `labels` are ignored."""
        return self.encoder(x)

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """z (B, latent_dim) -> images (B, C, H, W) in [-1, 1]. `labels` are ignored."""
        return torch.tanh(self.decoder(z))

    # ------------------------------------------------------------------------------------------------------------
    def _posterior_sample(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x)                                   # (B, latent) each
        return mu, logvar, mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)  # reparameterisation trick

    def _decode_with_prior(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Codes z (B, latent) -> (reconstructions x~, prior samples x_p), each (B, C, H, W). Decoded as one batch in
        every phase, so that the decoder's batch norm always normalises the same mixture, the one its running
        statistics (used for sampling) estimate."""
        z_p = torch.randn_like(z)                                      # (B, latent) from the prior
        return self.generate(torch.cat([z, z_p])).chunk(2)

    def reconstruction_error(self, x: torch.Tensor, recon: torch.Tensor, features: torch.Tensor,
                             target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """L_rec averaged over the batch, and its feature part alone: images x and reconstructions (B, C, H, W),
        the discriminator's features of the reconstructions and (the target) of the images, (B, F) each."""
        feature_error = 0.5 * (features.float() - target.float()).pow(2).sum(1).mean()
        pixel_error = 0.5 * (recon.float() - x.float()).pow(2).flatten(1).sum(1).mean()
        return feature_error + self.config.pixel_weight * pixel_error, feature_error

    def forward(self, batch: dict, phase: str) -> tuple[torch.Tensor, dict]:
        x = batch["x"]                                                 # (B, C, H, W) in [-1, 1]; labels unused
        c = self.config
        if phase == "disc":
            with torch.no_grad():                                      # encoder and decoder are not trained here
                fakes = torch.cat(self._decode_with_prior(self._posterior_sample(x)[2]))  # (2B, C, H, W)
            # one pass over real and fake together (no batch norm in D, so this equals separate passes). The fakes'
            # term averages reconstructions and prior samples (the paper sums their two terms): real and fake
            # weigh alike, as in a plain GAN
            logits = self.discriminator(torch.cat([x, fakes]))[0]      # (3B,)
            real_logits, fake_logits = logits[:len(x)], logits[len(x):]
            loss = discriminator_loss(real_logits, fake_logits, c.loss)
            return loss, {"d_real": real_logits.detach().float().mean(), "d_fake": fake_logits.detach().float().mean()}
        with torch.no_grad():
            target = self.discriminator(x)[1]                          # (B, F): what reconstructions should match
        if phase == "encoder":
            mu, logvar, z = self._posterior_sample(x)
            with frozen(self.decoder, self.discriminator):
                recon, _ = self._decode_with_prior(z)
                rec, feature_error = self.reconstruction_error(x, recon, self.discriminator(recon)[1], target)
            mu, logvar = mu.float(), logvar.float()
            kl = (0.5 * (mu ** 2 + logvar.exp() - 1.0 - logvar)).sum(1).mean()  # KL(q(z|x) || N(0, I)) per image
            mse = (((recon.detach().float() - x.float()) * 0.5) ** 2).mean()    # grey values [0, 1], for the log
            return c.beta * kl + rec, {"kl": kl.detach(), "recon_features": feature_error.detach(), "recon_mse": mse}
        if phase == "decoder":
            with torch.no_grad():                                      # the encoder is not trained here
                z = self._posterior_sample(x)[2]
            recon, prior = self._decode_with_prior(z)
            with frozen(self.discriminator):
                logits, features = self.discriminator(torch.cat([recon, prior]))  # (2B,), (2B, F)
            rec, feature_error = self.reconstruction_error(x, recon, features[:len(x)], target)
            # the generator's loss averages over reconstructions and prior samples alike (the paper sums the two
            # terms: the same up to a factor 2 that gamma absorbs)
            gan = generator_loss(logits, c.loss)
            return c.gamma * rec + gan, {"gan": gan.detach(), "recon_features": feature_error.detach()}
        raise ValueError(f"unknown VAE-GAN phase {phase!r}")
