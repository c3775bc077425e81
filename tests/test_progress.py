"""Progress bars (pondfs.progress) show on a terminal only: ``pond cp`` and ``pond check``
run with stderr on a real pseudo-terminal, and again with stderr on a pipe."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

POND_CMD = [sys.executable, "-m", "pondfs.cli"]


def on_a_terminal(*args: str, env: dict[str, str]) -> tuple[int, str]:
    """Run ``pond ARGS`` with stderr on a pseudo-terminal: exit status and what it showed."""
    leader, follower = pty.openpty()
    # A new pseudo-terminal has 0 columns, and a bar fits none: make it 80 x 24.
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    shown: list[bytes] = []

    def drain() -> None:  # as the command writes: a full terminal would block it
        try:
            while chunk := os.read(leader, 65536):
                shown.append(chunk)
        except OSError:  # EIO: the command has exited and its side of the terminal closed
            pass

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        done = subprocess.run([*POND_CMD, *args], env=env, stdout=subprocess.DEVNULL,
                              stderr=follower, timeout=120)
    finally:
        os.close(follower)
        reader.join()
        os.close(leader)
    return done.returncode, b"".join(shown).decode(errors="replace")


def test_bars_on_a_terminal_only(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "POND"}
    env["POND"] = str(tmp_path / "pond")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 * 1024 * 1024))
    assert subprocess.run([*POND_CMD, "init"], env=env, capture_output=True).returncode == 0

    code, shown = on_a_terminal("cp", str(big), "/big.bin", env=env)
    assert code == 0
    assert shown.startswith("\rcopy:   0%|") and "| 0.00/3.00M " in shown  # MiB of bytes
    assert re.search(r"\r +\r$", shown)  # and the bar is gone once the copy is done
    code, shown = on_a_terminal("check", env=env)
    assert code == 0 and shown.startswith("\rcheck: 0version ")
    assert re.search(r"\r +\r$", shown)

    piped = subprocess.run([*POND_CMD, "cp", str(big), "/again.bin"], env=env,
                           capture_output=True)
    assert piped.returncode == 0 and piped.stderr == b""
