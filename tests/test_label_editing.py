"""Editing a whole label map (``LabelMapEditor``): new lesions, corrections, brush, undo/redo, on analytic phantoms.

Truth: spheres written from their equations inside a box "liver" (label 1) of 110 HU with lesions of 40 HU
(label 2). Dice against the analytic sphere; undo and redo must restore the label map voxel for voxel.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from hepavol.errors import InputError
from hepavol.geometry import Geometry, identity_direction
from hepavol.segmentation.label_editing import LabelMapEditor
from hepavol.volume import Volume

SPACING = (2.0, 0.8, 0.8)


def _dice(a: NDArray[np.bool_], b: NDArray[np.bool_]) -> float:
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


@pytest.fixture
def phantom() -> tuple[Volume, NDArray[np.int16], NDArray[np.bool_], NDArray[np.bool_], Geometry]:
    g = Geometry(
        shape=(30, 90, 90), spacing_mm=SPACING, origin_lps_mm=(0.0, 0.0, 0.0), direction=identity_direction()
    )
    idx = np.indices(g.shape).astype(float)
    sp = np.array(SPACING)[:, None, None, None]

    def ball(centre: tuple[float, float, float], r_mm: float) -> NDArray[np.bool_]:
        c = np.array(centre)[:, None, None, None]
        return np.asarray(np.sqrt((((idx - c) * sp) ** 2).sum(0)) <= r_mm)

    liver = np.zeros(g.shape, bool)
    liver[3:27, 10:80, 10:80] = True
    a = ball((15, 30, 30), 9.0)  # segmented already
    b = ball((15, 60, 60), 8.0)  # missed: the reader adds it
    image = np.where(liver, 110.0, -50.0)
    image[a | b] = 40.0
    image = image + np.random.default_rng(3).normal(0.0, 5.0, g.shape)
    labels = np.where(liver, 1, 0).astype(np.int16)
    labels[a] = 2
    return Volume(image.astype(np.int16), g), labels, a, b, g


def test_a_missed_lesion_is_added_by_one_click_and_undo_redo_restore_every_voxel(phantom: tuple) -> None:
    image, labels, a, b, g = phantom
    editor = LabelMapEditor(image, labels, liver_label=1, tumor_labels=[2])
    start = editor.labels.copy()
    change = editor.add_lesion_from_seed(g.index_to_lps(np.array([15.0, 60.0, 60.0])))
    added = (editor.labels == 2) & ~a
    assert _dice(added, b) >= 0.9  # a 16 mm sphere from one click at its centre
    assert change.voxels == int(added.sum())
    assert np.array_equal(editor.labels[a], labels[a])  # the other lesion untouched
    after = editor.labels.copy()
    editor.undo()
    assert np.array_equal(editor.labels, start)
    editor.redo()
    assert np.array_equal(editor.labels, after)
    with pytest.raises(InputError, match="inside a lesion already"):
        editor.add_lesion_from_seed(g.index_to_lps(np.array([15.0, 30.0, 30.0])))


def test_exclude_gives_the_voxels_back_to_the_liver(phantom: tuple) -> None:
    """Lesion A drawn too big (a 13 mm ball around a 9 mm one): an exclude at a leaked voxel removes it, and the
    removed voxels are liver again (they lie inside the liver's outline), not background."""
    image, labels, _a, _b, g = phantom
    idx = np.indices(g.shape).astype(float)
    c = np.array([15.0, 30.0, 30.0])[:, None, None, None]
    sp = np.array(SPACING)[:, None, None, None]
    big = np.sqrt((((idx - c) * sp) ** 2).sum(0)) <= 13.0
    grown = labels.copy()
    grown[big] = 2
    editor = LabelMapEditor(image, grown, liver_label=1, tumor_labels=[2])
    editor.exclude(g.index_to_lps(np.array([15.0, 30.0, 30.0 + 11.5 / SPACING[2]])))
    lesion = editor.labels == 2
    assert lesion.sum() < big.sum()
    gone = big & ~lesion
    assert gone.any()
    assert np.all(editor.labels[gone] == 1)


def test_brush_modes(phantom: tuple) -> None:
    image, labels, a, _b, g = phantom
    editor = LabelMapEditor(image, labels, liver_label=1, tumor_labels=[2])
    stroke = np.zeros(g.shape, bool)
    stroke[15, 25:36, 25:36] = True  # a square on lesion A's centre slice
    editor.paint(stroke, "erase lesion")
    assert not (editor.labels[stroke] == 2).any()
    assert np.all(editor.labels[stroke & a] == 1)  # inside the liver: back to liver
    editor.paint(stroke, "lesion")
    assert np.all(editor.labels[stroke] == 2)
    outside = np.zeros(g.shape, bool)
    outside[15, 0:5, 0:5] = True
    editor.paint(outside, "liver")
    assert np.all(editor.labels[outside] == 1)
    editor.paint(outside, "erase liver")
    assert np.all(editor.labels[outside] == 0)
    assert len(editor.changes) == 4
    for _ in range(4):
        editor.undo()
    assert np.array_equal(editor.labels, labels)
    assert editor.undo() is None
    with pytest.raises(InputError, match="brush mode 'paint' is not one of"):
        editor.paint(stroke, "paint")


def test_a_correction_with_no_lesion_and_a_click_outside_are_clear_errors(phantom: tuple) -> None:
    image, labels, _a, _b, g = phantom
    empty = np.where(labels == 2, 1, labels)
    editor = LabelMapEditor(image, empty, liver_label=1, tumor_labels=[2])
    with pytest.raises(InputError, match="no lesion to correct"):
        editor.include(g.index_to_lps(np.array([15.0, 30.0, 30.0])))
    with pytest.raises(InputError, match="outside the image"):
        editor.add_lesion_from_seed((-500.0, 0.0, 0.0))


def test_the_tumour_voxel_count_follows_every_edit(phantom: tuple) -> None:
    image, labels, _a, _b, g = phantom
    editor = LabelMapEditor(image, labels, liver_label=1, tumor_labels=[2])
    editor.add_lesion_from_seed(g.index_to_lps(np.array([15.0, 60.0, 60.0])))
    stroke = np.zeros(g.shape, bool)
    stroke[15, 25:36, 25:36] = True
    editor.paint(stroke, "erase lesion")
    editor.undo()
    editor.undo()
    editor.redo()
    assert editor.tumor_voxels == int((editor.labels == 2).sum())


def test_a_rejected_lesion_is_removed_whole_and_its_voxels_are_liver_again(phantom: tuple) -> None:
    image, labels, a, _b, g = phantom
    editor = LabelMapEditor(image, labels, liver_label=1, tumor_labels=[2])
    change = editor.remove_lesion(g.index_to_lps(np.array([15.0, 30.0, 30.0])))
    assert change.voxels == int(a.sum())
    assert not (editor.labels == 2).any()
    assert np.all(editor.labels[a] == 1)  # the lesion was a hole of the liver: liver again
    with pytest.raises(InputError, match="no lesion at"):
        editor.remove_lesion(g.index_to_lps(np.array([15.0, 60.0, 60.0])))
