"""Tests for anime_lib.models.stylegan2: the rosinality checkpoint format (every key and shape, from a table written
here from the format's rules, on the meta device), loading files in that format (weights_only, argparse.Namespace
allowed, nothing else), the forward pass (W+, truncation, mixing), demodulation, the losses, ADA, the freezing
helpers, layer swapping and one training step. Tiny models: the file runs in seconds on one CPU thread."""
from __future__ import annotations

import argparse
import math

import pytest
import torch
import torch.nn.functional as F

from anime_lib.models import stylegan2 as sg
from anime_lib.pretrained import WeightsError

SMALL = {"style_dim": 32, "n_mlp": 2, "channels": {4: 32, 8: 32, 16: 16, 32: 16}}


def published_channels(cm: int) -> dict[int, int]:
    return {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * cm, 128: 128 * cm, 256: 64 * cm, 512: 32 * cm, 1024: 16 * cm}


def generator_table(size: int, style_dim: int = 512, n_mlp: int = 8, cm: int = 2,
                    channels: dict[int, int] | None = None) -> dict[str, tuple[int, ...]]:
    """Every key -> shape of a rosinality Generator, from the format's rules (not from the model)."""
    ch = channels or published_channels(cm)
    t: dict[str, tuple[int, ...]] = {}
    for i in range(1, n_mlp + 1):
        t[f"style.{i}.weight"], t[f"style.{i}.bias"] = (style_dim, style_dim), (style_dim,)

    def styled(prefix: str, cin: int, cout: int, up: bool) -> None:
        t[f"{prefix}.conv.weight"] = (1, cout, cin, 3, 3)
        t[f"{prefix}.conv.modulation.weight"], t[f"{prefix}.conv.modulation.bias"] = (cin, style_dim), (cin,)
        if up:
            t[f"{prefix}.conv.blur.kernel"] = (4, 4)
        t[f"{prefix}.noise.weight"], t[f"{prefix}.activate.bias"] = (1,), (cout,)

    def rgb(prefix: str, cin: int, up: bool) -> None:
        t[f"{prefix}.conv.weight"] = (1, 3, cin, 1, 1)
        t[f"{prefix}.conv.modulation.weight"], t[f"{prefix}.conv.modulation.bias"] = (cin, style_dim), (cin,)
        t[f"{prefix}.bias"] = (1, 3, 1, 1)
        if up:
            t[f"{prefix}.upsample.kernel"] = (4, 4)

    log = int(math.log2(size))
    t["input.input"] = (1, ch[4], 4, 4)
    styled("conv1", ch[4], ch[4], False)
    rgb("to_rgb1", ch[4], False)
    for j in range((log - 2) * 2 + 1):
        res = 2 ** ((j + 5) // 2)
        t[f"noises.noise_{j}"] = (1, 1, res, res)
    cin = ch[4]
    for k, i in enumerate(range(3, log + 1)):
        cout = ch[2 ** i]
        styled(f"convs.{2 * k}", cin, cout, True)
        styled(f"convs.{2 * k + 1}", cout, cout, False)
        rgb(f"to_rgbs.{k}", cout, True)
        cin = cout
    return t


def discriminator_table(size: int, cm: int = 2, channels: dict[int, int] | None = None) -> dict[str, tuple[int, ...]]:
    ch = channels or published_channels(cm)
    t: dict[str, tuple[int, ...]] = {"convs.0.0.weight": (ch[size], 3, 1, 1), "convs.0.1.bias": (ch[size],)}
    for j, i in enumerate(range(int(math.log2(size)), 2, -1), start=1):
        cin, cout = ch[2 ** i], ch[2 ** (i - 1)]
        t.update({f"convs.{j}.conv1.0.weight": (cin, cin, 3, 3), f"convs.{j}.conv1.1.bias": (cin,),
                  f"convs.{j}.conv2.0.kernel": (4, 4), f"convs.{j}.conv2.1.weight": (cout, cin, 3, 3),
                  f"convs.{j}.conv2.2.bias": (cout,), f"convs.{j}.skip.0.kernel": (4, 4),
                  f"convs.{j}.skip.1.weight": (cout, cin, 1, 1)})
    c4 = ch[4]
    t.update({"final_conv.0.weight": (c4, c4 + 1, 3, 3), "final_conv.1.bias": (c4,),
              "final_linear.0.weight": (c4, c4 * 16), "final_linear.0.bias": (c4,),
              "final_linear.1.weight": (1, c4), "final_linear.1.bias": (1,)})
    return t


def shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def random_state(table: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors in the format; the FIR kernels get their published values."""
    g = torch.Generator().manual_seed(seed)
    k = torch.tensor([1.0, 3.0, 3.0, 1.0])
    blur = torch.outer(k, k) / 64
    state = {}
    for key, shape in table.items():
        if key.endswith("kernel"):
            up = key.endswith(("upsample.kernel", "conv.blur.kernel"))
            state[key] = blur * (4 if up else 1)
        else:
            state[key] = torch.randn(shape, generator=g)
    return state


def small_G(seed: int = 0, **kw) -> sg.Generator:
    torch.manual_seed(seed)
    return sg.Generator(32, **{**SMALL, **kw})


# ---------------------------------------------------------------------------------------------- 1. the format


def test_published_layout_at_256px_on_meta():
    with torch.device("meta"):
        G, D = sg.Generator(256), sg.Discriminator(256)
    assert shapes(G) == generator_table(256)
    assert shapes(D) == discriminator_table(256)
    g, d = shapes(G), shapes(D)
    assert g["conv1.conv.weight"] == (1, 512, 512, 3, 3)
    assert g["to_rgbs.5.conv.weight"] == (1, 3, 128, 1, 1)
    assert g["convs.11.conv.weight"] == (1, 128, 128, 3, 3)
    assert g["convs.10.conv.weight"] == (1, 128, 256, 3, 3)
    assert g["style.8.weight"] == (512, 512) and "style.9.weight" not in g and "style.0.weight" not in g
    assert g["noises.noise_12"] == (1, 1, 256, 256) and "noises.noise_13" not in g
    assert d["final_linear.0.weight"] == (512, 8192)
    assert d["convs.6.conv2.1.weight"] == (512, 512, 3, 3) and "convs.7.conv1.0.weight" not in d
    assert (G.num_layers, G.n_latent) == (13, 14)
    assert sum(p.numel() for p in G.parameters()) == 30_034_338
    img, _ = G([torch.randn(2, 512, device="meta")])  # the plain ops run on the meta device too
    assert img.shape == (2, 3, 256, 256) and D(img).shape == (2, 1)


def test_buffers_and_initial_values():
    G, D = small_G(), sg.Discriminator(32, channels=SMALL["channels"])
    k = torch.tensor([1.0, 3.0, 3.0, 1.0])
    blur = torch.outer(k, k) / 64
    assert torch.allclose(G.convs[0].conv.blur.kernel, blur * 4) and torch.allclose(G.to_rgbs[0].upsample.kernel, blur * 4)
    assert torch.allclose(D.convs[1].conv2[0].kernel, blur) and torch.allclose(D.convs[1].skip[0].kernel, blur)
    assert torch.equal(G.conv1.conv.modulation.bias, torch.ones(32))
    assert G.conv1.noise.weight.item() == 0 and D.convs[1].skip[1].bias is None
    assert "latent_avg" not in G.state_dict()
    # the upsampling keeps a flat image flat (no checkerboard), away from the border
    up = G.to_rgbs[0].upsample(torch.ones(1, 3, 8, 8))
    assert up.shape == (1, 3, 16, 16) and torch.allclose(up[..., 2:-2, 2:-2], torch.ones(1, 3, 12, 12))
    assert sg.upfirdn2d(torch.ones(1, 2, 8, 8), blur, down=2, pad=(1, 1)).shape == (1, 2, 4, 4)


# ---------------------------------------------------------------------------------------------- 2. files


def trained_file(path, table_g, table_d, **extra):
    g = random_state(table_g, 1)
    obj = {"g": g, "d": random_state(table_d, 2), "g_ema": random_state(table_g, 3),
           "g_optim": {"state": {}, "param_groups": [{"lr": 0.002, "params": [0, 1]}]}, "d_optim": {},
           "args": argparse.Namespace(size=32, channel_multiplier=2, batch=16, path="lmdb", augment=True),
           "ada_aug_p": 0.1, **extra}
    torch.save(obj, path)
    return obj


def test_load_trained_and_converted_files(tmp_path):
    tg, td = generator_table(32, 32, 2, channels=SMALL["channels"]), discriminator_table(32, channels=SMALL["channels"])
    obj = trained_file(tmp_path / "trained.pt", tg, td)
    G = sg.load_rosinality_checkpoint(tmp_path / "trained.pt")
    assert isinstance(G, sg.Generator) and (G.size, G.style_dim, G.n_mlp) == (32, 32, 2) and G.latent_avg is None
    assert all(torch.equal(v, obj["g_ema"][k]) for k, v in G.state_dict().items())
    D = sg.load_rosinality_checkpoint(tmp_path / "trained.pt", which="d")
    assert isinstance(D, sg.Discriminator) and all(torch.equal(v, obj["d"][k]) for k, v in D.state_dict().items())
    assert torch.equal(sg.load_rosinality_checkpoint(tmp_path / "trained.pt", "g").style[1].weight, obj["g"]["style.1.weight"])

    avg = torch.randn(32)
    no_noise = {k: v for k, v in obj["g_ema"].items() if not k.startswith("noises.")}
    torch.save({"g_ema": no_noise, "latent_avg": avg}, tmp_path / "converted.pt")
    G = sg.load_rosinality_checkpoint(tmp_path / "converted.pt")
    assert torch.equal(G.latent_avg, avg) and G.noises.noise_4.shape == (1, 1, 16, 16)
    assert torch.equal(G.input.input, obj["g_ema"]["input.input"])
    img, _ = G([torch.randn(2, 32)], truncation=0.5)  # latent_avg is the default centre
    assert img.shape == (2, 3, 32, 32)


@pytest.mark.parametrize("change, expected", [
    (lambda s: s.__setitem__("convs.3.conv.weight", torch.zeros(1, 16, 15, 3, 3)), "'convs.3.conv.weight' has shape"),
    (lambda s: s.pop("to_rgb1.bias"), "has no 'to_rgb1.bias'"),
    (lambda s: s.__setitem__("extra.weight", torch.zeros(1)), "'extra.weight'"),
    (lambda s: s.__setitem__("input.input", [1, 2]), "'input.input' is a list, not a tensor"),
    (lambda s: s.__setitem__("input.input", torch.zeros(3)), "do not have the shapes"),
])
def test_bad_states_name_the_key(tmp_path, change, expected):
    state = random_state(generator_table(32, 32, 2, channels=SMALL["channels"]))
    change(state)
    torch.save({"g_ema": state}, tmp_path / "bad.pt")
    with pytest.raises(WeightsError, match=expected) as err:
        sg.load_rosinality_checkpoint(tmp_path / "bad.pt")
    assert "bad.pt" in str(err.value)


class NotATensor:
    pass


def test_refused_files(tmp_path):
    state = random_state(generator_table(32, 32, 2, channels=SMALL["channels"]))
    torch.save({"g": state, "args": argparse.Namespace(size=32)}, tmp_path / "no_ema.pt")
    with pytest.raises(WeightsError, match=r"has no 'g_ema' \(it has 'g', 'args'\)"):
        sg.load_rosinality_checkpoint(tmp_path / "no_ema.pt")
    torch.save({"g_ema": state, "args": NotATensor()}, tmp_path / "object.pt")
    with pytest.raises(WeightsError, match="Python objects"):
        sg.load_rosinality_checkpoint(tmp_path / "object.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(WeightsError, match="junk.pt"):
        sg.load_rosinality_checkpoint(tmp_path / "junk.pt")
    torch.save({"g_ema": {"style.1.weight": torch.zeros(4, 4)}}, tmp_path / "partial.pt")
    with pytest.raises(WeightsError, match="'input.input'"):
        sg.load_rosinality_checkpoint(tmp_path / "partial.pt")
    # a bare generator state dict loads too
    torch.save(state, tmp_path / "bare.pt")
    assert sg.load_rosinality_checkpoint(tmp_path / "bare.pt").size == 32


# ---------------------------------------------------------------------------------------------- 3.-4. round trip


def test_save_load_round_trip_is_exact(tmp_path):
    G = small_G()
    z = torch.randn(3, 32)
    with torch.no_grad():
        before, _ = G([z], randomize_noise=False)
    torch.save(G.state_dict(), tmp_path / "g.pt")
    G2 = small_G(seed=1)
    G2.load_state_dict(torch.load(tmp_path / "g.pt", weights_only=True))
    G3 = sg.Generator.from_state_dict(torch.load(tmp_path / "g.pt", weights_only=True))
    with torch.no_grad():
        assert torch.equal(G2([z], randomize_noise=False)[0], before)
        assert torch.equal(G3([z], randomize_noise=False)[0], before)


def test_from_state_dict_infers_the_architecture():
    with torch.device("meta"):
        for size, sd, n_mlp, cm in ((256, 512, 8, 2), (128, 64, 4, 1), (64, 128, 2, 4)):
            G = sg.Generator.from_state_dict(sg.Generator(size, sd, n_mlp, cm).state_dict())
            assert (G.size, G.style_dim, G.n_mlp, G.channels) == (size, sd, n_mlp, sg._channels(size, cm, None))
            D = sg.Discriminator.from_state_dict(sg.Discriminator(size, cm).state_dict())
            assert (D.size, D.channels) == (size, G.channels)
    G = sg.Generator.from_state_dict(small_G().state_dict())
    assert (G.size, G.style_dim, G.n_mlp, G.channels) == (32, 32, 2, SMALL["channels"])


# ---------------------------------------------------------------------------------------------- 5. forward


def test_forward_wplus_truncation_and_mixing():
    G = small_G()
    z1, z2 = torch.randn(4, 32), torch.randn(4, 32)
    with torch.no_grad():
        img, latent = G([z1], return_latents=True, randomize_noise=False)
        assert img.shape == (4, 3, 32, 32) and latent.shape == (4, G.n_latent, 32) and img.abs().max() < 10
        same, _ = G(latent, input_is_latent=True, randomize_noise=False)
        assert torch.allclose(same, img, atol=1e-6)
        avg = G.mean_latent(256)
        a, _ = G([z1], truncation=0.0, truncation_latent=avg, randomize_noise=False)
        b, _ = G([z2], truncation=0.0, truncation_latent=avg, randomize_noise=False)
        assert torch.allclose(a, b, atol=1e-6) and torch.allclose(a[0], a[3], atol=1e-6)
        _, mixed = G([z1, z2], inject_index=3, return_latents=True)
        w1, w2 = G.get_latent(z1), G.get_latent(z2)
        assert torch.allclose(mixed[:, :3], w1[:, None].expand(-1, 3, -1))
        assert torch.allclose(mixed[:, 3:], w2[:, None].expand(-1, G.n_latent - 3, -1))
        G.convs[3].noise.weight.fill_(0.5)  # the noise strengths start at 0
        assert not torch.equal(G([z1])[0], G([z1])[0])  # fresh noise by default
        assert torch.equal(G([z1], randomize_noise=False)[0], G([z1], randomize_noise=False)[0])
    with pytest.raises(ValueError, match="truncation_latent"):
        G([z1], truncation=0.7)
    D = sg.Discriminator(32, channels=SMALL["channels"])
    assert D(img).shape == (4, 1) and D(img[:3]).shape == (3, 1)


# ---------------------------------------------------------------------------------------------- 6. demodulation


def test_demodulation_gives_unit_variance_whatever_the_style_scale():
    torch.manual_seed(0)
    conv = sg.ModulatedConv2d(64, 8, 3, style_dim=16)
    x, w = torch.randn(2, 64, 48, 48), torch.randn(2, 16)
    with torch.no_grad():
        out = conv(x, w)
        std = out[..., 1:-1, 1:-1].std(dim=(2, 3))
        assert std.shape == (2, 8) and torch.allclose(std, torch.ones(2, 8), atol=0.1)
        conv.modulation.weight.mul_(10)
        conv.modulation.bias.mul_(10)
        assert torch.allclose(conv(x, w), out, atol=1e-4)
        up = sg.ModulatedConv2d(64, 8, 3, style_dim=16, upsample=True)
        assert up(x, w).shape == (2, 8, 96, 96)


def test_modulated_conv_matches_the_equations_image_by_image():
    """The grouped (batched) conv equals, per image: w' = W s / sqrt(fan_in), demodulated; conv (padding 1), or a
    stride-2 transposed conv followed by the [1, 3, 3, 1] blur (x4, padding 1)."""
    torch.manual_seed(0)
    x, w = torch.randn(3, 6, 5, 5), torch.randn(3, 16)
    k = torch.tensor([1.0, 3.0, 3.0, 1.0])
    blur = (torch.outer(k, k) / 16).expand(4, 1, 4, 4)
    for upsample in (False, True):
        conv = sg.ModulatedConv2d(6, 4, 3, style_dim=16, upsample=upsample)
        with torch.no_grad():
            conv.modulation.bias.normal_()  # make the styles differ more between images
            got = conv(x, w)
            for n in range(3):
                s = conv.modulation.weight @ w[n] / 4 + conv.modulation.bias  # EqualLinear: 1 / sqrt(16)
                weight = conv.weight[0] * s.view(1, 6, 1, 1) / math.sqrt(6 * 9)
                weight = weight / weight.pow(2).sum(dim=(1, 2, 3), keepdim=True).add(1e-8).sqrt()
                if upsample:
                    ref = F.conv_transpose2d(x[n:n + 1], weight.transpose(0, 1), stride=2)
                    ref = F.conv2d(ref, blur, padding=1, groups=4)
                else:
                    ref = F.conv2d(x[n:n + 1], weight, padding=1)
                assert torch.allclose(got[n:n + 1], ref, atol=1e-5), (upsample, n)


# ---------------------------------------------------------------------------------------------- 7. losses


def test_losses():
    real, fake = torch.tensor([[2.0], [-1.0]]), torch.tensor([[0.5], [-3.0]])
    expected = -torch.log(torch.sigmoid(real)).mean() - torch.log(1 - torch.sigmoid(fake)).mean()
    assert torch.allclose(sg.d_logistic_loss(real, fake), expected)
    assert torch.allclose(sg.g_nonsaturating_loss(fake), -torch.log(torch.sigmoid(fake)).mean())

    x = torch.randn(4, 3, 16, 16, requires_grad=True)
    flat = x.sum(dim=(1, 2, 3), keepdim=True)[:, :1] * 0 + 1.0
    assert sg.d_r1_loss(flat, x).item() == 0
    torch.manual_seed(0)
    D = sg.Discriminator(16, channels=8)
    r1 = sg.d_r1_loss(D(x), x)
    assert r1.item() > 0 and r1.requires_grad
    r1.backward()
    assert D.convs[0][0].weight.grad is not None

    G = sg.Generator(16, style_dim=16, n_mlp=1, channels=8)
    img, latents = G([torch.randn(3, 16)], return_latents=True)
    penalty, mean, lengths = sg.g_path_length_loss(img, latents, 0.0)
    assert lengths.shape == (3,) and torch.isfinite(penalty) and torch.isfinite(mean)
    assert torch.allclose(mean, 0.01 * lengths.mean().detach()) and not mean.requires_grad
    penalty.backward()


# ---------------------------------------------------------------------------------------------- 8. ADA


def test_adaptive_augment():
    x = torch.rand(6, 3, 16, 16) * 2 - 1
    assert sg.AdaptiveAugment(p=0.0).augment(x) is x
    xg = x.clone().requires_grad_(True)
    out = sg.AdaptiveAugment(p=1.0).augment(xg)
    assert out.shape == x.shape and not torch.allclose(out, x)
    out.square().sum().backward()
    assert xg.grad is not None and xg.grad.abs().sum() > 0
    torch.manual_seed(0)
    half = sg.AdaptiveAugment(p=0.5).augment(x)
    assert half.shape == x.shape

    ada = sg.AdaptiveAugment(p=0.5, ada_length=1000, interval=4)
    for _ in range(3):
        assert ada.update(torch.ones(8, 1)) == 0.5  # not yet: every 4 calls
    assert ada.update(torch.ones(8, 1)) == pytest.approx(0.5 + 32 / 1000)
    for _ in range(8):
        ada.update(-torch.ones(8, 1))
    assert ada.p == pytest.approx(0.5 - 32 / 1000)
    ada = sg.AdaptiveAugment(p=0.0, ada_length=10)
    for _ in range(4):
        ada.update(-torch.ones(8, 1))
    assert ada.p == 0.0


# ---------------------------------------------------------------------------------------------- 9. freezing


def test_freeze_helpers_match_exact_indices():
    G = small_G()
    names = sg.freeze_generator_layers(G, 1)
    expected = {f"{m}.{p}" for m in ("convs.4", "convs.5")
                for p in ("conv.weight", "conv.modulation.weight", "conv.modulation.bias", "noise.weight", "activate.bias")}
    expected |= {"to_rgbs.2.conv.weight", "to_rgbs.2.conv.modulation.weight", "to_rgbs.2.conv.modulation.bias", "to_rgbs.2.bias"}
    assert set(names) == expected
    assert {n for n, p in G.named_parameters() if p.requires_grad} == expected
    assert set(sg.freeze_generator_layers(G, 4)) == {n for n in dict(G.named_parameters()) if not n.startswith("style.")}

    with torch.device("meta"):
        G256, D256 = sg.Generator(256), sg.Discriminator(256)
    top = {n.split(".")[0] + "." + n.split(".")[1] for n in sg.freeze_generator_layers(G256, 1)}
    assert top == {"convs.10", "convs.11", "to_rgbs.5"}
    five = {".".join(n.split(".")[:2]) for n in sg.freeze_generator_layers(G256, 5)}
    assert five == {f"convs.{i}" for i in range(2, 12)} | {f"to_rgbs.{k}" for k in range(1, 6)}
    assert not G256.convs[1].conv.weight.requires_grad and G256.convs[11].conv.weight.requires_grad

    d = sg.freeze_discriminator_blocks(D256, 2)
    assert {".".join(n.split(".")[:2]) for n in d} == {"convs.5", "convs.6", "final_conv.0", "final_conv.1",
                                                        "final_linear.0", "final_linear.1"}
    assert {n.split(".")[0] for n in sg.freeze_discriminator_blocks(D256, 0)} == {"final_conv", "final_linear"}


# ---------------------------------------------------------------------------------------------- 10. layer swapping


def test_blend_generators_takes_each_resolution_from_the_right_model():
    low, high = small_G(), small_G()
    table = generator_table(32, 32, 2, channels=SMALL["channels"])
    low.load_state_dict(random_state(table, 1))  # every tensor differs between the two (the biases too)
    high.load_state_dict(random_state(table, 2))
    z = torch.randn(2, 32)
    with torch.no_grad():
        top = sg.blend_generators(low, high, 32, mapping_from="low")
        assert torch.equal(top([z], randomize_noise=False)[0], low([z], randomize_noise=False)[0])
        w = high.get_latent(z)
        none = sg.blend_generators(low, high, 2)
        assert torch.equal(none([w], input_is_latent=True, randomize_noise=False)[0],
                           high([w], input_is_latent=True, randomize_noise=False)[0])
    blend = sg.blend_generators(low, high, 8, mapping_from="high")
    state, lo, hi = blend.state_dict(), low.state_dict(), high.state_dict()
    for key in ("input.input", "conv1.conv.weight", "to_rgb1.bias", "convs.0.conv.weight", "convs.1.activate.bias",
                "to_rgbs.0.conv.weight", "noises.noise_2"):
        assert torch.equal(state[key], lo[key]) and not torch.equal(state[key], hi[key]), key
    for key in ("style.1.weight", "convs.2.conv.weight", "convs.5.conv.weight", "to_rgbs.1.bias",
                "to_rgbs.2.conv.weight", "noises.noise_3"):
        assert torch.equal(state[key], hi[key]) and not torch.equal(state[key], lo[key]), key
    assert torch.equal(sg.blend_generators(low, high, 8, mapping_from="low").style[1].weight, low.style[1].weight)
    four = sg.blend_generators(low, high, 4).state_dict()
    assert torch.equal(four["conv1.conv.weight"], lo["conv1.conv.weight"]) and torch.equal(four["noises.noise_0"], lo["noises.noise_0"])
    assert torch.equal(four["convs.0.conv.weight"], hi["convs.0.conv.weight"]) and torch.equal(four["noises.noise_1"], hi["noises.noise_1"])
    with pytest.raises(ValueError):
        sg.blend_generators(low, sg.Generator(16, **SMALL), 8)


# ---------------------------------------------------------------------------------------------- 11. training


def test_one_training_step_changes_both_networks():
    torch.manual_seed(0)
    G = sg.Generator(16, style_dim=16, n_mlp=2, channels=16)
    D = sg.Discriminator(16, channels=16)
    opt_g = torch.optim.Adam(G.parameters(), lr=0.002, betas=(0.0, 0.99))
    opt_d = torch.optim.Adam(D.parameters(), lr=0.002, betas=(0.0, 0.99))
    real = torch.rand(4, 3, 16, 16) * 2 - 1
    g0 = {k: v.clone() for k, v in G.state_dict().items()}
    d0 = {k: v.clone() for k, v in D.state_dict().items()}

    sg.requires_grad(G, False)
    sg.requires_grad(D, True)
    fake, _ = G([torch.randn(4, 16)])
    d_loss = sg.d_logistic_loss(D(real), D(fake))
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()
    sg.requires_grad(G, True)
    sg.requires_grad(D, False)
    fake, _ = G([torch.randn(4, 16)])
    g_loss = sg.g_nonsaturating_loss(D(fake))
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()

    assert math.isfinite(d_loss.item()) and math.isfinite(g_loss.item())
    assert not torch.equal(D.state_dict()["final_linear.1.weight"], d0["final_linear.1.weight"])
    assert not torch.equal(G.state_dict()["style.1.weight"], g0["style.1.weight"])
    assert not torch.equal(G.state_dict()["convs.1.conv.weight"], g0["convs.1.conv.weight"])
    assert torch.equal(G.state_dict()["noises.noise_0"], g0["noises.noise_0"])
    assert F.mse_loss(G([torch.randn(2, 16)])[0], torch.zeros(2, 3, 16, 16)).isfinite()


def test_training_ema_serves_as_the_generator_ema():
    """anime_lib.training.EMA with the paper's decay (half-life 10k images at batch 32) keeps a rosinality g_ema."""
    from anime_lib.training import EMA

    G = sg.Generator(16, style_dim=16, n_mlp=1, channels=8)
    ema = EMA(G, decay=0.5 ** (32 / 10_000))
    with torch.no_grad():
        for p in G.parameters():
            p.add_(1.0)
    ema.update(G)
    moved = ema.module.conv1.conv.weight - (G.conv1.conv.weight.detach() - 1.0)
    assert torch.allclose(moved, torch.full_like(moved, 1 - ema.decay), atol=1e-5)
    assert set(ema.module.state_dict()) == set(G.state_dict())  # saved as g_ema, it loads with strict=True
