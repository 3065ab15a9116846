"""The validation report (:mod:`~hepae.validation.report`), its figures (:mod:`~hepae.validation.plotting`,
which never touches matplotlib's global state) and its pass/fail limits (:mod:`~hepae.validation.thresholds`)."""
