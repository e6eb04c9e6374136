"""Input embeddings: documented widths, time locality and the exact maps."""

import pytest
import torch

from eirnn_fast.models.embeddings import EMBED_TYPES, make_input_embedding

N_IN = 6


def _x(batch=2, steps=7, seed=0):
    return torch.rand(batch, steps, N_IN, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    "kind, kwargs, width",
    [
        ("learnable", {"embed_dim": 10}, 10),
        ("random", {"embed_dim": 9}, 9),
        ("time_lag", {"embed_dim": 99}, N_IN * 4),
        ("time_lag", {"embed_dim": None, "time_lags": [2, 5]}, N_IN * 3),
        ("polynomial", {"embed_dim": None}, N_IN + N_IN * (N_IN + 1) // 2),
        ("deep", {"embed_dim": 8, "embed_n_layers": 1}, 8),
        ("deep", {"embed_dim": 8}, 8),
        ("typed", {"embed_dim": 7}, 7),
        ("typed", {"embed_dim": 7, "input_groups": [(0, 2), (2, 6)], "group_embed_dims": [3, 5]}, 8),
        ("recurrent", {"embed_dim": 5, "gru_hidden_dim": 3}, 5),
        ("attention", {"embed_dim": 11, "attention_heads": 3}, 11),
        ("learnable", {"embed_dim": None}, N_IN),
    ],
)
def test_output_width(kind, kwargs, width):
    torch.manual_seed(0)
    emb = make_input_embedding(N_IN, embed_type=kind, **kwargs)
    assert emb.output_dim == width and emb.embed_type == kind
    out = emb(_x())
    assert out.shape == (2, 7, width)


def test_all_types_listed():
    assert set(EMBED_TYPES) == {
        "learnable",
        "random",
        "time_lag",
        "polynomial",
        "deep",
        "typed",
        "recurrent",
        "attention",
    }


def test_time_lag_values():
    emb = make_input_embedding(N_IN, None, "time_lag", time_lags=[1, 3, 20])
    x = _x(steps=5)
    out = emb(x)
    torch.testing.assert_close(out[..., :N_IN], x)
    torch.testing.assert_close(out[:, 1:, N_IN : 2 * N_IN], x[:, :-1])
    assert (out[:, :1, N_IN : 2 * N_IN] == 0).all()
    torch.testing.assert_close(out[:, 3:, 2 * N_IN : 3 * N_IN], x[:, :-3])
    assert (out[:, :3, 2 * N_IN : 3 * N_IN] == 0).all()
    assert (out[..., 3 * N_IN :] == 0).all()  # lag beyond the trial: all zeros


def test_polynomial_order():
    emb = make_input_embedding(3, None, "polynomial")
    x = torch.tensor([[[2.0, 3.0, 5.0]]])
    assert emb(x).flatten().tolist() == [2, 3, 5, 4, 6, 10, 9, 15, 25]


@pytest.mark.parametrize("kind", ["learnable", "random", "polynomial", "deep", "typed", "attention"])
def test_per_bin_embeddings_are_time_local(kind):
    torch.manual_seed(0)
    emb = make_input_embedding(N_IN, 8, kind)
    x = _x()
    y = x.clone()
    y[:, 3] += 1.0
    diff = (emb(x) - emb(y)).abs().sum(dim=(0, 2))
    assert (diff[torch.arange(7) != 3] == 0).all()


def test_recurrent_embedding_is_causal():
    torch.manual_seed(0)
    emb = make_input_embedding(N_IN, 8, "recurrent")
    x = _x()
    y = x.clone()
    y[:, 4] += 1.0
    diff = (emb(x) - emb(y)).abs().sum(dim=(0, 2))
    assert (diff[:4] == 0).all() and diff[4] > 0


def test_random_projection_is_fixed_buffer():
    torch.manual_seed(0)
    emb = make_input_embedding(N_IN, 8, "random")
    assert list(emb.state_dict()) == ["W"] and not list(emb.parameters())
    assert emb.W.std().item() == pytest.approx(1 / N_IN**0.5, rel=0.5)


def test_attention_softmax_rows():
    """Uniform q = 0 (zero query weights): attention is the mean of the values over features."""
    torch.manual_seed(0)
    emb = make_input_embedding(N_IN, 4, "attention", attention_heads=2)
    with torch.no_grad():
        emb.qkv_proj.weight[:2] = 0
        emb.qkv_proj.bias[:2] = 0
        emb.out_proj.weight.zero_()
        emb.out_proj.bias.zero_()
        emb.out_proj.weight[0, 0] = 1.0  # read feature 0, head 0
    x = _x()
    v0 = x * emb.qkv_proj.weight[4, 0] + emb.qkv_proj.bias[4]  # values of head 0
    torch.testing.assert_close(emb(x)[..., 0], torch.relu(v0.mean(-1)))


def test_bad_options():
    with pytest.raises(ValueError, match="input_embed_type must be one of"):
        make_input_embedding(N_IN, 4, "fourier")
    with pytest.raises(ValueError, match="group_embed_dims"):
        make_input_embedding(N_IN, 4, "typed", input_groups=[(0, 3), (3, 6)], group_embed_dims=[4])
    with pytest.raises(ValueError, match="embed_n_layers"):
        make_input_embedding(N_IN, 4, "deep", embed_n_layers=0)
    with pytest.raises(ValueError, match="attention_heads"):
        make_input_embedding(N_IN, 4, "attention", attention_heads=0)
