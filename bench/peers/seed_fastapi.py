"""The seed's FastAPI app, as its users wrote it: a peer for bench/serving-core.ts.

POST /predict/image takes a multipart form: ``image_file`` (the picture),
``with_resize`` and ``with_post_process`` (booleans: True/False). The image is
decoded with PIL, converted to RGB, resized to the model's input only when
asked, and fed as float32 NHWC 0-255 (the Keras layout: the model does its own
preprocessing) to a plain onnxruntime session, synchronously, inside the
``async def`` handler. The answer is ``{"Label": ..., "Score": "0.123"}``, or
``"OK"`` when with_post_process is False.

Run it with uvicorn's own worker processes, each loading the model:

    MODEL_PATH=resnet50-keras.onnx uvicorn seed_fastapi:app --app-dir bench/peers \\
        --host 127.0.0.1 --port 8000 --workers 2

LABELS_PATH (optional) names a file with one label per line; without it the
label is the class index, as our server answers for a model without labels.
"""

import io
import os

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI, File, Form, UploadFile
from PIL import Image

MODEL_PATH = os.environ["MODEL_PATH"]
LABELS_PATH = os.environ.get("LABELS_PATH")

session = ort.InferenceSession(MODEL_PATH, providers=["CPUExecutionProvider"])
INPUT = session.get_inputs()[0]
# Keras layout: [batch, height, width, channels].
HEIGHT, WIDTH = INPUT.shape[1], INPUT.shape[2]
LABELS = open(LABELS_PATH).read().splitlines() if LABELS_PATH else None

app = FastAPI()


@app.post("/predict/image")
async def predict_image(
    image_file: UploadFile = File(...),
    with_resize: bool = Form(True),
    with_post_process: bool = Form(True),
):
    image = Image.open(io.BytesIO(await image_file.read())).convert("RGB")
    if with_resize:
        image = image.resize((WIDTH, HEIGHT))
    batch = np.asarray(image, dtype=np.float32)[np.newaxis]
    scores = session.run(None, {INPUT.name: batch})[0][0]
    if not with_post_process:
        return "OK"
    best = int(np.argmax(scores))
    return {"Label": LABELS[best] if LABELS else str(best), "Score": f"{scores[best]:.3f}"}
