"""Helpers several test modules share: camera frames and the messages that carry them."""
from __future__ import annotations

import itertools
import struct
import zlib

import cv2
import numpy as np

_stamps = itertools.count(1)


def frames(n: int, seed: int) -> list[np.ndarray]:
    """Varied RGB test images: smooth colour fields plus a random rectangle."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        base = cv2.resize(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8), (40, 30), interpolation=cv2.INTER_CUBIC)
        x, y = rng.integers(0, 25), rng.integers(0, 18)
        base[y:y + 12, x:x + 15] = rng.integers(0, 256, 3)
        out.append(base)
    return out


def image_msg(rgb: np.ndarray, frame_id: str, encoding: str = "rgb8"):
    from sensor_msgs.msg import Image

    data = rgb[..., 1] if encoding == "mono8" else rgb
    msg = Image(height=rgb.shape[0], width=rgb.shape[1], encoding=encoding,
                step=rgb.shape[1] * (1 if encoding == "mono8" else 3))
    msg.data = np.ascontiguousarray(data).tobytes()
    return stamp(msg, frame_id)


def compressed_msg(rgb: np.ndarray, frame_id: str, fmt: str = "png"):
    from sensor_msgs.msg import CompressedImage

    msg = CompressedImage(format=fmt)
    msg.data = cv2.imencode("." + fmt, rgb[..., ::-1])[1].tobytes()
    return stamp(msg, frame_id)


def stamp(msg, frame_id: str):
    """A unique stamp per message of this test session, so results are matched exactly."""
    n = next(_stamps)
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1000 + n, n * 1000
    msg.header.frame_id = frame_id
    return msg


def key(header) -> tuple[int, int, str]:
    return header.stamp.sec, header.stamp.nanosec, header.frame_id


def shapes_classes() -> dict[str, list[str]]:
    """Class names of every task of the procedural `shapes` data (what bags of it are labelled with)."""
    from mtl_split_training.datasets import open_data

    return {t.name: list(t.classes) for t in open_data("shapes").tasks}


def png_claiming(width: int, height: int) -> bytes:
    """A small valid PNG whose header claims width x height (a decompression bomb): a few
    rows of zeros, compressed to almost nothing."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    rows = zlib.compress(b"".join(b"\0" + bytes(width * 3) for _ in range(100)), 9)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", rows) + chunk(b"IEND", b""))
