"""The shape canvas set: the box is exactly the silhouette's bounding box, the texture carries no class."""

from __future__ import annotations

import pytest
import torch

from mixcut.data.canvas import SHAPES, make_shape_canvases, mask_boxes, shape_mask


@pytest.mark.parametrize("side", [4, 9, 16, 27])
def test_every_shape_is_a_distinct_nonempty_silhouette(side):
    masks = torch.stack([shape_mask(s, side) for s in SHAPES])
    assert masks.flatten(1).any(1).all()
    if side >= 9:  # the ten classes differ from each other
        assert len({tuple(m.flatten().tolist()) for m in masks}) == len(SHAPES)


def test_shape_boxes_are_exactly_the_bounding_box_of_the_object_pixels():
    gen = torch.Generator().manual_seed(0)
    n = 60
    textures = torch.randint(200, 256, (n, 3, 32, 32), generator=gen, dtype=torch.uint8)  # never the background's grey
    pool = torch.zeros(8, 3, 32, 32, dtype=torch.uint8)  # black clutter: one grey level after the contrast cut
    shape_ids = torch.arange(n) % len(SHAPES)
    canv, boxes = make_shape_canvases(textures, torch.arange(n) % 4, shape_ids, pool, torch.arange(8) % 4, canvas=48, seed=3)
    grey = canv[0, 0, 0, 0]
    assert canv.shape == (n, 3, 48, 48) and (canv[:, :, 0, 0] == grey).all()
    changed = (canv != grey).any(1)
    assert torch.equal(mask_boxes(changed), boxes)  # tight: every box edge touches an object pixel
    sides = torch.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    assert sides.min() >= round(0.3 * 48) - 1 and sides.max() <= round(0.55 * 48)
    # the hollow shapes' boxes are their outline's, not smaller
    ring = shape_ids == SHAPES.index("ring")
    assert (boxes[ring, 2] - boxes[ring, 0] >= round(0.3 * 48) - 1).all()


def test_tiny_objects_are_refused():
    x = torch.zeros(2, 3, 8, 8, dtype=torch.uint8)
    with pytest.raises(ValueError, match="silhouette"):
        make_shape_canvases(x, torch.tensor([0, 1]), torch.tensor([0, 1]), x, torch.tensor([0, 1]), canvas=8)


def test_make_canvas_set_writes_a_balanced_shape_folder_with_boxes(tmp_path):
    from _trainer_utils import load_script, make_image_folder

    src = make_image_folder(tmp_path / "src", classes=3, per_class=14, size=32) / "train"
    out = tmp_path / "shapes"
    argv = [str(src), str(out), "--train-per-class", "2", "--val-per-class", "1", "--pool-per-class", "2",
            "--canvas", "32", "--object-size", "16", "--workers", "0"]  # fmt: skip
    assert load_script("make_canvas_set").main(argv) == 0
    assert sorted(p.name for p in (out / "train").iterdir()) == sorted(SHAPES)
    assert all(len(list((out / "train" / s).glob("*.png"))) == 2 for s in SHAPES)
    lines = [line.split() for line in (out / "boxes.txt").read_text().splitlines() if not line.startswith("#")]
    assert len(lines) == 30
    for rel, x0, y0, x1, y1, w, h in lines:
        assert (out / rel).is_file() and 0 <= int(x0) < int(x1) <= 32 and 0 <= int(y0) < int(y1) <= 32 and w == h == "32"
