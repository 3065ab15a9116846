"""Reading and writing tables: the first and last steps of the data path.

* :mod:`~hepae.io.sources`: the one reader of every input (TTree, RNTuple, DarkMachines CSV), in chunks;
* :mod:`~hepae.io.tensors`: a feature set's jagged branches <-> an ``(n_objects, D)`` tensor, object selection;
* :mod:`~hepae.io.branches`: branch descriptions (dtype, counter) and what uproot can write back;
* :mod:`~hepae.io.writing`: TTree and RNTuple writers, atomic outputs;
* :mod:`~hepae.io.darkmachines`: the DarkMachines/PhenoML CSV event format;
* :mod:`~hepae.io.carryover`: the input file's other objects, copied and checksummed;
* :mod:`~hepae.io.hashing`: digests of tables that do not depend on chunking.

Nothing here imports torch, codecs or the container.
"""
