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
"""

import os
import time
from pathlib import Path

from locust import HttpUser, constant, task

IMAGE_PATH = Path(os.environ.get("LOCUST_IMAGE", Path(__file__).parent / "fixtures" / "seed-224.jpg"))
IMAGE = IMAGE_PATH.read_bytes()
HONOUR_RETRY_AFTER = os.environ.get("LOCUST_HONOUR_RETRY_AFTER", "1") != "0"
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
        with self.client.post(
            "/predict/image",
            files={"image_file": (IMAGE_PATH.name, IMAGE, "image/jpeg")},
            data={"with_resize": "False", "with_post_process": "True"},
            name="/predict/image",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {response.text[:200]}")
                if response.status_code == 503 and HONOUR_RETRY_AFTER:
                    # locust runs users on gevent, which makes time.sleep yield to the others.
                    time.sleep(retry_after_seconds(response.headers.get("Retry-After")))
                return
            try:
                body = response.json()
            except ValueError:
                response.failure(f"not JSON: {response.text[:200]}")
                return
            if not isinstance(body, dict) or "Label" not in body:
                response.failure(f"no Label in {str(body)[:200]}")
