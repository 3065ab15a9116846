"""Compress and decompress many ROOT files on a local Dask cluster, one task per file.

    python examples/many_files_dask.py --files 4 --workers 2

On a real cluster, pass the scheduler's address instead (``--scheduler tcp://host:8786``), or from
the shell: ``hepae compress-many 'data/*.root' -m model.hepae -o compressed/ --scheduler tcp://host:8786``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from distributed import Client, LocalCluster

import hepae


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default="hepae-many")
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--events", type=int, default=5000, help="events per file")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--scheduler", help="address of an existing Dask scheduler")
    args = parser.parse_args()

    workdir = Path(args.workdir)
    (workdir / "data").mkdir(parents=True, exist_ok=True)
    files = [hepae.make_sample(workdir / "data" / f"run{i:03d}.root", n_events=args.events, seed=i, overwrite=True)
             for i in range(args.files)]
    model = hepae.train(files, "atlas-jets-4d", epochs=args.epochs)  # streams from all files

    if args.scheduler:
        client = Client(args.scheduler)
    else:  # must run under `if __name__ == "__main__":`: workers are separate processes
        client = Client(LocalCluster(n_workers=args.workers, threads_per_worker=1, dashboard_address=":0",
                                     silence_logs=logging.ERROR))
    with client:
        packed = hepae.compress_many(str(workdir / "data" / "run*.root"), model, workdir / "compressed",
                                     client=client, resume=True)
        unpacked = hepae.decompress_many(str(workdir / "compressed" / "*.compressed.root"), workdir / "reco",
                                         client=client, resume=True)
        if not args.scheduler:
            client.cluster.close()
    for summary in (packed, unpacked):
        print(f"{summary['command']}: {summary['ok']} ok, {summary['skipped']} skipped, {summary['failed']} failed "
              f"in {summary['seconds']:.1f} s -> {summary['summary_file']}")


if __name__ == "__main__":
    main()
