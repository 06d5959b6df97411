"""A real Orthanc with its DICOMweb plugin for the PACS tests: started on a free loopback port with a temporary
storage folder and a generated configuration, stopped afterwards.

Orthanc (Debian packages ``orthanc`` and ``orthanc-dicomweb``, installed by ``make tools``) listens with remote
access refused (only loopback clients are served) and without its DICOM port. An optional Lua filter demands
a bearer token and can refuse every STOW-RS request (a read-only archive).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

PLUGIN_DIR = Path("/usr/lib/orthanc")
LUA = """
function IncomingHttpRequestFilter(method, uri, ip, username, headers)
  {token_check}
  {stow_check}
  return true
end
"""


def orthanc_or_skip() -> tuple[str, Path]:
    """The Orthanc executable and its DICOMweb plugin; CI must have them (``make tools``)."""
    exe = shutil.which("Orthanc")
    plugins = sorted(PLUGIN_DIR.glob("libOrthancDicomWeb.so*")) if PLUGIN_DIR.is_dir() else []
    if exe is None or not plugins:
        assert not os.environ.get("CI"), (
            "Orthanc or its DICOMweb plugin missing in CI: apt-get install orthanc orthanc-dicomweb"
        )
        pytest.skip("Orthanc with the DICOMweb plugin is not installed (apt-get install orthanc orthanc-dicomweb)")
    return exe, plugins[-1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Orthanc:
    """One Orthanc process over a storage folder (which survives :meth:`stop`, so a restart keeps the studies).

    Args:
        root: folder for the storage, configuration and log.
        token: demand ``Authorization: Bearer <token>`` on every request.
        refuse_stow: answer every STOW-RS request with 403 Forbidden.
    """

    def __init__(self, root: Path, token: str | None = None, refuse_stow: bool = False) -> None:
        self.exe, self.plugin = orthanc_or_skip()
        self.root = Path(root)
        self.token, self.refuse_stow = token, refuse_stow
        self.process: subprocess.Popen | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/dicom-web"

    def start(self) -> Orthanc:
        assert self.process is None, "Orthanc is running already"
        (self.root / "storage").mkdir(parents=True, exist_ok=True)
        for _ in range(5):  # another process may take the free port first
            self.port = free_port()
            config = self.root / "orthanc.json"
            config.write_text(json.dumps(self._config()))
            log = open(self.root / "orthanc.log", "ab")
            self.process = subprocess.Popen([self.exe, str(config)], stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
            if self._wait_ready():
                return self
            self.stop()
        raise RuntimeError(f"Orthanc did not start; see {self.root / 'orthanc.log'}")

    def stop(self, kill: bool = False) -> None:
        """Stop the process (``kill``: SIGKILL, as a crash or a pulled cable)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            self.process.wait(timeout=30)
        self.process = None

    def get_json(self, path: str):
        """GET ``path`` below the DICOMweb root as JSON (with the token)."""
        request = urllib.request.Request(f"{self.url}/{path}", headers=self._headers())
        with urllib.request.urlopen(request, timeout=30) as r:
            body = r.read()
        return json.loads(body) if body else []

    def upload(self, path: str | os.PathLike) -> None:
        """Put a DICOM file into the archive through Orthanc's own REST API (not DICOMweb)."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/instances", data=Path(path).read_bytes(),
                                         headers={**self._headers(), "Content-Type": "application/dicom"})
        with urllib.request.urlopen(request, timeout=60) as r:
            assert json.loads(r.read())["Status"] in ("Success", "AlreadyStored")

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def _config(self) -> dict:
        config = {
            "Name": "echokdm-test",
            "StorageDirectory": str(self.root / "storage"),
            "IndexDirectory": str(self.root / "storage"),
            "HttpPort": self.port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomServerEnabled": False,
            "HttpThreadsCount": 4,
            "SaveJobs": False,
            "Plugins": [str(self.plugin)],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False},
        }
        if self.token or self.refuse_stow:
            lua = self.root / "filter.lua"
            token_check = (f'if headers["authorization"] ~= "Bearer {self.token}" then return false end'
                           if self.token else "")
            stow_check = ('if method == "POST" and string.find(uri, "/dicom-web/", 1, true) then return false end'
                          if self.refuse_stow else "")
            lua.write_text(LUA.format(token_check=token_check, stow_check=stow_check))
            config["LuaScripts"] = [str(lua)]
        return config

    def _wait_ready(self, seconds: float = 60.0) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            try:
                self.get_json("studies")
                return True
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.2)
        return False

    def __enter__(self) -> Orthanc:
        return self if self.process is not None else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
