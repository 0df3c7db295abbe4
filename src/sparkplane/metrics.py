"""Prometheus metrics, one registry per app (no process-global state).

Counters and histograms are updated on the request path; per-device gauges
(in-flight, circuit state) are read from the fleet at scrape time, which costs
the request path nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from sparkplane.fleet.device import Device

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_BREAKER_VALUE = {"closed": 0.0, "half_open": 1.0, "open": 2.0}


class Metrics:
    """The app's metrics and its registry."""

    def __init__(self, devices: Callable[[], Iterable[Device]]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "sparkplane_requests",
            "Inference requests by public model, device and HTTP status.",
            ("model", "device", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "sparkplane_request_duration_seconds",
            "Time from request to last byte, by public model and device.",
            ("model", "device"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.first_byte = Histogram(
            "sparkplane_time_to_first_byte_seconds",
            "Time from request to the device's first byte (streams).",
            ("model", "device"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.retries = Counter(
            "sparkplane_retries",
            "Attempts moved to another device, by reason.",
            ("reason",),
            registry=self.registry,
        )
        self.loads = Counter(
            "sparkplane_model_loads",
            "Models loaded into a device's memory on the scheduler's request, by outcome.",
            ("device", "model", "outcome"),
            registry=self.registry,
        )
        self.evictions = Counter(
            "sparkplane_model_evictions",
            "Models taken out of a device's memory to make room, by outcome.",
            ("device", "model", "outcome"),
            registry=self.registry,
        )
        self.registry.register(_FleetCollector(devices))

    def render(self) -> bytes:
        """The exposition text for /metrics."""
        return generate_latest(self.registry)


class _FleetCollector(Collector):
    def __init__(self, devices: Callable[[], Iterable[Device]]) -> None:
        self._devices = devices

    def collect(self) -> Iterator[Metric]:
        inflight = GaugeMetricFamily(
            "sparkplane_device_inflight", "Requests in flight per device.", labels=("device",)
        )
        breaker = GaugeMetricFamily(
            "sparkplane_device_circuit_state",
            "Circuit breaker per device: 0 closed, 1 half-open, 2 open.",
            labels=("device",),
        )
        pace = GaugeMetricFamily(
            "sparkplane_device_seconds_per_request",
            "Observed seconds per request (moving average) per device.",
            labels=("device",),
        )
        for device in self._devices():
            inflight.add_metric((device.name,), device.inflight)
            breaker.add_metric((device.name,), _BREAKER_VALUE[device.breaker.state.value])
            if device.ewma_s is not None:
                pace.add_metric((device.name,), device.ewma_s)
        yield inflight
        yield breaker
        yield pace
