"""Where a pond lives: a host directory or an S3 URL.

Kept free of heavy imports: ``mount.pondfs``'s parent process and the CLI's argument
handling tell the two apart before anything loads pyarrow, boto3 or Delta Lake.
"""

from __future__ import annotations


def is_s3_url(location: str) -> bool:
    """Whether ``location`` names a place in S3 (``s3://...``) rather than a host path."""
    return location.startswith("s3:")
