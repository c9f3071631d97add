"""``Volume``: a voxel array on a :class:`~hepavol.geometry.Geometry` (images and label maps alike)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from hepavol.errors import GeometryError
from hepavol.geometry import Geometry

if TYPE_CHECKING:  # SimpleITK is imported lazily: it is only needed at the I/O boundary
    import SimpleITK as sitk


@dataclass(frozen=True, eq=False, slots=True)
class Volume:
    """A read-only 3D array indexed (slice, row, column) with its geometry in LPS mm.

    Images keep their stored type (CT as int16 stays int16 after rescale when it fits); label maps are integer
    arrays. ``source`` says where the data came from, for messages; ``metadata`` holds a few reader facts
    (modality, series UID, description) and never identifying patient data.

    Examples
    --------
    >>> import numpy as np
    >>> from hepavol.geometry import Geometry, identity_direction
    >>> g = Geometry(shape=(2, 3, 4), spacing_mm=(1.0, 1.0, 1.0), origin_lps_mm=(0.0, 0.0, 0.0),
    ...              direction=identity_direction())
    >>> Volume(np.zeros((2, 3, 4), np.int16), g)
    Volume(shape: (2, 3, 4); dtype: int16; spacing_mm: (1.00, 1.00, 1.00); orientation: LPS)
    """

    array: NDArray[Any]
    geometry: Geometry
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        arr = np.asarray(self.array)
        if arr.ndim != 3:
            raise GeometryError(f"A volume must be 3D (slice, row, column), but the array has shape {arr.shape}.")
        if tuple(arr.shape) != self.geometry.shape:
            raise GeometryError(
                f"Array shape {arr.shape} does not match geometry shape {self.geometry.shape} ({self.source})."
            )
        if arr.flags.writeable:
            arr = arr.view()
            arr.flags.writeable = False
        object.__setattr__(self, "array", arr)

    def with_array(self, array: NDArray[Any], *, source: str | None = None) -> Volume:
        """A new volume on the same grid with another array."""
        return Volume(
            np.asarray(array), self.geometry, self.source if source is None else source, dict(self.metadata)
        )

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.geometry.shape

    def __repr__(self) -> str:
        sp = ", ".join(f"{v:.2f}" for v in self.geometry.spacing_mm)
        return (
            f"Volume(shape: {self.geometry.shape}; dtype: {self.array.dtype}; spacing_mm: ({sp}); "
            f"orientation: {self.geometry.orientation_code})"
        )

    # ------------------------------------------------------------------ SimpleITK boundary
    def to_sitk(self) -> sitk.Image:
        """A SimpleITK image with the same voxels and LPS geometry (ITK axes are column, row, slice)."""
        import SimpleITK as sitk

        img = sitk.GetImageFromArray(np.ascontiguousarray(self.array))
        g = self.geometry
        img.SetSpacing(tuple(reversed(g.spacing_mm)))
        img.SetOrigin(g.origin_lps_mm)
        img.SetDirection(tuple(g.direction_matrix[:, ::-1].reshape(-1)))
        return img

    @classmethod
    def from_sitk(cls, image: sitk.Image, *, source: str = "") -> Volume:
        """Wrap a 3D SimpleITK image (its physical space is LPS, as ITK's is)."""
        if image.GetDimension() != 3:
            raise GeometryError(
                f"Expected a 3D image, but {source or 'the image'} has {image.GetDimension()} dimensions."
            )
        if image.GetNumberOfComponentsPerPixel() != 1:
            raise GeometryError(
                f"Expected a scalar image, but {source or 'the image'} has "
                f"{image.GetNumberOfComponentsPerPixel()} components per voxel (colour or vector image)."
            )
        import SimpleITK as sitk

        arr = sitk.GetArrayFromImage(image)
        m = np.array(image.GetDirection(), dtype=float).reshape(3, 3)
        geometry = Geometry(
            shape=(int(arr.shape[0]), int(arr.shape[1]), int(arr.shape[2])),
            spacing_mm=tuple(reversed(image.GetSpacing())),
            origin_lps_mm=tuple(image.GetOrigin()),
            direction=tuple(tuple(row) for row in m[:, ::-1]),  # type: ignore[arg-type]
        )
        return cls(arr, geometry, source)


def resample_like(
    volume: Volume, reference: Geometry, *, nearest: bool = True, default_value: float = 0
) -> Volume:
    """Resample ``volume`` onto the ``reference`` grid (nearest neighbour for label maps, linear otherwise)."""
    import SimpleITK as sitk

    ref = sitk.Image(*reversed(reference.shape), sitk.sitkUInt8)
    ref.SetSpacing(tuple(reversed(reference.spacing_mm)))
    ref.SetOrigin(reference.origin_lps_mm)
    ref.SetDirection(tuple(reference.direction_matrix[:, ::-1].reshape(-1)))
    interpolator = sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear
    out = sitk.Resample(volume.to_sitk(), ref, sitk.Transform(), interpolator, default_value)
    result = Volume.from_sitk(out, source=volume.source)
    return Volume(
        result.array.astype(volume.array.dtype, copy=False), reference, volume.source, dict(volume.metadata)
    )
