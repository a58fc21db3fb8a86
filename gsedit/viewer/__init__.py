"""Web viewer (viser): sessions turn by turn, single .ply files, and live edits."""

from gsedit.viewer.camera import ViewPose, cameras_to_poses, pose_to_cameras
from gsedit.viewer.content import ViewerContent
from gsedit.viewer.live import LiveViewer
from gsedit.viewer.server import Viewer, ViewerConfig, run_viewer

__all__ = [
    "LiveViewer",
    "ViewPose",
    "Viewer",
    "ViewerConfig",
    "ViewerContent",
    "cameras_to_poses",
    "pose_to_cameras",
    "run_viewer",
]
