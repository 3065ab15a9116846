"""The learned entropy model of the bounded codec: it pays where objects depend on each other, it decodes the
same everywhere (threads, no torch), and neither a useless nor a damaged model can produce wrong values."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hepae
from hepae.codecs import entropy, learned
from hepae.codecs.bounded import BoundBounded, Bounded
from hepae.codecs.bounds import ErrorBound
from hepae.entropy_models import fit_entropy_model
from hepae.errors import CodecError, ModelFormatError, SchemaValidationError
from roundtrip_checks import decoded_digests, stream_digest

COLUMNS = ["pt", "eta", "phi", "m"]
BOUNDS = [ErrorBound("pt", "rel", 1e-3), ErrorBound("eta", "abs", 1e-3), ErrorBound("phi", "abs", 1e-3),
          ErrorBound("m", "rel", 1e-3)]


FIXTURES = Path(__file__).parent / "data" / "learned1"


def _fixture_script():
    """``tests/data/learned1/make_fixtures.py``, whose generator the committed fixture was written with."""
    spec = importlib.util.spec_from_file_location("learned1_fixtures", FIXTURES / "make_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_script = _fixture_script()
dijets = _script.dijets  # jets in events of 1-4, the second back to back with the first in phi, close in pT


@pytest.fixture(scope="module")
def model() -> learned.EntropyModel:
    x, counts = dijets(3000, seed=1)
    return fit_entropy_model(x, counts, BOUNDS, iterations=150)


def _coded(x, counts, model=None):
    codec = Bounded(BOUNDS, entropy_model=model).bind(COLUMNS, np.float32)
    return codec, codec.encode(x, counts)


def test_the_model_codes_what_the_hand_built_parts_cannot_see_in_fewer_bytes(model):
    assert "phi" in model.columns and model.trained_on["held_out_bits_saved"]["phi"] > 0
    x, counts = dijets(3000, seed=2)  # another sample than the one trained on
    _, without = _coded(x, counts)
    codec, streams = _coded(x, counts, model)
    chunk = learned.LearnedChunk.read(streams["learned"], codec._learned, counts, len(x))
    assert chunk.uses(COLUMNS.index("phi"))
    assert sum(map(len, streams.values())) < 0.98 * sum(map(len, without.values()))  # 2.7 % when written
    decoded = codec.decode(streams, counts)
    for j, b in enumerate(BOUNDS):
        limit = b.value * (np.abs(x[:, j].astype(np.float64)) if b.kind == "rel" else 1.0)
        assert (np.abs(decoded[:, j].astype(np.float64) - x[:, j]) <= limit).all(), b


def test_encoding_twice_gives_the_same_bytes_and_another_codec_decodes_the_same_values(model):
    x, counts = dijets(500, seed=3)
    first, second = _coded(x, counts, model)[1], _coded(x, counts, model)[1]
    assert first.keys() == second.keys() and all(np.array_equal(first[k], second[k]) for k in first)
    a = Bounded(BOUNDS, entropy_model=model).bind(COLUMNS, np.float32).decode(first, counts)
    config = json.loads(json.dumps(Bounded(BOUNDS, entropy_model=model).get_config()))  # as read from a file
    b = hepae.codecs.get_codec(config).bind(COLUMNS, np.float32).decode(first, counts)
    assert a.tobytes() == b.tobytes()


def test_a_model_is_checked_by_its_checksum_and_schema(model, tmp_path):
    path = model.save(tmp_path / "m.json")
    assert repr(learned.load_entropy_model(path)) == repr(model)
    assert Bounded(BOUNDS, entropy_model=path) == Bounded(BOUNDS, entropy_model=str(path)) \
        == Bounded(BOUNDS, entropy_model=model)  # a path, its text or the model: the same codec
    with pytest.raises(CodecError, match="entropy_model must be"):
        Bounded(BOUNDS, entropy_model=42)
    document = json.loads(path.read_text())
    document["columns"][0]["location"]["b2"] += 1  # one integer edited
    path.write_text(json.dumps(document))
    with pytest.raises(ModelFormatError, match="checksum does not match"):
        learned.load_entropy_model(path)
    with pytest.raises(ModelFormatError, match="checksum does not match"):
        Bounded(BOUNDS, entropy_model=document)  # the same check on a model read from a file's metadata
    document["columns"][0]["location"]["hidden"] = 99
    path.write_text(json.dumps(document))
    with pytest.raises(SchemaValidationError, match="hidden"):
        learned.load_entropy_model(path)
    (tmp_path / "junk.json").write_text("{")
    with pytest.raises(ModelFormatError, match="not an entropy model"):
        learned.load_entropy_model(tmp_path / "junk.json")


def test_damaged_per_chunk_integers_are_refused(model):
    x, counts = dijets(3000, seed=4)
    codec, streams = _coded(x, counts, model)
    header, used, rows, multipliers = hepae.codecs.entropy.unpack_arrays(streams["learned"])
    assert len(used)
    rows = rows.reshape(-1, 5)
    rows[0, 2] = 99  # a class width no encoder writes
    damaged = dict(streams, learned=hepae.codecs.entropy.pack_arrays([header, used, rows.ravel(), multipliers]))
    with pytest.raises(CodecError, match="out of range"):
        codec.decode(damaged, counts)
    newer = dict(streams, learned=hepae.codecs.entropy.pack_arrays([header + [1, 0], used, rows.ravel(), multipliers]))
    with pytest.raises(hepae.errors.UnknownLayoutError, match="layout 2"):
        codec.decode(newer, counts)
    with pytest.raises(CodecError, match="learned-model part"):
        codec.decode({k: v for k, v in streams.items() if k != "learned"}, counts)


def _useless_choice(rng: np.random.Generator):
    """A replacement of ``learned.choose`` that takes random networks and integers for every column: the size
    may grow, the values must not change."""
    def choose(models, bounds, margin, steps, flags, hand_built, hand_tokens, hand_classes, counts):
        others, rank = learned.event_context(counts, len(steps))
        columns = []
        for j, entry in enumerate(models):
            if entry is None:
                columns.append(None)
                continue
            column_model, source, feature_columns = entry
            coded = steps[~flags[j], j]
            low, width = (int(coded.min()), int(coded.max() - coded.min()) + 1) if len(coded) and j % 2 else (0, 0)
            columns.append(learned.LearnedColumn(column_model, source, feature_columns,
                                                 rng.integers(-2**31, 2**31, len(source)),
                                                 int(rng.integers(0, 2**34)), int(rng.integers(-2**40, 2**40)),
                                                 int(rng.integers(0, 41)), low, width))
        return learned.LearnedChunk(columns, others, rank)
    return choose


def _random_model(rng: np.random.Generator) -> learned.EntropyModel:
    def network(inputs):
        return learned.IntegerNetwork(rng.integers(-32767, 32768, (8, inputs)), rng.integers(-2**31, 2**31, 8),
                                      int(rng.integers(0, 20)), rng.integers(-32767, 32768, 8),
                                      int(rng.integers(-2**28, 2**28)), int(rng.integers(0, 21)))
    columns = {}
    for j, name in enumerate(COLUMNS):
        features = tuple((s, COLUMNS[c], BOUNDS[c].kind, 0.5) for s, c in
                         [("object", c) for c in range(j)] + [("leading", j), ("previous", j)])[:learned.MAX_FEATURES]
        columns[name] = learned.ColumnModel(name, BOUNDS[j].kind, 1.0, features, network(2 + len(features)),
                                            network(2 + len(features)))
    return learned.EntropyModel(columns, {"note": "random weights"})


def _keep_every_column(chunk, steps, flags, hand_built, hand_tokens, hand_classes):
    """A replacement of ``learned.confirm`` that keeps every column :func:`_useless_choice` took."""
    tokens = [chunk.tokens(steps, j, flags[j], hand_built[j]) if chunk.uses(j) else t
              for j, t in enumerate(hand_tokens)]
    return tokens, {}


special = st.sampled_from([0.0, -0.0, np.nan, np.inf, -np.inf, 1e-45, -1e-45, 1e-38, 3e38, -3e38, 1.0, -1.0])
values = st.one_of(st.floats(-1e6, 1e6, width=32), special)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(values, values, values, values), min_size=1, max_size=60),
       st.lists(st.integers(0, 4), min_size=1, max_size=30), st.integers(0, 2**32))
def test_bounds_hold_with_a_useless_model_in_the_loop(monkeypatch, rows, sizes, seed):
    rng = np.random.default_rng(seed)
    monkeypatch.setattr(learned, "choose", _useless_choice(rng))
    monkeypatch.setattr(learned, "confirm", _keep_every_column)
    monkeypatch.setattr(BoundBounded, "ordered_choice", lambda *args: [])  # it would take sorted columns from the model
    x = np.array(rows, np.float32)
    counts = np.array(sizes, np.int64)
    counts = counts[np.cumsum(counts) <= len(x)]
    x = x[:int(counts.sum())]
    codec = Bounded(BOUNDS, entropy_model=_random_model(rng)).bind(COLUMNS, np.float32)
    streams = codec.encode(x, counts)
    chunk = learned.LearnedChunk.read(streams["learned"], codec._learned, counts, len(x))
    assert all(chunk.uses(j) for j in range(len(COLUMNS)))  # every column decoded through the random networks
    decoded = Bounded(BOUNDS, entropy_model=codec.codec.entropy_model).bind(COLUMNS, np.float32).decode(streams, counts)
    for j, b in enumerate(BOUNDS):
        a, r = x[:, j].astype(np.float64), decoded[:, j].astype(np.float64)
        same = (a == r) | (np.isnan(a) & np.isnan(r))
        with np.errstate(invalid="ignore"):
            assert (same | (np.abs(r - a) <= b.value * (np.abs(a) if b.kind == "rel" else 1.0))).all(), b


def test_a_chunk_codes_sorted_columns_as_order_statistics_beside_learned_ones(model):
    """Jets sorted by pT: pT as order statistics, phi (back to back) by the model, in one chunk; every value within
    its bound, and the same values from a codec built afresh from the configuration."""
    x, counts = dijets(12_000, seed=2)  # sorted, the back-to-back pairs are rarer: more events for the model to pay
    x = x[np.lexsort((-x[:, 0], np.repeat(np.arange(len(counts)), counts)))]
    codec, streams = _coded(x, counts, model)
    chunk = learned.LearnedChunk.read(streams["learned"], codec._learned, counts, len(x))
    assert chunk.uses(COLUMNS.index("phi")) and not chunk.uses(0)
    assert entropy.unpack_arrays(entropy.unpack_arrays(streams["coded"])[14])[1].tolist() == [0]  # pt
    decoded = Bounded(BOUNDS, entropy_model=codec.codec.entropy_model).bind(COLUMNS, np.float32).decode(streams, counts)
    for j, b in enumerate(BOUNDS):
        a, r = x[:, j].astype(np.float64), decoded[:, j].astype(np.float64)
        assert (np.abs(r - a) <= b.value * (np.abs(a) if b.kind == "rel" else 1.0)).all(), b


def _write_dijet_file(path, seed):
    """A 4D jet file in the xAOD layout whose jets are :func:`dijets`."""
    return _script.write_sample(path, 800, seed)


def test_a_file_decodes_to_the_same_values_with_one_or_two_threads_and_without_torch(tmp_path, model):
    train = _write_dijet_file(tmp_path / "train.root", seed=11)
    source = _write_dijet_file(tmp_path / "in.root", seed=12)
    bounds = [f"{b.column}={b.kind}:{b.value:g}" for b in BOUNDS]
    hepae_cli = [sys.executable, "-m", "hepae"]
    run = subprocess.run([*hepae_cli, "train-entropy", str(train), "-o", str(tmp_path / "m.json"), "--features",
                          "atlas-jets-4d", "--iterations", "100", *[a for b in bounds for a in ("--error-bound", b)]],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "entropy model for" in run.stdout
    outputs = []
    for name in ("a", "b"):  # encoding twice: the same chunks
        run = subprocess.run([*hepae_cli, "compress", str(source), "-o", str(tmp_path / f"{name}.root"), "--codec",
                              "bounded", "--features", "atlas-jets-4d", "--entropy-model", str(tmp_path / "m.json"),
                              *[a for b in bounds for a in ("--error-bound", b)]], capture_output=True, text=True,
                             timeout=600)
        assert run.returncode == 0, run.stderr[-2000:]
        outputs.append(stream_digest(tmp_path / f"{name}.root"))
    assert outputs[0] == outputs[1]
    inspected = subprocess.run([*hepae_cli, "inspect", str(tmp_path / "a.root")], capture_output=True, text=True)
    assert "<learned:" in inspected.stdout and "learned entropy model" in inspected.stdout
    assert len(decoded_digests(tmp_path / "a.root", tmp_path)) == 1


def test_a_file_compressed_twice_holds_the_same_streams(tmp_path, model):
    source = _write_dijet_file(tmp_path / "in.root", seed=13)
    codec = Bounded(BOUNDS, entropy_model=model)
    for name in ("a", "b"):
        hepae.compress(source, tmp_path / f"{name}.root", codec=codec, featureset="atlas-jets-4d", progress=False)
    assert stream_digest(tmp_path / "a.root") == stream_digest(tmp_path / "b.root")
    _, plain = _coded(*dijets(10, 0))
    assert "learned" not in plain  # without a model, chunks are written as before


def test_a_column_under_another_bound_kind_does_not_use_the_model(model):
    bounds = [replace(b, kind="rel") if b.column == "phi" else b for b in BOUNDS]
    codec = Bounded(bounds, entropy_model=model).bind(COLUMNS, np.float32)
    assert codec._learned[COLUMNS.index("phi")] is None


def test_steps_are_taken_modulo_a_range_that_holds_the_whole_chunk(model, monkeypatch):
    """The choice looks at the chunk's first rows only; the range a column's steps are taken modulo must still
    hold every row (here phi stays within +-3 in the rows the choice looks at and reaches pi after them)."""
    monkeypatch.setattr(learned, "_SELECT_ROWS", 1500)
    x, counts = dijets(3000, seed=5)
    x[:1500, 2] = np.clip(x[:1500, 2], -3.0, 3.0)
    x[-1, 2] = np.float32(np.pi)
    codec, streams = _coded(x, counts, model)
    chunk = learned.LearnedChunk.read(streams["learned"], codec._learned, counts, len(x))
    wrapped = [j for j, c in enumerate(chunk.columns) if c is not None and c.width > 0]
    assert wrapped  # phi is coded modulo its range
    decoded = codec.decode(streams, counts)
    for j, b in enumerate(BOUNDS):
        limit = b.value * (np.abs(x[:, j].astype(np.float64)) if b.kind == "rel" else 1.0)
        assert (np.abs(decoded[:, j].astype(np.float64) - x[:, j]) <= limit).all(), b
