#!/usr/bin/env python3
"""Checks a KServe v2 / Open Inference Protocol server with the official
Triton HTTP client (tritonclient.http), used exactly as its docs show: binary
inputs, binary outputs, the classification extension, no custom headers.

Prints JSON lines on stdout: first {"metadata": ...}, then one result line:
  {"argmax": [...], "logits": [[...]], "classification": [[...]], ...}
or, with --bad-shape, {"exception": "InferenceServerException", "status": ..., "message": ...}.
Exits non-zero (with the reason on stderr) when any check fails.

The input is the project's colour-classifier image: NCHW FP32 with ImageNet
normalisation, the top half one pure colour (--top) and the bottom half
another, or a tensor loaded from --npy.
"""

import argparse
import json
import sys

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}
ORDER = ["red", "green", "blue"]
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def image(top, size):
    """One CHW image: top half pure `top`, bottom half the next colour (which must not matter)."""
    bottom = ORDER[(ORDER.index(top) + 1) % 3]
    hwc = np.empty((size, size, 3), dtype=np.float32)
    hwc[: size // 2] = COLOURS[top]
    hwc[size // 2 :] = COLOURS[bottom]
    hwc = (hwc / 255.0 - MEAN) / STD
    return hwc.transpose(2, 0, 1)


def fail(message):
    print(f"triton_http_check: {message}", file=sys.stderr)
    sys.exit(1)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True, help="host:port of the server (no scheme)")
    p.add_argument("--model", required=True)
    p.add_argument("--top", default="red", help="colour of each image's top half: red|green|blue, or a comma list cycled over the batch")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--npy", help="use this .npy tensor (NCHW FP32) instead of generated images")
    p.add_argument("--class-count", type=int, default=3)
    p.add_argument("--bad-shape", action="store_true", help="send a wrongly shaped input and report the server's error")
    args = p.parse_args()

    client = httpclient.InferenceServerClient(url=args.url)
    if not client.is_server_live():
        fail("is_server_live() returned False")
    if not client.is_server_ready():
        fail("is_server_ready() returned False")
    if not client.is_model_ready(args.model):
        fail(f"is_model_ready({args.model!r}) returned False")
    metadata = client.get_model_metadata(args.model)
    print(json.dumps({"metadata": metadata}), flush=True)

    if len(metadata.get("inputs", [])) != 1 or len(metadata.get("outputs", [])) != 1:
        fail(f"expected one input and one output in the metadata: {metadata}")
    in_meta, out_meta = metadata["inputs"][0], metadata["outputs"][0]
    dtype = {"FP32": np.float32, "UINT8": np.uint8}.get(in_meta["datatype"])
    if dtype is None:
        fail(f"unexpected input datatype {in_meta['datatype']}")

    if args.npy:
        data = np.load(args.npy).astype(dtype)
    else:
        tops = args.top.split(",")
        for t in tops:
            if t not in COLOURS:
                fail(f"--top: {t!r} is not one of red, green, blue")
        size = in_meta["shape"][-1]
        data = np.stack([image(tops[i % len(tops)], size) for i in range(args.batch)]).astype(dtype)
    expected_shape = [data.shape[0] if d == -1 else d for d in in_meta["shape"]]
    if list(data.shape) != expected_shape:
        fail(f"the tensor has shape {list(data.shape)}, the model wants {in_meta['shape']}")

    if args.bad_shape:
        # Half the width, twice the height: the same element count, a wrong shape.
        n, c, h, w = data.shape
        data = np.ascontiguousarray(data.reshape(n, c, h * 2, w // 2))

    def make_input():
        inp = httpclient.InferInput(in_meta["name"], list(data.shape), in_meta["datatype"])
        inp.set_data_from_numpy(data)  # binary_data=True by default
        return inp

    out_name = out_meta["name"]

    if args.bad_shape:
        try:
            client.infer(args.model, [make_input()], outputs=[httpclient.InferRequestedOutput(out_name)])
        except InferenceServerException as e:
            print(json.dumps({"exception": type(e).__name__, "status": e.status(), "message": e.message()}), flush=True)
            return
        fail(f"the server accepted shape {list(data.shape)}")

    # The raw output and its classification go in two requests: tritonclient's
    # InferResult maps each output NAME to one offset in the binary tail, so a
    # response holding two outputs of the same name is misread by as_numpy().
    plain = client.infer(args.model, [make_input()], outputs=[httpclient.InferRequestedOutput(out_name)])
    logits = plain.as_numpy(out_name)
    if logits is None or logits.dtype != np.float32:
        fail(f"no FP32 {out_name} in {plain.get_response()}")

    classified = client.infer(
        args.model,
        [make_input()],
        outputs=[httpclient.InferRequestedOutput(out_name, class_count=args.class_count)],
    )
    classes = classified.as_numpy(out_name)
    if classes is None:
        fail(f"no classification output in {classified.get_response()}")
    # [name, datatype, shape, binary_data_size (None when sent as JSON)] of each response output.
    described = [
        [o["name"], o["datatype"], o["shape"], (o.get("parameters") or {}).get("binary_data_size")]
        for r in (plain, classified)
        for o in r.get_response()["outputs"]
    ]

    def text(v):
        return v.decode("utf-8") if isinstance(v, bytes) else str(v)

    print(
        json.dumps(
            {
                "model_name": plain.get_response().get("model_name"),
                "model_version": plain.get_response().get("model_version"),
                "outputs": described,
                "logits": logits.tolist(),
                "argmax": np.argmax(logits, axis=1).tolist(),
                "classification_shape": list(classes.shape),
                "classification": [[text(v) for v in row] for row in classes.reshape(classes.shape[0], -1)],
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
