"""A PostgreSQL server of one's own: ``initdb`` and ``pg_ctl`` in a temporary folder, on a free loopback port.

Used by the tests (when no server answers on 127.0.0.1:5432) and by ``bench_scale.py --postgres-server`` (a
large run must not share a server, its buffers or its disk with others). ``initdb`` refuses to run as root: as
root, the binaries run as the ``postgres`` user (``runuser``), and the folder is handed to that user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

#: the server user when this process is root (Debian's packages create it)
SERVER_USER = "postgres"


class ServerUnavailable(Exception):
    """No initdb/pg_ctl, no user to run them as, or the server did not start (``reason`` says which)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def binary(name: str) -> str | None:
    """``initdb``/``pg_ctl`` on PATH, else in Debian's versioned folders (newest first)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parts[-3]), reverse=True)
    return str(candidates[0]) if candidates else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(url: str) -> bool:
    try:
        import psycopg
    except ImportError:
        return False
    try:
        psycopg.connect(url, connect_timeout=2).close()
    except psycopg.Error:
        return False
    return True


def _as_server_user() -> tuple[list[str], pwd.struct_passwd | None]:
    """The command prefix that runs a binary as a user initdb accepts, and that user (None: this one)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return [], None
    runuser = shutil.which("runuser")
    try:
        user = pwd.getpwnam(SERVER_USER)
    except KeyError:
        user = None
    if runuser is None or user is None:
        raise ServerUnavailable(f"initdb refuses to run as root, and there is no {SERVER_USER!r} user to run it as")
    return [runuser, "-u", SERVER_USER, "--"], user


@contextlib.contextmanager
def throwaway_postgres(settings: Mapping[str, str] | None = None, *, parent: str | None = None) -> Iterator[str]:
    """Start a server with ``settings`` (``-c name=value``) in a new folder under ``parent``; yield its URL
    (user ``postgres``, database ``postgres``, trust on loopback); stop it and delete the folder afterwards."""
    initdb, pg_ctl = binary("initdb"), binary("pg_ctl")
    if initdb is None or pg_ctl is None:
        raise ServerUnavailable("no initdb/pg_ctl (install PostgreSQL's server package)")
    prefix, user = _as_server_user()
    folder = Path(tempfile.mkdtemp(prefix="cg-postgres-", dir=parent))
    if user is not None:
        os.chown(folder, user.pw_uid, user.pw_gid)
    data = folder / "data"
    try:
        subprocess.run(  # noqa: S603 - the server's own binaries, our own arguments
            [*prefix, initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        port = free_port()
        options = [f"-p {port}", "-c listen_addresses=127.0.0.1", f"-k {folder}"]
        options += [f"-c {name}={value}" for name, value in (settings or {}).items()]
        result = subprocess.run(  # noqa: S603
            [*prefix, pg_ctl, "-D", str(data), "-o", " ".join(options), "-l", str(folder / "log"), "-w", "-t", "60"]
            + ["start"],
            stdout=subprocess.DEVNULL,
            check=False,
        )
        started = result.returncode == 0
        url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        deadline = time.monotonic() + 10
        while started and not answers(url):
            if time.monotonic() > deadline:
                started = False
            time.sleep(0.1)
        if not started:
            log = (folder / "log").read_text(errors="replace")[-2000:] if (folder / "log").exists() else ""
            raise ServerUnavailable(f"pg_ctl could not start a server:\n{log}")
        yield url
    finally:
        if data.exists():
            subprocess.run(  # noqa: S603
                [*prefix, pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=False,
            )
        shutil.rmtree(folder, ignore_errors=True)
