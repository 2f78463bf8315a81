"""The seed's endpoint on LitServe, with its dynamic batching: a peer for bench/serving-core.ts.

POST /predict/image takes the seed's multipart form (``image_file``,
``with_resize``, ``with_post_process``): LitServe hands a form body to
decode_request as Starlette's FormData when decode_request's ``request`` has no
type annotation, so the seed's clients work unchanged. decode_request does the
seed's preprocessing (PIL decode, RGB, resize only when asked, float32 HWC
0-255); LitServe collects up to MAX_BATCH_SIZE requests, waiting at most
BATCH_TIMEOUT seconds for batch-mates, and predict runs them as one
onnxruntime call. The answer is the seed's ``{"Label": ..., "Score": "0.123"}``
(or ``"OK"`` when with_post_process is False).

    python bench/peers/litserve_server.py MODEL.onnx PORT

Everything else is LitServe's default: one inference worker on the CPU, one
API server process per inference worker, its 30 s request timeout.
LABELS_PATH (optional) names a file with one label per line.
"""

import io
import os
import sys

import litserve as ls
import numpy as np
import onnxruntime as ort
from PIL import Image

MAX_BATCH_SIZE = 8
BATCH_TIMEOUT = 0.005
TRUE = {"true", "1", "yes", "on", "t", "y"}


def form_bool(value, default: bool) -> bool:
    """A form field as the seed's clients send booleans: True/False, true/false, 1/0."""
    return default if value is None else str(value).strip().lower() in TRUE


class SeedAPI(ls.LitAPI):
    def __init__(self, model_path: str, labels_path: str | None):
        super().__init__(max_batch_size=MAX_BATCH_SIZE, batch_timeout=BATCH_TIMEOUT, api_path="/predict/image")
        self.model_path = model_path
        self.labels_path = labels_path

    def setup(self, device):
        self.session = ort.InferenceSession(self.model_path, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0]
        self.height, self.width = self.input.shape[1], self.input.shape[2]
        self.labels = open(self.labels_path).read().splitlines() if self.labels_path else None

    def decode_request(self, request):
        image = Image.open(io.BytesIO(request["image_file"].file.read())).convert("RGB")
        if form_bool(request.get("with_resize"), True):
            image = image.resize((self.width, self.height))
        return np.asarray(image, dtype=np.float32), form_bool(request.get("with_post_process"), True)

    def batch(self, inputs):
        return np.stack([x for x, _ in inputs]), [post for _, post in inputs]

    def predict(self, batch):
        images, post = batch
        scores = self.session.run(None, {self.input.name: images})[0]
        return list(zip(scores, post))

    def unbatch(self, output):
        return output

    def encode_response(self, output):
        scores, post = output
        if not post:
            return "OK"
        best = int(np.argmax(scores))
        return {"Label": self.labels[best] if self.labels else str(best), "Score": f"{scores[best]:.3f}"}


if __name__ == "__main__":
    model_path = sys.argv[1] if len(sys.argv) > 1 else os.environ["MODEL_PATH"]
    port = int(sys.argv[2] if len(sys.argv) > 2 else os.environ.get("PORT", "8000"))
    server = ls.LitServer(SeedAPI(model_path, os.environ.get("LABELS_PATH")), accelerator="cpu")
    server.run(host="127.0.0.1", port=port, generate_client_file=False)
