"""Shipped models: the export keeps what a lesson loads (in float16), refuses unfinished runs, writes a
manifest entry that the weights registry verifies, and a Run with USE_PRETRAINED loads it; the committed
weights match their entries and stay within the size budget."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from anime_lib import pretrain as ptr
from anime_lib import pretrained as pt
from anime_lib.training import EMA, Run, batch_indices

ROOT = Path(__file__).resolve().parents[1]


def _finished_run(folder: Path, n_steps: int = 6, stop_at: int | None = None):
    run = Run("long", folder, {"lr": 0.1})
    model, log = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 1)), {"step": []}
    ema, opt = EMA(model, 0.5), torch.optim.Adam(model.parameters(), lr=0.1)
    data = torch.randn(40, 3, generator=torch.Generator().manual_seed(1))

    def step_fn(step):
        loss = (model(data[batch_indices(step, 8, len(data), 0)]) - 1).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        ema.update(model)
        log["step"].append(step)
        return {"loss": loss}

    run.train(step_fn, n_steps, {"model": model, "ema": ema, "opt": opt, "log": log}, checkpoint_every=3,
              time_budget_s=None, progress=False)
    return model, ema, run.checkpointer.latest()


def test_export_ships_the_models_in_half_precision_and_a_run_loads_them(tmp_path, monkeypatch, capsys):
    model, ema, ckpt = _finished_run(tmp_path / "train")
    shipment = ptr.Shipment("99_test", "long", keep=("model", "ema", "log"), methods=("toy, shipped weights",),
                            profile="smoke", description="a test model")
    figures = [{"method": "toy, shipped weights", "direction": "human->anime", "toy_fid": 0.5, "realism": 0.9}]
    entry = ptr.export(shipment, ckpt, figures=figures, weights_dir=tmp_path / "weights", command="make it")
    shipped = tmp_path / "weights" / entry["file"]
    assert entry["size"] == shipped.stat().st_size and entry["steps"] == 6 and entry["made_by"] == "make it"
    assert entry["figures"][0]["toy_fid"] == 0.5 and entry["figures"][0]["direction"] == "human->anime"
    state = torch.load(shipped, weights_only=True)
    assert set(state) == {"step", "config", "history", "train_seconds", "model", "ema", "log"}  # no optimiser
    assert all(t.dtype == torch.float16 for t in state["model"].values())
    assert json.loads((tmp_path / "weights" / "shipped.json").read_text())["99_test/long/smoke"]["sha256"] == entry["sha256"]

    # registered like a committed file, a Run with use_pretrained loads it instead of training
    monkeypatch.setattr(pt, "PACKAGE_ROOT", tmp_path)
    monkeypatch.setitem(pt.WEIGHTS, shipment.name, pt.WeightsFile(
        shipment.name, "a test model", entry["size"], entry["sha256"], repo_path=f"weights/{entry['file']}",
        lesson="99_test", profile="smoke"))
    fresh = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 1))
    fresh_ema, log = EMA(fresh, 0.5), {}
    run = Run("long", tmp_path / "lesson", {"lr": 0.1}, use_pretrained=True, weights=shipment.name)
    result = run.train(lambda s: pytest.fail("must not train"), 6,
                       {"model": fresh, "ema": fresh_ema, "log": log, "opt": torch.optim.Adam(fresh.parameters())})
    assert result.pretrained and result.steps_done == 6 and log["step"] == list(range(6))
    for got, want in ((fresh, model), (fresh_ema.module, ema.module)):
        for a, b in zip(got.parameters(), want.parameters()):
            assert a.dtype == torch.float32 and torch.allclose(a, b, atol=1e-3, rtol=1e-3)  # float16 rounding only
    assert "loaded the shipped weights '99_test/long/smoke'" in capsys.readouterr().out


def test_export_refuses_an_unfinished_run_and_a_missing_entry(tmp_path):
    _, _, ckpt = _finished_run(tmp_path / "train", n_steps=6)
    shipment = ptr.Shipment("99_test", "long", keep=("model", "optimizer_of_another_name"), methods=())
    with pytest.raises(KeyError, match="optimizer_of_another_name"):
        ptr.export(shipment, ckpt, weights_dir=tmp_path / "w")
    first = sorted(ckpt.parent.glob("ckpt_*.pt"))[0]  # step 3 of 6
    with pytest.raises(pt.WeightsError, match="step 3 of 6.*pretrain run 99_test"):
        ptr.export(ptr.Shipment("99_test", "long", keep=("model",), methods=()), first, weights_dir=tmp_path / "w")
    assert not (tmp_path / "w" / "shipped.json").exists()


def test_committed_shipped_weights_match_their_entries_and_the_size_budget():
    entries = pt.read_shipped()
    for name, entry in entries.items():
        assert pt.weights_path(name, download=False).name == entry["file"]  # size and sha256 verified
        assert pt.pretrained_for(entry["lesson"], entry["run"], entry["profile"]).name == name
        assert entry["steps"] > 0 and entry["train_seconds"] > 0 and entry["figures"], name
    total = sum(p.stat().st_size for p in (pt.PACKAGE_ROOT / "weights").glob("*.pt"))
    assert total <= ptr.MAX_TOTAL_BYTES
    unlisted = {p.name for p in (pt.PACKAGE_ROOT / "weights").glob("*--*.pt")} - {e["file"] for e in entries.values()}
    assert not unlisted, f"weights files without a manifest entry: {unlisted}"


@pytest.mark.parametrize("lesson", sorted(ptr.SHIPPED))
def test_each_shipped_run_is_a_run_of_its_lesson_named_as_the_registry_expects(lesson):
    source = (ROOT / "notebooks" / f"{lesson}.ipynb").read_text()
    for s in ptr.SHIPPED[lesson]:
        assert re.search(rf'Run\(\\"{s.run}\\"', source), f"{lesson} builds no Run({s.run!r})"
        # the profile's weights: {P.PROFILE}, or a profile that shares another's architecture (09: smoke loads cpu's)
        assert re.search(rf'{lesson}/{s.run}/\{{(P\.PROFILE|weights_profile)\}}', source), \
            f"{lesson} does not ask for {lesson}/{s.run}/<profile>"
        assert any(m in source for m in s.methods), f"{lesson} writes no row named {s.methods}"


def test_the_list_command_names_every_shipment(capsys):
    assert ptr.main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(s.name in out for shipments in ptr.SHIPPED.values() for s in shipments)
