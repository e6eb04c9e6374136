"""MAT loader (v5 and v7.3), schema validation, splits and preprocessing."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from eirnn_fast.data import (
    INPUT_CHANNELS,
    clip_outliers,
    embedded_session_path,
    load_embedded_session,
    load_session,
    make_synthetic_session,
    make_synthetic_variables,
    read_mat,
    session_from_variables,
    train_val_split,
    train_val_test_split,
    write_mat,
)

SMALL = dict(n_trials=9, n_time_bins=11, n_exc=4, n_inh=3)  # distinct sizes catch axis mix-ups


@pytest.fixture(scope="module")
def real():
    return load_embedded_session(clip_percentile=None)


@pytest.fixture(scope="module")
def small_vars():
    return make_synthetic_variables(seed=3, **SMALL)


def test_real_session_shapes_and_types(real):
    data = real.get_all_trials()
    assert data["inputs"].shape == (890, 227, 14)
    assert data["targets"].shape == (890, 227, 14)
    assert data["mask"].shape == (890, 227)
    assert data["inputs"].dtype == torch.float32 and bool((data["mask"] == 1).all())
    info = real.get_neuron_info()
    assert (info["n_exc"], info["n_inh"]) == (8, 6)
    assert real.neuron_type.tolist() == [1, 2, 2, 1, 1, 1, 1, 1, 2, 1, 2, 2, 2, 1]
    assert real.get_input_dim() == len(INPUT_CHANNELS) == 14
    assert real.time_ms[0] == -187.5 and real.bin_size_ms == 25.0
    assert np.allclose(real.rates / 40.0, np.round(real.rates / 40.0))  # multiples of 1 spike / 25 ms
    assert real.rates.max() == 760.0
    assert real.meta["session_name"] == "Newton_08_13_2025_SC" and real.meta["format"] == "v7.3"


def test_real_session_quirks_are_notes_not_errors(real):
    notes = " | ".join(real.notes)
    assert "input_eye_x is all zero" in notes and "input_eye_y is all zero" in notes
    assert "331 of 890 trials have trial_duration_ms" in notes
    assert "interleaved" in notes
    assert np.all(real.inputs[:, :, 7:9] == 0)


def test_embedded_file_is_installed_with_provenance():
    path = embedded_session_path()
    assert path.stat().st_size == 1252890 and path == embedded_session_path("08_13")
    notice = (path.parent / "PROVENANCE.md").read_text()
    assert "MIT" in notice and "jamespherman/4factors-rnn-analysis" in notice
    path14 = embedded_session_path("08_14")
    assert path14.name == "rnn_export_Newton_08_14_2025_SC.mat" and path14.stat().st_size == 3109326
    assert "# rnn_export_Newton_08_14_2025_SC.mat" in notice and "6fa65af" in notice
    assert "b959bc034ea0740fc1ed263704d7b8651993ba582bd04726476274d3737a02c1" in notice
    with pytest.raises(ValueError, match="unknown embedded session '08_15'"):
        embedded_session_path("08_15")


def test_embedded_08_14_shapes_types_and_quirks():
    s = load_embedded_session("08_14", clip_percentile=None)
    d = s.get_all_trials()
    assert d["targets"].shape == (536, 219, 41) and d["inputs"].shape == (536, 219, 14)
    info = s.get_neuron_info()
    assert (info["n_exc"], info["n_inh"]) == (25, 16)
    assert s.meta["session_name"] == "Newton_08_14_2025_SC" and s.bin_size_ms == 25.0
    assert 12.0 < float(d["targets"].mean()) < 12.8  # ~12.4 sp/s (PROVENANCE)
    notes = " | ".join(s.notes)
    assert "interleaved" in notes and "40 of 536 trials" in notes and "127 of 536 trials have no fixation_on" in notes


def test_load_embedded_session_keeps_its_old_positional_clip_argument():
    raw = load_embedded_session(None)  # before 08_14 shipped, the first argument was clip_percentile
    assert raw.preprocessing.get("n_clipped", 0) == 0 and raw.rates.max() == 760.0
    assert load_embedded_session(99.0).rates.max() < 760.0


@pytest.mark.parametrize("fmt", ["v5", "v7.3"])
def test_synthetic_round_trip(tmp_path, small_vars, fmt):
    path = write_mat(tmp_path / f"s.{fmt}.mat", small_vars, fmt=fmt)
    raw = read_mat(path)
    assert raw["__format__"] == fmt
    assert raw["firing_rates"].shape == (7, 11, 9)  # MATLAB order N x T x K on both paths
    assert raw["input_target_loc"].shape == (4, 11, 9)
    s = load_session(path, clip_percentile=None)
    assert s.rates.shape == (9, 11, 7) and s.inputs.shape == (9, 11, 14)
    np.testing.assert_array_equal(s.rates, small_vars["firing_rates"].transpose(2, 1, 0))
    np.testing.assert_array_equal(s.inputs[:, :, 1:5], small_vars["input_target_loc"].transpose(2, 1, 0))
    np.testing.assert_array_equal(s.inputs[:, :, 5], small_vars["input_go_signal"].T)
    np.testing.assert_array_equal(s.neuron_type, small_vars["neuron_type"].ravel())
    assert s.meta["session_name"] == "synthetic_seed3"


def test_v5_and_v73_agree(tmp_path):
    a = make_synthetic_session(tmp_path / "a.mat", seed=5, fmt="v5", **SMALL)
    b = make_synthetic_session(tmp_path / "b.mat", seed=5, fmt="v7.3", **SMALL)
    np.testing.assert_array_equal(a.rates, b.rates)
    np.testing.assert_array_equal(a.inputs, b.inputs)
    for k in a.conditions:
        np.testing.assert_array_equal(a.conditions[k], b.conditions[k])


def test_synthetic_default_shape_statistics():
    v = make_synthetic_variables(seed=0, n_trials=60)  # 08_15 shape except the trial count
    s = session_from_variables(v, clip_percentile=None)
    assert s.rates.shape == (60, 219, 54) and (s.n_exc, s.n_inh) == (41, 13)
    assert 10.0 < s.rates.mean() < 17.0
    assert np.any(np.diff(s.neuron_type) < 0)  # interleaved


@pytest.mark.parametrize("fmt", ["v5", "v7.3"])
@pytest.mark.parametrize("dims", [dict(n_trials=1), dict(n_exc=1, n_inh=0), dict(n_time_bins=1)])
def test_singleton_axes_survive(tmp_path, fmt, dims):
    kw = {**SMALL, **dims}
    v = make_synthetic_variables(seed=1, **kw)
    s = load_session(write_mat(tmp_path / "x.mat", v, fmt=fmt), clip_percentile=None)
    n = kw["n_exc"] + kw["n_inh"]
    assert s.rates.shape == (kw["n_trials"], kw["n_time_bins"], n)
    assert s.inputs.shape == (kw["n_trials"], kw["n_time_bins"], 14)
    assert s.neuron_type.shape == (n,)


def test_trailing_singleton_dropped_by_matlab_is_restored(small_vars):
    v = make_synthetic_variables(seed=1, **{**SMALL, "n_trials": 1})
    v["firing_rates"] = v["firing_rates"][:, :, 0]  # MATLAB stores N x T x 1 as N x T
    v["input_target_loc"] = v["input_target_loc"][:, :, 0]
    s = session_from_variables(v, clip_percentile=None)
    assert s.rates.shape == (1, 11, 7)


def test_unreversed_axes_are_fixed_with_unique_permutation(small_vars):
    v = dict(small_vars)
    v["firing_rates"] = np.ascontiguousarray(small_vars["firing_rates"].transpose(2, 1, 0))  # K x T x N
    s = session_from_variables(v, clip_percentile=None)
    np.testing.assert_array_equal(s.rates, small_vars["firing_rates"].transpose(2, 1, 0))


def test_ambiguous_axes_raise():
    v = make_synthetic_variables(seed=1, n_trials=11, n_time_bins=11, n_exc=4, n_inh=3)  # K == T
    v["firing_rates"] = np.ascontiguousarray(v["firing_rates"].transpose(1, 0, 2))  # T x N x K
    with pytest.raises(ValueError, match="firing_rates.*refusing to guess"):
        session_from_variables(v)


@pytest.mark.parametrize("name", ["firing_rates", "neuron_type", "input_go_signal", "input_target_loc", "n_trials"])
def test_missing_variable_is_named(small_vars, name):
    v = {k: val for k, val in small_vars.items() if k != name}
    with pytest.raises(ValueError, match=f"missing required variable.*{name}"):
        session_from_variables(v)


@pytest.mark.parametrize(
    "name, value, pattern",
    [
        ("input_go_signal", np.zeros((11, 8)), r"input_go_signal has shape \(11, 8\), expected \(11, 9\)"),
        ("neuron_type", np.ones((6, 1)), "neuron_type has shape"),
        ("neuron_type", np.array([[1], [2], [3], [1], [1], [1], [2]]), "only 1 \\(E\\) and 2 \\(I\\)"),
        ("n_trials", np.array([[10.0]]), "firing_rates has shape"),
        ("trial_reward", np.zeros((4, 1)), "trial_reward has shape"),
        ("firing_rates", -np.ones((7, 11, 9)), "negative"),
        ("firing_rates", np.full((7, 11, 9), np.inf), "firing_rates has 693 infinite values"),
    ],
)
def test_inconsistent_variable_is_named(small_vars, name, value, pattern):
    v = dict(small_vars)
    v[name] = value
    with pytest.raises(ValueError, match=pattern):
        session_from_variables(v)


@pytest.mark.parametrize("fmt", ["v5", "v7.3"])
def test_corrupt_and_foreign_files_raise_valueerror(tmp_path, small_vars, fmt):
    good = write_mat(tmp_path / "good.mat", small_vars, fmt=fmt)
    blob = good.read_bytes()
    bad = tmp_path / "truncated.mat"
    bad.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ValueError, match="truncated.mat"):
        load_session(bad)
    text = tmp_path / "notes.mat"
    text.write_text("this is not a MAT file\n" * 20)
    with pytest.raises(ValueError, match="not a MAT file"):
        load_session(text)
    with pytest.raises(ValueError, match="no such file"):
        load_session(tmp_path / "absent.mat")
    with pytest.raises(ValueError, match="is a directory"):
        load_session(tmp_path)
    partial = write_mat(
        tmp_path / "partial.mat", {k: v for k, v in small_vars.items() if k != "input_reward_on"}, fmt=fmt
    )
    with pytest.raises(ValueError, match="partial.mat: missing required variable.*input_reward_on"):
        load_session(partial)


def test_nan_rates_are_masked(small_vars):
    v = dict(small_vars)
    fr = v["firing_rates"].copy()
    fr[2, 5:, 4] = np.nan  # neuron 2, bins 5.., trial 4
    v["firing_rates"] = fr
    s = session_from_variables(v, clip_percentile=None)
    assert s.mask[4, :5].all() and not s.mask[4, 5:].any() and s.mask[:4].all()
    assert np.isfinite(s.rates).all()


def test_split_matches_predecessor_recipe(real):
    train, val = train_val_split(real, val_fraction=0.2, seed=42)
    rng = np.random.RandomState(42)
    expect_val = []
    for label in np.unique(real.conditions["reward"]):
        idx = np.flatnonzero(real.conditions["reward"] == label)
        rng.shuffle(idx)
        expect_val.extend(idx[: int(len(idx) * 0.2)].tolist())
    assert val == expect_val
    assert sorted(train + val) == list(range(890))


def test_three_way_split_is_disjoint_stratified_and_seeded(real):
    s = train_val_test_split(real, 0.15, 0.15, seed=1)
    all_idx = s["train"] + s["val"] + s["test"]
    assert sorted(all_idx) == list(range(890))
    reward = real.conditions["reward"]
    frac = [reward[s[k]].mean() for k in ("train", "val", "test")]
    assert max(frac) - min(frac) < 0.03
    assert s == train_val_test_split(real, 0.15, 0.15, seed=1)
    assert s != train_val_test_split(real, 0.15, 0.15, seed=2)
    sub = real.subset(s["test"])
    assert len(sub) == len(s["test"]) and sub.trial_index.tolist() == s["test"]


def test_clip_outliers_reports():
    x = np.zeros(1000)
    x[:3] = [400.0, 600.0, 800.0]
    clipped, report = clip_outliers(x, 99.8)
    assert report["n_clipped"] == 2 and report["max_before"] == 800.0
    assert clipped.max() == report["clip_threshold"] and report["clip_threshold"] >= 400.0
    with pytest.raises(ValueError):
        clip_outliers(x, 0)


def test_default_load_clips_and_records(real):
    s = load_embedded_session()
    assert s.preprocessing["n_clipped"] > 0
    assert s.rates.max() == s.preprocessing["clip_threshold"] < 760.0


def test_import_does_not_load_h5py_or_scipy():
    code = "import sys, eirnn_fast, eirnn_fast.data; print(sorted(m for m in ('h5py', 'scipy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", check=True)
    assert out.stdout.strip() == "[]"
