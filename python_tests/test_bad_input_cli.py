"""Issue 18: the CLI bad-input suite, generated from tables. Every command gets wrong types, out-of-range
and non-finite values, bad choices, unknown options, missing / corrupt / wrong-kind files, and config
files (TOML, JSON, YAML) with wrong value types and unknown keys. Each case must end with status 2 and
exactly one stderr line ``eirnn-fast <command>: error: ...`` naming the argument (or file, or key), no
traceback, and nothing written to the working directory. Commands run in-process through
``eirnn_fast.cli.main`` (the whole suite takes seconds).

The case count is printed by ``pytest python_tests/test_bad_input_cli.py -q`` and quoted in the README.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

import eirnn_fast.cli as cli
from eirnn_fast.cli_checks import ARG_RULES
from eirnn_fast.flyvis.train import FlyVisTrainConfig
from eirnn_fast.train import FitConfig

# the positionals / required options each command needs, so that only the value under test is wrong
REQUIRED = {
    "info": [],
    "fit": ["--data", "{d}/absent.mat"],  # absent: had the bad value passed, the error would name the file
    "diagnose": ["--data", "{d}/absent.mat"],
    "evaluate": ["{d}/not_a_run"],
    "experiment": ["phase2", "--quick"],
    "flyvis generate": ["--out-dir", "gen"],
    "flyvis train": ["{d}/gnn.yaml", "--out", "run"],
    "flyvis evaluate": ["{d}/not_a_run"],
    "flyvis ladder": ["{d}/ladder.yaml", "--out", "lad"],
    "explore": ["{d}/explore.yaml", "--out", "exp"],
}
POSITIONAL = {"evaluate", "experiment", "flyvis evaluate", "flyvis ladder", "explore"}

CASES = []


def case(command, args, expect, name, own="all"):
    """``own``: "all" = the command's REQUIRED arguments first, "rest" = ``args`` starts with the
    positional under test (REQUIRED's first item dropped), "none" = ``args`` only."""
    CASES.append(pytest.param(command, args, expect, own, id=f"{command.replace(' ', '-')}:{name}"))


def _subparsers():
    parser = cli.build_parser()
    top = parser._subparsers._group_actions[0].choices
    for name, p in top.items():
        if name == "flyvis":
            for sub, q in p._subparsers._group_actions[0].choices.items():
                yield f"flyvis {sub}", q
        else:
            yield name, p


def _type_name(action):
    return getattr(action.type, "__name__", None)


# -- 1. every option of every command: wrong types, bad choices; every command: unknown options
for command, p in _subparsers():
    case(command, ["--nope"], "unrecognized arguments: --nope", "unknown-option")
    case(command, ["--Debug"], "unrecognized arguments: --Debug", "unknown-flag")
    for action in p._actions:
        if not action.option_strings or action.option_strings[0] in ("-h", "--help"):
            continue
        flag = action.option_strings[0]
        kind = _type_name(action)
        optional = "_optional" in getattr(action.type, "__qualname__", "")  # "" / "none" = None, legal
        if kind == "int":
            for bad in ("x", "1.5", "1e3") + (() if optional else ("",)):
                case(command, [f"{flag}={bad}"], f"argument {flag}: invalid int value", f"{flag}={bad!r}")
        elif kind == "float":
            for bad in ("x", "1,5") + (() if optional else ("",)):
                case(command, [f"{flag}={bad}"], f"argument {flag}: invalid float value", f"{flag}={bad!r}")
        elif kind == "loads":
            for bad in ("{bad", "[1,"):
                case(command, [f"{flag}={bad}"], f"argument {flag}: invalid loads value", f"{flag}={bad!r}")
        if action.choices is not None:
            case(command, [flag, "bogus"], f"argument {flag}: invalid choice: 'bogus'", f"{flag}-choice")
        if action.nargs is None and action.type is not None and action.const is None:
            case(command, [flag], f"argument {flag}: expected one argument", f"{flag}-no-value")
    if command in POSITIONAL:
        case(command, [], "the following arguments are required", "no-positional", own="none")
    elif command == "flyvis train":  # the YAML is optional next to --data-path, but one of them is needed
        case(command, [], "give a YAML config or --data-path", "no-positional", own="none")

# -- 2. every numeric option's range (cli_checks.ARG_RULES): below the bound, non-finite
for command, rules in ARG_RULES.items():
    for dest, (_, what) in rules.items():
        flag = "--" + dest.replace("_", "-")
        if what.startswith("must be an integer >= "):
            lo = int(what.rsplit(" ", 1)[1])
            bads = [str(lo - 1), str(lo - 100)]
        elif what.startswith("must be in ("):
            bads = ["0", "-1", "100.5", "nan", "inf"]
        else:
            bads = ["-1", "nan", "inf", "-inf"] + (["0"] if "> 0" in what else [])
        for bad in bads:
            case(command, [f"{flag}={bad}"], f"argument {flag}: {what}", f"{flag}={bad}")

# -- 3. fit: every FitConfig range (validate), every float non-finite, every field's type in a config file
from test_cli_validation import BAD_FIT_VALUES  # noqa: E402

for flag, bad, message in BAD_FIT_VALUES:
    case("fit", [f"{flag}={bad}"], message, f"{flag}={bad}")
_FIELDS = {f.name: f for f in dataclasses.fields(FitConfig)}
for name, f in _FIELDS.items():
    flag = "--" + name.replace("_", "-")
    base = str(f.type).replace("Optional[", "").rstrip("]")
    if base == "float":
        for bad in ("inf", "-inf"):
            case("fit", [f"{flag}={bad}"], name, f"{flag}={bad}")
    if base == "int" and name not in ("batch_size",):
        case("fit", [f"{flag}=-100"], name, f"{flag}=-100")
    wrong = {"int": '"x"', "float": '"x"', "str": "3", "bool": '"yes"'}.get(base, "3")
    own = "none" if name in ("data", "session") else "all"  # the case's --data would override the file's
    # the one config mechanism's message: the file, the key, the type it must be (eirnn_fast.configs)
    expect = f"wrong_{name}.toml: config key '{name}': must be"
    case("fit", ["--config", f"{{d}}/wrong_{name}.toml"], expect, f"toml-{name}-wrong-type", own=own)
    expect = f"wrong_{name}.json: config key '{name}': must be"
    case("fit", ["--config", f"{{d}}/wrong_{name}.json"], expect, f"json-{name}-list", own=own)
case(
    "fit",
    ["--config", "{d}/unknown_key.toml"],
    "unknown config key 'epocs' (did you mean 'epochs'?)",
    "toml-unknown-key",
)
case(
    "fit",
    ["--config", "{d}/unknown_key.json"],
    "unknown config key 'epocs' (did you mean 'epochs'?)",
    "json-unknown-key",
)
case(
    "fit",
    ["--config", "{d}/unknown_key.yaml"],
    "unknown config key 'epocs' (did you mean 'epochs'?)",
    "yaml-unknown-key",
)
case(
    "fit",
    ["--config", "{d}/wrong_epochs.yaml"],
    "wrong_epochs.yaml: config key 'epochs': must be int",
    "yaml-wrong-type",
)
case("fit", ["--config", "{d}/corrupt.toml"], "corrupt.toml: not valid TOML (line 1, column", "toml-corrupt")
case("fit", ["--config", "{d}/corrupt.json"], "corrupt.json: not valid JSON (line 1, column 2)", "json-corrupt")
case("fit", ["--config", "{d}/corrupt.yaml"], "corrupt.yaml: not valid YAML (line", "yaml-corrupt")
case("fit", ["--config", "{d}/list.json"], "list.json: a config must be a mapping", "json-not-a-table")
case("fit", ["--config", "{d}/absent.toml"], "absent.toml: no such config file", "config-missing")
case("fit", ["--config", "{d}"], "no such config file", "config-is-a-folder")
case("fit", ["--session", "08_99"], "session must be one of", "session-unknown", own="none")
case("fit", ["--data", "{d}/x.mat", "--session", "08_14"], "give data or session, not both", "data-and-session")

# -- 4. data files (fit, diagnose): missing, a folder, empty, garbage, truncated HDF5, missing variables
DATA_FILES = [
    ("absent.mat", "absent.mat: no such file"),
    ("empty.mat", "empty.mat"),
    ("garbage.mat", "not a MAT file"),
    ("truncated.mat", "truncated.mat"),
    ("partial.mat", "missing required variable(s)"),
    ("folder.mat", "folder.mat"),
]
for command in ("fit", "diagnose"):
    for fname, expect in DATA_FILES:
        case(command, ["--data", f"{{d}}/{fname}"], expect, f"data-{fname}", own="none")

# -- 5. run folders (evaluate, flyvis evaluate): missing, not a run, corrupt files
for fname, expect in [
    ("absent_run", "no checkpoint.pt"),
    ("not_a_run", "no checkpoint.pt"),
    ("corrupt_ckpt_run", "checkpoint.pt"),
    ("corrupt_ckpt_run/checkpoint.pt", "checkpoint.pt"),
]:
    case("evaluate", [f"{{d}}/{fname}"], expect, fname, own="rest")
for fname, expect in [
    ("absent_run", "is not a run folder"),
    ("not_a_run", "is not a run folder"),
    ("corrupt_config_run", "config.json"),
    ("wrong_config_run", "config key 'lr'"),
]:
    case("flyvis evaluate", [f"{{d}}/{fname}"], expect, fname, own="rest")

# -- 6. YAML configs (flyvis train, explore, ladder): missing, folder, corrupt, not a mapping,
#       every key with a wrong type, unknown keys
for command in ("flyvis train", "explore", "flyvis ladder"):
    for fname, expect in [
        ("absent.yaml", "absent.yaml: no such file"),
        ("", "is a folder"),
        ("corrupt.yaml", "not valid YAML (line"),
        ("list.yaml", "list.yaml"),
    ]:
        case(command, [f"{{d}}/{fname}"], expect, f"yaml-{fname or 'folder'}", own="rest")
_GNN_SKIP = {"extra", "data_path"}
for f in dataclasses.fields(FlyVisTrainConfig):
    if f.name in _GNN_SKIP or str(f.type) not in ("int", "float", "bool", "str", "Optional[float]", "Optional[int]"):
        continue
    for tag in ("string", "list"):
        case(
            "flyvis train", [f"{{d}}/gnn_{f.name}_{tag}.yaml"], f"config key '{f.name}'", f"{f.name}-{tag}", own="rest"
        )
case("flyvis train", ["{d}/gnn_unknown.yaml"], "config key 'lerning_rate'", "gnn-unknown", own="rest")
case("flyvis train", ["{d}/gnn_no_data.yaml"], "data_path", "gnn-no-data-path", own="rest")
case("flyvis train", ["{d}/gnn_data_int.yaml"], "data_path", "gnn-data-path-int", own="rest")
case("flyvis train", ["{d}/gnn_data_absent.yaml"], "gnn_data_absent", "gnn-data-absent", own="rest")
EXPLORE_BASE = {
    "name": "bad",
    "kind": "sc",
    "slots": 1,
    "iterations": 1,
    "seed": 0,
    "base_config": {"epochs": 2, "lr": 3e-3},
    "search_space": {"lr": {"range": [1e-3, 1e-2], "log": True}},
}
EXPLORE_WRONG = {
    "kind": ["nope", 3],
    "slots": ["x", 0, -1, 1.5],
    "iterations": ["x", 0, -2],
    "seed": ["x", -1],
    "name": [3, ""],
    "ucb_c": ["x", -1],
    "base_config": ["x", {"epocs": 3}, {"lr": -1}],
    "search_space": ["x", {"lr": {"range": [1]}}, {"nope_param": [1, 2]}],
    "bogus_key": [1],
}
for key, values in EXPLORE_WRONG.items():
    for i, _ in enumerate(values):
        case("explore", [f"{{d}}/explore_{key}_{i}.yaml"], key, f"{key}-{i}", own="rest")
LADDER_WRONG = {"rungs": ["x", [], [{"extent": "big"}], [{"extent": -1}], [{"bogus": 1}]], "seeds": ["x", [-1]]}
for key, values in LADDER_WRONG.items():
    for i, _ in enumerate(values):
        case("flyvis ladder", [f"{{d}}/ladder_{key}_{i}.yaml"], key, f"{key}-{i}", own="rest")

# -- 7. experiment suites: unknown name, folder without configs, corrupt / wrong-typed / unknown-key TOML
for suite, expect in [
    ("nosuch", "unknown suite 'nosuch'"),
    ("{d}/suite_empty", "suite_empty"),
    ("{d}/suite_corrupt", "bad.toml"),
    ("{d}/suite_wrong_type", "config key 'epochs': must be int"),
    ("{d}/suite_unknown_key", "epocs"),
    ("{d}/suite_bad_value", "lr must be > 0"),
]:
    case("experiment", [suite], expect, f"suite-{suite.rsplit('/', 1)[-1]}", own="rest")


def _write_files(d):
    from eirnn_fast.data import write_mat

    (d / "not_a_run").mkdir()
    (d / "folder.mat").mkdir()
    (d / "empty.mat").write_bytes(b"")
    (d / "garbage.mat").write_bytes(b"\x00\x01 not a mat file " * 20)
    (d / "truncated.mat").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 40)
    write_mat(d / "partial.mat", {"n_trials": 3.0}, fmt="v7.3")
    (d / "corrupt_ckpt_run").mkdir()
    (d / "corrupt_ckpt_run" / "checkpoint.pt").write_bytes(b"not a torch file")
    (d / "corrupt_config_run").mkdir()
    (d / "corrupt_config_run" / "config.json").write_text("{not json")
    (d / "corrupt_config_run" / "checkpoint.pt").write_bytes(b"x")
    (d / "wrong_config_run").mkdir()
    (d / "wrong_config_run" / "config.json").write_text(json.dumps({"lr": "fast", "data_path": str(d)}))
    (d / "wrong_config_run" / "checkpoint.pt").write_bytes(b"x")
    # fit configs
    for name, f in _FIELDS.items():
        base = str(f.type).replace("Optional[", "").rstrip("]")
        wrong = {"int": '"x"', "float": '"x"', "str": "3", "bool": '"yes"'}.get(base, "3")
        (d / f"wrong_{name}.toml").write_text(f"{name} = {wrong}\n")
        (d / f"wrong_{name}.json").write_text(json.dumps({name: [1]}))
    (d / "unknown_key.toml").write_text("epocs = 3\n")
    (d / "unknown_key.json").write_text('{"epocs": 3}')
    (d / "unknown_key.yaml").write_text("epocs: 3\n")
    (d / "wrong_epochs.yaml").write_text("epochs: [3]\n")
    (d / "corrupt.toml").write_text("epochs = = 3\n")
    (d / "corrupt.json").write_text("{epochs: 3")
    (d / "list.json").write_text("[1, 2]")
    # YAML
    (d / "corrupt.yaml").write_text("a: [1\n")
    (d / "list.yaml").write_text("- a\n- b\n")
    data = d / "no_such_data"
    (d / "gnn.yaml").write_text(f"data_path: {data}\n")
    (d / "gnn_unknown.yaml").write_text(f"data_path: {data}\nlerning_rate: 1\n")
    (d / "gnn_no_data.yaml").write_text("training:\n  n_epochs: 1\n")
    (d / "gnn_data_int.yaml").write_text("data_path: 5\n")
    (d / "gnn_data_absent.yaml").write_text("data_path: gnn_data_absent_folder\n")
    for f in dataclasses.fields(FlyVisTrainConfig):
        if f.name in _GNN_SKIP:
            continue
        (d / f"gnn_{f.name}_string.yaml").write_text(
            f"data_path: {data}\n{f.name}: {'not_a_number' if str(f.type) != 'str' else '[1, 2]'}\n"
        )
        (d / f"gnn_{f.name}_list.yaml").write_text(f"data_path: {data}\n{f.name}: [1, 2]\n")
    import yaml

    (d / "explore.yaml").write_text(yaml.safe_dump(EXPLORE_BASE))
    for key, values in EXPLORE_WRONG.items():
        for i, v in enumerate(values):
            (d / f"explore_{key}_{i}.yaml").write_text(yaml.safe_dump({**EXPLORE_BASE, key: v}))
    ladder = {"seeds": [0], "rungs": [{"extent": 1, "n_frames": 800}]}
    (d / "ladder.yaml").write_text(yaml.safe_dump(ladder))
    for key, values in LADDER_WRONG.items():
        for i, v in enumerate(values):
            (d / f"ladder_{key}_{i}.yaml").write_text(yaml.safe_dump({**ladder, key: v}))
    # suites
    for name, files in {
        "suite_empty": {},
        "suite_corrupt": {"bad.toml": "[fit\nepochs = 3\n"},
        "suite_wrong_type": {"_base.toml": '[fit]\nepochs = "x"\n', "a.toml": "[fit]\n"},
        "suite_unknown_key": {"a.toml": "[fit]\nepocs = 3\n"},
        "suite_bad_value": {"a.toml": "[fit]\nlr = -1.0\n"},
    }.items():
        (d / name).mkdir()
        for fname, text in files.items():
            (d / name / fname).write_text(text)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad_input_files")
    _write_files(d)
    return d


def test_the_suite_has_several_hundred_cases():
    assert len(CASES) >= 500, len(CASES)


@pytest.mark.parametrize("command, args, expect, own", CASES)
def test_bad_input_is_one_line_with_status_2(command, args, expect, own, files, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EIRNN_FAST_DEBUG", raising=False)
    required = {"all": REQUIRED[command], "rest": REQUIRED[command][1:], "none": []}[own]
    words = command.split() + (args + required if own == "rest" else required + args)
    argv = [a.replace("{d}", str(files)) for a in words]
    rc = cli.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2, (argv, err)
    assert len(err) == 1, (argv, err)
    assert err[0].startswith(f"eirnn-fast {command}: error: "), (argv, err)
    assert expect in err[0], (argv, err)
    assert "Traceback" not in err[0] and "[Errno" not in err[0]
    assert list(tmp_path.iterdir()) == [], (argv, sorted(p.name for p in tmp_path.iterdir()))
