"""The HAProxy configuration: HAProxy itself accepts it, and docs/deploy.md shows exactly what the code writes."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from ar_server.cluster.haproxy import Backend, haproxy_config
from ar_server.cluster.local import _need

DOC = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"
DOC_NODES = [Backend(f"node{i}", f"10.0.0.{10 + i}:8080") for i in (1, 2, 3)]


def test_haproxy_accepts_the_configuration(tmp_path: Path) -> None:
    path = tmp_path / "haproxy.cfg"
    path.write_text(haproxy_config(DOC_NODES, bind="127.0.0.1:8443", maxconn=1000,
                                   stats_socket=str(tmp_path / "admin.sock")))
    checked = subprocess.run([_need("haproxy", "haproxy"), "-c", "-f", str(path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_deploy_guide_shows_the_configuration_the_code_writes() -> None:
    shown = re.search(r"```\n(global\n.*?)```", DOC.read_text(), re.S)
    assert shown, "docs/deploy.md has no HAProxy configuration block"
    assert shown.group(1) == haproxy_config(DOC_NODES, bind=":443", tls_certificate="/etc/haproxy/fixlens.pem",
                                            stats_socket="/run/haproxy/admin.sock")


@pytest.mark.parametrize("backends", [[]])
def test_a_configuration_without_nodes_is_refused(backends: list[Backend]) -> None:
    with pytest.raises(ValueError, match="at least one backend"):
        haproxy_config(backends, bind=":80")
