"""decompress: a compressed ROOT file in; out, the original table with its branch names, jagged
structure and dtypes (reconstructed values for the compressed collection, all else identical), as a
TTree or RNTuple like the input, or as DarkMachines CSV lines if the input was a CSV file.

A short driver: verified chunk (:class:`hepae.container.ContainerReader`) -> decode it
(:mod:`hepae.codecs`) -> write it (:mod:`hepae.io`). Files whose chunks need no network never import torch.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import uproot

from hepae.container import ContainerReader
from hepae.errors import ContainerFormatError, OutputFileError
from hepae.io.branches import BranchSpec
from hepae.io.darkmachines import CSVTableWriter
from hepae.io.prefetch import prefetched
from hepae.io.sources import CSV_SUFFIXES, PathArg, Source
from hepae.io.writing import DEFAULT_COMPRESSION, atomic_output, declare_classes, make_writer, parse_compression
from hepae.progress import progress_bar


def verify(input: PathArg) -> dict[str, Any]:
    """Check every checksum of a compressed file (metadata, embedded decoder, every chunk, carried
    objects) without decoding it; returns the metadata. :class:`ContainerFormatError` if anything is damaged."""
    with ContainerReader(input) as reader:
        reader.verify()
        return reader.metadata


@contextlib.contextmanager
def _output_writer(tmp: Path, text_output: bool, source: Source, specs: list[BranchSpec],
                   compression: str, carried_classes: Callable[[uproot.WritableDirectory], None] | None
                   ) -> Iterator[tuple[Any, uproot.WritableDirectory | None]]:
    """The table's writer, and the ROOT file (``None`` for CSV output) for the carried objects, whose classes
    (``carried_classes`` writes one of each) are declared before the table."""
    if text_output:
        with open(tmp, "w", encoding="utf-8", newline="\n") as handle:
            yield CSVTableWriter(handle), None
        return
    with uproot.recreate(tmp, compression=parse_compression(compression, threads=True)) as file:
        if carried_classes is not None:
            declare_classes(file, carried_classes)
        yield make_writer(file, source.storage, source.name, specs, title=source.title), file


def decompress(
    input: PathArg,
    output: PathArg,
    *,
    compression: str = DEFAULT_COMPRESSION,
    overwrite: bool = False,
    device: str = "auto",
    progress: bool | None = None,
) -> dict[str, Any]:
    """Rebuild the original table from a compressed file, using only that file.

    The output is ROOT (a TTree or an RNTuple, as the input was), or, for a file compressed from
    DarkMachines CSV and an ``output`` ending in ``.csv``, CSV lines in the original format.
    It works through the compressed file's chunks (as compression wrote them), so its memory use is
    that of compression's ``step_size``. Checksums of the embedded decoder and of all the data are
    verified; on a mismatch (or any other failure) no output file is left behind. The decoder runs on
    ``device`` (``"auto"``: CUDA if available). ``progress``: a progress bar (default: only on a
    terminal). Returns a summary dict.
    """
    started = time.perf_counter()
    input, output = Path(input), Path(output)
    text_output = output.suffix.lower() in CSV_SUFFIXES
    with ContainerReader(input) as reader:
        metadata = reader.metadata
        if text_output and reader.source_format != "darkmachines-csv":
            raise OutputFileError(
                f"{output}: CSV output is for files compressed from DarkMachines CSV; {input} was compressed from a "
                f"{reader.source_format} (write a .root file)"
            )
        codec = reader.bound_codec(device)
        source = reader.table
        n_objects = n_events = n_chunks = 0
        with atomic_output(output, overwrite=overwrite, inputs=[input]) as tmp:
            with _output_writer(tmp, text_output, source, reader.branches, compression,
                                None if text_output else reader.carried_classes()) as (writer, file):
                with progress_bar(progress, total=source.num_entries, unit="event",
                                  desc=f"decompress {input.name}") as bar:
                    decoded = prefetched((chunk, *reader.decode_chunk(chunk, codec, csv_decimals=text_output))
                                         for chunk in reader.chunks())  # the next chunk decodes while one is written
                    with contextlib.closing(decoded):
                        for chunk, data, chunk_objects in decoded:
                            writer.extend(data)  # a full output disk is not damaged input
                            n_objects += chunk_objects
                            n_events += chunk.n_events
                            n_chunks += 1
                            bar.update(chunk.n_events)
                expected_objects = metadata["collection"]["n_objects"] if reader.has_collection else 0
                if n_events != metadata["source"]["num_entries"] or n_objects != expected_objects:
                    raise ContainerFormatError(
                        f"{input}: holds {n_events} events / {n_objects} objects, metadata says "
                        f"{metadata['source']['num_entries']} / {expected_objects}"
                    )
                if file is not None:  # the input file's other objects, checked as they are copied
                    reader.copy_objects_to(file)
    seconds = time.perf_counter() - started
    return {
        "input": str(input),
        "output": str(output),
        "format": "darkmachines-csv" if text_output else source.storage,
        "n_events": n_events,
        "n_objects": n_objects,
        "units": [u["name"] for u in reader.units],
        "chunks": n_chunks,
        "output_bytes": output.stat().st_size,
        "seconds": round(seconds, 3),
        "objects_per_second": round(n_objects / seconds, 1) if seconds > 0 else None,
    }
