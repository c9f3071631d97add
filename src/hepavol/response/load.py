"""Hepatic tumour load (burden): tumour volume as a percentage of liver volume, and its classes.

Classes ``<=10``, ``11-25``, ``26-50``, ``>50`` percent (ENETS, as used by Luo Y et al., Eur Radiol 2019; the
PROMID result is for a load of at most 10 %, CLARINET split at 25 %; SCIENCE.md §3.4).

Boundary convention (*ours*, documented because the published labels are integer ranges): the class is decided on
the **exact** percentage with inclusive upper bounds, i.e. ``[0, 10]``, ``(10, 25]``, ``(25, 50]``, ``(50, 100]``.
So 10.0 % is ``<=10`` but 10.4 % is ``11-25`` (a load above 10 % is not "at most 10 %", as in PROMID's split);
25.0 % is ``11-25`` and 25.01 % ``26-50``. No rounding is applied; the comparison is exact on the volumes given
(read as the decimals they print as).

The liver volume is the whole organ **including** the tumours, so the load is at most 100 %.

Examples
--------
>>> hepatic_tumor_load_class(10.0), hepatic_tumor_load_class(10.4), hepatic_tumor_load_class(50.5)
('<=10', '11-25', '>50')
>>> round(tumor_burden_percent(150.0, 1500.0), 6)
10.0
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

from hepavol.errors import InputError
from hepavol.response.recist import to_decimal

__all__ = [
    "LOAD_CLASSES",
    "hepatic_tumor_load_class",
    "hepatic_tumor_load_class_from_volumes",
    "tumor_burden_percent",
]

LOAD_CLASSES = ("<=10", "11-25", "26-50", ">50")
"""Class labels in increasing order; upper bounds 10, 25, 50, 100 percent (inclusive)."""
_UPPER = (Fraction(10), Fraction(25), Fraction(50))

Number = float | int | Decimal | str


def _burden(tumor_volume_ml: Number, liver_volume_ml: Number) -> Fraction:
    tumor, liver = Fraction(to_decimal(tumor_volume_ml)), Fraction(to_decimal(liver_volume_ml))
    if liver <= 0:
        raise InputError(f"liver volume must be > 0, got {liver_volume_ml}; check the liver segmentation")
    if tumor < 0:
        raise InputError(f"tumour volume must be >= 0, got {tumor_volume_ml}")
    if tumor > liver:
        raise InputError(
            f"tumour volume {tumor_volume_ml} exceeds liver volume {liver_volume_ml}; the liver volume must "
            "include the tumours (whole organ)"
        )
    return tumor * 100 / liver


def tumor_burden_percent(tumor_volume_ml: Number, liver_volume_ml: Number) -> float:
    """Tumour volume as a percentage of the whole-liver volume (both in the same unit).

    Raises
    ------
    InputError
        Liver volume not above 0, negative tumour volume, tumour volume above the liver volume.
    """
    return float(_burden(tumor_volume_ml, liver_volume_ml))


def hepatic_tumor_load_class(percent: Number) -> str:
    """The hepatic tumour load class of a percentage: ``<=10``, ``11-25``, ``26-50`` or ``>50``.

    Upper bounds inclusive, exact comparison (see the module docstring for 10.4 %).

    >>> [hepatic_tumor_load_class(p) for p in (0, 25, 25.01, 50, "50.1")]
    ['<=10', '11-25', '26-50', '26-50', '>50']
    """
    value = Fraction(to_decimal(percent))
    if value < 0 or value > 100:
        raise InputError(f"a tumour load percentage must be within 0-100, got {percent}")
    for label, upper in zip(LOAD_CLASSES, _UPPER):
        if value <= upper:
            return label
    return LOAD_CLASSES[-1]


def hepatic_tumor_load_class_from_volumes(tumor_volume_ml: Number, liver_volume_ml: Number) -> str:
    """The class of ``tumor_volume_ml / liver_volume_ml``, decided on the exact ratio (no float rounding).

    >>> hepatic_tumor_load_class_from_volumes(150, 1500), hepatic_tumor_load_class_from_volumes(150.1, 1500)
    ('<=10', '11-25')
    """
    value = _burden(tumor_volume_ml, liver_volume_ml)
    for label, upper in zip(LOAD_CLASSES, _UPPER):
        if value <= upper:
            return label
    return LOAD_CLASSES[-1]
