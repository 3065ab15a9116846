"""Networks of the seed, and the pickle-free model file."""

import io
import pickle
import zipfile

import numpy as np
import pytest
import torch

import hepae
from hepae.errors import ModelFormatError
from hepae.ml.networks import ArchSpec, Autoencoder, inference_forward


@pytest.mark.parametrize(
    ("name", "layout"),
    [("AE_bn_LeakyReLU", "4-400-400-200-3-200-400-400-4"), ("AE_3D_200", "4-200-100-50-3-50-100-200-4")],
)
def test_seed_architectures(name, layout):
    net = Autoencoder(ArchSpec.named(name, 4, 3))
    assert net.spec.layout == layout
    x = torch.randn(16, 4)
    assert net.encode(x).shape == (16, 3)
    assert net.decode(net.encode(x)).shape == (16, 4)
    kinds = {type(m).__name__ for m in net.modules()}
    assert ("BatchNorm1d" in kinds and "LeakyReLU" in kinds) if name == "AE_bn_LeakyReLU" else ("Tanh" in kinds)
    assert isinstance(net.decoder[-1], torch.nn.Linear)  # no activation on the output


def test_27d_grid_architecture_shape():
    assert ArchSpec.named("AE_bn_LeakyReLU", 27, 12, [200, 200, 200]).layout == "27-200-200-200-12-200-200-200-27"


@pytest.mark.parametrize("name", ["AE_3D_200", "AE_bn_LeakyReLU"])
def test_inference_gives_the_network_s_own_outputs(name):
    """On the CPU, Tanh layers run folded into the Linear ones (faster): the same values within 1e-5,
    the input left as it was, and refolded after the weights change."""
    torch.manual_seed(0)
    net = Autoencoder(ArchSpec.named(name, 4, 3)).eval()
    for part, width in ((net.encoder, 4), (net.decoder, 3)):
        x = torch.randn(500, width) * 3
        before = x.clone()
        with torch.inference_mode():
            torch.testing.assert_close(inference_forward(part, x), part(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(x, before, atol=0, rtol=0)
    with torch.no_grad():
        next(layer for layer in net.decoder if isinstance(layer, torch.nn.Linear)).weight.mul_(0.5)
    z = torch.randn(100, 3)
    with torch.inference_mode():
        torch.testing.assert_close(inference_forward(net.decoder, z), net.decoder(z), atol=1e-5, rtol=1e-5)


def test_unknown_architecture():
    with pytest.raises(ModelFormatError, match="unknown architecture"):
        ArchSpec.named("resnet", 4, 3)


def test_save_and_load_give_the_same_model(models, tmp_path):
    model = models["atlas-jets-4d"]
    path = model.save(tmp_path / "m.hepae")
    loaded = hepae.load_model(path)
    assert loaded.model_id == model.model_id
    assert loaded.featureset == model.featureset and loaded.normalization == model.normalization
    assert loaded.training["best_epoch"] == model.training["best_epoch"]
    x = np.array([[5e4, 0.3, 1.0, 5e3], [2e5, -2.0, -3.0, 2e4]], np.float32)
    np.testing.assert_array_equal(loaded.reconstruct(x), model.reconstruct(x))
    with pytest.raises(hepae.errors.OutputFileError, match="already exists"):
        model.save(path)


def test_decoder_only_model_cannot_encode(models):
    decoder_only = hepae.HepaeModel.from_bytes(models["atlas-jets-4d"].to_bytes(("decoder",)))
    assert decoder_only.parts == ("decoder",)
    z = np.zeros((2, 3), np.float32)
    np.testing.assert_array_equal(decoder_only.decode(z), models["atlas-jets-4d"].decode(z))
    with pytest.raises(ModelFormatError, match="only the decoder"):
        decoder_only.encode(np.ones((1, 4), np.float32))


class _Payload:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_payload_is_never_executed(tmp_path):
    marker = tmp_path / "code-ran"
    # 1. a torch.save-style checkpoint (a zip with a pickle inside)
    torch_file = tmp_path / "torch.hepae"
    torch.save({"evil": _Payload(str(marker))}, torch_file)
    # 2. an npz whose "header" is an object array (pickled)
    npz_file = tmp_path / "npz.hepae"
    buffer = io.BytesIO()
    np.savez(buffer, hepae_header=np.array([_Payload(str(marker))], dtype=object))
    npz_file.write_bytes(buffer.getvalue())
    # 3. a raw pickle
    raw = tmp_path / "raw.hepae"
    raw.write_bytes(pickle.dumps(_Payload(str(marker))))
    for path in (torch_file, npz_file, raw):
        with pytest.raises(ModelFormatError):
            hepae.load_model(path)
    assert not marker.exists()


def test_corrupted_and_newer_model_files_are_refused(models, tmp_path):
    data = bytearray(models["atlas-jets-4d"].to_bytes())
    truncated = tmp_path / "truncated.hepae"
    truncated.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(ModelFormatError):
        hepae.load_model(truncated)
    # flip bytes inside a weight tensor (npz is stored, so tensors are raw bytes in the zip)
    flipped = tmp_path / "flipped.hepae"
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as z:
        name = next(n for n in z.namelist() if n.startswith("decoder.") and n.endswith("weight.npy"))
        info = z.getinfo(name)
    offset = info.header_offset + 30 + len(info.filename) + len(info.extra) + 200
    data[offset] ^= 0xFF
    flipped.write_bytes(bytes(data))
    with pytest.raises(ModelFormatError):
        hepae.load_model(flipped)


def test_newer_format_version_says_upgrade(models, tmp_path, monkeypatch):
    import hepae.ml.model as model_module

    monkeypatch.setattr(model_module, "MODEL_FORMAT_VERSION", 99)
    newer = models["atlas-jets-4d"].to_bytes()
    monkeypatch.undo()
    with pytest.raises(ModelFormatError, match="format version 99.*upgrade hepae"):
        hepae.HepaeModel.from_bytes(newer)
