"""The server's batched decoding is GPT's own forward: slot-batched, KV-cached logits equal the plain forward on the
same tokens (in fp32 and under CPU bf16 autocast), across the window's re-encoding, and a slot's logits are exactly
the same whatever the other slots hold and whichever slot it is in."""
import pytest
import torch

from tetragen.families.gpt.config import GPTConfig
from tetragen.families.gpt.decode import GPTSlotDecoder
from tetragen.families.gpt.model import GPT
from tetragen.families.gpt.sample import TextGenerator
from tetragen.sample.tokens import BatchedDecoding, SlotDecoder

BLOCK = 16


def small_gpt():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=50, block_size=BLOCK, n_layer=2, n_head=4, n_embd=32, bias=True)).eval()
    with torch.no_grad():  # larger weights than GPT-2's init: sharp attention, where a wrong key would show
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    return model


def decode_all(decoder, sequences, prompt_lengths):
    """Prefill each {slot: tokens} with its first prompt_lengths[slot] tokens, then feed the rest one step at a time,
    all slots together -> {slot: [(the tokens the logits follow, logits (V,))]}."""
    seen = {s: [] for s in sequences}
    for s, tokens in sequences.items():
        seen[s].append((tokens[:prompt_lengths[s]], decoder.prefill(s, tokens[:prompt_lengths[s]])[0]))
    t = {s: prompt_lengths[s] for s in sequences}
    while any(t[s] < len(sequences[s]) for s in sequences):
        step = {s: sequences[s][:t[s] + 1] for s in sequences if t[s] < len(sequences[s])}
        for s, logits in decoder.decode(step).items():
            seen[s].append((step[s], logits[0]))
            t[s] += 1
    return seen


def plain_logits(model, tokens, prompt_length):
    """The next-token logits after `tokens` by the plain forward over the window the cached decoder holds."""
    start, end = max(0, prompt_length - BLOCK), prompt_length   # the prefill reads its latest BLOCK tokens
    while len(tokens) > end:                                     # each new token joins the window until it is full,
        if end - start == BLOCK:                                 # then the latest half, with it, is re-encoded
            start = end + 1 - BLOCK // 2
        end += 1
    logits, _ = model(torch.tensor([tokens[start:end]]))
    return logits[0, -1]


@pytest.mark.parametrize("autocast", [False, True], ids=["fp32", "bf16-autocast"])
def test_slot_batched_decoding_equals_the_plain_forward(autocast):
    model = small_gpt()
    g = torch.Generator().manual_seed(1)
    sequences = {0: torch.randint(0, 50, (40,), generator=g).tolist(),      # past the window twice
                 2: torch.randint(0, 50, (9,), generator=g).tolist(),
                 3: torch.randint(0, 50, (20,), generator=g).tolist()}      # slot 1 stays idle
    prompts = {0: 5, 2: 1, 3: 18}                                            # slot 3's prompt is cut to BLOCK
    decoder = GPTSlotDecoder(model, slots=4)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        seen = decode_all(decoder, sequences, prompts)
        for s, steps in seen.items():
            assert len(steps) == len(sequences[s]) - prompts[s] + 1
            for tokens, logits in steps:
                expected = plain_logits(model, tokens, prompts[s])
                # bf16 rounds the projections' inputs to 8 bits of mantissa, at other batch shapes in the two paths
                tol = dict(atol=2e-2, rtol=2e-2) if autocast else dict(atol=1e-5, rtol=1e-5)
                torch.testing.assert_close(logits.float(), expected.float(), **tol)


def test_a_slots_logits_do_not_depend_on_the_other_slots():
    model = small_gpt()
    g = torch.Generator().manual_seed(2)
    mine = torch.randint(0, 50, (30,), generator=g).tolist()
    crowded = decode_all(GPTSlotDecoder(model, slots=4),
                         {0: torch.randint(0, 50, (25,), generator=g).tolist(), 1: mine,
                          3: torch.randint(0, 50, (12,), generator=g).tolist()}, {0: 3, 1: 4, 3: 12})[1]
    alone = decode_all(GPTSlotDecoder(model, slots=4), {2: mine}, {2: 4})[2]
    assert len(crowded) == len(alone)
    for (tokens_a, a), (tokens_b, b) in zip(crowded, alone):
        assert tokens_a == tokens_b and torch.equal(a, b)


def test_the_gpt_pipeline_offers_batched_decoding_through_the_protocol():
    pipe = TextGenerator(small_gpt(), tokenizer=None, config=None)
    assert isinstance(pipe, BatchedDecoding)
    decoder = pipe.slot_decoder(3)
    assert isinstance(decoder, SlotDecoder) and decoder.context == BLOCK
