"""The REST server's HTTP layer under hostile input: chunked bodies, limits, timeouts, no banners.

Issue 14 (failure 4 and the "REST server has no limits" class): a real `tfship serve` on 127.0.0.1
with small limits, spoken to over raw sockets where the framing itself is the test.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tfship import storage
from tfship import models_config
from tfship.cli import main as cli_main
from tfship.errors import ConfigError
from tfship.steps.serve import serve
from tfship.steps.serve.config import ServeConfig

pytestmark = pytest.mark.timeout(180)
MAX_BODY = 4096
TIMEOUT_S = 1
WORKERS = 2
PREDICT = "/v1/models/default:predict"


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, tf_serving_testdata: Path) -> str:
    root = tmp_path_factory.mktemp("repo")
    (root / "default").mkdir()
    os.symlink(tf_serving_testdata / "saved_model_half_plus_two_cpu" / "00000123", root / "default" / "123")
    config = models_config.with_version(models_config.ModelServerConfig(), "default", str(root / "default"), 123)
    storage.write_text(models_config.config_uri(str(root)), models_config.format_models_config(config))
    return str(root)


@pytest.fixture(scope="module")
def server(repo: str):
    with serve(repo, grpc_port=0, rest_port=0, poll_seconds=0, workers=WORKERS,
               rest_max_body_bytes=MAX_BODY, rest_timeout_s=TIMEOUT_S) as handle:
        yield handle


def connect(server: Any) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.rest_port), timeout=10)
    return sock


def read_response(reader: Any) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length body from a socket's file object."""
    status_line = reader.readline().decode("latin-1")
    assert status_line.startswith("HTTP/1.1 "), status_line
    headers = {}
    while (line := reader.readline().decode("latin-1").strip()):
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    body = reader.read(int(headers.get("content-length", 0)))
    return int(status_line.split()[1]), headers, body


def post_raw(server: Any, request: bytes) -> tuple[int, dict[str, str], bytes]:
    with connect(server) as sock:
        sock.sendall(request)
        return read_response(sock.makefile("rb"))


def request_head(path: str, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: test", "Content-Type: application/json"]
    lines += [f"{key}: {value}" for key, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunked(body: bytes, size: int = 7) -> bytes:
    pieces = [body[i:i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


def test_a_chunked_body_is_read_and_the_next_pipelined_request_is_answered(server: Any) -> None:
    """Before: the chunked body's bytes were parsed as the next request (desync, a smuggling primitive)."""
    first = request_head(PREDICT, {"Transfer-Encoding": "chunked"}) + chunked(b'{"instances": [1.0, 2.0]}')
    second_body = b'{"instances": [5.0]}'
    second = request_head(PREDICT, {"Content-Length": str(len(second_body))}) + second_body
    with connect(server) as sock:
        sock.sendall(first + second)  # pipelined: both requests in one write
        reader = sock.makefile("rb")
        answers = [read_response(reader) for _ in range(2)]
    assert [(status, json.loads(body)) for status, _, body in answers] == [
        (200, {"predictions": [2.5, 3.0]}),
        (200, {"predictions": [4.5]}),
    ]


def test_keep_alive_serves_many_requests_on_one_connection(server: Any) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=10)
    sockets = set()
    for value in range(5):
        connection.request("POST", PREDICT, body=json.dumps({"instances": [float(value)]}))
        response = connection.getresponse()
        assert (response.status, json.loads(response.read())) == (200, {"predictions": [value / 2 + 2]})
        sockets.add(id(connection.sock))
    connection.close()
    assert len(sockets) == 1


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_body_over_the_limit_is_413_with_a_json_error(server: Any, framing: str) -> None:
    body = json.dumps({"instances": [1.0] * MAX_BODY}).encode()
    if framing == "chunked":
        request = request_head(PREDICT, {"Transfer-Encoding": "chunked"}) + chunked(body, 1000)
    else:
        request = request_head(PREDICT, {"Content-Length": str(len(body))}) + body
    status, headers, answer = post_raw(server, request)
    assert status == 413
    assert headers["content-type"] == "application/json"
    assert json.loads(answer) == {"error": f"Request Entity Too Large: the body is over the limit of {MAX_BODY} bytes"}


def test_a_body_of_exactly_the_limit_is_accepted_and_one_byte_more_is_not(server: Any) -> None:
    """(A chunked body is counted as sent, chunk sizes included: see docs/serve-canary.md.)"""
    document = b'{"instances": [1.0]}'
    statuses = []
    for size in (MAX_BODY, MAX_BODY + 1):
        body = document + b" " * (size - len(document))  # JSON allows trailing whitespace
        statuses.append(post_raw(server, request_head(PREDICT, {"Content-Length": str(size)}) + body)[0])
    assert statuses == [200, 413]


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_sent(server: Any) -> None:
    """The client never sends the 1 GB it announced: the answer comes from the headers alone."""
    status, _, answer = post_raw(server, request_head(PREDICT, {"Content-Length": str(2**30)}))
    assert status == 413 and "over the limit" in json.loads(answer)["error"]


@pytest.mark.parametrize("value", ["abc", "-5", "1, 2", "0x10"])
def test_an_invalid_content_length_is_400_with_a_json_error(server: Any, value: str) -> None:
    """Before: the connection was dropped with a traceback in the server's log."""
    status, headers, answer = post_raw(server, request_head(PREDICT, {"Content-Length": value}) + b"{}")
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert json.loads(answer)["error"].startswith("Bad Request: ")


@pytest.mark.parametrize("body", [
    b"[" * 2000 + b"]" * 2000,  # deeper than the JSON parser follows
    json.dumps({"instances": [1.0]}).replace("[1.0]", "[" * 900 + "1.0" + "]" * 900).encode(),  # parsed, too deep to walk
    b"\xff\xfe not utf-8",
], ids=["deep", "deep-tensor", "not-utf8"])
def test_deep_or_invalid_json_is_400_not_500(server: Any, body: bytes) -> None:
    """Before: deep JSON answered 500 "Internal error: RecursionError"."""
    status, _, answer = post_raw(server, request_head(PREDICT, {"Content-Length": str(len(body))}) + body)
    assert status == 400, answer
    assert set(json.loads(answer)) == {"error"}


def test_no_server_banner_and_no_server_paths_in_any_answer(server: Any, repo: str) -> None:
    answers = [
        post_raw(server, request_head(PREDICT, {"Content-Length": "19"}) + b'{"instances": [1]}\n'),  # 200
        post_raw(server, request_head("/nope", {"Content-Length": "2"}) + b"{}"),  # 404
        post_raw(server, request_head("/v1/models/nope:predict", {"Content-Length": "2"}) + b"{}"),  # 404
        post_raw(server, request_head(PREDICT, {"Content-Length": "x"})),  # 400 from the HTTP layer
        post_raw(server, request_head(PREDICT, {"Content-Length": str(MAX_BODY + 1)})),  # 413
    ]
    assert [status for status, _, _ in answers] == [200, 404, 404, 400, 413]
    for _, headers, body in answers:
        assert "server" not in headers and "via" not in headers
        assert repo.encode() not in body and b"waitress" not in body and b"Traceback" not in body


def test_stalled_connections_hold_no_worker_and_are_dropped(server: Any) -> None:
    """Ten times more stalled clients than workers: a real request is still answered at once, and
    the server closes the stalled connections after its timeout. Before: one thread per stalled
    connection, held forever."""
    stalled = [connect(server) for _ in range(10 * WORKERS)]
    for index, sock in enumerate(stalled):
        # half stall inside the headers, half inside a body that never completes
        sock.sendall(b"POST " + PREDICT.encode() + b" HTTP/1.1\r\nHost: t\r\n" if index % 2 else
                     request_head(PREDICT, {"Content-Length": "100"}) + b'{"inst')
    started = time.monotonic()
    status, _, body = post_raw(server, request_head(PREDICT, {"Content-Length": "18"}) + b'{"instances": [1]}')
    assert (status, json.loads(body)) == (200, {"predictions": [2.5]})
    assert time.monotonic() - started < 0.5 * TIMEOUT_S
    deadline = time.monotonic() + TIMEOUT_S + 5
    for sock in stalled:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        assert sock.recv(1024) == b"", "the server should have closed the stalled connection"
        sock.close()
    assert time.monotonic() < deadline


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"rest_max_body_bytes": 0}, r"rest_max_body_bytes=0\. Expected a positive number of bytes"),
    ({"rest_timeout_s": 0}, r"rest_timeout_s=0\. Expected 1-86400 seconds"),
    ({"rest_timeout_s": 1.5}, r"rest_timeout_s=1\.5\. Expected 1-86400 seconds"),
])
def test_limits_are_checked_when_the_config_is_built(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ServeConfig(repo="/tmp", **kwargs)


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_serve_refuses_a_repo_that_is_not_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                       kind: str) -> None:
    """Before (failure 5): a missing --repo served nothing, forever, without a word."""
    repo = tmp_path / "no-such-repo"
    if kind == "file":
        repo.write_text("not a repository")
    started = time.monotonic()
    code = cli_main(["serve", "--repo", str(repo), "--grpc-port", "0", "--rest-port", "0"])
    err = capsys.readouterr().err
    assert code == 2 and time.monotonic() - started < 10
    expected = "no such directory" if kind == "missing" else "not a directory"
    assert err.strip().splitlines() == [f"tfship serve: error: --repo {repo}: {expected}. Fix: pass the model "
                                        "repository that `tfship push` writes to (the directory holding models.config)."]


def test_serve_refuses_an_unreadable_models_config(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / models_config.config_uri(str(tmp_path)).rsplit("/", 1)[-1]).mkdir()  # models.config as a directory
    code = cli_main(["serve", "--repo", str(tmp_path), "--grpc-port", "0", "--rest-port", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "models.config" in err[0], err


def test_serve_refuses_a_gcs_repo_in_a_missing_bucket(gcs_emulator: str, capsys: pytest.CaptureFixture) -> None:
    code = cli_main(["serve", "--repo", "gs://no-such-bucket-tfship/models", "--grpc-port", "0", "--rest-port", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["tfship serve: error: Bucket 'no-such-bucket-tfship' of "
                                 "'gs://no-such-bucket-tfship/models' does not exist (or is not visible)."]


def test_the_cli_flags_set_the_limits(repo: str) -> None:
    """`tfship serve --rest-max-body-bytes --rest-timeout` as a user starts it, in its own process."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tfship.cli", "serve", "--repo", repo, "--grpc-port", "0", "--rest-port", "0",
         "--poll-seconds", "0", "--rest-max-body-bytes", "64", "--rest-timeout", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        line = process.stdout.readline()
        port = int(line.rsplit(":", 1)[1])
        body = json.dumps({"instances": [1.0] * 20}).encode()  # 111 bytes
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(request_head(PREDICT, {"Content-Length": str(len(body))}) + body)
            status, _, answer = read_response(sock.makefile("rb"))
        assert (status, json.loads(answer)) == (413, {"error": "Request Entity Too Large: the body is over the limit of 64 bytes"})
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"POST " + PREDICT.encode() + b" HTTP/1.1\r\n")  # stalls
            started = time.monotonic()
            assert sock.recv(1024) == b""
            assert time.monotonic() - started < 5
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0


@pytest.mark.parametrize(("flag", "message"), [
    ("--rest-timeout=0", "rest_timeout_s=0"),
    ("--rest-max-body-bytes=-1", "rest_max_body_bytes=-1"),
])
def test_the_cli_refuses_bad_limits_in_one_line(repo: str, flag: str, message: str,
                                                capsys: pytest.CaptureFixture) -> None:
    code = cli_main(["serve", "--repo", repo, "--grpc-port", "0", "--rest-port", "0", flag])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err
