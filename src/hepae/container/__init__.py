"""The compressed file: its layout and names (:mod:`~hepae.container.format`), its one writer
(:mod:`~hepae.container.writer`) and its one reader (:mod:`~hepae.container.reader`).

The byte-level description is ``docs/format.md``. Nothing here imports torch: the embedded decoder is
loaded only by :meth:`ContainerReader.decoder`.
"""

from hepae.container.format import CONTAINER_FORMAT_VERSION
from hepae.container.reader import Chunk, ContainerReader, is_container
from hepae.container.writer import ContainerWriter

__all__ = ["CONTAINER_FORMAT_VERSION", "Chunk", "ContainerReader", "ContainerWriter", "is_container"]
