"""GPU metrics from NVML (``nvidia-ml-py``), read at scrape time, one series per device.

Present only when ``pynvml`` imports and NVML sees at least one GPU; on a CPU machine nothing
is registered and ``/metrics`` carries no ``textserve_gpu_*`` series at all.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

GPU_LABELS = ("gpu", "name")


def gpu_metric_families() -> dict[str, GaugeMetricFamily]:
    """The GPU metrics, empty: their names and help in one place."""
    return {
        "util": GaugeMetricFamily(
            "textserve_gpu_utilization_ratio",
            "Fraction of the last sample period in which a kernel ran on the GPU (0 to 1).",
            labels=GPU_LABELS,
        ),
        "used": GaugeMetricFamily(
            "textserve_gpu_memory_used_bytes", "GPU memory in use.", labels=GPU_LABELS
        ),
        "total": GaugeMetricFamily(
            "textserve_gpu_memory_total_bytes", "GPU memory installed.", labels=GPU_LABELS
        ),
        "temp": GaugeMetricFamily(
            "textserve_gpu_temperature_celsius", "GPU core temperature.", labels=GPU_LABELS
        ),
    }


class GpuCollector(Collector):
    """Reads utilisation, memory and temperature of every device from ``nvml`` per scrape."""

    def __init__(self, nvml: Any, device_count: int) -> None:
        self._nvml = nvml
        self._count = device_count

    def describe(self) -> Iterator[Metric]:
        yield from gpu_metric_families().values()

    def collect(self) -> Iterator[Metric]:
        nvml = self._nvml
        families = gpu_metric_families()
        for index in range(self._count):
            # One failing device (fallen off the bus, say) must not hide the others.
            try:
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                name = nvml.nvmlDeviceGetName(handle)
                labels = [str(index), name.decode() if isinstance(name, bytes) else str(name)]
                util = nvml.nvmlDeviceGetUtilizationRates(handle)
                memory = nvml.nvmlDeviceGetMemoryInfo(handle)
                temp = nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)
            except nvml.NVMLError as exc:
                log.debug("gpu %d: %s", index, exc)
                continue
            families["util"].add_metric(labels, util.gpu / 100.0)
            families["used"].add_metric(labels, float(memory.used))
            families["total"].add_metric(labels, float(memory.total))
            families["temp"].add_metric(labels, float(temp))
        yield from families.values()


def register_gpu_metrics(registry: CollectorRegistry) -> GpuCollector | None:
    """Register a ``GpuCollector`` when NVML is importable and sees a GPU; else do nothing."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        count = int(pynvml.nvmlDeviceGetCount())
    except pynvml.NVMLError as exc:  # no driver, no library: a CPU machine
        log.debug("no GPU metrics: %s", exc)
        return None
    if count == 0:
        return None
    collector = GpuCollector(pynvml, count)
    registry.register(collector)
    log.info("GPU metrics on for %d device(s)", count)
    return collector
