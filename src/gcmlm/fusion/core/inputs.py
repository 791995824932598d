"""Reading what the fusion stages consume: patient tables, outcome labels and saved models."""

from __future__ import annotations

import copy
import json
import os
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from gcmlm.common.errors import GcmlmError, one_line
from gcmlm.common.tables import MODALITIES, PATIENT_ID, feature_columns, read_labels, read_patient_table  # noqa: F401 (read_labels: re-exported)
from gcmlm.fusion.core.checks import require_patients

MODEL_SUFFIX = ".skops"
CARD = "model_card.json"


def modality_columns(table: pd.DataFrame) -> dict[str, list[str]]:
    """Feature columns per modality present in the table (rad, path, clin order)."""
    return {m: cols for m in MODALITIES if (cols := feature_columns(table, m))}


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    table = read_patient_table(path)
    require_patients(table, path)
    bad = [c for c in feature_columns(table) if not pd.api.types.is_numeric_dtype(table[c])]
    if bad:
        raise GcmlmError(f"non-numeric feature column(s) {', '.join(bad[:5])}; run fusion-merge first", path)
    return table


# --- saved models -------------------------------------------------------------------------------------
#
# A model file comes from another centre, so it is data, never code. skops' own allow-list is not a
# boundary (sklearn and numpy hold objects that call whatever function they are given), so we read the
# file's schema.json ourselves and refuse, before skops builds a single object, every node that is not
# a type fusion-train writes, in the role fusion-train writes it.

# Every type a fusion-train model file may name, by the skops loader that builds it (schema.json's
# "__loader__"), as "<__module__>.<__class__>" exactly as skops writes it. Loaders not listed (functions,
# methods, functools.partial, operator.*, bytes, sets, constructor calls, ...) are always refused.
# When fusion-train gains a class (a new classifier, selector, ...): train a tiny model that uses it,
# run tests/unit/test_model_security.py (test_every_type_fusion_train_writes_is_allowed names what is
# missing), check the class holds only data (no function, callable or code-string parameter)
# and add it under its loader here.
MODEL_FILE_TYPES: dict[str, frozenset[str]] = {
    "ObjectNode": frozenset({
        "gcmlm.fusion.core.models.RiskModel",
        "gcmlm.fusion.core.models.ColumnSelector",
        "gcmlm.fusion.core.harmonize.ComBatHarmonizer",
        "gcmlm.fusion.core.selection.CorrelationPruner",
        "gcmlm.fusion.core.selection.KBest",
        "gcmlm.fusion.core.selection.L1Selector",
        "gcmlm.fusion.core.selection.MRMRSelector",
        "gcmlm.fusion.core.selection.Passthrough",
        "sklearn.pipeline.Pipeline",
        "sklearn.compose._column_transformer.ColumnTransformer",
        "sklearn.impute._base.SimpleImputer",
        "sklearn.feature_selection._variance_threshold.VarianceThreshold",
        "sklearn.preprocessing._data.StandardScaler",
        "sklearn.preprocessing._label.LabelEncoder",
        "sklearn.linear_model._logistic.LogisticRegression",
        "sklearn.svm._classes.SVC",
        "sklearn.calibration.CalibratedClassifierCV",
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
        "sklearn.ensemble._forest.RandomForestClassifier",
        "sklearn.tree._classes.DecisionTreeClassifier",
        "sklearn.ensemble._stacking.StackingClassifier",
        "sklearn.model_selection._split.StratifiedKFold",
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn._loss.loss.HalfBinomialLoss",
        "sklearn._loss.link.LogitLink",
        "sklearn._loss.link.Interval",
        # ColumnTransformer's "passthrough" remainder; only without functions (IDENTITY_ONLY)
        "sklearn.preprocessing._function_transformer.FunctionTransformer",
        # time-to-event models (core/survival.py): penalised Cox, its baseline hazard, the survival stacker
        "gcmlm.fusion.core.survival.CoxStacker",
        "gcmlm.fusion.core.survival.EventStratifiedKFold",
        "sksurv.linear_model.coxnet.CoxnetSurvivalAnalysis",
        "sksurv.linear_model.coxph.BreslowEstimator",
        "sksurv.functions.StepFunction",
    }),
    "TreeNode": frozenset({"sklearn.tree._tree.Tree"}),
    "LossNode": frozenset({"sklearn._loss._loss.CyHalfBinomialLoss"}),
    "RandomGeneratorNode": frozenset({"numpy.random._generator.Generator"}),  # bit generator PCG64 only
    "SliceNode": frozenset({"builtins.slice"}),
    "DictNode": frozenset({"builtins.dict", "sklearn.utils._bunch.Bunch"}),
    "ListNode": frozenset({"builtins.list"}),
    "TupleNode": frozenset({"builtins.tuple"}),
    "JsonNode": frozenset({"builtins.str"}),  # any JSON value; skops names them all str
    "TypeNode": frozenset({"builtins.str"}),  # the type of each dict key, called on the key
    "NdArrayNode": frozenset({"numpy.ndarray", "numpy.float64", "numpy.int64", "numpy.uint64"}),
    "DTypeNode": frozenset({"numpy.dtype"}),
}
IDENTITY_ONLY = {"sklearn.preprocessing._function_transformer.FunctionTransformer":
                 ("func", "inverse_func", "kw_args", "inv_kw_args")}  # attributes that must be null
BIT_GENERATOR = "PCG64"
MODEL_FILE_PROTOCOL = 2  # skops' schema protocol of the files fusion-train writes (skops >= 0.10)
REFERENCE_LOADERS = {"FunctionNode": "function reference", "MethodNode": "method reference",
                     "PartialNode": "function wrapper", "OperatorFuncNode": "operator function",
                     "TypeNode": "type or builtin function reference"}
SCHEMA = "schema.json"
MAX_SCHEMA_BYTES = 64 << 20
MAX_MEMBER_BYTES = 512 << 20
MAX_TOTAL_BYTES = 2 << 30
ARRAY_MEMBER = re.compile(r"[0-9A-Za-z_-]{1,64}\.npy")


def _refuse(why: str, path: Path) -> GcmlmError:
    return GcmlmError(f"model file refused: {why}", path)


def _shown(name: object) -> str:
    """A name from the file as one short printable line (the file chooses it: it may hold newlines)."""
    return str(name).encode("unicode_escape").decode("ascii")[:120]


def _checked_members(archive: zipfile.ZipFile, path: Path) -> set[str]:
    """Member names: schema.json and numpy arrays only, plain names, of bounded size."""
    names, total = set(), 0
    for info in archive.infolist():
        name = info.filename
        if name != SCHEMA and not ARRAY_MEMBER.fullmatch(name):
            raise _refuse(f"zip member '{_shown(name)}' is not schema.json or a numpy array file", path)
        if name in names:
            raise _refuse(f"zip member '{name}' appears twice", path)
        if info.file_size > (MAX_SCHEMA_BYTES if name == SCHEMA else MAX_MEMBER_BYTES):
            raise _refuse(f"zip member '{name}' unpacks to {info.file_size} bytes (too large)", path)
        total += info.file_size
        names.add(name)
    if total > MAX_TOTAL_BYTES:
        raise _refuse(f"members unpack to {total} bytes (limit {MAX_TOTAL_BYTES})", path)
    if SCHEMA not in names:
        raise _refuse("no schema.json (not a skops file)", path)
    return names


def _array_header(archive: zipfile.ZipFile, member: str, path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from a .npy header, read as text, never as a pickle."""
    from numpy.lib import format as npy

    with archive.open(member) as stream:
        try:
            version = npy.read_magic(stream)
            read = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
            shape, _, dtype = read(stream, max_header_size=10_000)
        except Exception as exc:  # numpy raises ValueError/SyntaxError for a malformed header
            raise _refuse(f"array '{member}' has no valid numpy header ({type(exc).__name__})", path) from None
    if dtype.hasobject:
        raise _refuse(f"pickled array '{member}' (dtype {_shown(dtype)})", path)
    return shape, dtype


def _tree_nodes(archive: zipfile.ZipFile, node: dict, path: Path) -> None:
    """A decision tree's child and feature indices must stay inside it: sklearn follows them unchecked."""
    try:
        n_features = int(json.loads(node["__reduce__"]["args"]["content"][0]["content"]))
        member = node["content"]["content"]["nodes"]["file"]
        with archive.open(member) as stream:
            nodes = np.load(stream, allow_pickle=False)
        left, right, feature = nodes["left_child"], nodes["right_child"], nodes["feature"]
    except Exception as exc:  # any other layout is not what sklearn's Tree writes
        raise _refuse(f"decision tree with an unexpected layout ({type(exc).__name__})", path) from None
    _tree_indices((left == -1) & (right == -1), left, right, feature, n_features, path)


def _tree_indices(leaf, left, right, feature, n_features: int, path: Path) -> None:
    """Inner nodes point forward, inside the tree (no loop, no read past it), at an existing feature."""
    index = np.arange(len(leaf))
    size = len(leaf)
    left, right, feature = (np.asarray(a, dtype=np.int64) for a in (left, right, feature))
    inner = ~leaf & (left > index) & (right > index) & (left < size) & (right < size) \
        & (feature >= 0) & (feature < n_features)
    if not (leaf | inner).all():
        raise _refuse("decision tree with child or feature indices outside the tree", path)


def _boosted_trees(archive: zipfile.ZipFile, node: dict, path: Path) -> None:
    """The same for HistGradientBoosting's trees (numeric splits only: fusion-train has no categories)."""
    try:
        state = node["content"]["content"]
        if "_predictors" not in state:
            return  # not fitted (a stacked model's estimator template)
        n_features = int(json.loads(state["n_features_in_"]["content"]))
        trees = [tree for step in state["_predictors"]["content"] for tree in step["content"]]
        for tree in trees:
            with archive.open(tree["content"]["content"]["nodes"]["file"]) as stream:
                nodes = np.load(stream, allow_pickle=False)
            if nodes["is_categorical"].any():
                raise _refuse("gradient-boosting tree with categorical splits", path)
            _tree_indices(nodes["is_leaf"] != 0, nodes["left"], nodes["right"], nodes["feature_idx"], n_features, path)
    except GcmlmError:
        raise
    except Exception as exc:  # any other layout is not what sklearn writes
        raise _refuse(f"gradient-boosting model with an unexpected layout ({type(exc).__name__})", path) from None


def _json_value(node: object) -> object:
    """The value of a JsonNode; a marker for anything else."""
    if isinstance(node, dict) and node.get("__loader__") == "JsonNode" and isinstance(node.get("content"), str):
        try:
            return json.loads(node["content"])
        except ValueError:
            pass
    return _json_value


def _constraints(node: dict, loader: str, name: str, path: Path) -> None:
    """Allowed types that could hold something callable: only in the form fusion-train writes them."""
    if name in IDENTITY_ONLY:
        state = node.get("content", {}).get("content", {})
        if any(attr not in state or _json_value(state[attr]) is not None for attr in IDENTITY_ONLY[name]):
            raise _refuse(f"{name} other than the identity ({', '.join(IDENTITY_ONLY[name])} must be null)", path)
    if loader == "RandomGeneratorNode":
        try:
            generator = _json_value(node["content"]["bit_generator"]["content"]["bit_generator"])
        except (KeyError, TypeError):
            generator = None
        if generator != BIT_GENERATOR:
            raise _refuse(f"random generator '{_shown(generator)}' (only {BIT_GENERATOR})", path)
    if loader == "SliceNode":
        bounds = node.get("content")
        if not (isinstance(bounds, dict) and set(bounds) == {"start", "stop", "step"}
                and all(v is None or type(v) is int for v in bounds.values())):
            raise _refuse("slice with bounds other than integers", path)


def _object_array_items(node: dict, path: Path) -> None:
    """Object arrays (sklearn's feature_names_in_) may hold strings only."""
    items = node.get("content")
    if not isinstance(items, list):
        raise _refuse("object array without items", path)
    for item in items:
        if not (isinstance(item, dict) and item.get("__loader__") == "JsonNode"
                and isinstance(json.loads(item.get("content", "null")), str)):
            kind = item.get("__loader__") if isinstance(item, dict) else type(item).__name__
            raise _refuse(f"object array holding something other than text ({_shown(kind)})", path)


def _is_object_state(state: object) -> bool:
    """An object's saved attributes: a dict, or null for objects without any (sklearn's LogitLink)."""
    if not isinstance(state, dict):
        return False
    if state.get("__loader__") == "DictNode":
        return isinstance(state.get("content"), dict)
    return _json_value(state) is None


def _check_node(node: dict, archive: zipfile.ZipFile, members: set[str], path: Path) -> str:
    """One schema node: its loader and type must be on MODEL_FILE_TYPES; returns '<module>.<class>'."""
    loader, module, cls = node.get("__loader__"), node.get("__module__"), node.get("__class__")
    if not all(isinstance(v, str) for v in (loader, module, cls)):
        raise _refuse("schema node without a string __loader__, __module__ and __class__", path)
    name = f"{module}.{cls}"
    if loader in REFERENCE_LOADERS and name not in MODEL_FILE_TYPES.get(loader, ()):
        raise _refuse(f"not on the allow-list: {REFERENCE_LOADERS[loader]} {_shown(name)}", path)
    if loader not in MODEL_FILE_TYPES:
        raise _refuse(f"not on the allow-list: {_shown(loader)} {_shown(name)}", path)
    if name not in MODEL_FILE_TYPES[loader]:
        raise _refuse(f"not on the allow-list: {_shown(name)} (as {_shown(loader)})", path)
    if loader == "ObjectNode" and "content" in node and not _is_object_state(node["content"]):
        raise _refuse(f"{_shown(name)} whose state is not a dict", path)
    if loader == "NdArrayNode":
        if node.get("type") == "json":
            _object_array_items(node, path)
        elif node.get("type") != "numpy" or node.get("file") not in members:
            raise _refuse(f"array of storage type '{_shown(node.get('type'))}' or without its file", path)
        else:
            _array_header(archive, node["file"], path)
    if loader == "TreeNode":
        _tree_nodes(archive, node, path)
    if name == "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier":
        _boosted_trees(archive, node, path)
    _constraints(node, loader, name, path)
    return name


def _signature(node: dict) -> tuple:
    """What identifies a node's own value (its children are checked on their own)."""
    content = node.get("content")
    return (node.get("__loader__"), node.get("__module__"), node.get("__class__"), node.get("type"),
            node.get("file"), content if isinstance(content, str) else None)


def _schema_types(archive: zipfile.ZipFile, members: set[str], path: Path) -> set[str]:
    """Walk every node of schema.json (iteratively: a hostile file may nest deeply); the types met."""
    try:
        schema = json.loads(archive.read(SCHEMA))
    except (ValueError, RecursionError):
        raise _refuse("schema.json is not valid JSON", path) from None
    if not isinstance(schema, dict) or schema.get("protocol") != MODEL_FILE_PROTOCOL:
        found = schema.get("protocol") if isinstance(schema, dict) else None
        raise _refuse(f"skops protocol {_shown(found)} (fusion-train writes {MODEL_FILE_PROTOCOL})", path)
    if schema.get("__module__") != "gcmlm.fusion.core.models" or schema.get("__class__") != "RiskModel":
        raise _refuse(f"the file holds {_shown(schema.get('__module__'))}.{_shown(schema.get('__class__'))}, "
                      "not a gcmlm RiskModel", path)
    types: set[str] = set()
    by_id: dict[object, tuple] = {}  # skops builds each __id__ once: every node naming it must be the same
    stack: list[object] = [schema]
    while stack:
        value = stack.pop()
        if isinstance(value, list):
            stack.extend(reversed(value))
            continue
        if not isinstance(value, dict):
            continue
        if {"__loader__", "__module__", "__class__"} & value.keys():
            types.add(_check_node(value, archive, members, path))
            if "__id__" in value and by_id.setdefault(value["__id__"], _signature(value)) != _signature(value):
                raise _refuse(f"object id {_shown(value['__id__'])} names two different objects", path)
        stack.extend(reversed(list(value.values())))
    return types


def trusted_types(path: Path) -> list[str]:
    """The exact types of a model file, after checking every node against MODEL_FILE_TYPES.

    Reads the zip and its schema.json as data only (zipfile, json, numpy headers): nothing in the file
    is imported or constructed here. Refusals are GcmlmError("model file refused: ...").
    """
    try:
        with zipfile.ZipFile(path) as archive:
            members = _checked_members(archive, path)
            return sorted(_schema_types(archive, members, path))
    except (KeyError, TypeError, AttributeError, ValueError) as exc:  # a schema.json not shaped like skops'
        raise _refuse(f"malformed schema.json ({type(exc).__name__})", path) from None
    except zipfile.BadZipFile as exc:
        raise GcmlmError(f"not a readable skops model (BadZipFile: {str(exc)[:120]})", path) from None


def load_model(path: str | os.PathLike):
    from skops.io import load

    from gcmlm.fusion.core.models import RiskModel

    path = Path(path)
    if not path.is_file():
        raise GcmlmError("no such model file", path)
    trusted = trusted_types(path)
    try:
        model = load(path, trusted=trusted)
    except Exception as exc:  # skops raises many types for a corrupt or foreign file
        raise GcmlmError(f"not a readable skops model ({type(exc).__name__}: {str(exc)[:120]})", path) from None
    if not isinstance(model, RiskModel):
        raise GcmlmError(f"not a gcmlm risk model (found {type(model).__name__})", path)
    return model


def frozen_estimator(estimator):
    """The estimator as saved: a tuned search is replaced by the pipeline it chose.

    A fitted GridSearchCV carries its scorer (a function reference) and cv_results_ (object arrays),
    which a model file must not hold; prediction only ever uses best_estimator_, and the chosen
    hyperparameters are in the model card. The caller's estimator is not changed.
    """
    from sklearn.ensemble import StackingClassifier
    from sklearn.model_selection import GridSearchCV
    from sklearn.utils import Bunch

    if isinstance(estimator, GridSearchCV):
        return frozen_estimator(estimator.best_estimator_ if hasattr(estimator, "best_estimator_")
                                else estimator.estimator)
    if isinstance(estimator, StackingClassifier) or getattr(estimator, "_gcmlm_stack", False):
        stacked = copy.copy(estimator)
        stacked.estimators = [(name, frozen_estimator(e)) for name, e in estimator.estimators]
        if hasattr(estimator, "estimators_"):
            stacked.estimators_ = [frozen_estimator(e) for e in estimator.estimators_]
        if hasattr(estimator, "named_estimators_"):
            stacked.named_estimators_ = Bunch(**{n: frozen_estimator(e)
                                                 for n, e in estimator.named_estimators_.items()})
        return stacked
    return estimator


def save_model(model, path: str | os.PathLike) -> None:
    from skops.io import dump

    from gcmlm.common.atomic import atomic_file

    saved = copy.copy(model)
    saved.estimator = frozen_estimator(model.estimator)
    with atomic_file(path) as tmp:
        dump(saved, tmp)


def load_models(path: str | os.PathLike, names: list[str] | None = None) -> dict:
    """A training output folder (all models, or ``names``) or one .skops file."""
    path = Path(path)
    if path.is_dir():
        card_path = path / CARD
        if not card_path.is_file():
            raise GcmlmError(f"not a fusion-train output folder (no {CARD})", path)
        try:
            card = json.loads(card_path.read_text())
            available = [str(name) for name in card["models"]]
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise GcmlmError(f"unreadable model card ({one_line(exc)})", card_path) from None
        wanted = names or available
        unknown = [n for n in wanted if n not in available]
        if unknown:
            raise GcmlmError(f"no model(s) {', '.join(unknown)}; available: {', '.join(available)}", path)
        return {n: load_model(path / "models" / f"{n}{MODEL_SUFFIX}") for n in wanted}
    model = load_model(path)
    if names and model.name not in names:
        raise GcmlmError(f"the file holds model '{model.name}', not {', '.join(names)}", path)
    return {model.name: model}


def check_columns(model, table: pd.DataFrame, source: str | os.PathLike) -> None:
    missing = model.missing_columns(table)
    if missing:
        shown = ", ".join(missing[:20]) + (f" ... ({len(missing)} in all)" if len(missing) > 20 else "")
        raise GcmlmError(f"table lacks {len(missing)} column(s) model '{model.name}' needs: {shown}", source)
