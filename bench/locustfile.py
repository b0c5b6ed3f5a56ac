"""Longer or distributed load tests against a running server, with Locust.

    make run   # or any deployment reachable from here
    .venv/bin/locust -f bench/locustfile.py --host http://127.0.0.1:8080 \\
        --users 20 --spawn-rate 5 --run-time 10m --headless

Each simulated Upload Wizard user sends one base64 1024 px JPEG per request, now and then a
thumbnail or a 10-image request, with no think time (a closed loop, like `make bench`).
"""

from __future__ import annotations

import random

from locust import FastHttpUser, constant, task

from bench import images
from bench.load import check_answer, predict_body

ROUTE = "/v1/models/logo-detection:predict"
SINGLES = [predict_body(images=[data]) for data in images.variants("1024px", 10)]
THUMBNAILS = [predict_body(images=[data]) for data in images.variants("thumbnail", 10)]
TEN = predict_body(images=images.variants("1024px", 10, seed=500))


class UploadWizardUser(FastHttpUser):
    wait_time = constant(0)

    def _post(self, body: bytes, count: int, name: str) -> None:
        headers = {"Content-Type": "application/json"}
        with self.client.post(
            ROUTE, data=body, headers=headers, name=name, catch_response=True
        ) as response:
            problem = check_answer(response.status_code, response.content or b"", count)
            if problem:
                response.failure(problem)

    @task(8)
    def one_photo(self) -> None:
        self._post(random.choice(SINGLES), 1, "1 x 1024px")

    @task(2)
    def one_thumbnail(self) -> None:
        self._post(random.choice(THUMBNAILS), 1, "1 x thumbnail")

    @task(1)
    def ten_photos(self) -> None:
        self._post(TEN, 10, "10 x 1024px")
