"""The server as ``make run`` starts it: loopback only, and a Host check against DNS rebinding."""

from __future__ import annotations

import base64
import os
import shutil
import socket
import tempfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import REPO, streamlit_server

from ui.server import allowed_hosts, host_is_allowed, host_name


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    data_dir = Path(tempfile.mkdtemp(prefix="ee-server-"))
    try:
        with streamlit_server(data_dir, "hashing") as url:
            yield url
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def _request(url: str, path: str, host: str, websocket: bool = False) -> str:
    """The status line the server answers to ``GET path`` with this ``Host`` header."""
    port = urllib.parse.urlsplit(url).port
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Connection: close"]
    if websocket:
        key = base64.b64encode(os.urandom(16)).decode()
        lines[2:] = [
            "Connection: Upgrade",
            "Upgrade: websocket",
            "Sec-WebSocket-Version: 13",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Protocol: streamlit",
            f"Origin: http://{host}",
        ]
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    return data.split(b"\r\n", 1)[0].decode()


def test_host_names_parse_with_ports_and_brackets():
    assert host_name("LOCALHOST:8501") == "localhost"
    assert host_name("[::1]:8501") == "::1"
    assert host_name("127.0.0.1") == "127.0.0.1"
    assert host_name("evil.example.:80") == "evil.example"


def test_allowed_hosts_follow_the_bound_address_and_the_environment_list():
    names, any_ip = allowed_hosts("127.0.0.1")
    assert not any_ip
    for host in ("localhost", "localhost:8501", "127.0.0.1:1", "[::1]:8501", "[::1]"):
        assert host_is_allowed(host, names, any_ip), host
    for host in ("evil.example", "evil.example:8501", "127.0.0.1.evil.example", "", None, "10.0.0.5:8501"):
        assert not host_is_allowed(host, names, any_ip), host
    names, any_ip = allowed_hosts("10.0.0.5", ["explorer.lan", " "])
    assert host_is_allowed("10.0.0.5:8501", names, any_ip)
    assert host_is_allowed("explorer.lan:8501", names, any_ip)
    assert not host_is_allowed("10.0.0.6:8501", names, any_ip)
    names, any_ip = allowed_hosts("0.0.0.0")  # exposed on purpose: any IP, still no foreign name
    assert host_is_allowed("192.168.1.20:8501", names, any_ip)
    assert not host_is_allowed("evil.example:8501", names, any_ip)


def test_the_server_answers_local_hosts_and_refuses_others_on_http(server_url):
    port = urllib.parse.urlsplit(server_url).port
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "localhost"):
        assert " 200 " in _request(server_url, "/_stcore/health", host), host
    assert " 200 " in _request(server_url, "/", f"localhost:{port}")
    for path in ("/", "/_stcore/health", "/_stcore/host-config"):
        for host in ("evil.example", f"evil.example:{port}"):
            assert " 400 " in _request(server_url, path, host), (path, host)


def test_the_server_refuses_a_foreign_host_on_the_websocket(server_url):
    port = urllib.parse.urlsplit(server_url).port
    assert " 101 " in _request(server_url, "/_stcore/stream", f"localhost:{port}", websocket=True)
    refused = _request(server_url, "/_stcore/stream", f"evil.example:{port}", websocket=True)
    assert " 101 " not in refused and " 403 " in refused, refused


def _listening_addresses(port: int) -> set[str]:
    """Local addresses of the sockets listening on ``port``, from /proc/net/tcp{,6} (hex, kernel order)."""
    found = set()
    for name in ("tcp", "tcp6"):
        path = Path("/proc/net") / name
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].rsplit(":", 1)
            if int(hex_port, 16) == port and fields[3] == "0A":  # 0A = LISTEN
                found.add(address)
    return found


def _non_loopback_addresses() -> list[str]:
    addresses = set()
    try:
        addresses.update(
            info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
        )
    except OSError:
        pass
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent; this only picks the outgoing interface
            addresses.add(probe.getsockname()[0])
        except OSError:
            pass
    return sorted(a for a in addresses if not a.startswith("127.") and a != "0.0.0.0")


def test_the_server_listens_on_loopback_only(server_url):
    port = urllib.parse.urlsplit(server_url).port
    config = (REPO / ".streamlit" / "config.toml").read_text()
    assert 'address = "127.0.0.1"' in config
    listening = _listening_addresses(port)
    if Path("/proc/net/tcp").exists():
        assert listening == {"0100007F"}, listening  # 127.0.0.1 only: no 0.0.0.0, no [::]
    others = _non_loopback_addresses()
    for address in others:
        with pytest.raises(OSError):
            socket.create_connection((address, port), timeout=5).close()
    if not others and not Path("/proc/net/tcp").exists():
        pytest.skip("no non-loopback address and no /proc/net/tcp to check the bound socket")
