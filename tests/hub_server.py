"""A loopback stand-in for the Hugging Face Hub, for tests.

It speaks the part of the Hub's HTTP protocol that ``huggingface_hub`` uses to download
and upload model files, so tests run the library's real download and upload code
against 127.0.0.1:

- ``HEAD``/``GET /{repo_id}/resolve/{revision}/{filename}``: the file, with ``X-Repo-Commit``
  and ``ETag`` (the git blob sha1 of a regular file, the sha256 of an LFS file, which also
  gets ``X-Linked-Etag``/``X-Linked-Size``), byte ranges, and 404s carrying the Hub's
  ``X-Error-Code`` (``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``).
  With ``lfs_redirect`` on, LFS files answer 302 to ``http://localhost:{port}/cdn/...``,
  another origin, as the Hub sends them to its CDN.
- ``GET /api/models/{repo_id}[/revision/{revision}]`` (``model_info``).
- ``POST /api/repos/create``, ``/api/validate-yaml``, ``/api/models/{repo_id}/preupload/{rev}``
  (every file is "regular", so commits carry content inline), ``.../commit/{rev}`` and
  ``.../branch/{name}``.

Switches for failure tests: ``tamper`` (serve a body of the right length with flipped
bytes), ``cut_short`` (send the headers and half the body, then close), ``fail_next``
(answer the next requests with an error status), ``delay`` (wait before answering).
Every request is logged in ``requests``. ``reset()`` clears repos, switches and the log.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import re
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Mapping, Union
from urllib.parse import parse_qs, quote, unquote, urlsplit

__all__ = ["HubServer", "LoggedRequest", "git_blob_sha1"]

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".onnx", ".h5", ".msgpack")
_SHA1 = re.compile(r"[0-9a-f]{40}")
_API = re.compile(
    r"^/api/models/(?P<repo>[^/]+(?:/[^/]+)?)/(?P<action>preupload|commit|revision|branch)/(?P<rev>[^/]+)$"
)
_INFO = re.compile(r"^/api/models/(?P<repo>[^/]+(?:/[^/]+)?)$")
_CDN = re.compile(r"^/cdn/(?P<sha>[0-9a-f]{64})$")
Files = Union[Mapping[str, bytes], str, "os.PathLike[str]"]  # content by path in the repo, or a folder
_commit_counter = itertools.count()  # module-wide, so commit shas never repeat within a test session


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a file's content, which the Hub sends as a regular file's ETag."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class LoggedRequest:
    method: str
    path: str  # without the query string
    headers: dict[str, str]


@dataclass
class _Repo:
    private: bool = False
    branches: dict[str, str] = field(default_factory=dict)  # branch or tag name -> commit sha
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # commit sha -> files


class _Reply(Exception):
    """Raised inside a handler to answer with an error status and the Hub's error headers."""

    def __init__(self, status: int, message: str, code: str | None = None, commit: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.commit = status, message, code, commit


class HubServer:
    """A threaded HTTP server holding repos in memory.

    Args:
        port: Port to listen on (0 picks a free one).
        token: The only token accepted for writes and for private repos.
    """

    def __init__(self, port: int = 0, *, token: str = "hf_loopback_token") -> None:
        self.token = token
        self._lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", port), _Handler)
        self._httpd.hub = self  # type: ignore[attr-defined]
        self.port = self._httpd.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._thread: threading.Thread | None = None
        self.reset()

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> HubServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def reset(self) -> None:
        """Forget every repo, switch and logged request."""
        with self._lock:
            self.repos: dict[str, _Repo] = {}
            self.tamper: set[str] = set()  # file paths whose GET body is served with flipped bytes
            self.cut_short: dict[str, int] = {}  # file path -> how many GETs to cut short
            self.lfs_redirect = False
            self.delay = 0.0  # seconds to wait before answering any request
            self._fail: list[int] = []  # statuses for the next requests
            self._log: list[LoggedRequest] = []

    # -- content -----------------------------------------------------------------------
    def add_repo(self, repo_id: str, files: Files, *, branch: str = "main", private: bool = False) -> str:
        """Create (or replace) a repo whose ``branch`` holds ``files``; returns the commit sha.

        ``files`` maps paths in the repo to content, or is a folder whose files are read now.
        """
        with self._lock:
            self.repos[repo_id] = _Repo(private=private)
        return self.commit(repo_id, _read_files(files), branch=branch)

    def commit(self, repo_id: str, files: Files, *, branch: str = "main", deleted: tuple[str, ...] = ()) -> str:
        """Add a commit on ``branch`` that adds/replaces ``files``; returns its sha.

        A missing branch is created from ``main``, as a branch created on the Hub would be.
        """
        files = _read_files(files)
        with self._lock:
            repo = self.repos[repo_id]
            parent = repo.branches.get(branch) or repo.branches.get("main")  # a new branch starts from main
            tree = dict(repo.commits[parent]) if parent else {}
            tree.update(files)
            for path in deleted:
                tree.pop(path, None)
            digest = hashlib.sha1(f"{repo_id}\0{parent}\0{next(_commit_counter)}".encode())
            for path in sorted(tree):
                digest.update(path.encode() + b"\0" + hashlib.sha256(tree[path]).digest())
            sha = digest.hexdigest()
            repo.commits[sha] = tree
            repo.branches[branch] = sha
            return sha

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        """The files of a repo at a branch or commit sha."""
        with self._lock:
            repo = self.repos[repo_id]
            return dict(repo.commits[repo.branches.get(revision, revision)])

    # -- switches and log --------------------------------------------------------------
    def fail_next(self, n: int, status: int = 503) -> None:
        """Answer the next ``n`` requests (any route) with ``status``."""
        with self._lock:
            self._fail.extend([status] * n)

    @property
    def requests(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._log)

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    # -- internals used by the handler -------------------------------------------------
    def _record(self, method: str, path: str, headers: dict[str, str]) -> int | None:
        with self._lock:
            self._log.append(LoggedRequest(method, path, headers))
            return self._fail.pop(0) if self._fail else None

    def _take_cut(self, path: str) -> bool:
        with self._lock:
            if self.cut_short.get(path, 0) > 0:
                self.cut_short[path] -= 1
                return True
            return False

    def _lookup(self, repo_id: str, revision: str, authorization: str | None) -> tuple[str, dict[str, bytes]]:
        with self._lock:
            repo = self.repos.get(repo_id)
            if repo is None or (repo.private and authorization != f"Bearer {self.token}"):
                raise _Reply(404 if repo is None else 401, f"Repository {repo_id} not found", "RepoNotFound")
            sha = repo.branches.get(revision, revision if revision in repo.commits else None)
            if sha is None:
                raise _Reply(404, f"Invalid rev id: {revision}", "RevisionNotFound")
            return sha, repo.commits[sha]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (a timeout test) leaves a broken pipe behind; that is expected.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def _read_files(files: Files) -> dict[str, bytes]:
    if isinstance(files, Mapping):
        return dict(files)
    root = Path(files)
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _is_lfs(path: str, data: bytes) -> bool:
    return path.endswith(LFS_SUFFIXES) or len(data) > 10 * 1024 * 1024


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the Hub; every answer carries a Content-Length
    server: ThreadingHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the hub keeps its own log
        pass

    @property
    def hub(self) -> HubServer:
        return self.server.hub  # type: ignore[attr-defined]

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        path = url.path
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) if method == "POST" else b""
        status = self.hub._record(method, path, dict(self.headers.items()))
        if self.hub.delay:
            time.sleep(self.hub.delay)
        try:
            if status is not None:
                raise _Reply(status, "Injected failure")
            if "/resolve/" in path and method in ("HEAD", "GET"):
                self._resolve(method, path)
            elif (m := _CDN.match(path)) and method == "GET":
                name = unquote(parse_qs(url.query).get("name", [""])[0])
                self._cdn(m["sha"], name)
            elif method == "POST" and path == "/api/validate-yaml":
                self._json({"errors": [], "warnings": []})
            elif method == "POST" and path == "/api/repos/create":
                self._create_repo(json.loads(body))
            elif (m := _API.match(path)) and method == "POST" and m["action"] in ("preupload", "commit", "branch"):
                self._write(m["repo"], m["action"], unquote(m["rev"]), body)
            elif (m := _API.match(path)) and method == "GET" and m["action"] == "revision":
                self._model_info(m["repo"], unquote(m["rev"]))
            elif (m := _INFO.match(path)) and method == "GET":
                self._model_info(m["repo"], "main")
            else:
                raise _Reply(404, f"No route for {method} {path}")
        except _Reply as r:
            self._error(r)

    # -- downloads ---------------------------------------------------------------------
    def _resolve(self, method: str, path: str) -> None:
        repo_id, rest = path[1:].split("/resolve/", 1)
        revision, _, filename = rest.partition("/")
        revision, filename = unquote(revision), unquote(filename)
        sha, files = self.hub._lookup(repo_id, revision, self.headers.get("Authorization"))
        if filename not in files:
            raise _Reply(404, f"Entry not found: {filename}", "EntryNotFound", commit=sha)
        data = files[filename]
        headers = {"X-Repo-Commit": sha, "Accept-Ranges": "bytes"}
        if _is_lfs(filename, data):
            sha256 = hashlib.sha256(data).hexdigest()
            headers.update({"ETag": f'"{sha256}"', "X-Linked-Etag": f'"{sha256}"', "X-Linked-Size": str(len(data))})
            if self.hub.lfs_redirect:
                # Another origin than the endpoint, so huggingface_hub treats it as the CDN.
                location = f"http://localhost:{self.hub.port}/cdn/{sha256}?name={quote(filename)}"
                self._send(302, {**headers, "Location": location, "Content-Length": "0"}, b"")
                return
        else:
            headers["ETag"] = f'"{git_blob_sha1(data)}"'
        self._body(method, filename, data, headers)

    def _cdn(self, sha256: str, name: str) -> None:
        with self.hub._lock:
            contents = [d for r in self.hub.repos.values() for c in r.commits.values() for d in c.values()]
        blobs = {hashlib.sha256(d).hexdigest(): d for d in contents}
        if sha256 not in blobs:
            raise _Reply(404, "No such blob")
        self._body("GET", name, blobs[sha256], {"ETag": f'"{sha256}"', "Accept-Ranges": "bytes"})

    def _body(self, method: str, filename: str, data: bytes, headers: dict[str, str]) -> None:
        if method == "GET" and filename in self.hub.tamper:
            data = bytes(b ^ 0xFF for b in data[:64]) + data[64:]
        status, start = 200, 0
        ranged = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
        if method == "GET" and ranged and int(ranged[1]) < len(data):
            status, start = 206, int(ranged[1])
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        part = data[start:]
        headers["Content-Length"] = str(len(part))
        headers.setdefault("Content-Type", "application/octet-stream")
        if method == "HEAD":
            self._send(status, headers, b"")
        elif self.hub._take_cut(filename):
            self._send(status, headers, part[: len(part) // 2])
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        else:
            self._send(status, headers, part)

    # -- API ---------------------------------------------------------------------------
    def _model_info(self, repo_id: str, revision: str) -> None:
        sha, files = self.hub._lookup(repo_id, revision, self.headers.get("Authorization"))
        siblings = [{"rfilename": name} for name in sorted(files)]
        private = self.hub.repos[repo_id].private
        self._json({"id": repo_id, "modelId": repo_id, "sha": sha, "private": private, "siblings": siblings})

    def _check_token(self) -> None:
        if self.headers.get("Authorization") != f"Bearer {self.hub.token}":
            raise _Reply(401, "Invalid credentials in Authorization header")

    def _create_repo(self, payload: dict[str, Any]) -> None:
        self._check_token()
        repo_id = "/".join(p for p in (payload.get("organization"), payload["name"]) if p)
        if repo_id in self.hub.repos:
            body = {"error": "You already created this model repo", "url": f"{self.hub.endpoint}/{repo_id}"}
            self._json(body, status=409)
            return
        self.hub.add_repo(repo_id, {".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"},
                          private=payload.get("visibility") == "private" or bool(payload.get("private")))
        self._json({"url": f"{self.hub.endpoint}/{repo_id}", "name": repo_id, "id": repo_id})

    def _write(self, repo_id: str, action: str, revision: str, body: bytes) -> None:
        self._check_token()
        if action == "branch":
            self.hub._lookup(repo_id, "main", self.headers.get("Authorization"))
            if revision in self.hub.repos[repo_id].branches:
                raise _Reply(409, f"Branch {revision} already exists")
            start = json.loads(body or b"{}").get("startingPoint") or "main"
            sha, _ = self.hub._lookup(repo_id, start, self.headers.get("Authorization"))
            with self.hub._lock:
                self.hub.repos[repo_id].branches[revision] = sha
            self._json({})
            return
        self.hub._lookup(repo_id, revision, self.headers.get("Authorization"))
        if _SHA1.fullmatch(revision):
            raise _Reply(400, "Cannot commit on a commit sha: pass a branch", "RevisionNotFound")
        if action == "preupload":
            files = json.loads(body)["files"]
            self._json({"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]})
            return
        added: dict[str, bytes] = {}
        deleted: list[str] = []
        for line in body.splitlines():
            item = json.loads(line)
            if item["key"] == "file":
                added[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
            elif item["key"] == "deletedFile":
                deleted.append(item["value"]["path"])
            elif item["key"] != "header":
                raise _Reply(400, f"The loopback hub does not support commit entries of kind {item['key']!r}")
        sha = self.hub.commit(repo_id, added, branch=revision, deleted=tuple(deleted))
        self._json({"commitUrl": f"{self.hub.endpoint}/{repo_id}/commit/{sha}", "commitOid": sha, "success": True})

    # -- plumbing ----------------------------------------------------------------------
    def _json(self, payload: Any, status: int = 200) -> None:
        body = json.dumps(payload).encode()
        self._send(status, {"Content-Type": "application/json", "Content-Length": str(len(body))}, body)

    def _error(self, r: _Reply) -> None:
        body = json.dumps({"error": r.message}).encode()
        headers = {"Content-Type": "application/json", "Content-Length": str(len(body)), "X-Error-Message": r.message}
        if r.code:
            headers["X-Error-Code"] = r.code
        if r.commit:
            headers["X-Repo-Commit"] = r.commit
        self._send(r.status, headers, b"" if self.command == "HEAD" else body)

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if body:
            self.wfile.write(body)
            self.wfile.flush()
