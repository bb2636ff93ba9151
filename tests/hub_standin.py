"""A local stand-in of the Hugging Face Hub: serves repositories from a folder, over HTTP on 127.0.0.1, in the Hub's API.

Only what the clients the recipes use ask for (huggingface_hub, transformers, datasets, timm): repository info at a
revision, file downloads (HEAD and GET, with ranges), tree listings and paths-info. Errors carry the Hub's status codes
and `X-Error-Code` headers, so the clients raise the errors they raise against the Hub (RepositoryNotFoundError,
GatedRepoError, RevisionNotFoundError, EntryNotFoundError).

Not served: the dataset viewer, which `datasets` asks on a sibling host (`datasets-server.` + the endpoint's host) for
exported infos and parquet conversions; with 127.0.0.1 that host does not resolve, `datasets` ignores the failure and
reads the features from the README's YAML, which the real repositories carry too. Nor uploads, xet or login.

A repository is a folder `ROOT/{models,datasets}/ID/` holding `refs.json` ({"refs": {"main": SHA, ...}, "gated": true
for a repository that needs a token}) and one folder per commit, `SHA/`, holding that commit's files. `tests/hub_repos.py`
builds them; `serve(root)` starts a server for them.
"""
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

KINDS = ("models", "datasets")
SHA = re.compile(r"[0-9a-f]{40}")


def write_commit(root: Path, kind: str, repo_id: str, files: dict, ref: str = "main", gated: bool = False) -> str:
    "Write `files` (path in the repo -> bytes) as a new commit of `repo_id`, point `ref` at it; return its sha."
    repo = root/kind/repo_id
    digest = hashlib.sha1(json.dumps({p: hashlib.sha1(b).hexdigest() for p, b in sorted(files.items())}).encode())
    sha = digest.hexdigest()
    for path, data in files.items():
        (repo/sha/path).parent.mkdir(parents=True, exist_ok=True)
        (repo/sha/path).write_bytes(data)
    refs_file = repo/"refs.json"
    refs = json.loads(refs_file.read_text())["refs"] if refs_file.exists() else {}
    refs_file.write_text(json.dumps(dict(refs={**refs, ref: sha}, gated=gated)))
    return sha


def blob_oid(data: bytes) -> str:
    "The git blob id of `data`, as the Hub gives it for a file kept in git."
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Hub:
    "The repositories under `root`, and what the server records of the requests (for tests to assert on)."

    def __init__(self, root: Path):
        self.root, self.requests = Path(root), []  # requests: (method, path, Range header)
        self.cut_once = {}  # 'ID/PATH' -> bytes after which the next download of that file breaks off

    def repo(self, kind: str, rest: str) -> tuple:
        "(repo id, the rest of the path) for the longest repository id `rest` starts with, or (None, rest)."
        parts = rest.split("/")
        for n in (2, 1):
            if len(parts) >= n and (self.root/kind/"/".join(parts[:n])/"refs.json").exists():
                return "/".join(parts[:n]), "/".join(parts[n:])
        return None, rest

    def refs(self, kind: str, repo_id: str) -> dict:
        "The repository's refs.json: its refs (name -> sha) and whether it is gated."
        return json.loads((self.root/kind/repo_id/"refs.json").read_text())

    def commit(self, kind: str, repo_id: str, revision: str):
        "The sha `revision` (a branch or a full sha) names, or None."
        refs = self.refs(kind, repo_id)["refs"]
        if revision in refs: return refs[revision]
        return revision if SHA.fullmatch(revision) and (self.root/kind/repo_id/revision).is_dir() else None

    def files(self, kind: str, repo_id: str, sha: str) -> list:
        "The paths of every file of the repository at commit `sha`."
        base = self.root/kind/repo_id/sha
        return sorted(p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file())

    def entry(self, kind: str, repo_id: str, sha: str, path: str):
        "A tree entry (file or directory) of `path` at commit `sha`, or None."
        p = self.root/kind/repo_id/sha/path
        if p.is_file(): return dict(type="file", path=path, size=p.stat().st_size, oid=blob_oid(p.read_bytes()))
        if p.is_dir(): return dict(type="directory", path=path, size=0, oid=hashlib.sha1(path.encode()).hexdigest())
        return None

    def info(self, kind: str, repo_id: str, sha: str) -> dict:
        "What /api/{models,datasets}/ID/revision/REV answers: the id, the commit, its files."
        return dict(id=repo_id, modelId=repo_id, sha=sha, private=False, gated=self.refs(kind, repo_id)["gated"] and "manual",
                    disabled=False, downloads=0, likes=0, tags=[], lastModified="2026-01-01T00:00:00.000Z",
                    createdAt="2026-01-01T00:00:00.000Z", siblings=[dict(rfilename=f) for f in self.files(kind, repo_id, sha)])


class Handler(BaseHTTPRequestHandler):
    "Answers the Hub's API for the repositories of `self.server.hub`."
    protocol_version = "HTTP/1.1"

    def log_message(self, *args): pass

    def do_HEAD(self): self.route(body=False)
    def do_GET(self): self.route(body=True)
    def do_POST(self): self.route(body=True)

    def fail(self, status: int, code: str, message: str):
        "An error as the Hub sends it: the status, X-Error-Code and X-Error-Message, which huggingface_hub turns into its errors."
        self.send_json({"error": message}, status, {"X-Error-Code": code, "X-Error-Message": message})

    def send_json(self, obj, status: int = 200, headers: dict = None):
        "`obj` as a JSON response."
        data = json.dumps(obj).encode()
        self.send_response(status)
        for k, v in {"Content-Type": "application/json", "Content-Length": str(len(data)), **(headers or {})}.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD": self.wfile.write(data)

    def route(self, body: bool):
        "Find the repository, check access, resolve the revision, then answer the API call or send the file."
        hub, url = self.server.hub, urlsplit(self.path)
        hub.requests.append((self.command, url.path, self.headers.get("Range")))
        path = url.path.strip("/")
        api = path.startswith("api/")
        if api: path = path[4:]
        kind = path.split("/", 1)[0] if path.split("/", 1)[0] in KINDS and (api or path.startswith("datasets/")) else "models"
        if api or kind == "datasets": path = path.split("/", 1)[1] if "/" in path else ""
        repo_id, rest = hub.repo(kind, path)
        if repo_id is None:
            return self.fail(401, "RepoNotFound", f"Repository not found: {path}")
        if hub.refs(kind, repo_id)["gated"] and not self.headers.get("Authorization"):
            return self.fail(403, "GatedRepo", f"Access to {kind[:-1]} {repo_id} is restricted. You must have access to it "
                                               "and be authenticated to access it. Please log in.")
        action, _, tail = rest.partition("/")
        if not api and action != "resolve": return self.fail(404, "EntryNotFound", f"{self.path}: no such page")
        revision, _, file_path = (unquote(t) for t in tail.partition("/"))
        if not rest: action, revision = "revision", "main"
        sha = hub.commit(kind, repo_id, revision)
        if sha is None: return self.fail(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        if not api: return self.send_file(kind, repo_id, sha, file_path, body)
        if action == "revision": return self.send_json(hub.info(kind, repo_id, sha))
        if action == "tree": return self.send_tree(kind, repo_id, sha, file_path, parse_qs(url.query))
        if action == "paths-info": return self.send_paths_info(kind, repo_id, sha)
        return self.fail(404, "EntryNotFound", f"{self.path} is not served by this stand-in of the Hub")

    def send_tree(self, kind, repo_id, sha, folder, query):
        "The entries of `folder` at `sha` (all below it with recursive=true)."
        hub, recursive = self.server.hub, query.get("recursive", ["false"])[0] == "true"
        base = hub.root/kind/repo_id/sha/folder
        if not base.is_dir(): return self.fail(404, "EntryNotFound", f"{folder} does not exist at {sha}")
        found = base.rglob("*") if recursive else base.iterdir()
        rel = sorted(p.relative_to(hub.root/kind/repo_id/sha).as_posix() for p in found)
        self.send_json([hub.entry(kind, repo_id, sha, p) for p in rel])

    def send_paths_info(self, kind, repo_id, sha):
        "The entries of the form's `paths` that exist at `sha` (huggingface_hub posts them url-encoded)."
        paths = parse_qs(self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()).get("paths", [])
        hub = self.server.hub
        self.send_json([e for e in (hub.entry(kind, repo_id, sha, p.strip("/")) for p in paths) if e])

    def send_file(self, kind, repo_id, sha, file_path, body):
        "A file at `sha`, from the byte a Range header asks for; `cut_once` breaks a download off on purpose."
        hub = self.server.hub
        f = hub.root/kind/repo_id/sha/file_path
        if not f.is_file(): return self.fail(404, "EntryNotFound", f"{file_path} does not exist at {sha}")
        data = f.read_bytes()
        start = int(m.group(1)) if (m := re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")) else 0
        self.send_response(206 if start else 200)
        headers = {"Content-Length": str(len(data) - start), "ETag": f'"{blob_oid(data)}"', "X-Repo-Commit": sha,
                   "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
        if start: headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        for k, v in headers.items(): self.send_header(k, v)
        self.end_headers()
        if not body: return
        cut = hub.cut_once.pop(f"{repo_id}/{file_path}", None)  # a test asked for this download to break off after `cut` bytes
        if cut is not None and not start:
            self.wfile.write(data[:cut]); self.wfile.flush(); self.close_connection = True
            return
        self.wfile.write(data[start:])


def serve(root: Path, port: int = 0) -> tuple:
    "Start the stand-in for the repositories under `root` on 127.0.0.1 (`port`, or a free one); return (server, its Hub, endpoint URL)."
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.hub = Hub(root)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.hub, f"http://127.0.0.1:{server.server_address[1]}"
