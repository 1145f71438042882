"""Provenance of finished outputs: Content Credentials (C2PA), an invisible watermark, and verification."""
