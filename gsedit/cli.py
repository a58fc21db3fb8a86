"""The `gsedit` command line (tyro): one entry point, one subcommand per task of DESIGN.md."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal, Union

import tyro
from tyro.conf import OmitArgPrefixes, Positional, UseAppendAction, subcommand

from gsedit.edit.config import EditConfig, load_preset
from gsedit.edit.refine import RefineConfig
from gsedit.errors import GseditError
from gsedit.metrics.evaluate import EvalConfig
from gsedit.models.adss import ADSSConfig
from gsedit.models.ip2p import IP2PConfig
from gsedit.scene.convert import ConvertConfig
from gsedit.scene.files import load_scene_file
from gsedit.scene.fit import FitConfig

Device = Literal["auto", "cpu", "cuda"]
DEFAULT_METHOD = "gsedit"


def resolve_device(device: Device):
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise GseditError("--device cuda was asked for, but PyTorch sees no CUDA device. Use --device cpu or auto.")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


CAMERAS_HELP = ("INRIA cameras.json, transforms.json, a COLMAP model folder, a trainer's output folder, or "
                "orbit:N[@WxH]; default: a trainer folder's own cameras.")
ITERATION_HELP = "Of a trainer's output folder: the iteration/step to load (default: the last)."
FRAME_CHECK_HELP = ("Refuse a scene and cameras that do not see each other (a frame mix-up) before any work; "
                    "--no-frame-check goes ahead anyway.")
DATAPARSER_HELP = ("A nerfstudio run's dataparser_transforms.json: maps --cameras (the dataset's, in its original "
                   "frame) into that run's frame, e.g. for an ns-export splat edited with the dataset's transforms.json.")


@dataclass
class Info:
    """What a scene holds: a splat file or trainer folder (count, SH degree, bounds, extras, labels, the
    trainer's step and cameras) or a nerfacto .ckpt."""

    scene: Positional[Path]
    iteration: int | None = None
    """Of a trainer's output folder: the iteration/step to describe (default: the last)."""

    def run(self) -> None:
        from gsedit.scene.describe import describe_scene

        lines = describe_scene(self.scene, self.iteration)
        width = max(len(name) for name, _ in lines) + 3  # values in one column, after "name: "
        for name, value in lines:
            print(f"{name + ':':<{width}}{value}")


@dataclass
class Render:
    """Renders every camera of CAMS to PNG files (and a contact sheet)."""

    scene: Positional[Path]
    out: Path
    cameras: Annotated[str | None, tyro.conf.arg(help=CAMERAS_HELP)] = None
    channels: str = "rgb"
    """Comma-separated: rgb, alpha, relevance, label, or any extra property of the scene."""
    device: Device = "auto"
    iteration: Annotated[int | None, tyro.conf.arg(help=ITERATION_HELP)] = None
    dataparser_transforms: Annotated[Path | None, tyro.conf.arg(help=DATAPARSER_HELP)] = None
    frame_check: Annotated[bool, tyro.conf.arg(help=FRAME_CHECK_HELP)] = True

    def run(self) -> None:
        from gsedit.render.images import render_channel_images
        from gsedit.scene.files import check_scene_in_view, scene_cameras

        scene = load_scene_file(self.scene, resolve_device(self.device), self.iteration)
        cams = scene_cameras(self.scene, self.cameras, self.dataparser_transforms, scene.bounds())
        if self.frame_check:
            check_scene_in_view(scene, cams, self.scene)
        written = render_channel_images(scene, cams.cameras, [c.strip() for c in self.channels.split(",")], self.out)
        print(f"wrote {written} images to {self.out}")


@dataclass
class EditRun:
    """What `gsedit edit` and `gsedit compare` share: the scene, the turns, the method and plug-ins."""

    scene: Positional[Path | None] = None
    """The input scene (.ply, .spz, .compressed.ply, .sog, .splat, a trainer's output folder, or a gsedit
    nerfacto .ckpt); not needed with --resume."""
    cameras: Annotated[str | None, tyro.conf.arg(help=CAMERAS_HELP)] = None
    iteration: Annotated[int | None, tyro.conf.arg(help=ITERATION_HELP)] = None
    dataparser_transforms: Annotated[Path | None, tyro.conf.arg(help=DATAPARSER_HELP)] = None
    frame_check: Annotated[bool, tyro.conf.arg(help=FRAME_CHECK_HELP)] = True
    export: str = ""
    """Comma-separated splat formats written beside every turn's scene.ply: spz, compressed.ply, splat (3DGS)."""
    turn: UseAppendAction[list[str]] = field(default_factory=list)
    """An instruction; repeat for several turns (they run in order)."""
    out: Path = Path("session")
    """The session folder."""
    method: str = DEFAULT_METHOD
    """Method preset (configs/NAME.yaml): in2n, edit3d, wys or gsedit; the flags below override it."""
    editor: Literal["ip2p", "synthetic"] = "ip2p"
    """Image editor: InstructPix2Pix, or the offline synthetic stand-in (never edit quality)."""
    target: UseAppendAction[list[str]] = field(default_factory=list)
    """What to edit, for the segmenter: once for all turns or once per turn."""
    keep: UseAppendAction[list[str]] = field(default_factory=list)
    """What must stay unchanged (inverse masks for additive edits): once for all turns or per turn."""
    resume: bool = False
    """Continue the session in --out from its last finished turn. The same command line plus --resume finishes its turns and adds none; a longer --turn list appends only its new tail; a --turn list that starts like none of the session's turn lists appends all its turns (add turns later); one that starts like the session's turns and then differs is refused (README, "Resuming a session")."""
    device: Device = "auto"
    refine: bool = False
    """Run the super-resolution refine stage after the last turn (settings: --sr.*)."""
    turntable: bool = False
    """Write renders/turntable.mp4 (and before_after.mp4) for every finished turn."""
    quiet: bool = False
    """No progress display (the JSON-lines log in the session is still written)."""
    settings: OmitArgPrefixes[EditConfig] = field(default_factory=EditConfig)
    ip2p: IP2PConfig = field(default_factory=IP2PConfig)
    """InstructPix2Pix (--editor ip2p)."""
    adss: OmitArgPrefixes[ADSSConfig] = field(default_factory=ADSSConfig)
    """ADSS segmenter (--segmenter adss, and --keep queries)."""
    sr: RefineConfig = field(default_factory=RefineConfig)
    """Refine stage (--refine)."""


@dataclass
class Edit(EditRun):
    """Edits a scene from text instructions, turn after turn; writes DIR/turn_NN/ after every turn."""

    view: bool = False
    """Show the scene updating live in a web viewer (viser) while it trains."""
    view_port: int = 8080

    def run(self) -> None:
        from gsedit.edit.run import run_edit_command

        run_edit_command(self)


@dataclass
class Compare(EditRun):
    """Runs the same turns on 3DGS and nerfacto (the other refitted from the scene's renders):
    DIR/3dgs/ and DIR/nerfacto/ sessions, a side-by-side grid per turn, a table of seconds, memory
    and metrics (DIR/compare.html, DIR/compare.json)."""

    backends: str = "3dgs,nerfacto"
    """Comma-separated backends; the one the scene is in edits it as is, the others refit it."""
    refit: ConvertConfig = field(default_factory=ConvertConfig)
    """How the scene is refitted in the other backend (on the session's cameras)."""
    views: int = 4
    """Views shown in each grid."""
    metrics: EvalConfig = field(default_factory=EvalConfig)
    """The metrics of `gsedit eval`, per backend and turn."""

    def run(self) -> None:
        from gsedit.compare import run_compare

        run_compare(self)


@dataclass
class Fit:
    """Fits a 3DGS scene to posed images (the 3DGS recipe: Adam, L1 + D-SSIM, densification)."""

    images: Positional[Path]
    """Folder of images named like the cameras (png/jpg); a uniform downscale of them is fine."""
    cameras: str
    """INRIA cameras.json, transforms.json or a COLMAP model folder."""
    out: Path = Path("scene.ply")
    iters: int = 7000
    points: int = 20_000
    """Initial Gaussians, spread in the region the cameras look at (without --init)."""
    init: Path | None = None
    """A point-cloud .ply (x y z, optional red green blue: e.g. COLMAP's points) to start from."""
    backend: Literal["3dgs", "nerfacto"] = "3dgs"
    """3DGS writes a .ply; nerfacto (needs the [nerf] install, see README) writes a .ckpt."""
    nerfacto_preset: Literal["nerfacto", "tiny"] = "nerfacto"
    """nerfacto size: the method's defaults (GPU), or a tiny one that trains on CPU."""
    device: Device = "auto"
    quiet: bool = False
    recipe: OmitArgPrefixes[FitConfig] = field(default_factory=FitConfig)
    """The 3DGS recipe (--backend 3dgs)."""

    def run(self) -> None:
        from gsedit.cameras.formats import load_cameras
        from gsedit.progress import fit_progress
        from gsedit.scene.fit import (
            fit_scene,
            images_for_cameras,
            init_from_points,
            random_init,
            read_point_cloud,
        )
        from gsedit.scene.gaussian_scene import GaussianScene

        device = resolve_device(self.device)
        images, cams = images_for_cameras(self.images, load_cameras(self.cameras))
        if self.backend == "nerfacto":
            self._fit_nerfacto(images, cams, device)
            return
        start = GaussianScene(init_from_points(*read_point_cloud(self.init)) if self.init
                              else random_init(cams, self.points))
        start.config.fit = self.recipe
        scene = start.to(device)
        with fit_progress(self.quiet, self.iters) as on_step:
            loss = fit_scene(scene, cams, images, self.iters, on_step)
        path = scene.save_as(self.out)
        print(f"fitted {len(scene):,} Gaussians (last loss {loss:.4f}) -> {path}")

    def _fit_nerfacto(self, images, cams, device) -> None:
        from gsedit.progress import fit_progress
        from gsedit.scene.nerfacto import NERFACTO_PRESETS, fit_nerfacto

        with fit_progress(self.quiet, self.iters) as on_step:
            scene = fit_nerfacto(images.to(device), cams, self.iters, NERFACTO_PRESETS[self.nerfacto_preset],
                                 on_step=on_step)
        path = scene.save_as(self.out.with_suffix(".ckpt"))
        print(f"fitted nerfacto -> {path}")


@dataclass
class Convert:
    """Re-encodes a 3DGS scene in another splat format (.ply, .spz, .compressed.ply, .splat; no refit), or
    refits a scene in the other backend from its renders (labels kept): e.g. an edited nerfacto turn as a
    standard 3DGS .ply that splat viewers open."""

    scene: Positional[Path]
    """A splat file (.ply, .spz, .compressed.ply, .sog, .splat), a trainer's output folder, or a gsedit nerfacto .ckpt."""
    out: Path
    """The new scene: a splat file (3DGS: .ply, .spz, .compressed.ply, .splat), a .ckpt (nerfacto), or a new
    step of a trainer's folder in its layout, for its viewer: RUN/nerfstudio_models/step-N.ckpt,
    RESULTS/ckpts/ckpt_N_rank0.pt, RESULTS/ply/point_cloud_N.ply, MODEL/point_cloud/iteration_N/point_cloud.ply."""
    cameras: str | None = None
    """Views to refit on (needed only for a refit): as for gsedit edit; default: a trainer folder's own."""
    iteration: Annotated[int | None, tyro.conf.arg(help=ITERATION_HELP)] = None
    max_side: int | None = None
    """Render and fit at most this many pixels on the longer side."""
    refit: ConvertConfig = field(default_factory=ConvertConfig)
    device: Device = "auto"
    quiet: bool = False

    def run(self) -> None:
        from gsedit.compare import refit
        from gsedit.scene.files import scene_backend
        from gsedit.scene.trainers import trainer_step_target, write_trainer_step

        self.refit.validate()
        if trainer_step_target(self.out):  # back into a trainer's folder, for its viewer
            path = write_trainer_step(load_scene_file(self.scene, "cpu", self.iteration).gaussians, self.out)
            print(f"wrote {self.scene} as the {trainer_step_target(self.out)} step {path}")
            return
        backend = scene_backend(self.out)
        if scene_backend(self.scene) == backend == "3dgs":
            path = load_scene_file(self.scene, "cpu", self.iteration).save_as(self.out)
            print(f"re-encoded {self.scene} -> {path}")
            return
        if scene_backend(self.scene) == backend:
            raise GseditError(f"{self.scene} is already a nerfacto scene: give --out a splat file for 3DGS.")
        cameras = self.cameras or str(self.scene)  # a trainer folder's own
        if self.cameras is None and not Path(self.scene).is_dir():
            raise GseditError(f"refitting {self.scene} as {backend} needs --cameras: the views to fit on.")
        entry = refit(str(self.scene), cameras, self.max_side, backend, self.out,
                      resolve_device(self.device), self.refit, self.quiet)
        print(f"{backend} scene -> {self.out} ({entry['seconds']:.0f} s, {entry['psnr_to_input']:.2f} dB to the input's renders)")


@dataclass
class Refine:
    """Super-resolves every view of the last turn (Real-ESRGAN, GFPGAN on faces) and fine-tunes on them."""

    session: Positional[Path]
    sr: RefineConfig = field(default_factory=RefineConfig)
    face_segmenter: Literal["none", "adss"] = "none"
    """Find faces with ADSS (query --sr.face-query) when no --sr.face-masks folder is given."""
    adss: OmitArgPrefixes[ADSSConfig] = field(default_factory=ADSSConfig)
    device: Device = "auto"
    quiet: bool = False

    def run(self) -> None:
        from gsedit.edit.run import run_refine_command

        run_refine_command(self.session, self.sr, self.face_segmenter, self.adss,
                           resolve_device(self.device), self.quiet)


@dataclass
class Eval:
    """Metrics of every turn (and the refine) -> DIR/metrics.json and a table."""

    session: Positional[Path]
    settings: OmitArgPrefixes[EvalConfig] = field(default_factory=EvalConfig)
    device: Device = "auto"

    def run(self) -> None:
        from gsedit.edit.session import Session
        from gsedit.metrics.evaluate import evaluate_session, format_table
        from gsedit.progress import console
        from gsedit.report import write_report

        device = resolve_device(self.device)
        metrics = evaluate_session(self.session, self.settings, device,
                                   load_scene=lambda p: load_scene_file(p, device))
        console.print(format_table(metrics))
        for entry in metrics.get("unavailable", []):
            console.print(f"[yellow]unavailable[/] {entry['metric']}: {entry['reason']}", highlight=False)
        write_report(Session.open(self.session))
        console.print(f"metrics: {Path(self.session) / 'metrics.json'}")


@dataclass
class Segment:
    """ADSS open-set segmentation of images: a mask and an overlay per image."""

    inputs: Positional[list[Path]]
    """Image files or folders of images."""
    query: str
    """What to segment, e.g. "the man's face"."""
    out: Path = Path("masks")
    keep: bool = False
    """Write the inverse mask (what must stay unchanged), as for additive edits."""
    adss: OmitArgPrefixes[ADSSConfig] = field(default_factory=ADSSConfig)
    device: Device = "auto"

    def run(self) -> None:
        from gsedit.models.adss import ADSS
        from gsedit.models.segment_files import segment_paths

        segmenter = ADSS.from_pretrained(self.adss, resolve_device(self.device))
        written = segment_paths(list(self.inputs), self.query, self.keep, self.out, segmenter)
        print(f"wrote {len(written)} files to {self.out}")


@dataclass
class View:
    """Web viewer (viser) of a session (turn slider, before/after, masks, relevance) or of one scene file."""

    path: Positional[Path]
    port: int = 8080
    host: str = "127.0.0.1"
    max_side: int | None = None
    """Longest side of the rendered view (default: 3DGS 256 px on CPU, 1024 on CUDA; nerfacto 64 / 256)."""
    device: Device = "auto"

    def run(self) -> None:
        from gsedit.viewer import run_viewer

        viewer = run_viewer(self.path, port=self.port, max_side=self.max_side,
                            device=resolve_device(self.device), host=self.host)
        print(f"viewer at {viewer.url} (Ctrl-C to stop)")
        viewer.serve_forever()


@dataclass
class Batch:
    """Runs the edit sessions of JOBS.yaml on Ray (a local instance by default); a summary table at the end."""

    jobs: Positional[Path]
    address: str | None = None
    """Ray cluster: "auto", HOST:PORT or ray://HOST:PORT; default: start a local one."""
    quiet: bool = False

    def run(self) -> None:
        from gsedit.batch import run_batch

        if run_batch(self.jobs, self.address, self.quiet):
            raise GseditError("some jobs failed: see the table above.")


@dataclass
class Undo:
    """Drops the last finished turn of a session."""

    session: Positional[Path]

    def run(self) -> None:
        from gsedit.edit.session import Session

        index = Session.open(self.session).undo()
        print(f"dropped turn {index} of {self.session}")


@dataclass
class Demo:
    """Offline demo: a synthetic labelled scene, two turns with the synthetic editor, a report."""

    out: Path = Path("gsedit_demo")
    iters: int = 200
    """Optimisation steps per turn."""
    size: int = 96
    """Image size of the demo cameras (pixels)."""
    device: Device = "auto"
    quiet: bool = False

    def run(self) -> None:
        from gsedit.demo import run_demo

        run_demo(self.out, iters=self.iters, size=self.size, device=resolve_device(self.device), quiet=self.quiet)


def _commands(method: str):
    settings, description = load_preset(method)
    edit_default = Edit(method=method, settings=settings)
    return Union[
        Annotated[Info, subcommand("info")],
        Annotated[Render, subcommand("render")],
        Annotated[Edit, subcommand("edit", default=edit_default, description=Edit.__doc__ + f" Preset '{method}': {description}")],
        Annotated[Compare, subcommand("compare", default=Compare(method=method, settings=settings, out=Path("compare")),
                                      description=Compare.__doc__ + f" Preset '{method}': {description}")],
        Annotated[Fit, subcommand("fit")],
        Annotated[Convert, subcommand("convert")],
        Annotated[Undo, subcommand("undo")],
        Annotated[View, subcommand("view")],
        Annotated[Batch, subcommand("batch")],
        Annotated[Segment, subcommand("segment")],
        Annotated[Refine, subcommand("refine")],
        Annotated[Eval, subcommand("eval")],
        Annotated[Demo, subcommand("demo")],
    ]


def _method_from_argv(argv: list[str]) -> str:
    for i, arg in enumerate(argv):
        if arg == "--method" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--method="):
            return arg.split("=", 1)[1]
    return DEFAULT_METHOD


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    from rich.markup import escape

    from gsedit.faults import aftermath, os_error_message
    from gsedit.progress import console

    try:
        command = tyro.cli(_commands(_method_from_argv(argv)), args=argv, prog="gsedit")
        command.run()
    except GseditError as exc:
        if debug:
            raise
        # escaped: a message may quote "[dev]" or "[/]", which rich would take for markup
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return 1
    except KeyboardInterrupt:
        if debug:
            raise
        console.print(f"[bold yellow]interrupted[/]: {escape(aftermath(argv))}", highlight=False, soft_wrap=True)
        return 130
    except (OSError, MemoryError) as exc:
        if debug:
            raise
        what = os_error_message(exc) if isinstance(exc, OSError) else f"out of memory ({exc})."
        console.print(f"[bold red]error:[/] {escape(what)} {escape(aftermath(argv))} (--debug shows the traceback)",
                      highlight=False, soft_wrap=True)
        return 1
    return 0


def entrypoint() -> None:
    sys.exit(main())
