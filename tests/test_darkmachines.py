"""DarkMachines/PhenoML CSV events: parse -> write -> parse identity, chunking, clear line errors."""

import os

import awkward as ak
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hepae
from conftest import shared_file
from hepae.errors import InputFileError, MalformedCSVError
from hepae.io.darkmachines import (
    BOM,
    OBJECT_CODES,
    count_events,
    format_lines,
    iterate_events,
    parse_lines,
    read_events,
    write_events,
)

ALL_CODES = (
    "1;ttbar;1;29779.04;1.91934;j,136578,92327.9,0.939516,1.1395;b,65640.06,65311.12,0.0563298,2.06896;\n"
    "2;ttbar;0.5;100;-3.1;\n"  # an empty event
    "3;wjets;2;5.5e+04;0;e-,1,2,3,4;e+,5,6,7,8;m-,9,10,11,12;m+,13,14,15,16;g,17,18,-2.38244e-05,0.5;\n"
    "4;ttbar;1;1;1;j,1,1,1,1\n"  # no trailing ';'
)


def test_parse_every_object_code_and_empty_events(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text(ALL_CODES)
    events = read_events(path)
    assert events.fields == ["event_id", "process_id", "event_weight", "MET", "METphi", "objects"]
    assert events["event_id"].tolist() == [1, 2, 3, 4]
    assert events["process_id"].tolist() == ["ttbar", "ttbar", "wjets", "ttbar"]
    assert ak.num(events["objects"]).tolist() == [2, 0, 5, 1]
    codes = [[OBJECT_CODES[c] for c in row] for row in events["objects"]["obj"].tolist()]
    assert codes == [["j", "b"], [], ["e-", "e+", "m-", "m+", "g"], ["j"]]
    assert events["objects"]["eta"][2, 4] == -2.38244e-05 and events["MET"][2] == 55000.0


def test_parse_write_parse_keeps_structure_types_and_values(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text(ALL_CODES)
    first = read_events(path)
    out = write_events(tmp_path / "again.csv", first)
    again = read_events(out)
    assert ak.array_equal(first, again)
    lines = out.read_text().splitlines()
    assert [line.count(";") - 5 for line in lines] == [2, 0, 5, 1]  # objects per line kept
    assert lines[0] == ALL_CODES.splitlines()[0]  # numbers in their shortest exact form


event_strategy = st.fixed_dictionaries({
    "event_id": st.integers(0, 2**62),
    "process": st.sampled_from(["ttbar", "z_jets", "4top"]),
    "numbers": st.lists(st.floats(allow_nan=False, allow_infinity=False, width=64), min_size=3, max_size=3),
    "objects": st.lists(st.tuples(st.integers(0, len(OBJECT_CODES) - 1),
                                  st.lists(st.floats(-1e9, 1e9, allow_nan=False), min_size=4, max_size=4)),
                        max_size=6),
})


@settings(max_examples=60, deadline=None)
@given(st.lists(event_strategy, max_size=12))
def test_round_trip_holds_for_any_events(tmp_path_factory, events):
    array = ak.zip({
        "event_id": np.array([e["event_id"] for e in events], dtype=np.int64),
        "process_id": ak.Array([e["process"] for e in events]),
        **{f: np.array([e["numbers"][k] for e in events], dtype=np.float64)
           for k, f in enumerate(("event_weight", "MET", "METphi"))},
        "objects": ak.unflatten(ak.zip({
            "obj": np.array([o[0] for e in events for o in e["objects"]], dtype=np.int8),
            **{f: np.array([o[1][k] for e in events for o in e["objects"]], dtype=np.float64)
               for k, f in enumerate(("E", "pt", "eta", "phi"))},
        }), np.array([len(e["objects"]) for e in events], dtype=np.int64)),
    }, depth_limit=1)
    lines = format_lines(array)
    assert len(lines) == len(events)
    if events:
        assert ak.array_equal(parse_lines(lines, tmp_path_factory.getbasetemp()), array)


def test_chunks_give_the_same_events(tmp_path):
    path = hepae.make_darkmachines_sample(tmp_path / "s.csv", n_events=300, seed=3)
    whole = read_events(path)
    chunks = list(iterate_events(path, chunk_lines=70))
    assert [len(c) for c in chunks] == [70, 70, 70, 70, 20]
    assert ak.array_equal(ak.concatenate(chunks), whole)


def test_generated_sample_has_mixed_objects_met_and_empty_events(tmp_path):
    events = read_events(hepae.make_darkmachines_sample(tmp_path / "s.csv", n_events=2000, seed=1))
    codes = set(ak.to_numpy(ak.flatten(events["objects"]["obj"])).tolist())
    assert codes == set(range(len(OBJECT_CODES)))
    assert ak.sum(ak.num(events["objects"]) == 0) > 0 and ak.all(events["MET"] >= 0)
    jets = events["objects"][events["objects"]["obj"] <= 1]
    assert ak.all(jets["E"] >= jets["pt"] * np.cosh(jets["eta"]) * (1 - 1e-6))  # physical: E >= |p|
    assert ak.all(jets["pt"] > 20e3) and ak.all(abs(jets["eta"]) < 2.8)


def test_the_shared_ttbar_file_round_trips_byte_for_byte(tmp_path):
    source = shared_file("data/ttbar_13TeV_darkmachines.csv")
    events = read_events(source)
    assert len(events) == 4000 and ak.sum(ak.num(events["objects"])) == 23262
    out = write_events(tmp_path / "copy.csv", iterate_events(source, chunk_lines=777))
    assert out.read_bytes() == source.read_bytes()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("7;ttbar;1;2", "line 2: expected at least 5 ';'-separated event fields"),
        ("", "line 2: expected at least 5"),
        ("7;ttbar;1;2;3;j,1,2,3;", r"line 2: object 'j,1,2,3' must have 5 ','-separated fields"),
        ("7;ttbar;1;2;3;x,1,2,3,4;", "line 2: unknown object code 'x'"),
        ("7;ttbar;1;2;3;j,1,2,abc,4;", "line 2: eta 'abc' is not a number"),
        ("7;ttbar;one;2;3;", "line 2: event_weight 'one' is not a number"),
        ("7.5;ttbar;1;2;3;", r"line 2: event_ID '7.5' is not a 64-bit integer"),
        ("99999999999999999999;ttbar;1;2;3;", r"line 2: event_ID '99999999999999999999' is not a 64-bit"),
    ],
)
def test_malformed_lines_name_the_file_the_line_and_the_problem(tmp_path, line, message):
    path = tmp_path / "bad.csv"
    path.write_text("1;ttbar;1;2;3;j,1,2,3,4;\n" + line + "\n")
    with pytest.raises(MalformedCSVError, match=message) as info:
        read_events(path)
    assert str(path) in str(info.value)


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(InputFileError, match="does not exist"):
        read_events(tmp_path / "nope.csv")
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00\x81" * 10)
    with pytest.raises(InputFileError, match="not a text file"):
        read_events(binary)


def test_an_empty_file_has_no_events(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    events = read_events(path)
    assert len(events) == 0 and events.fields == ["event_id", "process_id", "event_weight", "MET", "METphi", "objects"]
    assert write_events(tmp_path / "out.csv", events).read_text() == ""


# -- one definition of a line: split on '\n', strip one trailing '\r'; a byte order mark is skipped ---------
LINES = ["1;ttbar;1;2;3;j,1,2,3,4;", "2;ttbar;0.5;100;-3.1;", "3;wjets;2;5.5e+04;0;e-,1,2,3,4;g,5,6,7,8;"]


def _joined(endings: list[str], final: bool) -> bytes:
    text = "".join(line + ending for line, ending in zip(LINES, endings))
    return (text if final else text[: -len(endings[-1])]).encode()


@pytest.mark.parametrize("bom", [b"", BOM], ids=["no-bom", "bom"])
@pytest.mark.parametrize("endings", [["\n"] * 3, ["\r\n"] * 3, ["\r\n", "\n", "\r\n"]], ids=["LF", "CRLF", "mixed"])
@pytest.mark.parametrize("final", [True, False], ids=["final-newline", "no-final-newline"])
def test_line_endings_and_a_byte_order_mark_are_counted_as_they_are_parsed(tmp_path, bom, endings, final):
    path = tmp_path / "events.csv"
    path.write_bytes(bom + _joined(endings, final))
    events = read_events(path)
    assert count_events(path) == len(events) == 3
    assert events["event_id"].tolist() == [1, 2, 3] and events["process_id"].tolist() == ["ttbar", "ttbar", "wjets"]
    assert ak.num(events["objects"]).tolist() == [1, 0, 2]
    assert [len(c) for c in iterate_events(path, chunk_lines=2)] == [2, 1]


@pytest.mark.parametrize(
    ("data", "line"),
    [
        ("\r".join(LINES) + "\r", 1),  # old Mac line endings: one line for the counter, so an error
        ("\r".join(LINES), 1),
        (LINES[0] + "\n" + LINES[1] + "\r" + LINES[2] + "\n", 2),  # mixed
        (LINES[0] + "\r\r\n" + LINES[1] + "\n", 1),  # one '\r' too many
        ("\n".join(LINES * 40) + "\n" + LINES[0] + "\r" + LINES[1] + "\n", 121),  # in a later chunk
    ],
    ids=["CR", "CR-no-final", "mixed", "CR-CR-LF", "later-chunk"],
)
def test_a_lone_carriage_return_names_the_file_and_line(tmp_path, data, line):
    path = tmp_path / "mac.csv"
    path.write_bytes(data.encode())
    message = rf"mac.csv, line {line}: a carriage return .*\(old Mac line endings\?\)"
    with pytest.raises(MalformedCSVError, match=message):
        list(iterate_events(path, chunk_lines=50))


def test_only_a_byte_order_mark_is_an_empty_file(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(BOM)
    assert count_events(path) == len(read_events(path)) == 0


def test_a_crlf_file_compresses_and_decompresses_like_its_lf_twin(tmp_path):
    """The data-loss bug: counting and parsing disagreed, compress exited 0 and every decompress failed."""
    lf, crlf = tmp_path / "lf.csv", tmp_path / "crlf.csv"
    lf.write_bytes(_joined(["\n"] * 3, True))
    crlf.write_bytes(BOM + _joined(["\r\n"] * 3, False))
    for source in (lf, crlf):
        hepae.compress(source, tmp_path / f"{source.stem}.c.root", codec="lossless",
                       featureset="darkmachines-jets-4d", progress=False)
        hepae.decompress(tmp_path / f"{source.stem}.c.root", tmp_path / f"{source.stem}.r.csv", progress=False)
    assert (tmp_path / "crlf.r.csv").read_bytes() == (tmp_path / "lf.r.csv").read_bytes()
    assert ak.array_equal(read_events(tmp_path / "crlf.r.csv"), read_events(lf))


def test_special_files_are_refused_without_reading_them(tmp_path):
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)
    with pytest.raises(InputFileError, match=r"fifo.csv is not a regular file \(a FIFO\)"):
        read_events(fifo)  # a blocking read would hang here
    loop = tmp_path / "loop.csv"
    loop.symlink_to(loop.name)
    with pytest.raises(InputFileError, match="loop.csv is a symbolic link loop"):
        count_events(loop)
