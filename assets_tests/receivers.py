"""Local receivers emulating remote alert endpoints: an HTTP server for Slack webhooks and PagerDuty Events v2."""

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        server = self.server
        server.requests.append((self.path, self.headers["Content-Type"], body))
        if len(server.requests) <= server.failures_first:
            self.send_response(503)
            self.end_headers()
            return
        if self.path == "/v2/enqueue":
            self.send_response(202)
            reply = {"status": "success", "message": "Event processed", "dedup_key": body["dedup_key"]}
        else:
            self.send_response(200)
            reply = "ok"
        data = json.dumps(reply).encode() if isinstance(reply, dict) else reply.encode()
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_receiver():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.requests, server.failures_first = [], 0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
