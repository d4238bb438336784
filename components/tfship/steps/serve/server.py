"""`serve()`: start the gRPC and REST servers over a model repository, return a handle to stop them.

Start-up mirrors TF Serving's: the models in models.config are loaded (and warmed up) before either
port answers, and a model that fails to load fails the start. After that, a poll thread follows the
config; the handle's `stop()` ends the servers, then unloads every version.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent import futures
from dataclasses import dataclass, field

import grpc

from tfship import storage
from tfship.errors import ConfigError
from tfship.steps.serve.config import ServeConfig
from tfship.steps.serve.grpc_api import add_services
from tfship.steps.serve.manager import ModelManager
from tfship.steps.serve.rest_api import RestServer, make_rest_server

log = logging.getLogger("tfship.serve")

# TF Serving accepts messages up to 2 GiB; gRPC's default limit is 4 MiB.
_GRPC_OPTIONS = [
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
    ("grpc.so_reuseport", 0),  # a port in use is an error, not a second server sharing it
]


@dataclass
class ServerHandle:
    """A running server. `stop()` is idempotent; also a context manager that stops on exit.

    Attributes:
        config: what it serves.
        manager: the model manager (loaded versions, labels, states).
        grpc_port, rest_port: the ports bound (the chosen ones when 0 was asked; rest_port is -1
            without REST).
    """

    config: ServeConfig
    manager: ModelManager
    grpc_port: int
    rest_port: int
    _grpc_server: grpc.Server
    _rest_server: RestServer | None
    _threads: list[threading.Thread] = field(default_factory=list)
    _stopped: threading.Event = field(default_factory=threading.Event)

    @property
    def grpc_address(self) -> str:
        """`host:port`, what `grpc.insecure_channel` takes."""
        return f"{self.config.host}:{self.grpc_port}"

    @property
    def rest_url(self) -> str:
        """`http://host:port` (empty without REST)."""
        return f"http://{self.config.host}:{self.rest_port}" if self._rest_server else ""

    def poll_now(self) -> None:
        """Apply models.config now instead of at the next poll (for tests and tools)."""
        self.manager.reconcile()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until `stop()` (True) or `timeout` seconds (False)."""
        return self._stopped.wait(timeout)

    def stop(self, grace: float | None = None) -> None:
        """Stop answering (in-flight gRPC calls get `grace` seconds), then unload every version."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self._rest_server is not None:
            self._rest_server.shutdown()
        self._grpc_server.stop(grace).wait()
        for thread in self._threads:
            thread.join(timeout=30)
        self.manager.close()
        log.info("server stopped")

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _poll(handle: ServerHandle) -> None:
    while not handle._stopped.wait(handle.config.poll_seconds):
        try:
            handle.manager.reconcile()
        except Exception:  # keep serving what is loaded; the next poll tries again
            log.exception("reloading models.config failed")


def serve(repo: str, **options: object) -> ServerHandle:
    """Serve the models of `repo` over TF Serving's gRPC and REST API (see `ServeConfig`).

    Returns once every version in models.config is loaded and both ports answer. Example::

        with tfship.serve("/models", grpc_port=0, rest_port=0) as server:
            channel = grpc.insecure_channel(server.grpc_address)
    """
    return start_server(ServeConfig(repo=repo, **options))  # type: ignore[arg-type]


def _check_repo(repo: str) -> None:
    """Refuse a repository that cannot be one, as TF Serving refuses a missing --model_config_file.

    An existing directory without models.config is served (nothing, until a push writes one); a
    path that does not exist, or is a file, is a typo that would otherwise serve nothing forever.
    On gs:// a missing or unreachable bucket raises StorageError when the repository is listed.
    """
    if storage.is_gcs(repo):
        storage.list_dirs(repo)
        return
    fix = "Fix: pass the model repository that `tfship push` writes to (the directory holding models.config)."
    if not os.path.exists(repo):
        raise ConfigError(f"--repo {repo}: no such directory. {fix}")
    if not os.path.isdir(repo):
        raise ConfigError(f"--repo {repo}: not a directory. {fix}")


def start_server(config: ServeConfig) -> ServerHandle:
    """Load the repository's models and serve them over gRPC and REST until `stop()`.

    Raises:
        ConfigError: the repository does not exist or is not a directory, models.config is
            invalid, or a port cannot be bound.
        TfshipError: a version in models.config does not load.
    """
    _check_repo(config.repo)
    manager = ModelManager(config)
    try:
        manager.reconcile(strict=True)
    except BaseException:
        manager.close()  # versions that did load are unloaded again
        raise
    grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=config.workers), options=_GRPC_OPTIONS)
    add_services(grpc_server, manager)
    address = f"{config.host}:{config.grpc_port}"
    try:
        grpc_port = grpc_server.add_insecure_port(address)
    except RuntimeError as error:
        grpc_port = 0
        reason = str(error)
    else:
        reason = "the port is in use or the host is not local"
    if not grpc_port:
        manager.close()
        raise ConfigError(
            f"Cannot listen for gRPC on {address}: {reason}. Fix: pass another --grpc-port, or 0 for a free one."
        )
    rest_server = None
    if config.rest_port >= 0:
        try:
            rest_server = make_rest_server(
                manager, config.host, config.rest_port, threads=config.workers,
                max_body_bytes=config.rest_max_body_bytes, timeout_s=config.rest_timeout_s,
            )
        except OSError as error:
            manager.close()
            raise ConfigError(
                f"Cannot listen for REST on {config.host}:{config.rest_port}: {error.strerror}. "
                "Fix: pass another --rest-port, 0 for a free one, or -1 for no REST."
            ) from error
    grpc_server.start()
    handle = ServerHandle(
        config=config,
        manager=manager,
        grpc_port=grpc_port,
        rest_port=rest_server.port if rest_server else -1,
        _grpc_server=grpc_server,
        _rest_server=rest_server,
    )
    if rest_server is not None:
        handle._threads.append(threading.Thread(target=rest_server.serve_forever, name="tfship-rest", daemon=True))
    if config.poll_seconds > 0:
        handle._threads.append(threading.Thread(target=_poll, args=(handle,), name="tfship-poll", daemon=True))
    for thread in handle._threads:
        thread.start()
    log.info(
        "serving %s: gRPC %s, REST %s, models %s",
        config.repo, handle.grpc_address, handle.rest_url or "off", manager.loaded(),
    )
    return handle
