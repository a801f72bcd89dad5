"""The FLOP counter of anime_lib.machine_speed and benchmarks/gpu_budget.py, which turns each lesson's gpu profile
into expected training minutes on a T4.

Nothing under benchmarks/ is a package, so the script is imported from its path.
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from anime_lib.machine_speed import training_step_flops
from anime_lib.models import animegan as ag
from anime_lib.models import cartoongan as cn
from anime_lib.models import cyclegan as cg
from anime_lib.models import dcgan

ROOT = Path(__file__).resolve().parents[1]


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("gpu_budget", ROOT / "benchmarks" / "gpu_budget.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


gb = _load_benchmark()


@pytest.fixture(scope="module")
def jobs():
    return gb.all_jobs()


# --------------------------------------------------------------------------------------------------- the counter


def _conv_and_linear():
    torch.manual_seed(0)
    return nn.Conv2d(3, 8, 3, padding=1), nn.Linear(8 * 8 * 8, 10)


def test_the_counter_gives_the_analytic_count_of_a_conv_and_a_linear_layer():
    conv, lin = _conv_and_linear()
    x = torch.randn(2, 3, 8, 8)
    conv_fwd = 2 * 2 * (8 * 8 * 8) * (3 * 3 * 3)  # 2 FLOP per multiply-accumulate: batch x outputs x (c_in k k)
    lin_fwd = 2 * 2 * 512 * 10  # the biases are not counted
    assert training_step_flops(lambda: lin(conv(x).flatten(1))) == conv_fwd + lin_fwd

    def step(inp):
        lin(conv(inp).flatten(1)).sum().backward()

    # backward: the weight gradient of both layers (one forward each), the input gradient of the linear layer only,
    # since nothing needs the gradient of the images: forward + backward = 2 conv forwards + 3 linear forwards
    assert training_step_flops(step, x) == 2 * conv_fwd + 3 * lin_fwd
    # an input that needs its gradient costs the conv's input gradient too: exactly 3 forwards
    assert training_step_flops(step, x.clone().requires_grad_(True)) == 3 * (conv_fwd + lin_fwd)


@pytest.mark.parametrize("groups", [1, 4, 16])
@pytest.mark.parametrize("layer", [nn.Conv2d, nn.ConvTranspose2d])
def test_grouped_convolutions_cost_three_forwards_forward_and_backward(layer, groups):
    """torch 2.14's formula counts a grouped conv's weight gradient `groups` times; training_step_flops corrects it
    (the depthwise convolutions of AnimeGANv2's generator, lesson 08)."""
    conv = layer(16, 16, 3, padding=1, groups=groups)
    x = torch.randn(2, 16, 8, 8, requires_grad=True)
    forward = training_step_flops(lambda: conv(x))
    assert forward == 2 * 2 * 16 * (16 // groups) * 9 * 64
    assert training_step_flops(lambda: conv(x).sum().backward()) == 3 * forward


def test_meta_tensors_count_the_same_as_real_arithmetic():
    """A CycleGAN step on the CPU and on the meta device (shapes only; float(loss) reads 0 there)."""
    counts = {}
    for device in ("cpu", "meta"):
        torch.manual_seed(0)
        recipe = cg.Recipe(img_size=16, batch_size=2, ngf=4, ndf=4, n_blocks=1)
        counts[device] = training_step_flops(gb.cyclegan_step(2, torch.device(device), recipe=recipe))
    assert counts["cpu"] == counts["meta"] > 0


def test_a_step_costs_linearly_more_with_the_batch():
    """Why --count-batch may scale linearly: no counted operation mixes a batch's images."""
    job = gb.Job("test", "DCGAN", 16, 4, 10, gb.dcgan_step,
                 dict(size=16, z_dim=8, ngf=4, ndf=4, lr_g=2e-4, lr_d=2e-4, beta1=0.5, r1_gamma=0.0))
    full = gb.count_flops(job)
    assert full == gb.count_flops(job, count_batch=1) == gb.count_flops(job, count_batch=2) > 0
    assert gb.count_flops(job, "cpu", count_batch=1) == full


# ------------------------------------------------------------------------------------- settings and jobs


def test_library_tables_and_notebook_literals_are_both_read(tmp_path, write_notebook):
    assert gb.profile_defaults("04_cyclegan.ipynb") is cg.PROFILE_DEFAULTS
    assert gb.profile_defaults("04_cyclegan_deep_dive.ipynb") is cg.DEEP_DIVE_DEFAULTS
    assert gb.profile_defaults("03_dcgan_deep_dive.ipynb") is dcgan.DEEP_DIVE_DEFAULTS
    path = write_notebook(tmp_path / "x.ipynb", [
        ("code", "N_STEPS = None\nIMG_SIZE = 48", ["parameters"]),
        ("code", "%matplotlib inline\nfrom anime_lib.config import resolve_params\n"
                 "P = resolve_params(globals(), defaults={'gpu': {'N_STEPS': 7}, 'cpu': {'N_STEPS': 3}})")])
    assert gb.profile_defaults(path) == {"gpu": {"N_STEPS": 7}, "cpu": {"N_STEPS": 3}}
    P = gb.gpu_params(path)
    assert (P.N_STEPS, P.IMG_SIZE, P.DATASET, P.PROFILE) == (7, 48, "toyfaces", "gpu")


def test_the_rows_cover_every_training_lesson(jobs):
    assert list(dict.fromkeys(j.lesson for j in jobs)) == list(gb.LESSONS)
    assert {"01", "02", "03", "04", "04 deep dive", "05", "06", "07", "08"} <= {j.lesson for j in jobs if j.steps}
    trained = [j for j in jobs if j.steps]
    assert all(j.builder is not None for j in trained)  # ToyFaces (the gpu profile's data): everything it trains counts
    assert {j.img_size for j in trained} <= {64, 128}  # ToyFaces at 128 px, 64 px where a lesson's models are too heavy
    assert all(j.img_size == 128 for j in trained if j.lesson in ("01", "02", "04", "08"))


def test_the_jobs_follow_the_lessons_settings(jobs):
    by = {}
    for j in jobs:
        by.setdefault(j.lesson, []).append(j)
    gpu04, gpu07, gpu08 = cg.PROFILE_DEFAULTS["gpu"], cn.PROFILE_DEFAULTS["gpu"], ag.PROFILE_DEFAULTS["gpu"]
    (main,) = by["04"]
    assert (main.steps, main.batch, main.amp) == (gpu04["N_STEPS"], gpu04["BATCH_SIZE"], True)
    resumed, *rest = by["04 deep dive"]
    ablations = [j for j in rest if "ablation" in j.model]
    assert resumed.steps == 0 and len(ablations) >= 3
    assert all(j.steps == cg.DEEP_DIVE_DEFAULTS["gpu"]["ABLATION_STEPS"] for j in ablations)
    assert any("balanced anime domain" in j.model for j in ablations)  # ToyFaces only: the gpu profile's data
    p05 = gb.gpu_params("05_geometry_cyclegan.ipynb")
    two_stage = "CycleGAN + landmark loss + local D"
    variants = [j for j in by["05"] if not j.model.startswith(("landmark regressors", two_stage))]
    assert len(variants) == 5 and all(j.steps == p05.N_STEPS for j in variants)  # 3 variants + the seed check's 2
    stages = [j.steps for j in by["05"] if j.model.startswith(two_stage)]
    assert stages == [int(p05.N_STEPS * p05.LOCAL_D_START), p05.N_STEPS - int(p05.N_STEPS * p05.LOCAL_D_START)]
    (regressors,) = [j for j in by["05"] if j.model.startswith("landmark regressors")]
    assert (regressors.steps, regressors.batch) == (2 * p05.REGRESSOR_STEPS, 32)  # both, at train_regressor's batch
    n_total = gpu07["N_INIT_STEPS"] + gpu07["N_STEPS"]
    runs = [j for j in by["07"] if not j.model.startswith(("init phase, random", "step timing"))]
    assert sum(j.steps for j in runs) == 6 * n_total  # CartoonGAN and 5 variants, each N_INIT_STEPS + N_STEPS
    assert [j.steps for j in by["08"]] == [gpu08["N_INIT_STEPS"], gpu08["N_STEPS"], gpu08["FINETUNE_STEPS"]]
    assert by["08"][2].settings["recipe"].freeze == ("block_a", "block_b")
    p01 = gb.gpu_params("01_difference_vectors.ipynb")
    assert by["01"][1].steps == p01.N_STEPS and p01.AE_STEPS is None  # AE_STEPS None: the notebook uses N_STEPS
    p03 = gb.gpu_params("03_dcgan_deep_dive.ipynb")  # ToyFaces: the deep dive runs, and trains its ablation
    assert [j.steps for j in by["03 deep dive"]] == [0, max(1, int(round(p03.N_STEPS * p03.ABLATION_FRACTION)))]


@pytest.mark.slow
def test_the_gpu_profiles_train_within_about_12_t4_minutes(jobs):
    """The gpu profile's budget is at most 15 minutes per lesson on a T4; about 12 of them may train, the rest is data,
    evaluation and figures. About a minute."""
    flops: dict[str, int] = {}
    for j in jobs:
        if j.builder is not None and j.steps and j.key not in flops:
            flops[j.key] = gb.count_flops(j)
    totals = {r["lesson"]: r["t4_lesson_min"] for r in gb.budget_rows(jobs, flops) if r["model"] == "total"}
    assert set(totals) == set(gb.LESSONS)
    assert all(m is not None and m <= 12.0 for m in totals.values()), totals


# ------------------------------------------------------------------------------------------------- minutes


def test_minutes_scale_with_the_steps_and_inversely_with_the_throughput():
    assert gb.minutes(6e12, 100, 1e12) == pytest.approx(10.0)
    assert gb.minutes(6e12, 200, 1e12) == pytest.approx(2 * gb.minutes(6e12, 100, 1e12))
    assert gb.minutes(6e12, 100, 2e12) == pytest.approx(gb.minutes(6e12, 100, 1e12) / 2)
    with pytest.raises(ValueError):
        gb.minutes(1.0, 1, 0.0)
    assert gb.T4_SUSTAINED_FP32 < gb.T4_PEAK_FP32 and gb.T4_SUSTAINED_AMP < gb.T4_PEAK_FP16_TENSOR
    assert gb.T4_SUSTAINED_AMP > gb.T4_SUSTAINED_FP32


def test_rows_totals_and_the_budget_flag():
    def job(lesson, steps, amp=False):
        return gb.Job(lesson, f"m{steps}", 64, 4, steps, gb.dcgan_step, dict(size=steps), amp=amp)

    jobs = [job("a", 100), job("a", 300), job("b", 100, amp=True)]
    flops = {j.key: 60 * 1e12 * 0.05 for j in jobs}  # 3e12 FLOP per step
    rows = gb.budget_rows(jobs, flops, fp32_rate=1e12, amp_rate=3e12)
    a1, a2, a_total, b1, b_total = rows
    assert (a1["t4_fp32_min"], a2["t4_fp32_min"]) == pytest.approx((5.0, 15.0))  # 3e12 x 100 / 1e12 / 60
    assert a_total["t4_fp32_min"] == pytest.approx(20.0) and a_total["over_budget"] is True
    assert b1["t4_amp_min"] == pytest.approx(5 / 3) and b1["t4_lesson_min"] == b1["t4_amp_min"]
    assert b_total["over_budget"] is False and b_total["precision"] == "amp"
    assert a1["measured_min"] is None
    timed = gb.budget_rows(jobs, flops, {j.key: 0.6 for j in jobs})
    assert [r["measured_min"] for r in timed] == pytest.approx([1.0, 3.0, 4.0, 1.0, 1.0])
    table = gb.format_table(rows)
    assert "> 15 min" in table and "YES" in table
    json.dumps(rows)  # what --json writes


def test_timing_runs_real_steps_once_per_kind_of_step():
    """What the script does on a CUDA machine, here on the CPU with a tiny CycleGAN."""
    recipe = cg.Recipe(img_size=16, batch_size=2, ngf=4, ndf=4, n_blocks=1)
    jobs = [gb.Job("test", name, 16, 2, steps, gb.cyclegan_step, dict(recipe=recipe))
            for name, steps in (("CycleGAN", 10), ("CycleGAN, seed 1", 30))]
    jobs.append(gb.Job("test", "nothing", 16, 2, 0))
    seconds = gb.measure_seconds(jobs, "cpu", warmup=1, steps=2)
    assert list(seconds) == [jobs[0].key] and 0 < seconds[jobs[0].key] < 10
    rows = gb.budget_rows(jobs, {jobs[0].key: 1}, seconds)
    assert rows[1]["measured_min"] == pytest.approx(3 * rows[0]["measured_min"]) and rows[2]["measured_min"] == 0
    assert "GPU min" in gb.format_table(rows, "GPU min")

    def broken(batch, device):
        def step():
            raise RuntimeError("Expected all tensors to be on the same device")
        return step

    failing = gb.Job("test", "broken", 16, 2, 10, broken)
    assert gb.measure_seconds([failing], "cpu") == {failing.key: None}
    assert "timing failed: RuntimeError" in failing.note
