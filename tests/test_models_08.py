"""Tests for anime_lib.models.animegan (lesson 08): the published generator layout (strict loading of a file with
the port's names and shapes, served from 127.0.0.1), the losses, the step, freezing, the recipe, and the lesson's
Colab cell for the public weights, online (a local server) and offline."""
from __future__ import annotations

import functools
import http.server
import threading
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from anime_lib import pretrained as pt
from anime_lib.data.download import sha256_of
from anime_lib.losses import gram_matrix, rgb_to_yuv, total_variation
from anime_lib.models import animegan as ag
from anime_lib.models.blocks import count_parameters
from anime_lib.translation import Translator, translate_set
from notebook_cells import notebook_namespace

NOTEBOOK = "08_animeganv2.ipynb"

#: The state_dict of the PyTorch port's Generator (bryandlee/animegan2-pytorch, model.py), the format of the public
#: face_paint_512_v2 / face_paint_512_v1 / celeba_distill / paprika weights: every key and shape, in order.
PUBLISHED_STATE = """
block_a.0.1.weight             32 3 7 7
block_a.0.2.weight             32
block_a.0.2.bias               32
block_a.1.1.weight             64 32 3 3
block_a.1.2.weight             64
block_a.1.2.bias               64
block_a.2.1.weight             64 64 3 3
block_a.2.2.weight             64
block_a.2.2.bias               64
block_b.0.1.weight             128 64 3 3
block_b.0.2.weight             128
block_b.0.2.bias               128
block_b.1.1.weight             128 128 3 3
block_b.1.2.weight             128
block_b.1.2.bias               128
block_c.0.1.weight             128 128 3 3
block_c.0.2.weight             128
block_c.0.2.bias               128
block_c.1.layers.0.1.weight    256 128 1 1
block_c.1.layers.0.2.weight    256
block_c.1.layers.0.2.bias      256
block_c.1.layers.1.1.weight    256 1 3 3
block_c.1.layers.1.1.bias      256
block_c.1.layers.1.2.weight    256
block_c.1.layers.1.2.bias      256
block_c.1.layers.2.weight      256 256 1 1
block_c.1.layers.3.weight      256
block_c.1.layers.3.bias        256
block_c.2.layers.0.1.weight    512 256 1 1
block_c.2.layers.0.2.weight    512
block_c.2.layers.0.2.bias      512
block_c.2.layers.1.1.weight    512 1 3 3
block_c.2.layers.1.1.bias      512
block_c.2.layers.1.2.weight    512
block_c.2.layers.1.2.bias      512
block_c.2.layers.2.weight      256 512 1 1
block_c.2.layers.3.weight      256
block_c.2.layers.3.bias        256
block_c.3.layers.0.1.weight    512 256 1 1
block_c.3.layers.0.2.weight    512
block_c.3.layers.0.2.bias      512
block_c.3.layers.1.1.weight    512 1 3 3
block_c.3.layers.1.1.bias      512
block_c.3.layers.1.2.weight    512
block_c.3.layers.1.2.bias      512
block_c.3.layers.2.weight      256 512 1 1
block_c.3.layers.3.weight      256
block_c.3.layers.3.bias        256
block_c.4.layers.0.1.weight    512 256 1 1
block_c.4.layers.0.2.weight    512
block_c.4.layers.0.2.bias      512
block_c.4.layers.1.1.weight    512 1 3 3
block_c.4.layers.1.1.bias      512
block_c.4.layers.1.2.weight    512
block_c.4.layers.1.2.bias      512
block_c.4.layers.2.weight      256 512 1 1
block_c.4.layers.3.weight      256
block_c.4.layers.3.bias        256
block_c.5.1.weight             128 256 3 3
block_c.5.2.weight             128
block_c.5.2.bias               128
block_d.0.1.weight             128 128 3 3
block_d.0.2.weight             128
block_d.0.2.bias               128
block_d.1.1.weight             128 128 3 3
block_d.1.2.weight             128
block_d.1.2.bias               128
block_e.0.1.weight             64 128 3 3
block_e.0.2.weight             64
block_e.0.2.bias               64
block_e.1.1.weight             64 64 3 3
block_e.1.2.weight             64
block_e.1.2.bias               64
block_e.2.1.weight             32 64 7 7
block_e.2.2.weight             32
block_e.2.2.bias               32
out_layer.0.weight             3 32 1 1
"""
PUBLISHED = [(line.split()[0], tuple(int(v) for v in line.split()[1:])) for line in PUBLISHED_STATE.strip().splitlines()]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def served(tmp_path, monkeypatch):
    """A folder served on 127.0.0.1 (the only network the tests use) and a fresh weights cache."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("ANIME_LIB_CACHE", str(tmp_path / "cache"))
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _published_state_dict(seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(shape, generator=g) * 0.05 for k, shape in PUBLISHED}


def _register(monkeypatch, name: str, url: str, path=None, pinned: bool = False) -> pt.WeightsFile:
    entry = pt.WeightsFile(f"animegan2/{name}", "a test file in the published format",
                           size=None if pinned else path.stat().st_size, sha256=None if pinned else sha256_of(path),
                           url=url, min_size=1000 if pinned else None)
    monkeypatch.setitem(pt.WEIGHTS, entry.name, entry)
    return entry


def _images(n: int, size: int) -> torch.Tensor:
    return torch.rand(n, 3, size, size) * 2 - 1


# ----------------------------------------------------------------------------------------- the published layout


def test_the_generator_has_exactly_the_published_names_and_shapes():
    state = ag.Generator().state_dict()
    assert [(k, tuple(v.shape)) for k, v in state.items()] == PUBLISHED
    n = sum(torch.Size(shape).numel() for _, shape in PUBLISHED)
    assert count_parameters(ag.Generator()) == n == 2_143_552  # "about 2.14 M parameters", 8.6 MB in float32


def test_a_file_in_the_published_format_loads_strictly(tmp_path):
    path = tmp_path / "face_paint_512_v2.pt"
    torch.save(_published_state_dict(), path)
    state = pt.load_weights_file(path)  # weights_only=True
    G = ag.Generator()
    G.load_state_dict(state, strict=True)
    assert all(torch.equal(G.state_dict()[k], v) for k, v in state.items())
    x = _images(1, 32)
    assert G.eval()(x).shape == x.shape
    with pytest.raises(RuntimeError, match="Unexpected key"):  # one key too many: strict loading refuses it
        ag.Generator().load_state_dict({**state, "block_f.0.weight": torch.zeros(1)}, strict=True)
    with pytest.raises(RuntimeError, match="size mismatch"):  # a narrower variant is another layout
        ag.Generator().load_state_dict(ag.Generator(0.5).state_dict(), strict=True)


def test_the_public_weights_are_registered_with_their_urls():
    assert ag.PUBLIC_WEIGHTS == ("face_paint_512_v2", "face_paint_512_v1", "celeba_distill", "paprika")
    for name in ag.PUBLIC_WEIGHTS:
        entry = pt.WEIGHTS[f"animegan2/{name}"]
        assert entry.url == f"https://github.com/bryandlee/animegan2-pytorch/raw/main/weights/{name}.pt"
        assert entry.min_size == 4 * 2_143_552  # every float32 parameter: a smaller file is truncated
    assert "pinned at first download" in pt.describe()


def test_load_public_generator_downloads_verifies_and_loads(served, monkeypatch):
    root, url = served
    state = _published_state_dict()
    torch.save(state, root / "paint.pt")
    _register(monkeypatch, "paint", f"{url}/paint.pt", root / "paint.pt")
    G = ag.load_public_generator("paint")
    assert not G.training and all(torch.equal(G.state_dict()[k], v) for k, v in state.items())
    cached = pt.cache_dir() / "weights" / "paint.pt"
    data = cached.read_bytes()
    cached.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))  # changed after the download: named, never used
    with pytest.raises(pt.WeightsError, match="sha256"):
        ag.load_public_generator("paint")


def test_a_file_of_another_layout_is_refused_by_name(served, monkeypatch):
    root, url = served
    torch.save(ag.Generator(0.5).state_dict(), root / "narrow.pt")
    _register(monkeypatch, "narrow", f"{url}/narrow.pt", root / "narrow.pt")
    with pytest.raises(pt.WeightsError, match="do not fit the generator's layout"):
        ag.load_public_generator("narrow")


def test_weights_without_a_published_hash_are_pinned_at_the_first_download(served, monkeypatch, capsys):
    root, url = served
    torch.save(_published_state_dict(), root / "unpinned.pt")
    _register(monkeypatch, "unpinned", f"{url}/unpinned.pt", pinned=True)
    ag.load_public_generator("unpinned")
    cached = pt.cache_dir() / "weights" / "unpinned.pt"
    pin = cached.with_name("unpinned.pt.pin").read_text().split()
    assert pin == [str(cached.stat().st_size), sha256_of(cached)] and "pinned this download" in capsys.readouterr().out
    ag.load_public_generator("unpinned")  # checked against the pin, no new download
    cached.write_bytes(b"\0" * cached.stat().st_size)
    with pytest.raises(pt.WeightsError, match="its pin"):
        pt.weights_path("animegan2/unpinned")
    cached.with_name("unpinned.pt.pin").unlink()  # a file put there by hand, without a pin, cannot be checked
    with pytest.raises(pt.WeightsError, match="no pin"):
        pt.weights_path("animegan2/unpinned")


def test_a_short_download_of_unpinned_weights_is_refused(served, monkeypatch):
    root, url = served
    (root / "short.pt").write_bytes(b"PK" + b"\0" * 100)
    _register(monkeypatch, "short", f"{url}/short.pt", pinned=True)
    with pytest.raises(pt.WeightsError, match="too small|truncated"):
        pt.weights_path("animegan2/short")


# ----------------------------------------------------------------------------------------- the lesson's Colab cell


def _colab_cell(tmp_path, name: str, download: bool = True) -> dict:
    P = SimpleNamespace(PROFILE="cpu", DOWNLOAD_WEIGHTS=download, PUBLIC_MODEL=name, PHOTO=None, PHOTO_SIZE=64)
    return notebook_namespace(NOTEBOOK, "public-weights", preset={"P": P, "OUT": tmp_path})


def test_the_colab_cell_downloads_the_public_weights_and_paints_the_sample_photos(served, monkeypatch, tmp_path, capsys):
    root, url = served
    state = _published_state_dict()
    torch.save(state, root / "face_paint_test.pt")
    _register(monkeypatch, "face_paint_test", f"{url}/face_paint_test.pt", root / "face_paint_test.pt")
    ns = _colab_cell(tmp_path, "face_paint_test")
    assert all(torch.equal(ns["public_G"].state_dict()[k].cpu(), v) for k, v in state.items())
    assert list(ns["samples"]) == ["astronaut (scikit-image)", "Grace Hopper (matplotlib)"]
    assert ns["faces"].shape == ns["painted"].shape == (2, 3, 64, 64)
    expected = translate_set(ns["public_G"], ns["faces"], batch=2)
    assert torch.allclose(ns["painted"], expected, atol=1e-5)
    assert (tmp_path / "public_weights.png").exists() and "painted in" in capsys.readouterr().out


def test_the_colab_cell_offline_says_so_and_the_lesson_goes_on(served, monkeypatch, tmp_path, capsys):
    _, url = served
    closed = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    port = closed.server_address[1]
    closed.server_close()  # nothing listens there any more: like a machine without network
    _register(monkeypatch, "offline", f"http://127.0.0.1:{port}/offline.pt", pinned=True)
    ns = _colab_cell(tmp_path, "offline")
    out = capsys.readouterr().out
    assert ns["public_G"] is None and "could not be loaded here" in out and "the lesson goes on" in out
    assert "Could not reach" in out
    ns = _colab_cell(tmp_path, "face_paint_512_v2", download=False)  # the smoke profile never tries
    assert ns["public_G"] is None and "DOWNLOAD_WEIGHTS is off" in capsys.readouterr().out


# ----------------------------------------------------------------------------------------- networks


@pytest.mark.parametrize("width,size", [(1.0, 32), (0.25, 64), (0.25, 48), (0.125, 30)])
def test_generator_keeps_the_shape_and_outputs_minus_one_to_one(width, size):
    G = ag.Generator(width)
    x = _images(2, size)
    y = G(x)
    assert y.shape == x.shape and float(y.detach().abs().max()) <= 1


def test_generator_refuses_odd_sides_and_resizes_back_to_the_input():
    G = ag.Generator(0.125)
    with pytest.raises(ValueError, match="even"):
        G(_images(1, 31))
    assert G(torch.rand(1, 3, 36, 52) * 2 - 1).shape == (1, 3, 36, 52)


def test_generator_units_follow_the_port():
    unit = ag.ConvNormLReLU(4, 8, stride=2, padding=(0, 1, 0, 1))
    kinds = [type(m) for m in unit]
    assert kinds == [nn.ReflectionPad2d, nn.Conv2d, nn.GroupNorm, nn.LeakyReLU]
    assert unit[1].bias is None and unit[2].num_groups == 1 and unit[3].negative_slope == 0.2
    assert unit(torch.zeros(1, 4, 16, 16)).shape == (1, 8, 8, 8)
    block = ag.InvertedResBlock(8, 8)
    depthwise = block.layers[1][1]
    assert depthwise.groups == 16 and depthwise.bias is not None and block.use_skip
    assert not ag.InvertedResBlock(8, 16).use_skip
    x = torch.randn(2, 8, 6, 6)
    assert torch.allclose(block(x), x + block.layers(x))


@pytest.mark.parametrize("size,n_layers", [(32, 1), (32, 2), (64, 3), (256, 3)])
def test_discriminator_patch_logits_and_spectral_norm(size, n_layers):
    D = ag.Discriminator(ndf=8, n_layers=n_layers)
    out = D(_images(2, size))
    side = size // 2 ** (n_layers - 1)
    assert out.shape == (2, 1, side, side)
    convs = [m for m in D.modules() if isinstance(m, nn.Conv2d)]
    assert all(hasattr(m, "parametrizations") and m.bias is None for m in convs)


def test_paper_discriminator_channels():
    D = ag.Discriminator(64, 3)
    convs = [(m.in_channels, m.out_channels, m.stride[0]) for m in D.modules() if isinstance(m, nn.Conv2d)]
    assert convs == [(3, 32, 1), (32, 64, 2), (64, 128, 1), (128, 128, 2), (128, 256, 1), (256, 256, 1), (256, 1, 1)]


def test_animegan_translates_human_to_anime_only():
    model = ag.AnimeGAN(0.125, 8, 2)
    assert isinstance(model, Translator) and model.directions == ("human->anime",)
    x = _images(3, 16)
    assert torch.equal(model.eval().translate(x, "human->anime"), model.G(x))
    with pytest.raises(ValueError, match="translates"):
        model.translate(x, "anime->human")


# ----------------------------------------------------------------------------------------- losses


def test_greyscale_gram_yuv_and_tv():
    x = _images(2, 8)
    grey = ag.greyscale(x)
    assert grey.shape == x.shape and torch.equal(grey[:, 0], grey[:, 1]) and torch.equal(grey[:, 1], grey[:, 2])
    white = torch.ones(1, 3, 4, 4)
    assert torch.allclose(ag.greyscale(white), white, atol=1e-6)
    yuv = rgb_to_yuv(white)  # white: full brightness, no colour
    assert torch.allclose(yuv[:, 0], torch.ones(1, 4, 4), atol=1e-5) and float(yuv[:, 1:].abs().max()) < 1e-5
    red = torch.tensor([1.0, -1.0, -1.0]).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    assert float(rgb_to_yuv(red)[0, 2, 0, 0]) == pytest.approx(0.61497538, abs=1e-6)  # V: red minus brightness
    f = torch.randn(2, 5, 3, 4)
    g = gram_matrix(f)
    assert g.shape == (2, 5, 5) and torch.allclose(g, g.transpose(1, 2))
    assert torch.allclose(g[0], f[0].reshape(5, 12) @ f[0].reshape(5, 12).T / 60)
    assert torch.allclose(gram_matrix(f[:, :, torch.randperm(3)]), g, atol=1e-6)  # positions forgotten
    assert float(total_variation(torch.full((1, 3, 5, 5), 0.3))) == 0
    assert float(total_variation(torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]]))) == pytest.approx(1.0)


def test_content_style_and_colour_losses_vanish_on_their_targets():
    features = nn.Conv2d(3, 4, 3).requires_grad_(False)
    x, a = _images(2, 8), _images(2, 8)
    assert float(ag.content_loss(features, x, x)) == 0
    assert float(ag.style_loss(features, ag.greyscale(a), ag.greyscale(a))) == 0
    assert float(ag.colour_loss(x, x)) == 0
    assert float(ag.colour_loss(x, ag.greyscale(x))) > 0  # greyscale loses U and V


def test_objectives_are_the_weighted_sums_of_their_terms():
    model, features = ag.AnimeGAN(0.125, 8, 2), nn.Conv2d(3, 4, 3)
    w = ag.LossWeights(adv=2.0, content=3.0, style=5.0, colour=7.0, tv=11.0)
    photo, anime = _images(2, 16), _images(2, 16)
    grey, smooth = ag.greyscale(anime), ag.greyscale(anime).flip(-1)
    t = ag.generator_objective(model.eval(), features, photo, grey, w)
    want = 2 * t["G_adv"] + 3 * t["content"] + 5 * t["style"] + 7 * t["colour"] + 11 * t["tv"]
    assert float(t["total"]) == pytest.approx(float(want), rel=1e-6)
    fake = model.G(photo)
    d = ag.discriminator_objective(model.D, anime, fake, grey, smooth, w)
    sq = lambda x, y: float(((model.D(x) - y) ** 2).mean())  # noqa: E731
    assert float(d) == pytest.approx(2 * (1.7 * sq(anime, 1) + 1.7 * sq(fake, 0) + 1.7 * sq(grey, 0) + sq(smooth, 0)), rel=1e-5)
    assert ag.LossWeights() == ag.LossWeights(300.0, 1.5, 2.5, 10.0, 1.0, 1.7, 1.7, 1.7, 1.0)  # the paper's


def test_anime_targets_are_greyscale_and_edge_smoothed():
    size = 32
    anime = _images(4, size)
    grey, smooth = ag.anime_targets(anime, kernel=3, batch=3)
    assert grey.shape == smooth.shape == anime.shape
    assert torch.equal(grey, ag.greyscale(anime)) and torch.equal(smooth[:, 0], smooth[:, 2])
    assert 0 < float((smooth != grey).float().mean()) < 1  # only near edges


# ----------------------------------------------------------------------------------------- steps, freezing, recipe


def _optimisers(model, g_lr=1e-3, d_lr=1e-3):
    return (torch.optim.Adam(model.G.parameters(), lr=g_lr, betas=(0.5, 0.999)),
            torch.optim.Adam(model.D.parameters(), lr=d_lr, betas=(0.5, 0.999)))


def test_one_step_updates_g_and_d_and_unfreezes_d():
    model, features = ag.AnimeGAN(0.125, 8, 2), nn.Conv2d(3, 4, 3).requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    anime = _images(2, 16)
    losses = ag.train_step(model, _images(2, 16), anime, *ag.anime_targets(anime, 3), *_optimisers(model), features)
    assert set(losses) == {"G_adv", "content", "style", "colour", "tv", "D"}
    for net in ("G", "D"):
        assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items() if k.startswith(net + ".")), net
    assert all(p.requires_grad for p in model.D.parameters())


def test_the_generator_update_leaves_d_alone():
    model, features = ag.AnimeGAN(0.125, 8, 2), nn.Conv2d(3, 4, 3).requires_grad_(False)
    opt_G, opt_D = _optimisers(model)
    seen = {}
    opt_D.register_step_post_hook(lambda *_: seen.update(d_grads=[p.grad.clone() for p in model.D.parameters()]))
    opt_G.register_step_pre_hook(lambda *_: seen.update(frozen=[not p.requires_grad for p in model.D.parameters()]))
    anime = _images(2, 16)
    ag.train_step(model, _images(2, 16), anime, ag.greyscale(anime), ag.greyscale(anime), opt_G, opt_D, features)
    assert all(seen["frozen"])  # D was frozen while G's loss ran through it ...
    assert all(torch.equal(p.grad, g) for p, g in zip(model.D.parameters(), seen["d_grads"]))  # ... and kept D's grads


def test_init_step_trains_g_only_on_content():
    G, features = ag.Generator(0.125), nn.Conv2d(3, 4, 3).requires_grad_(False)
    opt = torch.optim.Adam(G.parameters(), lr=1e-2)
    x = _images(4, 16)
    first = ag.init_step(G, x, opt, features)["init_content"]
    for _ in range(10):
        last = ag.init_step(G, x, opt, features)["init_content"]
    assert last < first


def test_freeze_keeps_the_named_blocks_fixed_through_steps():
    model, features = ag.AnimeGAN(0.125, 8, 2), nn.Conv2d(3, 4, 3).requires_grad_(False)
    params = ag.freeze(model.G, ["block_a", "block_b"])
    assert len(params) == sum(1 for n, _ in model.G.named_parameters() if not n.startswith(("block_a", "block_b")))
    frozen = {k: v.clone() for k, v in model.G.state_dict().items() if k.startswith(("block_a", "block_b"))}
    opt_G = torch.optim.Adam(params, lr=1e-2)
    opt_D = torch.optim.Adam(model.D.parameters(), lr=1e-2)
    anime = _images(2, 16)
    for _ in range(2):
        ag.train_step(model, _images(2, 16), anime, ag.greyscale(anime), ag.greyscale(anime), opt_G, opt_D, features)
    assert all(torch.equal(model.G.state_dict()[k], v) for k, v in frozen.items())
    with pytest.raises(ValueError, match="unknown generator blocks"):
        ag.freeze(model.G, ["block_z"])
    ag.freeze(model.G, [])
    assert all(p.requires_grad for p in model.G.parameters())


def test_recipe_from_params_finetuned_and_config():
    P = SimpleNamespace(WIDTH=0.25, NDF=16, N_LAYERS_D=2, FEATURES="probe", ADV_WEIGHT=10.0, G_LR=2e-4, D_LR=4e-4,
                        IMG_SIZE=32, BATCH_SIZE=4, EDGE_KERNEL=3)
    r = ag.Recipe.from_params(P)
    assert (r.width, r.ndf, r.adv_weight, r.g_lr, r.con_weight, r.start, r.freeze) == (0.25, 16, 10.0, 2e-4, 1.5, "init", ())
    ft = r.finetuned("init", ["block_a", "block_b"], 0.1)
    assert ft.freeze == ("block_a", "block_b") and ft.g_lr == pytest.approx(2e-5) and ft.d_lr == pytest.approx(4e-5)
    assert ft.config()["freeze"] == ["block_a", "block_b"] and ft.config(dataset="x")["dataset"] == "x"
    assert r.weights() == ag.LossWeights(adv=10.0)
    paper = ag.Recipe()
    assert (paper.adv_weight, paper.g_lr, paper.d_lr, paper.init_lr, paper.batch_size, paper.width) == (300.0, 2e-5, 4e-5, 2e-4, 12, 1.0)
    gpu = ag.PROFILE_DEFAULTS["gpu"]
    assert gpu["WIDTH"] == 1.0 and gpu["ADV_WEIGHT"] == 300.0 and gpu["FEATURES"] == "vgg19" and gpu["G_LR"] == 2e-4


def test_fit_runs_both_phases_resumably(tmp_path):
    from anime_lib.training import Run

    recipe = ag.Recipe(img_size=16, batch_size=2, width=0.125, ndf=8, n_layers_d=2, features="probe", adv_weight=10.0,
                       g_lr=1e-3, d_lr=1e-3, edge_kernel=3)
    features = nn.Conv2d(3, 4, 3).requires_grad_(False)
    photos, anime = _images(6, 16), _images(6, 16)
    targets = ag.anime_targets(anime, 3)
    G, init = ag.fit_init(Run("init", tmp_path, recipe.config(), seed=0), recipe, photos, 3, features, checkpoint_every=2)
    assert init.steps_done == 3 and "init_content" in init.history.as_dict()

    def train(n, folder):
        run = Run("gan", folder, recipe.config(), seed=0)
        return ag.fit(run, recipe, photos, anime, targets, n, features, start=G.state_dict(), checkpoint_every=2)

    whole, _ = train(4, tmp_path / "a")
    train(4, tmp_path / "b")
    (tmp_path / "b" / "checkpoints" / "gan" / "ckpt_0000004.pt").unlink()  # as if it had stopped after step 2
    resumed, result = train(4, tmp_path / "b")
    assert result.resumed_from == 2
    for k, v in whole.state_dict().items():
        assert torch.allclose(resumed.state_dict()[k], v, atol=1e-6), k
