"""swapface: swap one person's face for another's in video (shared encoder, one decoder per identity)."""

__version__ = "0.1.0"
