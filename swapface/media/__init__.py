"""Reading and writing frames: videos (PyAV), single images and folders of images (OpenCV), image
sequences (OpenImageIO), with bit depth and colour (OpenColorIO) kept."""

from swapface.media.reader import Frame, MediaInfo, open_media, probe

__all__ = ["Frame", "MediaInfo", "open_media", "probe"]
