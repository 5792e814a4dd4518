"""Attention invariants: the KV cache changes nothing; causal masking hides the future."""
import torch

from tetragen.families.gpt.config import GPTConfig
from tetragen.families.gpt.model import GPT


def small_gpt(**kw):
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=50, block_size=24, n_layer=2, n_head=4, n_embd=32, dropout=0.0, bias=True, **kw)
    return GPT(cfg).eval()


def test_logits_with_kv_cache_equal_logits_without():
    model = small_gpt()
    idx = torch.randint(0, 50, (2, 20))
    full, _ = model(idx)                                   # (B, T, V) in one pass, no cache
    cache = model.new_cache(2)
    pieces = [model(idx[:, :7], cache=cache)[0]]            # prefill 7 tokens
    pieces.append(model(idx[:, 7:12], cache=cache)[0])      # a chunk after a prefix (offset causal mask)
    for t in range(12, 20):                                 # then one token at a time
        pieces.append(model(idx[:, t:t + 1], cache=cache)[0])
    cached = torch.cat(pieces, dim=1)
    assert cached.shape == full.shape
    torch.testing.assert_close(cached, full, atol=1e-5, rtol=1e-5)


def test_future_tokens_do_not_change_past_logits():
    model = small_gpt()
    idx = torch.randint(0, 50, (1, 16))
    changed = idx.clone()
    changed[0, 10:] = (changed[0, 10:] + 1) % 50
    a, _ = model(idx)
    b, _ = model(changed)
    torch.testing.assert_close(a[:, :10], b[:, :10])
    assert not torch.allclose(a[:, 10:], b[:, 10:])


def test_gpt2_parameter_names():
    names = set(small_gpt().state_dict())
    for n in ["transformer.wte.weight", "transformer.wpe.weight", "transformer.h.0.ln_1.weight",
              "transformer.h.0.attn.c_attn.weight", "transformer.h.0.attn.c_proj.bias", "transformer.h.1.mlp.c_fc.weight",
              "transformer.h.1.mlp.c_proj.weight", "transformer.ln_f.bias", "lm_head.weight"]:
        assert n in names, n
    model = small_gpt()
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()  # tied


def test_causal_attention_with_a_bias_or_padding_mask_still_hides_the_future():
    from tetragen.nn.attention import SelfAttention, alibi_bias
    torch.manual_seed(0)
    attn = SelfAttention(32, 4, causal=True).eval()
    x = torch.randn(2, 12, 32)
    plain = attn(x)
    # a zero bias and an all-real padding mask take the explicit-mask path and must change nothing
    torch.testing.assert_close(attn(x, attn_bias=torch.zeros(4, 12, 12)), plain)
    torch.testing.assert_close(attn(x, key_padding_mask=torch.ones(2, 12, dtype=torch.bool)), plain)
    changed = x.clone()
    changed[:, 8:] += 1.0
    bias = alibi_bias(4, 12)
    torch.testing.assert_close(attn(changed, attn_bias=bias)[:, :8], attn(x, attn_bias=bias)[:, :8])
    assert not torch.allclose(attn(x, attn_bias=bias), plain)


def test_rows_at_their_own_positions_see_only_their_own_keys_up_to_their_position():
    """The server's slots: each row of one cache holds another sequence; whatever a row holds beyond its position
    (an earlier, longer sequence) or what the other rows hold changes nothing."""
    model = small_gpt()
    idx = torch.randint(0, 50, (3, 10))
    lengths = [10, 4, 7]
    cache = model.new_cache(3)
    for layer in range(len(cache.k)):  # stale keys and values everywhere
        cache.k[layer].normal_()
        cache.v[layer].normal_()
    for row, n in enumerate(lengths):  # each row's prefix, alone into its row
        model(idx[row:row + 1, :n - 1], cache=cache.row(row))
    last = torch.tensor([[idx[r, n - 1]] for r, n in enumerate(lengths)])
    logits, _ = model(last, cache=cache, pos=torch.tensor([[n - 1] for n in lengths]))   # (3, 1, V)
    for row, n in enumerate(lengths):
        torch.testing.assert_close(logits[row, -1], model(idx[row:row + 1, :n])[0][0, -1], atol=1e-5, rtol=1e-5)
