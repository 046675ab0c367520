#!/usr/bin/env python3
"""A registry token service for tests (the Docker/Distribution token flow).

  token_server.py PORT KEY.pem CERT.pem USER PASSWORD

GET /token?service=S&scope=repository:NAME:ACTIONS with basic auth USER:PASSWORD
answers {"token": JWT, "expires_in": 300}; the JWT is RS256-signed with KEY
(signed by `openssl dgst`, the standard library has no RSA) and carries CERT
in its x5c header, which the registry checks against its rootcertbundle.
Wrong credentials get 401. Every request is counted in GET /count.
"""
import base64
import http.server
import json
import subprocess
import sys
import time
import urllib.parse

port, key, cert, user, password = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
der = subprocess.run(["openssl", "x509", "-in", cert, "-outform", "DER"], check=True,
                     capture_output=True).stdout
requests = 0


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(claims):
    header = {"alg": "RS256", "typ": "JWT", "x5c": [base64.b64encode(der).decode()]}
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=signing_input.encode(),
                               check=True, capture_output=True).stdout
    return signing_input + "." + b64url(signature)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        global requests
        url = urllib.parse.urlparse(self.path)
        if url.path == "/count":
            return self.answer(200, {"count": requests})
        requests += 1
        expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        if self.headers.get("Authorization") != expected:
            return self.answer(401, {"details": "bad credentials"})
        q = urllib.parse.parse_qs(url.query)
        access = []
        for scope in q.get("scope", []):
            kind, name, actions = scope.split(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        claims = {"iss": "c2d-test", "sub": user, "aud": q.get("service", [""])[0], "exp": now + 300,
                  "nbf": now - 10, "iat": now, "jti": str(now) + str(requests), "access": access}
        self.answer(200, {"token": sign(claims), "expires_in": 300})

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), Handler).serve_forever()
