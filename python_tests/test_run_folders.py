"""The one run-folder rule under `fit`, `flyvis train`, `experiment` and `explore` (eirnn_fast.runstore):
same config resumes, a finished run says "already finished, loaded from ...", a different config refuses
with status 2 and one line naming the keys unless --force (which removes the old outputs); checkpoints
and trees as the previous version wrote them still resume."""

import json

import numpy as np
import pytest
import torch
import yaml

from eirnn_fast.cli import main
from eirnn_fast.data import make_synthetic_session
from eirnn_fast.explore import ExplorationTree, ExploreConfig, Explorer
from eirnn_fast.flyvis.gnn_toy import make_toy_dataset
from eirnn_fast.flyvis.train import FlyVisTrainConfig, train_flyvis_gnn

TINY = dict(n_trials=40, n_time_bins=30, n_exc=5, n_inh=3)
FIT_ARGS = ["--epochs", "2", "--batch-size", "16", "--no-plots", "--patience", "0", "--seed", "3"]
# a FlyVis GNN small enough for a few seconds of training
FLY = dict(
    epoch_loop="flyvis_gnn",
    n_epochs=2,
    hidden_dim=8,
    hidden_dim_update=8,
    batch_size=4,
    iterations_per_epoch=10,
    log_every=5,
    dtype="float64",
)
EXPLORE = {
    "name": "t",
    "kind": "fake",
    "slots": 2,
    "iterations": 4,
    "seed": 3,
    "reward": {"metric": "score"},
    "base_config": {"lr": 1e-3, "time_step": 1},
    "search_space": {"lr": {"range": [1e-4, 1e-2], "log": True}, "time_step": {"range": [1, 10], "integer": True}},
    "fake": {"optimum": {"lr": 3e-3, "time_step": 4}, "noise": 0.0},
}


@pytest.fixture(scope="module")
def tiny_mat(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "tiny.mat"
    make_synthetic_session(path, seed=2, fmt="v5", **TINY)
    return str(path)


@pytest.fixture(scope="module")
def fly_yaml(tmp_path_factory):
    root = tmp_path_factory.mktemp("fly")
    _, _, data = make_toy_dataset(n_neurons=30, n_types=3, n_frames=200, n_test_frames=40, seed=1)
    np.savez(root / "toy.npz", **data)
    (root / "c.yaml").write_text(yaml.safe_dump({**FLY, "data_path": "toy.npz"}))
    (root / "lr.yaml").write_text(yaml.safe_dump({**FLY, "data_path": "toy.npz", "lr": 5e-3}))
    return root


def _one_error_line(capsys, *needles):
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    for needle in needles:
        assert needle in err[0], err[0]
    return err[0]


def test_fit_folder_rule(tiny_mat, tmp_path, capsys):
    out = tmp_path / "fit"
    argv = ["fit", "--data", tiny_mat, "--out", str(out), *FIT_ARGS]
    assert main(argv) == 0
    result = (out / "result.json").read_text()
    (out / "evaluation.json").write_text("{}")  # what `eirnn-fast evaluate` leaves beside a run
    (out / "psth_eval.png").write_bytes(b"png")
    capsys.readouterr()
    assert main(argv) == 0  # the same config: not trained again
    assert f"already finished, loaded from {out / 'result.json'}" in capsys.readouterr().err
    assert (out / "result.json").read_text() == result
    # another config into the finished folder: status 2, one line naming both keys; nothing touched
    assert main([*argv, "--lr", "0.005", "--seed", "1"]) == 2
    _one_error_line(capsys, "eirnn-fast fit: error:", "lr: 0.01 -> 0.005", "seed: 3 -> 1", "--force")
    assert (out / "result.json").read_text() == result and (out / "evaluation.json").is_file()
    assert main([*argv, "--lr", "0.005", "--seed", "1", "--force"]) == 0
    assert not (out / "evaluation.json").exists() and not (out / "psth_eval.png").exists()
    assert json.loads((out / "config.json").read_text())["lr"] == 0.005


def test_fit_killed_after_training_evaluates_without_training_again(tiny_mat, tmp_path, capsys):
    out = tmp_path / "fit"
    argv = ["fit", "--data", tiny_mat, "--out", str(out), *FIT_ARGS]
    assert main(argv) == 0
    want = json.loads((out / "result.json").read_text())
    lines = (out / "metrics.jsonl").read_text()
    (out / "result.json").unlink()  # a kill between the final checkpoint and result.json
    capsys.readouterr()
    assert main(argv) == 0
    assert "at epoch 2 (training done)" in capsys.readouterr().err
    got = json.loads((out / "result.json").read_text())
    assert got["test_psth_corr"] == want["test_psth_corr"] and got["epochs_run"] == 2
    assert (out / "metrics.jsonl").read_text() == lines


def test_flyvis_train_folder_rule(fly_yaml, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["flyvis", "train", str(fly_yaml / "c.yaml"), "--out", str(out)]) == 0
    result = json.loads((out / "result.json").read_text())
    assert {"connectivity_R2", "train_seconds", "metric_definitions"} <= set(result)
    assert torch.load(out / "checkpoint.pt", weights_only=False)["format"] == "eirnn_fast.flyvis/1"
    capsys.readouterr()
    assert main(["flyvis", "train", str(fly_yaml / "c.yaml"), "--out", str(out)]) == 0
    assert f"already finished, loaded from {out / 'result.json'}" in capsys.readouterr().err
    assert json.loads((out / "result.json").read_text()) == result  # train_seconds kept, not re-measured
    assert main(["flyvis", "train", str(fly_yaml / "lr.yaml"), "--out", str(out)]) == 2
    _one_error_line(capsys, "eirnn-fast flyvis train: error:", "lr: 0.0012 -> 0.005", "--force")
    assert main(["flyvis", "train", str(fly_yaml / "lr.yaml"), "--out", str(out), "--force"]) == 0
    assert json.loads((out / "config.json").read_text())["lr"] == 0.005
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2  # the old run's lines removed


def test_flyvis_train_flags_override_the_yaml_and_stand_alone(fly_yaml, tmp_path, capsys, monkeypatch):
    # every FlyVisTrainConfig field is a flag: one given next to the YAML overrides its value (and
    # counts for the resume rule), the YAML's other keys stay; with --data-path no YAML is needed
    out = tmp_path / "flags"
    assert main(["flyvis", "train", str(fly_yaml / "c.yaml"), "--out", str(out), "--lr", "0.004", "--seed", "3"]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["lr"] == 0.004 and cfg["seed"] == 3
    assert cfg["iterations_per_epoch"] == FLY["iterations_per_epoch"] and cfg["hidden_dim"] == FLY["hidden_dim"]
    capsys.readouterr()
    assert main(["flyvis", "train", str(fly_yaml / "c.yaml"), "--out", str(out), "--lr", "0.004", "--seed", "3"]) == 0
    assert "already finished" in capsys.readouterr().err
    assert main(["flyvis", "train", str(fly_yaml / "c.yaml"), "--out", str(out)]) == 0  # unset keys follow the run
    assert "already finished" in capsys.readouterr().err
    assert main(["flyvis", "train", str(fly_yaml / "c.yaml"), "--out", str(out), "--lr", "0.005"]) == 2
    _one_error_line(capsys, "eirnn-fast flyvis train: error:", "lr: 0.004 -> 0.005", "--force")
    monkeypatch.chdir(fly_yaml)  # a relative --data-path is relative to the working directory
    bare = tmp_path / "bare"
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in FLY.items() if not isinstance(v, bool)]
    assert main(["flyvis", "train", "--data-path", "toy.npz", "--out", str(bare), *flags]) == 0
    cfg = json.loads((bare / "config.json").read_text())
    assert cfg["data_path"] == str(fly_yaml / "toy.npz") and cfg["hidden_dim"] == FLY["hidden_dim"]
    capsys.readouterr()
    assert main(["flyvis", "train", "--out", str(tmp_path / "none")]) == 2
    _one_error_line(capsys, "eirnn-fast flyvis train: error:", "--data-path")
    assert main(["flyvis", "train", "--data-path", "toy.npz", "--epoch-loop", "nope"]) == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err


def _mini_suite(tmp_path, lr=None):
    folder = tmp_path / "suite"
    folder.mkdir(exist_ok=True)
    (folder / "_base.toml").write_text("[fit]\nmax_trials = 40\nepochs = 2\nbatch_size = 16\nplots = false\n")
    (folder / "a_first.toml").write_text("[fit]\n" + ("" if lr is None else f"lr = {lr}\n"))
    (folder / "b_second.toml").write_text('[fit]\nlearnable_alpha = "neuron"\n')
    return folder


def test_experiment_folder_rule(tiny_mat, tmp_path, capsys):
    folder, out = _mini_suite(tmp_path), tmp_path / "out"
    argv = ["experiment", str(folder), "--data", tiny_mat, "--out", str(out), "--workers", "1"]
    assert main(argv) == 0
    first = out / "a_first" / "seed_42" / "result.json"
    stamp = first.stat().st_mtime_ns
    capsys.readouterr()
    assert main(argv) == 0
    assert f"already finished, loaded from {out / 'summary.json'} (2 runs)" in capsys.readouterr().err
    # the suite folder under other settings
    assert main([*argv, "--epochs", "3"]) == 2
    _one_error_line(capsys, "eirnn-fast experiment: error:", f"run folder {out} ", "epochs: None -> 3")
    # one experiment changed: its run folder refuses before any run starts
    _mini_suite(tmp_path, lr=0.005)
    assert main(argv) == 2
    _one_error_line(capsys, f"run folder {out / 'a_first' / 'seed_42'} ", "lr: 0.01 -> 0.005")
    assert first.stat().st_mtime_ns == stamp
    (out / "a_first" / "seed_42" / "evaluation.json").write_text("{}")
    assert main([*argv, "--force"]) == 0
    assert json.loads(first.read_text())["protocol_overrides"]["lr"] == 0.005
    assert not (out / "a_first" / "seed_42" / "evaluation.json").exists()


def test_suite_json_of_the_previous_version_resumes(tiny_mat, tmp_path, capsys):
    folder, out = _mini_suite(tmp_path), tmp_path / "out"
    argv = ["experiment", str(folder), "--data", tiny_mat, "--out", str(out), "--workers", "1"]
    assert main(argv) == 0
    record = json.loads((out / "suite.json").read_text())
    record["suite"] = str(folder.resolve())  # the previous version stored the folder's path
    (out / "suite.json").write_text(json.dumps(record))
    (out / "summary.json").unlink()
    capsys.readouterr()
    assert main(argv) == 0
    assert "2 of 2 runs already finished" in capsys.readouterr().err


def test_explore_folder_rule(tmp_path, capsys):
    out = tmp_path / "ex"
    (tmp_path / "e.yaml").write_text(yaml.safe_dump(EXPLORE))
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({**EXPLORE, "ucb_c": 2.0}))
    argv = ["explore", str(tmp_path / "e.yaml"), "--out", str(out), "--engine", "serial"]
    assert main(argv) == 0
    tree = (out / "tree.json").read_text()
    capsys.readouterr()
    assert main(argv) == 0
    assert f"already finished, loaded from {out}/tree.json" in capsys.readouterr().out
    assert json.loads((out / "tree.json").read_text())["nodes"] == json.loads(tree)["nodes"]
    assert main(["explore", str(tmp_path / "c.yaml"), "--out", str(out), "--engine", "serial"]) == 2
    _one_error_line(capsys, "eirnn-fast explore: error:", "ucb_c: '<missing>' -> 2.0")
    assert main(["explore", str(tmp_path / "e.yaml"), "--out", str(out), "--seed", "4", "--engine", "serial"]) == 2
    _one_error_line(capsys, "seed: 3 -> 4")
    assert main(["explore", str(tmp_path / "c.yaml"), "--out", str(out), "--engine", "serial", "--force"]) == 0
    assert json.loads((out / "tree.json").read_text())["meta"]["config"]["ucb_c"] == 2.0


def test_explore_flags_override_the_yaml(tmp_path, capsys):
    # the YAML's keys are flags too: --ucb-c 2.0 on e.yaml is the run c.yaml (ucb_c 2.0) describes, so
    # it finishes that run's folder; a JSON table replaces the YAML's table; a bad value is one line
    (tmp_path / "e.yaml").write_text(yaml.safe_dump(EXPLORE))
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({**EXPLORE, "ucb_c": 2.0}))
    out = tmp_path / "ex"
    assert main(["explore", str(tmp_path / "c.yaml"), "--out", str(out), "--engine", "serial"]) == 0
    capsys.readouterr()
    assert main(["explore", str(tmp_path / "e.yaml"), "--out", str(out), "--engine", "serial", "--ucb-c", "2.0"]) == 0
    assert f"already finished, loaded from {out}/tree.json" in capsys.readouterr().out
    other = tmp_path / "other"
    base = json.dumps({"lr": 5e-3, "time_step": 2})
    assert (
        main(["explore", str(tmp_path / "e.yaml"), "--out", str(other), "--engine", "serial", "--base-config", base])
        == 0
    )
    meta = json.loads((other / "tree.json").read_text())["meta"]["config"]
    assert meta["base_config"] == {"lr": 5e-3, "time_step": 2} and meta["search_space"] == EXPLORE["search_space"]
    capsys.readouterr()
    assert main(["explore", str(tmp_path / "e.yaml"), "--out", str(other), "--kind", "nope"]) == 2
    _one_error_line(capsys, "eirnn-fast explore: error:", "'kind'", "nope")


def test_tree_of_the_previous_version_resumes(tmp_path):
    """tree.json as the previous version wrote it (no recorded config): resumes on name and kind."""
    out = tmp_path / "ex"
    cfg = ExploreConfig.from_dict(EXPLORE)
    Explorer(cfg, out, engine="serial").run(iterations=2)
    tree = json.loads((out / "tree.json").read_text())
    assert tree["format"] == "eirnn_fast.explore.tree/1"
    del tree["meta"]["config"], tree["format"]
    (out / "tree.json").write_text(json.dumps(tree))
    again = Explorer(ExploreConfig.from_dict(EXPLORE), out, engine="serial")
    assert again.resumed and again.tree.meta["config"]["name"] == "t"
    again.run()
    assert sorted(n.id for n in ExplorationTree.load(out / "tree.json").run_nodes()) == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="name: 't' -> 'u'"):
        Explorer(ExploreConfig.from_dict({**EXPLORE, "name": "u"}), out, engine="serial")
    (out / "tree.json").write_text(json.dumps({**tree, "format": "eirnn_fast.explore.tree/7"}))
    with pytest.raises(ValueError, match="tree file format 'eirnn_fast.explore.tree/7'"):
        Explorer(ExploreConfig.from_dict(EXPLORE), out, engine="serial")
    assert not Explorer(ExploreConfig.from_dict(EXPLORE), out, engine="serial", force=True).resumed
    assert not (out / "tree.json").exists()


def test_unversioned_flyvis_checkpoint_resumes(fly_yaml, tmp_path):
    """The FlyVis checkpoint as the previous version wrote it (no "format" key) resumes to the same model."""
    data = str(fly_yaml / "toy.npz")
    cfg = dict(FLY, quiet=True, eval_each_epoch=False)
    full, _ = train_flyvis_gnn(FlyVisTrainConfig(**cfg), data, out_dir=tmp_path / "full")
    train_flyvis_gnn(FlyVisTrainConfig(**{**cfg, "n_epochs": 1}), data, out_dir=tmp_path / "old")
    ck = torch.load(tmp_path / "old" / "checkpoint.pt", weights_only=False)
    del ck["format"]
    torch.save(ck, tmp_path / "old" / "checkpoint.pt")
    resumed, info = train_flyvis_gnn(FlyVisTrainConfig(**cfg), data, out_dir=tmp_path / "old")
    assert info["resumed_from"] == (1, 0) and info["iterations_run"] == 10
    for (name, p), q in zip(full.named_parameters(), resumed.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=name)
    ck["format"] = "eirnn_fast.flyvis/9"
    torch.save(ck, tmp_path / "old" / "checkpoint.pt")
    with pytest.raises(ValueError, match="format 'eirnn_fast.flyvis/9'"):
        train_flyvis_gnn(FlyVisTrainConfig(**cfg), data, out_dir=tmp_path / "old")
    _, info = train_flyvis_gnn(FlyVisTrainConfig(**cfg), data, out_dir=tmp_path / "old", force=True)
    assert info["resumed_from"] is None and info["iterations_run"] == 20


def test_fit_checkpoint_of_another_format_refuses(tiny_mat, tmp_path):
    from eirnn_fast.train import FitConfig, fit

    cfg = FitConfig(data=tiny_mat, out=str(tmp_path / "r"), epochs=1, batch_size=16, quiet=True, plots=False)
    fit(cfg)
    ck = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=False)
    assert ck["format"] == "eirnn_fast.fit/1"
    ck["format"] = "eirnn_fast.fit/2"
    torch.save(ck, tmp_path / "r" / "checkpoint.pt")
    with pytest.raises(ValueError, match="checkpoint format 'eirnn_fast.fit/2' is not 'eirnn_fast.fit/1'"):
        fit(cfg)
    assert fit(cfg, force=True)["epochs_run"] == 1
