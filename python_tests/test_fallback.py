"""Without the compiled module the package imports, says so once, and every op runs its reference."""

import json
import subprocess
import sys

import eirnn_fast

SCRIPT = r"""
import json, sys, warnings
sys.modules["eirnn_fast._C"] = None  # as if the extension had not been built
import torch
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import eirnn_fast
    from eirnn_fast.ops import EdgeGraph, edge_message_passing, ei_rnn_rates, ei_rnn_scan, sinkhorn
    from eirnn_fast.reference import ei_rnn_scan_reference
    d, x0, w, a = torch.randn(2, 5, 3), torch.zeros(3), 0.1 * torch.randn(3, 3), torch.full((3,), 0.5)
    s = ei_rnn_scan(d, x0, w, a)
    same = torch.equal(s, ei_rnn_scan_reference(d, x0, w, a))
    ei_rnn_scan(d, x0, w, a)  # second call: no second warning
    r = ei_rnn_rates(s, x0, torch.tensor(2.0), torch.tensor(0.1))
    v = sinkhorn(torch.randn(1, 4, 2), torch.randn(1, 5, 2), eps=0.5)
    g = EdgeGraph(torch.tensor([0, 1]), torch.tensor([1, 2]), 3, 3)
    m = edge_message_passing(g, torch.ones(2), torch.ones(3, 1))
    model = eirnn_fast.EIRNN(4, 1, 2, noise_draw="counter")
    out = model(torch.rand(2, 6, 2))[0]
    try:
        ei_rnn_scan(d, x0, w, a, backend="fused")
        fused_error = ""
    except RuntimeError as exc:
        fused_error = str(exc)
print(json.dumps({"info": eirnn_fast.backend_info(), "same": same, "finite": bool(torch.isfinite(out).all()),
                  "warnings": [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)],
                  "fused_error": fused_error, "msg": m.flatten().tolist(), "rates": list(r.shape)}))
"""


def test_package_runs_references_without_the_compiled_module(tmp_path):
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    info = res["info"]
    assert {"compiled", "cpu_kernels", "cuda_kernels", "torch", "cuda_archs"} <= set(info)  # DESIGN 2 contract
    assert info["compiled"] is False and info["cpu_kernels"] is False and info["cuda_archs"] == []
    assert res["same"] and res["finite"] and res["msg"] == [0.0, 1.0, 1.0] and res["rates"] == [2, 5, 3]
    assert len(res["warnings"]) == 1 and "pure-PyTorch reference" in res["warnings"][0]
    assert "backend='fused' requested but eirnn_fast._C is not built" in res["fused_error"]


def test_backend_info_contract_keys():
    info = eirnn_fast.backend_info()
    assert isinstance(info["compiled"], bool) and isinstance(info["cuda_archs"], list)
    assert info["torch"] == __import__("torch").__version__
