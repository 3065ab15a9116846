"""Precision profiles: which float branch of a file is stored with which precision.

A profile is data, a JSON document following ``schemas/profile.schema.json``: rules that map branch-name
patterns (shell-style globs, :func:`fnmatch.fnmatchcase`, matched against the whole name) to a precision
rule (:func:`hepae.codecs.bounds.parse_rule`): ``rel:B``, ``abs:B``, ``bits:N`` or ``exact``. The first
matching rule wins; float branches that match none get the profile's ``unmatched`` rule (``exact``
unless it says otherwise); integers, booleans, strings and records are always exact. Built-in profiles
ship in ``hepae/schemas/profiles/`` (``hepae profiles`` lists them); a user passes a name or the path
of an own file, and command-line rules (``--error-bound 'Jet_btag*=abs:1e-3'``) come before the
profile's, so they add to it or override it.

:func:`plan_units` turns a profile and a table into the units ``hepae compress`` codes: one per
collection (the float branches sharing a counter, of one dtype), one for the per-event floats.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from os import PathLike
from typing import Any

import awkward as ak
import numpy as np

from hepae.codecs import Bounded, ErrorBound
from hepae.codecs.bounds import parse_rule
from hepae.codecs.learned import EntropyModel
from hepae.container.format import UNIT_COUNT_PREFIX, Unit
from hepae.errors import BranchTypeError, CodecError, ProfileError, SchemaValidationError, close_matches
from hepae.io.branches import BranchSpec, TreeLayout, counts_and_values
from hepae.schema import builtin_names, is_builtin, read_named_document, validate

MAX_PROFILE_BYTES = 4 * 2**20
_MANTISSA_BITS = {np.dtype("float32"): 23, np.dtype("float64"): 52}


@dataclass(frozen=True)
class Rule:
    """One rule: a branch-name pattern and its precision (``origin``: the profile, or the command line)."""

    pattern: str
    rule: str
    comment: str = ""
    origin: str = "profile"

    def __post_init__(self) -> None:
        parse_rule(self.rule, what=f"rule '{self.pattern}={self.rule}'")  # CodecError -> ProfileError below

    @property
    def kind(self) -> str:
        return parse_rule(self.rule)[0]

    @property
    def value(self) -> float | None:
        return parse_rule(self.rule)[1]

    def matches(self, name: str) -> bool:
        return fnmatch.fnmatchcase(name, self.pattern)

    def __str__(self) -> str:
        return f"{self.pattern}={self.rule}"

    @classmethod
    def parse(cls, text: str, origin: str = "command line") -> Rule:
        """``"Jet_btag*=abs:1e-3"`` (a pattern, ``=``, a rule)."""
        pattern, equals, rule = text.partition("=")
        if not equals or not pattern.strip():
            raise ProfileError(f"precision rule {text!r} is not of the form PATTERN=RULE (e.g. 'Jet_pt=bits:10', "
                               "'Jet_btag*=abs:1e-3', 'MET_*=rel:1e-3', 'Jet_eta=exact')")
        try:
            return cls(pattern.strip(), rule.strip(), origin=origin)
        except CodecError as err:
            raise ProfileError(str(err)) from None


@dataclass(frozen=True)
class Profile:
    """A validated precision profile (see the module docstring)."""

    name: str
    rules: tuple[Rule, ...]
    unmatched: str = "exact"
    description: str = ""
    source: str = ""
    path: str = field(default="", compare=False)

    @classmethod
    def from_dict(cls, document: dict[str, Any], path: str = "<dict>", *, schema_checked: bool = False) -> Profile:
        """The profile of a JSON ``document`` (read from ``path``), validated against the profile schema unless
        ``schema_checked`` (the built-in profiles: the tests validate them, which would otherwise cost every
        run tens of milliseconds for the 246 rules of ``nanoaod``)."""
        if not schema_checked:
            try:
                validate(document, "profile.schema.json", what=f"precision profile {path}")
            except SchemaValidationError as err:
                raise ProfileError(str(err)) from None
        rules = []
        for entry in document["rules"]:
            try:
                rules.append(Rule(entry["pattern"], entry["rule"], entry.get("comment", "")))
            except CodecError as err:
                raise ProfileError(f"precision profile {path}: {err}") from None
        unmatched = document.get("unmatched", "exact")
        try:
            parse_rule(unmatched, what=f"precision profile {path}: 'unmatched'")
        except CodecError as err:
            raise ProfileError(str(err)) from None
        return cls(document["name"], tuple(rules), unmatched, document.get("description", ""),
                   document.get("source", ""), path)

    def with_rules(self, texts: Sequence[str]) -> Profile:
        """This profile with command-line rules put before its own (they win where both match)."""
        extra = tuple(Rule.parse(t) for t in texts)
        return Profile(self.name, extra + self.rules, self.unmatched, self.description, self.source, self.path)

    def to_dict(self, rules: Sequence[Rule] | None = None) -> dict[str, Any]:
        """The name, the source and the rules in order: every rule, or those of ``rules`` (what a compressed
        file records: the rules that decided a branch, :attr:`Resolution.rules`)."""
        chosen = set(self.rules if rules is None else rules)
        kept = [r for r in self.rules if r in chosen]
        return {"name": self.name, "source": self.source, "unmatched": self.unmatched,
                "rules": [{"pattern": r.pattern, "rule": r.rule, "origin": r.origin} for r in kept]}

    def resolve(self, layout: TreeLayout, exclude: Sequence[str] = (), *, strict: bool = False,
                where: str = "") -> Resolution:
        """The bound of every float branch of ``layout`` that the profile makes lossy (``exclude``: branches
        coded otherwise), and the rules that decided a branch. Raises :class:`ProfileError` for a
        command-line rule (or, with ``strict``, any rule) that matches no branch or only non-float ones."""
        excluded = set(exclude)
        candidates = [s for s in layout.branches if s.name not in excluded]
        matched: dict[Rule, list[BranchSpec]] = {r: [] for r in self.rules}
        bounds: dict[str, ErrorBound] = {}
        exact: list[str] = []
        for spec in candidates:
            rule = next((r for r in self.rules if r.matches(spec.name)), None)
            if rule is not None:
                matched[rule].append(spec)  # the first match decides
            if not _is_float(spec):
                continue
            text = rule.rule if rule is not None else self.unmatched
            kind, value = parse_rule(text)
            if kind == "exact" or (text.startswith("bits:") and int(text[5:]) >= _MANTISSA_BITS[spec.numpy_dtype]):
                exact.append(spec.name)  # as many bits as the type has: nothing to gain
                continue
            bounds[spec.name] = ErrorBound(spec.name, kind, value)
        for rule, specs in matched.items():
            if not (strict or rule.origin == "command line"):
                continue
            source = "command-line rule" if rule.origin == "command line" else f"rule of profile '{self.name}'"
            coded = [name for name in excluded if rule.matches(name)]
            if coded and not any(rule.matches(s.name) for s in candidates):
                raise ProfileError(f"{source} '{rule}' matches only branches the feature-set collection codes "
                                   f"({sorted(coded)[:3]}) in {where}; give their bounds to the codec "
                                   "(--error-bound COLUMN=RULE with the column names)")
            if not any(rule.matches(s.name) for s in candidates):
                hint = close_matches(rule.pattern, [s.name for s in candidates])
                raise ProfileError(f"{source} '{rule}' matches no branch of '{layout.name}' in {where}"
                                   + (f"; close matches: {hint}" if hint else "")
                                   + ("; without --strict such rules are allowed" if rule.origin != "command line"
                                      else ""))
            if specs and rule.kind != "exact" and not any(_is_float(s) for s in specs):
                listing = ", ".join(f"{s.name} ({s.dtype})" for s in specs[:3])
                raise ProfileError(f"{source} '{rule}' applies only to branches that are not floats ({listing}) in "
                                   f"{where}; integers, booleans, strings and arrays are always stored exactly")
        deciding = tuple(rule for rule, specs in matched.items() if specs or rule.origin == "command line")
        return Resolution(bounds, deciding, tuple(exact))


@dataclass(frozen=True)
class Resolution:
    """What a profile decided for a table: the bound of every lossy float branch (``bounds``), the rules that
    were the first match of some branch and every command-line rule (``rules``, in the profile's order), and
    the float branches it keeps exact (``exact``). A compressed file records these rules, not every rule of the
    profile (``nanoaod`` has 246; a file's metadata is read and checked on every open)."""

    bounds: dict[str, ErrorBound]
    rules: tuple[Rule, ...]
    exact: tuple[str, ...] = ()


def _is_float(spec: BranchSpec) -> bool:
    """A float branch (one value per event or per object) that a unit can code."""
    if not spec.numeric:
        return False
    dtype = spec.numpy_dtype
    return dtype.subdtype is None and dtype in _MANTISSA_BITS


def builtin_profiles() -> list[str]:
    return builtin_names("profiles")


def load_profile(spec: str | PathLike[str] | Profile | dict[str, Any]) -> Profile:
    """A profile from a built-in name (``"nanoaod"``), a JSON file path, a dict, or a :class:`Profile`."""
    if isinstance(spec, Profile):
        return spec
    if isinstance(spec, dict):
        return Profile.from_dict(spec)
    document, source = read_named_document(str(spec), "profiles", noun="precision profile", error=ProfileError,
                                           max_bytes=MAX_PROFILE_BYTES)
    return Profile.from_dict(document, source, schema_checked=is_builtin(str(spec), "profiles"))


def guess_profile(layout: TreeLayout, source_format: str) -> str:
    """The built-in profile for a table's layout: ``darkmachines`` for CSV input, ``nanoaod`` for a CMS
    NanoAOD-style ``Events`` tree, ``physlite`` for ``Analysis*`` collections, ``xaod`` otherwise."""
    names = layout.names
    if source_format == "darkmachines-csv":
        return "darkmachines"
    if layout.name == "Events" or any(n.startswith(("Jet_", "Muon_", "Electron_")) for n in names):
        return "nanoaod"
    if any(n.startswith("Analysis") for n in names):
        return "physlite"
    return "xaod"


# -- units ------------------------------------------------------------------------------------------

def plan_units(layout: TreeLayout, bounds: dict[str, ErrorBound], kept: Sequence[BranchSpec],
               first_chunk: dict[str, ak.Array] | None, margin: float | None = None,
               exact: Sequence[str] = (), entropy_model: EntropyModel | None = None) -> list[Unit]:
    """The units that code the bounded branches: per counter and dtype (branches of one collection are
    predicted from each other), and per dtype for the per-event branches.

    ``kept``: the branches the compressed table would keep (a unit counts its objects with one of its counter's
    jagged branches among them, or with an added ``hepae_count_<counter>``). Branches grouped by a counter
    that the table does not store (RNTuple fields, ``std::vector`` branches) must also hold equally many
    values per event in ``first_chunk``; a group that does not is split.

    ``exact``: float branches the profile keeps exact. Those of float32 join the float32 unit of their
    collection (a counter the table stores, as NanoAOD's ``nJet``: its branches all have its lengths) or of the
    per-event floats, if it has lossy branches, as the codec's ``exact`` columns, coded after the lossy ones
    (bit for bit: their float bits as steps). The others stay in the table; no unit counts its objects with a
    branch that joined one.

    ``entropy_model``: a learned model (``hepae train-entropy --profile``); a unit's codec carries the part of it
    that serves the unit's lossy branches (by name and bound kind), if any.
    """
    groups: dict[tuple[str | None, str], list[BranchSpec]] = {}
    for spec in layout.branches:
        if spec.name in bounds:
            groups.setdefault((spec.counter, spec.numpy_dtype.name), []).append(spec)
    groups = {key: coding_order(specs) for key, specs in groups.items()}
    joining = set(exact)
    joiners: dict[tuple[str | None, str], list[BranchSpec]] = {}
    for spec in layout.branches:
        if spec.name not in joining:  # float branches (the profile's exact ones)
            continue
        key = (spec.counter, spec.numpy_dtype.name)
        if key in groups and key[1] == "float32" and (spec.counter is None or spec.counter in layout.counters):
            joiners.setdefault(key, []).append(spec)  # a stored counter: every branch of it has its lengths
    moved = {s.name for specs in joiners.values() for s in specs}  # out of the table, whichever unit counts
    kept = [s for s in kept if s.name not in moved]
    taken = set(layout.all_names())
    units = []
    for (counter, dtype), specs in groups.items():
        parts = [specs + joiners.get((counter, dtype), [])]
        if counter is not None and counter not in layout.counters and first_chunk is not None:
            parts = _equal_lengths(specs, first_chunk)
        for part in parts:
            name = "event" if counter is None else counter
            name += "" if dtype == "float32" else f"_{dtype}"
            while name in {u.name for u in units}:
                name += "_"
            count_branch, added = None, False
            if counter is not None:
                lengths = _lengths(part[0], first_chunk)
                same = [s for s in kept if s.jagged and s.counter == counter and
                        (counter in layout.counters or lengths is None
                         or np.array_equal(_lengths(s, first_chunk), lengths))]
                if same:
                    count_branch = same[0].name
                else:
                    count_branch, added = f"{UNIT_COUNT_PREFIX}{name}", True
                    while count_branch in taken:
                        count_branch += "_"
                    taken.add(count_branch)
            names = [s.name for s in part]
            served = None if entropy_model is None else entropy_model.serving(
                names, [bounds[n] if n in bounds else ErrorBound.exact(n) for n in names])
            codec = Bounded([bounds[s.name] for s in part if s.name in bounds],
                            **({} if margin is None else {"margin": margin}),
                            exact=[s.name for s in part if s.name not in bounds], entropy_model=served)
            units.append(Unit(name, counter, dtype, part, codec.bind(names, dtype), count_branch,
                              added))
    return units


def unit_values(arrays: dict[str, Any], unit: Unit, input: str | PathLike[str], entry_start: int
                 ) -> tuple[np.ndarray, np.ndarray | None]:
    """A unit's ``(n_objects, n_branches)`` values of one chunk and its objects per event (None: per event)."""
    if unit.counter is None:
        columns = [np.asarray(ak.to_numpy(arrays[b.name])) for b in unit.branches]
        return _column_major(columns), None
    counts = counts_and_values(arrays[unit.branches[0].name])[0]
    columns = []
    for spec in unit.branches:
        lengths, values = counts_and_values(arrays[spec.name])
        if not np.array_equal(lengths, counts):
            event = entry_start + int(np.flatnonzero(lengths != counts)[0])
            raise BranchTypeError(f"{input}: branches '{unit.branches[0].name}' and '{spec.name}' (counted together as "
                                  f"'{unit.counter}') hold different numbers of values in entry {event}; give one of "
                                  f"them its own rule, e.g. --error-bound '{spec.name}=exact'")
        columns.append(values)
    return _column_major(columns), counts


def _column_major(columns: list[np.ndarray]) -> np.ndarray:
    """Columns side by side, each contiguous (the codecs work column after column)."""
    if not columns:
        return np.zeros((0, 0))
    out = np.empty((len(columns[0]), len(columns)), dtype=np.result_type(*columns), order="F")
    for j, column in enumerate(columns):
        out[:, j] = column
    return out


_ENERGY_NAMES = {"e", "energy"}


def _name_parts(name: str) -> tuple[str, str]:
    """A branch's collection prefix and variable: ``Jet_pt`` -> (``Jet_``, ``pt``), ``JetsAuxDyn.e`` ->
    (``JetsAuxDyn.``, ``e``); the variable in lower case."""
    cut = max(name.rfind(separator) for separator in ".:_") + 1
    return name[:cut], name[cut:].lower()


def coding_order(specs: list[BranchSpec]) -> list[BranchSpec]:
    """A unit's branches in the order they are coded: as in the file, except that an energy comes right after
    its collection's pT and η (in a unit of per-event values, those with the same name prefix).

    The ``bounded`` codec predicts each column from the ones coded before it. An energy is
    ``pT cosh(η)`` up to the mass term (the context curve of η on top of the linear term in log pT), so
    coded after both it costs ~5 bits less per object (DarkMachines' ``obj_E``, stored before ``obj_pt``:
    11.6 -> 6.6 bits, 8.5 % of the collection's bytes); coded first it predicts neither. The order is
    stored with the unit, so decoding and the restored file's branch order do not depend on it.
    """
    order = list(specs)
    one_collection = bool(specs) and specs[0].counter is not None  # a unit's branches share its counter
    for spec in specs:
        prefix, variable = _name_parts(spec.name)
        if variable not in _ENERGY_NAMES:
            continue
        parts = [_name_parts(other.name) for other in order]
        kinematics = [i for i, (p, v) in enumerate(parts) if v in ("pt", "eta") and (one_collection or p == prefix)]
        if {parts[i][1] for i in kinematics} != {"pt", "eta"}:
            continue
        at, last = order.index(spec), max(kinematics)
        if at < last:
            order.insert(last, order.pop(at))  # right after the later of pT and η
    return order


def _lengths(spec: BranchSpec, chunk: dict[str, ak.Array] | None) -> np.ndarray | None:
    if chunk is None or spec.name not in chunk:
        return None
    return ak.to_numpy(ak.num(chunk[spec.name], axis=1))


def _equal_lengths(specs: list[BranchSpec], chunk: dict[str, ak.Array]) -> list[list[BranchSpec]]:
    parts: list[tuple[np.ndarray, list[BranchSpec]]] = []
    for spec in specs:
        lengths = _lengths(spec, chunk)
        for known, members in parts:
            if np.array_equal(known, lengths):
                members.append(spec)
                break
        else:
            parts.append((lengths, [spec]))
    return [members for _, members in parts]


def describe_bound(bound: ErrorBound) -> str:
    """``rel:0.000488`` and, for a power of two, its ``bits:N`` too."""
    text = f"{bound.kind}:{bound.value:.3g}"
    if bound.kind == "rel":
        bits = -math.log2(bound.value) - 1
        if bits == int(bits):
            text = f"bits:{int(bits)} ({text})"
    return text
