"""Population layers: each member's dropout noise is its own (alone or padded in any
population), at its own rate, from uniform and independent random bytes."""
import torch

from evo_msa.models.layers import MemberNoise, dropout, keep_threshold

CPU = torch.device("cpu")


def noise(seeds, step=9):
    n = MemberNoise(seeds, CPU)
    n.step = step
    return n


def test_a_members_dropout_is_the_same_alone_and_padded_in_a_population():
    seeds, widths = [11, 12, 13], [40, 23, 7]
    rate = torch.tensor([0.1, 0.5, 0.3]).view(3, 1, 1)
    batched = dropout(torch.ones(3, 16, max(widths)), rate, noise(seeds), "level.0")
    for p, width in enumerate(widths):
        alone = dropout(torch.ones(1, 16, width), rate[p:p + 1], noise([seeds[p]]), "level.0")
        assert torch.equal(alone[0], batched[p, :, :width])
    other_site = dropout(torch.ones(3, 16, 40), rate, noise(seeds), "level.1")
    assert not torch.equal(other_site, batched)


def test_dropout_keeps_units_at_each_members_rate_and_keeps_the_mean():
    rate = torch.tensor([0.0, 0.1, 0.37, 0.6]).view(4, 1, 1)
    y = dropout(torch.ones(4, 2048, 64), rate, noise([1, 2, 3, 4]), "s")
    kept = (y != 0).float().mean((1, 2))
    quantised = 1 - keep_threshold(rate).float().view(-1) / 256  # rates in steps of 1/256
    assert torch.allclose(kept, quantised, atol=0.005)
    assert kept[0] == 1.0
    assert torch.allclose(y.mean((1, 2)), torch.ones(4), atol=0.01)


def test_draws_are_uniform_and_independent_bytes():
    gen = noise([5, 6])
    d = gen.draws("s", (2, 4096, 64)).long()
    counts = torch.bincount(d.flatten(), minlength=256).float()
    expected = d.numel() / 256
    assert float(((counts - expected) ** 2 / expected).sum()) < 350  # chi2, 255 dof: 255 +- 23

    def corr(a, b):
        return abs(float(torch.corrcoef(torch.stack([a.flatten().float(),
                                                     b.flatten().float()]))[0, 1]))

    # bytes of one 32-bit hash (neighbouring units), neighbouring words, the next step
    assert corr(d[..., 0::4], d[..., 1::4]) < 0.015
    assert corr(d[..., 0::4], d[..., 3::4]) < 0.015
    assert corr(d[..., 0:60:4], d[..., 4::4]) < 0.015
    gen.step += 1
    assert corr(d, gen.draws("s", (2, 4096, 64)).long()) < 0.015
