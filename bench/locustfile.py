"""Load-test a deployed inference server the way the seed did.

Each simulated user posts a 224x224 JPEG to /predict/image as multipart
``image_file`` with ``with_resize=False`` and ``with_post_process=True`` (the
seed's request) and checks that the answer names a ``Label``.

    bash bench/locust-venv.sh            # prints the venv's python (built once)
    locust -f bench/locustfile.py --host http://ADDRESS          # web UI on :8089
    locust -f bench/locustfile.py --host http://ADDRESS --headless -u 16 -r 16 -t 60s

LOCUST_IMAGE picks another image (it must already be the model's input size,
since with_resize=False); the default is bench/fixtures/seed-224.jpg.
LOCUST_WAIT_SECONDS adds a pause between a user's requests (default 0: each
user sends its next request as soon as the last one is answered).

A 503 (the server shedding load) counts as a failure, and the user then waits
for its Retry-After before sending again, as a well-behaved client does; set
LOCUST_HONOUR_RETRY_AFTER=0 to retry at once instead.

For the seed's other scenario and for other servers (bench/serving-core.ts):
LOCUST_POST_PROCESS=False sends with_post_process=False (the answer is then
not classified, so any JSON 200 counts as a success).
LOCUST_REQUEST=kserve-v1 sends KServe's v1 protocol instead: the image base64
in JSON, {"instances": [{"image": {"b64": ...}, "with_resize": false,
"with_post_process": ...}]}, to /v1/models/$LOCUST_KSERVE_MODEL:predict
(default model name "model").
LOCUST_TIMEOUT_SECONDS gives each request a deadline (default: none).
LOCUST_SPLIT_FAILURES=1 reports failed requests under "NAME (failed)", so the
NAME row's percentiles are of answered requests only.
"""

import base64
import json
import os
import time
from pathlib import Path

from locust import HttpUser, constant, task

IMAGE_PATH = Path(os.environ.get("LOCUST_IMAGE", Path(__file__).parent / "fixtures" / "seed-224.jpg"))
IMAGE = IMAGE_PATH.read_bytes()
HONOUR_RETRY_AFTER = os.environ.get("LOCUST_HONOUR_RETRY_AFTER", "1") != "0"
POST_PROCESS = os.environ.get("LOCUST_POST_PROCESS", "True").strip().lower() not in ("false", "0", "no")
REQUEST = os.environ.get("LOCUST_REQUEST", "seed")
if REQUEST not in ("seed", "kserve-v1"):
    raise ValueError(f"LOCUST_REQUEST={REQUEST}: expected seed or kserve-v1")
KSERVE_MODEL = os.environ.get("LOCUST_KSERVE_MODEL", "model")
TIMEOUT_SECONDS = float(os.environ["LOCUST_TIMEOUT_SECONDS"]) if os.environ.get("LOCUST_TIMEOUT_SECONDS") else None
SPLIT_FAILURES = os.environ.get("LOCUST_SPLIT_FAILURES", "0") == "1"
KSERVE_BODY = json.dumps(
    {"instances": [{"image": {"b64": base64.b64encode(IMAGE).decode("ascii")}, "with_resize": False, "with_post_process": POST_PROCESS}]}
)
# Never wait longer than this for one Retry-After, whatever a server says.
MAX_RETRY_AFTER_SECONDS = 30.0


def retry_after_seconds(value: str | None) -> float:
    """Retry-After in seconds (the delta-seconds form; an HTTP date counts as 1 s)."""
    try:
        return min(MAX_RETRY_AFTER_SECONDS, max(0.0, float(value or "1")))
    except ValueError:
        return 1.0


class SeedUser(HttpUser):
    wait_time = constant(float(os.environ.get("LOCUST_WAIT_SECONDS", "0")))

    @task
    def predict_image(self) -> None:
        if REQUEST == "kserve-v1":
            name = f"/v1/models/{KSERVE_MODEL}:predict"
            request = self.client.post(
                name,
                data=KSERVE_BODY,
                headers={"Content-Type": "application/json"},
                name=name,
                catch_response=True,
                timeout=TIMEOUT_SECONDS,
            )
        else:
            name = "/predict/image"
            request = self.client.post(
                name,
                files={"image_file": (IMAGE_PATH.name, IMAGE, "image/jpeg")},
                data={"with_resize": "False", "with_post_process": str(POST_PROCESS)},
                name=name,
                catch_response=True,
                timeout=TIMEOUT_SECONDS,
            )
        with request as response:
            problem = self.check(response)
            if problem is None:
                return
            response.failure(problem)
            if SPLIT_FAILURES:
                response.request_meta["name"] = f"{name} (failed)"
            if response.status_code == 503 and HONOUR_RETRY_AFTER:
                # locust runs users on gevent, which makes time.sleep yield to the others.
                time.sleep(retry_after_seconds(response.headers.get("Retry-After")))

    @staticmethod
    def check(response) -> str | None:
        """Why the answer is not a success, or None when it is."""
        if response.status_code != 200:
            return f"HTTP {response.status_code}: {response.text[:200]}"
        try:
            body = response.json()
        except ValueError:
            return f"not JSON: {response.text[:200]}"
        if REQUEST == "kserve-v1":
            predictions = body.get("predictions") if isinstance(body, dict) else None
            if not isinstance(predictions, list) or len(predictions) != 1:
                return f"no predictions in {str(body)[:200]}"
            body = predictions[0]
        if POST_PROCESS and (not isinstance(body, dict) or "Label" not in body):
            return f"no Label in {str(body)[:200]}"
        return None
