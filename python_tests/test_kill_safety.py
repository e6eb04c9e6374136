"""Kill safety: each long command is SIGKILLed mid-way (a real ``kill -9`` of a subprocess), then run
again. The restart loses no finished work, and no file a kill left half-written (or a dataset without
its final metadata) is read as complete.

The kill comes at the worst moment, chosen deterministically: the process kills itself at the N-th
atomic replace of a named file, after the new content is written in full to its temporary file and
before it takes the target's place (``KILL_ON_REPLACE=name:N``). One more test kills a fit at whatever
point it has reached once its first checkpoint exists.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest
import torch
import yaml

from eirnn_fast.cli import main
from eirnn_fast.data import make_synthetic_session
from eirnn_fast.explore import ExplorationTree
from eirnn_fast.flyvis.gnn_toy import make_toy_dataset
from eirnn_fast.flyvis.train import load_training_data

# the subprocess: os.replace (every atomic write's last step) SIGKILLs the process at the N-th replace of
# a file whose path ends with NAME, then the command runs through eirnn_fast.cli.main
KILLER = r"""
import os, signal, sys
name, count = os.environ["KILL_ON_REPLACE"].rsplit(":", 1)
seen, real = [0], os.replace
def replace(src, dst, *args, **kwargs):
    if os.fspath(dst).endswith(name):
        seen[0] += 1
        if seen[0] == int(count):
            os.kill(os.getpid(), signal.SIGKILL)
    return real(src, dst, *args, **kwargs)
os.replace = replace
from eirnn_fast.cli import main
sys.exit(main(sys.argv[1:]))
"""
TINY = dict(n_trials=40, n_time_bins=30, n_exc=5, n_inh=3)
FIT_ARGS = ["--epochs", "4", "--batch-size", "16", "--no-plots", "--patience", "0", "--seed", "3", "--threads", "1"]


def _killed(argv, kill_on, cwd=None):
    """Run ``eirnn-fast ARGV`` in a subprocess that SIGKILLs itself at ``kill_on`` (``name:N``)."""
    env = dict(os.environ, KILL_ON_REPLACE=kill_on, OMP_NUM_THREADS="1")
    # `python -c` puts the working folder first on sys.path: run outside the repository, or a
    # non-editable install would import the source tree (no compiled module: the reference ops)
    proc = subprocess.run(
        [sys.executable, "-c", KILLER, *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd or tempfile.gettempdir(),
    )
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr[-2000:])
    return proc


def _no_half_written_targets(folder):
    """Whatever a kill left: temporary files beside their targets, never a target missing its end."""
    for path in folder.rglob("*.json"):
        json.loads(path.read_text())  # every JSON file present is complete


def _lines(path):
    return [{k: v for k, v in json.loads(x).items() if "seconds" not in k} for x in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def tiny_mat(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "tiny.mat"
    make_synthetic_session(path, seed=2, fmt="v5", **TINY)
    return str(path)


def test_fit_killed_mid_training_resumes_to_the_uninterrupted_result(tiny_mat, tmp_path, capsys):
    straight, cut = tmp_path / "straight", tmp_path / "cut"
    assert main(["fit", "--data", tiny_mat, "--out", str(straight), *FIT_ARGS]) == 0
    argv = ["fit", "--data", tiny_mat, "--out", str(cut), *FIT_ARGS]
    _killed(argv, "cut/checkpoint.pt:3")  # the checkpoints after epochs 0 and 1 are saved, epoch 2's is not
    assert not (cut / "result.json").exists()  # not "done" to the suites
    assert torch.load(cut / "checkpoint.pt", weights_only=False)["epoch"] == 2
    _no_half_written_targets(cut)
    capsys.readouterr()
    assert main(argv) == 0
    assert f"resumed from {cut / 'checkpoint.pt'} at epoch 2" in capsys.readouterr().err
    a, b = (json.loads((d / "result.json").read_text()) for d in (straight, cut))
    assert b["test_psth_corr"] == a["test_psth_corr"] and b["best_epoch"] == a["best_epoch"]
    assert _lines(cut / "metrics.jsonl") == _lines(straight / "metrics.jsonl")  # each epoch once


@pytest.mark.skipif(os.environ.get("EIRNN_FAST_SLOW") != "1", reason="~6 s more: set EIRNN_FAST_SLOW=1")
def test_fit_killed_at_a_random_point_never_leaves_a_half_read_file(tiny_mat, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["fit", "--data", tiny_mat, "--out", str(out), *FIT_ARGS[:1], "40", *FIT_ARGS[2:]]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "eirnn_fast.cli", *argv], env=env, stderr=subprocess.DEVNULL, cwd=tempfile.gettempdir()
    )
    try:
        deadline = time.monotonic() + 60
        while not (out / "checkpoint.pt").exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    _no_half_written_targets(out)
    ckpt = torch.load(out / "checkpoint.pt", weights_only=False)  # never half-written: loads whenever killed
    done = ckpt["epoch"]
    before = _lines(out / "metrics.jsonl")
    capsys.readouterr()
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "already finished" in err or f"at epoch {done}" in err
    after = _lines(out / "metrics.jsonl")
    assert [x["epoch"] for x in after] == list(range(40))
    assert after[: min(done, len(before))] == before[: min(done, len(before))]  # the saved epochs were kept


def test_flyvis_generate_killed_is_no_dataset_and_regenerates(tmp_path, capsys):
    out = tmp_path / "data"
    gen = ["flyvis", "generate", "--out-dir", str(out), "--extent", "1", "--n-frames", "40", "--n-test-frames"]
    gen += ["20", "--n-streams", "2", "--chunk-frames", "20", "--no-plots", "--quiet"]
    assert main([*gen, "--seed", "0"]) == 0
    meta0 = (out / "metadata.json").read_text()
    # a second generation over the complete one, killed as it writes its metadata: every chunk written
    _killed([*gen, "--seed", "1"], "data/metadata.json:1")
    assert not (out / "metadata.json").exists()  # the old dataset's metadata went first
    with pytest.raises(ValueError, match="no complete dataset"):
        load_training_data(out)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"data_path": "data", "iterations_per_epoch": 2}))
    capsys.readouterr()
    assert main(["flyvis", "train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "run")]) == 2
    assert "no complete dataset" in capsys.readouterr().err and not (tmp_path / "run").exists()
    assert main([*gen, "--seed", "1"]) == 0
    meta1 = json.loads((out / "metadata.json").read_text())
    assert meta1["seed"] == 1 and json.loads(meta0)["seed"] == 0
    capsys.readouterr()
    assert main([*gen, "--seed", "1"]) == 0  # complete and the same: not simulated again
    assert json.loads((out / "metadata.json").read_text())["timing"] == meta1["timing"]


def test_flyvis_train_killed_mid_epoch_resumes_to_the_uninterrupted_model(tmp_path, capsys):
    _, _, data = make_toy_dataset(n_neurons=30, n_types=3, n_frames=200, n_test_frames=40, seed=1)
    np.savez(tmp_path / "toy.npz", **data)
    cfg = dict(epoch_loop="flyvis_gnn", n_epochs=2, hidden_dim=8, hidden_dim_update=8, batch_size=4)
    cfg.update(iterations_per_epoch=10, checkpoint_every=5, log_every=5, dtype="float64", data_path="toy.npz")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert (
        main(["flyvis", "train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "straight"), "--threads", "1"]) == 0
    )
    cut = tmp_path / "cut"
    argv = ["flyvis", "train", str(tmp_path / "c.yaml"), "--out", str(cut), "--threads", "1"]
    _killed(argv, "cut/checkpoint.pt:2")  # iteration 5 saved, iteration 10's checkpoint not
    assert not (cut / "result.json").exists()
    assert torch.load(cut / "checkpoint.pt", weights_only=False)["iteration"] == 5
    capsys.readouterr()
    assert main(argv) == 0
    assert f"resumed from {cut / 'checkpoint.pt'} at epoch 0, iteration 5" in capsys.readouterr().err
    a, b = (json.loads((d / "result.json").read_text()) for d in (tmp_path / "straight", cut))
    assert set(a) == set(b) and "metric_definitions" in b
    sa, sb = (torch.load(d / "checkpoint.pt", weights_only=False)["model"] for d in (tmp_path / "straight", cut))
    for k in sa:  # the model of an uninterrupted run, bit for bit
        torch.testing.assert_close(sb[k], sa[k], rtol=0, atol=0, msg=k)
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("s_per_iter", "elapsed_s")} for r in rows]  # noqa: E731
    for log in ("history.jsonl", "metrics.jsonl"):  # each line once, none from the killed process doubled
        assert strip(_lines(cut / log)) == strip(_lines(tmp_path / "straight" / log)), log


def test_experiment_killed_in_its_second_run_keeps_the_first(tiny_mat, tmp_path, capsys):
    folder = tmp_path / "suite"
    folder.mkdir()
    (folder / "_base.toml").write_text("[fit]\nmax_trials = 40\nepochs = 3\nbatch_size = 16\nplots = false\n")
    (folder / "a_first.toml").write_text("[fit]\n")
    (folder / "b_second.toml").write_text('[fit]\nlearnable_alpha = "neuron"\n')
    out = tmp_path / "out"
    argv = ["experiment", str(folder), "--data", tiny_mat, "--out", str(out), "--workers", "1", "--quiet"]
    _killed(argv, "b_second/seed_42/checkpoint.pt:2")
    first = out / "a_first" / "seed_42" / "result.json"
    stamp = first.stat().st_mtime_ns
    assert not (out / "b_second" / "seed_42" / "result.json").exists() and not (out / "summary.json").exists()
    _no_half_written_targets(out)
    second = _lines(out / "b_second" / "seed_42" / "metrics.jsonl")
    capsys.readouterr()
    assert main(argv[:-1]) == 0
    assert "1 of 2 runs already finished" in capsys.readouterr().err
    assert first.stat().st_mtime_ns == stamp  # the finished run was not run again
    assert _lines(out / "b_second" / "seed_42" / "metrics.jsonl")[:1] == second[:1]
    assert {r["experiment"] for r in json.loads((out / "summary.json").read_text())["rows"]} == {
        "a_first",
        "b_second",
    }


def test_explore_killed_mid_batch_keeps_its_finished_nodes(tmp_path, capsys):
    config = {
        "name": "k",
        "kind": "fake",
        "slots": 2,
        "iterations": 6,
        "seed": 3,
        "reward": {"metric": "score"},
        "base_config": {"lr": 1e-3, "time_step": 1},
        "search_space": {"lr": {"range": [1e-4, 1e-2], "log": True}, "time_step": {"range": [1, 10], "integer": True}},
        "fake": {"optimum": {"lr": 3e-3, "time_step": 4}, "noise": 0.0},
    }
    (tmp_path / "e.yaml").write_text(yaml.safe_dump(config))
    argv = ["explore", str(tmp_path / "e.yaml"), "--engine", "serial", "--quiet"]
    assert main([*argv, "--out", str(tmp_path / "straight")]) == 0
    cut = tmp_path / "cut"
    # tree saves: batch 1 in flight, node 1, node 2, batch 2 in flight, node 3 (killed), ...
    _killed([*argv, "--out", str(cut)], "cut/tree.json:5")
    saved = ExplorationTree.load(cut / "tree.json")
    assert [n.id for n in saved.finished_nodes()] == [1, 2] and [n.id for n in saved.unfinished_nodes()] == [3, 4]
    rewards = {n.id: n.reward for n in saved.finished_nodes()}
    capsys.readouterr()
    assert main([*argv[:-1], "--out", str(cut)]) == 0
    assert "resuming" in capsys.readouterr().out
    again = ExplorationTree.load(cut / "tree.json")
    full = ExplorationTree.load(tmp_path / "straight" / "tree.json")
    view = lambda t: [(n.id, n.parent, json.dumps(n.config, sort_keys=True), n.reward) for n in t.run_nodes()]  # noqa: E731
    assert view(again) == view(full)  # the same search as an uninterrupted one
    assert all(again.nodes[i].reward == r for i, r in rewards.items())
