"""The model and optimiser a :class:`~eirnn_fast.flyvis.train_config.FlyVisTrainConfig` asks for.

Adam parameter groups: embedding ``a`` -> ``lr_embedding``; f_theta -> ``lr_update`` (0: ``lr``);
``W`` -> ``lr_W``; g_phi -> ``lr``. (``grad_clip_W > 0`` clips the gradient norm of W only: the loop.)"""

from __future__ import annotations

import torch

from eirnn_fast.flyvis.gnn import FlyVisGNN
from eirnn_fast.flyvis.train_config import FlyVisTrainConfig


def build_model(config: FlyVisTrainConfig, graph) -> FlyVisGNN:
    dtype = torch.float64 if config.dtype == "float64" else torch.float32
    return FlyVisGNN(
        graph,
        variant=config.variant,
        hidden_dim=config.hidden_dim,
        n_layers=config.n_layers,
        embedding_dim=config.embedding_dim,
        activation=config.activation,
        hidden_dim_update=config.hidden_dim_update,
        n_layers_update=config.n_layers_update,
        g_phi_positive=config.g_phi_positive,
        w_init=config.w_init,
        w_init_scale=config.w_init_scale,
        backend=config.backend,
        seed=config.seed,
        dtype=dtype,
    ).to(config.device)


def make_optimizer(model: FlyVisGNN, config: FlyVisTrainConfig) -> torch.optim.Adam:
    groups = [
        {"params": [model.a], "lr": config.lr_embedding, "name": "embedding"},
        {"params": list(model.f_theta.parameters()), "lr": config.lr_update or config.lr, "name": "f_theta"},
        {"params": [model.W], "lr": config.lr_W, "name": "W"},
        {"params": list(model.g_phi.parameters()), "lr": config.lr, "name": "g_phi"},
    ]
    return torch.optim.Adam(groups)
