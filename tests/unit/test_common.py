"""Atomic outputs, patient tables and the cohort manifest."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gcmlm.common.atomic import atomic_dir, atomic_file, write_json
from gcmlm.common.errors import GcmlmError
from gcmlm.common.manifest import read_manifest, slide_id, slide_patient_map
from gcmlm.common.tables import (
    feature_columns,
    read_csv_rows,
    read_patient_table,
    write_patient_rows,
    write_patient_table,
)


def test_atomic_file_leaves_nothing_on_failure_and_keeps_the_old_file(tmp_path):
    dest = tmp_path / "out.csv"
    dest.write_text("old")
    with pytest.raises(RuntimeError), atomic_file(dest) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert dest.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_atomic_file_keeps_the_suffix_and_replaces_on_success(tmp_path):
    dest = tmp_path / "sub" / "mask.nii.gz"
    with atomic_file(dest) as tmp:
        assert tmp.name.endswith(".nii.gz") and tmp.parent == dest.parent
        tmp.write_bytes(b"new")
    assert dest.read_bytes() == b"new"
    assert [p.name for p in dest.parent.iterdir()] == ["mask.nii.gz"]


def test_atomic_dir_replaces_whole_folder_only_on_success(tmp_path):
    dest = tmp_path / "cohort"
    with atomic_dir(dest) as tmp:
        (tmp / "a.txt").write_text("1")
    with pytest.raises(KeyboardInterrupt), atomic_dir(dest) as tmp:
        (tmp / "b.txt").write_text("2")
        raise KeyboardInterrupt
    assert [p.name for p in dest.iterdir()] == ["a.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cohort"]


def test_write_json_handles_numpy(tmp_path):
    import json

    import numpy as np

    write_json(tmp_path / "x.json", {"n": np.int64(3), "v": np.arange(2)})
    assert json.loads((tmp_path / "x.json").read_text()) == {"n": 3, "v": [0, 1]}


def test_patient_table_convention(tmp_path):
    table = pd.DataFrame({"rad_a": [1.0, 2.0], "patient_id": ["007", "008"], "mlm": [0, 1], "path_0000": [3, 4]})
    path = write_patient_table(table, tmp_path / "t.csv")
    back = read_patient_table(path)
    assert list(back.columns)[0] == "patient_id"
    assert list(back["patient_id"]) == ["007", "008"]  # IDs stay strings
    assert feature_columns(back) == ["rad_a", "path_0000"]
    assert feature_columns(back, "rad") == ["rad_a"]


@pytest.mark.parametrize(
    "csv, problem",
    [
        ("id,rad_a\n1,2\n", "first column must be 'patient_id'"),
        ("patient_id,rad_a\nP1,2\nP1,3\n", "duplicated patient_id: P1"),
        ("patient_id,rad_a\n,2\n", "rows have no patient_id"),
    ],
)
def test_bad_patient_tables_name_file_and_problem(tmp_path, csv, problem):
    path = tmp_path / "bad.csv"
    path.write_text(csv)
    with pytest.raises(GcmlmError) as info:
        read_patient_table(path)
    assert str(path) in str(info.value) and problem in str(info.value)


def test_manifest_resolves_paths_and_maps_slides(tmp_path):
    (tmp_path / "m.csv").write_text(
        "patient_id,kind,path,label\n"
        "P1,ct,ct/P1.nii.gz,labels/P1.nii.gz\n"
        "P1,slide,slides/P1-A.svs,\n"
        "P1,slide,slides/P1-B.ome.tiff,\n"
        "P2,slide,/abs/P2-A.tiff,\n"
    )
    manifest = read_manifest(tmp_path / "m.csv")
    assert manifest[0]["path"] == str(tmp_path / "ct" / "P1.nii.gz")
    assert manifest[0]["label"] == str(tmp_path / "labels" / "P1.nii.gz")
    assert [row["label"] for row in manifest[1:]] == ["", "", ""]
    assert slide_patient_map(tmp_path / "m.csv") == {"P1-A": "P1", "P1-B": "P1", "P2-A": "P2"}
    assert slide_id("x/GC001-A.ome.tif") == "GC001-A"


def test_manifest_errors(tmp_path):
    (tmp_path / "m.csv").write_text("patient_id,kind,path\nP1,mri,x.nii\n")
    with pytest.raises(GcmlmError, match="unknown kind"):
        read_manifest(tmp_path / "m.csv")
    (tmp_path / "s.csv").write_text("patient_id,slide_id\nP1,S1\nP2,S1\n")
    with pytest.raises(GcmlmError, match="mapped to patients P1 and P2"):
        slide_patient_map(tmp_path / "s.csv")
    (tmp_path / "w.csv").write_text("patient_id,kind,path\nP1,ct,a.nii,extra\n")
    with pytest.raises(GcmlmError, match="w.csv: line 2 has more fields than the header"):
        read_manifest(tmp_path / "w.csv")
    (tmp_path / "n.csv").write_text("patient_id,kind\nP1,ct\n")
    with pytest.raises(GcmlmError, match="lacks column.s. path"):
        read_manifest(tmp_path / "n.csv")


def test_csv_rows_read_as_pandas_reads_strings(tmp_path):
    """read_csv_rows (no pandas) gives what pandas' read_csv(dtype=str, keep_default_na=False) gives."""
    text = '\ufeffpatient_id,kind,path,label\n007,ct,"a,b.nii",\nNA,slide,s.svs\n\n"P 3",slide,"x""y.tiff",\n'
    (tmp_path / "m.csv").write_text(text, encoding="utf-8")
    columns, rows = read_csv_rows(tmp_path / "m.csv")
    theirs = pd.read_csv(tmp_path / "m.csv", dtype=str, keep_default_na=False)
    assert columns == list(theirs.columns)
    assert rows == theirs.to_dict("records")


def test_patient_rows_are_written_byte_for_byte_as_pandas_writes_them(tmp_path):
    """radiomics-extract writes its row without pandas; the file must not change because of it."""
    rng = np.random.default_rng(0)
    edge = [0.0, -0.0, 3.0, 1e-12, 123456789.123, -2.5e300, math.inf, -math.inf, math.nan, 1 / 3]
    rows = [{"patient_id": f"00{i}" if i % 2 else f'GC,"{i}"',  # leading zeros, a comma and quotes
             "rad_a": float(rng.normal() * 10.0 ** rng.integers(-10, 10)), "rad_b": edge[i % len(edge)],
             "rad_c": np.float64(rng.random()), "rad_n": i}
            for i in range(20)]
    write_patient_rows(rows, tmp_path / "ours.csv")
    write_patient_table(pd.DataFrame(rows), tmp_path / "pandas.csv")
    assert (tmp_path / "ours.csv").read_bytes() == (tmp_path / "pandas.csv").read_bytes()
    assert read_patient_table(tmp_path / "ours.csv")["patient_id"].tolist()[:2] == ['GC,"0"', "001"]


def test_patient_rows_refuse_duplicate_or_missing_ids(tmp_path):
    with pytest.raises(GcmlmError, match="duplicated patient_id: P1"):
        write_patient_rows([{"patient_id": "P1", "rad_a": 1.0}, {"patient_id": "P1", "rad_a": 2.0}], tmp_path / "d.csv")
    with pytest.raises(GcmlmError, match="1 rows have no patient_id"):
        write_patient_rows([{"patient_id": " ", "rad_a": 1.0}], tmp_path / "m.csv")
    assert not list(tmp_path.iterdir())


# --- the output policy: checked before any work --------------------------------------------------

def test_check_output_refuses_a_folder_where_a_file_is_expected_and_the_reverse(tmp_path):
    from gcmlm.common.atomic import check_output

    folder, file = tmp_path / "d", tmp_path / "f.csv"
    folder.mkdir()
    file.write_text("keep me")
    with pytest.raises(GcmlmError, match="existing folder; expected a file path"):
        check_output(folder, "file")
    with pytest.raises(GcmlmError, match="existing file; refusing to replace it"):
        check_output(file, "dir")
    assert file.read_text() == "keep me"
    assert check_output(tmp_path / "new" / "deeper" / "x.csv", "file") == tmp_path / "new" / "deeper" / "x.csv"


def test_check_output_refuses_to_overwrite_an_input(tmp_path):
    from gcmlm.common.atomic import check_outputs

    data = tmp_path / "cohort"
    data.mkdir()
    table = data / "table.csv"
    table.write_text("patient_id\n")
    with pytest.raises(GcmlmError, match="would overwrite the input"):
        check_outputs(files=[table], inputs=[table])
    with pytest.raises(GcmlmError, match="would overwrite the input"):
        check_outputs(dirs=[tmp_path], inputs=[table])  # replacing the folder would delete it
    check_outputs(files=[data / "out.csv"], inputs=[table])  # beside an input is fine
    with pytest.raises(GcmlmError, match="same path is given for two outputs"):
        check_outputs(files=[tmp_path / "a.csv", tmp_path / "b" / ".." / "a.csv"])


def test_check_output_refuses_unwritable_folders_and_files_in_the_way(tmp_path):
    import os

    from gcmlm.common.atomic import check_output

    blocker = tmp_path / "blocker"
    blocker.write_text("")
    with pytest.raises(GcmlmError, match="is not a folder"):
        check_output(blocker / "sub" / "x.csv", "file")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root ignores permission bits: use a read-only mount point instead
            locked = Path("/proc/self")
        with pytest.raises(GcmlmError):
            check_output(locked / "x.csv", "file")
    finally:
        (tmp_path / "locked").chmod(0o700)


def test_check_output_refuses_names_too_long_for_the_file_system(tmp_path):
    from gcmlm.common.atomic import atomic_file, check_output

    with pytest.raises(GcmlmError, match=r"name too long for the file system \(300 bytes; at most 255\)"):
        check_output(tmp_path / ("a" * 300) / "x.csv", "file")
    # 240 bytes fit the file system but not with the temporary name added: refused before any work
    name = "s" * 236 + ".png"
    with pytest.raises(GcmlmError, match="as outputs are first written under a temporary name"):
        check_output(tmp_path / name, "file")
    ok = "s" * 150 + ".png"
    check_output(tmp_path / ok, "file")
    with atomic_file(tmp_path / ok) as tmp:
        tmp.write_bytes(b"x")
    assert (tmp_path / ok).read_bytes() == b"x"


def test_the_next_run_removes_what_a_killed_run_left(tmp_path):
    import subprocess
    import sys

    from gcmlm.common.atomic import atomic_dir

    dest = tmp_path / "cohort"
    code = ("import os, sys\nfrom gcmlm.common.atomic import atomic_dir, atomic_file\n"
            f"with atomic_dir({str(dest)!r}) as t:\n    (t / 'half').write_text('x')\n    os._exit(9)\n")
    subprocess.run([sys.executable, "-c", code], check=False)
    leftovers = [p.name for p in tmp_path.iterdir()]
    assert len(leftovers) == 1 and leftovers[0].startswith(".cohort.tmp-")  # what kill -9 leaves
    with atomic_dir(dest) as tmp:
        (tmp / "a.txt").write_text("1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cohort"]


def test_temporaries_of_a_live_run_are_left_alone(tmp_path):
    import os

    from gcmlm.common.atomic import _tmp_prefix, remove_stale_temporaries

    dest = tmp_path / "x.csv"
    live = tmp_path / (_tmp_prefix(dest, "tmp") + "abcdefgh.csv")  # this process: alive
    live.write_text("")
    dead = tmp_path / _tmp_prefix(dest, "tmp").replace(f"-{os.getpid()}-", "-999999999-")
    dead.write_text("")
    assert remove_stale_temporaries(dest) == [dead]
    assert live.exists() and not dead.exists()
