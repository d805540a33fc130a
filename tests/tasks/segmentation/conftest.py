"""The synthetic segmentation fixtures (see tests/segmentation_data.py)."""

from tests.segmentation_data import acdc_h5_real, acdc_nifti_root, h5_root, seg  # noqa: F401
