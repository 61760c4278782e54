"""``pip install 'fixlens[server]'`` as a user gets it: the wheel built from this tree, installed into a fresh
venv with its dependencies from the package index, then ``fixlens serve`` run from an empty directory.

Checked: the install pulls no torch, Ultralytics, Panda3D or MediaPipe; the server starts with hands and face
blur off and says why; a customer's session recognises the router through the installed ONNX pipeline and is
guided from step to step; an author's scene edit lands in the per-user data dir; and not one file under
``site-packages`` is added, removed or changed, nor anything written into the working directory.

Slow: 45-60 s here (a wheel build and a pip install, with a warm pip cache). The client side runs here, in
the dev venv, and renders its frames with Panda3D; the server process never sees that venv.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from ar_server.auth import TokenAuthority
from ar_server.config import DEV_SECRET
from fixlens.truth_pipeline import RenderedFrame, render_frames
from product_models.catalog import default_catalog
from product_models.twin import Twin
from scenes.collection import LIBRARY_DIR, scene_files
from tests.ar_server.conftest import PRODUCT, StreamClient, stream_frames

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("ar_server", "vision", "scenes", "client_panda3d", "product_models", "fixlens")
PROJECT_FILES = ("pyproject.toml", "README.md", "LICENSE")
# What a server install must not carry: the train, client and gpu extras' libraries, and MediaPipe.
NOT_IN_SERVER = ("torch", "torchvision", "ultralytics", "panda3d", "panda3d-gltf", "mediapipe", "matplotlib",
                 "scikit-image", "onnx")
SCENE = "router_no_internet"
PIP_TIMEOUT_S = 600


@dataclass(frozen=True)
class ServerInstall:
    venv: Path
    site_packages: Path
    wheel: Path
    seconds: float  # build + venv + install


def _run(command: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    out = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=PIP_TIMEOUT_S,
                         check=False)
    assert out.returncode == 0, f"{' '.join(command)} failed ({out.returncode}):\n{(out.stderr or out.stdout)[-3000:]}"
    return out.stdout


def _clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without anything that would reach into the dev venv or configure the server."""
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONDONTWRITEBYTECODE", "XDG_DATA_HOME")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("FIXLENS_")}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def install(tmp_path_factory: pytest.TempPathFactory) -> ServerInstall:
    started = time.monotonic()
    work = tmp_path_factory.mktemp("server-install")
    # Build from a copy: an in-tree build would leave build/ and an egg-info in the working tree.
    source = work / "source"
    for name in PACKAGES:
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in PROJECT_FILES:
        shutil.copy2(REPO / name, source / name)
    wheelhouse = work / "wheelhouse"
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir",
          str(wheelhouse), str(source)], env=_clean_env())
    (wheel,) = wheelhouse.glob("fixlens-*.whl")
    venv = work / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], env=_clean_env())
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
          f"{wheel}[server]"], env=_clean_env())
    (site_packages,) = (venv / "lib").glob("python3.*/site-packages")
    return ServerInstall(venv, site_packages, wheel, time.monotonic() - started)


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder``: relative path -> (size, mtime in ns)."""
    out = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = Path(root, name)
            stat = path.lstat()
            out[str(path.relative_to(folder))] = (stat.st_size, stat.st_mtime_ns)
    return out


def _size_mb(folder: Path) -> float:
    return sum(size for size, _ in _snapshot(folder).values()) / 1e6


def test_a_server_install_pulls_no_torch_ultralytics_or_panda3d(install: ServerInstall) -> None:
    listed = json.loads(_run([str(install.venv / "bin" / "python"), "-m", "pip", "list", "--format", "json"],
                             env=_clean_env()))
    names = {entry["name"].lower() for entry in listed}
    assert "fixlens" in names and {"aiohttp", "onnxruntime", "opencv-python"} <= names
    assert not names & set(NOT_IN_SERVER), sorted(names & set(NOT_IN_SERVER))
    print(f"\nserver install: {_size_mb(install.site_packages):.0f} MB in site-packages, wheel "
          f"{install.wheel.stat().st_size / 1e6:.1f} MB, built and installed in {install.seconds:.0f} s")


@pytest.fixture(scope="module")
def router_views() -> list[RenderedFrame]:
    """The whole router from 0.8 m, two sides (as tests/ar_server/test_real_pipeline.py sees it)."""
    states = Twin(default_catalog().get(PRODUCT), "wan_unplugged").states(0.0)
    return render_frames(PRODUCT, [states], width=640, height=480, yaws=(150.0, 210.0), pitch=20.0,
                         distance=0.8)[0]


@dataclass
class _Served:
    process: asyncio.subprocess.Process
    url: str

    def make_url(self, path: str) -> str:
        return self.url + path


@pytest.fixture
def empty_dirs(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """An empty working directory and an empty home (so ~/.local/share is this test's)."""
    cwd, home = tmp_path / "cwd", tmp_path / "home"
    cwd.mkdir()
    home.mkdir()
    yield cwd, home


async def test_the_installed_server_guides_a_session_from_an_empty_directory_and_writes_nothing_in_site_packages(
        install: ServerInstall, router_views: list[RenderedFrame], empty_dirs: tuple[Path, Path],
        tmp_path: Path) -> None:
    cwd, home = empty_dirs
    before = _snapshot(install.site_packages)
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            str(install.venv / "bin" / "fixlens"), "serve", "--host", "127.0.0.1", "--port", "0", cwd=cwd,
            env=_clean_env(HOME=str(home)), stdout=asyncio.subprocess.PIPE, stderr=log)
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 120.0)).decode()
        match = re.search(r"serving on (http://\S+)", line)
        assert match, f"unexpected first line {line!r}; log:\n{log_path.read_text()[-3000:]}"
        server = _Served(process, match.group(1))
        authority = TokenAuthority(DEV_SECRET)

        client = await StreamClient.connect(server)
        try:
            await client.hello(authority.mint("customer", "cust-installed", 600), scene=SCENE)
            assert (await client.expect("step")).step == "check_wan"
            await stream_frames(client, router_views, seconds=2.0, fps=6.0)
            obs = [m for m in client.received if m.t == "obs"]
            assert obs and any(o.product == PRODUCT and o.pose is not None for o in obs), \
                [(o.product, o.pose is not None) for o in obs]
            await client.event("done", step="check_wan")
            assert (await client.expect("step")).step == "wait_link"
        finally:
            await client.close()

        # An author edits a scene: the file written is the data dir's copy, never the package's.
        shipped = (LIBRARY_DIR / f"{SCENE}.yaml").read_text(encoding="utf-8")
        edited = shipped.replace("Plug the internet cable firmly", "Push the internet cable firmly")
        assert edited != shipped
        async with aiohttp.ClientSession() as http:
            response = await http.put(server.make_url(f"/v1/scenes/{SCENE}"), data=edited,
                                      headers={"Authorization": f"Bearer {authority.mint('author', 'ann', 600)}"})
            assert response.status == 200, await response.text()
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        exit_code = await asyncio.wait_for(process.wait(), 30.0)
    log_text = log_path.read_text()
    assert exit_code == 0, log_text[-3000:]

    assert "hands: off, face blur: off" in log_text and "mediapipe is not installed" in log_text, log_text[-3000:]
    data_dir = home / ".local" / "share" / "fixlens"
    assert f"data dir: {data_dir}" in log_text
    assert (data_dir / "fixlens.db").is_file()
    assert sorted(p.name for p in scene_files(data_dir / "scenes")) == sorted(p.name for p in scene_files(LIBRARY_DIR))
    assert (data_dir / "scenes" / f"{SCENE}.yaml").read_text(encoding="utf-8") == edited
    assert list(cwd.iterdir()) == []

    after = _snapshot(install.site_packages)
    changed = sorted(set(before) ^ set(after)) + sorted(p for p in before.keys() & after.keys()
                                                        if before[p] != after[p])
    assert changed == [], changed[:20]
