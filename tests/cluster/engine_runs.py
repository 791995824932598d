"""Run a CWL workflow with cwltool or Toil and describe its outputs by content, for comparisons."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
DATA = Path(__file__).resolve().parent / "data"


def engine_env(extra_path: list[Path] | None = None) -> dict[str, str]:
    """The environment engines need: the venv first on PATH (Toil workers on Slurm nodes run
    `_toil_worker` and `gcmlm` from it; without it they exit 127)."""
    env = dict(os.environ)
    dirs = [str(p) for p in (extra_path or [])] + [str(VENV_BIN), env.get("PATH", "")]
    env["PATH"] = os.pathsep.join(dirs)
    return env


def cwltool_cmd(outdir: Path, *args: str) -> list[str]:
    # --enable-ext: our GPU steps carry cwltool:CUDARequirement (without it cwltool warns).
    return ["cwltool", "--enable-ext", "--no-container", "--outdir", str(outdir), *args]


def toil_cmd(jobstore: Path, outdir: Path, batch_system: str, *args: str) -> list[str]:
    """Toil's --workDir stays at its default, the system temp folder (/tmp): each job's TMPDIR is
    --workDir + ~70 characters of Toil's and cwltool's folders, and patch-embed's data loader
    workers hang when Unix socket paths under TMPDIR pass 107 characters (AF_UNIX path too long)."""
    cmd = [
        "toil-cwl-runner",
        "--enable-ext",
        "--jobStore", str(jobstore),
        "--batchSystem", batch_system,
        "--no-container",
        "--outdir", str(outdir),
        "--logInfo",
    ]
    return [*cmd, *args]


def run_engine(cmd: list[str], env: dict[str, str] | None = None, timeout: float = 900) -> dict:
    """Run an engine command; return its parsed output object, or fail with its log tail."""
    result = subprocess.run(cmd, capture_output=True, text=True, env=env or engine_env(), timeout=timeout, cwd=REPO)
    if result.returncode != 0:
        raise AssertionError(f"{cmd[0]} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return json.loads(result.stdout)


def sha1(path: str | os.PathLike) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def local_path(obj: dict) -> str:
    if "path" in obj:
        return obj["path"]
    return url2pathname(urlparse(obj["location"]).path)


# Run records inside JSON reports, not results: stage timings (`*_s`) and where the engine staged
# an input (`path`, a fresh temporary folder per run). They differ between any two runs.
VOLATILE_JSON_KEY = re.compile(r"(_s|_seconds)$|^path$")


def _stable_json(obj, volatile: re.Pattern = VOLATILE_JSON_KEY, files: dict[str, str] | None = None):
    """``obj`` without the keys ``volatile`` matches; values of ``file`` keys mapped through ``files``."""
    if isinstance(obj, dict):
        return {k: files.get(v, v) if files and k == "file" and isinstance(v, str) else _stable_json(v, volatile, files)
                for k, v in obj.items() if not volatile.search(k)}
    if isinstance(obj, list):
        return [_stable_json(v, volatile, files) for v in obj]
    return obj


# In a skops archive: object ids (differ between any two processes) and sklearn's fit/score timings
# (GridSearchCV.cv_results_, refit_time_: run records, like the `*_s` keys of our JSON reports).
SKOPS_VOLATILE_KEY = re.compile(r"^__id__$|^(mean|std)_(fit|score)_time$|^refit_time_$")


def _skops_digest(path: str | os.PathLike) -> str:
    """Digest of a skops model without its volatile parts: stored arrays are named after Python
    object ids, so each array file is replaced by its content's sha1, and the schema is digested
    without ids and timings."""
    with zipfile.ZipFile(path) as archive:
        contents = {n: hashlib.sha1(archive.read(n)).hexdigest() for n in archive.namelist() if n != "schema.json"}
        schema = json.loads(archive.read("schema.json"))
    stable = _stable_json(schema, SKOPS_VOLATILE_KEY, contents)
    return "skops:" + hashlib.sha1(json.dumps(stable, sort_keys=True).encode()).hexdigest()


def file_digest(path: str | os.PathLike) -> str:
    """sha1 of the bytes; for JSON files, of the content without its run records; for skops
    models, of the content without skops' per-process member names."""
    if str(path).endswith(".skops"):
        return _skops_digest(path)
    if str(path).endswith(".json"):
        stable = json.dumps(_stable_json(json.loads(Path(path).read_text())), sort_keys=True)
        return "json:" + hashlib.sha1(stable.encode()).hexdigest()
    return sha1(path)


def content_of(value):
    """Replace each File/Directory in a CWL output object by what it holds (name + digest of the
    bytes we read ourselves), so runs in different folders and engines compare equal."""
    if isinstance(value, dict) and value.get("class") == "File":
        return {"basename": value["basename"], "sha1": file_digest(local_path(value))}
    if isinstance(value, dict) and value.get("class") == "Directory":
        root = Path(local_path(value))
        return {
            "basename": value["basename"],
            "files": {str(p.relative_to(root)): file_digest(p) for p in sorted(root.rglob("*")) if p.is_file()},
        }
    if isinstance(value, dict):
        return {key: content_of(item) for key, item in value.items()}
    if isinstance(value, list):
        return [content_of(item) for item in value]
    return value


def have_slurm() -> bool:
    """True when a Slurm controller answers and has a usable node."""
    if not shutil.which("sinfo"):
        return False
    try:
        result = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return False
    states = result.stdout.split()
    return result.returncode == 0 and any(s.rstrip("*") in {"idle", "mixed", "allocated"} for s in states)


def slurm_jobs(comment: str) -> list[dict[str, str]]:
    """The Slurm jobs tagged with --comment=COMMENT (Toil passes it on via --slurmArgs), as
    scontrol's key=value fields."""
    out = subprocess.run(["scontrol", "-o", "show", "job"], capture_output=True, text=True, check=True).stdout
    jobs = []
    for line in out.splitlines():
        fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
        if fields.get("Comment") == comment:
            jobs.append(fields)
    return jobs


# cwltool (3.3.20260925) writes the RDF description of a Directory in a nested workflow's outputs twice
# and lists it twice in tagmanifest-sha256.txt, the first time with a stale digest; bagit-python's
# validate() rejects such a bag ("lists ... multiple times with conflicting values"). The last
# entry is the file's true digest. We accept that, for those files only, and say so in docs/cluster.md.
CWLTOOL_REWRITTEN_TAGS = re.compile(r"^metadata/directory-[0-9a-f-]+\.ttl$")


def _check_bag_manifest(bag: Path, manifest: str, algorithm: str) -> list[str]:
    """Verify every entry of a BagIt manifest; return the names it lists (each once)."""
    digests: dict[str, str] = {}
    for line in (bag / manifest).read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        if name in digests:
            assert CWLTOOL_REWRITTEN_TAGS.match(name), f"{manifest} lists {name} twice"
        digests[name] = digest
    for name, digest in digests.items():
        assert hashlib.new(algorithm, (bag / name).read_bytes()).hexdigest() == digest, name
    return list(digests)


def check_provenance_bag(bag: Path, steps: tuple[str, ...]) -> set[str]:
    """Assert that ``bag`` is a complete CWLProv research object (cwltool --provenance): a BagIt bag
    whose payload and tag manifests verify, with the packed workflow, job and outputs, and a PROV
    graph holding the workflow run and a run of each of ``steps`` (at any depth of nesting). Returns
    the sha1s of its payload (cwltool stores every input and output file under data/ by checksum)."""
    assert (bag / "bagit.txt").read_text().startswith("BagIt-Version:")
    payload = _check_bag_manifest(bag, "manifest-sha1.txt", "sha1")
    assert sorted(payload) == sorted(p.relative_to(bag).as_posix() for p in (bag / "data").rglob("*") if p.is_file())
    tags = _check_bag_manifest(bag, "tagmanifest-sha256.txt", "sha256")
    for name in ("workflow/packed.cwl", "workflow/primary-job.json", "workflow/primary-output.json",
                 "metadata/manifest.json", "metadata/provenance/primary.cwlprov.provn"):
        assert name in tags
    provn = (bag / "metadata/provenance/primary.cwlprov.provn").read_text()
    assert "prov:type='wfprov:WorkflowRun'" in provn
    for step in steps:
        assert re.search(rf'prov:label="Run of workflow/packed\.cwl#main(/[^"]*)?/{re.escape(step)}"', provn), step
    return {Path(name).name for name in payload}
