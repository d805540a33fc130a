from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.distance import cdist

from medactive.tasks.segmentation.metrics import (
    binary_metrics,
    border,
    diagonal,
    dice,
    multiclass_metrics,
    surface_distances,
)

SPACING = (5.0, 1.25, 0.8)  # anisotropic, like a cine-MRI stack (z, y, x)


def _masks():
    """Two overlapping, shifted and deformed 3D blobs ``[6, 20, 18]``."""
    zz, yy, xx = np.mgrid[:6, :20, :18]
    a = ((zz - 2.5) / 2.5) ** 2 + ((yy - 9) / 6) ** 2 + ((xx - 8) / 5) ** 2 <= 1
    b = ((zz - 3) / 2.2) ** 2 + ((yy - 10.5) / 5) ** 2 + ((xx - 9.5) / 6) ** 2 <= 1
    b[3, 2:4, 2:4] = True  # a detached island: a far surface point
    return a, b


def _brute_force(pred, gt, spacing):
    """Distances by brute force over border voxel coordinates in mm."""
    pts_p = np.argwhere(border(pred)) * np.asarray(spacing)
    pts_g = np.argwhere(border(gt)) * np.asarray(spacing)
    d = cdist(pts_p, pts_g)
    return d.min(axis=1), d.min(axis=0)


def test_dice_by_hand():
    a = np.zeros((1, 4, 4), bool)
    a[0, :2] = True  # 8 voxels
    b = np.zeros((1, 4, 4), bool)
    b[0, :3] = True  # 12 voxels, 8 shared
    assert dice(a, b) == pytest.approx(2 * 8 / 20)
    assert dice(np.zeros(3, bool), np.zeros(3, bool)) == 1.0


def test_border_of_a_cube():
    cube = np.zeros((5, 5, 5), bool)
    cube[1:4, 1:4, 1:4] = True
    b = border(cube)
    assert b.sum() == 27 - 1 and not b[2, 2, 2]


def test_against_brute_force():
    a, b = _masks()
    d_ab, d_ba = _brute_force(a, b, SPACING)
    np.testing.assert_allclose(np.sort(surface_distances(a, b, SPACING)), np.sort(d_ab),
                               atol=1e-9)
    m = binary_metrics(a, b, SPACING)
    assert m["asd"] == pytest.approx(d_ab.mean(), abs=1e-6)
    assert m["hd95"] == pytest.approx(np.percentile(np.concatenate([d_ab, d_ba]), 95), abs=1e-6)
    sym = binary_metrics(a, b, SPACING, symmetric=True)["asd"]
    assert sym == pytest.approx(np.concatenate([d_ab, d_ba]).mean(), abs=1e-6)


def test_against_medpy():
    medpy = pytest.importorskip("medpy.metric.binary", reason="medpy not installed")
    a, b = _masks()
    for pred, gt in ((a, b), (b, a)):
        m = binary_metrics(pred, gt, SPACING)
        assert m["dice"] == pytest.approx(medpy.dc(pred, gt), abs=1e-6)
        assert m["asd"] == pytest.approx(medpy.asd(pred, gt, voxelspacing=SPACING), abs=1e-6)
        assert m["hd95"] == pytest.approx(medpy.hd95(pred, gt, voxelspacing=SPACING), abs=1e-6)
        sym = binary_metrics(pred, gt, SPACING, symmetric=True)["asd"]
        assert sym == pytest.approx(medpy.assd(pred, gt, voxelspacing=SPACING), abs=1e-6)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_against_monai():
    import torch
    from monai.metrics import (
        compute_average_surface_distance,
        compute_dice,
        compute_hausdorff_distance,
    )

    a, b = _masks()

    def onehot(m):
        return torch.from_numpy(np.stack([~m, m]).astype(np.float32))[None]

    m = binary_metrics(a, b, SPACING)
    assert m["dice"] == pytest.approx(float(compute_dice(onehot(a), onehot(b))[0, 1]), abs=1e-6)
    asd = compute_average_surface_distance(onehot(a), onehot(b), spacing=SPACING)
    assert m["asd"] == pytest.approx(float(asd[0, 0]), abs=1e-6)
    sym = compute_average_surface_distance(onehot(a), onehot(b), spacing=SPACING, symmetric=True)
    assert binary_metrics(a, b, SPACING, symmetric=True)["asd"] == pytest.approx(
        float(sym[0, 0]), abs=1e-6)
    # MONAI's HD95 is the larger directed percentile; compare the directed ones
    d_ab = surface_distances(a, b, SPACING)
    d_ba = surface_distances(b, a, SPACING)
    hd = compute_hausdorff_distance(onehot(a), onehot(b), percentile=95, spacing=SPACING)
    assert float(hd[0, 0]) == pytest.approx(max(np.percentile(d_ab, 95),
                                                np.percentile(d_ba, 95)), abs=1e-6)


def test_identical_masks_have_zero_distance():
    a, _ = _masks()
    assert binary_metrics(a, a, SPACING) == {"dice": 1.0, "asd": 0.0, "hd95": 0.0}


def test_empty_masks_are_never_skipped():
    a, _ = _masks()
    empty = np.zeros_like(a)
    worst = diagonal(a.shape, SPACING)
    assert worst == pytest.approx(np.sqrt((6 * 5.0) ** 2 + (20 * 1.25) ** 2 + (18 * 0.8) ** 2))
    assert binary_metrics(empty, a, SPACING) == {"dice": 0.0, "asd": worst, "hd95": worst}
    assert binary_metrics(a, empty, SPACING) == {"dice": 0.0, "asd": worst, "hd95": worst}
    assert binary_metrics(empty, empty, SPACING) == {"dice": 1.0, "asd": 0.0, "hd95": 0.0}
    assert binary_metrics(empty, a)["hd95"] == pytest.approx(np.sqrt(6**2 + 20**2 + 18**2))


def test_multiclass_and_cropping_invariance():
    a, b = _masks()
    pred = np.zeros(a.shape, np.uint8)
    gt = np.zeros(a.shape, np.uint8)
    pred[a], gt[b] = 3, 3
    pred[ndimage.binary_erosion(a, iterations=2)] = 2
    gt[ndimage.binary_erosion(b, iterations=2)] = 2
    out = multiclass_metrics(pred, gt, (1, 2, 3), SPACING)
    assert out[1] == {"dice": 1.0, "asd": 0.0, "hd95": 0.0}  # absent from both
    d_ab, _ = _brute_force(pred == 3, gt == 3, SPACING)
    assert out[3]["asd"] == pytest.approx(d_ab.mean(), abs=1e-9)
    # padding the volume leaves every distance unchanged (only the diagonal would change)
    pad = [(2, 3), (4, 1), (0, 5)]
    padded = multiclass_metrics(np.pad(pred, pad), np.pad(gt, pad), (2, 3), SPACING)
    for k in (2, 3):
        for key in ("dice", "asd", "hd95"):
            assert padded[k][key] == pytest.approx(out[k][key], abs=1e-12)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="differs"):
        binary_metrics(np.zeros((2, 3), bool), np.zeros((3, 2), bool))


def test_one_slice_volume_measures_the_2d_contour():
    """A 2D image stored as [1, H, W]: distances follow the in-plane contour, not the whole
    region (erosion across the missing neighbouring slices would strip every pixel)."""
    from medactive.tasks.segmentation.metrics import binary_metrics

    gt = np.zeros((7, 7), bool)
    gt[1:6, 1:6] = True  # a 5x5 square; its contour is the outer ring
    pred = np.zeros((7, 7), bool)
    pred[3, 3] = True  # its centre, 2 pixels from the ring
    flat = binary_metrics(pred[None], gt[None], spacing=(3.0, 1.0, 1.0))
    assert flat["asd"] == pytest.approx(2.0)
    assert flat == pytest.approx(binary_metrics(pred, gt))
