"""Local receivers emulating remote alert endpoints: an HTTP server for Slack webhooks and PagerDuty Events v2,
an SMTP server for e-mail. Both keep the exact bytes they received."""

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's name)
        data = self.rfile.read(int(self.headers["Content-Length"]))
        body = json.loads(data)
        server = self.server
        server.requests.append((self.path, self.headers["Content-Type"], body))
        if hasattr(server, "bodies"):
            server.bodies.append(data)
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


@contextmanager
def serving_http() -> Iterator[ThreadingHTTPServer]:
    """A receiver on 127.0.0.1: `requests` holds (path, content type, parsed body), `bodies` the exact bytes."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.requests, server.bodies, server.failures_first = [], [], 0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def http_receiver():
    with serving_http() as server:
        yield server


class Mailbox:
    """aiosmtpd handler keeping (sender, recipients, authenticated, exact message bytes) of every message."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        self.messages.append((envelope.mail_from, envelope.rcpt_tos, session.authenticated, envelope.content))
        return "250 OK"


@contextmanager
def serving_smtp(**options) -> Iterator[tuple[Controller, Mailbox]]:
    """An SMTP server on 127.0.0.1 (`options` go to aiosmtpd's Controller, e.g. an authenticator)."""
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port(), **options)
    controller.start()
    try:
        yield controller, mailbox
    finally:
        controller.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
