"""c2d's database sample: notes kept in a linked managed database.

It runs on any of c2d's managed engines: link one and deploy,
    c2d db create demo/notes-db --engine postgres   # or mariadb, or redis
    c2d db link demo/notes-db demo/notes
and the app uses the first of these variables that the link set:
    DATABASE_URL  postgresql://…  PostgreSQL through psycopg2, the table notes
    MYSQL_URL     mysql://…       MariaDB through pymysql, the table notes (utf8mb4)
    REDIS_URL     redis://…       Redis through redis-py, the list notes (newest first)
(none set: PostgreSQL with libpq's defaults, the PG* variables). Tables are
made on first use; c2d's python stack carries the three drivers.
GET  /         the notes, newest first, one a line, after a count line
POST /notes    stores the request body (UTF-8 text, at most 4 KiB) as a note
GET  /health   200 once the database answers, 503 before
Each request thread has its own connection, opened again after a failure. It
listens on $PORT and stops cleanly on SIGTERM.
"""
import http.server
import json
import os
import signal
import sys
import threading
import urllib.parse

import psycopg2
import pymysql
import redis

# Any driver's error: the database is unavailable (503).
ERRORS = (psycopg2.Error, pymysql.Error, redis.RedisError)


class Postgres:
    """DATABASE_URL: the table notes, ids from a sequence."""

    def __init__(self, url):
        self.conn = psycopg2.connect(url, connect_timeout=5, application_name="notes-python")
        self.conn.autocommit = True
        self._run("CREATE TABLE IF NOT EXISTS notes ("
                  " id bigserial PRIMARY KEY, body text NOT NULL,"
                  " created_at timestamptz NOT NULL DEFAULT now())")

    def _run(self, sql, args=()):
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall() if cur.description else []

    def ping(self):
        self._run("SELECT 1")

    def notes(self):
        bodies = [body for (body,) in self._run("SELECT body FROM notes ORDER BY id DESC")]
        return len(bodies), bodies

    def add(self, body):
        return self._run("INSERT INTO notes (body) VALUES (%s) RETURNING id", (body,))[0][0]

    def close(self):
        self.conn.close()


class MariaDB:
    """MYSQL_URL: the table notes, ids from AUTO_INCREMENT."""

    def __init__(self, url):
        u = urllib.parse.urlsplit(url)
        self.conn = pymysql.connect(
            host=u.hostname or "localhost", port=u.port or 3306,
            user=urllib.parse.unquote(u.username or ""),
            password=urllib.parse.unquote(u.password or ""),
            database=urllib.parse.unquote(u.path.lstrip("/")) or None,
            charset="utf8mb4", autocommit=True, connect_timeout=5, program_name="notes-python")
        self._run("CREATE TABLE IF NOT EXISTS notes ("
                  " id BIGINT AUTO_INCREMENT PRIMARY KEY, body TEXT NOT NULL,"
                  " created_at TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6))"
                  " CHARACTER SET utf8mb4")

    def _run(self, sql, args=()):
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall(), cur.lastrowid

    def ping(self):
        self._run("SELECT 1")

    def notes(self):
        rows, _ = self._run("SELECT body FROM notes ORDER BY id DESC")
        bodies = [body for (body,) in rows]
        return len(bodies), bodies

    def add(self, body):
        return self._run("INSERT INTO notes (body) VALUES (%s)", (body,))[1]

    def close(self):
        self.conn.close()


class Redis:
    """REDIS_URL: the list notes, newest first; a note's id is its number."""

    KEY = "notes"

    def __init__(self, url):
        self.conn = redis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=5,
                                         client_name="notes-python")

    def ping(self):
        self.conn.ping()

    def notes(self):
        # One MULTI/EXEC: the count and the list agree.
        with self.conn.pipeline() as p:
            count, bodies = p.llen(self.KEY).lrange(self.KEY, 0, -1).execute()
        return count, bodies

    def add(self, body):
        return self.conn.lpush(self.KEY, body)

    def close(self):
        self.conn.close()


def backend():
    """The engine class and URL of the linked database: the first variable set."""
    for var, engine in (("DATABASE_URL", Postgres), ("MYSQL_URL", MariaDB), ("REDIS_URL", Redis)):
        if os.environ.get(var):
            return var, engine, os.environ[var]
    return None, Postgres, ""


VAR, ENGINE, URL = backend()
_local = threading.local()


def call(method, *args):
    """Runs ENGINE.method on the request thread's connection, opened on first
    use; a failure closes it, so the next request opens a new one."""
    try:
        if getattr(_local, "db", None) is None:
            _local.db = ENGINE(URL)
        return getattr(_local.db, method)(*args)
    except Exception:
        disconnect()
        raise


def disconnect():
    db, _local.db = getattr(_local, "db", None), None
    if db is not None:
        try:
            db.close()
        except Exception:
            pass


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
                call("ping")
                self._send(200, json.dumps({"status": "ok"}), "application/json")
            elif self.path == "/":
                count, bodies = call("notes")
                self._send(200, "".join([f"{count} notes\n"] + [b + "\n" for b in bodies]))
            else:
                self._send(404, "not found\n")
        except ERRORS as e:
            self._send(503, f"database unavailable: {str(e).strip()}\n")

    def do_POST(self):
        if self.path != "/notes":
            return self._send(404, "not found\n")
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0 or length > 4096:
            return self._send(400, "a note is 1-4096 bytes of text\n")
        try:
            body = self.rfile.read(length).decode()
            self._send(201, f"note {call('add', body)}\n")
        except UnicodeDecodeError:
            self._send(400, "a note is UTF-8 text\n")
        except ERRORS as e:
            self._send(503, f"database unavailable: {str(e).strip()}\n")

    def log_message(self, fmt, *args):
        sys.stdout.write("%s %s\n" % (self.address_string(), fmt % args))
        sys.stdout.flush()


class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 128
    daemon_threads = False

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            disconnect()  # the thread ends: its connection closes now, not at garbage collection


def main():
    if VAR is None:
        print("none of DATABASE_URL, MYSQL_URL, REDIS_URL is set: link a database (c2d db link)",
              flush=True)
    server = Server(("", int(os.environ.get("PORT", "8080"))), Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"notes-python on {ENGINE.__name__} ({VAR or 'no URL'}) listening on "
          f"{server.server_address[1]}", flush=True)
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
