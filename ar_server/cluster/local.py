"""A whole cluster on loopback: throwaway PostgreSQL and Redis, N ``fixlens serve`` processes, HAProxy.

For the cluster tests and ``fixlens bench cluster``: every part is the real program (Debian's ``postgresql``,
``redis-server`` and ``haproxy``; ``make setup`` installs them), each on a free 127.0.0.1 port, in one
temporary directory that ``close()`` removes. Nodes run ``--pipeline truth-table`` (frames are decoded,
nothing is recognised), since what is measured is the cluster, not the detector. A node keeps its port
across ``kill_node``/``start_node``, so HAProxy's configuration never changes.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from ar_server.cluster.haproxy import Backend, haproxy_config

START_TIMEOUT_S = 60.0
PG_ROLE = "fixlens"
PG_DATABASE = "fixlens"
HAPROXY_MAXCONN = 2000  # HAProxy asks for 2 descriptors per connection; CI's hard limit may be 20000


class ClusterSetupError(RuntimeError):
    """A part of the local cluster could not start; the message says which and why."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _need(program: str, package: str) -> str:
    found = shutil.which(program) or next((p for p in (f"/usr/sbin/{program}", f"/usr/bin/{program}")
                                           if os.access(p, os.X_OK)), None)
    if found is None:
        raise ClusterSetupError(f"{program} is not installed: `make setup` installs Debian's {package} "
                                f"(apt-get install {package})")
    return found


def _wait_port(port: int, what: str, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ClusterSetupError(f"{what} exited with code {process.returncode} while starting")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise ClusterSetupError(f"{what} did not listen on 127.0.0.1:{port} within {START_TIMEOUT_S:g} s")


class ThrowawayPostgres:
    """PostgreSQL in ``root``; as root it runs as Debian's ``postgres`` user (``initdb`` refuses root)."""

    def __init__(self) -> None:
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not bins:
            raise ClusterSetupError("PostgreSQL is not installed: `make setup` installs Debian's postgresql")
        self.bindir = bins[-1].parent
        self.root = Path(tempfile.mkdtemp(prefix="fixlens-pg-"))  # its own: the owner must be able to enter it
        self.owner = "postgres" if os.geteuid() == 0 else None
        if self.owner is not None:
            pwd.getpwnam(self.owner)
            shutil.chown(self.root, self.owner, self.owner)
        self.port = free_port()

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bindir / tool), *args]
        if self.owner is not None:
            command = ["runuser", "-u", self.owner, "--", *command]
        done = subprocess.run(command, cwd=self.root, capture_output=True, text=True, timeout=START_TIMEOUT_S)
        if done.returncode != 0:
            raise ClusterSetupError(f"{tool} failed ({done.returncode}): {done.stdout}{done.stderr}"[-2000:])

    def start(self) -> str:
        """Create and start the cluster with an empty database; return its URL."""
        data = self.root / "data"
        self._run("initdb", "-D", str(data), "-A", "trust", "-U", PG_ROLE, "-E", "UTF8", "--locale=C", "--no-sync")
        # fsync=off: a throwaway cluster; the nodes, not PostgreSQL, are what gets killed.
        self._run("pg_ctl", "-D", str(data), "-o", f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                  "-c fsync=off -c max_connections=200", "-l", str(self.root / "postgres.log"), "-w", "start")
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", PG_ROLE, PG_DATABASE)
        return f"postgresql://{PG_ROLE}@127.0.0.1:{self.port}/{PG_DATABASE}"

    def stop(self) -> None:
        try:
            if (self.root / "data" / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class Node:
    node_id: str
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class LocalCluster:
    """``start()`` brings up PostgreSQL, Redis, ``nodes`` server processes and HAProxy; ``url`` is HAProxy's."""

    nodes: int = 3
    secret: str = "fixlens-cluster-test-secret-0123456789abcdef"
    lease_ttl_s: float = 3.0
    pipeline: str = "truth-table"  # `fixlens serve --pipeline`: "vision" runs the trained models on every node
    extra_flags: tuple[str, ...] = ()
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="fixlens-cluster-")))
    node_list: list[Node] = field(default_factory=list)
    redis_port: int = 0
    haproxy_port: int = 0
    database_url: str = ""
    _redis: subprocess.Popen[bytes] | None = None
    _haproxy: subprocess.Popen[bytes] | None = None
    _postgres: ThrowawayPostgres | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.haproxy_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def start(self) -> LocalCluster:
        if self.nodes < 1:
            raise ClusterSetupError(f"expected at least 1 node, got {self.nodes}")
        try:
            self._postgres = ThrowawayPostgres()
            self.database_url = self._postgres.start()
            self.redis_port = free_port()
            self.start_redis()
            self.node_list = [Node(f"node{i + 1}", free_port(), self.root / f"node{i + 1}.log")
                              for i in range(self.nodes)]
            for node in self.node_list:  # in parallel: each takes seconds to import and start
                self._spawn(node)
            for node in self.node_list:
                self.wait_ready(node)
            self._start_haproxy()
        except BaseException:
            self.close()
            raise
        return self

    # ---------------------------------------------------------------- Redis

    def start_redis(self) -> None:
        program = _need("redis-server", "redis-server")
        self._redis = subprocess.Popen([program, "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
                                        "--appendonly", "no", "--dir", str(self.root)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(self.redis_port, "redis-server", self._redis)

    def kill_redis(self) -> None:
        if self._redis is not None and self._redis.poll() is None:
            self._redis.kill()
            self._redis.wait()

    # ---------------------------------------------------------------- nodes

    def _spawn(self, node: Node) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FIXLENS_")}
        env.update({"FIXLENS_SECRET": self.secret, "FIXLENS_DATABASE_URL": self.database_url,
                    "FIXLENS_REDIS_URL": self.redis_url, "FIXLENS_LEASE_TTL_S": str(self.lease_ttl_s)})
        command = [sys.executable, "-m", "fixlens.cli", "serve", "--pipeline", self.pipeline, "--host", "127.0.0.1",
                   "--port", str(node.port), "--node-id", node.node_id, "--data-dir", str(self.root / node.node_id),
                   "--log-level", "warning", "--max-unauthenticated-per-address", "256",
                   "--max-pre-request-per-address", "256", "--max-keepalive-per-address", "256", *self.extra_flags]
        with open(node.log, "ab") as log:
            node.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            cwd=Path(__file__).resolve().parents[2])

    def start_node(self, node: Node) -> None:
        if node.alive:
            raise ClusterSetupError(f"{node.node_id} is running already")
        self._spawn(node)
        self.wait_ready(node)

    def stop_node(self, node: Node, timeout: float = 30.0) -> int:
        """SIGTERM, as an operator drains a node; returns its exit code."""
        assert node.process is not None
        node.process.terminate()
        return node.process.wait(timeout)

    def kill_node(self, node: Node) -> None:
        """``kill -9``: no shutdown code runs, its sockets are closed by the kernel."""
        assert node.process is not None
        node.process.send_signal(signal.SIGKILL)
        node.process.wait()

    def node(self, node_id: str) -> Node:
        for node in self.node_list:
            if node.node_id == node_id:
                return node
        raise KeyError(f"no node {node_id!r}; nodes: {', '.join(n.node_id for n in self.node_list)}")

    def wait_ready(self, node: Node) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if not node.alive:
                tail = node.log.read_text(errors="replace")[-2000:] if node.log.exists() else ""
                raise ClusterSetupError(f"{node.node_id} exited while starting:\n{tail}")
            try:
                with urllib.request.urlopen(node.url + "/readyz", timeout=2.0) as answer:
                    # "ready", not merely 200: a node not yet subscribed to its channel looks dead to the others.
                    if answer.status == 200 and json.loads(answer.read()).get("status") == "ready":
                        return
            except (OSError, urllib.error.URLError, ValueError):
                pass
            time.sleep(0.1)
        raise ClusterSetupError(f"{node.node_id} was not ready within {START_TIMEOUT_S:g} s")

    # ---------------------------------------------------------------- HAProxy

    def _start_haproxy(self) -> None:
        program = _need("haproxy", "haproxy")
        self.haproxy_port = free_port()
        config = self.root / "haproxy.cfg"
        config.write_text(haproxy_config([Backend(n.node_id, f"127.0.0.1:{n.port}") for n in self.node_list],
                                         bind=f"127.0.0.1:{self.haproxy_port}", maxconn=HAPROXY_MAXCONN))
        checked = subprocess.run([program, "-c", "-f", str(config)], capture_output=True, text=True)
        if checked.returncode != 0:
            raise ClusterSetupError(f"haproxy refuses its configuration: {checked.stdout}{checked.stderr}")
        with open(self.root / "haproxy.log", "wb") as log:
            self._haproxy = subprocess.Popen([program, "-db", "-f", str(config)], stdout=log,
                                             stderr=subprocess.STDOUT)
        try:
            _wait_port(self.haproxy_port, "haproxy", self._haproxy)
        except ClusterSetupError as exc:
            tail = (self.root / "haproxy.log").read_text(errors="replace")[-1500:]
            raise ClusterSetupError(f"{exc}: {tail}") from None

    # ---------------------------------------------------------------- end

    def close(self) -> None:
        """Stop everything (SIGTERM, then SIGKILL after 10 s) and remove the directory."""
        processes = [n.process for n in self.node_list if n.process is not None] + [self._haproxy, self._redis]
        for process in processes:
            if process is not None and process.poll() is None:
                process.terminate()
        for process in processes:
            if process is None:
                continue
            try:
                process.wait(10.0)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._postgres is not None:
            try:
                self._postgres.stop()
            except ClusterSetupError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)
