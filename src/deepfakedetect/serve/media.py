"""What an upload is, from its first bytes (its name and declared type are not trusted)."""

from __future__ import annotations

__all__ = ["sniff_media"]

# ISO-BMFF brands of still images (AVIF, HEIC): "ftyp" files that are not videos.
_IMAGE_BRANDS = (b"avif", b"avis", b"heic", b"heix", b"mif1", b"msf1")


def sniff_media(head: bytes) -> str | None:
    """``"image"``, ``"video"`` or ``None`` for the first bytes (64 are plenty) of a file.

    Example:
        >>> sniff_media(b"\\xff\\xd8\\xff\\xe0" + bytes(8))
        'image'
        >>> sniff_media(bytes(4) + b"ftypisom")
        'video'
        >>> sniff_media(b"%PDF-1.7") is None
        True
    """
    if head.startswith((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")):
        return "image"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image"
    if head[4:8] == b"ftyp":
        return "image" if head[8:12] in _IMAGE_BRANDS else "video"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "video"
    if head.startswith((b"\x1a\x45\xdf\xa3", b"FLV", b"\x00\x00\x01\xba", b"OggS")):
        return "video"  # Matroska/WebM, Flash video, MPEG program stream, Ogg
    return None
