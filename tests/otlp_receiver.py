"""A test OTLP receiver: gRPC (MetricsService, TraceService, LogsService) and HTTP/protobuf, decoding the real
wire format, with the OpenTelemetry Collector's default limits: a gRPC message of at most 4 MiB, an HTTP body of at
most 20 MiB, both after decompression."""

from __future__ import annotations

import gzip
import json
import sys
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from opentelemetry.sdk.metrics.export import MetricReader, MetricsData

from otel_chargy.metrics import PushCollections

Attributes = dict[str, Any]

COLLECTOR_MAX_GRPC_BYTES = 4 * 1024 * 1024
COLLECTOR_MAX_HTTP_BYTES = 20 * 1024 * 1024


def value_of(any_value: AnyValue) -> Any:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def _metadata(context: grpc.ServicerContext) -> dict[str, str]:
    """gRPC metadata as text: a binary (`-bin`) value is decoded as far as it goes."""
    return {
        key: value if isinstance(value, str) else value.decode(errors="replace")
        for key, value in context.invocation_metadata()
    }


def attributes_of(key_values: Any) -> Attributes:
    return {kv.key: value_of(kv.value) for kv in key_values}


class OtlpReceiver:
    def __init__(
        self, max_grpc_bytes: int = COLLECTOR_MAX_GRPC_BYTES, max_http_bytes: int = COLLECTOR_MAX_HTTP_BYTES
    ) -> None:
        self._lock = threading.Lock()
        self.metric_requests: list[metrics_service_pb2.ExportMetricsServiceRequest] = []
        self.metric_request_sizes: list[int] = []
        """Bytes of each metrics request received, after decompression."""
        self.refused_http_bodies: list[int] = []
        self.trace_requests: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self.log_requests: list[logs_service_pb2.ExportLogsServiceRequest] = []
        self.received_bytes: list[bytes] = []
        """Every byte that reached the receiver: bodies and header or metadata values."""
        self.headers: list[dict[str, str]] = []
        receiver = self

        class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
            def Export(self, request: Any, context: grpc.ServicerContext) -> Any:
                receiver._record(request, _metadata(context), request.SerializeToString())
                return metrics_service_pb2.ExportMetricsServiceResponse()

        class Traces(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request: Any, context: grpc.ServicerContext) -> Any:
                receiver._record(request, _metadata(context), request.SerializeToString())
                return trace_service_pb2.ExportTraceServiceResponse()

        class Logs(logs_service_pb2_grpc.LogsServiceServicer):
            def Export(self, request: Any, context: grpc.ServicerContext) -> Any:
                receiver._record(request, _metadata(context), request.SerializeToString())
                return logs_service_pb2.ExportLogsServiceResponse()

        # gRPC refuses a larger message itself, as the Collector does: "Received message larger than max".
        self._grpc = grpc.server(
            futures.ThreadPoolExecutor(max_workers=4), options=[("grpc.max_receive_message_length", max_grpc_bytes)]
        )
        # opentelemetry-proto's generated gRPC modules carry no type hints.
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), self._grpc)  # type: ignore[no-untyped-call]
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), self._grpc)  # type: ignore[no-untyped-call]
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(Logs(), self._grpc)  # type: ignore[no-untyped-call]
        self.grpc_port = self._grpc.add_insecure_port("127.0.0.1:0")

        class Http(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                body = gzip.decompress(raw) if self.headers.get("Content-Encoding") == "gzip" else raw
                if len(body) > max_http_bytes:
                    with receiver._lock:
                        receiver.refused_http_bodies.append(len(body))
                    self.send_error(413, "Request Entity Too Large")
                    return
                request: Any
                if self.path == "/v1/metrics":
                    request = metrics_service_pb2.ExportMetricsServiceRequest.FromString(body)
                    response = metrics_service_pb2.ExportMetricsServiceResponse()
                elif self.path == "/v1/traces":
                    request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
                    response = trace_service_pb2.ExportTraceServiceResponse()
                elif self.path == "/v1/logs":
                    request = logs_service_pb2.ExportLogsServiceRequest.FromString(body)
                    response = logs_service_pb2.ExportLogsServiceResponse()
                else:
                    self.send_error(404)
                    return
                receiver._record(request, dict(self.headers.items()), body)
                payload = response.SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Http)
        self._http.daemon_threads = True
        self.http_port = self._http.server_address[1]

    def _record(self, request: Any, headers: dict[str, str], body: bytes) -> None:
        with self._lock:
            if isinstance(request, metrics_service_pb2.ExportMetricsServiceRequest):
                self.metric_requests.append(request)
                self.metric_request_sizes.append(len(body))
            elif isinstance(request, logs_service_pb2.ExportLogsServiceRequest):
                self.log_requests.append(request)
            else:
                self.trace_requests.append(request)
            self.headers.append(headers)
            self.received_bytes.append(body)
            self.received_bytes.extend(str(value).encode() for value in headers.values())

    def take_requests(
        self,
    ) -> tuple[list[metrics_service_pb2.ExportMetricsServiceRequest], int, int]:
        """The metrics requests received since the last call, and how many trace and log requests; the
        receiver forgets everything it received so far (for long runs, which read as they go)."""
        with self._lock:
            taken = self.metric_requests, len(self.trace_requests), len(self.log_requests)
            self.metric_requests, self.trace_requests, self.log_requests = [], [], []
            self.metric_request_sizes.clear()
            self.received_bytes.clear()
            self.headers.clear()
        return taken

    def __enter__(self) -> OtlpReceiver:
        self._grpc.start()
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._grpc.stop(grace=None)
        self._http.shutdown()
        self._http.server_close()

    @property
    def grpc_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def latest_metric(self, name: str) -> tuple[Attributes, Metric] | None:
        """(resource attributes, metric) from the newest request that carried the metric with data points."""
        with self._lock:
            requests = list(self.metric_requests)
        for request in reversed(requests):
            for resource_metrics in request.resource_metrics:
                for scope_metrics in resource_metrics.scope_metrics:
                    for metric in scope_metrics.metrics:
                        if metric.name == name and points_of(metric):
                            return attributes_of(resource_metrics.resource.attributes), metric
        return None

    def metric_points(self) -> list[tuple[str, Any]]:
        """(metric name, data point) of every metrics request received so far."""
        with self._lock:
            requests = list(self.metric_requests)
        return [
            (metric.name, point)
            for request in requests
            for resource_metrics in request.resource_metrics
            for scope_metrics in resource_metrics.scope_metrics
            for metric in scope_metrics.metrics
            for point in points_of(metric)
        ]

    def spans(self) -> list[tuple[Attributes, Span]]:
        with self._lock:
            requests = list(self.trace_requests)
        return [
            (attributes_of(resource_spans.resource.attributes), span)
            for request in requests
            for resource_spans in request.resource_spans
            for scope_spans in resource_spans.scope_spans
            for span in scope_spans.spans
        ]

    def log_records(self) -> list[tuple[Attributes, str, LogRecord]]:
        """(resource attributes, scope name, record) of every log record received so far, in order."""
        with self._lock:
            requests = list(self.log_requests)
        return [
            (attributes_of(resource_logs.resource.attributes), scope_logs.scope.name, record)
            for request in requests
            for resource_logs in request.resource_logs
            for scope_logs in resource_logs.scope_logs
            for record in scope_logs.log_records
        ]

    def all_bytes(self) -> bytes:
        with self._lock:
            return b"\n".join(self.received_bytes)


def points_of(metric: Metric) -> list[Any]:
    kind = metric.WhichOneof("data")
    return list(getattr(metric, kind).data_points) if kind else []


def point_values(metric: Metric) -> dict[frozenset[tuple[str, Any]], float]:
    values = {}
    for point in points_of(metric):
        value = point.as_int if point.WhichOneof("value") == "as_int" else point.as_double
        values[frozenset(attributes_of(point.attributes).items())] = float(value)
    return values


class KeepingReader(PushCollections, MetricReader):
    """A push reader that keeps what it collected, so that its export can be sent, or measured, apart;
    it releases unobserved attribute sets as the service's push readers do."""

    metrics_data: MetricsData | None = None

    def _receive_metrics(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> None:
        self._release_unobserved(metrics_data)
        self.metrics_data = metrics_data

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass


def serve_until_stdin_closes() -> None:
    """`python -m tests.otlp_receiver`: a receiver in a process of its own, for long runs whose process
    figures it must not mix with (the soak). Prints its endpoints as one JSON line, keeps nothing it
    receives, and when stdin closes prints the requests it received as one JSON line."""
    received = {"metric_requests": 0, "trace_requests": 0, "log_requests": 0}
    with OtlpReceiver() as receiver:
        print(json.dumps({"grpc": receiver.grpc_endpoint, "http": receiver.http_endpoint}), flush=True)
        closed = threading.Event()

        def wait_for_stdin_to_close() -> None:
            sys.stdin.read()
            closed.set()

        threading.Thread(target=wait_for_stdin_to_close, daemon=True).start()
        while not closed.wait(0.2):
            metric_requests, trace_requests, log_requests = receiver.take_requests()
            received["metric_requests"] += len(metric_requests)
            received["trace_requests"] += trace_requests
            received["log_requests"] += log_requests
    print(json.dumps(received), flush=True)


if __name__ == "__main__":
    serve_until_stdin_closes()
