"""The machine-learning part: autoencoder networks (:mod:`~hepae.ml.networks`), the pickle-free model
file (:mod:`~hepae.ml.model`), streaming training (:mod:`~hepae.ml.training`) and torch devices
(:mod:`~hepae.ml.devices`). The only package that imports torch (:mod:`~hepae.ml.defaults` does not)."""
