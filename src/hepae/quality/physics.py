"""Physics checks of reconstructed objects, computed with :mod:`vector`."""

from __future__ import annotations

import numpy as np
import vector

from hepae.features import FeatureSet


def count_unphysical(featureset: FeatureSet, values: np.ndarray) -> int:
    """How many objects of a ``(n, D)`` array are not physical four-vectors.

    With E among the columns: E below |p| (negative mass squared, from :mod:`vector`) or a negative
    pT; with m: a negative mass or pT. Feature sets without four-vector columns count none.
    """
    names = featureset.column_names
    column = {name: values[:, names.index(name)].astype(np.float64) for name in ("pt", "eta", "phi", "E", "m")
              if name in names}
    if not {"pt", "eta", "phi"} <= set(column):
        return 0
    bad = column["pt"] < 0
    if "E" in column:
        momenta = vector.array({"pt": column["pt"], "eta": column["eta"], "phi": column["phi"], "E": column["E"]})
        bad |= momenta.mass2 < 0
    if "m" in column:
        bad |= column["m"] < 0
    return int(bad.sum())
