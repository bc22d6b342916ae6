"""ganlab.bench: the FLOP count, the matrix-product yardstick and the benchmark's table (tiny sizes)."""
import copy

import pytest
import torch
from torch import nn

import ganlab as gl
from ganlab.bench import (LEVERS_AUTO, LEVERS_OFF, Variant, default_variants, format_rows, matmul_gflops, reference_step,
                          step_flops, throughput)


def test_step_flops_counts_a_linear_layer_as_two_per_multiply_add():
    layer = nn.Linear(8, 4, bias=False)
    x = torch.randn(3, 8)
    assert step_flops(lambda: layer(x)) == 2 * 3 * 8 * 4
    # forward and backward: the input and weight gradients are each one more product of the same size
    assert step_flops(lambda: layer(x.requires_grad_()).sum().backward()) == 3 * 2 * 3 * 8 * 4


def test_matmul_gflops_is_a_positive_rate_and_checks_its_arguments():
    assert matmul_gflops("cpu", n=64, repeats=2) > 0
    with pytest.raises(ValueError, match="n"):
        matmul_gflops("cpu", n=0)


def test_default_variants_start_with_the_reference_and_turn_one_lever_on_at_a_time():
    rows = default_variants("cpu")
    assert rows[0].config is None and rows[1].config == LEVERS_OFF
    for v in rows[2:]:
        if v.config and v.config != {}:
            changed = {k for k in LEVERS_OFF if v.config.get(k, LEVERS_OFF[k]) != LEVERS_OFF[k]}
            assert len(changed) == 1, v.name
    assert any(v.config == LEVERS_AUTO for v in rows)   # ganlab's automatic levers are measured


def test_throughput_rows_and_the_flops_a_lever_saves():
    # in-process: the spawned-process path is the same code behind a process pool, minus seconds of
    # interpreter starts (benchmarks/throughput.py measures in fresh processes)
    model_args = dict(z_dim=8, img_size=8, base_channels=4)
    variants = [Variant("reference", None), Variant("every lever off", dict(LEVERS_OFF)),
                Variant("skip D's weight grads", {**LEVERS_OFF, "skip_d_grads": True})]
    rows = throughput(model_args=model_args, batch_size=4, steps=2, repeats=1, warmup=1, device="cpu",
                      variants=variants, progress=False, in_process=True)
    assert [r["name"] for r in rows] == ["reference", "every lever off", "skip D's weight grads"]
    assert rows[0]["ratio"] == 1.0
    assert all(r["images_per_s"] > 0 and r["gflop_per_step"] > 0 and 0 < r["peak_share"] for r in rows)
    assert "reference" in format_rows(rows)
    # skipping D's weight gradients in G's step saves exactly their FLOPs: the difference between D's
    # backward on one fake batch with and without the weights' gradients, counted here directly
    torch.manual_seed(0)
    G, D = gl.models.build_gan("dcgan", **model_args)
    fake = G(torch.randn(4, 8))

    def d_backward(wrt):
        return lambda: torch.autograd.grad(D(fake).sum(), wrt)

    expected = step_flops(d_backward([fake, *D.parameters()])) - step_flops(d_backward([fake]))
    saved = round(1e9 * (rows[1]["gflop_per_step"] - rows[2]["gflop_per_step"]))
    assert expected > 0 and saved == expected


def test_throughput_checks_its_arguments():
    with pytest.raises(ValueError, match="steps"):
        throughput(steps=0)
    with pytest.raises(ValueError, match="model"):
        throughput(model="nope")
    with pytest.raises(ValueError, match="variants"):
        throughput(variants=[Variant("x", {})], device="cpu")


def test_reference_step_makes_the_same_update_as_ganlabs_steps_with_the_non_saturating_loss():
    # the plain loop's BCE on logits is ganlab's non-saturating loss: one step of each must agree
    torch.manual_seed(0)
    G, D = gl.models.build_gan("dcgan", z_dim=8, img_size=16, base_channels=4)
    G2, D2 = copy.deepcopy(G), copy.deepcopy(D)
    before = {"G": copy.deepcopy(G.state_dict()), "D": copy.deepcopy(D.state_dict())}
    real, z = torch.rand(6, 1, 16, 16) * 2 - 1, torch.randn(6, 8)

    def adam(net):
        return torch.optim.Adam(net.parameters(), lr=1e-2, betas=(0.5, 0.999))

    reference_step(G, D, real, z, adam(D), adam(G))
    d_loss, g_loss = gl.losses.get_loss("non_saturating")
    fake = G2(z)
    gl.d_step(G2, D2, real, adam(D2), d_loss, fake=fake)
    gl.g_step(G2, D2, len(z), adam(G2), g_loss, fake=fake)
    for a, b in ((G, G2), (D, D2)):
        for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
            torch.testing.assert_close(p, q, msg=name)
    for key, net in (("G", G), ("D", D)):  # and the step did move both networks
        assert any(not torch.equal(v, before[key][k]) for k, v in net.state_dict().items() if v.is_floating_point())
