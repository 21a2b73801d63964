"""model.pretrained=true without a network: a file in the local Hub cache still loads, a
missing one fails in seconds (not after huggingface_hub's minute of retries) naming model.init."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest
import timm
import torch
from _trainer_utils import REPO
from safetensors.torch import save_file

pytestmark = pytest.mark.slow  # two child interpreters

# Run in a child so that the cache location (read by huggingface_hub at import) and the
# simulated outage (every TCP connect fails, as on a machine without a network) are its own.
CHILD = textwrap.dedent(
    """
    import socket, sys, torch
    def no_network(*a, **k):
        raise OSError("Network is unreachable")
    socket.create_connection = no_network
    from omegaconf import OmegaConf
    from mixcut.config.schemas import ModelConfig
    from mixcut.errors import ConfigError
    from mixcut.models import create_model
    try:
        model = create_model(OmegaConf.structured(ModelConfig(name="resnet10t", pretrained=True)), 1000)
    except ConfigError as e:
        print("ERROR", e)
        sys.exit(3)
    torch.save(model.state_dict(), sys.argv[1])
    """
)


def _child(tmp_path, cache):
    env = dict(os.environ, HF_HUB_CACHE=str(cache), PYTHONPATH=str(REPO))
    env.pop("HF_HUB_OFFLINE", None)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "out.pt")], capture_output=True, text=True, env=env, timeout=120
    )
    return proc, time.perf_counter() - start


def test_unreachable_hub_fails_fast_naming_model_init(tmp_path):
    proc, seconds = _child(tmp_path, tmp_path / "empty-cache")
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "model.init=PATH" in proc.stdout
    assert seconds < 30  # huggingface_hub alone retried for 54 s on an offline machine


def test_unreachable_hub_still_loads_a_cached_file(tmp_path):
    cfg = timm.create_model("resnet10t").pretrained_cfg
    torch.manual_seed(1)
    weights = timm.create_model("resnet10t").state_dict()
    snapshot = tmp_path / "cache" / f"models--{cfg['hf_hub_id'].replace('/', '--')}" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in weights.items()}, snapshot / "model.safetensors")
    refs = snapshot.parents[1] / "refs"
    refs.mkdir()
    (refs / "main").write_text("0" * 40)
    proc, _ = _child(tmp_path, tmp_path / "cache")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    loaded = torch.load(tmp_path / "out.pt", weights_only=True)
    float_keys = [k for k, v in weights.items() if v.is_floating_point()]
    assert float_keys and all(torch.equal(loaded[k], weights[k]) for k in float_keys)
