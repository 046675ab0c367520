"""c2d's database sample: notes kept in a linked managed PostgreSQL database.

Link a database and deploy:
    c2d db create demo/notes-db --engine postgres
    c2d db link demo/notes-db demo/notes      # the app gets DATABASE_URL
GET  /         the notes, newest first, one a line, after a count line
POST /notes    stores the request body (UTF-8 text, at most 4 KiB) as a note
GET  /health   200 once the database answers, 503 before
It reads DATABASE_URL (set by c2d for the linked database), makes its table
on first use, listens on $PORT and stops cleanly on SIGTERM.
"""
import http.server
import json
import os
import signal
import sys
import threading

import psycopg2

URL = os.environ.get("DATABASE_URL", "")
_local = threading.local()


def connection():
    """One connection per request thread, opened again after a failure."""
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        conn = psycopg2.connect(URL, connect_timeout=5, application_name="notes-python")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS notes ("
                        " id bigserial PRIMARY KEY, body text NOT NULL,"
                        " created_at timestamptz NOT NULL DEFAULT now())")
        _local.conn = conn
    return conn


def query(sql, args=()):
    try:
        with connection().cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall() if cur.description else []
    except psycopg2.Error:
        _local.conn = None
        raise


class Handler(http.server.BaseHTTPRequestHandler):
    def _send(self, status, body, content_type="text/plain; charset=utf-8"):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        try:
            if self.path == "/health":
                query("SELECT 1")
                self._send(200, json.dumps({"status": "ok"}), "application/json")
            elif self.path == "/":
                rows = query("SELECT body FROM notes ORDER BY id DESC")
                self._send(200, "".join([f"{len(rows)} notes\n"] + [r[0] + "\n" for r in rows]))
            else:
                self._send(404, "not found\n")
        except psycopg2.Error as e:
            self._send(503, f"database unavailable: {str(e).strip()}\n")

    def do_POST(self):
        if self.path != "/notes":
            return self._send(404, "not found\n")
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0 or length > 4096:
            return self._send(400, "a note is 1-4096 bytes of text\n")
        try:
            body = self.rfile.read(length).decode()
            (note_id,) = query("INSERT INTO notes (body) VALUES (%s) RETURNING id", (body,))[0]
            self._send(201, f"note {note_id}\n")
        except UnicodeDecodeError:
            self._send(400, "a note is UTF-8 text\n")
        except psycopg2.Error as e:
            self._send(503, f"database unavailable: {str(e).strip()}\n")

    def log_message(self, fmt, *args):
        sys.stdout.write("%s %s\n" % (self.address_string(), fmt % args))
        sys.stdout.flush()


class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 128
    daemon_threads = False


def main():
    if not URL:
        print("DATABASE_URL is not set: link a database (c2d db link)", flush=True)
    server = Server(("", int(os.environ.get("PORT", "8080"))), Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"notes-python listening on {server.server_address[1]}", flush=True)
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
