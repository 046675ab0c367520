"""c2d's sample app: a tiny web service on Python's standard library.

GET /        a page with the app's version and the GREETING env var
GET /health  {"status": "ok", "version": …} for c2d's health checks
It listens on $PORT (set by c2d) and stops cleanly on SIGTERM: it stops
accepting, finishes the requests it holds, then exits.
"""
import http.server
import json
import os
import signal
import socket
import sys
import threading

VERSION = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "VERSION")).read().strip()


class Handler(http.server.BaseHTTPRequestHandler):
    def _send(self, status, content_type, body):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/health":
            self._send(200, "application/json", json.dumps({"status": "ok", "version": VERSION}))
        elif self.path == "/":
            greeting = os.environ.get("GREETING", "Hello")
            self._send(200, "text/plain; charset=utf-8",
                       f"{greeting} from c2d! version {VERSION} on {socket.gethostname()}\n")
        else:
            self._send(404, "text/plain", "not found\n")

    def log_message(self, fmt, *args):
        sys.stdout.write("%s %s\n" % (self.address_string(), fmt % args))
        sys.stdout.flush()


class Server(http.server.ThreadingHTTPServer):
    # Connections waiting to be accepted: the default (5) overflows under a
    # burst, and the kernel then drops connection attempts for a second.
    request_queue_size = 128
    # server_close() waits for the requests in flight.
    daemon_threads = False


def main():
    server = Server(("", int(os.environ.get("PORT", "8080"))), Handler)
    # shutdown() waits for serve_forever() to return: not from its own thread.
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"hello-python {VERSION} listening on {server.server_address[1]}", flush=True)
    server.serve_forever()
    server.server_close()
    print(f"hello-python {VERSION} stopped", flush=True)


if __name__ == "__main__":
    main()
