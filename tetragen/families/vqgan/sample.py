"""What `tetragen.load` returns for a VQGAN run: the vqvae's image tokenizer pipeline (encode, decode, reconstruct,
evaluate; the discriminator is loaded with the weights but never used there), and the vqvae's training preview."""
from ..vqvae.sample import VQTokenizerPipeline, save_preview

__all__ = ["VQTokenizerPipeline", "save_preview"]
