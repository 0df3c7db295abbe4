"""The hardware report from NVML's answers (recorded, tests/fakes/nvml_recordings)
and the operating system's memory figures (files written by the test)."""

from __future__ import annotations

from pathlib import Path

import pynvml
import pytest

from sparkplane.agent import nvml, sysmem
from sparkplane.agent.hardware import read_hardware
from tests.fakes.nvml import RecordedNVML

GIB = 1 << 30
MEMINFO = """MemTotal:       127665148 kB
MemFree:         9821244 kB
MemAvailable:   104857600 kB
SwapTotal:             0 kB
"""


@pytest.fixture
def proc(tmp_path: Path) -> Path:
    """A /proc with the meminfo of a 128 GB machine with 100 GiB available."""
    folder = tmp_path / "proc"
    folder.mkdir()
    (folder / "meminfo").write_text(MEMINFO)
    return folder


@pytest.fixture
def no_cgroup(tmp_path: Path) -> Path:
    return tmp_path / "no-cgroup"


def test_gb10_memory_comes_from_the_system_and_is_flagged_shared(
    tmp_path: Path, proc: Path, no_cgroup: Path
) -> None:
    report = read_hardware(
        tmp_path, nvml_module=RecordedNVML.load("gb10"), proc=proc, cgroup=no_cgroup
    )
    gpu = report.gpus[0]
    assert gpu.name == "NVIDIA GB10"
    assert gpu.unified
    assert gpu.memory_total_bytes is None
    assert gpu.memory_used_bytes is None
    assert gpu.utilization_pct == 96
    assert gpu.temperature_c == 61
    assert report.memory.kind == "unified"
    assert report.memory.shared
    assert report.memory.total_bytes == 127665148 * 1024
    assert report.memory.free_bytes == 100 * GIB
    assert report.nvml == "ok"
    assert report.driver == "580.95.05"


def test_gb10_system_power_is_estimated_from_the_soc_reading(
    tmp_path: Path, proc: Path, no_cgroup: Path
) -> None:
    report = read_hardware(
        tmp_path, nvml_module=RecordedNVML.load("gb10"), proc=proc, cgroup=no_cgroup
    )
    assert report.gpus[0].power_w == pytest.approx(35.62)
    assert report.power.watts == pytest.approx(35.62 * 240 / 140, abs=0.1)
    assert report.power.measured
    assert "240/140" in report.power.basis


def test_discrete_gpus_report_their_own_memory_summed(
    tmp_path: Path, proc: Path, no_cgroup: Path
) -> None:
    report = read_hardware(
        tmp_path, nvml_module=RecordedNVML.load("h100x2"), proc=proc, cgroup=no_cgroup
    )
    assert report.memory.kind == "gpu"
    assert not report.memory.shared
    assert report.memory.total_bytes == 2 * 85520809984
    assert report.memory.free_bytes == 2 * 85520809984 - 45097156608 - 1073741824
    # One field NVML does not support leaves that field empty, not the GPU.
    assert [g.utilization_pct for g in report.gpus] == [88.0, None]
    assert report.power.watts == pytest.approx(372.2, abs=0.1)


def test_an_rtx_4090(tmp_path: Path, proc: Path, no_cgroup: Path) -> None:
    report = read_hardware(
        tmp_path, nvml_module=RecordedNVML.load("rtx4090"), proc=proc, cgroup=no_cgroup
    )
    assert report.memory.free_bytes == 25757220864 - 6610223104
    assert not report.gpus[0].unified


@pytest.mark.parametrize(
    "error", [pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, pynvml.NVML_ERROR_DRIVER_NOT_LOADED]
)
def test_no_nvml_is_a_normal_machine_with_system_memory(
    tmp_path: Path, proc: Path, no_cgroup: Path, error: int
) -> None:
    report = read_hardware(
        tmp_path, nvml_module=RecordedNVML.failing(error), proc=proc, cgroup=no_cgroup
    )
    assert report.nvml == "absent"
    assert report.gpus == []
    assert report.memory.kind == "system"
    assert not report.memory.shared
    assert report.memory.free_bytes == 100 * GIB
    assert report.power.watts is None
    assert not report.power.measured


def test_the_package_missing_reads_as_absent() -> None:
    assert nvml.read(None).status == "absent"


def test_the_real_library_without_a_gpu_reports_absent() -> None:
    """This machine has no NVIDIA driver: the real pynvml must say so, not fail."""
    assert nvml.read(nvml.load()).status == "absent"


def test_nvml_is_shut_down_after_reading() -> None:
    recorded = RecordedNVML.load("rtx4090")
    nvml.read(recorded)
    assert recorded.shutdowns == 1
    assert not recorded.initialised


def test_a_cgroup_limit_caps_the_memory(tmp_path: Path, proc: Path) -> None:
    cgroup = tmp_path / "cgroup"
    cgroup.mkdir()
    (cgroup / "memory.max").write_text(f"{64 * GIB}\n")
    (cgroup / "memory.current").write_text(f"{10 * GIB}\n")
    memory = sysmem.read(proc, cgroup)
    assert (memory.total, memory.available, memory.source) == (64 * GIB, 54 * GIB, "cgroup")


def test_an_unlimited_cgroup_leaves_the_machine_figures(tmp_path: Path, proc: Path) -> None:
    cgroup = tmp_path / "cgroup"
    (cgroup / "memory").mkdir(parents=True)
    (cgroup / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    (cgroup / "memory.max").write_text("max\n")
    assert sysmem.read(proc, cgroup).source == "meminfo"


def test_the_operator_can_lend_only_part_of_the_machine(
    tmp_path: Path, proc: Path, no_cgroup: Path
) -> None:
    report = read_hardware(
        tmp_path,
        nvml_module=RecordedNVML.load("gb10"),
        proc=proc,
        cgroup=no_cgroup,
        cap_bytes=32 * GIB,
    )
    assert report.memory.total_bytes == report.memory.free_bytes == 32 * GIB


def test_disk_free_is_read_in_the_models_folder(
    tmp_path: Path, proc: Path, no_cgroup: Path
) -> None:
    report = read_hardware(tmp_path, nvml_module=None, proc=proc, cgroup=no_cgroup)
    assert report.disk is not None
    assert report.disk.path == str(tmp_path)
    assert 0 < report.disk.free_bytes <= report.disk.total_bytes
