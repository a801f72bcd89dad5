"""The lesson contract: one translator call, one training runner, one evaluation helper, one weights loader.

Every lesson builds on these, so they are tested here on small cases with known answers.
"""
from __future__ import annotations

import ast
import functools
import http.server
import pickle
import threading
from pathlib import Path

import pytest
import torch
from torch import nn

from anime_lib import evaluation as ev
from anime_lib import pretrained as pt
from anime_lib.data import toyfaces as tf
from anime_lib.data.download import sha256_of
from anime_lib.models import cyclegan as cg
from anime_lib.models import dcgan, difference, encoder_decoder as ed, geometry as geo, ugatit as ug
from anime_lib.ranges import to_model_range, to_unit_range
from anime_lib.results import RESULT_COLUMNS
from anime_lib.training import CheckpointError, Run, batch_indices
from anime_lib.translation import DIRECTIONS, Translator, as_translator, translate_set

LIB = Path(__file__).resolve().parents[1] / "anime_lib"
S = 16


# ---------------------------------------------------------------------------------------------- translators

def _translators():
    torch.manual_seed(0)
    return {
        "ImageDifference": difference.ImageDifference(S),
        "LatentDifference": difference.LatentDifference(difference.ConvAutoencoder(S, 8)),
        "EncoderDecoder": ed.EncoderDecoder(4, 2, direction="anime->human"),
        "ConditionalDCGAN": dcgan.ConditionalDCGAN(S, 4, 8),
        "CycleGAN": cg.CycleGAN(S, 4, 4, 1, 1),
        "GeometryCycleGAN": geo.GeometryCycleGAN(S, 4, 4, 1, 1),
        "UGATIT": ug.UGATIT(S, 4, 4, 1, 2, 2),
    }


@pytest.mark.parametrize("name", list(_translators()))
def test_every_model_translates_a_batch_through_the_same_call(name):
    model = _translators()[name]
    assert isinstance(model, Translator)
    x = torch.rand(3, 3, S, S) * 2 - 1
    for direction in model.directions:
        y = model.eval().translate(x, direction)
        assert y.shape == x.shape and float(y.min()) >= -1 - 1e-5 and float(y.max()) <= 1 + 1e-5
    for direction in set(DIRECTIONS) - set(model.directions):
        with pytest.raises(ValueError, match="translates"):
            model.translate(x, direction)
    with pytest.raises(ValueError, match="direction must be one of"):
        model.translate(x, "human->cat")


def test_translate_set_batches_restores_the_mode_and_returns_cpu_float():
    model = cg.CycleGAN(S, 4, 4, 1, 1)
    model.train()
    x = torch.rand(7, 3, S, S) * 2 - 1
    a = translate_set(model, x, "human->anime", batch=2)
    b = translate_set(model, x, "human->anime", batch=7)
    assert model.training and a.dtype == torch.float32 and not a.requires_grad
    assert torch.allclose(a, b, atol=1e-5)
    assert torch.allclose(a, translate_set(model.G_AB, x), atol=1e-5)  # a bare generator works too
    assert torch.allclose(translate_set(model, x, "anime->human"), translate_set(model.G_BA, x), atol=1e-5)


def test_per_image_conditions_are_cut_into_the_same_batches():
    model = geo.GeometryCycleGAN(S, 4, 4, 1, 1, angle_channel=True)
    x = torch.rand(5, 3, S, S) * 2 - 1
    roll = torch.tensor([-30.0, -10.0, 0.0, 10.0, 30.0])
    whole = translate_set(model, x, "human->anime", roll=roll, batch=5)
    pieces = translate_set(model, x, "human->anime", roll=roll.tolist(), batch=2)
    assert torch.allclose(whole, pieces, atol=1e-5)
    with pytest.raises(ValueError, match="roll="):
        translate_set(model, x, "human->anime")


def test_extras_come_from_their_own_call():
    model = ug.UGATIT(S, 4, 4, 1, 2, 2)
    x = torch.rand(5, 3, S, S) * 2 - 1
    fake, extras = translate_set(model, x, "anime->human", batch=2, with_extras=True)
    assert fake.shape == x.shape
    assert extras["cam_logit"].shape == (5, 2) and extras["heatmap"].shape == (5, 1, S, S)
    assert 0 <= float(extras["heatmap"].min()) and float(extras["heatmap"].max()) <= 1
    assert translate_set(cg.CycleGAN(S, 4, 4, 1, 1), x, with_extras=True)[1] == {}


def test_functions_become_translators():
    flip = as_translator(lambda x, direction: -x, "human->anime")
    x = torch.rand(2, 3, S, S)
    assert torch.equal(translate_set(flip, x), -x)
    with pytest.raises(ValueError):
        flip.translate(x, "anime->human")


# ---------------------------------------------------------------------------------------------- the runner

def _toy_run(folder, n_steps, seed=0, budget=None, config=None, width=1):
    run = Run("toy", folder, config or {"lr": 0.1}, seed=seed)
    model = nn.Linear(3, width)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    data = torch.randn(40, 3, generator=torch.Generator().manual_seed(1))
    log = {"steps": []}

    def step_fn(step):
        x = data[batch_indices(step, 8, len(data), seed)]
        loss = (model(x) - 1).pow(2).mean() + 0.01 * torch.randn(())  # the global RNG is part of the state
        opt.zero_grad()
        loss.backward()
        opt.step()
        log["steps"].append(step)
        return {"loss": loss}

    result = run.train(step_fn, n_steps, {"model": model, "opt": opt, "log": log}, checkpoint_every=3,
                       time_budget_s=budget, progress=False)
    return result, model, log


def test_an_interrupted_run_ends_exactly_like_an_uninterrupted_one(tmp_path):
    whole, model_a, log_a = _toy_run(tmp_path / "a", 12)
    first, _, _ = _toy_run(tmp_path / "b", 12, budget=0.0)  # stops after one step, as after a disconnect
    assert first.stopped_early and first.steps_done < 12
    rest, model_b, log_b = _toy_run(tmp_path / "b", 12)
    assert rest.resumed_from == first.steps_done and rest.steps_done == 12
    assert torch.equal(model_a.weight, model_b.weight)
    assert log_b == log_a  # the lesson's plain-dict log is refilled on resume
    assert rest.history.as_dict() == whole.history.as_dict()
    assert rest.train_seconds >= first.train_seconds > 0  # summed over both sessions


def test_a_finished_run_is_not_trained_again_and_other_settings_start_over(tmp_path, capsys):
    done, model, _ = _toy_run(tmp_path, 6)
    again, model2, _ = _toy_run(tmp_path, 6)
    assert again.resumed_from == 6 and torch.equal(model.weight, model2.weight)
    assert again.train_seconds == pytest.approx(done.train_seconds)
    capsys.readouterr()
    _toy_run(tmp_path, 6, seed=1)
    assert "other settings (seed 0 -> 1)" in capsys.readouterr().out
    _toy_run(tmp_path, 6, seed=1, config={"lr": 0.2})
    assert "lr 0.1 -> 0.2" in capsys.readouterr().out


def test_another_architecture_names_the_checkpoint_and_what_differs(tmp_path):
    _toy_run(tmp_path, 3)
    with pytest.raises(CheckpointError) as info:
        _toy_run(tmp_path, 3, width=2)
    message = str(info.value)
    assert "ckpt_0000003.pt" in message and "weight (1, 3) in the checkpoint, (2, 3) here" in message
    assert "RESUME = False" in message


def test_the_runner_keeps_its_own_names(tmp_path):
    with pytest.raises(ValueError, match="own names"):
        Run("x", tmp_path).train(lambda s: {}, 1, {"config": {}})


def test_batch_indices_cover_each_epoch_once():
    epoch = torch.cat([batch_indices(s, 5, 20, seed=3) for s in range(4)])
    assert sorted(epoch.tolist()) == list(range(20))
    assert not torch.equal(batch_indices(0, 5, 20, seed=3, stream=1), batch_indices(0, 5, 20, seed=3))


# ---------------------------------------------------------------------------------------------- weights

@pytest.fixture
def http_folder(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_use_pretrained_downloads_verifies_and_loads_a_shipped_run(tmp_path, http_folder, monkeypatch, capsys):
    done, model, _ = _toy_run(tmp_path / "train", 6)
    ckpt = sorted((tmp_path / "train" / "checkpoints" / "toy").glob("ckpt_*.pt"))[-1]
    root, url = http_folder
    (root / "toy.pt").write_bytes(ckpt.read_bytes())
    monkeypatch.setenv("ANIME_LIB_CACHE", str(tmp_path / "cache"))
    entry = pt.WeightsFile("test/toy/smoke", "a test run", size=ckpt.stat().st_size, sha256=sha256_of(ckpt),
                           url=f"{url}/toy.pt")
    monkeypatch.setitem(pt.WEIGHTS, entry.name, entry)
    run = Run("toy", tmp_path / "fresh", {"lr": 0.1}, use_pretrained=True, weights=entry.name)
    fresh = nn.Linear(3, 1)
    result = run.train(lambda s: pytest.fail("must not train"), 6, {"model": fresh, "opt": torch.optim.SGD(fresh.parameters(), 0.1)})
    assert result.pretrained and result.steps_done == 6 and torch.equal(fresh.weight, model.weight)
    assert "loaded the shipped weights 'test/toy/smoke'" in capsys.readouterr().out
    assert (tmp_path / "cache" / "weights" / "toy.pt").exists()
    # a file that changed after it was registered is named, never used
    (tmp_path / "cache" / "weights" / "toy.pt").write_bytes(b"x" * entry.size)
    with pytest.raises(pt.WeightsError, match="sha256"):
        pt.weights_path(entry.name)
    # no shipped weights: it says so and trains
    Run("toy", tmp_path / "other", use_pretrained=True, weights="nothing/here/smoke")
    assert "no shipped weights named 'nothing/here/smoke'" in capsys.readouterr().out


def test_the_committed_probe_matches_its_registry_entry():
    assert pt.weights_path("probe", download=False).name == "probe.pt"


class _Sneaky:
    def __reduce__(self):
        return (print, ("this ran",))


@pytest.mark.parametrize("content", ["unsafe", "garbage", "empty", "folder"])
def test_one_loader_names_every_bad_file_without_unsafe_advice(tmp_path, content):
    path = tmp_path / "w.pt"
    if content == "unsafe":
        torch.save({"model": _Sneaky()}, path)
    elif content == "garbage":
        path.write_bytes(b"not a torch file")
    elif content == "empty":
        path.write_bytes(b"")
    else:
        path.mkdir()
    with pytest.raises(pt.WeightsError) as info:
        pt.load_weights_file(path)
    message = str(info.value)
    assert str(path) in message and "weights_only=False" not in message and "Traceback" not in message
    if content == "unsafe":
        assert "refuses" in message
    else:
        assert "refuses" not in message and ("corrupt" in message or "empty" in message or "folder" in message)
    assert isinstance(info.value.__cause__, (type(None), pickle.UnpicklingError)) or info.value.__suppress_context__


# ---------------------------------------------------------------------------------------------- evaluation

@pytest.fixture(scope="module")
def toy_test():
    return {d: tf.toyfaces(d, n=24, size=32, split="test", with_counterpart=True) for d in tf.DOMAINS}


def test_evaluate_fills_every_row_the_same_way(toy_test):
    identity = as_translator(lambda x, direction: x)
    rows = ev.evaluate(identity, toy_test, method="identity", train_seconds=1.5)
    ref = ev.reference_rows(toy_test)
    assert [r["direction"] for r in rows] == list(DIRECTIONS)
    for row in rows + ref:
        assert list(row)[:len(RESULT_COLUMNS)] == list(RESULT_COLUMNS)
    idt = {r["direction"]: r for r in ref if r["method"] == "identity (no translation)"}
    for r in rows:
        for k in ("realism", "attr_preservation", "gt_l1", "toy_fid"):
            assert r[k] == pytest.approx(idt[r["direction"]][k], abs=1e-6)
        assert r["recon_l1"] == pytest.approx(0.0, abs=1e-6) and r["train_seconds"] == 1.5
    gt = [r for r in ref if r["method"].startswith("ground truth")]
    assert all(r["gt_l1"] == pytest.approx(0, abs=1e-6) and r["realism"] > 0.99 for r in gt)
    assert all(ev.compare(g, i)["realism"] == "better" for g, i in zip(gt, idt.values()))


def test_without_ground_truth_metrics_are_none_never_invented():
    photos = {"human": torch.rand(6, 3, S, S) * 2 - 1, "anime": torch.rand(6, 3, S, S) * 2 - 1}
    rows = ev.evaluate(cg.CycleGAN(S, 4, 4, 1, 1), photos, method="CycleGAN")
    for r in rows:
        assert r["recon_l1"] is not None
        assert all(r[k] is None for k in ("realism", "attr_preservation", "gt_l1", "toy_fid", "diversity"))
    assert ev.reference_rows(photos) == []


def test_which_way_is_better_is_one_table():
    a = {"method": "a", "toy_fid": 0.5, "realism": 0.9, "gt_l1": 0.1}
    b = {"method": "b", "toy_fid": 0.7, "realism": 0.95, "gt_l1": 0.1}
    assert ev.compare(a, b) == {"toy_fid": "better", "realism": "worse", "gt_l1": "tie"}
    assert ev.compare(a, b, ties={"realism": 0.1})["realism"] == "tie"
    assert ev.best([a, b], "toy_fid") is a and ev.best([a, b], "realism") is b
    assert "0.500 (better)" in ev.comparison_table([a], b, ["toy_fid"])
    with pytest.raises(KeyError):
        ev.better("loss", 1, 2)


def test_value_ranges_have_one_home():
    x = torch.rand(2, 3, 4, 4)
    assert torch.allclose(to_unit_range(to_model_range(x)), x, atol=1e-6)
    assert torch.equal(to_model_range(torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)), torch.ones(1, 3, 2, 2))
    with pytest.raises(ValueError, match="0-255"):
        to_unit_range(x * 255)


# ---------------------------------------------------------------------------------------------- layering

def _imports(path: Path, top_level_only: bool = False):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in (tree.body if top_level_only else ast.walk(tree)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("anime_lib"):
            yield node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("anime_lib"):
                    yield a.name, []


def test_models_do_not_import_training_and_no_module_imports_private_names():
    problems = []
    for path in sorted(LIB.rglob("*.py")):
        rel = path.relative_to(LIB.parent)
        if rel.parts[1] == "models":  # model definitions stand on their own (a training recipe may import lazily)
            problems += [f"{rel}: a model imports anime_lib.training" for module, _ in _imports(path, True)
                         if module == "anime_lib.training"]
        for module, names in _imports(path):
            problems += [f"{rel}: imports the private name {n} from {module}" for n in names
                         if n.startswith("_") and not n.startswith("__")]
    assert not problems, "\n".join(problems)


def test_library_constants_imported_into_a_lesson_are_not_parameters():
    from anime_lib.config import resolve_params
    from anime_lib.evaluation import BETTER, COLUMNS

    cell = {"PROFILE": "smoke", "N_STEPS": 5, "COLUMNS": COLUMNS, "BETTER": BETTER, "MY_LIST": ["a"]}
    P = resolve_params(cell)
    assert "COLUMNS" not in P.as_dict() and "BETTER" not in P.as_dict()
    assert P.N_STEPS == 5 and P.MY_LIST == ["a"]  # the lesson's own values stay parameters


def test_a_borrowed_run_never_deletes_the_owners_checkpoints(tmp_path, capsys):
    _toy_run(tmp_path, 3)  # the main notebook's run
    owner = sorted((tmp_path / "checkpoints" / "toy").glob("ckpt_*.pt"))
    run = Run("toy", tmp_path, {"lr": 0.5}, borrowed=True)  # a deep dive with other settings
    model = nn.Linear(3, 1)
    result = run.train(lambda s: {}, 3, {"model": model}, progress=False)
    assert result.steps_done == 3 and "left alone" in capsys.readouterr().out
    assert sorted((tmp_path / "checkpoints" / "toy").glob("ckpt_*.pt")) == owner
    assert run.folder.name.startswith("toy-") and list(run.folder.glob("ckpt_*.pt"))
    same = Run("toy", tmp_path, {"lr": 0.1}, borrowed=True)  # same settings: the owner's run is reused
    again = same.train(lambda s: pytest.fail("must not train"), 3, {"model": nn.Linear(3, 1)}, progress=False)
    assert again.resumed_from == 3 and same.folder.name == "toy"
