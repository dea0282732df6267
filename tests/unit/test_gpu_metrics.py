"""GPU metrics: absent without NVML, one series per device with it (NVML faked: no GPU here)."""

from __future__ import annotations

import sys
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from app.gpu import GpuCollector, register_gpu_metrics
from app.metrics import Metrics


class FakeNVMLError(Exception):
    pass


def fake_nvml(devices: list[dict[str, Any] | None], init_error: bool = False) -> Any:
    """The slice of the ``pynvml`` API the collector calls; ``None`` is a device that errs."""

    def init() -> None:
        if init_error:
            raise FakeNVMLError("NVML Shared Library Not Found")

    def handle(index: int) -> dict[str, Any]:
        device = devices[index]
        if device is None:
            raise FakeNVMLError("GPU is lost")
        return device

    return SimpleNamespace(
        NVMLError=FakeNVMLError,
        NVML_TEMPERATURE_GPU=0,
        nvmlInit=init,
        nvmlDeviceGetCount=lambda: len(devices),
        nvmlDeviceGetHandleByIndex=handle,
        nvmlDeviceGetName=lambda h: h["name"],
        nvmlDeviceGetUtilizationRates=lambda h: SimpleNamespace(gpu=h["util"], memory=0),
        nvmlDeviceGetMemoryInfo=lambda h: SimpleNamespace(
            used=h["used"], total=h["total"], free=h["total"] - h["used"]
        ),
        nvmlDeviceGetTemperature=lambda h, sensor: h["temp"],
    )


def samples(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, s.labels["gpu"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("textserve_gpu_")
    }


def test_no_gpu_series_without_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails, as without the gpu extra
    metrics = Metrics()
    assert metrics.gpu is None
    assert samples(metrics.registry) == {}


def test_no_gpu_series_when_nvml_finds_no_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml([], init_error=True))
    assert register_gpu_metrics(CollectorRegistry()) is None
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml([]))
    assert register_gpu_metrics(CollectorRegistry()) is None


def test_one_series_per_device_and_a_lost_device_is_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    h200 = {"name": b"NVIDIA H200", "util": 37, "used": 2 * 2**30, "total": 141 * 2**30, "temp": 41}
    l4 = {"name": "NVIDIA L4", "util": 100, "used": 0, "total": 24 * 2**30, "temp": 55}
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml([h200, None, l4]))
    metrics = Metrics()
    assert isinstance(metrics.gpu, GpuCollector)
    got = samples(metrics.registry)
    assert got == {
        ("textserve_gpu_utilization_ratio", "0"): 0.37,
        ("textserve_gpu_memory_used_bytes", "0"): 2.0 * 2**30,
        ("textserve_gpu_memory_total_bytes", "0"): 141.0 * 2**30,
        ("textserve_gpu_temperature_celsius", "0"): 41.0,
        ("textserve_gpu_utilization_ratio", "2"): 1.0,
        ("textserve_gpu_memory_used_bytes", "2"): 0.0,
        ("textserve_gpu_memory_total_bytes", "2"): 24.0 * 2**30,
        ("textserve_gpu_temperature_celsius", "2"): 55.0,
    }
    text = generate_latest(metrics.registry).decode()
    assert 'textserve_gpu_temperature_celsius{gpu="0",name="NVIDIA H200"} 41.0' in text
