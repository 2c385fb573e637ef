"""Width, height and channels of a JPEG or PNG from its header, without decoding it.

Decoding allocates width x height x channels bytes before it can notice anything, so a small
file that claims a huge size (a decompression bomb: 430 KB of PNG saying 20000x20000 is a
1.2 GB allocation and seconds of work) must be refused from these few header bytes. Reading
them costs microseconds and touches only the first markers of the file.
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import ImageError

JPEG, PNG = "jpeg", "png"
# Largest frame the edge decodes by default (edge parameter max_pixels): 8K (7680x4320 = 33.2 MP)
# fits; a 12-MP rgb8 frame is 36 MB, a 40-MP one 120 MB.
DEFAULT_MAX_PIXELS = 40_000_000
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PNG colour type -> channels (grey, -, RGB, palette, grey+alpha, -, RGBA).
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}
# JPEG start-of-frame markers (baseline, extended, progressive, lossless, arithmetic...);
# C4 (DHT), C8 (JPG) and CC (DAC) share the range but are not frames.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers without a length field.
_STANDALONE = frozenset([0x01, *range(0xD0, 0xD9)])
_EOI, _SOS = 0xD9, 0xDA


@dataclass(frozen=True)
class ImageHeader:
    format: str  # JPEG or PNG
    width: int
    height: int
    channels: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def read_header(data: bytes | memoryview) -> ImageHeader:
    """The header of a JPEG or PNG; ImageError for anything else or a header cut short."""
    head = bytes(data[:8])
    if head.startswith(b"\xff\xd8"):
        return _jpeg(memoryview(data))
    if head == PNG_SIGNATURE:
        return _png(bytes(data[:33]))
    raise ImageError(f"compressed data starts with {head[:4].hex()}: neither JPEG nor PNG "
                     "(publish JPEG or PNG, as image_transport's compressed plugin does)")


def _png(head: bytes) -> ImageHeader:
    # Signature, then the IHDR chunk: length, b"IHDR", width, height, bit depth, colour type.
    if len(head) < 26 or head[12:16] != b"IHDR":
        raise ImageError("PNG without an IHDR chunk (truncated or corrupt)")
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    channels = _PNG_CHANNELS.get(head[25])
    if channels is None:
        raise ImageError(f"PNG colour type {head[25]} is invalid (corrupt header)")
    return _checked(PNG, width, height, channels)


def _jpeg(data: memoryview) -> ImageHeader:
    pos, end = 2, len(data)
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            raise ImageError(f"JPEG marker expected at byte {pos} (corrupt or truncated JPEG)")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        if marker in (_EOI, _SOS):
            break
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        if marker in _SOF:
            if length < 8 or pos + 10 > end:
                break
            height = int.from_bytes(data[pos + 5:pos + 7], "big")
            width = int.from_bytes(data[pos + 7:pos + 9], "big")
            return _checked(JPEG, width, height, data[pos + 9])
        if length < 2:
            break
        pos += 2 + length
    raise ImageError("JPEG without a frame header before its image data (corrupt or truncated JPEG)")


def _checked(fmt: str, width: int, height: int, channels: int) -> ImageHeader:
    if width <= 0 or height <= 0:
        raise ImageError(f"{fmt.upper()} header says {width}x{height} (a JPEG height defined "
                         "later by a DNL marker is not supported); the image is empty or corrupt")
    return ImageHeader(fmt, width, height, channels)
