"""FlyVis simulator: dense float64 Euler oracle, aggregation backends, determinism, stability, datasets."""

import json
import os

import numpy as np
import pytest
import torch

from eirnn_fast.flyvis import (
    GenerateConfig,
    columns_to_neurons,
    generate_dataset,
    load_connectome,
    load_dataset,
    make_stimuli,
    sample_parameters,
    simulate,
)
from eirnn_fast.flyvis import simulator as sim


@pytest.fixture(scope="module")
def net():
    c = load_connectome(1)
    return c, sample_parameters(c, 0)


def dense_euler(c, p, stim_cols, dt, noise, seed, t_pre=2.0):
    """Float64 oracle: dense W, explicit loop, the simulator's noise stream (randn [N, 1] per frame)."""
    W = c.dense_weights(p.W, torch.float64)
    tau, vr = p.tau.double(), p.V_rest.double()
    I = columns_to_neurons(c, torch.as_tensor(stim_cols, dtype=torch.float64))
    grey = columns_to_neurons(c, torch.full((c.n_columns,), 0.5, dtype=torch.float64))
    f = lambda v, i: (-v + vr + W @ torch.relu(v) + i) / tau  # noqa: E731
    v = vr.clone()
    for _ in range(int(round(t_pre / dt))):
        v = v + dt * f(v, grey)
    g = torch.Generator().manual_seed(seed)
    xs, ys = [], []
    for t in range(I.shape[0]):
        dv = f(v, I[t])
        xs.append(v)
        ys.append(dv)
        v = v + dt * dv + noise * torch.randn(c.n_neurons, 1, generator=g, dtype=torch.float64)[:, 0]
    return torch.stack(xs), torch.stack(ys)


@pytest.mark.parametrize("backend", ["auto", "reference"])
def test_matches_dense_float64_reference(net, backend):
    c, p = net
    stim = torch.from_numpy(make_stimuli(1, 3, 40, seed=1).frames.reshape(-1, c.n_columns))
    x_ref, y_ref = dense_euler(c, p, stim, 0.02, 0.05, seed=7)
    r = simulate(c, p, stim, seed=7, backend=backend, dtype=torch.float64)
    torch.testing.assert_close(r.x, x_ref, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(r.y, y_ref, rtol=1e-9, atol=1e-9)
    r32 = simulate(c, p, stim, seed=7, backend=backend, noise_model_level=0.0)
    x0, _ = dense_euler(c, p, stim, 0.02, 0.0, seed=7)
    torch.testing.assert_close(r32.x.double(), x0, rtol=1e-4, atol=1e-4)


def test_targets_are_clean_derivative(net):
    c, p = net
    stim = torch.rand(30, c.n_columns, generator=torch.Generator().manual_seed(0))
    r = simulate(c, p, stim, seed=1, dtype=torch.float64, noise_model_level=0.1)
    resid = r.x[1:] - r.x[:-1] - 0.02 * r.y[:-1]  # = noise of each frame
    assert abs(float(resid.std()) - 0.1) < 0.01
    r0 = simulate(c, p, stim, seed=1, dtype=torch.float64, noise_model_level=0.0)
    torch.testing.assert_close(r0.x[1:], r0.x[:-1] + 0.02 * r0.y[:-1])


def test_batched_streams_are_independent_columns(net):
    c, p = net
    stim = torch.rand(3, 25, c.n_columns, generator=torch.Generator().manual_seed(2))
    rb = simulate(c, p, stim, noise_model_level=0.0)
    assert rb.x.shape == (3, 25, c.n_neurons)
    for b in range(3):
        rs = simulate(c, p, stim[b], noise_model_level=0.0)
        torch.testing.assert_close(rb.x[b], rs.x, rtol=1e-5, atol=1e-5)


def test_aggregate_backends_agree():
    c = load_connectome(2)
    w = torch.randn(c.n_edges, dtype=torch.float64)
    h = torch.randn(c.n_neurons, 3, dtype=torch.float64)
    dense = c.dense_weights(w) @ h
    for backend in ("auto", "reference"):
        out = sim._aggregate(sim._Aggregator(c, backend), w, h)
        torch.testing.assert_close(out, dense)
    if not sim.fused_available():
        with pytest.raises(RuntimeError, match="not available"):
            sim._Aggregator(c, "fused")
    with pytest.raises(ValueError, match="backend"):
        sim._Aggregator(c, "gpu")


def test_auto_without_the_compiled_op_uses_the_csr_fallback(monkeypatch):
    from eirnn_fast import _ext

    c = load_connectome(1)
    w = torch.randn(c.n_edges, dtype=torch.float64)
    h = torch.randn(c.n_neurons, 2, dtype=torch.float64)
    monkeypatch.setattr(_ext, "_C", None)  # as on a source checkout without the extension
    assert not sim.fused_available()
    agg = sim._Aggregator(c, "auto")
    assert agg.name == "torch_sparse_csr"
    torch.testing.assert_close(agg(w, h), c.dense_weights(w) @ h)
    with pytest.raises(RuntimeError, match="not available"):
        sim._Aggregator(c, "fused")


def test_deterministic_per_seed(net):
    c, p = net
    stim = torch.rand(20, c.n_columns, generator=torch.Generator().manual_seed(3))
    a, b, d = simulate(c, p, stim, seed=5), simulate(c, p, stim, seed=5), simulate(c, p, stim, seed=6)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert not torch.equal(a.x, d.x)


def test_stable_over_many_frames():
    c = load_connectome(2)
    p = sample_parameters(c, 2)
    st = make_stimuli(2, 40, 50, seed=2)  # 2,000 frames of all four kinds
    r = simulate(c, p, torch.from_numpy(st.concat(range(40))), seed=0)
    assert torch.isfinite(r.x).all()
    assert float(r.x.abs().max()) < 100.0
    late = r.x[-500:].abs().max()
    assert float(late) < 2 * float(r.x[:500].abs().max()) + 5


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("EIRNN_FAST_SLOW") != "1", reason="64,000 frames at extent 8: set EIRNN_FAST_SLOW=1")
def test_stable_64000_frames_extent8():
    c = load_connectome(8)
    p = sample_parameters(c, 0)
    st = make_stimuli(8, 1280, 50, seed=0, test_fraction=0.0)
    stim = torch.from_numpy(st.concat(range(1280)).reshape(8, 8000, -1))
    vmax = 0.0
    for _, x, _ in sim.simulate_iter(c, p, stim, seed=0, block=1000):
        assert torch.isfinite(x).all()
        vmax = max(vmax, float(x.abs().max()))
    assert vmax < 200.0


def test_stimuli_split_and_range():
    st = make_stimuli(2, 30, 20, seed=4)
    assert st.frames.shape == (30, 20, 19)
    assert st.frames.min() >= 0 and st.frames.max() <= 1
    assert set(st.train).isdisjoint(st.test) and len(st.train) + len(st.test) == 30
    assert len(st.test) == 6
    assert set(st.kinds) == {"grating", "edge", "flash", "noise"}
    assert np.array_equal(make_stimuli(2, 30, 20, seed=4).frames, st.frames)
    with pytest.raises(ValueError, match="kinds"):
        make_stimuli(2, 3, 5, kinds=("movie",))


def test_bad_inputs(net):
    c, p = net
    with pytest.raises(ValueError, match="last dimension"):
        simulate(c, p, torch.zeros(5, 11))
    with pytest.raises(ValueError, match="stimulus must be"):
        simulate(c, p, torch.zeros(5))
    other = sample_parameters(load_connectome(2), 0)
    with pytest.raises(ValueError, match="params.tau"):
        simulate(c, other, torch.zeros(5, c.n_columns))
    with pytest.raises(ValueError, match="dt"):
        simulate(c, p, torch.zeros(5, c.n_columns), dt=0.0)


def test_generate_dataset(tmp_path):
    cfg = GenerateConfig(
        extent=1, n_frames=120, n_test_frames=40, sequence_length=20, n_streams=2, chunk_frames=25, progress=False
    )
    generate_dataset(cfg, 3, tmp_path)
    assert (tmp_path / "activity.png").stat().st_size > 0 and (tmp_path / "stimulus_frame.png").exists()
    m = json.loads((tmp_path / "metadata.json").read_text())
    assert m["connectome"]["n_neurons"] == 443 and m["seed"] == 3
    assert set(m["train_sequences"]).isdisjoint(m["test_sequences"])
    tr = load_dataset(tmp_path, "train")
    te = load_dataset(tmp_path, "test")
    assert tr["x"].shape == (120, 443) and tr["stimulus"].shape == (120, 7) and te["x"].shape == (40, 443)
    assert set(np.unique(tr["sequence"])).isdisjoint(np.unique(te["sequence"]))
    assert np.isfinite(tr["x"]).all()
    # regenerated per seed: same seed -> same data, other seed -> other data
    meta2 = generate_dataset(cfg, 3, tmp_path / "again")
    assert np.array_equal(load_dataset(tmp_path / "again")["x"], tr["x"])
    generate_dataset(GenerateConfig(**{**cfg.__dict__, "plots": False}), 4, tmp_path / "other")
    assert not np.array_equal(load_dataset(tmp_path / "other")["x"], tr["x"])
    assert meta2["weight_statistics"]["abs_median"] > 0
    with pytest.raises(ValueError, match="n_frames=121 is not a multiple of n_streams=2"):
        generate_dataset(GenerateConfig(**{**cfg.__dict__, "n_frames": 121}), 3, tmp_path / "odd")


def test_cli_generate(tmp_path):
    from eirnn_fast.cli import main

    rc = main(
        [
            "flyvis",
            "generate",
            "--out-dir",
            str(tmp_path),
            "--extent",
            "1",
            "--n-frames",
            "60",
            "--n-test-frames",
            "20",
            "--n-streams",
            "2",
            "--chunk-frames",
            "30",
            "--quiet",
            "--no-plots",
        ]
    )
    assert rc == 0 and (tmp_path / "metadata.json").exists()
    # a bad option is one line on stderr and status 2, like every eirnn-fast command
    assert main(["flyvis", "generate", "--out-dir", str(tmp_path), "--backend", "gpu"]) == 2


@pytest.mark.parametrize(
    "field, value",
    [
        ("noise_model_level", -1.0),
        ("dt", 0.0),
        ("chunk_frames", 0),
        ("sequence_length", 0),
        ("extent", 0),
        ("n_test_frames", -1),
        ("tau_clamp", "max"),
        ("noise_model_level", float("nan")),
    ],
)
def test_generate_refuses_bad_values_before_writing_anything(tmp_path, field, value):
    from eirnn_fast.cli import main

    with pytest.raises(ValueError, match=field):
        GenerateConfig(**{field: value})
    flag = "--" + field.replace("_", "-")
    if field != "tau_clamp":  # argparse's choices refuse that one
        out = tmp_path / "d"
        assert main(["flyvis", "generate", "--out-dir", str(out), "--quiet", flag, str(value)]) == 2
        assert not out.exists()
