"""StyleGAN2's training recipe (anime_lib.models.stylegan2_training) and the ``pretrain stylegan2`` command: one step
moves G, D and the EMA, the lazy regularisers run on their steps only, ADA's p moves, Adam gets the lazy
correction, fit resumes exactly, two torchrun processes (gloo) end with identical replicas and one set of
checkpoints, and the single-process command measures and exports into a redirected folder. Tiny models only."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from anime_lib import machine_speed
from anime_lib import pretrain as ptr
from anime_lib.models import stylegan2 as sg
from anime_lib.models import stylegan2_training as st
from anime_lib.training import EMA, Run

ROOT = Path(__file__).resolve().parents[1]


def _recipe(**kw) -> st.Recipe:
    return st.Recipe(**{"size": 16, "channels": 8, "style_dim": 16, "n_mlp": 2, "batch": 4, **kw})


def _images(n: int = 32, size: int = 16) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(3)) * 2 - 1


def _setup(recipe: st.Recipe, decay: float | None = None):
    torch.manual_seed(0)
    G, D = recipe.build()
    ema = EMA(G, recipe.ema_decay() if decay is None else decay)
    opt_G, opt_D = recipe.optimisers(G, D)
    return G, D, ema, opt_G, opt_D, st.new_state(recipe)


def _copy(m: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in m.state_dict().items()}


def _changed(before: dict, m: torch.nn.Module) -> bool:
    return any(not torch.equal(before[k], v) for k, v in m.state_dict().items())


def test_a_step_moves_G_D_and_the_ema_and_the_regularisers_run_on_their_lazy_steps_only():
    recipe = _recipe()
    G, D, ema, opt_G, opt_D, state = _setup(recipe, decay=0.5)
    real = _images(4)
    before = [_copy(m) for m in (G, D, ema.module)]
    seen = []
    for step in range(17):
        out = st.train_step(G, D, ema, opt_G, opt_D, real, step, recipe, state)
        if step == 0:
            assert all(_changed(b, m) for b, m in zip(before, (G, D, ema.module)))
            assert state["mean_path_length"] > 0
        assert set(out) == {"d_loss", "g_loss", "r1", "path_length", "ada_p", "real_score", "fake_score"}
        assert all(isinstance(out[k], float) for k in ("d_loss", "g_loss", "ada_p", "real_score", "fake_score"))
        seen.append(out)
    assert [s for s, o in enumerate(seen) if o["r1"] is not None] == [0, 16]
    assert [s for s, o in enumerate(seen) if o["path_length"] is not None] == [0, 4, 8, 12, 16]
    assert all(o["ada_p"] == 0.0 for o in seen)  # augment off: p stays
    # after a step every parameter that trains still requires grad (the step froze each network in turn)
    assert all(p.requires_grad for p in [*G.parameters(), *D.parameters()])


def test_ada_moves_p_and_freezed_parameters_stay_frozen():
    recipe = _recipe(augment=True, ada_every=1, ada_length=40)
    G, D, ema, _, _, state = _setup(recipe)
    sg.freeze_discriminator_blocks(D, 1)
    opt_G, opt_D = recipe.optimisers(G, D)
    frozen = {k: v.clone() for k, v in D.convs[0].state_dict().items()}
    state["ada"]["p"] = 0.5
    out = st.train_step(G, D, ema, opt_G, opt_D, _images(4), 1, recipe, state)
    assert out["ada_p"] == state["ada"]["p"] != 0.5 and abs(out["ada_p"] - 0.5) == pytest.approx(0.1)  # 4 images / 40
    assert all(torch.equal(v, D.convs[0].state_dict()[k]) for k, v in frozen.items())
    assert not any(p.requires_grad for p in D.convs[0].parameters())


def test_the_optimisers_carry_the_lazy_regularisation_correction():
    recipe = _recipe()
    G, D = recipe.build()
    opt_G, opt_D = recipe.optimisers(G, D)
    for opt, c in ((opt_G, 4 / 5), (opt_D, 16 / 17)):
        group = opt.param_groups[0]
        assert group["lr"] == pytest.approx(0.002 * c)
        assert group["betas"] == pytest.approx((0.0, 0.99 ** c))
    assert recipe.ema_decay() == pytest.approx(0.5 ** (4 / 10_000))
    assert recipe.ema_decay(world_size=2) == pytest.approx(0.5 ** (8 / 10_000))


def test_fit_resumes_exactly(tmp_path):
    recipe = _recipe(augment=True, ada_every=1, ada_length=40, ada_target=-2.0)  # p climbs: augmentations run
    images = _images()

    def fit(n_steps: int):
        run = Run("sg2", tmp_path, recipe.config(), seed=5, keep=None)
        G, D = recipe.build()
        return st.fit(run, G, D, images, n_steps, recipe, checkpoint_every=3, progress=False), run

    (g_full, result), run = fit(6)
    full = _copy(g_full)
    assert result.steps_done == 6 and result.resumed_from is None
    final = torch.load(run.folder / "ckpt_0000006.pt", weights_only=True)
    assert final["loop_state"]["ada"]["p"] > 0.3 and final["loop_state"]["mean_path_length"] > 0
    (run.folder / "ckpt_0000006.pt").unlink()  # "interrupted" after step 3
    (g_resumed, result), _ = fit(6)
    assert result.resumed_from == 3 and result.steps_done == 6
    for k, v in g_resumed.state_dict().items():
        assert torch.allclose(v, full[k], atol=1e-6, rtol=0), k
    again = torch.load(run.folder / "ckpt_0000006.pt", weights_only=True)
    assert again["loop_state"] == final["loop_state"]


def test_fit_refuses_a_time_budget_across_processes(tmp_path, monkeypatch):
    monkeypatch.setattr(st, "distributed", lambda: (0, 2))
    recipe = _recipe()
    G, D = recipe.build()
    with pytest.raises(ValueError, match="time budget"):
        st.fit(Run("sg2", tmp_path), G, D, _images(), 2, recipe, time_budget_s=10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


ARGS = ["stylegan2", "--domain", "human", "--size", "32", "--steps", "3", "--batch", "4", "--channels", "8",
        "--style-dim", "16", "--n-mlp", "2", "--n-train", "64", "--no-progress"]


def test_two_processes_average_their_gradients_and_rank_0_alone_writes(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
           "-m", "anime_lib.pretrain", *ARGS, "--n-eval", "0", "--out", str(tmp_path)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # each rank trained on its own batches and noise (stream and seed = rank): without averaged gradients the
    # replicas would differ; the command gathers every rank's digest of G after training
    found = re.search(r"2 process\(es\); G sha256 per rank: (\w+), (\w+)", proc.stdout)
    assert found, proc.stdout
    assert found.group(1) == found.group(2)
    ckpts = list((tmp_path / "09_stylegan2").rglob("*.pt"))
    assert [p.name for p in ckpts] == ["ckpt_0000003.pt"]
    state = torch.load(ckpts[0], weights_only=True)
    assert state["step"] == 3 and state["config"]["world_size"] == 2
    G = sg.Generator.from_state_dict(state["G"])
    assert st.module_digest(G) == found.group(1)


def test_the_single_process_command_measures_and_exports_where_told(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(machine_speed, "measure", lambda steps=20: machine_speed.MachineSpeed(0.1))
    out, weights = tmp_path / "runs", tmp_path / "weights"
    shipped_file = ptr.PACKAGE_ROOT / "weights" / ptr.stylegan2_shipment("human").filename
    package_mtime = shipped_file.stat().st_mtime_ns if shipped_file.exists() else None
    assert ptr.main([*ARGS, "--n-eval", "32", "--out", str(out), "--export", "--weights-dir", str(weights)]) == 0
    text = capsys.readouterr().out
    assert re.search(r"StyleGAN2 g_ema \(human\)\s+[-\d.]+\s+[-\d.]+\s+[-\d.]+", text), text
    assert re.search(r"real data \(human, test\)\s+[-\d.]+\s+[-\d.]+\s+[-\d.]+", text), text
    assert "toy_fid" in text and "diversity" in text
    assert (out / "09_stylegan2" / "checkpoints" / "stylegan2_human" / "ckpt_0000003.pt").exists()
    shipment = ptr.stylegan2_shipment("human")
    shipped = torch.load(weights / shipment.filename, weights_only=True)
    assert set(shipped) == {"step", "config", "history", "train_seconds", "g_ema", "G", "D", "loop_state"}
    assert all(t.dtype == torch.float16 for t in shipped["D"].values())
    entry = json.loads((weights / "shipped.json").read_text())["09_stylegan2/stylegan2_human/cpu"]
    assert entry["steps"] == 3 and entry["figures"][0]["toy_fid"] is not None
    G = sg.Generator.from_state_dict({k: v.float() for k, v in shipped["g_ema"]["module"].items()})
    assert G.size == 32 and G.style_dim == 16
    shipped_file = ptr.PACKAGE_ROOT / "weights" / shipment.filename  # the course's own file: untouched
    assert not shipped_file.exists() or shipped_file.stat().st_mtime_ns == package_mtime


def test_the_command_stops_at_its_time_budget_and_the_same_command_continues(tmp_path, capsys):
    args = [*ARGS, "--steps", "50", "--n-eval", "0", "--out", str(tmp_path), "--time-budget", "0",
            "--checkpoint-every", "1000"]
    assert ptr.main(args) == 0
    folder = tmp_path / "09_stylegan2" / "checkpoints" / "stylegan2_human"
    first = [p.name for p in folder.glob("*.pt")]
    assert first == ["ckpt_0000001.pt"], first  # a budget of 0 s: one step, then a checkpoint
    assert ptr.main(args) == 0
    assert sorted(p.name for p in folder.glob("*.pt"))[-1] == "ckpt_0000002.pt"  # resumed, not started over
    assert "resuming from step 1" in capsys.readouterr().out


def test_fit_runs_the_given_step_and_records_the_monitor_with_the_run(tmp_path):
    recipe = _recipe()
    calls = []

    def step(*args):
        calls.append(args[6])  # the step number
        return st.train_step(*args)

    def fit(n_steps):
        run = Run("sg2", tmp_path, recipe.config(), seed=5)
        G, D = recipe.build()
        state = st.new_state(recipe)
        st.fit(run, G, D, _images(), n_steps, recipe, step=step, state=state, progress=False, checkpoint_every=2,
               monitor=lambda g: {"mean": float(st.sample(g, 4, seed=0).mean()), "size": g.size},
               monitor_every=2)
        return state

    state = fit(5)
    assert calls == [0, 1, 2, 3, 4]
    assert state["monitor"]["step"] == [2, 4, 5] and state["monitor"]["size"] == [16.0] * 3
    saved = torch.load(tmp_path / "checkpoints" / "sg2" / "ckpt_0000005.pt", weights_only=True)
    assert saved["loop_state"]["monitor"] == state["monitor"]
    (tmp_path / "checkpoints" / "sg2" / "ckpt_0000005.pt").unlink()
    calls.clear()
    assert fit(5)["monitor"] == state["monitor"] and calls == [4]  # resumed at 4 with the log of steps 2 and 4
    with pytest.raises(ValueError, match="monitor_every"):
        G, D = recipe.build()
        st.fit(Run("x", tmp_path / "x"), G, D, _images(), 1, recipe, monitor=lambda g: {})


def test_fine_tune_freezes_per_variant_and_leaves_the_source_alone(tmp_path):
    recipe = _recipe(g_reg_every=0)
    torch.manual_seed(0)
    G0, D0 = recipe.build()
    source = (_copy(G0), _copy(D0))
    variant = st.Transfer("frozen", freeze_d=1, freeze_g=1)
    g, result = st.fine_tune(Run("t", tmp_path), G0, D0, _images(), 3, recipe, variant, progress=False)
    assert result.steps_done == 3 and not g.training
    assert not _changed(source[0], G0) and not _changed(source[1], D0)
    assert all(p.requires_grad for p in G0.parameters())  # the source's own flags are untouched too
    now = g.state_dict()
    moved = {k for k, v in now.items() if not torch.equal(v, source[0][k])}
    assert moved and all(k.startswith(("convs.2.", "convs.3.", "to_rgbs.1.")) for k in moved), sorted(moved)
    full = st.transfer_recipe(recipe, st.Transfer("ada", augment=True), batch=2, lr=0.001, ema_half_life_images=50,
                              ada_length=100)
    assert (full.batch, full.lr, full.augment, full.g_reg_every, full.ada_length, full.size) == (2, 0.001, True, 0, 100, 16)
    names = [v.name for v in st.transfer_variants(1, 2, 30)]
    assert names == ["fine-tune", "FreezeD", "FreezeG", "small set (30), no ADA", "small set (30) + ADA"]


def test_draw_is_deterministic_and_mixing_follows_the_crossover():
    torch.manual_seed(0)
    G, _ = _recipe().build()
    z_a, z_b = torch.randn(3, 16), torch.randn(3, 16)
    a = st.draw(G, z_a)
    assert a.shape == (3, 3, 16, 16) and 0 <= float(a.min()) and float(a.max()) <= 1
    assert torch.allclose(a, st.draw(G, z_a, batch=2), atol=1e-5)  # fixed noise: the same z, the same face
    assert torch.allclose(st.draw(G, (z_a, z_b), inject_index=G.n_latent), a, atol=1e-6)
    mixed = st.draw(G, (z_a, z_b), inject_index=2)
    assert not torch.allclose(mixed, a, atol=1e-3)
    grid = st.mixing_grid(G, z_a[:2], z_b, 2)
    assert grid.shape == (2, 3, 3, 16, 16)
    assert torch.allclose(grid[1, 1].add(1).div(2), st.draw(G, (z_a[1:2], z_b[1:2]), inject_index=2)[0], atol=1e-6)


def test_truncated_samples_do_not_depend_on_the_batch():
    torch.manual_seed(0)
    G, _ = _recipe().build()
    torch.manual_seed(1)
    one = st.sample(G, 6, batch=6, seed=3, truncation=0.5)
    torch.manual_seed(1)
    split = st.sample(G, 6, batch=2, seed=3, truncation=0.5)
    assert torch.allclose(one, split, atol=1e-6)
    torch.manual_seed(1)
    centre = st.sample(G, 6, batch=4, seed=3, truncation=0.0)
    assert float((centre - centre[:1]).abs().amax(dim=(1, 2, 3)).max()) < 0.5  # psi 0: one face, noise aside


def test_ada_state_round_trips():
    ada = sg.AdaptiveAugment(0.0, target=-2.0, ada_length=10, interval=2)
    ada.update(torch.ones(3))
    copy_ = sg.AdaptiveAugment.from_state(ada.state(), -2.0, 10, 2)
    assert copy_.state() == ada.state()
    assert copy_.update(torch.ones(3)) == ada.update(torch.ones(3)) > 0
