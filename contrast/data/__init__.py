"""Datasets and the LightningDataModule."""

from contrast.data.files import DataNotFoundError
from contrast.data.module import ContrastiveData
from contrast.data.paired import PairedData
from contrast.data.shapes import generate_shapes
from contrast.data.sources import load_split

__all__ = ["ContrastiveData", "PairedData", "DataNotFoundError", "generate_shapes", "load_split"]
