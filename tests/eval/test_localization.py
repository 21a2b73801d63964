"""CAM / Grad-CAM boxes, batched connected components, box readers and the canvas set's boxes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mixcut.data.canvas import make_canvases, paste, resize_objects, scrambled_backgrounds
from mixcut.eval.box_files import eval_geometry, read_box_file, read_cub, read_imagenet_xml
from mixcut.eval.cam import connected_components, largest_component_boxes, maps_for
from mixcut.eval.localization import box_iou, localize


class QuadrantNet(nn.Module):
    """Features at half resolution that exist only in the top-right quadrant; ``pool`` is the head's pooling."""

    def __init__(self, pool: str = "avg") -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        nn.init.constant_(self.conv.weight, 0.5)
        nn.init.constant_(self.conv.bias, 0.1)
        self.fc = nn.Linear(4, 2)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[1.0, 1.0, 1.0, 1.0], [-1.0, -1.0, -1.0, -1.0]]))
            self.fc.bias.zero_()
        self.pool = pool

    def get_classifier(self):
        return self.fc

    def forward_features(self, x):
        f = F.relu(self.conv(F.avg_pool2d(x, 2)))
        mask = torch.zeros_like(f)
        h, w = f.shape[-2:]
        mask[..., : h // 2, w // 2 :] = 1
        return f * mask

    def forward_head(self, f):
        pooled = f.mean((2, 3)) if self.pool == "avg" else f.amax((2, 3))
        return self.fc(pooled)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


@pytest.mark.parametrize("pool,method", [("avg", "cam"), ("max", "gradcam")])
def test_map_of_a_quadrant_model_boxes_that_quadrant(pool, method):
    model = QuadrantNet(pool)
    x = torch.rand(3, 3, 32, 32)
    y = torch.zeros(3, dtype=torch.long)
    quadrant = torch.tensor([[[16.0, 0.0, 32.0, 16.0]]]).expand(3, 1, 4)
    r = localize(model, x, y, quadrant, threshold=0.2)
    assert r["method"] == method
    for box in r["box_gt_known"]:
        x0, y0, x1, y1 = box.tolist()
        assert x0 >= 15 and x1 <= 32 and y0 >= 0 and y1 <= 17  # inside the quadrant (one pixel of upsampling bleed)
    assert (r["iou_gt"] > 0.8).all() and r["gt_known_loc"].all() and r["top1_loc"].all()


def test_cam_equals_gradcam_up_to_scale_for_a_gap_linear_head():
    model = QuadrantNet("avg")
    x = torch.rand(2, 3, 16, 16)
    cls = torch.tensor([0, 0])
    _, (cam,), _ = maps_for(model, x, [cls], "cam")
    _, (grad,), _ = maps_for(model, x, [cls], "gradcam")
    h, w = cam.shape[-2:]
    assert torch.allclose(F.relu(cam) / (h * w), grad, atol=1e-6)


def test_connected_components_match_scipy():
    from scipy import ndimage

    gen = torch.Generator().manual_seed(0)
    mask = torch.rand(6, 20, 24, generator=gen) > 0.55
    labels = connected_components(mask)
    for m, lab in zip(mask, labels):
        ref, n = ndimage.label(m.numpy(), structure=np.ones((3, 3)))
        assert len(lab.unique()) - 1 == n
        # same partition: a bijection between our labels and scipy's
        pairs = {(int(a), int(b)) for a, b in zip(lab.flatten(), ref.flatten())}
        assert len(pairs) == n + 1


def test_largest_component_box():
    mask = torch.zeros(2, 10, 12, dtype=torch.bool)
    mask[0, 1:3, 1:3] = True  # 4 pixels
    mask[0, 5:9, 4:10] = True  # 24 pixels: the largest
    mask[1, 0, 0] = True
    boxes = largest_component_boxes(mask)
    assert boxes.tolist() == [[4.0, 5.0, 10.0, 9.0], [0.0, 0.0, 1.0, 1.0]]
    empty = largest_component_boxes(torch.zeros(1, 4, 5, dtype=torch.bool))
    assert empty.tolist() == [[0.0, 0.0, 5.0, 4.0]]


def test_box_iou_best_of_several_and_padding():
    pred = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    gt = torch.tensor([[[5.0, 5.0, 15.0, 15.0], [0.0, 0.0, 10.0, 5.0], [0.0, 0.0, 0.0, 0.0]]])
    assert box_iou(pred, gt).item() == pytest.approx(0.5)


def test_box_readers_and_geometry(tmp_path):
    (tmp_path / "boxes.txt").write_text("# c\nval/cat/1.png 1 2 5 6 64 64\nval/cat/1.png 0 0 2 2 64 64\n")
    table = read_box_file(tmp_path / "boxes.txt")
    assert table["val/cat/1.png"] == ([[1, 2, 5, 6], [0, 0, 2, 2]], (64, 64))
    (tmp_path / "images.txt").write_text("1 001.Bird/a.jpg\n2 002.Gull/b.jpg\n")
    (tmp_path / "bounding_boxes.txt").write_text("1 10.0 20.0 30.0 40.0\n2 1 2 3 4\n")
    assert read_cub(tmp_path)["001.Bird/a.jpg"] == ([[10.0, 20.0, 40.0, 60.0]], None)
    xml = tmp_path / "xml"
    xml.mkdir()
    (xml / "ILSVRC2012_val_00000001.xml").write_text(
        "<annotation><size><width>500</width><height>375</height></size>"
        "<object><bndbox><xmin>10</xmin><ymin>20</ymin><xmax>110</xmax><ymax>220</ymax></bndbox></object>"
        "<object><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>3</xmax><ymax>4</ymax></bndbox></object></annotation>"
    )
    boxes, wh = read_imagenet_xml(xml)["ILSVRC2012_val_00000001"]
    assert wh == (500, 375) and boxes[0] == [10, 20, 110, 220] and len(boxes) == 2
    # 64x64 -> resize 32 (crop_pct 1): halves. 100x50 at img 32, crop_pct 0.5: resize to 128x64 (x1.28),
    # crop 48 px off the left and 16 off the top, clip to 0..32
    assert eval_geometry(torch.tensor([[8.0, 8.0, 40.0, 24.0]]), 64, 64, 32, 1.0).tolist() == [[4, 4, 20, 12]]
    assert eval_geometry(torch.tensor([[50.0, 10.0, 70.0, 30.0]]), 100, 50, 32, 0.5)[0].tolist() == pytest.approx(
        [16, 0, 32, 22.4]
    )


def test_canvas_boxes_match_the_pasted_pixels_exactly():
    gen = torch.Generator().manual_seed(0)
    objects = torch.randint(1, 256, (40, 3, 32, 32), generator=gen, dtype=torch.uint8)
    labels = torch.arange(40) % 4
    pool = torch.zeros(8, 3, 32, 32, dtype=torch.uint8)  # background: black, never in an object
    canv, boxes = make_canvases(objects, labels, pool, torch.arange(8) % 4, canvas=64, scale=(0.3, 0.9), seed=1)
    assert canv.shape == (40, 3, 64, 64) and len(boxes.unique(dim=0)) > 30
    for img, box, obj in zip(canv, boxes.tolist(), objects):
        changed = (img != 0).any(0)
        x0, y0, x1, y1 = box
        assert largest_component_boxes(changed[None]).long().tolist() == [box]
        assert changed[y0:y1, x0:x1].all() and changed.sum() == (x1 - x0) * (y1 - y0)
        assert torch.equal(img[:, y0:y1, x0:x1], resize_objects(obj[None], x1 - x0)[0])


def test_canvas_backgrounds_never_use_the_objects_class():
    pool = (torch.arange(12) % 4 * 50 + 10).view(12, 1, 1, 1).expand(12, 3, 32, 32).to(torch.uint8).contiguous()
    avoid = torch.tensor([0, 1, 2, 3] * 5)
    bg = scrambled_backgrounds(pool, torch.arange(12) % 4, avoid, 64, 16, torch.Generator().manual_seed(0))
    for img, c in zip(bg, avoid.tolist()):
        assert not (img == c * 50 + 10).any()
    assert torch.equal(paste(torch.zeros(0, 3, 8, 8, dtype=torch.uint8), bg[:0], torch.zeros(0, 4).long()), bg[:0])


def test_gt_known_sweep_finds_the_threshold_that_fits_a_blurry_map():
    """A blurry map of a 6x6 object on 24x24: thresholded at 0.2 its box is far too large (IoU < 0.5);
    some threshold of the sweep fits it, so MaxBoxAcc sees the map is right where the fixed 0.2 does not."""
    from mixcut.eval.localization import SWEEP, gt_known_hits

    t = torch.arange(24.0)
    blob = torch.exp(-((t.view(-1, 1) - 11.5) ** 2 + (t.view(1, -1) - 11.5) ** 2) / (2 * 4.0**2))
    gt = torch.tensor([[[9.0, 9.0, 15.0, 15.0]]])
    hits = gt_known_hits(blob[None], (24, 24), gt)
    assert hits.shape == (len(SWEEP),)
    assert hits[SWEEP.index(0.2)] == 0 and hits.max() == 1


def test_kaggle_boxes_are_a_box_format_and_map_through_the_eval_geometry(tmp_path):
    """--box-format kaggle_csv: LOC_val_solution.csv's boxes, looked up by the image's stem in a sorted
    val/<wnid>/ folder, the image size read from the file, mapped like the other readers' boxes."""
    from PIL import Image

    from mixcut.eval.box_files import BOX_READERS, boxes_for_split

    csv = tmp_path / "LOC_val_solution.csv"
    csv.write_text("ImageId,PredictionString\nILSVRC2012_val_00000001,n01751748 8 8 40 24 n01751748 0 0 4 4 \n")
    img = tmp_path / "val" / "n01751748" / "ILSVRC2012_val_00000001.JPEG"
    img.parent.mkdir(parents=True)
    Image.new("RGB", (64, 64)).save(img, format="JPEG")
    table = BOX_READERS["kaggle_csv"](csv)
    assert table["ILSVRC2012_val_00000001"] == ([[8, 8, 40, 24], [0, 0, 4, 4]], None)
    boxes = boxes_for_split([str(img)], tmp_path, table, img_size=32, crop_pct=1.0)
    assert boxes.tolist() == [[[4, 4, 20, 12], [0, 0, 2, 2]]]  # 64 px -> 32: halved
