"""Facesets: the folder of aligned faces + metadata that extraction writes and later stages read."""

from swapface.faceset.store import DB_NAME, FaceRecord, Faceset, is_faceset

__all__ = ["DB_NAME", "FaceRecord", "Faceset", "is_faceset"]
