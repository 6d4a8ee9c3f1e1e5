"""Reading media safely: images (any mode, EXIF, bombs refused) and videos (ffmpeg, streaming)."""
