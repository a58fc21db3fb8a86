"""`gsedit studio`: interactive multi-turn editing in the browser, over gsedit.Session."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

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
    frame_side: int = 256
    """Longer side of server-rendered frames (nerfacto, overlays) once the camera stops."""

    def run(self) -> None:
        from gsedit.studio.app import Studio as StudioApp
        from gsedit.studio.app import StudioConfig

        if self.turn or self.resume:
            raise GseditError("gsedit studio takes its instructions in the page: leave out --turn and --resume "
                              "(an existing session folder is opened as it is).")
        if not is_loopback(self.host) and not self.allow_remote:
            raise GseditError(f"--host {self.host} is not a loopback address: the studio runs edits and writes "
                              "files for whoever reaches it. Pass --allow-remote to listen there anyway, or keep "
                              "127.0.0.1 and use an SSH tunnel.")
        session = open_session(self)
        try:
            if not is_loopback(self.host):
                print(REMOTE_WARNING.format(host=self.host, port=self.port, folder=session.folder))
            sam = sam_settings(self, session)
            app = StudioApp(session, StudioConfig(host=self.host, port=self.port, max_side=self.frame_side, **sam))
            print(f"studio at {app.url} (session {session.folder}; Ctrl-C to stop)")
            app.serve_forever()
        finally:
            session.close()


def sam_settings(args: Studio, session) -> dict:
    """The SAM weights for click selection: --sam-checkpoint, else the session's own ADSS settings."""
    if args.adss.sam_checkpoint is not None:
        return {"sam_checkpoint": args.adss.sam_checkpoint, "sam_model_type": args.adss.sam_model_type}
    adss = session.record.data["plugins"].get("adss") or {}
    if adss.get("sam_checkpoint"):
        return {"sam_checkpoint": Path(adss["sam_checkpoint"]), "sam_model_type": adss.get("sam_model_type", "vit_h")}
    return {}


def open_session(args: Studio):
    """The gsedit.Session the studio edits: SCENE when it is a session folder, else a new session of
    SCENE in --out (or the one already in --out when no SCENE is given); it holds the lock."""
    from gsedit.commands.options import resolve_device
    from gsedit.edit.api import Session
    from gsedit.edit.options import options_of
    from gsedit.edit.session import SESSION_FILE

    device = resolve_device(args.device)
    if args.scene is not None and (Path(args.scene) / SESSION_FILE).is_file():
        return Session.open(args.scene, device=device, export=args.export)
    if args.scene is None:
        if not (Path(args.out) / SESSION_FILE).is_file():
            raise GseditError(f"gsedit studio needs a scene (with --cameras) or a session folder; {args.out} holds no session.")
        return Session.open(args.out, device=device, export=args.export)
    return Session.start(args.out, options_of(args), [], resume=False, device=device, need_turns=False)
