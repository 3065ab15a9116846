"""How good a reconstruction is: per-variable residuals streamed over two files
(:mod:`~hepae.quality.residuals`) and physics checks of reconstructed objects (:mod:`~hepae.quality.physics`)."""
