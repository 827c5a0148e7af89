"""Real registries and real images for the image tests: Debian's docker-registry on a
loopback port, images built with buildah (vfs storage in a temporary root, no daemon)
from FROM-scratch Dockerfiles around a statically linked probe runtime (probe.c)."""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.needs import require

HERE = Path(__file__).resolve().parent
TOOLS = ("skopeo", "umoci", "buildah", "docker-registry", "gcc", "busybox", "openssl")


def require_image_tools() -> None:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    require(
        "the image tools",
        f"missing {', '.join(missing)} (lambdalet.sh installs them)" if missing else None,
    )


def build_probe(out_dir: Path) -> Path:
    """probe.c compiled statically: it runs in an image with nothing else in it."""
    out = out_dir / "probe"
    subprocess.run(
        ["gcc", "-static", "-O2", "-Wall", "-o", str(out), str(HERE / "probe.c")], check=True
    )
    return out


@dataclass
class Registry:
    """docker-registry serving ``root`` on ``port`` (loopback), with its own config."""

    root: Path
    port: int
    auth_yaml: str = ""
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.root / 'data'}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.host}\n" + self.auth_yaml
        )
        with (self.root / "registry.log").open("ab") as log:
            self.proc = subprocess.Popen(
                ["docker-registry", "serve", str(config)], stdout=log, stderr=log
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1).close()
                return
            except urllib.error.HTTPError:
                return  # 401: up, and asking for credentials
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"registry did not start: {(self.root / 'registry.log').read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def blob_path(self, digest: str) -> Path:
        hex_ = digest.removeprefix("sha256:")
        return self.root / "data/docker/registry/v2/blobs/sha256" / hex_[:2] / hex_ / "data"


@dataclass
class Builder:
    """buildah with its own storage (vfs) under ``root``."""

    root: Path

    def _buildah(self, *args: str) -> str:
        done = subprocess.run(
            [
                "buildah",
                "--root",
                str(self.root / "storage"),
                "--runroot",
                str(self.root / "run"),
                "--storage-driver",
                "vfs",
                *args,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"buildah {' '.join(args)} failed: {done.stderr}")
        return done.stdout

    def build(self, tag: str, dockerfile: str, files: Mapping[str, Path | bytes]) -> None:
        ctx = self.root / "ctx" / tag.replace("/", "_").replace(":", "_")
        shutil.rmtree(ctx, ignore_errors=True)
        ctx.mkdir(parents=True)
        for name, src in files.items():
            dest = ctx / name
            if isinstance(src, Path):
                shutil.copy2(src, dest)
            else:
                dest.write_bytes(src)
        (ctx / "Dockerfile").write_text(dockerfile)
        # --layers: one layer per instruction (without it buildah squashes the build into
        # one layer, and a later RUN's deletions would leave no whiteouts to apply)
        self._buildah("bud", "--layers", "--isolation", "chroot", "--quiet", "-t", tag, str(ctx))

    def push_index(self, tag: str, images: dict[str, str], dest: str) -> None:
        """A manifest list of ``images`` (local tag -> architecture) pushed as ``dest``."""
        self._buildah("manifest", "create", tag)
        for image, arch in images.items():
            self._buildah("manifest", "add", "--arch", arch, "--os", "linux", tag, image)
        self._buildah("manifest", "push", "--all", "--tls-verify=false", tag, f"docker://{dest}")

    def build_for(self, tag: str, arch: str, dockerfile: str, files: Mapping[str, Path]) -> None:
        """Build for another architecture (only COPY / ENV / ...: nothing runs)."""
        ctx = self.root / "ctx" / tag.replace("/", "_").replace(":", "_")
        shutil.rmtree(ctx, ignore_errors=True)
        ctx.mkdir(parents=True)
        for name, src in files.items():
            shutil.copy2(src, ctx / name)
        (ctx / "Dockerfile").write_text(dockerfile)
        self._buildah("bud", "--arch", arch, "--quiet", "-t", tag, str(ctx))

    def push(
        self, tag: str, dest: str, authfile: Path | None = None, compression: str = "gzip"
    ) -> None:
        extra = ["--authfile", str(authfile)] if authfile is not None else []
        extra += ["--compression-format", compression]
        self._buildah("push", "--tls-verify=false", *extra, tag, f"docker://{dest}")


def manifest_digest(ref: str, authfile: Path | None = None) -> str:
    extra = ["--authfile", str(authfile)] if authfile is not None else []
    out = subprocess.run(
        [
            "skopeo",
            "inspect",
            "--tls-verify=false",
            *extra,
            "--format",
            "{{.Digest}}",
            f"docker://{ref}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


class TokenServer:
    """A Docker token server (distribution's token auth): Basic credentials in, an RS256
    JWT out, signed by a key whose self-signed certificate the registry trusts."""

    def __init__(self, root: Path, port: int, user: str, password: str) -> None:
        import http.server
        import threading

        self.root, self.port = root, port
        self.user, self.password = user, password
        self.service, self.issuer = "lambdalet-test-registry", "lambdalet-test-issuer"
        root.mkdir(parents=True, exist_ok=True)
        self.key, self.cert = root / "key.pem", root / "cert.pem"
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                "-subj", "/CN=lambdalet-test-token", "-keyout", str(self.key),
                "-out", str(self.cert),
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                body, status = owner.answer(self.path, self.headers.get("Authorization", ""))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def auth_yaml(self) -> str:
        return (
            "auth:\n  token:\n"
            f"    realm: http://127.0.0.1:{self.port}/token\n"
            f"    service: {self.service}\n"
            f"    issuer: {self.issuer}\n"
            f"    rootcertbundle: {self.cert}\n"
        )

    def answer(self, path: str, authorization: str) -> tuple[bytes, int]:
        import base64
        import json
        import secrets
        import urllib.parse

        want = "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        if authorization != want:
            return b'{"details":"bad credentials"}', 401
        query = urllib.parse.parse_qs(urllib.parse.urlparse(path).query)
        access = []
        for scope in query.get("scope", []):
            kind, name, actions = scope.split(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        der = subprocess.run(
            ["openssl", "x509", "-in", str(self.cert), "-outform", "DER"],
            capture_output=True,
            check=True,
        ).stdout
        now = int(time.time())

        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        header = {"alg": "RS256", "typ": "JWT", "x5c": [base64.b64encode(der).decode()]}
        claims = {
            "iss": self.issuer,
            "sub": self.user,
            "aud": self.service,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        signing = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
        sig = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", str(self.key)],
            input=signing.encode(),
            capture_output=True,
            check=True,
        ).stdout
        token = f"{signing}.{b64(sig)}"
        return json.dumps({"token": token, "expires_in": 300}).encode(), 200

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def docker_config(path: Path, registry: str, user: str, password: str) -> None:
    """Docker's config.json with one registry's credentials."""
    import base64
    import json

    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    path.write_text(json.dumps({"auths": {registry: {"auth": auth}}}))
