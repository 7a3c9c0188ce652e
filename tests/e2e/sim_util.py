"""Start and stop ctiport-sim, the local stand-in for the Microsoft Graph TI API."""
from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from e2e_util import REPO, canonical_objects, load_json, run_ctiport

SIM_BIN = Path(os.environ.get("CTIPORT_SIM_BIN") or REPO / "target" / "debug" / "ctiport-sim")
TENANT, CLIENT_ID = "sim-tenant", "sim-client"
# Distinctive, so that a leak into any log line or output file is easy to find.
CLIENT_SECRET = "Sx9-not-for-logs-7Qw2"


class Sim:
    def __init__(self, process: subprocess.Popen, url: str):
        self.process = process
        self.url = url

    @property
    def graph_url(self) -> str:
        return self.url + "/v1.0"

    def stats(self) -> dict:
        with urllib.request.urlopen(self.url + "/_sim/stats", timeout=10) as r:
            return json.load(r)

    def requests(self) -> list:
        """The sim's request log: one entry per request, oldest first (docs/sim.md)."""
        with urllib.request.urlopen(self.url + "/_sim/requests", timeout=10) as r:
            log = json.load(r)
        assert log["dropped"] == 0, "the request log overflowed: raise --request-log-cap"
        return log["requests"]

    def issued_tokens(self) -> list:
        """Every access token the sim has issued (a test-only endpoint)."""
        with urllib.request.urlopen(self.url + "/_sim/tokens", timeout=10) as r:
            return json.load(r)

    def post(self, path: str) -> None:
        request = urllib.request.Request(self.url + path, data=b"", method="POST")
        urllib.request.urlopen(request, timeout=10).close()

    def env(self, secret: str = CLIENT_SECRET) -> dict:
        return {"AZURE_TENANT_ID": TENANT, "AZURE_CLIENT_ID": CLIENT_ID, "AZURE_CLIENT_SECRET": secret}

    def source_args(self, *extra) -> list:
        return ["--from", "graph", "--graph-url", self.graph_url, "--authority-url", self.url, *extra]


@contextmanager
def running_sim(*args):
    """`ctiport-sim serve <args>` on an ephemeral loopback port; always stopped afterwards."""
    assert SIM_BIN.is_file(), "ctiport-sim not found at %s (cargo build -p ctiport-sim)" % SIM_BIN
    env = dict(os.environ, CTIPORT_SIM_CLIENT_SECRET=CLIENT_SECRET, NO_COLOR="1")
    process = subprocess.Popen(
        [str(SIM_BIN), "serve", "--port", "0", "--tenant", TENANT, "--client-id", CLIENT_ID, *map(str, args)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, stdin=subprocess.DEVNULL)
    try:
        line = process.stdout.readline().strip()
        assert line.startswith("listening on http://127.0.0.1:"), (
            "ctiport-sim did not start: %r\n%s" % (line, process.stderr.read() if process.poll() is not None else ""))
        yield Sim(process, line.split("listening on ", 1)[1])
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def graph_requests(log: list) -> list:
    """The Graph requests of a request log (not the token endpoint)."""
    return [e for e in log if e["route"] != "token"]


def early_requests(log: list, tolerance: float = 0.02) -> list:
    """Graph requests that arrived while an earlier answer's Retry-After still said to wait.

    Computed here from the log, independently of the sim's own count: a request counts when it
    arrived after the promise was sent (plus `tolerance`, for requests other workers already had
    on the wire) and before the promised instant (less `tolerance`, for timer granularity).
    """
    graph = graph_requests(log)
    promises = [(e["answered"], e["retry_until"]) for e in graph if e["retry_until"] is not None]
    return [e for e in graph
            if any(sent + tolerance <= e["t"] < until - tolerance for sent, until in promises)]


def live_export(sim, out, *extra, secret=CLIENT_SECRET, log_level="info", timeout=3):
    """`ctiport export --from graph` against `sim` into <out>/bundle.json and <out>/s.json."""
    out.mkdir(parents=True, exist_ok=True)
    return run_ctiport("export", *sim.source_args(), "--to", "stix:%s" % (out / "bundle.json"),
                       "--summary", out / "s.json", "--request-timeout", timeout, "--log-level", log_level,
                       *extra, env_extra=sim.env(secret))


def objects_of(path):
    return canonical_objects(load_json(path)["objects"])
