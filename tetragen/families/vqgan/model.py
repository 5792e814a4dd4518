"""VQGAN: the vqvae image tokenizer whose decoder is also trained against a patch discriminator.

Taming Transformers for High-Resolution Image Synthesis (Esser, Rombach & Ommer 2021), arXiv:2012.09841, section
3.1, eq. 7: L = L_rec + L_vq + lambda * L_GAN with the adaptive weight
    lambda = ||grad_{G_L} L_rec|| / (||grad_{G_L} L_GAN|| + 1e-4),   G_L the decoder's last layer,
clamped to [0, 1e4] and detached, as in the paper's code (taming/modules/losses/vqperceptual.py), which also
multiplies it by disc_weight and switches the GAN on at step disc_start.
The discriminator is a PatchGAN (Isola, Zhu, Zhou & Efros 2017, "Image-to-Image Translation with Conditional
Adversarial Networks", arXiv:1611.07004; taming's NLayerDiscriminator): 4x4 convs, stride 2 then 1, one logit per
overlapping image patch, trained with the hinge loss (tetragen/nn/gan_losses.py).

The encoder, quantizer and decoder are the vqvae family's, under the same parameter names (VQGAN subclasses VQVAE),
so encode / decode / reconstruct and every invariant of tetragen/families/vqvae/model.py hold unchanged, and the
reconstruction loss is VQVAE.forward's own (MSE + the quantizer's loss), not a copy of it.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ...nn.conv import DownBlock
from ...nn.gan_losses import discriminator_loss, generator_loss
from ...nn.init import dcgan_init, frozen
from ..vqvae.model import VQVAE

MAX_WIDTH_MULT = 8  # the discriminator's widest layer: disc_width * 8 (taming's cap)


def _norm_block(in_ch: int, out_ch: int, stride: int) -> nn.Sequential:
    """4x4 conv (stride 2 halves the side, stride 1 takes one off), instance norm, LeakyReLU(0.2). Instance norm
    (CycleGAN's PatchGAN, Zhu et al. 2017) rather than taming's batch norm: a patch's logit then never depends on the
    other images of its batch, and there are no running statistics for the autoencoder's forward passes to move."""
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 4, stride=stride, padding=1, bias=False),
                         nn.InstanceNorm2d(out_ch, affine=True), nn.LeakyReLU(0.2))


class PatchDiscriminator(nn.Module):
    """image (B, C, H, W) -> logits (B, h, w), one per patch, and the features after each block (for feature
    matching). `layers` stride-2 blocks (the first without norm), one stride-1 block, a stride-1 conv to 1 channel:
    28x28 with 2 layers: 14x14 -> 7x7 -> 6x6 -> 5x5 logits."""

    def __init__(self, channels: int, width: int, layers: int):
        super().__init__()
        widths = [width * min(2 ** i, MAX_WIDTH_MULT) for i in range(layers + 1)]   # e.g. 64, 2: [64, 128, 256]
        self.blocks = nn.ModuleList([DownBlock(channels, widths[0]),
                                     *[_norm_block(a, b, 2) for a, b in zip(widths[:layers - 1], widths[1:layers])],
                                     _norm_block(widths[layers - 1], widths[layers], 1)])
        self.head = nn.Conv2d(widths[layers], 1, 4, stride=1, padding=1)
        self.apply(dcgan_init)                                      # DCGAN's N(0, 0.02), as taming's weights_init

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        features = []
        h = x
        for block in self.blocks:
            h = block(h)                                            # (B, w_l, H_l, W_l)
            features.append(h)
        return self.head(h).squeeze(1), features                    # (B, h, w), [...]


def feature_matching(fake: list[torch.Tensor], real: list[torch.Tensor]) -> torch.Tensor:
    """Mean over the discriminator's blocks of the mean absolute difference between the features of the
    reconstructions and (the target, no gradient) of the images."""
    return torch.stack([(f.float() - r.float().detach()).abs().mean() for f, r in zip(fake, real)]).mean()


class VQGAN(VQVAE):
    """The vqvae tokenizer + `discriminator`; `forward(batch, phase, gan=)` is the loss of phase "disc" or "main"
    (one module, so that under DDP both phases go through the wrapped module). `trained_batches` counts the main
    phase's micro-batches: the step, restored exactly on resume, that decides when the GAN switches on."""

    def __init__(self, config):
        super().__init__(config)
        c = config
        self.discriminator = PatchDiscriminator(c.channels, c.disc_width, c.disc_layers)
        self.register_buffer("trained_batches", torch.zeros((), dtype=torch.long))

    @property
    def last_decoder_layer(self) -> nn.Parameter:
        """The weight of the decoder's last layer (before its tanh): where the adaptive weight compares gradients."""
        return self.decoder.net[-1].weight

    def vqvae_loss(self, batch: dict) -> tuple[torch.Tensor, dict, torch.Tensor]:
        """VQVAE.forward's loss (reconstruction MSE + vq_loss) and metrics, and the reconstruction (B, C, H, W) it was
        computed from, caught on its way out of the decoder (so the GAN term joins the same graph, with no second
        decoder pass and no copy of VQVAE.forward)."""
        out = []
        hook = self.decoder.register_forward_hook(lambda module, args, output: out.append(output))
        try:
            loss, metrics = super().forward(batch)
        finally:
            hook.remove()
        return loss, metrics, out[-1]

    def adaptive_weight(self, rec_loss: torch.Tensor, gan_loss: torch.Tensor) -> torch.Tensor:
        """||grad L_rec|| / (||grad L_GAN|| + 1e-4) at the decoder's last layer, clamped to [0, 1e4], detached."""
        last = self.last_decoder_layer
        rec_grad, = torch.autograd.grad(rec_loss, last, retain_graph=True)
        gan_grad, = torch.autograd.grad(gan_loss, last, retain_graph=True)
        return (rec_grad.norm() / (gan_grad.norm() + 1e-4)).clamp(0.0, 1e4).detach()

    def forward(self, batch: dict, phase: str = "main", gan: bool = False) -> tuple[torch.Tensor, dict]:
        """phase "disc": the hinge loss of the discriminator on the images vs their (detached) reconstructions.
        phase "main": VQVAE.forward's loss, plus, with `gan`, the feature-matching term (feature_weight) and
        adaptive_weight * disc_weight * the generator's hinge loss; the discriminator is frozen there."""
        c = self.config
        if phase == "disc":
            x = batch["x"]                                          # (B, C, H, W) in [-1, 1]; labels unused
            with torch.no_grad():                                   # lookup only: the codebook does not move here
                fake = self.reconstruct(x)[0]
            logits = self.discriminator(torch.cat([x, fake]))[0]    # (2B, h, w); instance norm: per image
            real_logits, fake_logits = logits[:len(x)].flatten(), logits[len(x):].flatten()
            loss = discriminator_loss(real_logits, fake_logits, "hinge")
            return loss, {"d_real": real_logits.detach().float().mean(),
                          "d_fake": fake_logits.detach().float().mean()}
        if phase != "main":
            raise ValueError(f"unknown VQGAN phase {phase!r}")
        loss, metrics, recon = self.vqvae_loss(batch)
        if not gan:
            return loss, metrics
        with frozen(self.discriminator):                            # gradients pass through D to the decoder only
            fake_logits, fake_features = self.discriminator(recon)
        rec_loss = loss                                             # vq_loss has no path to the decoder: same grad
        if c.feature_weight > 0:
            with torch.no_grad():
                real_features = self.discriminator(batch["x"])[1]
            features = feature_matching(fake_features, real_features)
            rec_loss = rec_loss + c.feature_weight * features       # a perceptual term, taming's L_rec includes it
            metrics["feature_l1"] = features.detach()
        gan_loss = generator_loss(fake_logits.flatten(), "hinge")
        weight = self.adaptive_weight(rec_loss, gan_loss)
        metrics.update(gen_loss=gan_loss.detach(), adaptive_weight=weight)
        return rec_loss + c.disc_weight * weight * gan_loss, metrics
