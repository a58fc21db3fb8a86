"""`gsedit studio`: interactive multi-turn editing in the browser, over gsedit.Session."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from gsedit.commands.edit import EditRun
from gsedit.errors import GseditError

REMOTE_WARNING = (
    "warning: the studio listens on {host}: anyone who can reach port {port} there can run edits "
    "and write files in {folder} (no login, no encryption). Prefer the default 127.0.0.1 with an "
    "SSH tunnel (`ssh -L {port}:127.0.0.1:{port} HOST`)."
)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost: it may resolve anywhere
        return False


@dataclass
class Studio(EditRun):
    """Interactive editing in the browser (viser): preview, run, cancel and undo turns, select by
    clicking, delete, export. SCENE is any scene gsedit reads (a new session in --out) or a session folder."""

    host: str = "127.0.0.1"
    """Address to listen on. Anything but loopback needs --allow-remote."""
    port: int = 8080
    """HTTP/websocket port of the page."""
    allow_remote: bool = False
    """Allow a non-loopback --host (anyone who can reach it can edit and write the session)."""
    max_side: int = 256
    """Longer side of server-rendered frames (nerfacto, overlays) once the camera stops."""

    def run(self) -> None:
        from gsedit.commands.sessions import open_for_studio
        from gsedit.studio.app import Studio as StudioApp
        from gsedit.studio.app import StudioConfig

        if self.turn or self.resume:
            raise GseditError("gsedit studio takes its instructions in the page: leave out --turn and --resume "
                              "(an existing session folder is opened as it is).")
        if not is_loopback(self.host) and not self.allow_remote:
            raise GseditError(f"--host {self.host} is not a loopback address: the studio runs edits and writes "
                              "files for whoever reaches it. Pass --allow-remote to listen there anyway, or keep "
                              "127.0.0.1 and use an SSH tunnel.")
        session = open_for_studio(self)
        try:
            if not is_loopback(self.host):
                print(REMOTE_WARNING.format(host=self.host, port=self.port, folder=session.folder))
            app = StudioApp(session, StudioConfig(host=self.host, port=self.port, max_side=self.max_side))
            print(f"studio at {app.url} (session {session.folder}; Ctrl-C to stop)")
            app.serve_forever()
        finally:
            session.close()
