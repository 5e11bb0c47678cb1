#!/usr/bin/env python3
"""A token server for the registry tests (the distribution token spec, GET flavour).

GET /token?service=S&scope=repository:R:ACTIONS[&scope=...] answers {"token", "access_token",
"expires_in", "issued_at"}: a JWT signed RS256 with --key, its certificate (--cert) in the x5c
header, so that docker-registry (auth: token: rootcertbundle = --cert) trusts it. With --user
and --password a request must carry those Basic credentials (401 otherwise). --jwt-lifetime is
the token's exp as the registry sees it; --expires-in is what the client is told (they differ
to make a registry refuse a token the client still believes fresh). Every token request is
appended to --log as one line "METHOD PATH-AND-QUERY AUTH", AUTH being "basic" or "anonymous"
(never the credentials). Listens on 127.0.0.1:--port, serves until killed.
"""
import argparse
import base64
import json
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--issuer", required=True)
    ap.add_argument("--service", required=True)
    ap.add_argument("--user", default="")
    ap.add_argument("--password", default="")
    ap.add_argument("--expires-in", type=int, default=300)
    ap.add_argument("--jwt-lifetime", type=int, default=300)
    ap.add_argument("--log", required=True)
    args = ap.parse_args()

    with open(args.key, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    with open(args.cert, "rb") as f:
        cert_der = x509.load_pem_x509_certificate(f.read()).public_bytes(serialization.Encoding.DER)

    def sign(claims):
        header = {"alg": "RS256", "typ": "JWT", "x5c": [base64.b64encode(cert_der).decode()]}
        signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
        sig = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + b64url(sig)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            url = urlparse(self.path)
            auth = self.headers.get("Authorization", "")
            kind = "basic" if auth.startswith("Basic ") else "anonymous"
            with open(args.log, "a") as log:
                log.write(f"GET {self.path} {kind}\n")
            if url.path != "/token":
                self.send_error(404)
                return
            if args.user:
                want = "Basic " + base64.b64encode(f"{args.user}:{args.password}".encode()).decode()
                if auth != want:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="token"')
                    self.end_headers()
                    return
            q = parse_qs(url.query)
            access = []
            for scope in q.get("scope", []):
                parts = scope.split(":")
                if len(parts) == 3:
                    access.append({"type": parts[0], "name": parts[1], "actions": parts[2].split(",")})
            now = int(time.time())
            claims = {"iss": args.issuer, "sub": args.user or "anonymous", "aud": q.get("service", [""])[0],
                      "exp": now + args.jwt_lifetime, "nbf": now - 10, "iat": now, "jti": uuid.uuid4().hex,
                      "access": access}
            token = sign(claims)
            body = json.dumps({"token": token, "access_token": token, "expires_in": args.expires_in,
                               "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
