"""Cost of judging a binary transfer by content: decoding and rebuilding an image before it crosses.

Baseline: reading the same bytes and base64-encoding them (what the contents API does for any
allowed binary without the check). Figures for a matplotlib figure saved as PNG and as JPEG
(what researchers view), and for a noisy photo-sized PNG (the worst case under the 5 MB cap).
Usage: python benchmarks/content_rules.py [--repeat 20]
"""
from __future__ import annotations

import argparse
import base64
import io
import statistics
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from hub_config.single_user.content_rules import disarm_image  # noqa: E402


def figure_bytes(fmt: str) -> bytes:
    fig, ax = plt.subplots(figsize=(10, 6), dpi=120)
    rng = np.random.default_rng(1)
    for i in range(5):
        ax.plot(np.cumsum(rng.normal(size=400)), label=f"series {i}")
    ax.legend()
    out = io.BytesIO()
    fig.savefig(out, format=fmt)
    plt.close(fig)
    return out.getvalue()


def noise_png() -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.random.default_rng(2).integers(0, 255, (1200, 1300, 3), dtype=np.uint8)).save(out, "PNG")
    return out.getvalue()


def median_ms(fn, repeat: int) -> float:  # noqa: ANN001
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=20)
    repeat = parser.parse_args().repeat
    for name, data, path in (("figure_png", figure_bytes("png"), "f.png"), ("figure_jpeg", figure_bytes("jpeg"), "f.jpg"),
                             ("noise_png", noise_png(), "n.png")):
        print(f"{name}_bytes={len(data)}")
        print(f"{name}_baseline_base64_ms={median_ms(lambda d=data: base64.b64encode(d), repeat):.2f}")
        print(f"{name}_disarm_ms={median_ms(lambda d=data, p=path: disarm_image(d, p, max_bytes=5 * 2**20), repeat):.2f}")


if __name__ == "__main__":
    main()
