"""Reading and writing frames: videos (PyAV), single images and folders of images (OpenCV)."""

from swapface.media.reader import Frame, MediaInfo, open_media, probe

__all__ = ["Frame", "MediaInfo", "open_media", "probe"]
