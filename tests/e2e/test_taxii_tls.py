"""`--to taxii:https://…`: certificates are always verified; `--ca-file` adds a private CA.

A throw-away CA and server certificate are made with the `openssl` command line; a minimal
HTTPS stub serves a TAXII API root and a read-only collection (enough to prove the TLS handshake
succeeded: the run then fails on `can_write: false`, not on the certificate).
"""
from __future__ import annotations

import http.server
import json
import ssl
import subprocess
import threading

import pytest

from e2e_util import EXIT_FAILED, SAMPLES, run_ctiport

MEDIA_TYPE = "application/taxii+json;version=2.1"


def make_certificates(directory):
    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
            "-out", "ca.pem", "-days", "2", "-subj", "/CN=ctiport test CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key",
            "-out", "server.csr", "-subj", "/CN=localhost")
    (directory / "ext.cnf").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
        "extendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")
    return directory / "ca.pem", directory / "server.pem", directory / "server.key"


class TaxiiStub(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        if self.path == "/api1/":
            body = {"title": "tls stub", "versions": [MEDIA_TYPE], "max_content_length": 100000}
        else:
            body = {"id": "c1", "title": "stub", "can_read": True, "can_write": False}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", MEDIA_TYPE)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def https_stub(tmp_path):
    ca, cert, key = make_certificates(tmp_path)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), TaxiiStub)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "https://127.0.0.1:%d/api1/collections/c1/" % server.server_address[1], ca
    finally:
        server.shutdown()
        server.server_close()


def test_untrusted_certificate_fails_at_once_and_ca_file_trusts_it(https_stub):
    url, ca = https_stub
    r = run_ctiport("export", "--from", "dir:%s" % SAMPLES, "--to", "taxii:" + url,
                    "--no-progress")
    assert r.returncode == EXIT_FAILED, r.describe()
    assert "not trusted" in r.stderr and "--ca-file" in r.stderr, r.describe()
    assert "retrying" not in r.stderr, "a certificate error was retried\n" + r.describe()

    r = run_ctiport("export", "--from", "dir:%s" % SAMPLES, "--to", "taxii:" + url,
                    "--ca-file", ca, "--no-progress")
    assert r.returncode == EXIT_FAILED, r.describe()
    assert "can_write: false" in r.stderr, r.describe()
    assert "not trusted" not in r.stderr, r.describe()
