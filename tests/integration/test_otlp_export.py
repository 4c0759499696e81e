"""Traces reach a real OTLP receiver over HTTP and gRPC, per the standard ``OTEL_*`` variables."""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from auth_service.config import SettingsError, load_settings
from tests.support.processes import ServiceProcess, free_port, wait_until

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


class _Received:
    def __init__(self) -> None:
        self.trace_ids: set[str] = set()
        self.paths: set[str] = set()
        self.lock = threading.Lock()

    def add(self, body: bytes, path: str) -> None:
        request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
        with self.lock:
            self.paths.add(path)
            for rs in request.resource_spans:
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        self.trace_ids.add(span.trace_id.hex())


@pytest.fixture
def http_receiver() -> Iterator[tuple[str, _Received]]:
    got = _Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.add(body, self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", got
    server.shutdown()


@pytest.fixture
def grpc_receiver() -> Iterator[tuple[str, _Received]]:
    got = _Received()

    class Service(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request, context):  # noqa: N802 - the generated name
            got.add(request.SerializeToString(), "grpc")
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Service(), server)
    port = free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    yield f"http://127.0.0.1:{port}", got
    server.stop(None)


def _traced_request(env: dict[str, str], got: _Received) -> None:
    env = {**env, "OTEL_BSP_SCHEDULE_DELAY": "50"}
    with ServiceProcess(env) as svc:
        # urllib, not httpx: an earlier test's in-process app may have instrumented httpx,
        # whose client span would replace this traceparent with its own.
        request = urllib.request.Request(
            f"{svc.url}/health/live", headers={"traceparent": TRACEPARENT}
        )
        with urllib.request.urlopen(request, timeout=10) as r:  # noqa: S310 - loopback URL
            assert r.status == 200
        wait_until(lambda: TRACE_ID in got.trace_ids, 15, "the span at the receiver")


def test_traces_endpoint_over_http(
    base_env: dict[str, str], http_receiver: tuple[str, _Received]
) -> None:
    url, got = http_receiver
    env = {**base_env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{url}/custom/traces"}
    _traced_request(env, got)
    assert got.paths == {"/custom/traces"}  # the per-signal URL is used as given


def test_base_endpoint_over_http_appends_the_signal_path(
    base_env: dict[str, str], http_receiver: tuple[str, _Received]
) -> None:
    url, got = http_receiver
    _traced_request({**base_env, "OTEL_EXPORTER_OTLP_ENDPOINT": url}, got)
    assert got.paths == {"/v1/traces"}


def test_grpc_protocol(base_env: dict[str, str], grpc_receiver: tuple[str, _Received]) -> None:
    url, got = grpc_receiver
    env = {**base_env, "OTEL_EXPORTER_OTLP_ENDPOINT": url, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
    _traced_request(env, got)


def test_an_unknown_protocol_is_one_clear_line(base_env: dict[str, str]) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings({**base_env, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, env_file=False)
    assert err.value.problems == [
        "OTEL_EXPORTER_OTLP_PROTOCOL: invalid value 'http/json': must be one of http/protobuf, grpc"
    ]
