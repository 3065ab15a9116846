"""A generator of realistic-looking synthetic jet samples in the layout of a feature set.

Events have a Poisson number of jets (some none), a steeply falling pT spectrum (dN/dpT ~ pT^-4 above
20 GeV), eta within +-4.5 (central), uniform phi, and a mass that scales with pT (m/pT log-normal
around 0.1 with a 3 % spread, 0.01 % massless jets); jets are sorted by decreasing pT.

The tight m/pT relation makes the 4D jets of this sample nearly three-dimensional, on purpose: a 4 -> 3
autoencoder can then reach sub-percent pT residuals in a CPU minute, which is what the demo shows. Real
jets have a broad m/pT distribution, and a 4 -> 3 code must lose information there (mostly in m).

Each event also gets an event number, run number and weight, and a second, uncompressed collection
(electrons), named in the convention of the feature set's ``layout`` (xAOD, PHYSLITE, NanoAOD, or
PHYSLITE as an RNTuple, which also gets a doubly-jagged ``EnergyPerSampling`` field). Feature sets with a
Cartesian representation get ``px, py, pz, E`` branches. Nothing here needs a download.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import awkward as ak
import numpy as np
import uproot
import vector

from hepae.errors import FeatureSetError
from hepae.features import FeatureSet, load_featureset
from hepae.io.branches import AWKWARD_DTYPE, BranchSpec
from hepae.io.writing import DEFAULT_COMPRESSION, atomic_output, make_writer, parse_compression

# Names of the event-level branches and of the electron collection, per layout convention.
_CONVENTIONS = {
    "xaod": {
        "event": "EventInfoAux.eventNumber", "run": "EventInfoAux.runNumber", "weight": "EventInfoAuxDyn.mcWeight",
        "electron": "ElectronsAux.{}", "n_electron": "nElectronsAux", "charge_dtype": "float32",
    },
    "physlite": {
        "event": "EventInfoAuxDyn.eventNumber", "run": "EventInfoAuxDyn.runNumber",
        "weight": "EventInfoAuxDyn.mcEventWeights",
        "electron": "AnalysisElectronsAuxDyn.{}", "n_electron": "nAnalysisElectrons", "charge_dtype": "float32",
    },
    "nanoaod": {
        "event": "event", "run": "run", "weight": "genWeight",
        "electron": "Electron_{}", "n_electron": "nElectron", "charge_dtype": "int32",
    },
}
_CONVENTIONS["custom"] = _CONVENTIONS["nanoaod"]
_CONVENTIONS["physlite-rntuple"] = {k: v.replace(".", ":") if isinstance(v, str) else v
                                    for k, v in _CONVENTIONS["physlite"].items()}
_CONVENTIONS["physlite-rntuple"]["samplings"] = "AnalysisJetsAuxDyn:EnergyPerSampling"
_UNIT_FROM_GEV = {"GeV": 1.0, "MeV": 1000.0, "TeV": 1e-3}
_CHUNK_EVENTS = 50_000


def _jet_counter(featureset: FeatureSet) -> str:
    if featureset.counter:
        return featureset.counter
    collection = featureset.collection or featureset.branches[0].split(".")[0].split("_")[0]
    return f"n{collection}Aux" if featureset.layout == "xaod" else f"n{collection}"


def _truncated_normal(rng: np.random.Generator, sigma: float, limit: float, n: int) -> np.ndarray:
    x = rng.normal(0.0, sigma, n)
    outside = np.abs(x) > limit
    x[outside] = rng.uniform(-limit, limit, int(outside.sum()))
    return x


MASS_OVER_PT = 0.1
MASS_SPREAD = 0.03
MASSLESS_FRACTION = 1e-4  # the pythia8 QCD sample in shared/ has 3 massless jets in 41 144


def generate_jets(rng: np.random.Generator, n_events: int) -> dict[str, np.ndarray]:
    """Per-jet ``pt, eta, phi, m`` in GeV (flat, sorted by event then decreasing pT) and ``counts``."""
    counts = np.minimum(rng.poisson(2.6, n_events), 25)
    n = int(counts.sum())
    pt = np.minimum(20.0 * rng.uniform(0.0, 1.0, n) ** (-1.0 / 3.0), 4000.0)
    ratio = np.clip(rng.lognormal(np.log(MASS_OVER_PT), MASS_SPREAD, n), 0.02, 0.4)
    m = np.where(rng.uniform(size=n) < MASSLESS_FRACTION, 0.0, pt * ratio)
    eta = _truncated_normal(rng, 1.6, 4.5, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    event = np.repeat(np.arange(n_events), counts)
    order = np.lexsort((-pt, event))
    return {"pt": pt[order], "eta": eta[order], "phi": phi[order], "m": m[order], "counts": counts}


def generate_jet_details(rng: np.random.Generator, jets: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The other 23 variables of the ATLAS 27D jets, with plausible correlations (energies in GeV).

    Area variables follow the jet axis (ActiveArea4vec_eta ~ eta, DetectorEta ~ eta), the leading
    cluster carries less than the jet pT, N90Constituents is an integer >= 1 that grows with pT,
    EMFrac and HECFrac lie in [0, 1] and HECFrac is non-zero mainly in the HEC (1.5 < |eta| < 3.2);
    the quality and timing variables follow the shapes documented for the pythia8 sample in shared/.
    """
    pt, eta, phi, m = jets["pt"], jets["eta"], jets["phi"], jets["m"]
    n = len(pt)
    area = np.clip(rng.normal(0.5, 0.06, n), 0.2, 0.8)
    area_pt = area * (1.0 + rng.normal(0.0, 0.03, n))
    in_hec = (np.abs(eta) > 1.5) & (np.abs(eta) < 3.2)
    em_frac = np.clip(rng.beta(2.0, 5.0, n) + rng.normal(0.0, 0.02, n), 0.0, 1.0)
    width = np.clip(0.8 * m / pt + rng.normal(0.0, 0.02, n), 0.0, 0.4)
    theta = 2.0 * np.arctan(np.exp(-eta))
    oot10 = np.where(rng.uniform(size=n) < 0.7, 0.0, np.minimum(rng.exponential(0.03, n), 1.0))
    oot5 = np.minimum(oot10 + np.where(rng.uniform(size=n) < 0.5, 0.0, rng.exponential(0.03, n)), 1.0)
    return {
        "ActiveArea": area,
        "ActiveArea4vec_eta": eta + rng.normal(0.0, 0.02, n),
        "ActiveArea4vec_m": 0.29 * area_pt * rng.lognormal(0.0, 0.1, n),
        "ActiveArea4vec_phi": np.angle(np.exp(1j * (phi + rng.normal(0.0, 0.02, n)))),
        "ActiveArea4vec_pt": area_pt,
        "AverageLArQF": rng.beta(0.5, 20.0, n),
        "NegativeE": -rng.exponential(0.3 * pt / 50.0),  # GeV, always <= 0
        "HECQuality": np.where(in_hec & (rng.uniform(size=n) < 0.05), rng.normal(0.0, 0.3, n), 0.0),
        "LArQuality": rng.beta(0.5, 12.0, n),
        "Width": width,
        "WidthPhi": 0.6 * width * rng.lognormal(0.0, 0.1, n),
        "CentroidR": np.clip(1500.0 / np.maximum(np.sin(theta), 0.15), 1200.0, 6000.0) * rng.lognormal(0.0, 0.05, n),
        "DetectorEta": eta + rng.normal(0.0, 0.005, n),
        "LeadingClusterCenterLambda": rng.lognormal(np.log(400.0), 0.5, n),
        "LeadingClusterPt": pt * rng.beta(2.0, 5.0, n),  # GeV, below the jet pT
        "LeadingClusterSecondLambda": rng.lognormal(np.log(3e4), 0.8, n),
        "LeadingClusterSecondR": rng.lognormal(np.log(2e3), 0.8, n),
        "N90Constituents": 1.0 + rng.poisson(3.0 + 3.0 * np.log(pt / 20.0)),
        "EMFrac": em_frac,
        "HECFrac": np.where(in_hec, (1.0 - em_frac) * rng.uniform(0.3, 0.7, n), np.abs(rng.normal(0.0, 0.001, n))),
        "Timing": np.where(rng.uniform(size=n) < 0.01, rng.normal(0.0, 15.0, n), rng.normal(0.0, 1.2, n)),
        "OotFracClusters10": oot10,
        "OotFracClusters5": oot5,
    }


_ENERGY_VARIABLES = {"pt", "m", "NegativeE", "LeadingClusterPt"}
_DETAIL_NAMES = (
    "ActiveArea", "ActiveArea4vec_eta", "ActiveArea4vec_m", "ActiveArea4vec_phi", "ActiveArea4vec_pt", "AverageLArQF",
    "NegativeE", "HECQuality", "LArQuality", "Width", "WidthPhi", "CentroidR", "DetectorEta",
    "LeadingClusterCenterLambda", "LeadingClusterPt", "LeadingClusterSecondLambda", "LeadingClusterSecondR",
    "N90Constituents", "EMFrac", "HECFrac", "Timing", "OotFracClusters10", "OotFracClusters5",
)


def generate_electrons(rng: np.random.Generator, n_events: int) -> dict[str, np.ndarray]:
    counts = rng.poisson(0.4, n_events)
    n = int(counts.sum())
    pt = 10.0 + rng.exponential(25.0, n)
    event = np.repeat(np.arange(n_events), counts)
    order = np.lexsort((-pt, event))
    return {
        "pt": pt[order],
        "eta": _truncated_normal(rng, 1.2, 2.47, n)[order],
        "phi": rng.uniform(-np.pi, np.pi, n)[order],
        "charge": rng.choice([-1.0, 1.0], n)[order],
        "counts": counts,
    }


def make_sample(
    path: str | PathLike[str],
    featureset: str | FeatureSet = "atlas-jets-4d",
    *,
    n_events: int = 20_000,
    seed: int = 42,
    overwrite: bool = False,
    compression: str = DEFAULT_COMPRESSION,
) -> Path:
    """Write a synthetic sample of ``n_events`` events in the layout of ``featureset``; returns the path.

    The feature set's columns must be jet variables this generator knows: the 4D kinematics
    ``pt, eta, phi, m`` and, optionally, the other 23 ATLAS 27D variables.
    """
    featureset = load_featureset(featureset)
    known = {"pt", "eta", "phi", "m", *_DETAIL_NAMES}
    unknown = [name for name in featureset.column_names if name not in known]
    if unknown or not {"pt", "eta", "phi", "m"} <= set(featureset.column_names):
        raise FeatureSetError(
            f"make_sample generates jets with pt, eta, phi, m and the ATLAS 27D variables; feature set "
            f"'{featureset.name}' asks for {unknown or featureset.column_names}"
        )
    if featureset.layout not in _CONVENTIONS:
        raise FeatureSetError(f"make_sample has no naming convention for layout '{featureset.layout}'")
    details = len(featureset.columns) > 4
    names = _CONVENTIONS[featureset.layout]
    jet_counter = _jet_counter(featureset)
    electron = names["electron"]
    cartesian = featureset.representation is not None
    specs = [
        BranchSpec(names["event"], "uint64"),
        BranchSpec(names["run"], "uint32"),
        BranchSpec(names["weight"], "float32"),
        *(BranchSpec(b, featureset.dtype.name, jet_counter) for b in featureset.branches),
        *(BranchSpec(electron.format(v), "float32", names["n_electron"]) for v in ("pt", "eta", "phi")),
        BranchSpec(electron.format("charge"), names["charge_dtype"], names["n_electron"]),
    ]
    if "samplings" in names:  # a doubly-jagged field, as in real PHYSLITE RNTuples
        specs.append(BranchSpec(names["samplings"], AWKWARD_DTYPE, None,
                                '{"class":"ListOffsetArray","offsets":"i64","content":{"class":"ListOffsetArray",'
                                '"offsets":"i64","content":{"class":"NumpyArray","primitive":"float32"}}}'))
    rng = np.random.default_rng(seed)
    path = Path(path)
    with atomic_output(path, overwrite=overwrite) as tmp:
        with uproot.recreate(tmp, compression=parse_compression(compression, threads=True)) as file:
            title = f"hepae synthetic sample ({featureset.layout} layout)"
            storage = "rntuple" if featureset.layout.endswith("rntuple") else "ttree"
            writer = make_writer(file, storage, featureset.tree, specs, title=title)
            for start in range(0, n_events, _CHUNK_EVENTS):
                size = min(_CHUNK_EVENTS, n_events - start)
                jets = generate_jets(rng, size)
                if details:
                    jets.update(generate_jet_details(rng, jets))
                electrons = generate_electrons(rng, size)
                data: dict[str, object] = {
                    names["event"]: np.arange(start, start + size, dtype=np.uint64) + 1_000_000,
                    names["run"]: np.full(size, 300001, dtype=np.uint32),
                    names["weight"]: np.ones(size, dtype=np.float32),
                }
                scaled = {}
                for column in featureset.columns:
                    scale = _UNIT_FROM_GEV.get(column.unit, 1.0) if column.name in _ENERGY_VARIABLES else 1.0
                    scaled[column.branch or column.name] = jets[column.name] * scale
                if cartesian:
                    momenta = vector.array({k: scaled[k] for k in ("pt", "eta", "phi")} | {"mass": scaled["m"]})
                    r = featureset.representation
                    scaled = {r["px"]: momenta.px, r["py"]: momenta.py, r["pz"]: momenta.pz, r["E"]: momenta.E}
                for branch in featureset.branches:
                    data[branch] = ak.unflatten(scaled[branch].astype(featureset.dtype), jets["counts"])
                if "samplings" in names:
                    data[names["samplings"]] = _samplings(rng, scaled[featureset.branches[0]], jets["counts"])
                e_scale = _UNIT_FROM_GEV.get(featureset.columns[0].unit, 1.0)
                for variable in ("pt", "eta", "phi", "charge"):
                    values = electrons[variable] * (e_scale if variable == "pt" else 1.0)
                    data[electron.format(variable)] = ak.unflatten(values, electrons["counts"])
                writer.extend(data)
    return path


def _samplings(rng: np.random.Generator, pt: np.ndarray, counts: np.ndarray) -> ak.Array:
    """Per jet, its energy shared among 2 to 6 calorimeter samplings (a list per jet per event)."""
    n_samplings = rng.integers(2, 7, len(pt))
    shares = rng.dirichlet(np.ones(6), len(pt))
    values = (shares * pt[:, None])[np.arange(6)[None, :] < n_samplings[:, None]]
    return ak.unflatten(ak.unflatten(values.astype(np.float32), n_samplings), counts)


def make_darkmachines_sample(
    path: str | PathLike[str], *, n_events: int = 4000, seed: int = 42, overwrite: bool = False
) -> Path:
    """Write a synthetic DarkMachines/PhenoML CSV event file (MeV), like a ttbar channel.

    Each event has jets (``j``, or ``b`` for ~22 %; pT > 20 GeV, |eta| < 2.8, energy from the
    four-vector with :mod:`vector`), then electrons, muons and photons with their charge codes
    (``e-``/``e+``, ``m-``/``m+``, ``g``), each type sorted by decreasing pT, and a MET with its phi.
    Some events have no object at all (no jet in acceptance and no lepton, about 8 %).
    """
    from hepae.io.darkmachines import OBJECT_CODES, write_events

    rng = np.random.default_rng(seed)
    jets = generate_jets(rng, n_events)
    keep = np.abs(jets["eta"]) < 2.8
    event_of_jet = np.repeat(np.arange(n_events), jets["counts"])[keep]
    energy = vector.array({"pt": jets["pt"][keep], "eta": jets["eta"][keep], "phi": jets["phi"][keep],
                           "mass": jets["m"][keep]}).energy
    jet_code = np.where(rng.uniform(size=int(keep.sum())) < 0.22, OBJECT_CODES.index("b"), OBJECT_CODES.index("j"))
    pieces = [(event_of_jet, jet_code, energy, jets["pt"][keep], jets["eta"][keep], jets["phi"][keep])]
    for codes, rate in ((("e-", "e+"), 0.18), (("m-", "m+"), 0.18), (("g",), 0.015)):
        counts = rng.poisson(rate, n_events)
        n = int(counts.sum())
        pt = 10.0 + rng.exponential(30.0, n)
        eta = _truncated_normal(rng, 1.2, 2.5, n)
        code = np.array([OBJECT_CODES.index(c) for c in codes])[rng.integers(0, len(codes), n)]
        pieces.append((np.repeat(np.arange(n_events), counts), code, pt * np.cosh(eta), pt, eta,
                       rng.uniform(-np.pi, np.pi, n)))
    event, code, e, pt, eta, phi = (np.concatenate(p) for p in zip(*pieces))
    empty = rng.uniform(size=n_events) < 0.01
    keep = ~empty[event]
    type_rank = np.array([0, 0, 1, 1, 2, 2, 3])[code]  # jets, electrons, muons, photons
    order = np.lexsort((-pt, type_rank, event))
    order = order[keep[order]]
    counts = np.bincount(event[order], minlength=n_events)
    objects = ak.zip({
        "obj": code[order].astype(np.int8),
        "E": np.round(e[order] * 1000.0, 1),
        "pt": np.round(pt[order] * 1000.0, 1),
        "eta": np.round(eta[order], 5),
        "phi": np.round(phi[order], 5),
    })
    events = ak.zip({
        "event_id": np.arange(n_events, dtype=np.int64) + 3_000_000,
        "process_id": ak.Array(["demo_ttbar"] * n_events),
        "event_weight": np.ones(n_events),
        "MET": np.round(rng.exponential(40.0, n_events) * 1000.0, 1),
        "METphi": np.round(rng.uniform(-np.pi, np.pi, n_events), 5),
        "objects": ak.unflatten(objects, counts),
    }, depth_limit=1)
    return write_events(path, events, overwrite=overwrite)
