"""Training: stream a feature set from ROOT files, fit the normalization on the training split only,
and train an autoencoder with AdamW + one-cycle LR on MSE, keeping the best epoch on validation.

The train/validation split is by event and deterministic: an event goes to validation when a hash of
(seed, file index, entry number) falls below ``val_fraction``, whatever the chunking. Data that fit
in ``max_cached_objects`` are kept in memory after the first pass; larger inputs are re-streamed each
epoch (files in a new random order, objects shuffled within chunks), so memory does not grow with the
input size.

Launched by ``torchrun`` (``WORLD_SIZE`` > 1), training is distributed data-parallel
(:class:`torch.nn.parallel.DistributedDataParallel`, gloo on CPU, nccl on GPU): each rank trains on
its own share of the training events (another hash), every rank fits the normalization on the whole
training split and evaluates the whole validation split, so all ranks end with the same model::

    torchrun --standalone --nproc_per_node=4 -m hepae train data/*.root --features atlas-jets-4d -o m.hepae
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import time
from collections.abc import Iterator, Sequence
from os import PathLike

import numpy as np
import torch

from hepae.errors import TrainingError
from hepae.features import FeatureSet, load_featureset
from hepae.io.sources import DEFAULT_STEP_SIZE
from hepae.io.tensors import CollectionChunk, iterate_collection
from hepae.ml.defaults import DEFAULTS
from hepae.ml.devices import resolve_device
from hepae.ml.model import HepaeModel
from hepae.ml.networks import ArchSpec, Autoencoder
from hepae.progress import progress_bar
from hepae.transforms import ColumnTransform


def event_hash(seed: int, file_index: int, entries: np.ndarray) -> np.ndarray:
    """A uniform number in [0, 1) per event, from (seed, file index, entry) only (splitmix64)."""
    with np.errstate(over="ignore"):
        salt = np.uint64(seed * 0x9E3779B97F4A7C15 % 2**64)
        z = (entries.astype(np.uint64) | (np.uint64(file_index) << np.uint64(40))) ^ salt
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / 2.0**53


def event_in_validation(seed: int, file_index: int, entries: np.ndarray, val_fraction: float) -> np.ndarray:
    """Deterministic per-event split: True where the event belongs to the validation set."""
    return event_hash(seed, file_index, entries) < val_fraction


def event_rank(seed: int, file_index: int, entries: np.ndarray, world_size: int) -> np.ndarray:
    """Which data-parallel rank trains on each event (independent of the validation split)."""
    return np.minimum((event_hash(seed + 0x5EED, file_index, entries) * world_size).astype(np.int64), world_size - 1)


@contextlib.contextmanager
def distributed_context(device: torch.device):
    """Yield ``(rank, world_size)``; under torchrun, join (and finally leave) the process group."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        yield 0, 1
        return
    import torch.distributed as dist

    created = not dist.is_initialized()
    if created:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield dist.get_rank(), dist.get_world_size()
    finally:
        if created:
            dist.destroy_process_group()


class _Split:
    """Training and validation objects of the inputs, cached in memory or re-streamed from files."""

    def __init__(self, inputs, featureset: FeatureSet, normalization: ColumnTransform, *, seed: int,
                 val_fraction: float, step_size, max_cached_objects: int, batch_size: int,
                 rank: int = 0, world_size: int = 1):
        self.inputs, self.featureset, self.normalization = inputs, featureset, normalization
        self.seed, self.val_fraction, self.step_size, self.batch_size = seed, val_fraction, step_size, batch_size
        self.rank, self.world_size = rank, world_size
        self.n_train = self.n_val = self.n_events = self.n_batches = self.n_train_rank = 0
        cache: dict[str, list[np.ndarray]] | None = {"train": [], "val": []}
        for chunk in iterate_collection(inputs, featureset, step_size):  # pass 1: fit, count, maybe cache
            normalization.check_domain(chunk.values, where=f"training input {inputs[chunk.file_index]}")
            train, val, mine = self._split(chunk)
            normalization.partial_fit(train)  # every rank fits on the whole training split: same result
            self.n_train += len(train)
            self.n_val += len(val)
            self.n_train_rank += len(mine)
            self.n_events += len(chunk.counts)
            self.n_batches += self._count_batches(len(mine))
            if cache is not None:
                cache["train"].append(mine)
                cache["val"].append(val)
                if self.n_train_rank + self.n_val > max_cached_objects:
                    cache = None
        if self.n_train < 2:
            raise TrainingError(
                f"only {self.n_train} training object(s) in {len(inputs)} input file(s); need at least 2"
            )
        self.cached = cache is not None
        if cache is not None:
            self._train = normalization.transform(np.concatenate(cache["train"]))
            self._val = normalization.transform(np.concatenate(cache["val"]))
            self.n_batches = self._count_batches(self.n_train_rank)
        if world_size > 1:  # every rank must run the same number of steps, or DDP waits forever
            import torch.distributed as dist

            steps = torch.tensor([self.n_batches], dtype=torch.int64)
            dist.all_reduce(steps, op=dist.ReduceOp.MIN)
            self.n_batches = int(steps.item())
            if self.n_batches == 0:
                raise TrainingError(f"rank {rank} of {world_size} got too few training objects for one batch")

    def _split(self, chunk: CollectionChunk) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(training objects, validation objects, this rank's share of the training objects)."""
        entries = np.arange(chunk.entry_start, chunk.entry_start + len(chunk.counts))
        in_val = np.repeat(event_in_validation(self.seed, chunk.file_index, entries, self.val_fraction), chunk.counts)
        train = chunk.values[~in_val]
        if self.world_size == 1:
            return train, chunk.values[in_val], train
        rank = np.repeat(event_rank(self.seed, chunk.file_index, entries, self.world_size), chunk.counts)
        return train, chunk.values[in_val], chunk.values[~in_val & (rank == self.rank)]

    def _count_batches(self, n: int) -> int:
        full, rest = divmod(n, self.batch_size)
        return full + (1 if rest >= 2 else 0)  # BatchNorm cannot train on a batch of one

    def _chunks(self, which: str, generator: torch.Generator | None = None) -> Iterator[np.ndarray]:
        if self.cached:
            yield self._train if which == "train" else self._val
            return
        order = range(len(self.inputs))
        if generator is not None and len(self.inputs) > 1:  # a new file order every epoch
            order = torch.randperm(len(self.inputs), generator=generator).tolist()
        for file_index in order:
            for chunk in iterate_collection([self.inputs[file_index]], self.featureset, self.step_size):
                chunk.file_index = file_index
                _, val, mine = self._split(chunk)
                yield self.normalization.transform(mine if which == "train" else val)

    def train_batches(self, generator: torch.Generator) -> Iterator[torch.Tensor]:
        """Shuffled batches, exactly ``n_batches`` of them (BatchNorm cannot train on one object)."""
        produced = 0
        for values in self._chunks("train", generator):
            data = torch.from_numpy(values)
            order = torch.randperm(len(data), generator=generator)
            for start in range(0, len(data), self.batch_size):
                batch = data[order[start:start + self.batch_size]]
                if len(batch) >= 2:
                    if produced == self.n_batches:
                        return
                    produced += 1
                    yield batch

    def val_batches(self) -> Iterator[torch.Tensor]:
        for values in self._chunks("val"):
            data = torch.from_numpy(values)
            for start in range(0, len(data), 65_536):
                yield data[start:start + 65_536]


def _optimizer(network: torch.nn.Module, max_lr: float, weight_decay: float) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for module in network.modules():
        for name, parameter in module.named_parameters(recurse=False):
            is_bn = isinstance(module, torch.nn.modules.batchnorm._BatchNorm)
            (no_decay if is_bn or name == "bias" else decay).append(parameter)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=max_lr, betas=(0.9, 0.99))


def _mean_loss(network: torch.nn.Module, batches: Iterator[torch.Tensor], device: torch.device) -> float:
    total, count = 0.0, 0
    network.eval()
    with torch.no_grad():
        for batch in batches:
            batch = batch.to(device)
            total += float(torch.nn.functional.mse_loss(network(batch), batch, reduction="sum"))
            count += batch.numel()
    return total / count if count else float("nan")


def _latent_std(encoder: torch.nn.Module, batches: Iterator[torch.Tensor]) -> list[float]:
    """Standard deviation of each latent dimension (sets the codec's quantization steps)."""
    n, total, total2 = 0, 0.0, 0.0
    encoder.eval()
    with torch.no_grad():
        for batch in batches:
            z = encoder(batch).double()
            n += len(z)
            total = total + z.sum(dim=0)
            total2 = total2 + (z * z).sum(dim=0)
    if n == 0:
        return []
    mean = total / n
    return [float(v) for v in torch.sqrt(torch.clamp(total2 / n - mean * mean, min=0.0))]


def train(
    inputs: str | PathLike[str] | Sequence[str | PathLike[str]],
    featureset: str | FeatureSet = "atlas-jets-4d",
    *,
    latent: int = DEFAULTS["latent"],
    arch: str = DEFAULTS["arch"],
    hidden: Sequence[int] | None = None,
    normalization: str = DEFAULTS["normalization"],
    epochs: int = DEFAULTS["epochs"],
    batch_size: int = DEFAULTS["batch_size"],
    max_lr: float = DEFAULTS["max_lr"],
    weight_decay: float = DEFAULTS["weight_decay"],
    val_fraction: float = DEFAULTS["val_fraction"],
    seed: int = DEFAULTS["seed"],
    step_size: int | str = DEFAULT_STEP_SIZE,
    max_cached_objects: int = 20_000_000,
    device: str = "auto",
    progress: bool | None = None,
) -> HepaeModel:
    """Train an autoencoder on the feature set's collection in ``inputs`` (one or several ROOT files).

    Under ``torchrun`` the run is distributed data-parallel (see the module docstring); every rank
    returns the same model.

    Parameters
    ----------
    inputs : path-like or sequence of path-like
        ROOT file path(s); the feature set's tree and branches must be in each.
    featureset : str, path or FeatureSet
        Built-in name, JSON path or :class:`FeatureSet`.
    latent : int
        Latent dimension per object.
    arch : str
        ``"AE_3D_200"`` (tanh, default) or ``"AE_bn_LeakyReLU"``.
    hidden : sequence of int, optional
        Override the hidden layer sizes (encoder side; the decoder mirrors them).
    normalization : str
        ``"featureset"`` (per-column configs of the feature set, the seed's custom ones for the
        built-ins), ``"standard"`` or ``"quantile"`` (fitted on the training split).
    epochs, batch_size, max_lr, weight_decay : int, int, float, float
        AdamW with a one-cycle schedule peaking at ``max_lr``.
    val_fraction : float
        Fraction of *events* held out for validation and best-epoch selection.
    seed : int
        Makes the split, the initialisation and the shuffling reproducible.
    step_size : int or str
        Chunk size for reading (entries or e.g. ``"50 MB"``).
    max_cached_objects : int
        Objects kept in memory between epochs; more are re-read from the files.
    device : str
        ``"auto"`` (CUDA if available), ``"cpu"`` or ``"cuda"``.
    progress : bool, optional
        A progress bar (default: only when stderr is a terminal).

    Returns
    -------
    HepaeModel
        A :class:`HepaeModel` holding the best-on-validation weights and a training summary.
    """
    started = time.perf_counter()
    featureset = load_featureset(featureset)
    paths = [inputs] if isinstance(inputs, (str, PathLike)) else list(inputs)
    if epochs < 1 or batch_size < 2:
        raise TrainingError(f"need epochs >= 1 and batch_size >= 2 (got {epochs}, {batch_size})")
    if not 0.0 <= val_fraction < 1.0:
        raise TrainingError(f"val_fraction must be in [0, 1) (got {val_fraction})")
    torch_device = resolve_device(device)
    with distributed_context(torch_device) as (rank, world_size):
        if world_size > 1 and torch_device.type == "cuda":
            torch_device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
        torch.manual_seed(seed)  # same initial weights on every rank
        spec = ArchSpec.named(arch, featureset.n_features, latent, list(hidden) if hidden else None)
        norm = featureset.make_normalization(normalization)
        data = _Split(paths, featureset, norm, seed=seed, val_fraction=val_fraction, step_size=step_size,
                      max_cached_objects=max_cached_objects, batch_size=batch_size, rank=rank, world_size=world_size)
        network = Autoencoder(spec).to(torch_device)
        trained = network
        if world_size > 1:
            trained = torch.nn.parallel.DistributedDataParallel(
                network, device_ids=[torch_device.index] if torch_device.type == "cuda" else None)
        optimizer = _optimizer(network, max_lr, weight_decay)
        total_steps = epochs * data.n_batches
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, total_steps=total_steps)
        generator = torch.Generator().manual_seed(seed + rank)
        history: list[dict[str, float]] = []
        best: tuple[float, int, dict[str, torch.Tensor]] | None = None
        bar = progress_bar(progress if rank == 0 else False, total=total_steps, unit="batch", dynamic_ncols=True,
                           desc=f"train {spec.layout}" + (f" x{world_size} ranks" if world_size > 1 else ""))
        try:
            for epoch in range(1, epochs + 1):
                trained.train()
                running, seen = 0.0, 0
                for batch in data.train_batches(generator):
                    batch = batch.to(torch_device)
                    loss = torch.nn.functional.mse_loss(trained(batch), batch)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    scheduler.step()
                    running += float(loss.detach()) * len(batch)
                    seen += len(batch)
                    bar.update(1)
                    if bar.n % 20 == 0:
                        bar.set_postfix(epoch=epoch, train=f"{running / seen:.3e}",
                                        val=f"{history[-1]['val_loss']:.3e}" if history else "-")
                train_loss = running / max(seen, 1)
                if not math.isfinite(train_loss):
                    raise TrainingError(f"training loss became {train_loss} in epoch {epoch}; try a smaller max_lr")
                val_loss = _mean_loss(network, data.val_batches(), torch_device) if data.n_val else train_loss
                history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss})
                bar.set_postfix(epoch=epoch, train=f"{train_loss:.3e}", val=f"{val_loss:.3e}")
                if best is None or val_loss < best[0]:
                    best = (val_loss, epoch, copy.deepcopy(network.state_dict()))
        finally:
            bar.close()
    assert best is not None
    network.load_state_dict(best[2])
    network.cpu().eval()
    latent_std = _latent_std(network.encoder, data.val_batches() if data.n_val else data.train_batches(
        torch.Generator().manual_seed(seed)))
    summary = {
        "inputs": [str(p) for p in paths],
        "arch": spec.name,
        "layout": spec.layout,
        "normalization": normalization,
        "epochs": epochs,
        "batch_size": batch_size,
        "max_lr": max_lr,
        "weight_decay": weight_decay,
        "optimizer": "AdamW(betas=(0.9, 0.99)) + OneCycleLR",
        "loss": "MSE (normalized space)",
        "val_fraction": val_fraction,
        "seed": seed,
        "n_events": data.n_events,
        "n_train_objects": data.n_train,
        "n_val_objects": data.n_val,
        "cached_in_memory": data.cached,
        "world_size": world_size,
        "steps_per_epoch": data.n_batches,
        "best_epoch": best[1],
        "best_val_loss": best[0],
        "latent_std": latent_std,
        "history": history,
        "seconds": round(time.perf_counter() - started, 3),
        "torch_version": torch.__version__,
        "device": str(torch_device),
    }
    return HepaeModel(network, featureset, norm, summary)
