"""Issue 17 item 3: the one config mechanism (eirnn_fast.configs): keys, aliases, types, files, flags."""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import pytest

import eirnn_fast.cli as cli
from eirnn_fast import configs
from eirnn_fast.cli.flyvis import generate_config_from_args
from eirnn_fast.flyvis import GenerateConfig
from eirnn_fast.flyvis.train_config import FlyVisTrainConfig
from eirnn_fast.train import FitConfig


@dataclass
class Toy:
    epochs: int = 3
    lr: float = 0.1
    name: str = "toy"
    quiet: bool = False
    limit: Optional[int] = None
    clip: Optional[float] = 99.0
    kinds: Tuple[str, ...] = ("a", "b")
    sizes: List[int] = field(default_factory=list)
    extra: Dict[str, Any] = field(default_factory=dict)
    mode: str = "fast"

    CONFIG_ALIASES = {"learning_rate": "lr", "n_epochs": "epochs"}
    CONFIG_CHOICES = {"mode": ("fast", "slow"), "kinds": ("a", "b", "c")}
    CONFIG_HELP = {"epochs": "how many epochs"}
    FLAG_ALIASES = {"epochs": ("--n-epochs",)}


# -- keys ---------------------------------------------------------------------------------------------
def test_unknown_key_says_did_you_mean_and_names_the_file():
    with pytest.raises(ValueError, match=r"^toy.toml: unknown config key 'epocs' \(did you mean 'epochs'\?\)$"):
        configs.from_mapping(Toy, {"epocs": 3}, source="toy.toml")


def test_every_unknown_key_is_named():
    with pytest.raises(ValueError) as e:
        configs.from_mapping(Toy, {"epocs": 3, "zzzzzz": 1})
    assert "unknown config keys 'epocs' (did you mean 'epochs'?); 'zzzzzz'" in str(e.value)


def test_an_alias_is_accepted_and_suggested():
    assert configs.from_mapping(Toy, {"learning_rate": 0.5, "n_epochs": 2}) == {"lr": 0.5, "epochs": 2}
    with pytest.raises(ValueError, match="did you mean 'learning_rate'"):
        configs.from_mapping(Toy, {"learning_rat": 0.5})


def test_a_key_under_two_names_with_different_values_is_refused():
    with pytest.raises(ValueError, match="config key 'learning_rate': conflicts with another name for 'lr'"):
        configs.from_mapping(Toy, {"lr": 0.1, "learning_rate": 0.5})
    assert configs.from_mapping(Toy, {"lr": 0.5, "learning_rate": 0.5}) == {"lr": 0.5}


def test_nested_prefix_names_the_section():
    with pytest.raises(ValueError, match="unknown config key 'training.epocs'"):
        configs.from_mapping(Toy, {"epocs": 1}, prefix="training.")


# -- values -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "key, value, what",
    [
        ("epochs", "3", "must be int, got str '3'"),
        ("epochs", 3.0, "must be int, got float 3.0"),
        ("epochs", True, "must be int, got bool True"),  # a bool is not a number
        ("lr", False, "must be float, got bool False"),
        ("lr", "fast", "must be float, got str 'fast'"),
        ("name", 3, "must be str, got int 3"),
        ("quiet", 1, "must be bool, got int 1"),  # nor is a number a bool
        ("quiet", "yes", "must be bool, got str 'yes'"),
        ("limit", 1.5, "must be int or none, got float 1.5"),
        ("epochs", None, "must be int, got none"),
        ("kinds", "a", "must be a list of str, got str 'a'"),
        ("sizes", [1, "x"], "must be a list of int, got list [1, 'x']"),
        ("extra", [1], "must be a table (dict), got list [1]"),
    ],
)
def test_type_errors_name_the_key_and_the_file(key, value, what):
    with pytest.raises(TypeError) as e:
        configs.from_mapping(Toy, {key: value}, source="c.json")
    assert str(e.value) == f"c.json: config key {key!r}: {what}"
    assert isinstance(e.value, ValueError)  # FlyVis callers caught ValueError, FitConfig's TypeError


def test_choices_are_checked_per_item():
    with pytest.raises(ValueError, match=r"config key 'mode': must be one of \('fast', 'slow'\), got 'medium'"):
        configs.from_mapping(Toy, {"mode": "medium"})
    with pytest.raises(ValueError, match="config key 'kinds': must be one of .*got 'd'"):
        configs.from_mapping(Toy, {"kinds": ["a", "d"]})


def test_lossless_casts():
    out = configs.from_mapping(Toy, {"lr": 1, "kinds": ["c"], "limit": None, "clip": None, "extra": {"a": 1}})
    assert out == {"lr": 1.0, "kinds": ("c",), "limit": None, "clip": None, "extra": {"a": 1}}
    assert type(out["lr"]) is float and isinstance(out["kinds"], tuple)
    assert configs.from_mapping(Toy, {"name": __import__("pathlib").Path("x/y")}) == {"name": "x/y"}
    with pytest.raises(TypeError, match="'lr': must be float"):
        configs.from_mapping(Toy, {"lr": "1e-3"})  # only YAML files take numeric strings
    assert configs.from_mapping(Toy, {"lr": "1e-3"}, numeric_strings=True) == {"lr": 1e-3}


def test_check_types_of_an_instance():
    configs.check_types(Toy())
    with pytest.raises(TypeError, match="config key 'epochs': must be int, got str 'x'"):
        configs.check_types(Toy(epochs="x"))


# -- files --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, text",
    [
        ("c.toml", 'epochs = 5\nlr = 0.5\nkinds = ["c"]\n[extra]\na = 1\n'),
        ("c.yaml", "epochs: 5\nlr: 5e-1\nkinds: [c]\nextra: {a: 1}\n"),  # 5e-1: a string to PyYAML
        ("c.yml", "epochs: 5\nlr: 0.5\nkinds: [c]\nextra: {a: 1}\n"),
        ("c.json", '{"epochs": 5, "lr": 0.5, "kinds": ["c"], "extra": {"a": 1}}'),
    ],
)
def test_each_format_reads_the_same_config(tmp_path, name, text):
    (tmp_path / name).write_text(text)
    assert configs.from_file(Toy, tmp_path / name) == {"epochs": 5, "lr": 0.5, "kinds": ("c",), "extra": {"a": 1}}


@pytest.mark.parametrize(
    "name, text, what",
    [
        ("bad.toml", "epochs = = 3\n", "bad.toml: not valid TOML (line 1, column 10): Invalid value"),
        ("bad.json", '{\n"epochs": }', "bad.json: not valid JSON (line 2, column 11): Expecting value"),
        ("bad.yaml", "a: [1\n", "bad.yaml: not valid YAML (line 2, column 1)"),
        ("list.yaml", "- 1\n", "list.yaml: a config must be a mapping (a table / an object), got list"),
        ("list.json", "[1]", "list.json: a config must be a mapping (a table / an object), got list"),
    ],
)
def test_a_bad_file_names_the_file_and_the_line(tmp_path, name, text, what):
    (tmp_path / name).write_text(text)
    with pytest.raises(ValueError) as e:
        configs.read_config_file(tmp_path / name)
    assert str(e.value).startswith(str(tmp_path / what.split(":")[0]) + ":") and what in str(e.value)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ValueError, match="absent.toml: no such config file$"):
        configs.read_config_file(tmp_path / "absent.toml")
    with pytest.raises(ValueError, match="no such config file \\(it is a folder\\)"):
        configs.read_config_file(tmp_path)


def test_a_section_is_read_when_present(tmp_path):
    (tmp_path / "s.toml").write_text('description = "x"\n[fit]\nepochs = 2\n')
    assert configs.read_config_file(tmp_path / "s.toml", section="fit") == {"epochs": 2}
    (tmp_path / "flat.toml").write_text("epochs = 2\n")
    assert configs.read_config_file(tmp_path / "flat.toml", section="fit") == {"epochs": 2}


# -- flags --------------------------------------------------------------------------------------------
def _parser(cls=Toy, **kw):
    p = argparse.ArgumentParser()
    configs.add_flags(p, cls, **kw)
    return p


def test_flags_follow_the_annotations():
    p = _parser()
    args = p.parse_args(
        ["--n-epochs", "4", "--lr", "0.5", "--quiet", "--limit", "none", "--kinds", "a", "c", "--extra", '{"a": 1}']
    )
    assert configs.overrides_from_args(args, Toy) == {
        "epochs": 4,
        "lr": 0.5,
        "quiet": True,
        "limit": None,
        "kinds": ("a", "c"),
        "extra": {"a": 1},
    }
    assert configs.overrides_from_args(p.parse_args(["--no-quiet", "--clip", "50"]), Toy) == {
        "quiet": False,
        "clip": 50.0,
    }


def test_an_old_flag_works_and_warns(capsys):
    args = _parser().parse_args(["--n-epochs", "4"])
    assert configs.overrides_from_args(args, Toy) == {"epochs": 4}
    assert "warning: --n-epochs is an old name, use --epochs" in capsys.readouterr().err
    args = _parser().parse_args(["--epochs", "5"])
    assert configs.overrides_from_args(args, Toy) == {"epochs": 5} and capsys.readouterr().err == ""


def test_a_flag_not_given_does_not_override():
    assert configs.overrides_from_args(_parser().parse_args([]), Toy) == {}


def test_flag_help_and_choices():
    p = _parser()
    helps = {a.dest: a.help for a in p._actions}
    assert (
        helps["epochs"] == "how many epochs (default: 3) (old name: --n-epochs)"
        and helps["quiet"] == "(default: --no-quiet)"
    )
    with pytest.raises(SystemExit):
        p.parse_args(["--mode", "medium"])
    with pytest.raises(SystemExit):
        p.parse_args(["--epochs", "x"])


def test_only_and_skip():
    assert configs.add_flags(argparse.ArgumentParser(), Toy, only=("lr", "mode")) == ["lr", "mode"]
    assert "lr" not in configs.add_flags(argparse.ArgumentParser(), Toy, skip=("lr",))


@pytest.mark.parametrize(
    "cls, argv, without",
    [
        (FitConfig, ["fit"], ()),
        (GenerateConfig, ["flyvis", "generate"], ()),
        (FlyVisTrainConfig, ["flyvis", "train"], ("extra",)),  # extra: the YAML's free sections, kept verbatim
    ],
)
def test_every_field_has_a_flag(cls, argv, without):
    """A new field without a flag fails here: each field of FitConfig, GenerateConfig and
    FlyVisTrainConfig is an option of its command, under --field-name, storing into the field."""
    parser = cli.build_parser()
    sub = parser._subparsers._group_actions[0].choices[argv[0]]
    if len(argv) > 1:
        sub = sub._subparsers._group_actions[0].choices[argv[1]]
    by_dest = {a.dest: a for a in sub._actions}
    for f in dataclasses.fields(cls):
        if f.name in without:
            assert f.name not in by_dest
            continue
        assert f.name in by_dest, f"{cls.__name__}.{f.name} has no flag"
        assert configs.flag_name(f.name) in by_dest[f.name].option_strings
        assert by_dest[f.name].default is argparse.SUPPRESS  # not given: the file / preset / default wins


def test_fit_flags_lay_over_the_config_file_and_preset(tmp_path):
    (tmp_path / "c.toml").write_text('protocol = "predecessor"\nepochs = 7\nclip_percentile = 90.0\n')
    parser = cli.build_parser()
    args = parser.parse_args(["fit", "--config", str(tmp_path / "c.toml"), "--lr", "0.5", "--clip-percentile", "none"])
    cfg = cli.fit.config_from_args(args)
    assert (cfg.protocol, cfg.epochs, cfg.lr, cfg.clip_percentile) == ("predecessor", 7, 0.5, None)
    assert cfg.batch_size == FitConfig.preset("predecessor").batch_size  # from the preset: no flag given
    args = parser.parse_args(["fit", "--config", str(tmp_path / "c.toml")])
    assert cli.fit.config_from_args(args).clip_percentile == 90.0


def test_generate_flags_build_its_config():
    parser = cli.build_parser()
    args = parser.parse_args(
        ["flyvis", "generate", "--out-dir", "x", "--extent", "1", "--kinds", "edge", "flash", "--no-plots", "--quiet"]
    )
    cfg = generate_config_from_args(args)
    assert (cfg.extent, cfg.kinds, cfg.plots, cfg.progress) == (1, ("edge", "flash"), False, False)
    assert cfg.n_frames == GenerateConfig().n_frames
    args = parser.parse_args(["flyvis", "generate", "--out-dir", "x", "--progress"])
    assert generate_config_from_args(args).progress is True


def test_fit_config_reads_toml_yaml_json(tmp_path):
    for name, text in (
        ("f.toml", "[fit]\nepochs = 4\nltrial_kwargs = { epsilon = 0.1 }\n"),
        ("f.yaml", "fit:\n  epochs: 4\n  ltrial_kwargs: {epsilon: 0.1}\n"),
        ("f.json", json.dumps({"epochs": 4, "ltrial_kwargs": {"epsilon": 0.1}})),
    ):
        (tmp_path / name).write_text(text)
        cfg = FitConfig.from_file(tmp_path / name)
        assert cfg.epochs == 4 and cfg.ltrial_kwargs == {"epsilon": 0.1}, name


# -- the FlyVis trainer's and the exploration's configs on the same mechanism -------------------------
def test_flyvis_train_config_sections_aliases_and_types(tmp_path):
    from eirnn_fast.flyvis.train_config import FlyVisTrainConfig

    (tmp_path / "gnn.yaml").write_text(
        "graph_model:\n  lin_edge: {hidden_dim: 16, n_layers: 2}\n  signal_model_name: flyvis_B\n"
        "training:\n  learning_rate_start: 2E-3\n  n_epochs: 2\nsimulation: {delta_t: 0.02}\n"
    )
    cfg = FlyVisTrainConfig.from_yaml(tmp_path / "gnn.yaml")
    assert (cfg.hidden_dim, cfg.n_layers, cfg.variant, cfg.lr, cfg.n_epochs) == (16, 2, "B", 2e-3, 2)
    assert cfg.extra["simulation"] == {"delta_t": 0.02}
    (tmp_path / "bad.yaml").write_text("training:\n  learning_rate_strat: 1\n")
    with pytest.raises(ValueError) as e:
        FlyVisTrainConfig.from_yaml(tmp_path / "bad.yaml")
    assert str(e.value) == (
        f"{tmp_path / 'bad.yaml'}: unknown config key 'training.learning_rate_strat' "
        "(did you mean 'learning_rate_start'?)"
    )
    (tmp_path / "type.yaml").write_text("training:\n  n_epochs: two\n")
    with pytest.raises(ValueError, match=r"type.yaml: config key 'n_epochs': must be int, got str 'two'"):
        FlyVisTrainConfig.from_yaml(tmp_path / "type.yaml")
    with pytest.raises(ValueError, match="config key 'recurrent_training': must be bool, got int 1"):
        FlyVisTrainConfig.from_dict({"recurrent_training": 1})


def test_explore_config_keys_and_types(tmp_path):
    from eirnn_fast.explore import ExploreConfig

    base = {"name": "x", "kind": "fake", "base_config": {"lr": 1.0}, "search_space": {"lr": [1.0, 2.0]}}
    assert ExploreConfig.from_dict({**base, "slots": None}).slots == 4  # null = the default
    with pytest.raises(ValueError, match=r"unknown config key 'iteratons' \(did you mean 'iterations'\?\)"):
        ExploreConfig.from_dict({**base, "iteratons": 3})
    (tmp_path / "e.yaml").write_text("name: x\nkind: fake\nslots: true\n")
    with pytest.raises(TypeError, match=r"e.yaml: config key 'slots': must be int or none, got bool True"):
        ExploreConfig.from_yaml(tmp_path / "e.yaml")
    with pytest.raises(ValueError, match="config key 'ucb_c': must be >= 0.0, got -1"):
        ExploreConfig.from_dict({**base, "ucb_c": -1})
