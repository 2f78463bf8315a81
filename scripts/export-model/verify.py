#!/usr/bin/env python3
"""Checks the exported ONNX model against PyTorch on the committed test photos.

For each photo in inference-server/test/fixtures/photos (listed in expected.json):
  * preprocesses it the way the inference server does by default: decode to RGB,
    resize to cover 224x224 keeping the aspect ratio (Lanczos-3, as libvips/sharp),
    centre-crop to 224x224, NCHW float32, ImageNet mean/std;
  * runs the PyTorch model (the same wrapper export.py exports) and onnxruntime;
  * prints the max absolute difference of the logits and the top-5 of each.
It also runs all photos as one batch (the dynamic batch dimension) and the bare
Lite0 on EfficientNet-Lite's own (pixel - 127) / 128 input, to show the baked-in
normalisation is exact. With --int8 it adds the INT8 model's top-5 and top-1
agreement. Exits non-zero if a photo's FP32 top-1 is not one of its accepted labels.

  PY="$(bash scripts/export-model/setup.sh)"
  "$PY" scripts/export-model/verify.py [--model M] [--int8 M8]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import export  # noqa: E402  (same directory)

ROOT = export.ROOT
PHOTOS = ROOT / "inference-server" / "test" / "fixtures" / "photos"
SIZE = export.INPUT_SIZE


def load_pixels(path: Path, size: int = SIZE) -> np.ndarray:
    """HWC uint8 RGB, resized to cover size x size then centre-cropped (the server's RESIZE_MODE=center-crop)."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        scale = max(size / w, size / h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        im = im.resize((nw, nh), Image.Resampling.LANCZOS)
        left, top = (nw - size) // 2, (nh - size) // 2
        return np.asarray(im.crop((left, top, left + size, top + size)), dtype=np.uint8)


def imagenet_tensor(pixels: np.ndarray) -> np.ndarray:
    """NCHW float32, (pixel/255 - mean) / std: the server's NORMALIZATION=auto for a float NCHW input."""
    mean = np.asarray(export.IMAGENET_MEAN, dtype=np.float32)
    std = np.asarray(export.IMAGENET_STD, dtype=np.float32)
    x = (pixels.astype(np.float32) / 255.0 - mean) / std
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def lite_tensor(pixels: np.ndarray) -> np.ndarray:
    x = (pixels.astype(np.float32) - export.LITE_MEAN) / export.LITE_STD
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def top5(logits: np.ndarray, labels: list[str]) -> list[tuple[str, float]]:
    probs = softmax(logits.astype(np.float64))
    order = np.argsort(-probs, kind="stable")[:5]
    return [(labels[i], float(probs[i])) for i in order]


def fmt(preds: list[tuple[str, float]]) -> str:
    return " | ".join(f"{label} {p:.3f}" for label, p in preds)


def session(path: Path, threads: int = 1) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=export.DEFAULT_OUT / "model.onnx")
    parser.add_argument("--int8", type=Path, default=None, help="an INT8 model to compare as well")
    parser.add_argument("--photos", type=Path, default=PHOTOS)
    args = parser.parse_args()

    expected = json.loads((args.photos / "expected.json").read_text())
    labels = (args.model.parent / "labels.txt").read_text(encoding="utf-8").splitlines()
    assert len(labels) == 1000, "labels.txt must have 1000 lines"

    wrapped = export.build_model()
    bare = wrapped.lite0
    fp32 = session(args.model)
    int8 = session(args.int8) if args.int8 else None
    print(f"torch {torch.__version__}, onnxruntime {ort.__version__}, model {args.model.relative_to(ROOT) if args.model.is_relative_to(ROOT) else args.model}")

    failures = []
    batch, singles = [], []
    worst = 0.0
    agree = 0
    for name, spec in expected.items():
        pixels = load_pixels(args.photos / name)
        x = imagenet_tensor(pixels)
        with torch.no_grad():
            t = wrapped(torch.from_numpy(x)).numpy()[0]
            t_bare = bare(torch.from_numpy(lite_tensor(pixels))).numpy()[0]
        o = fp32.run(["logits"], {"input": x})[0][0]
        diff = float(np.max(np.abs(t - o)))
        worst = max(worst, diff)
        batch.append(x)
        singles.append(o)
        o_top = top5(o, labels)
        print(f"\n{name}  (accepted: {', '.join(spec['accept'])})")
        print(f"  max |torch - onnx| logits: {diff:.3g}; wrapped vs bare Lite0 on (pixel-127)/128: {float(np.max(np.abs(t - t_bare))):.3g}")
        print(f"  torch top-5: {fmt(top5(t, labels))}")
        print(f"  FP32  top-5: {fmt(o_top)}")
        if o_top[0][0] not in spec["accept"]:
            failures.append(f"{name}: FP32 top-1 {o_top[0][0]!r} is not one of {spec['accept']}")
        if int8 is not None:
            q = int8.run(["logits"], {"input": x})[0][0]
            q_top = top5(q, labels)
            same = q_top[0][0] == o_top[0][0]
            agree += same
            print(f"  INT8  top-5: {fmt(q_top)}  (top-1 {'agrees' if same else 'DIFFERS'}; max |fp32 - int8| logits {float(np.max(np.abs(o - q))):.3g})")

    stacked = np.concatenate(batch)
    out = fp32.run(["logits"], {"input": stacked})[0]
    batch_diff = float(np.max(np.abs(out - np.stack(singles))))
    print(f"\nmax |torch - onnx| over all photos: {worst:.3g}")
    print(f"batch of {len(batch)} vs one at a time (onnxruntime): max diff {batch_diff:.3g}")
    if int8 is not None:
        print(f"INT8 top-1 agrees with FP32 on {agree}/{len(expected)} photos")
    if worst > 1e-3 or batch_diff > 1e-3:
        failures.append("onnxruntime disagrees with PyTorch by more than 1e-3")
    for f in failures:
        print(f"FAIL: {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
