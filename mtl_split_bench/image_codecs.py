"""Image codecs of the baselines the split tensor competes with (JPEG, PNG, and H.264/H.265
streams the way ffmpeg_image_transport sends them), and decoding their bytes back to what a
server-side model would see."""
from __future__ import annotations

import time
from fractions import Fraction
from typing import Any

import numpy as np


def jpeg(rgb: np.ndarray, quality: int) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def png(rgb: np.ndarray) -> bytes:
    import cv2

    return cv2.imencode(".png", rgb[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 9])[1].tobytes()


VIDEO_GOP = 30  # a keyframe per second at 30 Hz


def _video_codec(name: str, width: int, height: int, crf: int) -> Any:
    import av

    ctx = av.CodecContext.create(name, "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.time_base, ctx.framerate, ctx.gop_size = Fraction(1, 30), Fraction(30), VIDEO_GOP
    params = {"crf": str(crf), "preset": "veryfast", "tune": "zerolatency"}
    if name == "libx265":
        params["x265-params"] = f"log-level=error:keyint={VIDEO_GOP}"
    ctx.options = params
    return ctx


def video(frames: list[np.ndarray], encoder: str, crf: int) -> tuple[list[bytes], list[np.ndarray], list[float], list[float]]:
    """Frames of one stream -> per-frame packets, decoded RGB frames, encode and decode ms."""
    import av

    h, w = frames[0].shape[:2]
    enc = _video_codec(encoder, w, h, crf)
    dec = av.CodecContext.create("h264" if encoder == "libx264" else "hevc", "r")
    packets: list[bytes] = []
    decoded: list[np.ndarray] = []
    enc_ms: list[float] = []
    dec_ms: list[float] = []

    def take(out: list[Any]) -> None:
        for p in out:
            data = bytes(p)
            packets.append(data)
            t = time.perf_counter()
            pictures = dec.decode(av.Packet(data))
            dec_ms.append((time.perf_counter() - t) * 1e3)
            decoded.extend(pic.to_ndarray(format="rgb24") for pic in pictures)

    for i, rgb in enumerate(frames):
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        vf.pts = i
        t = time.perf_counter()
        out = enc.encode(vf)
        enc_ms.append((time.perf_counter() - t) * 1e3)
        take(out)
    take(enc.encode(None))
    decoded.extend(pic.to_ndarray(format="rgb24") for pic in dec.decode(None))
    if len(decoded) != len(frames):
        raise RuntimeError(f"{encoder} returned {len(decoded)} frames for {len(frames)}")
    return packets, decoded, enc_ms, dec_ms


def decode_image(data: bytes) -> np.ndarray:
    """JPEG/PNG bytes -> RGB uint8 (what a server-side model would see)."""
    import cv2

    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[..., ::-1].copy()
