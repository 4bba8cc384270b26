"""A local HTTP server answering the few Hugging Face Hub routes a model download uses.

The hub itself is unreachable here, so the download path (``huggingface_hub``'s
``snapshot_download``, which latestore calls for a hub id that is not cached) is
tested against this stand-in at ``HF_ENDPOINT``: a real HTTP server over a real socket,
serving a tiny checkpoint folder as one repository at one commit. Routes:

    GET  /api/models/<org>/<name>[/revision/<rev>]    repository info (its commit)
    GET  /api/models/<org>/<name>/tree/<commit>[/...] the files, with sizes and blob ids
    HEAD/GET /<org>/<name>/resolve/<rev>/<path>       a file, with commit and etag headers

Every request is recorded, so a test can tell a download from a cache hit.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit


class HubStandIn:
    def __init__(self, repo_id: str, checkpoint: Path, commit: str) -> None:
        self.repo_id = repo_id
        self.commit = commit
        self.files = {
            p.relative_to(checkpoint).as_posix(): p.read_bytes()
            for p in sorted(checkpoint.rglob("*"))
            if p.is_file()
        }
        self.requests: list[str] = []

    def info(self) -> dict[str, Any]:
        return {
            "id": self.repo_id,
            "modelId": self.repo_id,
            "sha": self.commit,
            "private": False,
            "disabled": False,
            "gated": False,
            "tags": [],
            "siblings": [{"rfilename": name} for name in self.files],
        }

    def tree(self) -> list[dict[str, Any]]:
        return [
            {"type": "file", "path": name, "size": len(data), "oid": _git_blob_id(data)}
            for name, data in self.files.items()
        ]


def _git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def _handler(hub: HubStandIn) -> type[BaseHTTPRequestHandler]:
    repo = hub.repo_id

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            pass

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def do_GET(self) -> None:
            self._answer(body=True)

        def _answer(self, *, body: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            hub.requests.append(f"{self.command} {path}")
            api = f"/api/models/{repo}"
            if path == api or path.startswith(f"{api}/revision/"):
                return self._json(hub.info(), body)
            if path.startswith(f"{api}/tree/"):
                return self._json(hub.tree(), body)
            prefix = f"/{repo}/resolve/"
            if path.startswith(prefix):
                _revision, _, name = path[len(prefix) :].partition("/")
                data = hub.files.get(name)
                if data is None:
                    return self._missing()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("ETag", f'"{_git_blob_id(data)}"')
                self.send_header("X-Repo-Commit", hub.commit)
                self.end_headers()
                if body:
                    self.wfile.write(data)
                return None
            return self._missing()

        def _json(self, payload: Any, body: bool) -> None:
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

        def _missing(self) -> None:
            data = b'{"error": "Repository Not Found"}'
            self.send_response(404)
            self.send_header("X-Error-Code", "RepoNotFound")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@contextmanager
def serve_hub(hub: HubStandIn) -> Iterator[str]:
    """Serve ``hub`` on a free local port; yields the endpoint URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
