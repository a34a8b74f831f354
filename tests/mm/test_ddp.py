"""Two CPU processes (gloo) under `accelerate launch` end with identical bridge weights."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file


def test_two_process_training_keeps_ranks_in_sync(tmp_path):
    launcher = shutil.which("accelerate") or str(Path(sys.executable).parent / "accelerate")
    worker = Path(__file__).with_name("ddp_worker.py")
    cmd = [launcher, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
           "--dynamo_backend", "no", str(worker), str(tmp_path)]
    # On machines without GPUs accelerate runs DDP over gloo when told to use the CPU.
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=Path(__file__).parents[2], env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "rank 0 of 2" in out.stdout and "rank 1 of 2" in out.stdout and "gloo" in out.stdout
    a, b = load_file(str(tmp_path / "rank0.safetensors")), load_file(str(tmp_path / "rank1.safetensors"))
    init = __import__("mm").load("mm-tiny").model.bridge_state_dict()
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    assert any(not torch.equal(a[k], init[k]) for k in a)  # they trained, and stayed identical
