"""A stand-in PyTorch model for the packing tests: it records the environment it was built in
and the interval of each forward pass (a sleep: an infinitely fast GPU held for a while) in
$KPBENCH_TEST_RECORD/<pid>.jsonl, so that a test can see what each actor saw and how many
actors ran at once. A forward pass first waits (a minute at most) until $KPBENCH_TEST_HOLD
actors have been built, so that those that can run at once are seen to."""

import json
import os
import time
from pathlib import Path

import torch

SLEEP_SECONDS = 1.0


class Recorder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(3, 1000)
        self._write({"built": time.time(), "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES")})

    def forward(self, x):
        folder, hold = Path(os.environ["KPBENCH_TEST_RECORD"]), int(os.environ.get("KPBENCH_TEST_HOLD", 0))
        deadline = time.time() + 60
        while len(list(folder.glob("*.jsonl"))) < hold and time.time() < deadline:
            time.sleep(0.1)
        started = time.time()
        time.sleep(SLEEP_SECONDS)
        self._write({"forward": [started, time.time()]})
        return self.linear(x.mean(dim=(2, 3)))

    @staticmethod
    def _write(entry: dict) -> None:
        folder = Path(os.environ["KPBENCH_TEST_RECORD"])
        with open(folder / f"{os.getpid()}.jsonl", "a") as file:
            file.write(json.dumps(entry) + "\n")


def recorder():
    return Recorder()
