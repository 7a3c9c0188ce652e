"""A medallion 3.0.0 TAXII 2.1 server for the end-to-end tests, configured as in
shared reference stix-taxii.md §6.1: memory backend (`module`/`module_class`), users, an API root
with `"status": []`, collections with `"manifest": []` and `"media_types"`.

medallion and taxii2-client are hard imports: a missing one is a collection ERROR, never a skip.
"""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from base64 import b64encode
from dataclasses import dataclass
from pathlib import Path

import medallion  # noqa: F401  (hard import: the server must be installed)
import taxii2client.v21  # noqa: F401  (hard import: the reader must be installed)

USER, PASSWORD = "admin", "Password0"
WRITABLE = "472c94ae-3113-4e3e-a4dd-a9f4ac7471d4"
READ_ONLY = "91a7b528-80eb-42ed-a74d-c6fbd5a26116"
MEDIA_TYPE = "application/taxii+json;version=2.1"
STARTUP_TIMEOUT = 30


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Medallion:
    process: subprocess.Popen
    port: int
    directory: Path
    log_path: Path

    @property
    def base(self) -> str:
        return "http://127.0.0.1:%d" % self.port

    @property
    def discovery(self) -> str:
        return self.base + "/taxii2/"

    @property
    def api_root(self) -> str:
        return self.base + "/api1/"

    def collection_url(self, collection_id: str = WRITABLE) -> str:
        return "%scollections/%s/" % (self.api_root, collection_id)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _config(port: int, max_content_length: int) -> tuple[dict, dict]:
    api_root = "http://127.0.0.1:%d/api1/" % port
    config = {
        "backend": {"module": "medallion.backends.memory_backend",
                    "module_class": "MemoryBackend", "filename": "data.json"},
        "users": {USER: PASSWORD},
        "taxii": {"max_page_size": 100},
    }
    collection = {"can_read": True, "media_types": ["application/stix+json;version=2.1"],
                  "objects": [], "manifest": []}
    data = {
        "/discovery": {"title": "ctiport test TAXII server",
                       "description": "medallion memory backend for ctiport's e2e tests",
                       "contact": "nobody@example.invalid", "default": api_root,
                       "api_roots": [api_root]},
        "api1": {
            "information": {"title": "ctiport test API root", "description": "test collections",
                            "versions": [MEDIA_TYPE], "max_content_length": max_content_length},
            "status": [],
            "collections": [
                dict(collection, id=WRITABLE, title="writable", description="push target",
                     can_write=True),
                dict(collection, id=READ_ONLY, title="read-only", description="no writes",
                     can_write=False),
            ],
        },
    }
    return config, data


def _ready(server: Medallion) -> bool:
    auth = b64encode(("%s:%s" % (USER, PASSWORD)).encode()).decode()
    request = urllib.request.Request(server.api_root, headers={
        "Accept": MEDIA_TYPE, "Authorization": "Basic " + auth})
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, OSError):
        return False


def start_medallion(directory: Path, max_content_length: int = 20000) -> Medallion:
    """Starts medallion on a free loopback port and waits until its API root answers."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config, data = _config(port, max_content_length)
    (directory / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    (directory / "data.json").write_text(json.dumps(data, indent=2), encoding="utf-8")
    log_path = directory / "medallion.log"
    log = open(log_path, "w", encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, "-m", "medallion.scripts.run", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "INFO", "config.json"],
        cwd=directory, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    server = Medallion(process, port, directory, log_path)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("medallion exited with %s before serving:\n%s"
                               % (process.returncode, server.log()))
        if _ready(server):
            return server
        time.sleep(0.2)
    server.stop()
    raise RuntimeError("medallion did not answer within %d s:\n%s"
                       % (STARTUP_TIMEOUT, server.log()))


def collection(server: Medallion, collection_id: str = WRITABLE,
               password: str = PASSWORD) -> "taxii2client.v21.Collection":
    return taxii2client.v21.Collection(server.collection_url(collection_id), user=USER,
                                       password=password)


def read_all(server: Medallion, collection_id: str = WRITABLE, **filters) -> list:
    """Every object of a collection through taxii2-client, following `more`/`next`."""
    objects = []
    col = collection(server, collection_id)
    for page in taxii2client.v21.as_pages(col.get_objects, per_request=100, **filters):
        objects.extend(page.get("objects", []))
    return objects


def post_count(server: Medallion) -> dict:
    """HTTP status codes of the add-objects POSTs, from medallion's request log."""
    counts: dict = {}
    for line in server.log().splitlines():
        if '"POST /api1/collections/' in line:
            code = line.rsplit('"', 1)[-1].split()[0]
            counts[code] = counts.get(code, 0) + 1
    return counts
