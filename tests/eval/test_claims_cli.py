"""scripts/make_canvas_set.py -> training on the canvas folder -> scripts/evaluate.py --claims, end to end."""

from __future__ import annotations

import importlib.util
import json

import pytest
from _trainer_utils import REPO, compose, make_image_folder


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"script_{name}", REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def canvas_run(tmp_path_factory):
    from mixcut.trainer import run

    base = tmp_path_factory.mktemp("claims")
    src = make_image_folder(base / "src", classes=3, per_class=12, size=32)
    out = base / "canvas"
    rc = load_script("make_canvas_set").main(
        [str(src / "train"), str(out), "--train-per-class", "5", "--val-per-class", "4", "--pool-per-class", "3",
         "--objects", "images", "--canvas", "32", "--object-size", "16", "--workers", "0"]
    )  # fmt: skip
    assert rc == 0 and (out / "boxes.txt").is_file() and len(list((out / "val").rglob("*.png"))) == 12
    cfg = compose(
        ["data=canvas", f"data.root={out}", "data.img_size=32", "data.num_workers=0", "model.name=cifar_resnet20",
         "mix=cutmix", "trainer.epochs=1", "trainer.batch_size=5", "trainer.progress=false", "trainer.device=cpu",
         "trainer.amp=none"]
    )  # fmt: skip
    run(cfg, base / "run")
    return base


@pytest.mark.slow
def test_evaluate_claims_end_to_end(canvas_run, tmp_path, capsys):
    script = load_script("evaluate")
    ckpt = str(canvas_run / "run" / "checkpoints" / "last.pt")
    assert script.main([ckpt, "--out", str(tmp_path / "plain")]) == 0
    plain = json.loads((tmp_path / "plain" / "last.json").read_text())
    argv = [ckpt, "--claims", "--out", str(tmp_path / "claims"), "--epsilons", "0,8/255", "--pgd-steps", "2",
            "--occlusion-sizes", "0,112,224", "--ood-n", "16", "--ood-folder", str(canvas_run / "src" / "train")]  # fmt: skip
    assert script.main(argv) == 0
    printed = capsys.readouterr().out
    assert "temperature scaling T" in printed and "Top-1 Loc" in printed
    r = json.loads((tmp_path / "claims" / "last.json").read_text())
    new = {"temperature_scaling", "adversarial", "occlusion", "ood", "localization", "claims_wall_time_s"}
    assert set(r) == set(plain) | new and not new & set(plain)  # without flags: the JSON of before
    assert r["metrics"] == plain["metrics"]
    assert r["adversarial"]["fgsm"]["0.0000"] == pytest.approx(plain["metrics"]["top1"])
    assert r["occlusion"]["hole"]["0"] == pytest.approx(plain["metrics"]["top1"])
    assert r["temperature_scaling"]["calibration_n"] == 6 and r["temperature_scaling"]["temperature"] > 0
    assert set(r["ood"]["sets"]) == {"gaussian", "uniform", "digits", "folder:train"}
    assert r["localization"]["n"] == 12 and r["localization"]["method"] == "cam"
    for key in ("examples_png",):
        assert (tmp_path / "claims" / r["localization"][key]).read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "claims" / r["temperature_scaling"]["reliability_png"]).is_file()

    summarize = load_script("summarize")
    run_dir = canvas_run / "run"
    (run_dir / "eval").mkdir(exist_ok=True)
    (run_dir / "eval" / "last.json").write_text(json.dumps(r))
    for name in ("last_cams.png",):
        (run_dir / "eval" / name).write_bytes((tmp_path / "claims" / name).read_bytes())
    md, png = tmp_path / "t.md", tmp_path / "claims.png"
    assert (
        summarize.main([str(run_dir), "--md", str(md), "--claims-png", str(png), "--cams-png", str(tmp_path / "cams.png")]) == 0
    )
    text = md.read_text()
    assert "T" in text and "Top-1 Loc" in text and png.read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "cams.png").read_bytes()[:4] == b"\x89PNG"
