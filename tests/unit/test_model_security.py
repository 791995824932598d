"""A model file is data, never code: hostile skops files are refused before anything in them runs.

Each hostile file is built here, with skops.io.dump or by editing a genuine model's schema.json
inside its zip. Its payload would call ``payload`` (which records the call and creates a file) or
run ``touch`` through the shell; the tests check both stayed untouched.
"""

from __future__ import annotations

import copy
import functools
import io
import json
import operator
import os
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from gcmlm.cli import main
from gcmlm.common.errors import GcmlmError
from gcmlm.fusion.core import inputs
from gcmlm.fusion.core.models import CLASSIFIERS, SELECTIONS, ModelConfig, RiskModel, make_model
from gcmlm.fusion.core.synthetic import merged, planted_tables

PREDICT_TABLE = "tools/fusion-predict/tests/data/new_patients.csv"
EVALUATE_TABLE = "tools/fusion-evaluate/tests/data/external.csv"
CALLS: list = []  # what payload() was called with: must stay empty


def payload(*args, **kwargs):
    """What a hostile file wants to run: records the call and leaves a file behind."""
    CALLS.append(args)
    Path(os.environ.get("GCMLM_TEST_SENTINEL", "gcmlm-sentinel")).touch()
    return args[0] if args else None


class PickledPayload:
    """An object whose unpickling calls payload (what np.load(allow_pickle=True) would do)."""

    def __reduce__(self):
        return payload, ("unpickled",)


@pytest.fixture(scope="module")
def genuine(tmp_path_factory) -> tuple[Path, RiskModel]:
    table = merged(planted_tables(40, noise_features=2, effect=2.0, seed=5))
    columns = [c for c in table.columns if c.startswith(("rad_", "path_", "clin_"))]
    config = ModelConfig(selection="anova", k_features=[2], tuning="none", inner_folds=3)
    model = RiskModel(name="fused", estimator=make_model("fused", {"rad": columns}, config).fit(table, table["mlm"]),
                      features=columns, label="mlm", threshold=0.5, tertiles=[0.3, 0.6],
                      card={"config": config.describe()})
    path = tmp_path_factory.mktemp("genuine") / "fused.skops"
    inputs.save_model(model, path)
    return path, model


# --- building hostile files ---------------------------------------------------------------------------

def nodes(schema: dict):
    """Every node of a skops schema, depth first."""
    stack = [schema]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            if "__loader__" in value:
                yield value
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)


def node_named(schema: dict, name: str, loader: str = "ObjectNode") -> dict:
    return next(n for n in nodes(schema) if n["__loader__"] == loader and f"{n['__module__']}.{n['__class__']}" == name)


def rewritten(source: Path, target: Path, edit=None, replace: dict | None = None, add: dict | None = None) -> Path:
    """A copy of a model zip with its schema edited, members replaced or members added."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename == "schema.json" and edit:
                schema = json.loads(data)
                edit(schema)
                data = json.dumps(schema).encode()
            zout.writestr(info.filename, (replace or {}).get(info.filename, data))
        for name, data in (add or {}).items():
            zout.writestr(name, data)
    return target


def dumped(model: RiskModel, target: Path, **changes) -> Path:
    from skops.io import dump

    hostile = copy.deepcopy(model)
    for key, value in changes.items():
        setattr(hostile, key, value)
    dump(hostile, target)
    return target


def with_selector_score_func(model: RiskModel, target: Path, func) -> Path:
    hostile = copy.deepcopy(model)
    hostile.estimator.named_steps["select"].score_func = func
    return dumped(hostile, target)


def pickled_array() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.array([PickledPayload()], dtype=object), allow_pickle=True)
    return buffer.getvalue()


def first_array(path: Path) -> str:
    with zipfile.ZipFile(path) as archive:
        return next(n for n in archive.namelist() if n.endswith(".npy"))


def set_type(name: str, loader: str, module: str, cls: str):
    def edit(schema):
        node = node_named(schema, name, loader)
        node["__module__"], node["__class__"] = module, cls
    return edit


def hostile_file(kind: str, genuine: tuple[Path, RiskModel], out: Path, pwned: Path) -> Path:
    source, model = genuine
    target = out / f"{kind}.skops"
    scaler = "sklearn.preprocessing._data.StandardScaler"
    build = {
        "function_transformer": lambda: dumped(model, target, estimator=Pipeline(
            [("hook", FunctionTransformer(payload)), ("model", model.estimator)])),
        "score_func_os_system": lambda: with_selector_score_func(model, target, os.system),
        "score_func_sentinel": lambda: with_selector_score_func(model, target, payload),
        "function_in_card": lambda: dumped(model, target, card={"hook": payload}),
        "methodcaller": lambda: dumped(model, target, card={"hook": operator.methodcaller("system", f"touch {pwned}")}),
        "method_reference": lambda: dumped(model, target, card={"hook": model.estimator.fit}),
        "partial": lambda: dumped(model, target, card={"hook": functools.partial(payload, "x")}),
        "object_array": lambda: dumped(model, target, tertiles=np.array([payload, 0.5], dtype=object)),
        "object_array_of_dicts": lambda: dumped(model, target, tertiles=np.array([{"a": 1}], dtype=object)),
        "pickled_array": lambda: rewritten(source, target, replace={first_array(source): pickled_array()}),
        "class_is_eval": lambda: rewritten(source, target, set_type(scaler, "ObjectNode", "builtins", "eval")),
        "module_changed": lambda: rewritten(source, target, set_type(scaler, "ObjectNode", "os", "StandardScaler")),
        "renamed_class": lambda: rewritten(source, target, set_type(
            scaler, "ObjectNode", "sklearn.preprocessing._function_transformer", "FunctionTransformer")),
        "renamed_to_unlisted_class": lambda: rewritten(source, target, set_type(
            scaler, "ObjectNode", "sklearn.compose._target", "TransformedTargetRegressor")),
        "inverse_func_in_card": lambda: dumped(model, target, card={"hook": FunctionTransformer(inverse_func=payload)}),
        "key_type_eval": lambda: rewritten(source, target, set_type("builtins.str", "TypeNode", "builtins", "eval")),
        "loader_swapped": lambda: rewritten(source, target, lambda s: node_named(s, scaler).update(
            {"__loader__": "FunctionNode", "__module__": "os", "__class__": "system"})),
        "old_protocol": lambda: rewritten(source, target, lambda s: s.update(protocol=0)),
        "zip_traversal": lambda: rewritten(source, target, add={"../evil.npy": b"x"}),
        "absolute_member": lambda: rewritten(source, target, add={"/tmp/evil.npy": b"x"}),
    }[kind]
    return build()


REFUSALS = {  # kind: what the one-line refusal must name
    "function_transformer": r"sklearn\.preprocessing\._function_transformer\.FunctionTransformer other than the identity",
    "inverse_func_in_card": r"sklearn\.preprocessing\._function_transformer\.FunctionTransformer other than the identity",
    "score_func_os_system": r"not on the allow-list: type or builtin function reference (posix|os)\.system",
    "score_func_sentinel": r"not on the allow-list: function reference [\w.]*test_model_security\.payload",
    "function_in_card": r"not on the allow-list: function reference [\w.]*test_model_security\.payload",
    "methodcaller": r"not on the allow-list: operator function operator\.methodcaller",
    "method_reference": r"not on the allow-list: method reference sklearn\.pipeline\.Pipeline",
    "partial": r"not on the allow-list: function wrapper functools\.partial",
    "object_array": r"object array holding something other than text \(FunctionNode\)",
    "object_array_of_dicts": r"object array holding something other than text \(DictNode\)",
    "pickled_array": r"pickled array '\w+\.npy' \(dtype object\)",
    "class_is_eval": r"not on the allow-list: builtins\.eval \(as ObjectNode\)",
    "module_changed": r"not on the allow-list: os\.StandardScaler \(as ObjectNode\)",
    "renamed_class": r"sklearn\.preprocessing\._function_transformer\.FunctionTransformer other than the identity",
    "renamed_to_unlisted_class": r"not on the allow-list: sklearn\.compose\._target\.TransformedTargetRegressor",
    "key_type_eval": r"not on the allow-list: type or builtin function reference builtins\.eval",
    "loader_swapped": r"not on the allow-list: function reference os\.system",
    "old_protocol": r"skops protocol 0 \(fusion-train writes 2\)",
    "zip_traversal": r"zip member '\.\./evil\.npy' is not schema\.json or a numpy array file",
    "absolute_member": r"zip member '/tmp/evil\.npy' is not schema\.json or a numpy array file",
}


@pytest.fixture
def sentinel(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "payload-ran"
    monkeypatch.setenv("GCMLM_TEST_SENTINEL", str(path))
    CALLS.clear()
    yield path
    assert not path.exists() and not CALLS, "the hostile payload ran"


@pytest.mark.parametrize("kind", sorted(REFUSALS))
def test_hostile_model_is_refused_before_anything_is_built(kind, genuine, tmp_path, sentinel):
    path = hostile_file(kind, genuine, tmp_path, sentinel)
    with pytest.raises(GcmlmError) as refused:
        inputs.load_model(path)
    assert refused.value.path == str(path) and "\n" not in refused.value.problem
    assert re.match("model file refused: " + REFUSALS[kind], refused.value.problem), refused.value.problem


def stage_argv(stage: str, model: Path, out: Path, repo: Path) -> list[str]:
    if stage == "fusion-predict":
        return ["fusion-predict", "--model", str(model), "--table", str(repo / PREDICT_TABLE), "--out", str(out)]
    return ["fusion-evaluate", "--model", str(model), "--table", str(repo / EVALUATE_TABLE), "--label", "mlm",
            "--out", str(out), "--bootstrap", "10"]


@pytest.mark.parametrize("stage", ["fusion-predict", "fusion-evaluate"])
@pytest.mark.parametrize("kind", sorted(REFUSALS))
def test_both_stages_refuse_with_one_line(kind, stage, genuine, repo, tmp_path, sentinel, capsys):
    model = hostile_file(kind, genuine, tmp_path, sentinel)
    out = tmp_path / "out"
    code = main(stage_argv(stage, model, out, repo))
    err = capsys.readouterr().err.splitlines()
    assert code == 2
    assert len(err) == 1, err
    assert err[0].startswith(f"gcmlm {stage}: error: {model}: model file refused: ")
    assert not out.exists() and not list(tmp_path.glob("out*"))


def test_tree_indices_outside_the_tree_are_refused(tmp_path, sentinel):
    """sklearn follows a tree's child and feature indices without bounds checks: a crafted forest crashes."""
    table = merged(planted_tables(30, noise_features=1, seed=2))
    columns = [c for c in table.columns if c.startswith("rad_")]
    config = ModelConfig(classifier="rf", selection="none", tuning="none", inner_folds=3)
    model = RiskModel(name="rad", estimator=make_model("rad", {"rad": columns}, config).fit(table, table["mlm"]),
                      features=columns)
    genuine_path = tmp_path / "rf.skops"
    inputs.save_model(model, genuine_path)
    inputs.load_model(genuine_path)
    with zipfile.ZipFile(genuine_path) as archive:
        schema = json.loads(archive.read("schema.json"))
        member = next(n for n in nodes(schema) if n["__loader__"] == "TreeNode")["content"]["content"]["nodes"]["file"]
        tree_nodes = np.load(io.BytesIO(archive.read(member)))
    tree_nodes["left_child"][0] = 10**6
    buffer = io.BytesIO()
    np.save(buffer, tree_nodes)
    with pytest.raises(GcmlmError, match="decision tree with child or feature indices outside the tree"):
        inputs.load_model(rewritten(genuine_path, tmp_path / "bad-tree.skops", replace={member: buffer.getvalue()}))


def test_genuine_model_loads_and_predicts_as_before(genuine, repo):
    import pandas as pd

    path, model = genuine
    table = pd.read_csv(repo / PREDICT_TABLE)
    loaded = inputs.load_model(path)
    np.testing.assert_array_equal(loaded.predict_risk(table), model.predict_risk(table))
    shipped = inputs.load_model(repo / "tools/fusion-predict/tests/data/fused.skops")
    assert shipped.name == "fused" and round(shipped.threshold, 4) == 0.6007


# --- the allow-list follows what fusion-train writes ---------------------------------------------------

def configs() -> list[ModelConfig]:
    """Every classifier and every selection (tuned, so inner-CV searches are saved too), and ComBat."""
    pairs = [(c, SELECTIONS[i % len(SELECTIONS)]) for i, c in enumerate(CLASSIFIERS)]
    pairs += [(CLASSIFIERS[i % len(CLASSIFIERS)], s) for i, s in enumerate(SELECTIONS[1:] + SELECTIONS[:1], 1)]
    tuned = [ModelConfig(classifier=c, selection=s, k_features=[2, 3], tuning="fast", inner_folds=3) for c, s in pairs]
    return tuned + [ModelConfig(combat_column="centre", k_features=[2], tuning="none", inner_folds=3)]


def test_every_type_fusion_train_writes_is_allowed(tmp_path):
    """Fails, naming the type and its loader, when fusion-train starts writing a type not in MODEL_FILE_TYPES."""
    table = merged(planted_tables(40, noise_features=2, effect=2.0, seed=5, centres=2))
    y = table["mlm"].to_numpy()
    cols = {m: [c for c in table.columns if c.startswith(f"{m}_")] for m in ("rad", "clin")}
    missing, seen = set(), set()
    for i, config in enumerate(configs()):
        used = {m: c + ([config.combat_column] if config.combat_column else []) for m, c in cols.items()}
        for name in ("rad", "stacked"):
            estimator = make_model(name, used, config).fit(table, y)
            features = list(dict.fromkeys(c for c in used["rad"] + used["clin"]))
            model = RiskModel(name=name, estimator=estimator, features=features, card={"config": config.describe()})
            missing |= saved_types_missing(model, tmp_path / f"{i}-{name}.skops", table, seen)
    assert not missing, f"add to MODEL_FILE_TYPES (inputs.py): {sorted(missing)}"
    assert ("ObjectNode", "gcmlm.fusion.core.harmonize.ComBatHarmonizer") in seen


def saved_types_missing(model: RiskModel, path, table, seen: set) -> set:
    """Save ``model``; the (loader, type) pairs of its file not in MODEL_FILE_TYPES (all seen go to
    ``seen``); when none is missing, the reloaded model must predict exactly as the original."""
    missing = set()
    inputs.save_model(model, path)
    with zipfile.ZipFile(path) as archive:
        for node in nodes(json.loads(archive.read("schema.json"))):
            pair = (node["__loader__"], f"{node['__module__']}.{node['__class__']}")
            seen.add(pair)
            if pair[1] not in inputs.MODEL_FILE_TYPES.get(pair[0], ()) and pair[0] != "CachedNode":
                missing.add(pair)
    if not missing:
        np.testing.assert_array_equal(inputs.load_model(path).predict_risk(table), model.predict_risk(table))
    return missing


def test_every_type_a_survival_model_writes_is_allowed(tmp_path):
    """The same for the time-to-event models (penalised Cox, the Cox stacker; every selection)."""
    from gcmlm.fusion.core import survival

    table = merged(planted_tables(40, noise_features=2, effect=2.0, seed=5, centres=2))
    rng = np.random.default_rng(0)
    y = survival.surv(table["mlm"], rng.exponential(30, len(table)) / (1 + table["mlm"]))
    cols = {m: [c for c in table.columns if c.startswith(f"{m}_")] for m in ("rad", "clin")}
    missing, seen = set(), set()
    for i, selection in enumerate(SELECTIONS):
        config = ModelConfig(selection=selection, k_features=[2, 3], tuning="fast", inner_folds=3, outcome="survival",
                             combat_column="centre" if i == 0 else None)
        used = {m: c + ([config.combat_column] if config.combat_column else []) for m, c in cols.items()}
        for name in ("rad", "stacked"):
            estimator = make_model(name, used, config).fit(table, y)
            features = list(dict.fromkeys(c for c in used["rad"] + used["clin"]))
            model = RiskModel(name=name, estimator=estimator, features=features,
                              card={"config": config.describe(), "outcome": "survival"})
            missing |= saved_types_missing(model, tmp_path / f"s{i}-{name}.skops", table, seen)
    assert not missing, f"add to MODEL_FILE_TYPES (inputs.py): {sorted(missing)}"
    assert ("ObjectNode", "gcmlm.fusion.core.survival.CoxStacker") in seen
