"""model.init=PATH: fine-tuning from local weights (issue 13)."""

from __future__ import annotations

import logging

import pytest
import torch
from _trainer_utils import compose, make_image_folder

from mixcut.build import build_optimizer
from mixcut.checkpoint import load_checkpoint
from mixcut.errors import CheckpointError, ConfigError
from mixcut.models import create_model
from mixcut.models.init import init_model, pretrained_offline_message
from mixcut.optim import apply_lr_scale_without_scheduler, scale_head_lr
from mixcut.runtime.distributed import DistInfo
from mixcut.trainer import Trainer, run

BASE = [
    "model.name=cifar_resnet20",
    "data.img_size=16",
    "trainer.batch_size=32",
    "trainer.device=cpu",
    "trainer.amp=none",
    "trainer.progress=false",
    "data.num_workers=0",
]


@pytest.fixture(scope="module")
def digits_ckpt(tmp_path_factory):
    """A real mixcut checkpoint of a (very short) digits run: 10 classes."""
    out = tmp_path_factory.mktemp("digits")
    cfg = compose(BASE + ["data=digits", "trainer.epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1"])
    run(cfg, run_dir=out)
    return out / "checkpoints" / "last.pt"


def _run(tmp_path, overrides) -> Trainer:
    cfg = compose(BASE + overrides)
    return Trainer(cfg, tmp_path / "run", DistInfo(), torch.device("cpu"), None)


def test_finetune_onto_other_class_count_reinitialises_exactly_the_head(tmp_path, digits_ckpt, caplog):
    root = make_image_folder(tmp_path / "imgs", classes=3, per_class=4, size=16)
    # batch 4: the 3 x 4 images minus the held-out tenth still make a batch
    with caplog.at_level(logging.INFO, logger="mixcut"):
        r = _run(tmp_path, ["data=folder", f"data.root={root}", "trainer.batch_size=4", f"model.init={digits_ckpt}"])
    saved = load_checkpoint(digits_ckpt)["model"]
    own = r.built.model.state_dict()
    differ = sorted(k for k in own if own[k].shape != saved[k].shape or not torch.equal(own[k], saved[k]))
    assert differ == ["fc.bias", "fc.weight"]
    assert own["fc.weight"].shape[0] == 3 and saved["fc.weight"].shape[0] == 10
    assert "classifier re-initialised (class count differs): fc.weight, fc.bias" in caplog.text


def test_resume_wins_over_init_and_says_so(tmp_path, digits_ckpt, caplog):
    with caplog.at_level(logging.INFO, logger="mixcut"):
        _run(tmp_path, ["data=digits", f"model.init={digits_ckpt}", f"trainer.resume={digits_ckpt}"])
    assert "not applied: resuming from" in caplog.text and "trainer.resume wins" in caplog.text


def test_strict_mismatch_names_the_keys(tmp_path):
    cfg = compose(BASE)
    sd = create_model(cfg.model, 10).state_dict()
    dropped = next(k for k in sd if k.endswith("conv1.weight"))
    del sd[dropped]
    sd["extra.weight"] = torch.zeros(2)
    torch.save(sd, tmp_path / "w.pth")
    model = create_model(cfg.model, 10)
    with pytest.raises(CheckpointError) as e:
        init_model(model, tmp_path / "w.pth")
    assert dropped in str(e.value) and "extra.weight" in str(e.value) and "model.init_strict=false" in str(e.value)
    report = init_model(model, tmp_path / "w.pth", strict=False)  # non-strict: the rest loads
    assert report.missing == [dropped] and report.unexpected == ["extra.weight"]


def test_safetensors_with_ddp_prefix_loads(tmp_path):
    from safetensors.torch import save_file

    cfg = compose(BASE)
    src = create_model(cfg.model, 10)
    save_file({f"module.{k}": v.contiguous() for k, v in src.state_dict().items()}, str(tmp_path / "w.safetensors"))
    dst = create_model(cfg.model, 10)
    report = init_model(dst, tmp_path / "w.safetensors")
    assert not report.reinitialised and not report.missing
    for k, v in src.state_dict().items():
        assert torch.equal(v, dst.state_dict()[k]), k


class Payload:  # anything that needs code to unpickle
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickled_code_is_refused(tmp_path, capsys):
    torch.save({"model": Payload()}, tmp_path / "evil.pt")
    model = create_model(compose(BASE).model, 10)
    with pytest.raises(CheckpointError, match="refusing to load"):
        init_model(model, tmp_path / "evil.pt")
    assert "this must never run" not in capsys.readouterr().out


def test_offline_pretrained_is_one_line_naming_model_init():
    try:
        try:
            raise ConnectionError("Name or service not known")
        except ConnectionError as inner:
            raise OSError("cannot find the requested files in the local cache") from inner
    except OSError as e:
        line = pretrained_offline_message("resnet50", e)
    assert line is not None and "\n" not in line and "model.init=PATH" in line
    assert pretrained_offline_message("resnet50", ValueError("bad kwarg")) is None


def test_init_and_pretrained_together_is_a_config_error():
    from mixcut.config import check

    with pytest.raises(ConfigError, match="drop one"):
        check(compose(BASE + ["model.init=/x.pt", "model.pretrained=true"]))


def test_head_lr_scale_puts_the_head_in_its_own_groups():
    cfg = compose(BASE + ["optim=adamw", "optim.head_lr_scale=10", "optim.lr=0.01"])
    model = create_model(cfg.model, 10)
    opt = build_optimizer(cfg, model, 1)
    assert scale_head_lr(opt, model, 10.0) == 2
    head = {id(model.fc.weight), id(model.fc.bias)}
    for g in opt.param_groups:
        ids = {id(p) for p in g["params"]}
        assert ids <= head or not ids & head  # never mixed
        assert g.get("lr_scale", 1.0) == (10.0 if ids <= head else 1.0)
    apply_lr_scale_without_scheduler(opt)  # sched=const: applied once
    assert sorted({g["lr"] for g in opt.param_groups}) == pytest.approx([0.01, 0.1])
