"""Serve a WSGI app on 127.0.0.1 in a background thread, so fakes are reached over real HTTP.

Going through a real socket (instead of a test client) exercises the same code paths as
production: URL rewriting, timeouts, raw bodies without Content-Type, non-JSON responses.
"""
import threading

from werkzeug.serving import WSGIRequestHandler, make_server


class _QuietHandler(WSGIRequestHandler):
    """Drops the per-request access log line that would otherwise flood test output."""

    def log_request(self, *args, **kwargs):
        pass


class LoopbackServer:
    """A threaded werkzeug server on an ephemeral 127.0.0.1 port.

    `port` and `url` are known once `start()` has bound the socket (both are None before).
    """

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app
        self.port = None
        self.url = None
        self._server = None
        self._thread = None

    def start(self):
        """Bind a fresh port and serve until `stop()`; returns self for chaining."""
        if self._server is not None:
            return self
        self._server = make_server(
            "127.0.0.1", 0, self.wsgi_app, threaded=True, request_handler=_QuietHandler
        )
        self.port = self._server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        # A short poll interval keeps stop() fast: shutdown() waits for the next poll.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"loopback-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self):
        """Stop serving and release the port; safe to call twice."""
        if self._server is None:
            return
        self._server.shutdown()
        self._thread.join(timeout=5)
        self._server.server_close()
        self._server = None
        self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()
