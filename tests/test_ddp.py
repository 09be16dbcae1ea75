"""Multi-process training: 2 CPU processes with gloo through torchrun, the same entry point.

Checks that the replicas stay bit-identical, that the ranks train on different samples, and
that 2 processes x 1 image reproduce 1 process x 2 images (DDP averages the gradients of the
same samples that one process would average itself)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lsts_lib.engine.checkpoint import load_checkpoint
from lsts_lib.engine.train import train
from lsts_lib.engine.trainlog import read_log


def test_two_gloo_processes_stay_identical_and_match_one_process(
    data_root: Path, tmp_path: Path
) -> None:
    common = [f"data.root={data_root}", "train.steps=2", "train.threads=1",
              "model.variant=lsts"]
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", "-m", "lsts_lib", "train", "--config", "smoke", "--out", str(run), *common]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    info = json.loads((run / "ddp.json").read_text())
    assert info["world_size"] == 2 and info["backend"] == "gloo"
    assert info["weights_sha256"][0] == info["weights_sha256"][1]
    rank0, rank1 = info["samples"]
    assert len(rank0) == len(rank1) == 2 and not set(rank0) & set(rank1)
    env_json = json.loads((run / "env.json").read_text())
    assert env_json["world_size"] == 2

    # One process with batch 2 sees the same samples and averages the same gradients.
    single = tmp_path / "single"
    train("smoke", single, common + ["train.batch_size=2"], progress=False)
    a, b = load_checkpoint(run / "model.pt")["model"], load_checkpoint(single / "model.pt")["model"]
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=k)
    la, lb = read_log(run / "log.csv"), read_log(single / "log.csv")
    assert [r["loss"] for r in la] == pytest.approx([r["loss"] for r in lb], rel=1e-4)
