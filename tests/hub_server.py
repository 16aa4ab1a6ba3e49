"""A loopback stand-in for the Hugging Face Hub's upload API, standard library only.

It implements what the real ``huggingface_hub`` client sends for ``create_repo``, ``create_branch`` and
``upload_folder``, and stores what it receives, so a test can check an upload byte for byte:

    with LoopbackHub() as hub:
        HfApi(endpoint=hub.endpoint, token="hf_test").upload_folder(...)
        hub.files("org/name", "main")   # {path: bytes} at the head of the branch
        hub.commits                     # [{"repo_id", "revision", "summary", "added", "deleted"}]
        hub.repos["org/name"]["private"]

Every file is answered with upload mode "regular", so the client never uses LFS or Xet: the bytes arrive base64
encoded in the NDJSON commit body. A request this server does not know gets a 404 and is listed in ``unknown``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

import yaml

REPO_ROUTE = re.compile(
    r"^/api/models/(?P<repo>[^/]+/[^/]+?)/(?P<action>preupload|commit|branch|revision)/(?P<rev>.+)$"
)


def git_blob_sha1(data: bytes) -> str:
    """The git blob id; the client compares it with its own to skip files that did not change."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class HubError(Exception):
    """An error answer. ``code`` goes into ``X-Error-Code``, which the client turns into RepositoryNotFoundError,
    RevisionNotFoundError and the like."""

    def __init__(self, status: int, message: str, code: str | None = None, body: dict | None = None):
        super().__init__(message)
        self.status, self.body = status, body or {"error": message}
        self.headers = {"X-Error-Message": message, **({"X-Error-Code": code} if code else {})}


def card_errors(content: str) -> list[str]:
    """What the Hub would reject in a README: YAML that does not parse, or a model-index without its fields."""
    if not content.startswith("---"):
        return []
    front, separator, _ = content[3:].partition("\n---")
    if not separator:
        return ["the YAML front matter is not closed by a '---' line"]
    try:
        metadata = yaml.safe_load(front) or {}
    except yaml.YAMLError as error:
        return [f"invalid YAML: {error}"]
    errors = []
    for model in metadata.get("model-index", []):
        if "name" not in model:
            errors.append("model-index entry without a name")
        for result in model.get("results", []):
            for field in ("task", "dataset", "metrics"):
                if field not in result:
                    errors.append(f"model-index result without {field}")
            for metric in result.get("metrics", []):
                if not isinstance(metric.get("value"), (int, float)) or "type" not in metric:
                    errors.append(f"model-index metric needs a type and a numeric value, got {metric}")
    return errors


class LoopbackServer:
    """An HTTP server on a free loopback port, in a daemon thread; ``handler_class`` gets ``server_owner`` = self."""

    handler_class: type[BaseHTTPRequestHandler]

    def __init__(self):
        self.endpoint = None
        self._server = None

    def start(self) -> str:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), type("Handler", (self.handler_class,), {"owner": self}))
        self._server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self.endpoint

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()


class LoopbackHub(LoopbackServer):
    def __init__(self):
        super().__init__()
        self.repos: dict[str, dict] = {}
        self.commits: list[dict] = []
        self.requests: list[tuple[str, str]] = []
        self.unknown: list[tuple[str, str]] = []
        self.validation_errors: list[list[str]] = []
        self.lock = threading.Lock()

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        return dict(self.repos[repo_id]["branches"][revision])

    def _branch(self, repo_id: str, revision: str) -> dict[str, bytes]:
        if repo_id not in self.repos:
            raise HubError(404, f"Repository {repo_id} not found", "RepoNotFound")
        if revision not in self.repos[repo_id]["branches"]:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return self.repos[repo_id]["branches"][revision]

    def handle(self, method: str, path: str, query: str, raw: bytes):
        """Route one request; returns ``(status, body, headers)`` with a JSON-able body."""
        self.requests.append((method, path))
        route = REPO_ROUTE.match(path)
        try:
            if method == "POST" and path == "/api/repos/create":
                return 200, self.create_repo(json.loads(raw)), {}
            if method == "POST" and path == "/api/validate-yaml":
                return self.validate_yaml(json.loads(raw))
            if route and method == "POST" and route["action"] == "preupload":
                return 200, self.preupload(route["repo"], unquote(route["rev"]), json.loads(raw)), {}
            if route and method == "POST" and route["action"] == "commit":
                return 200, self.commit(route["repo"], unquote(route["rev"]), raw, query), {}
            if route and method == "POST" and route["action"] == "branch":
                return 200, self.create_branch(route["repo"], unquote(route["rev"]), json.loads(raw or b"{}")), {}
            if route and method == "GET" and route["action"] == "revision":
                return 200, self.revision_info(route["repo"], unquote(route["rev"])), {}
        except HubError as error:
            return error.status, error.body, error.headers
        except Exception as error:  # answer 400, never 5xx: the client retries 5xx with back-off
            return 400, {"error": f"LoopbackHub failed on {method} {path}: {error!r}"}, {}
        self.unknown.append((method, path))  # also the client's telemetry GET /api/agent-harnesses: 404 = none
        return 404, {"error": f"LoopbackHub: no route for {method} {path}"}, {}

    def create_repo(self, body: dict) -> dict:
        """``{name, organization, visibility}`` -> ``{url}``; 409 (with ``url``, which exist_ok still reads) if it exists."""
        repo_id = f"{body['organization']}/{body['name']}" if body.get("organization") else body["name"]
        url = f"{self.endpoint}/{repo_id}"
        if repo_id in self.repos:
            raise HubError(409, "You already created this repo", body={"error": "repo exists", "url": url})
        head = hashlib.sha1(f"init {repo_id}".encode()).hexdigest()
        self.repos[repo_id] = {
            "private": body.get("visibility") == "private",
            "branches": {"main": {}},
            "heads": {"main": head},
        }
        return {"url": url, "name": repo_id, "id": repo_id}

    def validate_yaml(self, body: dict):
        """``{content, repoType}`` -> 200 ``{errors: [], warnings: []}``, or 400 with the card's errors."""
        errors = card_errors(body.get("content", ""))
        self.validation_errors.append(errors)
        if errors:
            return 400, {"errors": [{"message": message} for message in errors]}, {}
        return 200, {"errors": [], "warnings": []}, {}

    def preupload(self, repo_id: str, revision: str, body: dict) -> dict:
        """``{files: [{path, sample, size}]}`` -> each file with upload mode "regular" and its current blob id."""
        tree = self._branch(repo_id, revision)
        return {
            "files": [
                {
                    "path": f["path"],
                    "uploadMode": "regular",
                    "shouldIgnore": False,
                    "oid": git_blob_sha1(tree[f["path"]]) if f["path"] in tree else None,
                }
                for f in body["files"]
            ],
            "commitOid": self.repos[repo_id]["heads"][revision],
        }

    def commit(self, repo_id: str, revision: str, raw: bytes, query: str) -> dict:
        """NDJSON lines ``{key, value}``: ``header {summary, description}``, ``file {path, content, encoding}``,
        ``deletedFile {path}`` -> ``{commitUrl, commitOid}``."""
        if "create_pr=1" in query:
            raise HubError(400, "pull requests are not supported by LoopbackHub")
        tree = dict(self._branch(repo_id, revision))
        operations = [json.loads(line) for line in raw.decode().splitlines() if line.strip()]
        header = next(item["value"] for item in operations if item["key"] == "header")
        added, deleted = [], []
        for item in operations:
            key, value = item["key"], item["value"]
            if key == "file":
                content = value["content"]
                tree[value["path"]] = (
                    base64.b64decode(content) if value.get("encoding") == "base64" else content.encode()
                )
                added.append(value["path"])
            elif key == "deletedFile":
                if tree.pop(value["path"], None) is None:
                    raise HubError(404, f"{value['path']} does not exist", "EntryNotFound")
                deleted.append(value["path"])
            elif key != "header":
                raise HubError(400, f"LoopbackHub does not support the commit operation {key!r}")
        parent = self.repos[repo_id]["heads"][revision]
        oid = hashlib.sha1(f"{parent}{len(self.commits)}{header['summary']}".encode()).hexdigest()
        self.repos[repo_id]["branches"][revision] = tree
        self.repos[repo_id]["heads"][revision] = oid
        self.commits.append(
            {"repo_id": repo_id, "revision": revision, "summary": header["summary"], "added": added, "deleted": deleted}
        )
        return {
            "commitUrl": f"{self.endpoint}/{repo_id}/commit/{oid}",
            "commitOid": oid,
            "success": True,
            "pullRequestUrl": None,
        }

    def create_branch(self, repo_id: str, branch: str, body: dict) -> dict:
        """``{startingPoint?}`` -> ``{}``; 409 if the branch exists (which exist_ok accepts)."""
        start = body.get("startingPoint") or "main"
        tree = self._branch(repo_id, start)
        if branch in self.repos[repo_id]["branches"]:
            raise HubError(409, f"Branch {branch} already exists")
        self.repos[repo_id]["branches"][branch] = dict(tree)
        self.repos[repo_id]["heads"][branch] = self.repos[repo_id]["heads"][start]
        return {}

    def revision_info(self, repo_id: str, revision: str) -> dict:
        """``{id, sha, siblings}``: the client asks for it when an upload changes nothing."""
        tree = self._branch(repo_id, revision)
        return {
            "id": repo_id,
            "sha": self.repos[repo_id]["heads"][revision],
            "siblings": [{"rfilename": p} for p in sorted(tree)],
        }


class _HubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    owner: LoopbackHub

    def log_message(self, *args):
        pass

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.owner.lock:
            status, body, headers = self.owner.handle(method, url.path, url.query, raw)
        payload = json.dumps(body).encode()
        self.send_response(status)
        for name, value in {**headers, "Content-Type": "application/json", "Content-Length": str(len(payload))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")


class MissingEntryAs404Proxy(LoopbackServer):
    """A pass-through proxy in front of olah that answers a missing file or folder the way the Hub does.

    olah 0.5.4 in offline mode answers a request for a file or folder that the repository lacks (``/resolve/`` and
    ``/tree/`` URLs) with 401, which the client reads as "repository not found"; the Hub answers 404 with
    ``X-Error-Code: EntryNotFound``, which transformers expects when it probes optional files (``adapter_config.json``,
    a processor's ``additional_chat_templates/``). Every other request and answer passes through unchanged.
    """

    def __init__(self, upstream: str):
        super().__init__()
        self.upstream = upstream
        self.rewritten: list[str] = []


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    owner: MissingEntryAs404Proxy

    def log_message(self, *args):
        pass

    def _forward(self, method: str) -> None:
        import urllib.error
        import urllib.request

        dropped = ("host", "connection", "accept-encoding")  # identity bodies: the proxy does not re-encode
        request = urllib.request.Request(
            self.owner.upstream + self.path,
            method=method,
            headers={k: v for k, v in self.headers.items() if k.lower() not in dropped},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                status, headers, body = answer.status, list(answer.headers.items()), answer.read()
        except urllib.error.HTTPError as error:
            status, headers, body = error.code, list(error.headers.items()), error.read()
        if status == 401 and ("/tree/" in self.path or "/resolve/" in self.path):
            self.owner.rewritten.append(self.path)
            status, body = 404, json.dumps({"error": "Entry not found"}).encode()
            headers = [("Content-Type", "application/json"), ("X-Error-Code", "EntryNotFound")]
        self.send_response(status)
        for name, value in headers:
            # a HEAD answer keeps the upstream Content-Length: the client reads the file's size from it
            if name.lower() not in ("transfer-encoding", "connection") and (
                method == "HEAD" or name.lower() != "content-length"
            ):
                self.send_header(name, value)
        if method != "HEAD":
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        self._forward("GET")

    def do_HEAD(self):
        self._forward("HEAD")


LoopbackHub.handler_class = _HubHandler
MissingEntryAs404Proxy.handler_class = _ProxyHandler
