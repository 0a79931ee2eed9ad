"""The security settings of the served app, with the repository's own .streamlit/config.toml (no command-line
overrides): it listens on 127.0.0.1 only, a 25 MB upload is refused by Streamlit itself (413) while a small one
goes through, the upload limit is the app's own per-file limit, and errors show their type only."""

from __future__ import annotations

import http.client
import tomllib
import uuid
from pathlib import Path

import psutil
import pytest

from retrieval.config import IngestLimits
from tests.load.serve import serve
from tests.load.stclient import Client

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with serve(tmp_path_factory.mktemp("served"), fake=True) as (url, proc, _log):
        yield url, proc


def test_the_config_is_closed_by_default():
    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["address"] == "127.0.0.1"
    assert cfg["server"]["maxUploadSize"] * 2**20 == IngestLimits().max_file_bytes  # Streamlit's unit is MiB
    assert cfg["client"]["showErrorDetails"] == "type"
    assert cfg["server"]["enableXsrfProtection"] is True and cfg["server"]["enableCORS"] is True


def test_it_listens_on_loopback_only(server):
    _, proc = server
    server_procs = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    listening = [c.laddr for p in server_procs for c in p.net_connections(kind="inet")
                 if c.status == psutil.CONN_LISTEN]
    assert listening and {a.ip for a in listening} == {"127.0.0.1"}, listening


def _put(url: str, client: Client, size: int) -> int:
    boundary = uuid.uuid4().hex
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.md\"\r\n"
            "Content-Type: text/markdown\r\n\r\n").encode()
    body = head + b"x" * size + f"\r\n--{boundary}--\r\n".encode()
    host, port = url.split("//")[1].split(":")
    con = http.client.HTTPConnection(host, int(port), timeout=120)
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}", "X-Xsrftoken": client.xsrf,
               "Cookie": f"_streamlit_xsrf={client.xsrf}", "Origin": url}
    try:
        con.request("PUT", f"/_stcore/upload_file/{client.session_id}/{uuid.uuid4().hex}", body=body, headers=headers)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered before it read the whole body: the answer is still there to read
    try:
        return con.getresponse().status
    finally:
        con.close()


def test_a_25_mb_upload_is_refused_by_streamlit_itself(server):
    url, _ = server
    client = Client(url)
    try:
        client.run("rag")
        assert client.session_id
        assert _put(url, client, 25 * 10**6) == 413  # refused by the server: the app never sees it
        assert _put(url, client, 10**6) in (200, 204)  # the same request, small: accepted
    finally:
        client.close()
