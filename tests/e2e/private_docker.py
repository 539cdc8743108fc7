"""A private Docker engine for tests that stop and restart it (never the shared one).

`PrivateDocker(root)` runs its own `dockerd` (own data root, exec root, pid file and
socket; its own bridge interface, no iptables) with its own containerd, loads
`hgm-base:latest` into it from the shared engine, and can be stopped and started again
while a run uses it (`DOCKER_HOST` in `env`). Needs root and the dockerd binary.

Never `--bridge none`: a dockerd started so deletes the host's `docker0` interface, which
the shared engine needs (builds and bridge-networked containers fail without it). The
private engine gets a bridge of its own instead, made here and deleted in `close()`.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path

BASE_IMAGE = "hgm-base:latest"


class PrivateDocker:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.socket = self.root / "d.sock"
        self.pidfile = self.root / "d.pid"
        self.host = f"unix://{self.socket}"
        self.proc: subprocess.Popen | None = None
        self._log = open(self.root / "dockerd.log", "ab")
        self.bridge = f"hgmt{secrets.token_hex(4)}"  # at most 15 characters
        self._bridge_made = False

    @staticmethod
    def problem() -> str | None:
        """Why a private engine cannot run here, or None."""
        if os.geteuid() != 0:
            return "a private dockerd needs root"
        if shutil.which("dockerd") is None or shutil.which("docker") is None or shutil.which("ip") is None:
            return "dockerd, the docker CLI or ip (iproute2) is not installed"
        return None

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.host}

    def docker(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(["docker", "-H", self.host, *args], capture_output=True, text=True, **kw)

    def _make_bridge(self) -> None:
        if self._bridge_made:
            return
        for args in (["link", "add", self.bridge, "type", "bridge"],
                     ["addr", "add", "192.168.231.1/24", "dev", self.bridge], ["link", "set", self.bridge, "up"]):
            done = subprocess.run(["ip", *args], capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")
        self._bridge_made = True

    def start(self, timeout: float = 60.0) -> None:
        self._make_bridge()
        self.proc = subprocess.Popen(
            ["dockerd", "--data-root", str(self.root / "data"), "--exec-root", str(self.root / "exec"),
             "--pidfile", str(self.pidfile), "-H", self.host, "--bridge", self.bridge, "--iptables=false",
             "--ip6tables=false", "--ip-masq=false", "--cgroup-parent", f"hgm-test-{self.root.name}"],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"private dockerd exited {self.proc.returncode}; see {self.root / 'dockerd.log'}")
            if self.docker("info", timeout=10).returncode == 0:
                return
            time.sleep(0.5)
        raise RuntimeError(f"private dockerd did not answer within {timeout:g} s")

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the engine as `service docker stop` would (its containers die with it)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def load_base_image(self) -> None:
        saved = subprocess.Popen(["docker", "save", BASE_IMAGE], stdout=subprocess.PIPE)
        loaded = subprocess.run(["docker", "-H", self.host, "load", "-q"], stdin=saved.stdout, capture_output=True,
                                text=True, timeout=600)
        saved.stdout.close()
        saved.wait(60)
        if saved.returncode != 0 or loaded.returncode != 0:
            raise RuntimeError(f"could not load {BASE_IMAGE} into the private engine: {loaded.stderr[-500:]}")

    def containers(self, label: str) -> list[str]:
        out = self.docker("ps", "-a", "--filter", f"label={label}", "--format", "{{.Names}}", timeout=30)
        return [line for line in out.stdout.split() if line]

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.docker("rm", "-f", *self.containers("hgm=1"), timeout=60) if self.containers("hgm=1") else None
        self.stop()
        self._log.close()
        # overlay mounts are gone with the daemon; what is left is plain files
        subprocess.run(["umount", "-R", str(self.root / "exec")], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)
        if self._bridge_made:
            subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
