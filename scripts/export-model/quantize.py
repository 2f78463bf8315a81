#!/usr/bin/env python3
"""Makes INT8 variants of the exported model with onnxruntime's quantisation tools
and measures them against FP32: file size, top-1 agreement and top-5 on the test
photos, and latency (batch 1) with onnxruntime in Python on 1 and 2 threads.

  * static:  QDQ, per-channel symmetric INT8 weights, UINT8 activations, calibrated
             (MinMax) on photos that are NOT the test photos: the natural
             photographs in scikit-image's sample data (Debian python3-skimage,
             public domain / CC0), each also mirrored, and resized to cover and centre-cropped like
             the server does;
It also counts top-1 agreement with FP32 on crops of the other sample pictures
(unlabelled, none used for calibration), a wider check than three photos.

  * dynamic: weights-only INT8 (ConvInteger/MatMulInteger), activations
             quantised at run time; no calibration.

With --write, saves the static variant as model-int8.onnx next to the FP32 model
(the repository ships only the FP32 model: see its README for why).

  PY="$(bash scripts/export-model/setup.sh)"
  "$PY" scripts/export-model/quantize.py [--calibration-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

sys.path.insert(0, str(Path(__file__).resolve().parent))
import export  # noqa: E402
import verify  # noqa: E402

# Natural photographs from scikit-image's sample data (none of them a test photo).
CALIBRATION = [
    "astronaut.png",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "hubble_deep_field.jpg",
    "retina.jpg",
    "camera.png",
    "coins.png",
    "moon.png",
    "grass.png",
    "gravel.png",
    "brick.png",
]
SKIMAGE_DATA = Path("/usr/lib/python3/dist-packages/skimage/data")


class Reader(CalibrationDataReader):
    def __init__(self, tensors: list[np.ndarray]) -> None:
        self._it = iter(tensors)

    def get_next(self):
        x = next(self._it, None)
        return None if x is None else {"input": x}


def calibration_tensors(directory: Path) -> list[np.ndarray]:
    tensors = []
    for name in CALIBRATION:
        path = directory / name
        if not path.exists():
            print(f"  (calibration photo {path} missing, skipped)")
            continue
        pixels = verify.load_pixels(path)
        tensors.append(verify.imagenet_tensor(pixels))
        tensors.append(verify.imagenet_tensor(np.ascontiguousarray(pixels[:, ::-1])))
    if not tensors:
        sys.exit(f"quantize.py: no calibration photos found in {directory} (apt-get install python3-skimage, or pass --calibration-dir)")
    return tensors


def agreement_tensors(directory: Path) -> list[np.ndarray]:
    """A wider, unlabelled check of FP32/INT8 agreement: three 224x224 crops (of a 288 cover-resize)
    of every other picture in the sample data (not used for calibration) and of the test photos."""
    files = sorted(p for p in directory.iterdir() if p.suffix in (".png", ".jpg") and p.name not in CALIBRATION)
    files += sorted(verify.PHOTOS.glob("*.jpg"))
    tensors = []
    for path in files:
        try:
            pixels = verify.load_pixels(path, 288)
        except OSError:
            continue
        if pixels.std() < 5:  # blank or nearly so
            continue
        for top, left in ((0, 0), (64, 64), (32, 0)):
            tensors.append(verify.imagenet_tensor(np.ascontiguousarray(pixels[top : top + 224, left : left + 224])))
    return tensors


def latency_ms(path: Path, threads: int, x: np.ndarray, runs: int) -> float:
    s = verify.session(path, threads)
    for _ in range(5):
        s.run(["logits"], {"input": x})
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        s.run(["logits"], {"input": x})
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=export.DEFAULT_OUT / "model.onnx")
    parser.add_argument("--calibration-dir", type=Path, default=SKIMAGE_DATA)
    parser.add_argument("--runs", type=int, default=50, help="timed runs per model and thread count")
    parser.add_argument("--write", action="store_true", help="also save the static INT8 model as model-int8.onnx beside the FP32 one")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="quantize-"))
    pre = work / "pre.onnx"
    quant_pre_process(str(args.model), str(pre), skip_symbolic_shape=True)

    static_path = work / "static.onnx"
    quantize_static(
        str(pre),
        str(static_path),
        Reader(calibration_tensors(args.calibration_dir)),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        weight_type=QuantType.QInt8,
        activation_type=QuantType.QUInt8,
        calibrate_method=CalibrationMethod.MinMax,
    )
    dynamic_path = work / "dynamic.onnx"
    quantize_dynamic(str(pre), str(dynamic_path), weight_type=QuantType.QUInt8)

    # Carry the FP32 model's metadata (labels, preprocessing) over to the INT8 files.
    fp32_proto = onnx.load(str(args.model), load_external_data=False)
    for path in (static_path, dynamic_path):
        proto = onnx.load(str(path))
        del proto.metadata_props[:]
        for entry in fp32_proto.metadata_props:
            value = entry.value
            if entry.key == "source":
                value += f"; INT8 ({path.stem}) by scripts/export-model/quantize.py, onnxruntime {ort.__version__}"
            proto.metadata_props.add(key=entry.key, value=value)
        onnx.save(proto, str(path))

    expected = json.loads((verify.PHOTOS / "expected.json").read_text())
    labels = (args.model.parent / "labels.txt").read_text(encoding="utf-8").splitlines()
    variants = {"fp32": args.model, "int8-static": static_path, "int8-dynamic": dynamic_path}
    sessions = {k: verify.session(p) for k, p in variants.items()}
    agree = {k: 0 for k in variants}
    for name in expected:
        x = verify.imagenet_tensor(verify.load_pixels(verify.PHOTOS / name))
        ref = None
        print(f"\n{name}")
        for key, s in sessions.items():
            preds = verify.top5(s.run(["logits"], {"input": x})[0][0], labels)
            ref = ref or preds[0][0]
            agree[key] += preds[0][0] == ref
            print(f"  {key:13s} {verify.fmt(preds)}")

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # palette PNGs in the sample data
        wide = agreement_tensors(args.calibration_dir)
    ref = [sessions["fp32"].run(["logits"], {"input": x})[0][0].argmax() for x in wide]
    wide_agree = {k: sum(int(s.run(["logits"], {"input": x})[0][0].argmax() == r) for x, r in zip(wide, ref)) for k, s in sessions.items()}

    x = verify.imagenet_tensor(verify.load_pixels(verify.PHOTOS / next(iter(expected))))
    print(f"\n{'variant':13s} {'size (bytes)':>13s} {'top-1 = fp32':>13s} {f'on {len(wide)} crops':>14s} {'1 thread ms':>12s} {'2 threads ms':>13s}")
    for key, path in variants.items():
        one = latency_ms(path, 1, x, args.runs)
        two = latency_ms(path, 2, x, args.runs)
        print(f"{key:13s} {path.stat().st_size:>13d} {agree[key]:>9d}/{len(expected):<3d} {wide_agree[key]:>10d}/{len(wide):<3d} {one:>12.2f} {two:>13.2f}")
    print(f"(median of {args.runs} runs, batch 1, onnxruntime {ort.__version__} CPU, after 5 warm-up runs)")

    if args.write:
        out = args.model.parent / "model-int8.onnx"
        out.write_bytes(static_path.read_bytes())
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
