"""``python -m scim serve`` as a child process, for end-to-end tests and benchmarks: started on a free port with
its own token and table, waited for until it listens, stopped cleanly or killed outright."""

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

from scim.local import azurite
from scim.local.host import REPO_ROOT

START_TIMEOUT = 30.0


class LocalServer:
    """One endpoint process; :meth:`start` may be called again after :meth:`kill`, on the same port and table."""

    def __init__(
        self, connection_string: str, table_prefix: str, log: IO[bytes] | None = None, root: Path = REPO_ROOT
    ) -> None:
        self.root = root
        """The checkout whose code runs (a benchmark may measure an older revision)."""
        self.token = secrets.token_urlsafe(32)
        self.port = azurite.free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/scim/v2"
        self.log = log or tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        self.env = {
            **os.environ,
            "SCIM_STORAGE_CONNECTION_STRING": connection_string,
            "SCIM_BEARER_TOKENS": self.token,
            "SCIM_TABLE_PREFIX": table_prefix,
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.command = [sys.executable, "-m", "scim"]
        """What runs ``serve`` (a benchmark may run it through a probe: bench/loop_stalls.py)."""

    def start(self) -> None:
        """Start, and return once the port accepts connections; its own session, so a Ctrl-C reaches only us."""
        self.process = subprocess.Popen(  # noqa: S603
            [*self.command, "serve", "--port", str(self.port)],
            cwd=self.root,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.process.kill()
                    self.log.seek(0)
                    raise RuntimeError(self.log.read().decode(errors="replace")) from None
                time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no cleanup, no flushing, as when a Functions instance is recycled mid-request."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def close(self) -> None:
        """SIGINT (aiohttp's clean shutdown), then a kill if it takes too long."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
