"""The sequence encoders against plain references (torch.nn.GRU, conv1d, a masked softmax) on
short, long, all-padding-but-one and length-1 sequences, forward and backward; packing
(StepLayout) must change nothing a member computes."""
import pytest
import torch
import torch.nn.functional as F

from evo_msa.config import ENCODERS
from evo_msa.models.layers import MemberNoise, ParamStore, masked_mean
from evo_msa.models.sequence import SequenceExpert, StepLayout, Steps

D, H, T = 5, 4, 7
# long (all T steps), short, all padding but the first step, and a middle length
LENGTHS = [T, 2, 1, 4]


def expert(kind: str, P: int = 1, seq_len: int = T, seed: int = 0, width: int = H):
    store = ParamStore(P)
    e = SequenceExpert(store, "e", D, seq_len, [kind] * P, torch.ones(P, dtype=torch.bool),
                       torch.full((P,), width), H)
    params = store.materialise(torch.device("cpu"), [seed + p for p in range(P)])
    return e, params


def inputs(lengths, P: int = 1, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(P, len(lengths), T, D, generator=g)
    n = torch.tensor(lengths).expand(P, -1).clone()
    pad = torch.arange(T)[None, None, :] >= n[..., None]
    return x.masked_fill(pad[..., None], 1e3), n  # padding holds garbage: never read


def encode(kind, e, params, x, n):
    return getattr(e, f"_{kind}")(params, Steps.pack(x, n), None, e.widths[kind])


def test_gru_is_torch_gru_forward_and_backward():
    e, params = expert("gru")
    x, n = inputs(LENGTHS)
    ours = encode("gru", e, params, x, n)[0]
    ref = torch.nn.GRU(D, H, batch_first=True)
    with torch.no_grad():
        ref.weight_ih_l0.copy_(params[e.w_ih.w][0].T)
        ref.bias_ih_l0.copy_(params[e.w_ih.b][0])
        ref.weight_hh_l0.copy_(params[e.w_hh.w][0].T)
        ref.bias_hh_l0.copy_(params[e.w_hh.b][0])
    packed = torch.nn.utils.rnn.pack_padded_sequence(x[0], n[0], batch_first=True,
                                                     enforce_sorted=False)
    theirs = ref(packed)[1][0]
    torch.testing.assert_close(ours, theirs)
    weights = torch.randn(len(LENGTHS), H)
    (ours * weights).sum().backward()
    (theirs * weights).sum().backward()
    torch.testing.assert_close(params[e.w_hh.w].grad[0], ref.weight_hh_l0.grad.T)
    torch.testing.assert_close(params[e.w_ih.w].grad[0], ref.weight_ih_l0.grad.T)
    torch.testing.assert_close(params[e.w_ih.b].grad[0], ref.bias_ih_l0.grad)
    torch.testing.assert_close(params[e.w_hh.b].grad[0], ref.bias_hh_l0.grad)


def test_conv_is_conv1d_over_the_valid_steps():
    e, params = expert("conv")
    x, n = inputs(LENGTHS)
    ours = encode("conv", e, params, x, n)[0]
    valid = (torch.arange(T)[None, :] < n[0][:, None]).float()
    w = params[e.conv.w][0].permute(2, 1, 0)  # (3, D, H) -> (H, D, 3)
    y = F.conv1d((x[0] * valid[..., None]).transpose(1, 2), w, params[e.conv_bias][0], padding=1)
    theirs = (torch.relu(y).transpose(1, 2) * valid[..., None]).sum(1) / n[0][:, None]
    torch.testing.assert_close(ours, theirs)


def test_attention_is_a_softmax_over_the_valid_steps_and_starts_as_the_mean():
    e, params = expert("attention")
    x, n = inputs(LENGTHS)
    # the query starts at 0: uniform weights, the mean over the valid steps
    torch.testing.assert_close(encode("attention", e, params, x, n), masked_mean(
        torch.where(torch.arange(T)[None, None, :, None] < n[..., None, None], x, 0.0), n))
    with torch.no_grad():
        params[e.attn_query].normal_()
    ours = encode("attention", e, params, x, n)[0]
    for b, length in enumerate(LENGTHS):
        steps = x[0, b, :length]
        keys = torch.tanh(steps @ params[e.attn_key.w][0] + params[e.attn_key.b][0])
        a = torch.softmax(keys @ params[e.attn_query][0], 0)
        torch.testing.assert_close(ours[b], a @ steps)


@pytest.mark.parametrize("kind", ENCODERS)
def test_every_encoder_ignores_padding_and_handles_length_one(kind):
    e, params = expert(kind)
    x, n = inputs(LENGTHS)
    out = e(params, x, n, torch.zeros(1, 1, 1), None)
    assert torch.isfinite(out).all()
    x2 = x.clone()
    x2[torch.arange(T)[None, None, :].expand_as(n[..., None].expand(-1, -1, T))
       >= n[..., None]] = -7.0
    torch.testing.assert_close(out, e(params, x2, n, torch.zeros(1, 1, 1), None))
    # a batch cut to its longest sequence computes the same (what the trainer does)
    short = torch.tensor([[3, 1, 2, 3]])
    torch.testing.assert_close(e(params, x, short, torch.zeros(1, 1, 1), None),
                               e(params, x[:, :, :3], short, torch.zeros(1, 1, 1), None))
    # a length-1 sequence of a T > 1 modality: one step, the first
    one = torch.ones(1, 4, dtype=torch.long)
    torch.testing.assert_close(e(params, x, one, torch.zeros(1, 1, 1), None),
                               e(params, x[:, :, :1], one, torch.zeros(1, 1, 1), None))


def test_on_vectors_every_encoder_is_the_mean_block():
    x, n = inputs([1, 1, 1])
    x = x[:, :, :1]
    outs = []
    for kind in ENCODERS:
        e, params = expert(kind, seq_len=1)
        assert e.kinds == ["mean"]
        outs.append(e(params, x, n, torch.zeros(1, 1, 1), None))
    for out in outs[1:]:
        torch.testing.assert_close(out, outs[0])


@pytest.mark.parametrize("kind", ENCODERS)
def test_a_member_encodes_the_same_alone_and_packed_with_others(kind):
    """Each member has its own batch (its own lengths); packing pads every step to the member
    with the most rows still running, which must not change what the others compute."""
    P = 3
    e, params = expert(kind, P=P, seed=10)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(P, 6, T, D, generator=g)
    n = torch.tensor([[7, 1, 3, 2, 2, 5], [1, 1, 1, 1, 1, 1], [4, 7, 7, 6, 1, 2]])
    together = e(params, x, n, torch.zeros(P, 1, 1), None)
    for p in range(P):
        alone, mine = expert(kind, seed=10 + p)
        torch.testing.assert_close(together[p], alone(mine, x[p:p + 1], n[p:p + 1],
                                                      torch.zeros(1, 1, 1), None)[0])


def test_packing_skips_the_steps_no_member_has():
    n = torch.tensor([[7, 1, 1, 2], [3, 3, 1, 1]])
    layout = StepLayout.of(n, T)
    # step 0: every row; steps 1-2: 2 rows (member 1 has two of length 3); steps 3-6: 1 row
    assert layout.counts == [4, 2, 2, 1, 1, 1, 1]
    assert layout.row.shape == (12,) and int(layout.valid.sum()) == int(n.sum())
    x = torch.randn(2, 4, T, D)
    steps = Steps.pack(x, n)
    torch.testing.assert_close(steps.mean(), masked_mean(x, n))
    # the neighbours a convolution reads: the same row one step back and on
    prev, after = steps.layout.neighbour(-1), steps.layout.neighbour(1)
    S = len(steps.layout.row)
    for s_ in range(S):
        r, t = int(steps.layout.row[s_]), int(steps.layout.at[s_])
        assert (int(prev[s_]) == S) == (t == 0)
        if int(after[s_]) < S:
            assert (int(steps.layout.row[after[s_]]), int(steps.layout.at[after[s_]])) == (r, t + 1)


def test_input_dropout_of_a_member_depends_on_its_own_batch_only():
    """Its draws follow its own valid steps (batch row, then step): the same alone, packed with
    other members, and with the batch cut anywhere past its longest sequence."""
    n = torch.tensor([[5, 1, 3], [2, 6, 1]])
    x = torch.randn(2, 3, T, D)
    noise = MemberNoise([3, 4], torch.device("cpu"))
    noise.step = 5
    both = Steps.pack(x, n).dropout(noise, "input.text", [0.4, 0.3])
    for p in range(2):
        alone = MemberNoise([3 + p], torch.device("cpu"))
        alone.step = 5
        cut = int(n[p].max())
        mine = Steps.pack(x[p:p + 1, :, :cut], n[p:p + 1]).dropout(alone, "input.text",
                                                                    [[0.4, 0.3][p]])
        torch.testing.assert_close(mine.mean()[0], both.mean()[p])
        # the same draws zero the same elements
        assert int((mine.x == 0).sum()) == int((both.x[p][both.layout.valid[p]] == 0).sum())
    rate = float((both.x[both.layout.valid] == 0).float().mean())
    assert 0.25 < rate < 0.45
