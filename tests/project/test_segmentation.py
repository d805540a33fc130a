"""Segmentation projects: NIfTI volumes as slices, mask export/import/upload, query."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from PIL import Image

from medactive.project.exporter import export_batch
from medactive.project.importer import BadRows, import_labels
from medactive.project.store import ProjectStore
from medactive.project.workflow import init_project, labeled_state, query
from tests.project.conftest import SEG_H, SEG_S, SEG_W, save_nifti

nib = pytest.importorskip("nibabel")
pytest.importorskip("medactive.tasks.segmentation.task")

H, W, S = SEG_H, SEG_W, SEG_S  # [S, H, W]; NIfTI arrays are (x=W, y=H, z=S)


@pytest.fixture
def seg_project(tmp_path, seg_folder) -> ProjectStore:
    return init_project(tmp_path / "proj", seg_folder, task="segmentation", preset="smoke",
                        initial=2)


def test_init_slices_and_initial_masks(seg_project):
    store = seg_project
    assert store.classes == ["background", "outer", "inner"]
    pool = store.pool_ids()
    assert pool[:3] == ["case0/0", "case0/1", "case0/2"] and len(pool) == 3 * S
    assert {s.id for s in store.samples("val")} == {"case3"}
    labels = store.current_labels()
    assert set(labels) == {"case0/0", "case0/1", "case0/2"}
    mask = np.asarray(Image.open(store.directory / labels["case0/1"].mask_path))
    assert mask.shape == (H, W) and set(np.unique(mask)) == {0, 1, 2}


def test_export_import_masks(seg_project, tmp_path):
    store = seg_project
    batch = query(store, strategy="random", budget=2)  # the initial labels form L_0: round 1
    assert batch.round == 1  # the initial masks form L_0: the first query already trains
    out = export_batch(store, fmt="folder", out=tmp_path / "exp").path
    first = batch.sample_ids[0]
    template = nib.load(str(out / "masks" / f"{first}.nii.gz"))
    assert template.shape == (W, H, 1) and not np.asarray(template.dataobj).any()
    assert (out / "images" / f"{first}.png").is_file()
    # paint the masks (as NIfTI, in the template's orientation) and import the folder
    masks = tmp_path / "painted"
    for sid in batch.sample_ids:
        arr = np.zeros((H, W), dtype=np.uint8)
        arr[2:5, 3:7] = 1
        save_nifti(arr[None], masks / f"{sid}.nii.gz")
    report = import_labels(store, masks)
    assert report.n_written == len(batch.sample_ids)
    assert store.counts()["batch"]["labelled"] == len(batch.sample_ids)
    # a wrong shape or a value outside the classes is refused, listing every file
    bad = tmp_path / "bad"
    save_nifti(np.zeros((1, W, H), dtype=np.uint8), bad / "case1" / "0.nii.gz")
    Image.fromarray(np.full((H, W), 7, dtype=np.uint8)).save(bad / "case1" / "1.png")
    Image.fromarray(np.zeros((H, W), dtype=np.uint8)).save(bad / "nosuch.png")
    with pytest.raises(BadRows) as info:
        import_labels(store, bad)
    text = str(info.value)
    assert "mask shape (16, 12) does not match" in text
    assert "values must be integers 0..2" in text
    assert "unknown id 'nosuch'" in text


def test_page_mask_upload(seg_project):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    from medactive.project.server import create_app

    store = seg_project
    query(store, strategy="random", budget=2)
    h = {"Authorization": f"Bearer {store.add_annotator('ann')}"}
    client = TestClient(create_app(store.directory, max_upload_bytes=4096))
    item = client.post("/api/next", headers=h).json()
    png = client.get(f"/api/image/{item['key']}", headers=h)
    assert Image.open(io.BytesIO(png.content)).size == (W, H)
    good = io.BytesIO()
    Image.fromarray(np.ones((H, W), dtype=np.uint8)).save(good, format="PNG")
    wrong = io.BytesIO()
    Image.fromarray(np.ones((W, H), dtype=np.uint8)).save(wrong, format="PNG")
    r = client.post(f"/api/mask/{item['key']}", headers={**h, "X-Filename": "m.png"},
                    content=wrong.getvalue())
    assert r.status_code == 422 and "does not match" in r.json()["detail"]
    r = client.post(f"/api/mask/{item['key']}", headers={**h, "X-Filename": "m.png"},
                    content=good.getvalue())
    assert r.status_code == 200
    label = store.current_labels()[item["id"]]
    assert label.annotator == "ann" and label.mask_path.startswith("masks/")
    assert client.post(f"/api/mask/{item['key']}", headers=h,
                       content=b"\0" * 5000).status_code == 413


@pytest.mark.slow
def test_segmentation_query_trains_on_masks(seg_project):
    store = seg_project
    state = labeled_state(store)
    assert len(state.labeled_idx) == S  # case0's slices from its mask
    batch = query(store, strategy="entropy", budget=2)
    assert batch.round == 1 and len(batch.sample_ids) == 2
    assert not {"case0/0", "case0/1", "case0/2"} & set(batch.sample_ids)
    assert "val_dice_mean" in store.models()[0]["metrics"]


def test_pool_order_is_natural_and_matches_medactive_run(tmp_path):
    """Slices of a 12-slice volume come 0, 1, ..., 11 (not 0, 1, 10, 11, 2, ...) and volumes in
    natural order (case2 before case10): the order `medactive run` reads the folder in."""
    from medactive.data.segmentation.nifti import load_nifti_folder

    root = tmp_path / "vols"
    rng = np.random.default_rng(0)
    for name in ("case10", "case2", "case3", "case4"):
        mask = np.zeros((12, H, W), dtype=np.uint8)
        mask[:, 3:9, 4:12] = 1
        save_nifti((mask * 50.0 + rng.normal(0, 5, mask.shape)).astype(np.float32),
              root / "images" / f"{name}.nii.gz")
        save_nifti(mask, root / "masks" / f"{name}.nii.gz")
    (root / "val.list").write_text("case3\n")
    (root / "test.list").write_text("case4\n")
    store = init_project(tmp_path / "proj", root, task="segmentation", preset="smoke",
                         classes=["background", "fg"])
    pool = store.pool_ids()
    assert pool[:12] == [f"case2/{k}" for k in range(12)] and pool[12] == "case10/0"
    assert [s.id for s in store.samples("pool")] == pool
    assert pool == [s.id for s in load_nifti_folder(root).train]
