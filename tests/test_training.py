"""Tests for anime_lib.training: checkpoints, exact resume, time budget, NaN guard, EMA, ImagePool, schedules."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from anime_lib.config import seed_everything
from anime_lib.models.blocks import ImagePool, count_parameters, eval_mode, init_weights
from anime_lib.translation import translate_set
from anime_lib.training import (
    EMA,
    CheckpointError,
    Checkpointer,
    LossHistory,
    TrainingDiverged,
    autocast_context,
    check_finite,
    linear_decay_lambda,
    pick_amp,
    restore,
    restore_rng_state,
    rng_state,
    state_of,
    train_loop,
)


# ----------------------------------------------------------------------------------------- checkpoints


def test_save_writes_numbered_files_and_prunes_old_ones(tmp_path):
    ck = Checkpointer(tmp_path / "ckpt", keep=2)
    assert ck.latest() is None and ck.load_latest() is None
    for step in (10, 20, 30, 40):
        ck.save(step, {"step": step, "w": torch.full((2,), float(step))})
    assert [p.name for p in ck.paths()] == ["ckpt_0000030.pt", "ckpt_0000040.pt"]
    assert ck.latest().name == "ckpt_0000040.pt"
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["ckpt_0000030.pt", "ckpt_0000040.pt"]
    state = ck.load_latest()
    assert state["step"] == 40 and torch.equal(state["w"], torch.full((2,), 40.0))


def test_prepare_keeps_only_checkpoints_of_the_same_settings(tmp_path, capsys):
    ck = Checkpointer(tmp_path / "run")
    config = {"seed": 0, "n_steps": 100, "lr": 2e-4}
    assert ck.prepare(config) is False  # nothing there yet
    ck.save(50, {"step": 50, "config": dict(config)})
    assert ck.prepare(dict(config)) is True and ck.latest() is not None  # same settings: resume
    assert capsys.readouterr().out == ""

    assert ck.prepare({**config, "seed": 1}, name="dcgan") is False  # another seed: start over
    assert ck.latest() is None
    out = capsys.readouterr().out
    assert "dcgan" in out and "other settings (seed 0 -> 1)" in out and "starting over" in out

    ck.save(50, {"step": 50, "config": dict(config)})
    assert ck.prepare({"seed": 0, "n_steps": 100, "lr": 2e-4, "r1": 1.0}) is False  # a new setting counts too
    assert "r1 None -> 1.0" in capsys.readouterr().out

    ck.save(50, {"step": 50})  # a checkpoint from before configs were saved
    assert ck.prepare(config) is False and ck.latest() is None
    assert "no record of its settings" in capsys.readouterr().out

    ck.save(50, {"step": 50, "config": dict(config)})
    assert ck.prepare(config, resume=False) is False and ck.latest() is None  # RESUME = False
    assert "RESUME is off" in capsys.readouterr().out

    ck.path_for(50).write_bytes(b"not a checkpoint")  # only an unreadable file: start over
    (ck.folder / "notes.txt").write_text("mine")
    with pytest.warns(RuntimeWarning, match="unreadable"):
        assert ck.prepare(config) is False
    assert ck.latest() is None and "no checkpoint there is readable" in capsys.readouterr().out
    assert (ck.folder / "notes.txt").read_text() == "mine"  # only checkpoint files are deleted


def test_save_that_dies_midway_leaves_no_partial_checkpoint(tmp_path, monkeypatch):
    ck = Checkpointer(tmp_path, keep=3)
    ck.save(1, {"step": 1})
    real_save = torch.save

    def dying_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a zip")  # a few bytes reach the disk, then the process "dies"
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        ck.save(2, {"step": 2})
    monkeypatch.setattr(torch, "save", real_save)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt_0000001.pt"]  # no ckpt_2, no temp file
    assert ck.load_latest()["step"] == 1


def test_save_writes_a_complete_temp_file_then_renames_it(tmp_path, monkeypatch):
    import os

    real_replace, seen = os.replace, []

    def spy(src, dst):
        src, dst = Path(src), Path(dst)
        seen.append((src.name, dst.name, dst.exists()))
        assert src.parent == dst.parent and src.stat().st_size > 0
        torch.load(src, weights_only=True)  # already complete before it gets the final name
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    Checkpointer(tmp_path).save(3, {"step": 3})
    assert len(seen) == 1 and seen[0][1] == "ckpt_0000003.pt" and seen[0][0] != seen[0][1]
    assert seen[0][2] is False  # the final name did not exist while the data was being written


def test_corrupt_latest_checkpoint_is_skipped_with_a_warning(tmp_path):
    ck = Checkpointer(tmp_path, keep=3)
    ck.save(1, {"step": 1, "w": torch.ones(100)})
    path2 = ck.save(2, {"step": 2, "w": torch.ones(100)})
    data = path2.read_bytes()
    path2.write_bytes(data[: len(data) // 2])  # truncated, as after a disk-full or a kill
    with pytest.warns(RuntimeWarning, match="ckpt_0000002.pt"):
        state = ck.load_latest()
    assert state["step"] == 1


def test_garbage_file_raises_checkpoint_error_with_clear_message(tmp_path):
    ck = Checkpointer(tmp_path)
    bad = tmp_path / "ckpt_0000005.pt"
    bad.write_bytes(b"this is not a checkpoint at all")
    with pytest.raises(CheckpointError) as info:
        ck.load(bad)
    message = str(info.value)
    assert str(bad) in message
    assert "corrupt or not a checkpoint" in message
    assert "delete it to start fresh" in message
    with pytest.warns(RuntimeWarning):
        assert ck.load_latest() is None


def test_non_dict_checkpoint_is_rejected(tmp_path):
    path = tmp_path / "ckpt_0000001.pt"
    torch.save([1.0, 2.0], path)
    with pytest.raises(CheckpointError, match="expected a dict"):
        Checkpointer(tmp_path).load(path)


def test_state_of_and_restore_round_trip():
    model, gen = nn.Linear(2, 2), torch.Generator().manual_seed(3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    state = state_of(model=model, opt=opt, gen=gen, lr=0.1, losses=[1.0, 2.0])
    assert state["lr"] == 0.1 and state["losses"] == [1.0, 2.0]
    saved = {k: v.clone() for k, v in state["model"].items()}
    expected_draw = torch.rand(3, generator=gen)
    with torch.no_grad():
        model.weight.add_(1.0)
    restore(state, model=model, gen=gen)
    assert torch.equal(model.weight, saved["weight"])
    assert torch.equal(torch.rand(3, generator=gen), expected_draw)
    with pytest.raises(CheckpointError, match="no entry 'ema'"):
        restore(state, ema=model)


# ----------------------------------------------------------------------------------------- the loop


class _Tiny:
    """A tiny model + optimizer + scheduler + EMA trained on data derived from the step number."""

    def __init__(self, seed: int):
        seed_everything(seed)
        self.model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.2), nn.Linear(8, 1))
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-2)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, linear_decay_lambda(4, 8))
        self.ema = EMA(self.model, decay=0.9)
        data_gen = torch.Generator().manual_seed(1234)  # the dataset is fixed, whatever the seed
        self.x = torch.randn(32, 4, generator=data_gen)
        self.y = self.x.sum(dim=1, keepdim=True)

    def step_fn(self, step: int) -> dict:
        idx = torch.arange(8) + (step * 8) % 32  # the data position follows from the step
        noise = 0.01 * torch.randn(8, 1)  # uses the global RNG, so resume must restore it
        loss = ((self.model(self.x[idx]) - self.y[idx] - noise) ** 2).mean()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        self.sched.step()
        self.ema.update(self.model)
        return {"mse": loss, "lr": self.sched.get_last_lr()[0]}

    def state_fn(self) -> dict:
        return state_of(model=self.model, opt=self.opt, sched=self.sched, ema=self.ema, rng=rng_state())

    def restore_fn(self, state) -> None:
        restore(state, model=self.model, opt=self.opt, sched=self.sched, ema=self.ema)
        restore_rng_state(state["rng"])


def test_resumed_run_equals_uninterrupted_run_bit_for_bit(tmp_path):
    n = 12
    full = _Tiny(seed=0)
    result_full = train_loop(full.step_fn, n, progress=False)
    assert result_full.steps_done == n and result_full.resumed_from is None

    crashing = _Tiny(seed=0)

    def crash_at_7(step):
        if step == 7:
            raise RuntimeError("simulated Colab disconnect")
        return crashing.step_fn(step)

    ck = Checkpointer(tmp_path)
    with pytest.raises(RuntimeError, match="simulated"):
        train_loop(crash_at_7, n, checkpointer=ck, checkpoint_every=5, state_fn=crashing.state_fn,
                   restore_fn=crashing.restore_fn, progress=False)
    assert ck.latest().name == "ckpt_0000005.pt"

    resumed = _Tiny(seed=99)  # a fresh process: different initial weights and RNG
    result = train_loop(resumed.step_fn, n, checkpointer=ck, checkpoint_every=5, state_fn=resumed.state_fn,
                        restore_fn=resumed.restore_fn, progress=False)
    assert result.resumed_from == 5 and result.steps_done == n and not result.stopped_early
    assert result.history.as_dict() == result_full.history.as_dict()
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(full.ema.module.state_dict().values(), resumed.ema.module.state_dict().values()):
        assert torch.equal(a, b)
    assert ck.latest().name == f"ckpt_{n:07d}.pt"
    assert ck.load_latest()["history"] == result_full.history.as_dict()


def test_time_budget_stops_early_and_checkpoints(tmp_path, capsys):
    tiny = _Tiny(seed=0)
    ck = Checkpointer(tmp_path)
    kwargs = dict(checkpointer=ck, checkpoint_every=100, state_fn=tiny.state_fn, restore_fn=tiny.restore_fn,
                  progress=False)
    result = train_loop(tiny.step_fn, 10, time_budget_s=0.0, **kwargs)
    assert result.stopped_early and result.steps_done == 1
    assert ck.latest().name == "ckpt_0000001.pt" and result.last_checkpoint == ck.latest()
    out = capsys.readouterr().out
    assert "time budget" in out and "1/10" in out
    again = train_loop(tiny.step_fn, 10, **kwargs)
    assert again.resumed_from == 1 and again.steps_done == 10 and not again.stopped_early
    assert len(again.history) == 10


def test_sample_fn_called_every_sample_every_steps():
    calls = []
    train_loop(lambda s: {"x": float(s)}, 7, sample_fn=calls.append, sample_every=3, progress=False)
    assert calls == [3, 6]


def test_checkpointer_without_state_fn_is_refused(tmp_path):
    with pytest.raises(ValueError, match="state_fn"):
        train_loop(lambda s: {}, 3, checkpointer=Checkpointer(tmp_path), progress=False)


def test_nan_guard_names_loss_step_and_remedies():
    check_finite({"loss_G": 1.0, "loss_D": torch.tensor(0.5)}, step=0)
    with pytest.raises(TrainingDiverged) as info:
        check_finite({"loss_G": 1.0, "loss_D": float("nan")}, step=3)
    msg = str(info.value)
    assert "'loss_D'" in msg and "step 3" in msg
    assert "learning rate" in msg and "[-1, 1]" in msg and "AMP" in msg
    assert info.value.name == "loss_D" and info.value.step == 3


def test_train_loop_raises_when_a_loss_becomes_infinite():
    def step_fn(step):
        return {"loss": math.inf if step == 2 else 1.0}

    with pytest.raises(TrainingDiverged, match="'loss' became inf at step 2"):
        train_loop(step_fn, 5, progress=False)


# ----------------------------------------------------------------------------------------- pieces


def test_loss_history_is_json_friendly_and_smooths():
    h = LossHistory()
    h.add(0, a=torch.tensor(1.0))
    h.add(1, a=3.0, b=2.0)
    h.add(2, a=5.0, b=4.0)
    d = h.as_dict()
    assert d == {"step": [0, 1, 2], "a": [1.0, 3.0, 5.0], "b": [None, 2.0, 4.0]}
    assert json.loads(json.dumps(d)) == d
    assert h.smoothed("a", 2) == [1.0, 2.0, 4.0]
    sb = h.smoothed("b", 5)
    assert math.isnan(sb[0]) and sb[1:] == [2.0, 3.0]
    assert LossHistory(d).as_dict() == d and h.last() == {"a": 5.0, "b": 4.0}


def test_ema_update_math_and_state():
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    ema = EMA(model, decay=0.9)
    assert not ema.module.training
    assert all(not p.requires_grad for p in ema.module.parameters())
    old = {k: v.clone() for k, v in ema.module.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
        model[1].running_mean.fill_(7.0)
    ema.update(model)
    new = dict(model.state_dict())
    for name, _ in model.named_parameters():
        torch.testing.assert_close(ema.module.state_dict()[name], 0.9 * old[name] + 0.1 * new[name])
    assert torch.equal(ema.module[1].running_mean, torch.full((2,), 7.0))  # buffers are copied
    assert ema.num_updates == 1
    other = EMA(model, decay=0.5)
    other.load_state_dict(ema.state_dict())
    assert other.decay == 0.9 and torch.equal(other.module[0].weight, ema.module[0].weight)
    assert torch.equal(ema(torch.ones(4, 3)), ema.module(torch.ones(4, 3)))


def _labelled(values):
    """Images (N, 1, 2, 2) filled with one value each, so outputs can be traced to inputs."""
    return torch.tensor(values, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 1, 2, 2).clone()


def test_image_pool_fills_then_swaps_and_detaches():
    pool = ImagePool(size=4, generator=torch.Generator().manual_seed(0))
    first = _labelled([0, 1, 2]).requires_grad_()
    out = pool(first)
    assert torch.equal(out, first.detach()) and not out.requires_grad and len(pool) == 3
    out = pool(_labelled([3, 4]))  # 3 fills the pool, 4 meets a full pool
    assert out[0, 0, 0, 0].item() == 3 and len(pool) == 4
    returned_old, returned_new = 0, 0
    for v in range(5, 105):
        before = {img[0, 0, 0].item() for img in pool.images}
        got = pool(_labelled([v]))[0, 0, 0, 0].item()
        after = {img[0, 0, 0].item() for img in pool.images}
        if got == v:
            returned_new += 1
            assert after == before  # the new image was not stored
        else:
            returned_old += 1
            assert got in before and v in after and got not in after  # swapped in its place
    assert 30 < returned_old < 70 and returned_old + returned_new == 100
    assert len(pool) == 4


def test_image_pool_is_deterministic_with_a_generator_and_size_zero_is_identity():
    images = [_labelled([i, i + 100]) for i in range(20)]
    outs = []
    for _ in range(2):
        pool = ImagePool(size=3, generator=torch.Generator().manual_seed(7))
        outs.append(torch.cat([pool(x) for x in images]))
    assert torch.equal(outs[0], outs[1])
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    assert ImagePool(size=0)(x) is x


def test_linear_decay_lambda_values():
    f = linear_decay_lambda(3, 4)
    assert [f(e) for e in range(9)] == [1.0, 1.0, 1.0, 1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=2.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, linear_decay_lambda(1, 2))
    lrs = []
    for _ in range(4):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == [2.0, 2.0, 1.0, 0.0]
    assert linear_decay_lambda(2, 0)(2) == 0.0


def test_init_weights_statistics():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(64, 64, 3), nn.BatchNorm2d(64), nn.InstanceNorm2d(64),
                        nn.utils.parametrizations.spectral_norm(nn.Conv2d(64, 64, 3)), nn.Linear(256, 256))
    init_weights(net, std=0.02)
    for w in (net[0].weight, net[3].parametrizations.weight.original, net[4].weight):
        assert abs(w.mean().item()) < 2e-3 and abs(w.std().item() - 0.02) < 2e-3
    for b in (net[0].bias, net[1].bias, net[3].bias, net[4].bias):
        assert torch.count_nonzero(b) == 0
    assert abs(net[1].weight.mean().item() - 1.0) < 0.01 and 0.01 < net[1].weight.std().item() < 0.03
    assert net[2].weight is None  # InstanceNorm without affine has nothing to initialise


def test_amp_choice_and_parameter_count():
    amp = pick_amp("cpu")
    assert not amp.enabled and amp.dtype is None
    with autocast_context("cpu", enabled=False):
        assert torch.ones(2, 2).matmul(torch.ones(2, 2)).dtype == torch.float32
    with autocast_context("cpu", enabled=True):
        assert nn.Linear(2, 2)(torch.ones(1, 2)).dtype == torch.bfloat16
    model = nn.Linear(3, 2)
    assert count_parameters(model) == 8
    model.bias.requires_grad_(False)
    assert count_parameters(model) == 6 and count_parameters(model, trainable_only=False) == 8


def test_losses_reported_as_none_are_gaps_not_errors():
    result = train_loop(lambda s: {"g": 1.0, "d": None if s % 2 else 0.5}, 4, progress=False)
    assert result.history.as_dict() == {"step": [0, 1, 2, 3], "g": [1.0] * 4, "d": [0.5, None, 0.5, None]}


def test_eval_mode_and_translate_restore_the_training_mode():
    G = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1), torch.nn.Dropout(0.5))
    with pytest.raises(RuntimeError):
        with eval_mode(G):
            assert not G.training
            raise RuntimeError("inside")
    assert G.training  # given back in train mode even after an exception
    x = torch.rand(5, 3, 4, 4) * 2 - 1
    out = translate_set(G, x, batch=2)
    assert G.training and out.shape == x.shape and not out.requires_grad
    assert torch.allclose(out, translate_set(G, x, batch=5), atol=1e-6)  # eval mode: dropout off, batching does not matter
