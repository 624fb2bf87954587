"""A local AWS endpoint (moto) that adds a fixed latency to every request, like a real region.

Used by the benchmarks: ``with LatencyEndpoint(latency_ms=50) as url: ...``. The server runs in
this process on 127.0.0.1 (threaded, so concurrent clients overlap their waits exactly as they
would against AWS) and can also be started alone:

    python bench/latency_endpoint.py --latency-ms 50 --port 4567
"""

from __future__ import annotations

import argparse
import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.serving import make_server


class _Latency:
    def __init__(self, app: Callable[..., Iterable[bytes]], seconds: float) -> None:
        self.app = app
        self.seconds = seconds
        self.requests = 0
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        with self._lock:
            self.requests += 1
        time.sleep(self.seconds)  # the injected round trip: this is the point of the benchmark
        return self.app(environ, start_response)


class LatencyEndpoint:
    """Context manager: a moto server on 127.0.0.1 with ``latency_ms`` added per request."""

    def __init__(self, latency_ms: float = 50.0, port: int = 0) -> None:
        import logging

        from moto.server import DomainDispatcherApplication, create_backend_app

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log per request

        self.middleware = _Latency(
            DomainDispatcherApplication(create_backend_app), latency_ms / 1000.0
        )
        self.server = make_server("127.0.0.1", port, self.middleware, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def requests(self) -> int:
        return self.middleware.requests

    def __enter__(self) -> str:
        self._thread.start()
        return self.url

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--port", type=int, default=4567)
    args = parser.parse_args()
    with LatencyEndpoint(args.latency_ms, args.port) as url:
        print(f"{url} (+{args.latency_ms:g} ms per request); Ctrl-C stops it", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
