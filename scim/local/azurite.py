"""Start and stop Azurite's Table and Queue services from ``node_modules`` (``npm ci`` installs the pinned 3.35.0).

Each service is its own process (``azurite-table``, ``azurite-queue``) on its own port, so a test or tool that needs
only tables starts only tables; with ``data_dir`` both persist to the same folder (their files do not overlap).
"""

import signal
import socket
import subprocess
import time
from pathlib import Path

ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_QUEUE_PORT = 10001
"""Azurite's (and ``UseDevelopmentStorage=true``'s) queue port."""


def connection_string(port: int, host: str = "127.0.0.1", queue_port: int | None = None) -> str:
    """The account's connection string; with ``queue_port``, queues too (the change feed's publisher needs them).
    The queue endpoint comes first, so readers that take everything after ``TableEndpoint=`` still read a URL."""
    queues = f"QueueEndpoint=http://{host}:{queue_port}/{ACCOUNT};" if queue_port else ""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};{queues}"
        f"TableEndpoint=http://{host}:{port}/{ACCOUNT};"
    )


def free_port() -> int:
    """A port nobody listens on now; Azurite 3.35.0 cannot report the port it picked for ``--tablePort 0``."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start(port: int, data_dir: Path | None = None, timeout: float = 30.0) -> subprocess.Popen[bytes]:
    """Run Azurite's Table service (telemetry off), in memory or persisting to ``data_dir``, and wait until it
    accepts connections."""
    return _launch("azurite-table", ["--tableHost", "127.0.0.1", "--tablePort", str(port)], port, data_dir, timeout)


def start_queue(port: int, data_dir: Path | None = None, timeout: float = 30.0) -> subprocess.Popen[bytes]:
    """Run Azurite's Queue service like :func:`start`; stop it with :func:`stop`."""
    return _launch("azurite-queue", ["--queueHost", "127.0.0.1", "--queuePort", str(port)], port, data_dir, timeout)


def _launch(
    service: str, listen: list[str], port: int, data_dir: Path | None, timeout: float
) -> subprocess.Popen[bytes]:
    binary = REPO_ROOT / "node_modules" / ".bin" / service
    if not binary.exists():
        raise FileNotFoundError(f"{binary} is missing: run `npm ci` in {REPO_ROOT}")
    command = [str(binary), "--silent", "--disableTelemetry", *listen]
    if data_dir is None:
        command.append("--inMemoryPersistence")
    else:
        data_dir.mkdir(parents=True, exist_ok=True)
        command += ["--location", str(data_dir)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # noqa: S603
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise RuntimeError(f"Azurite exited: {output}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process
        except OSError:
            time.sleep(0.1)
    stop(process)
    raise TimeoutError(f"Azurite did not listen on port {port} within {timeout} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGINT, Azurite's clean shutdown: it saves its database on the way out. On SIGTERM it exits at once and
    loses whatever it wrote since its last autosave (up to 5 s of acknowledged writes)."""
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
