"""Bounded pad calibration and the memory budgets behind ``--tile auto`` (CPU, random weights, fast)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from srcli.checkpoints import registry
from srcli.inference import budget, receptive_field, upscaler
from srcli.inference.budget import GIB, MemoryBudget, cpu_memory_budget, network_cost
from srcli.inference.receptive_field import ProbeLimit, ReachBeyond, calibrate_pad, search_pad, theoretical_radius
from srcli.inference.upscaler import Upscaler

NOTICE = "measuring tile overlap for this network, once"


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the user's ~/.cache from tests."""
    monkeypatch.setenv("SRCLI_CACHE", str(tmp_path / "cache"))


def deep_rrdbnet(seed: int = 0) -> nn.Module:
    """ESRGAN's 23 blocks (theoretical reach 349 px) with few features, so a forward pass is cheap."""
    torch.manual_seed(seed)
    return registry.build("esrgan", scale=4, num_blocks=23, num_features=8, growth=4).eval()


class ForwardSpy:
    """Largest batch, largest input (pixels) and total input pixels of every forward pass."""

    def __init__(self, model: nn.Module) -> None:
        self.batches, self.pixels = [], []
        model.register_forward_pre_hook(self.record)

    def record(self, module: nn.Module, inputs: tuple[Any, ...]) -> None:
        self.batches.append(inputs[0].shape[0])
        self.pixels.append(inputs[0].shape[-2] * inputs[0].shape[-1])


# ---------------------------------------------------------------------------------------------
# calibration stays within memory and time budgets, and says that it runs
# ---------------------------------------------------------------------------------------------

def test_deep_rrdbnet_calibration_is_bounded_and_announced(monkeypatch: pytest.MonkeyPatch) -> None:
    model = deep_rrdbnet()
    cost = network_cost(model, torch.device("cpu"), torch.float32)
    memory = cost.bytes_per_pixel * 64 * 64  # one probe may hold a 64x64 region
    monkeypatch.setitem(receptive_field.CALIBRATION_MACS, "cpu", 40_000 * cost.macs_per_pixel)
    spy, heard = ForwardSpy(model), []
    calibration = calibrate_pad(model, memory_budget=memory, on_notice=heard.append)
    assert heard == [NOTICE]
    assert calibration.theoretical == theoretical_radius(model) == 349
    probes = spy.pixels[1:]  # the first forward is the 16x16 cost measurement
    assert probes and max(spy.batches) == 1  # one image at a time
    assert max(probes) <= 64 * 64  # peak probe tensor within the memory budget
    assert sum(probes) <= 40_000  # the compute budget: a few seconds however deep the network
    assert calibration.resolved or 0 <= calibration.pad < 349


def test_cached_calibration_is_silent_and_keeps_whether_it_settled(monkeypatch: pytest.MonkeyPatch) -> None:
    model = deep_rrdbnet()
    monkeypatch.setitem(receptive_field.CALIBRATION_MACS, "cpu", 0.0)  # nothing may run: cannot settle
    heard: list[str] = []
    first = calibrate_pad(model, on_notice=heard.append)
    assert not first.resolved and first.pad == 0 and first.safe_pad == 349
    assert calibrate_pad(model, on_notice=heard.append) == first
    assert heard == [NOTICE]  # measured once; the cache hit prints nothing
    assert receptive_field.calibrated_pad(model) == 349  # the int API stays exact where unsettled


def test_search_reports_a_reach_beyond_its_budget() -> None:
    needed = 37
    probe = lambda pad, reference: 0.0 if pad >= needed else 1.0  # noqa: E731
    with pytest.raises(ReachBeyond) as caught:
        search_pad(probe, cap=24, target=0.1, cap_is_exact=False)  # memory allows pads up to 24 only
    assert caught.value.pad == 16  # 16 failed against 24, and no larger comparison fits
    assert search_pad(probe, cap=24, target=0.1) == 24  # an exact cap (the theoretical radius) is an answer

    def limited(pad: int, reference: int) -> float:
        if reference > 64:
            raise ProbeLimit()
        return probe(pad, reference)

    with pytest.raises(ReachBeyond) as caught:
        search_pad(limited, cap=300, target=0.1)
    assert caught.value.pad == 32  # 32 failed against 64; 64 against 128 was over the budget


def test_a_limit_during_bisection_keeps_the_passing_pad() -> None:
    calls = []

    def probe(pad: int, reference: int) -> float:
        calls.append(pad)
        if len(calls) > 5:
            raise ProbeLimit()
        return 0.0 if pad >= 37 else 1.0

    assert search_pad(probe, cap=300, target=0.1) == 64  # 4, 8, 16, 32 failed, 64 passed, then the limit
    assert calls == [4, 8, 16, 32, 64, 48]


# ---------------------------------------------------------------------------------------------
# --tile auto with a reach too far to measure
# ---------------------------------------------------------------------------------------------

def test_unsettled_reach_runs_whole_when_it_fits_else_the_largest_tile(monkeypatch: pytest.MonkeyPatch) -> None:
    model = deep_rrdbnet()
    monkeypatch.setitem(receptive_field.CALIBRATION_MACS, "cpu", 0.0)
    heard: list[str] = []
    runner = Upscaler(model, device="cpu", precision="fp32", tile="auto", on_notice=heard.append)
    per_pixel = runner._runner_bytes_per_pixel()
    budgets = MemoryBudget(whole=per_pixel * 40 * 40, tile=per_pixel * 96 * 96)
    monkeypatch.setattr(upscaler, "memory_budget", lambda device: budgets)
    image = torch.rand(3, 40, 40)
    runner.upscale(image)
    assert runner.last_tile_size is None and runner.last_tile_pad is None and heard == []  # whole: no calibration
    spy = ForwardSpy(runner.runner)
    runner.upscale(torch.rand(3, 100, 90))
    assert runner.last_tile_pad == 96 // 6  # not the theoretical 349: a sixth of the region side
    assert runner.last_tile_size == 96 - 2 * 16
    assert max(spy.pixels) <= 96 * 96  # every tile within the tile budget
    assert heard[0] == NOTICE and "reaches past" in heard[1] and heard[2].startswith("tiling: 64 px tiles")
    assert runner.notices == [heard[1]]  # the pad fallback is a warning; progress notes are not
    runner.upscale(torch.rand(3, 100, 90))
    assert len(heard) == 3  # each choice is told once


def test_library_is_silent_without_a_callback(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    model = deep_rrdbnet()
    monkeypatch.setitem(receptive_field.CALIBRATION_MACS, "cpu", 0.0)
    runner = Upscaler(model, device="cpu", precision="fp32", tile="auto")
    per_pixel = runner._runner_bytes_per_pixel()
    monkeypatch.setattr(upscaler, "memory_budget", lambda device: MemoryBudget(0.0, per_pixel * 96 * 96))
    runner.upscale(torch.rand(3, 20, 20))
    assert runner.last_tile_size == 64
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


# ---------------------------------------------------------------------------------------------
# budgets
# ---------------------------------------------------------------------------------------------

def test_meminfo_is_read_and_anything_unreadable_is_none(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24683772 kB\nMemFree:  100 kB\nMemAvailable:   19463696 kB\n")
    assert budget.available_ram_bytes(str(meminfo)) == 19463696 * 1024
    meminfo.write_text("MemTotal: 1 kB\n")
    assert budget.available_ram_bytes(str(meminfo)) is None
    meminfo.write_text("MemAvailable: lots\n")
    assert budget.available_ram_bytes(str(meminfo)) is None
    assert budget.available_ram_bytes(str(tmp_path / "missing")) is None


def test_cpu_budget_follows_available_memory() -> None:
    assert cpu_memory_budget(None) == MemoryBudget(GIB, GIB)  # unreadable: the old fixed budget
    assert cpu_memory_budget(16 * GIB) == MemoryBudget(8 * GIB, GIB)  # whole images get half
    assert cpu_memory_budget(2 * GIB) == MemoryBudget(GIB, 0.5 * GIB)  # a tight machine: a quarter per tile
    assert cpu_memory_budget(1024 * GIB) == MemoryBudget(budget.WHOLE_IMAGE_MAX, GIB)  # capped
    assert cpu_memory_budget(0) == MemoryBudget(0, 0)


@pytest.mark.parametrize("available_gib", [None, 2, 24, 128, 1024])
def test_rrdbnet_x4_runs_500_squared_whole_when_it_fits_and_always_tiles_2048_squared(
        available_gib: int | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """500^2 (estimate ~4 GiB) runs whole given 8+ GiB free; 2048^2 (~64 GiB) tiles in <= 1 GiB tiles on any
    machine, which keeps benchmarks/inference.py's 3 GB peak-RSS target for that job."""
    available = None if available_gib is None else available_gib * GIB
    monkeypatch.setattr(budget, "available_ram_bytes", lambda meminfo=budget.MEMINFO: available)
    torch.manual_seed(0)
    model = registry.build("esrgan", scale=4, num_blocks=1)  # 64 features: RRDBNet-23's bytes per pixel
    runner = Upscaler(model, device="cpu", precision="fp32", tile="auto", tile_pad=0)
    fits_whole = available_gib is not None and available_gib >= 8
    assert (runner.tile_size(500, 500) is None) == fits_whole
    tile = runner.tile_size(2048, 2048)
    assert tile is not None and tile * tile * runner._runner_bytes_per_pixel() <= GIB
