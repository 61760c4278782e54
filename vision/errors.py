"""The one base exception of ``vision``, with a subclass per kind of failure."""

from __future__ import annotations


class VisionError(Exception):
    """Anything the vision pipeline refuses or cannot do. The message says what was wrong and where."""


class FrameError(VisionError):
    """The frame bytes are not a usable JPEG: empty, not JPEG, too large, zero-sized, truncated or corrupt."""


class FrameTooLarge(FrameError):
    """The frame is over a configured limit: its bytes, or the width, height or pixels its header declares."""


class CameraError(VisionError):
    """Camera intrinsics are unusable (NaN, zero, negative, or a shape that does not fit the frame)."""


class PoseError(VisionError):
    """No trustworthy pose from these keypoints (too few, degenerate, behind the camera)."""


class TooFewKeypoints(PoseError):
    """Fewer keypoints sure enough to use than a pose needs (``vision.pose.MIN_POINTS``)."""


class FrameFault(VisionError):
    """The pipeline failed on this frame for a reason of its own (a bug, logged with its traceback): the frame
    is lost, never the other frames of its batch."""


class ModelUnavailable(VisionError):
    """A model file is missing, unreadable, or could not be obtained by the set-up command."""
