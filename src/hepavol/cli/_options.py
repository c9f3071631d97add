"""Command-line options shared by the commands that read a segmentation (one definition, the same help)."""

from __future__ import annotations

import argparse


def add_label_options(parser: argparse.ArgumentParser, *, lesion_options: bool = True) -> None:
    """``--liver-label`` and ``--tumor-label``; with ``lesion_options`` also ``--instances`` and ``--connectivity``."""
    parser.add_argument("--liver-label", type=int, default=1, metavar="N", help="label of the liver (default 1)")
    parser.add_argument(
        "--tumor-label",
        type=int,
        action="append",
        metavar="N",
        help="label of tumour voxels; repeat for several (default 2)",
    )
    if lesion_options:
        parser.add_argument(
            "--instances", action="store_true", help="every label other than 0 and the liver label is one lesion"
        )
        parser.add_argument(
            "--connectivity",
            type=int,
            choices=(6, 18, 26),
            default=26,
            help="voxel connectivity of lesions (default 26)",
        )
