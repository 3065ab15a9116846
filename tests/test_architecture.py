"""The shape of the code: layers along the data path, light imports, codecs that are their config.

* lower packages never import higher ones (the import-linter contracts in ``pyproject.toml``);
* ``import hepae``, ``import hepae.codecs``, ``hepae inspect`` and decompressing a file whose chunks
  need no network never import torch (pipelines call these thousands of times);
* every registered codec and transform round-trips through its JSON config and through its data;
* codecs never change; registering a second codec under a taken id is refused;
* plotting leaves matplotlib's global state alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import hepae
from hepae.codecs import AE, Codec, ErrorBound, Lossless, get_codec, register_codec, registered_codecs, within_bound
from hepae.errors import CodecError, ContainerFormatError
from hepae.transforms import get_transform, transform_registry

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "dask", "distributed", "matplotlib")


def test_the_import_contracts_hold():
    from importlinter.cli import lint_imports

    assert lint_imports(config_filename=str(ROOT / "pyproject.toml")) == 0


def _imported_after(code: str) -> list[str]:
    """The heavy packages a fresh interpreter has imported after running ``code``."""
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys, json\n"
                          f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("code", ["import hepae", "import hepae.codecs", "import hepae.container",
                                  "import hepae.cli", "import hepae.decompression"])
def test_imports_stay_light(code):
    assert _imported_after(code) == []


def test_inspect_and_decompress_without_a_network_never_import_torch(samples, tmp_path):
    compressed = tmp_path / "c.root"
    hepae.compress(samples["atlas-jets-4d"], compressed, codec="truncate", featureset="atlas-jets-4d",
                   progress=False)
    inspect = f"from hepae.cli import main; assert main(['inspect', {str(compressed)!r}]) == 0"
    assert _imported_after(inspect) == []
    decompress = (f"import hepae; hepae.decompress({str(compressed)!r}, {str(tmp_path / 'r.root')!r}, "
                  "progress=False)")
    assert _imported_after(decompress) == []


CONFIGS = {
    "lossless": [{}],
    "truncate": [{"mantissa_bits": 7}],
    "ae": [{}, {"latent_bits": 9}, {"error_bounds": ["pt=rel:1e-3", "eta=abs:1e-3", "phi=abs:1e-3", "m=rel:1e-3"]},
           {"latent_bits": 0, "error_bounds": ["pt=rel:1e-2", "eta=abs:1e-2", "phi=abs:1e-2", "m=rel:1e-2"]}],
    "bounded": [{"error_bounds": ["pt=bits:10", "eta=abs:1e-3", "phi=abs:1e-3", "m=rel:1e-3"]},
                {"error_bounds": ["pt=rel:1e-1", "eta=abs:1.0", "phi=abs:1e-4", "m=bits:23"], "margin": 0.5}],
}
"""Settings tried for each registered codec: a codec registered without an entry here fails the test."""


@pytest.mark.parametrize("codec_id", sorted(registered_codecs()))
def test_every_registered_codec_round_trips_its_config_and_its_data(codec_id, models):
    assert codec_id in CONFIGS, f"add settings for the codec {codec_id!r} to CONFIGS"
    model = models["atlas-jets-4d"]
    rng = np.random.default_rng(1)
    n = 3000
    pt = 20e3 * rng.uniform(0, 1, n) ** -0.3
    values = np.stack([pt, rng.normal(0, 1.5, n), rng.uniform(-3, 3, n), 0.1 * pt * rng.lognormal(0, 0.1, n)],
                      axis=1).astype(np.float32)
    counts = np.full(n // 3, 3)
    for settings in CONFIGS[codec_id]:
        codec = get_codec({"id": codec_id, **settings})
        config = json.loads(json.dumps(codec.get_config()))
        assert get_codec(config) == codec and hash(get_codec(config)) == hash(codec)
        bound = codec.bind(model.featureset.column_names, np.float32, model if codec.needs_model else None)
        streams = bound.encode(values, counts)
        assert set(streams) == set(bound.stream_dtypes())
        decoded = bound.decode(streams, counts)
        assert decoded.shape == values.shape and decoded.dtype == np.float32
        if codec.exact:
            np.testing.assert_array_equal(decoded, values)
        for bound_spec in map(ErrorBound.parse, settings.get("error_bounds", [])):
            j = model.featureset.column_names.index(bound_spec.column)
            assert within_bound(values[:, j], decoded[:, j], bound_spec.kind, bound_spec.value).all()
        assert codec.get_config() == config  # encoding changed nothing in the codec


@pytest.mark.parametrize("transform_id", sorted(transform_registry))
def test_every_registered_transform_round_trips_its_config_and_its_data(transform_id):
    rng = np.random.default_rng(2)
    x = rng.uniform(1.0, 100.0, 500).astype(np.float32)
    transform = get_transform({"id": transform_id})
    if hasattr(transform, "fit"):
        transform.fit(x)
    again = get_transform(json.loads(json.dumps(transform.get_config())))
    np.testing.assert_array_equal(again.transform(x), transform.transform(x))
    np.testing.assert_allclose(again.inverse_transform(again.transform(x)), x, rtol=2e-6)


def test_a_codec_never_changes():
    codec = AE(latent_bits=6, error_bounds=["pt=rel:1e-3"])
    with pytest.raises(AttributeError, match="immutable"):
        codec.latent_bits = 8
    assert codec.get_config()["latent_bits"] == 6


def test_a_taken_codec_id_is_not_replaced_by_accident():
    class MyLossless(Lossless):
        pass

    with pytest.raises(CodecError, match="codec id 'lossless' is taken"):
        register_codec(MyLossless)
    assert registered_codecs()["lossless"] is Lossless

    class Other(Codec):
        codec_id = "test-architecture-other"

        def get_config(self):
            return {"id": self.codec_id}

    try:
        assert register_codec(Other) is Other and get_codec("test-architecture-other") == Other()
    finally:
        from hepae.codecs import base

        base._REGISTRY.pop("test-architecture-other")


def test_a_registered_codec_compresses_and_decompresses_files(samples, tmp_path):
    """An application's codec goes through the whole file path (its id is in the metadata, not a fixed list)."""
    class Copy(Lossless):
        codec_id = "test-architecture-copy"

    register_codec(Copy)
    try:
        hepae.compress(samples["atlas-jets-4d"], tmp_path / "c.root", codec="test-architecture-copy",
                       featureset="atlas-jets-4d", progress=False)
        hepae.decompress(tmp_path / "c.root", tmp_path / "r.root", progress=False)
        residuals = hepae.residual_summary(samples["atlas-jets-4d"], tmp_path / "r.root", "atlas-jets-4d")
        assert all(r["max_abs"] == 0 for r in residuals.values())
    finally:
        from hepae.codecs import base

        base._REGISTRY.pop("test-architecture-copy")
    with pytest.raises(ContainerFormatError, match="unknown codec .test-architecture-copy."):
        hepae.decompress(tmp_path / "c.root", tmp_path / "r2.root", progress=False)


def test_plotting_leaves_matplotlib_alone():
    """No backend switch at import, no style left behind: a notebook's matplotlib stays as it was."""
    code = """
import matplotlib
backend = matplotlib.get_backend()
rc = dict(matplotlib.rcParams)
import numpy as np
from hepae.validation import plotting
style = plotting.Style("CMS")
fig = plotting.residual(style, np.linspace(-1, 1, 11), np.arange(10.0), "r", dict(mean=0, mean_error=0, std=1,
                        std_error=0, width68=1, width99=2, max_abs=2))
changed = [k for k, v in matplotlib.rcParams.items() if k != "backend" and str(rc.get(k)) != str(v)]
import matplotlib.pyplot as plt
assert matplotlib.get_backend() == backend, (backend, matplotlib.get_backend())
assert not changed, changed[:5]
assert plt.get_fignums() == []  # figures are not registered with pyplot
assert fig.axes[0].get_xlabel() == "r"
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "MPLBACKEND": "svg"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "ok"
