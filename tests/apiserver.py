"""A real ltae API server for tests and benchmarks: uvicorn on a free loopback port, in a thread."""

from __future__ import annotations

import socket
import threading
import time

import httpx


class LiveServer:
    """``with LiveServer(settings) as srv: srv.client.get("/health")``; ``srv.url`` is its base URL."""

    def __init__(self, settings, token: str | None = None, timeout: float = 120.0):
        import uvicorn

        from ltae.serve.api import create_app

        self.app = create_app(settings)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", lifespan="on",
                                                    timeout_graceful_shutdown=2))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.client = httpx.Client(base_url=self.url, timeout=timeout, headers=headers)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the API server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()

    def wait_job(self, job_id: str, timeout: float = 300.0, seen: list | None = None) -> dict:
        """Poll GET /jobs/{id} until the job ends; ``seen`` collects every record polled."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.client.get(f"/jobs/{job_id}").json()
            if seen is not None:
                seen.append(job)
            if job["state"] in ("succeeded", "failed", "interrupted"):
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['state']} after {timeout} s")
            time.sleep(0.2)
