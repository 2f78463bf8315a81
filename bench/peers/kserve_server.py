"""The seed's classifier as a KServe Python model server: a peer for bench/serving-core.ts.

A ``kserve.Model`` whose ``load`` opens a plain onnxruntime session,
``preprocess`` does the seed's preprocessing (PIL decode, RGB, resize only when
asked, float32 NHWC 0-255: the Keras-layout model normalizes inside its graph),
``predict`` runs the batch and ``postprocess`` answers the seed's
``{"Label": ..., "Score": "0.123"}`` per image, served by
``kserve.ModelServer().start([model])`` with KServe's defaults (one uvicorn
worker, its access and latency logs) except two things: the REST server binds
127.0.0.1 instead of every interface, and gRPC (which binds every interface,
and which the benchmark never calls) is off.

Two ways in:

* KServe's own v1 protocol, as KServe users send images (base64 in JSON):
    POST /v1/models/NAME:predict
    {"instances": [{"image": {"b64": "..."}, "with_resize": false, "with_post_process": true}]}
  answers {"predictions": [{"Label": ..., "Score": ...}]} ("OK" per image when
  with_post_process is false).
* The seed's multipart POST /predict/image (image_file, with_resize,
  with_post_process), so the seed's clients work unchanged. KServe has no API
  for extra routes; its REST server serves the module-level FastAPI app
  ``kserve.model_server.app`` (the app KServe's docs add middleware to), so the
  route is declared on that app before start(). It hands the form to the same
  model through ``await model(body)``: KServe's preprocess -> predict ->
  postprocess pipeline with its metrics, the same path the v1 endpoint takes
  after JSON decoding.

    python bench/peers/kserve_server.py MODEL.onnx PORT [--model_name NAME]

LABELS_PATH (optional) names a file with one label per line.
"""

import base64
import io
import os
import sys

import kserve
import kserve.model_server
import numpy as np
import onnxruntime as ort
from fastapi import File, Form, UploadFile
from PIL import Image

TRUE = {"true", "1", "yes", "on", "t", "y"}


def as_bool(value, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in TRUE


class SeedModel(kserve.Model):
    def __init__(self, name: str, model_path: str, labels_path: str | None):
        super().__init__(name)
        self.model_path = model_path
        self.labels_path = labels_path
        self.load()

    def load(self) -> bool:
        self.session = ort.InferenceSession(self.model_path, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0]
        self.height, self.width = self.input.shape[1], self.input.shape[2]
        self.labels = open(self.labels_path).read().splitlines() if self.labels_path else None
        self.ready = True
        return self.ready

    def preprocess(self, payload, headers=None):
        images, post = [], []
        for instance in payload["instances"]:
            data = instance["image"]
            raw = data if isinstance(data, bytes) else base64.b64decode(data["b64"])
            image = Image.open(io.BytesIO(raw)).convert("RGB")
            if as_bool(instance.get("with_resize"), True):
                image = image.resize((self.width, self.height))
            images.append(np.asarray(image, dtype=np.float32))
            post.append(as_bool(instance.get("with_post_process"), True))
        return {"images": np.stack(images), "post": post}

    def predict(self, payload, headers=None):
        scores = self.session.run(None, {self.input.name: payload["images"]})[0]
        return {"scores": scores, "post": payload["post"]}

    def postprocess(self, result, headers=None):
        predictions = []
        for scores, post in zip(result["scores"], result["post"]):
            if not post:
                predictions.append("OK")
                continue
            best = int(np.argmax(scores))
            predictions.append({"Label": self.labels[best] if self.labels else str(best), "Score": f"{scores[best]:.3f}"})
        return {"predictions": predictions}


class LoopbackRESTServer(kserve.model_server.RESTServer):
    """KServe's REST server, listening on 127.0.0.1 only (it hard-codes 0.0.0.0)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.config.host = "127.0.0.1"


def add_seed_route(model: SeedModel) -> None:
    @kserve.model_server.app.post("/predict/image")
    async def predict_image(
        image_file: UploadFile = File(...),
        with_resize: bool = Form(True),
        with_post_process: bool = Form(True),
    ):
        body = {"instances": [{"image": await image_file.read(), "with_resize": with_resize, "with_post_process": with_post_process}]}
        response, _ = await model(body)
        return response["predictions"][0]


if __name__ == "__main__":
    model_path = sys.argv[1] if len(sys.argv) > 1 else os.environ["MODEL_PATH"]
    port = int(sys.argv[2] if len(sys.argv) > 2 else os.environ.get("PORT", "8080"))
    # kserve.model_server parses its own flags (--model_name, --workers...) from sys.argv at import.
    model = SeedModel(kserve.model_server.args.model_name, model_path, os.environ.get("LABELS_PATH"))
    add_seed_route(model)
    kserve.model_server.RESTServer = LoopbackRESTServer
    kserve.ModelServer(http_port=port, enable_grpc=False).start([model])
